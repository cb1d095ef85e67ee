"""Two planners on one NATS, racing on every cycle: every VM is booked exactly once."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.natsserver import NatsServer
from tests.system import System
from tests.test_e2e import ROOT, config_text, more_jobs, running
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


def booked(log: Path) -> int:
    """VMs a planner says it booked (its canonical loop line counts them)."""
    return sum(int(n) for n in re.findall(r"loop=plan .* booked=(\d+)", log.read_text()))


def plans(log: Path) -> int:
    """Cycles a planner has logged."""
    return log.read_text().count("loop=plan")


def test_two_planners_never_double_book(tmp_path: Path, fresh_nats: NatsServer) -> None:
    queue = tmp_path / "queue.txt"
    shutil.copy(ROOT / "examples" / "demo-queue.txt", queue)
    config = tmp_path / "cs.toml"
    # A fast planner cycle makes the two replicas race on nearly every cycle.
    text = config_text(fresh_nats.url)
    assert "[planner]\ninterval_s = 0.5" in text
    config.write_text(text.replace("[planner]\ninterval_s = 0.5", "[planner]\ninterval_s = 0.1"))
    system = System(tmp_path, config, fresh_nats.url)
    system.start()
    second_log = tmp_path / "cs-planner-2.log"
    second = subprocess.Popen([sys.executable, "-m", "services.planner"], env=system.env,
                              stdout=second_log.open("ab"), stderr=subprocess.STDOUT)
    try:
        system.wait_for("8 running VMs", lambda d: len(running(d)) == 8)
        more_jobs(queue, 25)  # a burst on top of the 8: more than the cloud's max_vms of 20
        system.wait_for("20 running VMs", lambda d: len(running(d)) == 20, timeout=90)
        # Both planners run many more cycles over the same state (counted in their logs).
        cycles = [plans(system.workdir / "cs-planner.log"), plans(second_log)]
        eventually("ten more cycles of each planner", lambda: all(
            plans(log) >= n + 10 for log, n in zip(
                (system.workdir / "cs-planner.log", second_log), cycles, strict=True)),
            timeout=60, interval=0.2)
        doc = system.status()
        names = sorted(vm["name"] for vm in doc["vms"])
        assert len(names) == len(set(names)) == 20
        listing = json.loads(system.cs("cloud", "show", "container-cloud", "--json").stdout)
        assert sorted(i["name"] for i in listing["instances"]) == names
        # Exactly 20 bookings between the two planners: the registry's create-if-absent let
        # one of them win each race, and nothing was booked twice or booked again.
        first, other = booked(tmp_path / "cs-planner.log"), booked(second_log)
        assert first + other == 20, (first, other)
        assert plans(second_log) >= 10  # it really raced
    finally:
        second.terminate()
        second.wait(15)
        system.stop()
