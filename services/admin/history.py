"""The site's history: a point taken from the status every `history_interval_s`, kept a day
in the history stream (so a restart of the admin service loses nothing), and read back in at
most a few hundred steps for the status page's charts and `cs status --since`.

`take` and `downsample` are pure; `record` is the admin service's loop that publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bus import subjects
from bus.connection import Bus
from bus.errors import ConfigError
from bus.schemas import HistoryPoint, HistoryReply, StatusReply, VmRecord
from runtime import logs
from siteconfig import SiteConfig

log = logging.getLogger("cs-admin")

MAX_CLASSES = 20
"""Demand classes kept by name in a point (the largest by idle jobs); the rest add up under
OTHER, so a queue of a thousand odd classes cannot make points too big to keep a day of."""
OTHER = "other"
DEFAULT_INTERVAL_S = 60.0
MAX_POINTS = 1000
"""Most points one history reply may hold."""

StatusSource = Callable[[], Awaitable[StatusReply]]
"""Where the status comes from (the admin service's own reading of KV and the streams)."""


def take(status: StatusReply, vms: Sequence[VmRecord], since: float, now: float
         ) -> HistoryPoint:
    """The point for `now`: idle jobs per class, VMs per cloud and state, and the boots and
    failures (in `vms`, the whole registry) since `since` (the previous point)."""
    idle: dict[str, int] = {}
    labels: dict[str, str] = {}
    running = 0
    classes = sorted(status.demand.classes if status.demand else (),
                     key=lambda c: (-c.idle, c.key))
    for i, cls in enumerate(classes):
        running += cls.running
        key = cls.key if i < MAX_CLASSES else OTHER
        idle[key] = idle.get(key, 0) + cls.idle
        labels[key] = cls.vm_type if i < MAX_CLASSES else OTHER
    by_cloud = {c.name: dict(c.vms_by_state) for c in status.clouds}
    boots = sum(since < vm.created_at <= now for vm in vms)
    failures = sum(vm.state == "error" and since < vm.updated_at <= now for vm in vms)
    return HistoryPoint(at=now, idle=idle, running_jobs=running, labels=labels, vms=by_cloud,
                        boots=boots, failures=failures)


def downsample(points: list[HistoryPoint], interval_s: float, since: float, now: float,
               max_points: int) -> HistoryReply:
    """The points of [since, now], all of them while they are at most `max_points`; else
    one a step of 1/max_points of the time they cover: the step's last point for the gauges
    (idle jobs, VMs), with the boots and failures of the whole step added up."""
    inside = sorted((p for p in points if since <= p.at <= now), key=lambda p: p.at)
    if len(inside) <= max_points:
        return HistoryReply(interval_s=interval_s, step_s=interval_s, points=tuple(inside))
    start = inside[0].at  # a history younger than the span asked for is spread over it
    step = max(interval_s, (now - start) / max_points)
    buckets: dict[int, list[HistoryPoint]] = {}
    for point in inside:  # a point at `now` itself belongs to the last step
        buckets.setdefault(min(int((point.at - start) // step), max_points - 1),
                           []).append(point)
    out = [group[-1].model_copy(update={"boots": sum(p.boots for p in group),
                                        "failures": sum(p.failures for p in group)})
           for _, group in sorted(buckets.items())]
    return HistoryReply(interval_s=interval_s, step_s=step, points=tuple(out))


def interval_of(site: SiteConfig) -> float:
    """`[admin] history_interval_s`: seconds between two points (default 60)."""
    sec = site.section("admin")
    value = sec.number("history_interval_s", DEFAULT_INTERVAL_S, minimum=0.5)
    if value > subjects.HISTORY_DEDUP_S:
        raise ConfigError(f"{site.path}: [admin] history_interval_s = {value}: at most "
                          f"{subjects.HISTORY_DEDUP_S:.0f} (replicas' points of one step are "
                          "told apart within that window)")
    return value


PointSource = Callable[[float, float], Awaitable[HistoryPoint]]
"""The point for a moment (`now`), with the boots and failures since another (`since`)."""


async def record(bus: Bus, point_at: PointSource, interval_s: float,
                 stop: asyncio.Event) -> None:
    """Publish a point at every step boundary until `stop`. Every admin replica does; the
    stream keeps one point per step (the message id is the step's number)."""
    last = time.time()
    while not stop.is_set():
        now = time.time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s - now % interval_s)
        if stop.is_set():
            return
        now = time.time()
        try:
            point = await point_at(last, now)
            await bus.js_publish(subjects.history(), point,
                                 msg_id=subjects.history_point_id(int(now // interval_s)))
            last = now
        except Exception as exc:  # the history must never take the admin service down
            log.warning("%s", logs.fields(event="history point not recorded",
                                          error=f"{type(exc).__name__}: {exc}"))

