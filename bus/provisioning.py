"""The provider contract and the driver-agnostic provisioner loop.

Both provisioners (libvirt, openstack) share this: the `CloudDriver` Protocol their drivers
implement (the one interface file per boundary), and `CloudWorker`, which consumes one cloud's
intents, applies them idempotently through the driver, keeps the registry truthful, and
reconciles the cloud's listing with the registry. It lives in `bus/` because the services may
not import each other, and it is the bus-facing half of every provisioner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from bus import logs, subjects
from bus.compact import Compactor
from bus.connection import Bus, Delivery, TypedKv, Versioned, WorkQueue
from bus.errors import OutOfResources, PermanentError, ProviderError, TemporaryError
from bus.micro import Endpoint, serve
from bus.runloop import every, keep_running
from bus.schemas import (
    CloudCapacity,
    CloudRecord,
    Instance,
    InstanceList,
    InstancesRequest,
    Intent,
    Message,
    VmEvent,
    VmRecord,
    VmState,
)
from bus.siteconfig import Section, SiteConfig

log = logging.getLogger("provisioner")


class CloudDriver(Protocol):
    """What a provisioner needs from one cloud. Every method is required.

    Methods raise only `TemporaryError`, `OutOfResources` or `PermanentError`: vendor
    exceptions are translated inside the driver, at one choke point.
    """

    async def list(self) -> list[Instance]:
        """Every instance on the cloud that carries this installation's tag."""
        ...

    async def create(self, vm: VmRecord) -> Instance:
        """Boot `vm` (named `vm.vm_id`); if an instance of that name exists, return it instead."""
        ...

    async def delete(self, vm_id: str) -> None:
        """Destroy the instance named `vm_id` and its disks; an absent instance is success."""
        ...

    async def state(self, vm_id: str) -> Instance | None:
        """The instance named `vm_id`, or None when it does not exist."""
        ...

    async def delete_instance(self, instance_id: str) -> None:
        """Destroy one instance by the cloud's own id (an extra that shares a name with the
        VM the registry knows); an absent instance is success."""
        ...

    async def capacity(self) -> CloudCapacity | None:
        """The cloud's limits (instances, cores, memory) and how much of them instances that
        are not ours use; None when the cloud reports no limits."""
        ...

    def watch(self, changed: Callable[[str], None]) -> None:
        """Call `changed(vm_id)`, from any thread, whenever one of our instances changes state
        on the cloud; a driver without change events never calls it."""
        ...

    async def close(self) -> None:
        """Release connections; the driver is not used afterwards."""
        ...


DriverFactory = Callable[[CloudRecord], Awaitable[CloudDriver]]
"""Builds the driver of one cloud from its record."""


DRIVER_CLOSE_S = 5.0
"""How long a stopping provisioner waits for a driver to close its connections."""

_DEAD_REASONS: dict[str, str] = {
    "stopped": "stopped on the cloud (the guest shut down or was stopped)",
    "error": "the cloud reports the instance in error (crashed)",
}
"""Instance states that end a booting or running VM, with the reason the registry shows."""

_BOOTED_STATES: dict[str, VmState] = {
    "running": "running", "creating": "booting", "stopped": "booting",
    "unknown": "booting", "deleting": "deleting", "error": "error",
}


@dataclass(frozen=True)
class ProvisionerSettings:
    """Timing of a provisioner's loops (seconds)."""

    reconcile_interval_s: float = 10.0
    """How often the cloud's listing is compared with the registry."""
    orphan_grace_s: float = 60.0
    """An instance with our tag but no registry entry is destroyed after this long."""
    vanished_grace_s: float = 30.0
    """A registry entry younger than this is not marked gone when its instance is missing."""
    parallel_intents: int = 8
    """Intents (of different VMs) applied at once per cloud."""

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"reconcile_interval_s", "orphan_grace_s", "vanished_grace_s", "parallel_intents"})

    @classmethod
    def from_section(cls, sec: Section) -> ProvisionerSettings:
        """Read the loop timings from a config table (the caller checks unknown keys)."""
        return cls(
            reconcile_interval_s=sec.number("reconcile_interval_s", 10.0, minimum=0.5),
            orphan_grace_s=sec.number("orphan_grace_s", 60.0),
            vanished_grace_s=sec.number("vanished_grace_s", 30.0),
            parallel_intents=sec.integer("parallel_intents", 8, minimum=1),
        )


