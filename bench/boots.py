"""The provisioner side of the boot benchmarks: book VMs, publish their intents to a running
CloudWorker, and time until every one has left `requested`."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from bus import subjects
from bus.connection import Bus
from bus.schemas import Intent, VmRecord, VmSpec
from provisioning.driver import CloudDriver
from provisioning.settings import ProvisionerSettings
from provisioning.worker import CloudWorker


def vms_of(site: str, cloud: str, boots: int, spec: VmSpec) -> list[VmRecord]:
    """`boots` VMs of `cloud`, as the planner books them (`requested`), all of `spec`."""
    now = time.time()
    return [VmRecord(vm_id=f"cs-{site}-{cloud}-w-{n}", cloud=cloud, intent_id=f"boot-{n}",
                     class_key="k", spec=spec, state="requested", created_at=now,
                     updated_at=now) for n in range(boots)]


async def book(bus: Bus, vms: list[VmRecord]) -> None:
    """Record `vms` in the registry (`requested`), as the planner does before their intents."""
    kv = bus.kv(subjects.VMS_BUCKET, VmRecord)
    for first in range(0, len(vms), 500):
        await asyncio.gather(*(kv.create(subjects.vm_key(vm.cloud, vm.vm_id), vm)
                               for vm in vms[first:first + 500]))


async def publish_and_wait(bus: Bus, vms: list[VmRecord]) -> float:
    """Seconds from publishing the boot intents of booked `vms` until each has left
    `requested`."""
    kv = bus.kv(subjects.VMS_BUCKET, VmRecord)
    start = time.perf_counter()
    for vm in vms:
        await bus.js_publish(subjects.intent(vm.cloud), Intent(
            intent_id=vm.intent_id, action="boot", cloud=vm.cloud, vm_id=vm.vm_id,
            spec=vm.spec, created_at=time.time()))
    pending = {subjects.vm_key(vm.cloud, vm.vm_id) for vm in vms}
    while pending:
        # One cheap read per VM still waiting: the poll must not compete with the boots.
        for key in list(pending):
            entry = await kv.get(key)
            if entry is not None and entry.value.state != "requested":
                pending.discard(key)
        await asyncio.sleep(0.05)
    return time.perf_counter() - start


async def time_boots(bus: Bus, worker: CloudWorker, vms: list[VmRecord]) -> float:
    """Seconds from publishing the boot intents of `vms` until each is booting or running,
    booted by `worker` in this process."""
    await book(bus, vms)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.consume(stop))
    await asyncio.sleep(1.0)  # the consumer is pulling
    elapsed = await publish_and_wait(bus, vms)
    stop.set()
    await task
    return elapsed


async def time_provisioner(url: str, provider: str, driver: CloudDriver,
                           vms: list[VmRecord]) -> float:
    """Seconds for `vms` (all of one cloud) booted by a CloudWorker of `driver` in this
    process, the driver connected first as a running provisioner's is; closes the driver."""
    bus = await Bus.connect(url, "bench")
    try:
        await bus.ensure_infra()
        await driver.list()
        worker = CloudWorker(bus, provider, vms[0].cloud, driver, ProvisionerSettings())
        return await time_boots(bus, worker, vms)
    finally:
        await driver.close()
        await bus.close()


def cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


TICKS = os.sysconf("SC_CLK_TCK")


async def time_replicas(url: str, vms: list[VmRecord], pids: list[int]) -> tuple[float, float]:
    """Book `vms`, publish their intents to the provisioner processes `pids` (already
    consuming); seconds until every one has left `requested`, and the CPU seconds those
    processes spent meanwhile."""
    bus = await Bus.connect(url, "bench")
    await bus.ensure_infra()
    try:
        await book(bus, vms)
        await asyncio.sleep(1.0)  # every consumer is pulling
        cpu_before = sum(cpu_s(pid) for pid in pids)
        elapsed = await publish_and_wait(bus, vms)
        return elapsed, sum(cpu_s(pid) for pid in pids) - cpu_before
    finally:
        await bus.close()
