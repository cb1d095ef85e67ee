"""Observability of the running system: every service's /metrics (demand by class, VMs by
cloud and state, boots, plan time, intent lag, bus counters), the Grafana dashboard's queries
against what the services export, JSON logs with one canonical line per loop, and the admin
service's status page in headless Chromium (rendered DOM and a screenshot)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from runtime.observe import PORT_OFFSETS
from tests.demo import ROOT, site_toml
from tests.natsserver import NatsServer
from tests.observed import CHROMIUM, CLOUD, SHOT_SIZE, chromium, history, observed, samples
from tests.system import System
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

DASHBOARD = ROOT / "container" / "grafana-dashboard.json"
RUNNING_GREEN = (0xDA, 0xFB, 0xE1)  # the status page's background of a running VM's row


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def families(text: str) -> set[str]:
    """Every metric name a /metrics page declares (counters with and without _total)."""
    names = set(re.findall(r"^# HELP (\S+)", text, re.M))
    return names | {n + "_total" for n in names} | {
        n + suffix for n in names for suffix in ("_bucket", "_sum", "_count")}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[System, int, int]]:
    with observed(tmp_path_factory.mktemp("observed")) as running:
        yield running


def test_every_service_exports_its_metrics(system: tuple[System, int, int]) -> None:
    _, base, _ = system
    # Gauges follow the loops (a cycle of 0.5 s): read until the planner's has seen all 8.
    deadline = time.monotonic() + 20
    while True:
        pages = {name: get(f"http://127.0.0.1:{base + offset}/metrics")[1]
                 for name, offset in PORT_OFFSETS.items()}
        planner, poller = samples(pages["cs-planner"]), samples(pages["cs-poller"])
        if planner.get(f'cs_vms{{cloud="{CLOUD}",state="running"}}') == 8 or \
                time.monotonic() > deadline:
            break
        time.sleep(0.5)
    libvirt, admin = samples(pages["cs-provisioner-libvirt"]), samples(pages["cs-admin"])
    assert planner[f'cs_vms{{cloud="{CLOUD}",state="running"}}'] == 8
    assert planner[f'cs_vms{{cloud="{CLOUD}",state="error"}}'] == 0
    assert planner["cs_plan_seconds_count"] > 0
    assert planner[f'cs_intents_total{{action="boot",cloud="{CLOUD}"}}'] >= 8
    assert planner["cs_intent_lag_seconds_count"] >= 8
    assert planner[f'cs_cloud_backoff{{cloud="{CLOUD}"}}'] == 0
    idle = {k: v for k, v in poller.items() if k.startswith("cs_demand_jobs") and
            'state="idle"' in k}
    assert sorted(idle.values()) == [2, 6]  # the demo's two classes
    assert poller["cs_demand_rejected_jobs"] == 1 and poller["cs_demand_stale"] == 0
    assert libvirt[f'cs_boots_total{{cloud="{CLOUD}",outcome="running"}}'] >= 8
    assert libvirt[f'cs_reconcile_seconds_count{{cloud="{CLOUD}"}}'] > 0
    assert admin['cs_admin_requests_total{code="200",endpoint="status"}'] >= 1
    for name, text in pages.items():
        assert "cs_bus_reconnects_total 0.0" in text, name
        assert "cs_bus_permission_errors_total 0.0" in text, name


def test_the_dashboard_asks_only_for_what_the_services_export(
    system: tuple[System, int, int],
) -> None:
    _, base, _ = system
    exported: set[str] = set()
    for offset in PORT_OFFSETS.values():
        exported |= families(get(f"http://127.0.0.1:{base + offset}/metrics")[1])
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 15
    wanted = {m for e in exprs for m in re.findall(r"\b(cs_[a-z_]+)", e)}
    assert wanted - exported == set(), "the dashboard queries metrics nobody exports"
    for topic in ("cs_demand_jobs", "cs_vms", "cs_boots_total", "cs_boot_failures_total",
                  "cs_intent_retries_total", "cs_plan_seconds_bucket",
                  "cs_intent_lag_seconds_bucket", "cs_bus_reconnects_total"):
        assert topic in wanted, f"the dashboard has no panel on {topic}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_logs_are_json_with_one_canonical_line_per_loop(system: tuple[System, int, int]) -> None:
    running, _, _ = system
    lines = {name: (running.workdir / f"{name}.log").read_text().splitlines()
             for name in PORT_OFFSETS}
    for name, text in lines.items():
        docs = [json.loads(line) for line in text if line.startswith("{")]
        assert docs and len(docs) >= len([t for t in text if t.strip()]) - 5, name
        assert all(d["service"] == name and d["level"] and d["ts"] for d in docs)
    plans = [json.loads(x) for x in lines["cs-planner"] if '"loop": "plan"' in x]
    assert plans and {"booked", "vms", "holds", "trace"} <= set(plans[-1])
    polls = [json.loads(x) for x in lines["cs-poller"] if '"loop": "poll"' in x]
    assert polls and polls[-1]["classes"] == "2" and polls[-1]["rejected"] == "1"
    assert [x for x in lines["cs-provisioner-libvirt"] if '"loop": "reconcile"' in x]


def test_the_status_page_in_a_browser(system: tuple[System, int, int], tmp_path: Path) -> None:
    running, base, page = system
    url = f"http://127.0.0.1:{page}/"
    code, _ = get(url + "status.json")
    assert code == 200
    request = urllib.request.Request(url, method="POST", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405  # read-only

    names = sorted(v["name"] for v in running.status()["vms"])
    dom = chromium("--dump-dom", url, profile=tmp_path / "profile").stdout
    for name in names:
        assert name in dom
    assert '<meta http-equiv="refresh" content="5">' in dom
    assert "VMMem: expected an integer" in dom  # the rejected job and why
    # The charts: the history drawn as the VMs rose from 0 to 8 (the cloud was enabled after
    # the first points).
    vms_line = re.search(r'<polyline class="series" data-label="all VMs" data-values="([^"]*)"',
                         dom)
    assert vms_line, dom[:3000]
    counts = [float(v) for v in vms_line.group(1).split(",")]
    assert counts[0] == 0 and counts[-1] == 8 and max(counts) == 8
    assert counts == sorted(counts)  # only up: nothing was retired
    idle = re.search(r'data-label="all idle" data-values="([^"]*)"', dom)
    assert idle and set(idle.group(1).split(",")) == {"8"}
    boots = re.search(r'data-label="boots" data-values="([^"]*)"', dom)
    assert boots and sum(float(v) for v in boots.group(1).split(",")) == 8
    shot = tmp_path / "status.png"
    chromium(f"--screenshot={shot}", f"--window-size={SHOT_SIZE[0]},{SHOT_SIZE[1]}",
             url + "?since=2m", profile=tmp_path / "profile")
    image = Image.open(shot).convert("RGB")
    assert image.size == SHOT_SIZE
    colors = image.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 50  # text and tables, not a blank or error page
    green = sum(n for n, c in colors if c == RUNNING_GREEN)
    assert green > 8 * 1000  # 8 running VMs' rows drawn in the running colour
    line_green = sum(n for n, c in colors if c == (0x2D, 0xA4, 0x4E))
    assert line_green > 200  # the chart's "running" line drawn

    # It refreshes itself: a browser left on it loads it again and again (every 5 s).
    metrics_url = f"http://127.0.0.1:{base}/metrics"  # the admin service's

    def loads() -> float:
        return samples(get(metrics_url)[1]).get('cs_status_page_requests_total{path="/"}', 0)

    before = loads()
    left_open = subprocess.Popen(
        [*CHROMIUM, f"--user-data-dir={tmp_path / 'open'}", "--remote-debugging-port=0", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually("a browser left on the page to load it three times",
                   lambda: loads() - before >= 3, timeout=90, interval=0.5)
    finally:
        left_open.kill()
        left_open.wait()


def test_a_busy_port_is_a_problem_in_status_not_a_dead_service(
    tmp_path: Path, fresh_nats: NatsServer,
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        config = tmp_path / "cs.toml"
        config.write_text(site_toml("busy", f'[admin]\nstatus_page = "127.0.0.1:{port}"\n'))
        env = dict(os.environ, CS_CONFIG=str(config), CS_NATS_URL=fresh_nats.url,
                   CS_METRICS_PORT=str(port))
        with (tmp_path / "admin.log").open("wb") as log:
            admin = subprocess.Popen([sys.executable, "-m", "services.admin"], env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
        try:
            system = System(tmp_path, config, fresh_nats.url)
            doc = system.wait_for("the admin's problems", lambda d: any(
                len(s["problems"]) == 2 for s in d["services"]))
            [service] = doc["services"]
            assert service["service"] == "cs-admin" and admin.poll() is None
            assert service["problems"][0].startswith(f"cannot serve /metrics on 127.0.0.1:{port}")
            assert "cannot serve the status page" in service["problems"][1]
            assert "change [admin] status_page" in service["problems"][1]
        finally:
            admin.terminate()
            admin.wait(15)


def on_screen(system: System, width: int, *args: str) -> list[str]:
    """What `cs ARGS` shows in a real terminal (tmux) `width` columns wide."""
    server = f"cs-{os.getpid()}-{width}"
    command = " ".join([sys.executable, "-m", "cli.main", *args])
    tmux = ["tmux", "-L", server, "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-s", "t", "-x", str(width), "-y", "120",
                    f"{command}; echo __done__ $?; sleep 120"], env=system.env, check=True,
                   timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", "t", "-S", "0"],
                                    capture_output=True, text=True, check=True,
                                    timeout=30).stdout
            if "__done__" in screen or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        subprocess.run([*tmux, "kill-server"], timeout=30)
    assert "__done__ 0" in screen, screen
    return screen.splitlines()


@pytest.mark.parametrize("args", [("status", "--all"), ("vm", "list")])
def test_the_tables_fit_80_columns_and_show_more_at_200(
    system: tuple[System, int, int], args: tuple[str, ...],
) -> None:
    running, _, _ = system
    names = sorted(v["name"] for v in running.status()["vms"])
    narrow = on_screen(running, 80, *args)
    assert all(len(line) <= 80 for line in narrow)
    assert not [line for line in narrow if "…" in line], "\n".join(narrow)
    for name in names:  # name, cloud and state of every VM whole, on the VM's own line
        [row] = [line for line in narrow if f" {name} " in line]
        assert f" {CLOUD} " in row and " running " in row, row
    assert "columns: -o wide)" in "\n".join(narrow)
    wide = on_screen(running, 200, *args)
    header = next(line for line in wide if " name " in line and " state " in line)
    assert {"cloud", "type", "state", "age", "startd", "reason"} <= set(
        header.replace("┃", " ").replace("│", " ").split()), header
    assert sum("cloudscheduler-worker" in line and "cs-observed-" in line
               for line in wide) == 6
    assert "-o wide" not in "\n".join(wide)
    every = "\n".join(on_screen(running, 80, *args, "-o", "wide"))  # long lines wrapped
    assert "startd" in every and "cloudscheduler-worker" in every and "…" not in every
    if args[0] == "status":
        clouds = next(line for line in narrow if line.lstrip("│┃ ").startswith(CLOUD))
        assert "running 8" in clouds


def test_cs_status_since_is_the_history_in_80_columns(system: tuple[System, int, int]) -> None:
    running, _, _ = system
    points = history(running)
    assert points and points[0]["vms"] == {CLOUD: {}} and points[-1]["vms"] == {
        CLOUD: {"running": 8}}
    screen = on_screen(running, 80, "status", "--since", "1h")
    rows = [line.split() for line in screen if re.match(r"\s*\d\d:\d\d:\d\d ", line)]
    assert 2 <= len(rows) <= 20 and all(len(line) <= 80 for line in screen)
    header = next(line.split() for line in screen if " running " in line)
    assert header == ["time", "idle", "jobs", "VMs", "running", "start", "retire", "error",
                      "boots", "fails"]
    assert rows[-1][1:5] == ["8", "0", "8", "8"]  # idle, jobs running, VMs, VMs running
    assert sum(int(r[8]) for r in rows) == 8  # every boot, in some step
    assert "step(s) of" in "\n".join(screen)
    bad = running.cs("status", "--since", "an hour", check=False)
    assert bad.returncode == 1 and "'an hour' is not a duration" in bad.stderr
    far = running.cs("status", "--since", "3d", check=False)
    assert far.returncode == 1 and "ask for 1 s to 24 h" in far.stderr


def test_the_history_outlives_a_restart_of_the_admin_service(
    system: tuple[System, int, int],
) -> None:
    running, _, _ = system
    before = history(running)
    admin = running.procs["cs-admin"]
    admin.terminate()
    assert admin.wait(15) == 0
    with (running.workdir / "cs-admin.log").open("ab") as log:
        running.procs["cs-admin"] = subprocess.Popen(
            [sys.executable, "-m", "services.admin"], stdout=log, stderr=subprocess.STDOUT,
            env=running.env)
    deadline = time.monotonic() + 30
    while not (after := history(running, check=False)) or after[-1]["at"] <= before[-1]["at"]:
        assert time.monotonic() < deadline, "no new history point after the restart"
        time.sleep(0.5)
    assert {p["at"] for p in before} <= {p["at"] for p in after}
    assert after[0]["vms"] == {CLOUD: {}}