@dataclass(frozen=True)
class ProvisionerServiceSettings:
    """What a provisioner service (libvirt or OpenStack) reads from the site config."""

    nats_url: str
    """NATS server URL (CS_NATS_URL overrides the file)."""
    site: str
    """Installation id, written into every VM's tag; VMs of other sites are never touched."""
    call_timeout_s: float
    """Seconds one cloud API call may take before it counts as a temporary failure."""
    clouds_yaml: Path | None
    """OpenStack: clouds.yaml holding each cloud's `os_cloud` entry (credentials stay there);
    None = openstacksdk's search (OS_CLIENT_CONFIG_FILE, ./, ~/.config/openstack/,
    /etc/openstack/). Unused by libvirt."""
    loops: ProvisionerSettings
    """Reconcile interval, grace periods, intents at once."""

    @classmethod
    def from_site(cls, site: SiteConfig) -> ProvisionerServiceSettings:
        """Read and validate the `[provisioner]` table."""
        sec = site.section("provisioner")
        sec.check_keys(set(ProvisionerSettings.KEYS) | {"call_timeout_s", "clouds_yaml"})
        return cls(nats_url=site.nats_url, site=site.site,
                   call_timeout_s=sec.number("call_timeout_s", 30.0, minimum=1.0),
                   clouds_yaml=sec.path_value("clouds_yaml", ""),
                   loops=ProvisionerSettings.from_section(sec))


