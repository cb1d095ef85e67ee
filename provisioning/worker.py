"""One cloud's provisioner loop: `CloudWorker` consumes the cloud's intents, applies them
idempotently through its driver, keeps the registry truthful, and reconciles the cloud's
listing with the registry. Every provider's provisioner runs it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bus import subjects, vmstates
from bus.connection import Bus
from bus.errors import OutOfResources, PermanentError, ProviderError, TemporaryError
from bus.kv import TypedKv, Versioned
from bus.mirror import CATCH_UP_S, KvMirror
from bus.schemas import (
    CloudCapacity,
    CloudRecord,
    InstanceList,
    InstancesRequest,
    Intent,
    Message,
    VmEvent,
    VmRecord,
    VmState,
)
from bus.workqueue import Delivery, WorkQueue
from provisioning.driver import CloudDriver
from provisioning.rules import BOOTED_STATES, DEAD_REASONS, one_per_name
from provisioning.settings import ProvisionerSettings
from registry.compact import Compactor
from runtime import logs

log = logging.getLogger("provisioner")

FIRST_LOAD_S = 120.0
"""How long a reconcile waits for the registry's mirror to be read at the service's start
(100,000 VMs: about 10 s) before it reads its cloud's VMs from the server instead."""


class CloudWorker:
    """Applies one cloud's intents and reconciles it; several replicas may run at once."""

    def __init__(
        self, bus: Bus, provider: str, cloud: str, driver: CloudDriver,
        settings: ProvisionerSettings, record: CloudRecord | None = None,
        registry: KvMirror[VmRecord] | None = None,
    ) -> None:
        self.bus = bus
        self.registry = registry
        """The process's mirror of the registry (grouped by cloud), shared by its workers:
        a reconcile reads its cloud's VMs from memory, not from the server (at 100,000 VMs
        over 200 clouds the reads took most of a core)."""
        self.record = record
        """The cloud's record the driver was built from (to notice a changed config)."""
        self.provider = provider
        self.cloud = cloud
        self.driver = driver
        self.settings = settings
        self.vms: TypedKv[VmRecord] = bus.kv(subjects.VMS_BUCKET, VmRecord)
        self.capacities: TypedKv[CloudCapacity] = bus.kv(subjects.CAPACITY_BUCKET,
                                                         CloudCapacity)
        self._orphans_seen: dict[str, float] = {}
        self._changed = asyncio.Event()
        self._watcher: Callable[[str], None] | None = None

    def use_driver(self, driver: CloudDriver, record: CloudRecord) -> CloudDriver:
        """Swap in a driver built from a changed record; the old one is returned to close."""
        old, self.driver, self.record = self.driver, driver, record
        if self._watcher is not None:
            driver.watch(self._watcher)
        return old

    # ---- intents ----------------------------------------------------------------------

    async def consume(self, stop: asyncio.Event) -> None:
        """Pull and apply intents until `stop` is set."""
        queue: WorkQueue[Intent] = await self.bus.intent_queue(self.provider, self.cloud)
        # Intents of different VMs go to the cloud at once (a cloud API answers many calls in
        # parallel); those of one VM stay in order.
        await queue.serve(stop, self.apply, key=lambda intent: intent.vm_id,
                          batch=self.settings.parallel_intents)

    async def apply(self, delivery: Delivery[Intent]) -> None:
        """Apply one intent idempotently, then ack (or nak for a temporary failure)."""
        intent = delivery.value
        fields = logs.fields(cloud=self.cloud, vm=intent.vm_id, intent=intent.intent_id,
                             trace=delivery.trace, action=intent.action)
        try:
            if intent.action == "boot":
                outcome = await self._boot(intent, delivery.trace)
            else:
                outcome = await self._kill(intent, delivery.trace)
        except TemporaryError as exc:
            log.warning("%s outcome=retry delay=%.0f error=%s", fields, exc.delay, exc)
            self.bus.metrics.retries.labels(self.cloud, intent.action).inc()
            await self._note(intent, f"retrying in {exc.delay:.0f}s: {exc}")
            await delivery.nak(exc.delay)
            return
        log.info("%s outcome=%s", fields, outcome)
        if intent.action == "boot":
            # "running", "booting", "error (kind): ...", "stale intent: ...": the first word.
            self.bus.metrics.boots.labels(self.cloud, outcome.split()[0].rstrip(":")).inc()
        else:
            self.bus.metrics.deletes.labels(self.cloud).inc()
        await delivery.ack()

    async def _note(self, intent: Intent, reason: str) -> None:
        """Put why an intent is being retried on its VM's record, for `cs status` (the state
        stays: a boot that will be retried is still booting). Best effort: a conflicting
        write or a bus hiccup only loses the note, never the retry."""
        key = subjects.vm_key(self.cloud, intent.vm_id)
        try:
            entry = await self.vms.get(key)
            if entry is None or entry.value.intent_id != intent.intent_id:
                return  # the name was booked again since: that VM's record is not ours
            await self.vms.update(key, entry.value.model_copy(update={"reason": reason}),
                                  entry.revision)
        except Exception as exc:  # the retry matters, the note does not
            log.debug("cannot note the retry of %s: %r", key, exc)

    async def _boot(self, intent: Intent, trace: str) -> str:
        key = subjects.vm_key(self.cloud, intent.vm_id)
        entry = await self.vms.get(key)
        if (entry is None or entry.value.intent_id != intent.intent_id
                or entry.value.state not in vmstates.STARTING):
            return "stale intent: the registry no longer asks for this boot"
        # Only one process moves a record from requested to booting: it is the first to try
        # this boot. Any later try (a redelivery, another replica) finds it booting.
        fresh = entry.value.state == "requested"
        booked = await self._set_state(entry, key, "booting", "", trace)
        if booked is None or booked.value.state != "booting":
            return "not booted: a retire or kill was decided meanwhile"
        entry = booked
        try:
            instance = await self.driver.create(entry.value, fresh)
        except (OutOfResources, PermanentError) as exc:
            await self._set_state(entry, key, "error", f"{exc.kind}: {exc}", trace)
            self.bus.metrics.boot_failures.labels(self.cloud, exc.kind).inc()
            return f"error ({exc.kind}): {exc}"
        state = BOOTED_STATES[instance.state]
        await self._set_state(entry, key, state, "", trace)
        return state

    async def _kill(self, intent: Intent, trace: str) -> str:
        key = subjects.vm_key(self.cloud, intent.vm_id)
        entry = await self.vms.get(key)
        if entry is not None and entry.value.intent_id != intent.intent_id:
            # VM names are reused once a VM is gone: an old copy of a kill must not delete
            # the VM booked under the same name since.
            return "stale intent: this name was booked again since the kill"
        try:
            await self.driver.delete(intent.vm_id)
        except (OutOfResources, PermanentError) as exc:
            # A delete that cannot succeed now is retried: giving up would leak the VM.
            raise TemporaryError(f"delete failed: {exc}", delay=30.0) from exc
        if entry is not None and not await self.vms.delete(key, entry.revision):
            raise TemporaryError(f"registry entry {key} changed during the delete", delay=1.0)
        await self._event(intent.vm_id, "gone", intent.reason, trace)
        return "deleted"

    async def _set_state(
        self, entry: Versioned[VmRecord], key: str, state: VmState, reason: str, trace: str
    ) -> Versioned[VmRecord] | None:
        """Compare-and-set the record's state, re-reading on conflict; None if it vanished."""
        for _ in range(5):
            if not vmstates.may_move(entry.value.state, state):
                # A retire or kill was decided meanwhile: it wins (and no other move that
                # the table of states does not allow is written).
                return entry
            now = time.time()
            update: dict[str, object] = {"state": state, "reason": reason, "updated_at": now}
            if state == "running" and not entry.value.running_at:
                update["running_at"] = now
            updated = entry.value.model_copy(update=update)
            revision = await self.vms.update(key, updated, entry.revision)
            if revision is not None:
                if entry.value.state != state:
                    await self._event(updated.vm_id, state, reason, trace)
                return Versioned(updated, revision)
            fresh = await self.vms.get(key)
            if fresh is None:
                return None
            entry = fresh
        raise TemporaryError(f"registry entry {key} kept changing; retrying", delay=1.0)

    async def _event(self, vm_id: str, state: VmState, reason: str, trace: str) -> None:
        event = VmEvent(vm_id=vm_id, cloud=self.cloud, state=state, reason=reason,
                        at=time.time())
        await self.bus.publish(subjects.vm_event(self.cloud, vm_id), event, trace=trace)

    # ---- reconcile --------------------------------------------------------------------

    async def run_reconcile(self, stop: asyncio.Event) -> None:
        """Reconcile every interval, and at once when the driver reports a change."""
        loop = asyncio.get_running_loop()

        def changed(_vm_id: str) -> None:
            loop.call_soon_threadsafe(self._changed.set)

        self._watcher = changed
        self.driver.watch(changed)
        last_error = ""
        while not stop.is_set():
            self._changed.clear()
            try:
                await self.reconcile()
                last_error = ""
                self.bus.set_problem(f"reconcile {self.cloud}", "")
            except ProviderError as exc:
                # The same failure every interval (a cloud without credentials here) is
                # logged once, and again when it changes.
                level = logging.DEBUG if str(exc) == last_error else logging.WARNING
                last_error = str(exc)
                # Until it is fixed, `cs status` shows it next to this provisioner.
                said = str(exc) if self.cloud in str(exc) else f"cloud {self.cloud}: {exc}"
                self.bus.set_problem(f"reconcile {self.cloud}", said)
                log.log(level, "%s", logs.fields(loop="reconcile", cloud=self.cloud,
                                                 error=last_error))
            except Exception:
                log.exception("reconcile of %s failed", self.cloud)
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(
                self._changed.wait())]
            await asyncio.wait(waits, timeout=self.settings.reconcile_interval_s,
                               return_when=asyncio.FIRST_COMPLETED)
            for waiter in waits:
                waiter.cancel()

    async def reconcile(self) -> None:
        """Compare the cloud's listing with the registry; fix both sides; report capacity."""
        now = time.time()
        listed = await self.driver.list()
        # After the listing: every instance listed was booked before it, so its record is
        # in what is read now (an instance whose record is missing is an orphan).
        entries = await self._registered()
        known = {v.value.vm_id for v in entries.values()}
        instances, extras = one_per_name(listed, {v.value.vm_id: v.value.intent_id
                                                  for v in entries.values()})
        for extra in extras:
            # A second instance under a registered VM's name would hide from everything that
            # goes by name: it is not the registry's, so it goes, by its own id.
            await self.driver.delete_instance(extra.instance_id)
            log.warning("%s", logs.fields(event="duplicate deleted", cloud=self.cloud,
                                          vm=extra.vm_id, instance=extra.instance_id,
                                          intent=extra.intent_id))
        gone = orphans = failed = up = 0
        for key, entry in entries.items():
            vm = entry.value
            settled = now - vm.updated_at >= self.settings.vanished_grace_s
            instance = instances.get(vm.vm_id)
            vanished = instance is None and vm.state in vmstates.ON_CLOUD and settled
            if vanished and await self.vms.delete(key, entry.revision):
                gone += 1
                await self._event(vm.vm_id, "gone", "instance vanished from the cloud",
                                  vm.trace)
            elif (instance is not None and instance.state in DEAD_REASONS and settled
                  and vm.state in vmstates.ON_CLOUD):
                reason = DEAD_REASONS[instance.state]
                await self._set_state(entry, key, "error",
                                      f"{reason}: {instance.detail}" if instance.detail
                                      else reason, vm.trace)
                failed += 1
            elif instance is not None and instance.state == "running" and vm.state == "booting":
                # Clouds that answer a create with "building" report it up here.
                await self._set_state(entry, key, "running", "", vm.trace)
                up += 1
        for vm_id in list(self._orphans_seen):
            if vm_id not in instances or vm_id in known:
                del self._orphans_seen[vm_id]
        for vm_id in instances:
            if vm_id in known:
                continue
            first = self._orphans_seen.setdefault(vm_id, now)
            if now - first >= self.settings.orphan_grace_s:
                await self.driver.delete(vm_id)
                del self._orphans_seen[vm_id]
                orphans += 1
                await self._event(vm_id, "gone", "orphan: on the cloud, not in the registry", "")
        capacity = await self.driver.capacity()
        if capacity is not None:
            await self.capacities.put(self.cloud, capacity)
        metrics = self.bus.metrics
        metrics.reconcile_seconds.labels(self.cloud).observe(time.time() - now)
        if orphans:
            metrics.orphans_deleted.labels(self.cloud).inc(orphans)
        log.info("%s", logs.fields(
            loop="reconcile", cloud=self.cloud, instances=len(instances), registry=len(entries),
            marked_gone=gone, marked_error=failed, marked_running=up, orphans_deleted=orphans,
            duplicates_deleted=len(extras),
            orphans_waiting=len(self._orphans_seen)))

    async def _registered(self) -> dict[str, Versioned[VmRecord]]:
        """This cloud's registry entries with every write made before this call: from the
        mirror once it has caught up, else read (the server filters by cloud), compacted as
        read: 1 KB a VM, not 3."""
        # A service starting with 200 clouds waits for the mirror's first read rather than
        # have each cloud read its VMs meanwhile (200 reads at once, each interval, slowing
        # that one read down).
        if self.registry is not None and await self.registry.wait_loaded(FIRST_LOAD_S) \
                and await self.registry.current(CATCH_UP_S):
            return self.registry.group(self.cloud)
        return await self.vms.items(prefix=f"{self.cloud}.", compact=Compactor())

    async def listing(self, _: InstancesRequest) -> Message:
        """The live listing, for `cs` and tests (an admin view of what the cloud holds)."""
        return InstanceList(cloud=self.cloud, listed_at=time.time(),
                            instances=tuple(await self.driver.list()))
