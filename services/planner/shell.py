"""The planner's shell: read state, run `plan()`, book in the registry, then send intents.

Order matters for crash safety: a VM is recorded (create-if-absent) before its intent leaves,
so a crash in between leaves a `requested` record that the next cycle resends; never an
intent for a VM nobody recorded.

The state is held in memory (`bus.mirror`), kept by watches and read afresh only every
`bus.mirror.RELOAD_S`: each cycle first waits until each mirror holds every write made before
the cycle began (`KvMirror.current`: one round trip a bucket), so a cycle sees what a fresh
read would, and a demand change's intents leave after that and the booking, not after a
whole read of the registry (seconds at 100,000 VMs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter
from typing import get_args

from bus import subjects
from bus.connection import Bus, Traced
from bus.kv import Versioned
from bus.mirror import CATCH_UP_S, RELOAD_S, KvMirror, LastMessage
from bus.schemas import (
    CloudCapacity,
    CloudHealth,
    CloudRecord,
    DemandSnapshot,
    Intent,
    PlanDecision,
    PlanReport,
    PoolSnapshot,
    VmRecord,
    VmState,
)
from registry import writes
from registry.compact import Compactor
from runtime import logs
from services.planner.core import plan
from services.planner.decisions import Kill
from services.planner.health import after_failure
from services.planner.settings import PlannerSettings

log = logging.getLogger("cs-planner")


class PlannerShell:
    """One planner replica."""

    def __init__(self, bus: Bus, settings: PlannerSettings) -> None:
        self.bus = bus
        self.settings = settings
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self.clouds_kv = bus.kv(subjects.CLOUDS_BUCKET, CloudRecord)
        self.vms_kv = bus.kv(subjects.VMS_BUCKET, VmRecord)
        self.health_kv = bus.kv(subjects.HEALTH_BUCKET, CloudHealth)
        self.capacity_kv = bus.kv(subjects.CAPACITY_BUCKET, CloudCapacity)
        self.wake = asyncio.Event()
        """Set by a new demand snapshot or a cloud's change (enable, disable, reload): the
        next cycle runs at once."""
        self._demand = LastMessage(bus, subjects.demand(), DemandSnapshot, self.wake)
        self._pool = LastMessage(bus, subjects.pool(), PoolSnapshot)
        self.clouds_mirror = KvMirror(self.clouds_kv, self.wake, compact=Compactor())
        self.vms_mirror = KvMirror(self.vms_kv, compact=Compactor())
        self.health_mirror = KvMirror(self.health_kv, compact=Compactor())
        self.capacity_mirror = KvMirror(self.capacity_kv, compact=Compactor())
        self._loaded_at = -float("inf")

    async def start(self) -> None:
        """Follow the demand and pool snapshots as they are published."""
        await self._demand.start()
        await self._pool.start()

    async def close(self) -> None:
        """Stop following the buckets."""
        for mirror in self._mirrors():
            await mirror.close()

    def _mirrors(self) -> tuple[KvMirror[CloudRecord], KvMirror[VmRecord],
                                KvMirror[CloudHealth], KvMirror[CloudCapacity]]:
        return (self.clouds_mirror, self.vms_mirror, self.health_mirror, self.capacity_mirror)

    async def _read(self, afresh: bool) -> tuple[
        Traced[DemandSnapshot] | None, Traced[PoolSnapshot] | None,
        dict[str, Versioned[CloudRecord]], dict[str, Versioned[VmRecord]],
        dict[str, Versioned[CloudHealth]], dict[str, Versioned[CloudCapacity]],
    ]:
        """The state: from memory once the mirrors have caught up with every write made
        before this call; read afresh when asked, every RELOAD_S, or when a mirror did not
        catch up within CATCH_UP_S (its watch is failing)."""
        mirrors = self._mirrors()
        if not afresh and time.monotonic() - self._loaded_at < RELOAD_S and all(
                await asyncio.gather(*(m.current(CATCH_UP_S) for m in mirrors))):
            return (self._demand.value(), self._pool.value(), self.clouds_mirror.entries(),
                    self.vms_mirror.entries(), self.health_mirror.entries(),
                    self.capacity_mirror.entries())
        # Six independent reads, each a few round trips: at once, not one after the other.
        read = await asyncio.gather(
            self._demand.load(), self._pool.load(), self.clouds_mirror.load(),
            self.vms_mirror.load(), self.health_mirror.load(), self.capacity_mirror.load())
        self._loaded_at = time.monotonic()
        return read

    async def step(self, afresh: bool = False) -> None:
        """One level-triggered cycle over the whole desired and actual state (`afresh`:
        read from the bus, not from memory, whatever the time since the last read)."""
        now = time.time()
        demand, pool, cloud_entries, vm_entries, health, capacity = await self._read(afresh)
        clouds = [v.value for v in cloud_entries.values()]
        result = plan(
            self.settings.site, demand.value if demand else None, clouds,
            [v.value for v in vm_entries.values()], now, self.settings.policy,
            pool.value if pool else None, {k: v.value for k, v in health.items()},
            {k: v.value for k, v in capacity.items()},
        )
        trace = demand.trace if demand else ""
        decisions = list(result.decisions)
        booked = 0
        for boot in result.boots:
            booking = VmRecord(
                vm_id=boot.vm_id, cloud=boot.cloud, intent_id=boot.intent_id,
                class_key=boot.class_key, spec=boot.spec, state="requested",
                created_at=now, updated_at=now, trace=trace,
            )
            key = subjects.vm_key(boot.cloud, boot.vm_id)
            revision = await self.vms_kv.create(key, booking)
            if revision is None:
                decisions.append(PlanDecision(
                    kind="hold", cloud=boot.cloud, class_key=boot.class_key,
                    reason=f"{boot.vm_id} was booked by another planner first"))
                continue
            self.vms_mirror.note(key, booking, revision)
            booked += 1
            await self._send(Intent(
                intent_id=boot.intent_id, action="boot", cloud=boot.cloud, vm_id=boot.vm_id,
                spec=boot.spec, created_at=now), trace)
            if demand is not None:
                self.bus.metrics.intent_lag.observe(max(0.0, time.time() -
                                                        demand.value.taken_at))
        for retire in result.retires:
            marked = await self._mark(vm_entries, retire.cloud, retire.vm_id, "retiring",
                                      retire.reason, retire.action_id, now)
            if marked is not None:
                await writes.send_retire(self.bus, marked)
        for kill in result.kills:
            marked = await self._mark(vm_entries, kill.cloud, kill.vm_id, "deleting",
                                      kill.reason, kill.intent_id, now)
            if marked is None:
                continue
            if kill.failure:
                await self._count_failure(kill, marked.spec.vm_type, now)
            await writes.send_kill(self.bus, marked, kill.reason, now)
        # After retires and kills, which must not lose their compare-and-set to this.
        for reg in result.registrations:
            key = subjects.vm_key(reg.vm.cloud, reg.vm.vm_id)
            entry = vm_entries.get(key)
            if entry is not None:
                # A conflict means the record changed; the next cycle registers it again.
                await self.vms_kv.update(key, entry.value.model_copy(
                    update={"registered_at": now}), entry.revision)
        for resend in result.resends:
            vm = resend.vm
            if vm.state == "retiring":
                await writes.send_retire(self.bus, vm)
                continue
            booting = vm.state == "requested"
            await self._send(Intent(
                intent_id=vm.intent_id, action="boot" if booting else "kill", cloud=vm.cloud,
                vm_id=vm.vm_id, spec=vm.spec if booting else None, created_at=vm.updated_at,
                reason="resent: no provisioner acted on the first intent yet"), vm.trace)
        for reset in result.recoveries:
            entry_h = health.get(reset.cloud)
            if entry_h is not None:
                await self.health_kv.update(reset.cloud, reset, entry_h.revision)
        self._measure(clouds, vm_entries, health, decisions, time.time() - now)
        report = PlanReport(planner=self.name, at=now, decisions=tuple(decisions))
        await self.bus.js_publish(subjects.plan_report(), report, trace=trace)
        log.info("%s", logs.fields(
            loop="plan", clouds=len(clouds), vms=len(vm_entries), booked=booked,
            retires=len(result.retires), kills=len(result.kills), resends=len(result.resends),
            holds=sum(d.kind == "hold" for d in decisions), trace=trace or "-"))

    async def _mark(
        self, entries: dict[str, Versioned[VmRecord]], cloud: str, vm_id: str,
        state: VmState, reason: str, intent: str, now: float,
    ) -> VmRecord | None:
        """`writes.mark` of the entry this cycle read, if it is still there."""
        key = subjects.vm_key(cloud, vm_id)
        entry = entries.get(key)
        if entry is None:
            return None
        return await writes.mark(self.vms_kv, key, entry, state, reason, intent, now)

    async def _count_failure(self, kill: Kill, vm_type: str, now: float) -> None:
        """Add a failure to the cloud's health (compare-and-set, re-read on conflict)."""
        for _ in range(5):
            entry = await self.health_kv.get(kill.cloud)
            updated = after_failure(entry.value if entry else None, kill, vm_type, now,
                             self.settings.policy)
            if entry is None:
                done = await self.health_kv.create(kill.cloud, updated)
            else:
                done = await self.health_kv.update(kill.cloud, updated, entry.revision)
            if done is not None:
                log.warning("%s", logs.fields(
                    event="failure counted", cloud=kill.cloud, vm=kill.vm_id,
                    kind=kill.failure, failures=updated.failures, reason=kill.reason))
                return
        log.error("%s", logs.fields(event="failure not counted: health kept changing",
                                    cloud=kill.cloud, vm=kill.vm_id))

    async def _send(self, intent: Intent, trace: str) -> None:
        await self.bus.js_publish(
            subjects.intent(intent.cloud), intent, trace=trace, msg_id=intent.intent_id)
        self.bus.metrics.intents.labels(intent.cloud, intent.action).inc()

    def _measure(self, clouds: list[CloudRecord], vms: dict[str, Versioned[VmRecord]],
                 health: dict[str, Versioned[CloudHealth]], decisions: list[PlanDecision],
                 took_s: float) -> None:
        metrics = self.bus.metrics
        metrics.plan_seconds.observe(took_s)
        counts = Counter((v.value.cloud, v.value.state) for v in vms.values())
        metrics.vms.clear()
        metrics.cloud_backoff.clear()
        metrics.holds.clear()
        for cloud in clouds:
            for state in get_args(VmState):
                metrics.vms.labels(cloud.name, state).set(counts.get((cloud.name, state), 0))
            entry = health.get(cloud.name)
            backed_off = entry is not None and entry.value.backoff_until > time.time()
            metrics.cloud_backoff.labels(cloud.name).set(1 if backed_off else 0)
        for decision in decisions:
            if decision.kind == "hold":
                # The reason's first words (its kind), not the whole text: bounded series.
                kind = " ".join(decision.reason.split()[:2]) or "-"
                metrics.holds.labels(decision.cloud or "-", kind).inc(decision.count)
