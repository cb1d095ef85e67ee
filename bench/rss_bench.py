"""Memory of every service with 20,000 VMs in the registry.

    PYTHONPATH=. python bench/rss_bench.py [--vms 20000] [--settle 30]

A nats-server, the five services as processes of their own, one libvirt cloud holding the
VMs (running, with demand for all of them, so nothing is retired) and a few `cs status` calls
(the admin service reads and sends the whole registry). After `--settle` seconds of their
loops the resident set (VmRSS) and its peak (VmHWM) of each service are read from /proc.
Prints a table, then every figure as `name=value`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bus import subjects
from bus.connection import Bus
from bus.schemas import CloudRecord, DemandClass, DemandSnapshot, VmRecord, VmSpec
from cli.supervisor import COMMANDS
from providers.libvirt.options import LibvirtOptions
from siteconfig import cloud_record
from tests.natsserver import NatsServer

CLOUD = "rss-lv"
CONFIG = """
site = "rss"
[nats]
url = "{url}"
[poller]
source = "replay"
queue_file = "{queue}"
interval_s = 5
[planner]
interval_s = 2
register_timeout_s = 0
[provisioner]
reconcile_interval_s = 5
vanished_grace_s = 86400   # the VMs exist only in the registry: keep them
orphan_grace_s = 86400
[[cloud]]
name = "rss-lv"
provider = "libvirt"
uri = "test:///default"
base_image = "worker.qcow2"
enabled = true
max_vms = 100000
"""


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


async def fill(url: str, vms: int) -> None:
    """The cloud record and `vms` running VMs of one class, in the registry."""
    bus = await Bus.connect(url, "bench")
    await bus.ensure_infra()
    await bus.kv(subjects.CLOUDS_BUCKET, CloudRecord).put(CLOUD, cloud_record(
        CLOUD, LibvirtOptions(uri="test:///default", base_image="worker.qcow2"), enabled=True,
        max_vms=100_000))
    kv = bus.kv(subjects.VMS_BUCKET, VmRecord)
    now = time.time()
    spec = VmSpec(vm_type="w", image="worker.qcow2", cores=1, memory_mb=512)
    for start in range(0, vms, 500):
        await asyncio.gather(*(kv.put(subjects.vm_key(CLOUD, f"cs-rss-{CLOUD}-k1-{n}"), VmRecord(
            vm_id=f"cs-rss-{CLOUD}-k1-{n}", cloud=CLOUD, intent_id=f"boot-{n}",
            class_key="k1", spec=spec, state="running", created_at=now, updated_at=now,
            running_at=now)) for n in range(start, min(vms, start + 500))))
    await bus.js_publish(subjects.demand(), DemandSnapshot(source="bench", taken_at=now, classes=(
        DemandClass(key="k1", vm_type="w", image={"": "worker.qcow2"}, idle=0,
                    running=vms),)))
    await bus.close()


def main() -> None:
    """Run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=20_000)
    parser.add_argument("--settle", type=float, default=30.0)
    args = parser.parse_args()
    figures: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        nats = NatsServer(work / "nats")
        nats.start()
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            asyncio.run(fill(nats.url, args.vms))
            (work / "queue.txt").write_text("")
            config = work / "cs.toml"
            config.write_text(CONFIG.format(url=nats.url, queue=work / "queue.txt"))
            env = dict(os.environ, CS_CONFIG=str(config))
            for name, command in COMMANDS.items():
                if name == "cs-poller":
                    continue  # the benchmark's demand stands in for the queue
                procs[name] = subprocess.Popen([sys.executable, *command], env=env,
                                               stdout=(work / f"{name}.log").open("wb"),
                                               stderr=subprocess.STDOUT)
            procs["cs-poller"] = subprocess.Popen(
                [sys.executable, *COMMANDS["cs-poller"]], env=env,
                stdout=(work / "cs-poller.log").open("wb"), stderr=subprocess.STDOUT)
            deadline = time.monotonic() + args.settle
            statuses = 0
            while time.monotonic() < deadline:
                done = subprocess.run([sys.executable, "-m", "cli.main", "status",
                                       "--json"], env=dict(env, CS_NATS_URL=nats.url),
                                      capture_output=True, timeout=120)
                statuses += done.returncode == 0
                time.sleep(2)
            assert statuses, "cs status never answered"
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} died: see its log"
                figures[name] = memory_mb(proc.pid)
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                proc.wait(30)
            nats.stop()
    print(f"memory with {args.vms:,} VMs in the registry ({platform.machine()}, Python "
          f"{platform.python_version()}, after {args.settle:.0f} s):")
    print(f"  {'service':28} {'RSS MB':>8} {'peak MB':>8}")
    for name, (rss, peak) in figures.items():
        print(f"  {name:28} {rss:8.1f} {peak:8.1f}")
    print(f"  (goal: under 80 MB each; {statuses} cs status answered meanwhile)")
    for name, (rss, peak) in figures.items():
        key = name.removeprefix("cs-").replace("-", "_")
        print(f"rss_mb_{key}={rss:.1f}")
        print(f"rss_peak_mb_{key}={peak:.1f}")


if __name__ == "__main__":
    main()
