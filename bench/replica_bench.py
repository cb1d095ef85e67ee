"""Horizontal scale of the provisioner: one cloud's boot intents shared by 1, 2 and 4
provisioner processes (one durable consumer, as replicas share it), next to a bare loop of
the same libvirt calls in the same run.

    PYTHONPATH=. python bench/replica_bench.py [--boots 2000] [--replicas 1,2,4]

Each replica is a process of its own running the provisioner loop (CloudWorker and the
libvirt driver) on libvirt's test driver, which keeps its domains inside the process: each
replica boots into a host of its own, so the driver is never the shared limit, the cores
are. For each count: the VMs are booked, the intents published, and the time until every VM
has left `requested` is taken, with the CPU the replicas spent. The provisioner's overhead per
boot is that CPU less the bare loop's CPU for the same boots. Prints a table, then every
figure as `name=value`. Nova's testbed at 1 and 2 replicas: bench/openstack_bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.boots import time_replicas, vms_of
from bench.libvirt_bench import OPTS, SITE, SPEC, WORKER, bare, host
from bus.connection import Bus
from bus.schemas import CloudRecord
from providers.libvirt.driver import LibvirtDriver
from provisioning.driver import DriverContext
from provisioning.settings import ProvisionerSettings
from provisioning.worker import CloudWorker
from siteconfig import cloud_record
from tests.natsserver import NatsServer


def record(cloud: str, uri: str, boots: int) -> CloudRecord:
    """The shared cloud."""
    return cloud_record(cloud, OPTS.model_copy(update={"uri": uri}), enabled=True,
                        max_vms=boots)


async def serve(url: str, cloud: str, uri: str, boots: int) -> None:
    """One replica: consume the cloud's intents until SIGTERM."""
    bus = await Bus.connect(url, "bench-replica")
    await bus.ensure_infra()
    driver = LibvirtDriver(record(cloud, uri, boots), DriverContext.of(SITE, WORKER))
    await driver.list()  # connected, as a running provisioner is
    worker = CloudWorker(bus, "libvirt", cloud, driver, ProvisionerSettings())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await worker.consume(stop)
    await driver.close()
    await bus.close()


def boots_with(url: str, uri: str, boots: int, replicas: int) -> tuple[float, float]:
    """Seconds for `boots` boots with `replicas` provisioner processes, and their CPU."""
    cloud = f"rep{uuid.uuid4().hex[:6]}"
    procs = [subprocess.Popen([sys.executable, "-m", "bench.replica_bench", "--serve", url,
                               cloud, uri, str(boots)], stdout=subprocess.PIPE, text=True)
             for _ in range(replicas)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        vms = vms_of(SITE, cloud, boots, SPEC)
        return asyncio.run(time_replicas(url, vms, [p.pid for p in procs]))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)


def main() -> None:
    """Run every count, print the figures."""
    if sys.argv[1:2] == ["--serve"]:
        url, cloud, uri, boots = sys.argv[2:6]
        asyncio.run(serve(url, cloud, uri, int(boots)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=2000)
    parser.add_argument("--replicas", default="1,2,4")
    args = parser.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        nats = NatsServer(Path(tmp) / "nats")
        nats.start()
        try:
            uri = host(Path(tmp))
            cpu_start = time.process_time()
            bare_s = bare(uri, args.boots)
            bare_cpu = time.process_time() - cpu_start
            runs = {n: boots_with(nats.url, uri, args.boots, n) for n in counts}
        finally:
            nats.stop()
    bare_rate = args.boots / bare_s
    print(f"{args.boots} boots on libvirt's test driver ({platform.machine()}, "
          f"{os.cpu_count()} cores):")
    print(f"  {'':22} {'s':>8} {'boots/s':>9} {'ratio':>7} {'CPU ms/boot':>12} "
          f"{'overhead ms':>12}")
    per_boot_bare = 1000 * bare_cpu / args.boots
    print(f"  {'bare libvirt loop':22} {bare_s:8.2f} {bare_rate:9.1f} {1.0:7.2f} "
          f"{per_boot_bare:12.3f} {0.0:12.3f}")
    for n, (elapsed, cpu) in runs.items():
        rate = args.boots / elapsed
        per_boot = 1000 * cpu / args.boots
        print(f"  {f'{n} replica(s)':22} {elapsed:8.2f} {rate:9.1f} {rate / bare_rate:7.2f} "
              f"{per_boot:12.3f} {per_boot - per_boot_bare:12.3f}")
    print(f"replica_boots={args.boots}")
    print(f"replica_bare_boots_per_s={bare_rate:.1f}")
    print(f"replica_bare_cpu_ms_per_boot={per_boot_bare:.3f}")
    for n, (elapsed, cpu) in runs.items():
        rate = args.boots / elapsed
        print(f"replica_{n}_boots_per_s={rate:.1f}")
        print(f"replica_{n}_ratio={rate / bare_rate:.2f}")
        print(f"replica_{n}_overhead_cpu_ms_per_boot={1000 * cpu / args.boots - per_boot_bare:.3f}")


if __name__ == "__main__":
    main()