class CloudWorker:
    """Applies one cloud's intents and reconciles it; several replicas may run at once."""

    def __init__(
        self, bus: Bus, provider: str, cloud: str, driver: CloudDriver,
        settings: ProvisionerSettings, record: CloudRecord | None = None,
    ) -> None:
        self.bus = bus
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
        if entry is None or entry.value.intent_id != intent.intent_id or entry.value.state not in (
            "requested", "booting"
        ):
            return "stale intent: the registry no longer asks for this boot"
        booked = await self._set_state(entry, key, "booting", "", trace)
        if booked is None or booked.value.state != "booting":
            return "not booted: a retire or kill was decided meanwhile"
        entry = booked
        try:
            instance = await self.driver.create(entry.value)
        except (OutOfResources, PermanentError) as exc:
            await self._set_state(entry, key, "error", f"{exc.kind}: {exc}", trace)
            self.bus.metrics.boot_failures.labels(self.cloud, exc.kind).inc()
            return f"error ({exc.kind}): {exc}"
        state = _BOOTED_STATES[instance.state]
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
            if entry.value.state in ("retiring", "deleting") and state != "deleting":
                return entry  # a retire or kill was decided meanwhile: it wins
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
            except ProviderError as exc:
                # The same failure every interval (a cloud without credentials here) is
                # logged once, and again when it changes.
                level = logging.DEBUG if str(exc) == last_error else logging.WARNING
                last_error = str(exc)
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
        # This cloud's VMs only (the server filters), compacted as read: 1 KB a VM, not 3.
        entries = await self.vms.items(prefix=f"{self.cloud}.", compact=Compactor())
        known = {v.value.vm_id for v in entries.values()}
        instances, extras = _one_per_name(listed, {v.value.vm_id: v.value.intent_id
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
            vanished = instance is None and vm.state in ("booting", "running") and settled
            if vanished and await self.vms.delete(key, entry.revision):
                gone += 1
                await self._event(vm.vm_id, "gone", "instance vanished from the cloud",
                                  vm.trace)
            elif (instance is not None and instance.state in _DEAD_REASONS and settled
                  and vm.state in ("booting", "running")):
                reason = _DEAD_REASONS[instance.state]
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

    async def listing(self, _: InstancesRequest) -> Message:
        """The live listing, for `cs` and tests (an admin view of what the cloud holds)."""
        return InstanceList(cloud=self.cloud, listed_at=time.time(),
                            instances=tuple(await self.driver.list()))


def _one_per_name(listed: list[Instance], intents: dict[str, str]
                  ) -> tuple[dict[str, Instance], list[Instance]]:
    """The instances by VM name, one each, and the extras: where a name repeats, the one
    carrying the registry's intent for that VM stays (else the first listed, and the orphan
    rules decide about the name)."""
    by_name: dict[str, Instance] = {}
    extras: list[Instance] = []
    for instance in listed:
        kept = by_name.get(instance.vm_id)
        if kept is None:
            by_name[instance.vm_id] = instance
            continue
        if instance.vm_id not in intents or not instance.instance_id or not kept.instance_id:
            continue  # unknown names are orphans (deleted by name), ids are needed to choose
        if instance.intent_id == intents[instance.vm_id] != kept.intent_id:
            by_name[instance.vm_id], instance = instance, kept
        extras.append(instance)
    return by_name, extras


def _settings_of(record: CloudRecord) -> tuple[object, ...]:
    """What a driver is built from (limits and the enabled flag are the planner's business:
    changing them keeps the driver and its connection)."""
    return (record.provider, record.uri, record.os_cloud, record.libvirt, record.openstack,
            record.user_data)


async def _refresh(worker: CloudWorker, record: CloudRecord, factory: DriverFactory) -> None:
    """A new driver when the cloud's settings changed (a config reload): the old one finishes
    what it is doing and is closed."""
    if worker.record is not None and _settings_of(record) == _settings_of(worker.record):
        return
    old = worker.use_driver(await factory(record), record)
    await old.close()
    log.info("%s", logs.fields(event="cloud settings changed; new driver", cloud=record.name))


async def run_provisioner(
    bus: Bus, provider: str, factory: DriverFactory, settings: ProvisionerSettings,
    stop: asyncio.Event,
) -> None:
    """Serve every cloud of `provider` found in the cloud bucket, picking up new ones."""
    clouds_kv = bus.kv(subjects.CLOUDS_BUCKET, CloudRecord)
    workers: dict[str, tuple[CloudWorker, list[asyncio.Task[None]]]] = {}

    async def serve_new(record: CloudRecord) -> None:
        driver = await factory(record)
        worker = CloudWorker(bus, provider, record.name, driver, settings, record)
        await serve(bus, f"{subjects.PROVIDER_SERVICE_PREFIX}-{provider}", "0.1.0",
                    subjects.provider_group(record.name),
                    [Endpoint(subjects.PROVIDER_INSTANCES, InstancesRequest, worker.listing)])
        tasks = [asyncio.create_task(keep_running(
                     f"intent consumer of {record.name}", stop, worker.consume, log)),
                 asyncio.create_task(worker.run_reconcile(stop))]
        workers[record.name] = (worker, tasks)
        log.info("%s", logs.fields(event="serving", cloud=record.name, provider=provider))

    async def step() -> None:
        # A bus outage (a NATS node lost, leaders re-elected) fails this step; `every` logs
        # it and tries again, so the clouds already served keep their workers meanwhile.
        records = [v.value for v in (await clouds_kv.items()).values()]
        for record in records:
            if record.provider != provider:
                continue
            try:
                if record.name in workers:
                    await _refresh(workers[record.name][0], record, factory)
                else:
                    await serve_new(record)
            except Exception:
                # One cloud whose driver cannot be built must not keep the others unserved.
                log.exception("%s", logs.fields(event="cannot serve cloud", cloud=record.name))

    try:
        await every(settings.reconcile_interval_s, stop, step, log)
    finally:
        for worker, tasks in workers.values():
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                # Bounded: a driver whose threads are all stuck in a hung cloud API cannot
                # even run its close; the process exits anyway (see bus.runloop).
                await asyncio.wait_for(worker.driver.close(), DRIVER_CLOSE_S)
            except Exception as exc:
                log.warning("%s", logs.fields(event="driver did not close", cloud=worker.cloud,
                                              error=repr(exc)))
