"""CloudWorker (the provisioner loop) on real NATS and libvirt's test driver."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from bus import codec, subjects
from bus.connection import Bus
from bus.mirror import KvMirror
from bus.schemas import CloudCapacity, Intent, VmEvent, VmRecord
from provisioning.contract import make_vm
from provisioning.settings import ProvisionerSettings
from provisioning.worker import CloudWorker
from tests.applied import settle
from tests.libvirt_host import define_stopped, host_driver, remove_domain
from tests.waiting import eventually_async

SITE = "prov-test"


@pytest.fixture(params=["read", "mirror"])
async def worker(bus: Bus, request: pytest.FixtureRequest) -> AsyncIterator[CloudWorker]:
    """A worker that reads its cloud's VMs from the server, or from a mirror of the registry
    as the provisioner service gives it (each write made just before a reconcile must be in
    what it reads either way: a VM booked a moment ago is not an orphan)."""
    cloud = f"w{uuid.uuid4().hex[:6]}"
    driver = host_driver(cloud, SITE)
    registry = None
    if request.param == "mirror":
        registry = KvMirror(bus.kv(subjects.VMS_BUCKET, VmRecord), grouped=True)
        await registry.load()
    yield CloudWorker(bus, "libvirt", cloud, driver,
                      ProvisionerSettings(orphan_grace_s=0.0, vanished_grace_s=0.0),
                      registry=registry)
    await driver.close()
    if registry is not None:
        await registry.close()


async def _run_until(worker: CloudWorker, done: asyncio.Event, timeout: float = 10) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.consume(stop))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def _events(bus: Bus, cloud: str, want: int) -> tuple[list[VmEvent], asyncio.Event,
                                                           asyncio.Task[None]]:
    got: list[VmEvent] = []
    done = asyncio.Event()
    subscribed = asyncio.Event()

    async def collect() -> None:
        async for msg in bus.tail(f"cs.vm.{cloud}.>", subscribed):
            got.append(codec.decode(msg.data, msg.headers, VmEvent))
            if len(got) >= want:
                done.set()

    task = asyncio.create_task(collect())
    await asyncio.wait_for(subscribed.wait(), 10)
    return got, done, task


async def _book(bus: Bus, vm: VmRecord) -> None:
    assert await bus.kv(subjects.VMS_BUCKET, VmRecord).create(
        subjects.vm_key(vm.cloud, vm.vm_id), vm) is not None


def _intent(vm: VmRecord, action: str = "boot", intent_id: str = "") -> Intent:
    return Intent(intent_id=intent_id or vm.intent_id, action=action,  # type: ignore[arg-type]
                  cloud=vm.cloud, vm_id=vm.vm_id, spec=vm.spec, created_at=time.time())


async def test_boot_then_kill(bus: Bus, worker: CloudWorker) -> None:
    vm = make_vm(worker.cloud, SITE)
    await _book(bus, vm)
    events, done, task = await _events(bus, worker.cloud, 2)
    await bus.js_publish(subjects.intent(worker.cloud), _intent(vm), trace="tr-b",
                         msg_id=vm.intent_id)
    await _run_until(worker, done)
    assert [(e.state, e.vm_id) for e in events] == [("booting", vm.vm_id), ("running", vm.vm_id)]
    entry = await worker.vms.get(subjects.vm_key(worker.cloud, vm.vm_id))
    assert entry is not None and entry.value.state == "running"
    assert vm.vm_id in {i.vm_id for i in await worker.driver.list()}
    task.cancel()

    events, done, task = await _events(bus, worker.cloud, 1)
    # The planner marks the VM deleting under the kill's intent id, then sends the kill.
    entry = await worker.vms.get(subjects.vm_key(worker.cloud, vm.vm_id))
    assert entry is not None
    await worker.vms.update(subjects.vm_key(worker.cloud, vm.vm_id), entry.value.model_copy(
        update={"state": "deleting", "intent_id": "kill-1"}), entry.revision)
    await bus.js_publish(subjects.intent(worker.cloud), _intent(vm, "kill", "kill-1"))
    await _run_until(worker, done)
    assert [e.state for e in events] == ["gone"]
    assert await worker.vms.get(subjects.vm_key(worker.cloud, vm.vm_id)) is None
    assert await worker.driver.state(vm.vm_id) is None
    task.cancel()


async def test_redelivered_boot_makes_one_vm(bus: Bus, worker: CloudWorker) -> None:
    vm = make_vm(worker.cloud, SITE)
    await _book(bus, vm)
    for n in range(3):  # at-least-once delivery: the same intent three times
        await bus.js_publish(subjects.intent(worker.cloud), _intent(vm),
                             msg_id=f"dup-{n}-{vm.vm_id}")
    settled = await settle(worker, 3)
    assert [(d.value.intent_id, d.outcome) for d in settled] == [(vm.intent_id, "ack")] * 3
    assert [i.vm_id for i in await worker.driver.list()].count(vm.vm_id) == 1
    entry = await worker.vms.get(subjects.vm_key(worker.cloud, vm.vm_id))
    assert entry is not None and entry.value.state == "running"
    await worker.driver.delete(vm.vm_id)


async def test_an_old_kill_spares_the_vm_booked_again_under_its_name(
    bus: Bus, worker: CloudWorker
) -> None:
    vm = make_vm(worker.cloud, SITE).model_copy(update={"state": "running"})
    await _book(bus, vm)
    await worker.driver.create(vm)
    await bus.js_publish(subjects.intent(worker.cloud), _intent(vm, "kill", "kill-old"))
    [settled] = await settle(worker, 1)
    assert settled.outcome == "ack"  # done with: a kill of an older booking
    assert await worker.driver.state(vm.vm_id) is not None
    assert await worker.vms.get(subjects.vm_key(worker.cloud, vm.vm_id)) is not None
    await worker.driver.delete(vm.vm_id)


async def test_stale_intent_boots_nothing(bus: Bus, worker: CloudWorker) -> None:
    vm = make_vm(worker.cloud, SITE)
    await _book(bus, vm)
    await bus.js_publish(subjects.intent(worker.cloud), _intent(vm, intent_id="boot-older"))
    [settled] = await settle(worker, 1)
    assert settled.outcome == "ack"  # done with: the record says another boot
    assert await worker.driver.state(vm.vm_id) is None
    entry = await worker.vms.get(subjects.vm_key(worker.cloud, vm.vm_id))
    assert entry is not None and entry.value.state == "requested"


async def test_permanent_failure_is_recorded_with_its_reason(
    bus: Bus, worker: CloudWorker
) -> None:
    vm = make_vm(worker.cloud, SITE)
    vm = vm.model_copy(update={"spec": vm.spec.model_copy(update={"memory_mb": 0})})
    await _book(bus, vm)
    _, done, task = await _events(bus, worker.cloud, 2)
    await bus.js_publish(subjects.intent(worker.cloud), _intent(vm))
    await _run_until(worker, done)
    entry = await worker.vms.get(subjects.vm_key(worker.cloud, vm.vm_id))
    assert entry is not None and entry.value.state == "error"
    assert entry.value.reason.startswith("permanent: create ")
    task.cancel()


async def test_reconcile_deletes_orphans_and_marks_vanished(
    bus: Bus, worker: CloudWorker
) -> None:
    orphan = make_vm(worker.cloud, SITE)
    await worker.driver.create(orphan)  # on the cloud, not in the registry
    vanished = make_vm(worker.cloud, SITE).model_copy(update={"state": "running"})
    await _book(bus, vanished)  # in the registry, not on the cloud
    await worker.reconcile()
    assert await worker.driver.state(orphan.vm_id) is None
    assert await worker.vms.get(subjects.vm_key(worker.cloud, vanished.vm_id)) is None


async def test_reconcile_waits_out_the_orphan_grace(bus: Bus, worker: CloudWorker) -> None:
    worker.settings = ProvisionerSettings(orphan_grace_s=3600.0)
    orphan = make_vm(worker.cloud, SITE)
    await worker.driver.create(orphan)
    await worker.reconcile()
    assert await worker.driver.state(orphan.vm_id) is not None
    with contextlib.suppress(Exception):
        await worker.driver.delete(orphan.vm_id)


async def test_reconcile_reports_capacity_and_fails_stopped_instances(
    bus: Bus, worker: CloudWorker
) -> None:
    vm = make_vm(worker.cloud, SITE).model_copy(update={"state": "running"})
    await _book(bus, vm)
    await worker.driver.create(vm)
    remove_domain(vm.vm_id)
    define_stopped(vm, SITE)  # our tag, shut off: the guest powered itself off
    await worker.reconcile()
    entry = await worker.vms.get(subjects.vm_key(worker.cloud, vm.vm_id))
    assert entry is not None and entry.value.state == "error"
    assert "stopped on the cloud" in entry.value.reason
    cap = await bus.kv(subjects.CAPACITY_BUCKET, CloudCapacity).get(worker.cloud)
    assert cap is not None and cap.value.max_cores > 0
    assert cap.value.source.startswith("libvirt host")
    await worker.driver.delete(vm.vm_id)


async def test_a_lifecycle_event_triggers_a_reconcile_at_once(
    bus: Bus, worker: CloudWorker
) -> None:
    worker.settings = ProvisionerSettings(reconcile_interval_s=3600.0, orphan_grace_s=0.0,
                                          vanished_grace_s=0.0)
    stop = asyncio.Event()
    capacities = bus.kv(subjects.CAPACITY_BUCKET, CloudCapacity)
    task = asyncio.create_task(worker.run_reconcile(stop))
    # The first reconcile has run (it reports the cloud's capacity last); the next is an
    # hour away, so only the create's event can make the next one.
    await eventually_async("the first reconcile", lambda: capacities.get(worker.cloud),
                           timeout=10)
    orphan = make_vm(worker.cloud, SITE)
    await worker.driver.create(orphan)  # the create's lifecycle event wakes the loop
    deadline = time.monotonic() + 10
    while await worker.driver.state(orphan.vm_id) is not None:
        assert time.monotonic() < deadline, "the event did not wake reconcile"
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_batch_of_intents_for_many_vms_is_applied_together(
    bus: Bus, worker: CloudWorker
) -> None:
    vms = [make_vm(worker.cloud, SITE) for _ in range(6)]
    for vm in vms:
        await _book(bus, vm)
    events, done, task = await _events(bus, worker.cloud, 12)  # booting + running each
    for vm in vms:
        await bus.js_publish(subjects.intent(worker.cloud), _intent(vm))
    await _run_until(worker, done)
    task.cancel()
    for vm in vms:
        entry = await worker.vms.get(subjects.vm_key(worker.cloud, vm.vm_id))
        assert entry is not None and entry.value.state == "running"
        # One VM's events stay in order whatever the others do.
        assert [e.state for e in events if e.vm_id == vm.vm_id] == ["booting", "running"]
        await worker.driver.delete(vm.vm_id)
