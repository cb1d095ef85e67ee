"""Line charts as inline SVG, drawn on the server from the history (no JavaScript, nothing
fetched from elsewhere: the status page works on a site with no way out), and the same
history as rows for `cs status --since`."""

from __future__ import annotations

import html
import math
import re
import time
from dataclasses import dataclass

from bus.errors import ConfigError
from bus.schemas import HistoryPoint, HistoryReply

WIDTH, HEIGHT = 600, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 170, 24, 26
"""Margins: y labels on the left, the legend on the right, x labels below."""
PALETTE = ("#2da44e", "#d4a72c", "#0969da", "#cf222e", "#8250df", "#bc4c00", "#1b7c83",
           "#57606a")

STARTING = ("requested", "booting")
"""States of a VM on its way up."""

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> float:
    """`90s`, `15m`, `1h`, `1h30m`, `1d` as seconds; ConfigError says what is wrong."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ConfigError(f"{text!r} is not a duration: write e.g. 90s, 15m, 1h or 1h30m")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


@dataclass(frozen=True)
class Series:
    """One line of a chart."""

    label: str
    values: list[float]
    color: str


def _nice_top(peak: float) -> tuple[float, float]:
    """The y axis' top and tick step: a round number at or above `peak`."""
    if peak <= 0:
        return 1.0, 1.0
    raw = peak / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1.0)
    return step * math.ceil(peak / step), step


def line_chart(chart_id: str, title: str, times: list[float], series: list[Series],
               since: float, now: float) -> str:
    """An SVG chart of `series` over [since, now]; each line's values ride along in
    `data-values` so a test (or a curious operator) can read what is drawn."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    peak = max((v for s in series for v in s.values), default=0.0)
    top, step = _nice_top(peak)
    span = max(now - since, 1e-9)

    def x(t: float) -> float:
        return LEFT + (t - since) / span * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - v / top * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="{html.escape(chart_id)}" '
             f'class="chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<text x="{LEFT}" y="15" class="chart-title">{html.escape(title)}</text>']
    tick = 0.0
    while tick <= top + 1e-9:
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}" class="grid"/>'
                     f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" class="tick" '
                     f'text-anchor="end">{tick:g}</text>')
        tick += step
    clock = "%H:%M:%S" if span < 600 else "%H:%M"
    for i in range(5):
        t = since + span * i / 4
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 8}" class="tick" text-anchor='
                     f'"middle">{time.strftime(clock, time.localtime(t))}</text>')
    if not times:
        parts.append(f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" class="tick" '
                     'text-anchor="middle">no history yet</text>')
    for i, line in enumerate(series):
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(times, line.values,
                                                                      strict=True))
        values = ",".join(f"{v:g}" for v in line.values)
        parts.append(f'<polyline class="series" data-label="{html.escape(line.label)}" '
                     f'data-values="{values}" fill="none" stroke="{line.color}" '
                     f'stroke-width="2" points="{points}"/>')
        ly = TOP + 6 + i * 16
        last = f" {line.values[-1]:g}" if line.values else ""
        parts.append(f'<rect x="{WIDTH - RIGHT + 10}" y="{ly - 8}" width="10" height="10" '
                     f'fill="{line.color}"/><text x="{WIDTH - RIGHT + 25}" y="{ly + 1}" '
                     f'class="legend">{html.escape(line.label[:24])}{last}</text>')
    parts.append("</svg>")
    return "".join(parts)


def history_charts(reply: HistoryReply, since: float, now: float) -> str:
    """The status page's charts: VMs by state, idle jobs by class, boots and failures, from
    `since` or the first point kept, whichever is later, to `now`."""
    points = list(reply.points)
    if points:
        since = max(since, points[0].at)
    times = [p.at for p in points]
    vm_series = [Series("all VMs", [p.vms_in() for p in points], "#1d232a"),
                 Series("running", [p.vms_in("running") for p in points], PALETTE[0]),
                 Series("starting", [p.vms_in(*STARTING) for p in points], PALETTE[1]),
                 Series("retiring", [p.vms_in("retiring", "deleting") for p in points],
                        PALETTE[2]),
                 Series("error", [p.vms_in("error") for p in points], PALETTE[3])]
    classes = sorted({k for p in points for k in p.idle},
                     key=lambda k: -max(p.idle.get(k, 0) for p in points))[:len(PALETTE) - 1]
    labels = {k: lbl for p in points for k, lbl in p.labels.items()}
    shared = {lbl for lbl in labels.values() if list(labels.values()).count(lbl) > 1}

    def legend(key: str) -> str:
        label = labels.get(key, key)  # the VM type; with the class when types repeat
        return f"{label[:13]} ({key[:6]})" if label in shared else label[:20]

    job_series = [Series("all idle", [p.total_idle() for p in points], "#1d232a")] + [
        Series(legend(k), [p.idle.get(k, 0) for p in points],
               PALETTE[(i + 2) % len(PALETTE)]) for i, k in enumerate(classes)]
    step = f"{reply.step_s:g} s" if reply.step_s < 120 else f"{reply.step_s / 60:g} min"
    rate_series = [Series("boots", [p.boots for p in points], PALETTE[0]),
                   Series("failures", [p.failures for p in points], PALETTE[3])]
    return (line_chart("chart-vms", "VMs by state", times, vm_series, since, now)
            + line_chart("chart-idle", "Idle jobs by class", times, job_series, since, now)
            + line_chart("chart-boots", f"Boots and failures per {step}", times, rate_series,
                         since, now))


def history_rows(points: list[HistoryPoint] | tuple[HistoryPoint, ...]) -> list[list[str]]:
    """`cs status --since`: one row a step: time, idle and running jobs, VMs by state,
    boots and failures."""
    return [[time.strftime("%H:%M:%S", time.localtime(p.at)), str(p.total_idle()),
             str(p.running_jobs), str(p.vms_in()), str(p.vms_in("running")),
             str(p.vms_in(*STARTING)), str(p.vms_in("retiring", "deleting")),
             str(p.vms_in("error")), str(p.boots), str(p.failures)] for p in points]


HISTORY_HEADERS = ["time", "idle", "jobs", "VMs", "running", "start", "retire", "error",
                   "boots", "fails"]
"""Columns of `cs status --since`: idle jobs, running jobs, all VMs, VMs running, starting
(requested or booting), retiring (or being deleted), in error; boots and failures in the
step. Short words: ten columns in 80."""
