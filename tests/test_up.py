"""`cs up` (what `make run` runs): everything starts, a killed service comes back, Ctrl-C
stops every child, and a busy port is one clear line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.supervisor import SERVICES
from tests.demo import config, cs, free_port, wait_running

pytestmark = pytest.mark.e2e


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def test_up_runs_everything_restarts_the_dead_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    up = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up", "--config",
         str(config(tmp_path, port)), "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_running(port, 8)
        kids = children_of(up.pid)
        assert len(kids) == 1 + len(SERVICES)  # nats-server and every service
        assert sorted(p.name for p in (state / "logs").iterdir()) == sorted(
            f"{name}.log" for name in ("nats-server", *SERVICES))
        admin = [k for k in kids if "services.admin" in Path(f"/proc/{k}/cmdline").read_text()]
        os.kill(admin[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while cs("cloud", "disable", "container-cloud", port=port).returncode != 0:
            assert time.monotonic() < deadline, "cs-admin was not restarted"
            time.sleep(0.5)
        assert (state / "nats").is_dir()  # JetStream data under the state dir
        kids = children_of(up.pid)
        assert len(kids) == 1 + len(SERVICES)
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
    assert "cs-admin exited with -9; restarting" in output
    assert "cs up: stopping services" in output
    for kid in kids:
        assert not Path(f"/proc/{kid}").exists(), f"child {kid} outlived cs up"


def test_up_refuses_a_busy_port_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", "up", "--config",
             str(config(tmp_path, port)), "--state-dir", str(tmp_path / "s")],
            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr
