"""The provisioner side of the boot benchmarks: book VMs, publish their intents to a running
CloudWorker, and time until every one has left `requested`."""

from __future__ import annotations

import asyncio
import time

from bus import subjects
from bus.connection import Bus
from bus.schemas import Intent, VmRecord
from provisioning.worker import CloudWorker


async def time_boots(bus: Bus, worker: CloudWorker, vms: list[VmRecord]) -> float:
    """Seconds from publishing the boot intents of `vms` until each is booting or running."""
    cloud = worker.cloud
    for vm in vms:
        await worker.vms.create(subjects.vm_key(cloud, vm.vm_id), vm)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.consume(stop))
    await asyncio.sleep(1.0)  # the consumer is pulling
    start = time.perf_counter()
    for vm in vms:
        await bus.js_publish(subjects.intent(cloud), Intent(
            intent_id=vm.intent_id, action="boot", cloud=cloud, vm_id=vm.vm_id, spec=vm.spec,
            created_at=time.time()))
    pending = {subjects.vm_key(cloud, vm.vm_id) for vm in vms}
    while pending:
        # One cheap read per VM still waiting: the poll must not compete with the boots.
        for key in list(pending):
            entry = await worker.vms.get(key)
            if entry is not None and entry.value.state != "requested":
                pending.discard(key)
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    return elapsed
