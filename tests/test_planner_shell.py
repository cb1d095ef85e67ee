"""The planner's shell on a real bus: a failed VM is cleared, counted, and backs its cloud
off, visibly; a later success clears the backoff; changes between reads are planned from memory."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

from bus import subjects
from bus.connection import Bus
from bus.schemas import (
    CloudHealth,
    CloudRecord,
    DemandClass,
    DemandSnapshot,
    PlanReport,
    VmRecord,
    VmSpec,
)
from services.planner.decisions import Policy
from services.planner.settings import PlannerSettings
from services.planner.shell import PlannerShell


async def test_a_failed_boot_backs_the_cloud_off_until_a_vm_comes_up(bus: Bus) -> None:
    cloud = f"h{uuid.uuid4().hex[:6]}"
    clouds = bus.kv(subjects.CLOUDS_BUCKET, CloudRecord)
    vms = bus.kv(subjects.VMS_BUCKET, VmRecord)
    health = bus.kv(subjects.HEALTH_BUCKET, CloudHealth)
    await clouds.create(cloud, CloudRecord(name=cloud, provider="libvirt", enabled=True,
                                           max_vms=5, uri="test:///default"))
    cls = DemandClass(key=f"k{cloud}", vm_type="w", idle=1, users={"a": 1},
                      target_clouds=(cloud,))
    await bus.js_publish(subjects.demand(), DemandSnapshot(source="t", taken_at=time.time(),
                                                           classes=(cls,)))
    now = time.time()
    failed = VmRecord(vm_id=f"cs-t-{cloud}-x-0", cloud=cloud, intent_id="boot-1",
                      class_key=cls.key, spec=VmSpec(vm_type="w"), state="error",
                      reason="permanent: image not found", created_at=now - 200,
                      updated_at=now - 200)
    await vms.create(subjects.vm_key(cloud, failed.vm_id), failed)
    shell = PlannerShell(bus, PlannerSettings(
        nats_url="", site="t", interval_s=1,
        policy=Policy(error_kill_after_s=60, backoff_base_s=300, register_timeout_s=0)))

    await shell.step(afresh=True)  # kills the failed VM and counts the failure
    entry = await vms.get(subjects.vm_key(cloud, failed.vm_id))
    assert entry is not None and entry.value.state == "deleting"
    h = await health.get(cloud)
    assert h is not None and h.value.failures == 1
    assert re.fullmatch(r"in error for 20\ds: permanent: image not found", h.value.reason)
    await vms.delete(subjects.vm_key(cloud, failed.vm_id))  # as the provisioner would

    await shell.step(afresh=True)  # the class still wants a VM, but the cloud is backing off
    report = await bus.last(subjects.plan_report(), PlanReport)
    assert report is not None
    assert any(f"{cloud}: backing off for" in d.reason for d in report.value.decisions)
    assert [k for k in (await vms.items()) if k.startswith(f"{cloud}.")] == []

    up = failed.model_copy(update={"vm_id": f"cs-t-{cloud}-x-9", "state": "running",
                                   "updated_at": time.time(), "reason": ""})
    await vms.create(subjects.vm_key(cloud, up.vm_id), up)
    await shell.step(afresh=True)  # a VM came up since: the backoff is lifted
    h = await health.get(cloud)
    assert h is not None and (h.value.failures, h.value.backoff_until) == (0, 0.0)


async def test_a_change_between_reads_is_planned_from_memory(bus: Bus) -> None:
    # An interval of an hour: after the first cycle nothing is read from the bus again; new
    # demand and a disabled cloud still reach the plan, through the watches.
    cloud = f"m{uuid.uuid4().hex[:6]}"
    clouds = bus.kv(subjects.CLOUDS_BUCKET, CloudRecord)
    vms = bus.kv(subjects.VMS_BUCKET, VmRecord)
    record = CloudRecord(name=cloud, provider="libvirt", enabled=True, max_vms=5,
                         uri="test:///default")
    await clouds.create(cloud, record)
    shell = PlannerShell(bus, PlannerSettings(
        nats_url="", site="t", interval_s=3600, policy=Policy(register_timeout_s=0)))
    await shell.start()

    def demand(idle: int) -> DemandSnapshot:
        return DemandSnapshot(source="t", taken_at=time.time(), classes=(DemandClass(
            key=f"k{cloud}", vm_type="w", idle=idle, users={"a": idle},
            target_clouds=(cloud,)),))

    async def ours() -> list[str]:
        return sorted(k for k in await vms.items() if k.startswith(f"{cloud}."))

    async def woken() -> None:
        await asyncio.wait_for(shell.wake.wait(), 10)
        shell.wake.clear()

    try:
        await shell.step()  # the one read
        await bus.js_publish(subjects.demand(), demand(2))
        await woken()
        await shell.step()
        assert len(await ours()) == 2
        await shell.step()  # its own bookings are known at once: none twice
        assert len(await ours()) == 2
        await clouds.put(cloud, record.model_copy(update={"enabled": False}))
        await woken()
        await bus.js_publish(subjects.demand(), demand(4))
        await woken()
        await shell.step()
        assert len(await ours()) == 2
        report = await bus.last(subjects.plan_report(), PlanReport)
        assert report is not None
        assert any(f"{cloud}: cloud disabled" in d.reason
                   for d in report.value.decisions), report.value.decisions
    finally:
        await shell.close()
        for key in await ours():
            await vms.delete(key)
        await clouds.delete(cloud)
