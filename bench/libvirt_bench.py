"""Boot throughput on libvirt's test driver: N boots through our provisioner (intents on NATS,
CloudWorker, LibvirtDriver) next to a bare loop making the same libvirt calls (look the name
up, find pool and base image, create overlay and seed volumes, upload the seed, define and
start the domain), in one run.

    PYTHONPATH=. python bench/libvirt_bench.py [--boots 200] [--rounds 3]

The host is examples/demo-host.xml with a 16 MiB base image (the test driver takes each
overlay's full size from its 100 GiB pool), kept by the test driver in this process. Both sides make
their libvirt calls from one thread, as the driver does per cloud. Prints a table, then every
figure as `name=value`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

import libvirt

from bench.boots import time_provisioner, vms_of
from bus.schemas import VmSpec
from providers.libvirt import seed
from providers.libvirt.driver import (
    OVERLAY_SUFFIX,
    SEED_SUFFIX,
    LibvirtDriver,
    domain_xml,
    volume_xml,
)
from providers.libvirt.options import LibvirtOptions
from provisioning.driver import DriverContext
from provisioning.userdata import WorkerSettings, render
from siteconfig import cloud_record
from tests.natsserver import NatsServer

ROOT = Path(__file__).resolve().parents[1]
SITE = "bench"
OPTS = LibvirtOptions(uri="test:///default", storage_pool="default", base_image="worker.qcow2",
                      domain_type="test")
WORKER = WorkerSettings("cm", None)


SPEC = VmSpec(vm_type="w", cores=1, memory_mb=64)
"""Every benchmark VM's size."""


def host(folder: Path) -> str:
    """A test-driver URI for the demo host with a small base image."""
    text = (ROOT / "examples" / "demo-host.xml").read_text()
    text = text.replace("<capacity unit='GiB'>4</capacity>", "<capacity unit='MiB'>16</capacity>")
    path = folder / "bench-host.xml"
    path.write_text(text)
    return f"test://{path}"


def bare(uri: str, boots: int) -> float:
    """Seconds for `boots` boots by a plain loop of the driver's libvirt calls."""
    conn = libvirt.open(uri)
    vms = vms_of(SITE, "bare", boots, SPEC)
    start = time.perf_counter()
    for vm in vms:
        with contextlib.suppress(libvirt.libvirtError):  # not there yet: the usual case
            conn.lookupByName(vm.vm_id)
        pool = conn.storagePoolLookupByName(OPTS.storage_pool)
        base = pool.storageVolLookupByName(OPTS.base_image)
        path, size = base.path(), base.info()[1]
        user_data = render("", vm, SITE, WORKER)
        image = seed.build(vm.vm_id, user_data)
        overlay, seed_name = vm.vm_id + OVERLAY_SUFFIX, vm.vm_id + SEED_SUFFIX
        pool.createXML(volume_xml(overlay, size, "qcow2", (path, "qcow2")), 0)
        pool.createXML(volume_xml(seed_name, len(image), "raw"), 0)
        # (no upload: the test driver has no storage I/O; the driver skips it there too)
        dom = conn.defineXML(domain_xml(vm, SITE, OPTS, overlay, seed_name))
        dom.create()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


async def ours(url: str, uri: str, boots: int) -> float:
    """Seconds from publishing `boots` intents until every VM has left `requested`."""
    cloud = f"bench{uuid.uuid4().hex[:6]}"
    record = cloud_record(cloud, OPTS.model_copy(update={"uri": uri}), enabled=True,
                          max_vms=boots)
    driver = LibvirtDriver(record, DriverContext.of(SITE, WORKER))
    return await time_provisioner(url, "libvirt", driver, vms_of(SITE, cloud, boots, SPEC))


def main() -> None:
    """Run both, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boots", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        nats = NatsServer(Path(tmp))
        nats.start()
        try:
            bare_runs, ours_runs = [], []
            for _ in range(args.rounds):
                uri = host(Path(tmp))
                bare_runs.append(bare(uri, args.boots))
                ours_runs.append(asyncio.run(ours(nats.url, uri, args.boots)))
        finally:
            nats.stop()
    bare_s, ours_s = min(bare_runs), min(ours_runs)
    bare_rate, ours_rate = args.boots / bare_s, args.boots / ours_s
    print(f"libvirt test-driver boots ({platform.machine()}, {os.cpu_count()} cores): "
          f"{args.boots} boots, best of {args.rounds} rounds")
    print(f"  {'bare libvirt loop':28} {bare_s:7.2f} s  {bare_rate:7.1f} boots/s")
    print(f"  {'cloudscheduler provisioner':28} {ours_s:7.2f} s  {ours_rate:7.1f} boots/s")
    print(f"  ratio {ours_rate / bare_rate:.2f} (goal: at least 0.9)")
    print(f"libvirt_boots={args.boots}")
    print(f"libvirt_bare_boots_per_s={bare_rate:.1f}")
    print(f"libvirt_provisioner_boots_per_s={ours_rate:.1f}")
    print(f"libvirt_provisioner_ratio={ours_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()
