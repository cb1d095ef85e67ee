"""The demo site as an operator watches it: metrics ports, JSON logs, the status page and a
history point every 2 s (a chart shows every point for 8 minutes: 240 points, long enough
for the tests); its cloud disabled until the history has seen it empty, then enabled, so the
charts show the VMs rising from 0 to 8. Used by tests/test_observability.py, and run as a
script it regenerates docs/status-page.png:

    PYTHONPATH=. .venv/bin/python -m tests.observed [docs/status-page.png]
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runtime.observe import PORT_OFFSETS
from tests.demo import ROOT, free_port, site_toml
from tests.natsserver import NatsServer
from tests.system import System
from tests.waiting import eventually

CLOUD = "container-cloud"
TABLES = """[metrics]
base_port = {base}
[logging]
format = "json"
[admin]
status_page = "127.0.0.1:{page}"
history_interval_s = 2
"""
CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run"]
SHOT_SIZE = (1280, 1700)


def free_block(size: int) -> int:
    """The first of `size` consecutive ports nothing listens on."""
    for _ in range(50):
        base = free_port()
        if base + size > 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + size):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError("no block of free ports")


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value of every sample in a /metrics page."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a profile of its own."""
    return subprocess.run([*CHROMIUM, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def history(system: System, since: str = "1h", check: bool = True
            ) -> list[dict[str, Any]]:
    """The history's points, as `cs status --since --json` gives them (none while the admin
    service does not answer yet, unless `check`)."""
    result = system.cs("status", "--since", since, "--rows", "1000", "--json", check=check)
    if result.returncode != 0:
        return []
    points: list[dict[str, Any]] = json.loads(result.stdout)["points"]
    return points


@contextmanager
def observed(tmp: Path) -> Iterator[tuple[System, int, int]]:
    """The running site, its metrics base port and its status page's port."""
    nats = NatsServer(tmp / "nats")
    nats.start()
    shutil.copy(ROOT / "examples" / "demo-queue.txt", tmp / "queue.txt")
    base, page = free_block(len(PORT_OFFSETS)), free_port()
    config = tmp / "cs.toml"
    config.write_text(site_toml("observed", TABLES.format(base=base, page=page)).replace(
        "enabled = true", "enabled = false"))
    running = System(tmp, config, nats.url)
    running.start()
    try:
        deadline = time.monotonic() + 60
        while len(history(running, check=False)) < 3:
            assert time.monotonic() < deadline, "no history points within 60 s"
            time.sleep(0.5)
        running.cs("cloud", "enable", CLOUD)
        running.wait_for("8 running VMs", lambda d: sum(
            v["state"] == "running" for v in d["vms"]) == 8)
        eventually("two history points with the 8 VMs running", lambda: [
            p["vms"] for p in history(running)[-2:]] == [{CLOUD: {"running": 8}}] * 2,
            timeout=60, interval=0.5)
        yield running, base, page
    finally:
        try:
            running.stop()
        finally:
            nats.stop()


def main(argv: list[str]) -> int:
    """Regenerate the status page's screenshot."""
    out = Path(argv[0] if argv else ROOT / "docs" / "status-page.png").resolve()
    with tempfile.TemporaryDirectory() as tmp, observed(Path(tmp)) as (_, _, page):
        chromium(f"--screenshot={out}", f"--window-size={SHOT_SIZE[0]},{SHOT_SIZE[1]}",
                 f"http://127.0.0.1:{page}/?since=2m", profile=Path(tmp) / "profile")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
