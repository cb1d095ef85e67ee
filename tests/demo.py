"""The demo site (examples/demo.toml) on a port of the test's own, and `cs` against it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def config(tmp_path: Path, port: int) -> Path:
    """examples/demo.toml with NATS on `port`, fast polling, its test host and a copy of its
    queue (to add jobs to) beside it."""
    text = (ROOT / "examples" / "demo.toml").read_text()
    text = text.replace("nats://127.0.0.1:4222", f"nats://127.0.0.1:{port}")
    shutil.copy(ROOT / "examples" / "demo-queue.txt", tmp_path)
    text = text.replace("interval_s = 5", "interval_s = 0.5")
    path = tmp_path / "demo.toml"
    path.write_text(text)
    shutil.copy(ROOT / "examples" / "demo-host.xml", tmp_path)  # the test host, named relatively
    return path


def cs(*args: str, port: int) -> subprocess.CompletedProcess[str]:
    """Run the `cs` CLI against the NATS on `port`."""
    env = dict(os.environ, CS_NATS_URL=f"nats://127.0.0.1:{port}")
    return subprocess.run([sys.executable, "-m", "cli.main", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def wait_running(port: int, want: int, timeout: float = 60) -> dict[str, object]:
    """`cs status --json` once exactly `want` VMs are running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = cs("status", "--json", port=port)
        if result.returncode == 0:
            doc: dict[str, object] = json.loads(result.stdout)
            vms = doc["vms"]
            assert isinstance(vms, list)
            if sum(vm["state"] == "running" for vm in vms) == want:
                return doc
        time.sleep(0.5)
    raise AssertionError(f"not {want} running VMs within {timeout}s")


def site_toml(site: str, *tables: str, provisioner: str = "") -> str:
    """A site config replaying `queue.txt` (beside it) onto one libvirt test cloud,
    `container-cloud` on the demo host, with fast loops; `tables` are appended as they are
    (more tables or [[cloud]]s), `provisioner` lines go into [provisioner] (a TOML table
    cannot be continued further down)."""
    return "\n".join([f"""site = "{site}"
[poller]
source = "replay"
queue_file = "queue.txt"
interval_s = 0.5
[planner]
interval_s = 0.5
[provisioner]
reconcile_interval_s = 1
{provisioner}
[[cloud]]
name = "container-cloud"
provider = "libvirt"
uri = "test://{ROOT / 'examples' / 'demo-host.xml'}"
base_image = "worker.qcow2"
enabled = true
max_vms = 20
""", *tables])
