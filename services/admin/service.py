"""Admin endpoints: status, cloud enable/disable, VM kill and drain, config reload; and
seeding cloud records from config.

The enabled flag lives in KV, so it survives every restart: seeding from the config file
creates records for new clouds and refreshes the others' settings, but never touches `enabled`
of a cloud that already has a record.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import siteconfig
from bus import calls, subjects, vmstates
from bus.connection import Bus
from bus.errors import AdminError, ConfigError, ErrorCode
from bus.kv import TypedKv, Versioned
from bus.micro import Endpoint
from bus.mirror import CATCH_UP_S, RELOAD_S, KvMirror
from bus.schemas import (
    ATTENTION_MAX,
    CloudCapacity,
    CloudHealth,
    CloudRecord,
    CloudStatus,
    CloudToggleReply,
    CloudToggleRequest,
    ConfigReloadReply,
    ConfigReloadRequest,
    DemandSnapshot,
    HistoryPoint,
    HistoryReply,
    HistoryRequest,
    PlanReport,
    PoolSnapshot,
    ServiceHealth,
    Skipped,
    StatusReply,
    StatusRequest,
    VmDrainReply,
    VmDrainRequest,
    VmKillReply,
    VmKillRequest,
    VmListReply,
    VmListRequest,
    VmRecord,
)
from registry import writes
from registry.compact import Compactor
from runtime import logs
from services.admin import history

log = logging.getLogger("cs-admin")

REGISTRY_REUSE_S = 2.0
"""How long one sorted copy of the registry serves the next pages of a listing."""
VM_PAGE_MAX = 5000
"""Most VMs one page of `vm-list` may hold (a page of VM records stays well under NATS'
1 MB message limit once compressed)."""
STARTING_TOO_LONG_S = 300.0
"""A VM requested or booting for longer than this needs attention."""


def needs_attention(vm: VmRecord, now: float) -> bool:
    """Whether an operator should look at `vm`: in error, retiring, being deleted, or
    starting for longer than STARTING_TOO_LONG_S."""
    if vm.state == "error" or vm.state in vmstates.WINDING_DOWN:
        return True
    return vm.state in vmstates.STARTING and now - vm.created_at > STARTING_TOO_LONG_S



class AdminService:
    """Answers the CLI; writes desired state to KV.

    The registry is held in memory (`bus.mirror`), not read per request: at 100,000 VMs a
    read takes seconds, longer than the CLI waits. Each answer first waits for the mirror to
    hold every write made before it was asked (`KvMirror.current`), so an operator's kill
    followed by `cs status` shows the kill."""

    def __init__(self, bus: Bus, config_path: Path | None = None,
                 history_interval_s: float = history.DEFAULT_INTERVAL_S) -> None:
        self.bus = bus
        self.config_path = config_path
        self.history_interval_s = history_interval_s
        self.clouds: TypedKv[CloudRecord] = bus.kv(subjects.CLOUDS_BUCKET, CloudRecord)
        self.vms: TypedKv[VmRecord] = bus.kv(subjects.VMS_BUCKET, VmRecord)
        self.health: TypedKv[CloudHealth] = bus.kv(subjects.HEALTH_BUCKET, CloudHealth)
        self.services: TypedKv[ServiceHealth] = bus.kv(subjects.SERVICES_BUCKET, ServiceHealth)
        self.capacity: TypedKv[CloudCapacity] = bus.kv(subjects.CAPACITY_BUCKET,
                                                       CloudCapacity)
        self._reading = asyncio.Lock()
        self._read: list[tuple[str, VmRecord]] = []
        self._read_at = -REGISTRY_REUSE_S - 1.0
        # Compacted: 100,000 VMs held at a fraction of their decoded size (`registry.compact`).
        self._mirror = KvMirror(self.vms, compact=Compactor())

    async def follow(self, stop: asyncio.Event) -> None:
        """Read the registry into memory now, and afresh every RELOAD_S, until `stop`; the
        mirror's watch keeps it current in between."""
        await self._mirror.keep_loaded(stop, RELOAD_S)

    async def close(self) -> None:
        """Stop following the registry."""
        await self._mirror.close()

    async def _current(self) -> dict[str, Versioned[VmRecord]]:
        """The registry, with every write made before this call."""
        await self._mirror.ensure_loaded()  # the first answer may come before `follow` read
        if not await self._mirror.current(CATCH_UP_S):
            log.warning("%s", logs.fields(
                event="registry mirror behind; answering from it as it is",
                waited_s=CATCH_UP_S))
        return self._mirror.entries()

    async def seed(self, configured: Sequence[CloudRecord]) -> dict[str, tuple[str, ...]]:
        """Make KV hold every configured cloud, keeping each existing record's enabled flag;
        which clouds were added, refreshed, unchanged, and in KV but not configured."""
        now = time.time()
        existing = await self.clouds.items()
        changes: dict[str, list[str]] = {"added": [], "refreshed": [], "unchanged": [],
                                         "not_in_config": []}
        for cloud in configured:
            entry = existing.get(cloud.name)
            fresh = cloud.model_copy(update={"updated_at": now, "updated_by": "config"})
            if entry is None:
                if await self.clouds.create(cloud.name, fresh) is not None:
                    log.info("%s", logs.fields(event="cloud added", cloud=cloud.name,
                                               enabled=cloud.enabled))
                    changes["added"].append(cloud.name)
                continue
            kept = fresh.model_copy(update={"enabled": entry.value.enabled})
            same = kept.model_copy(update={"updated_at": 0.0, "updated_by": ""}) == \
                entry.value.model_copy(update={"updated_at": 0.0, "updated_by": ""})
            if same:
                changes["unchanged"].append(cloud.name)
                continue
            await self.clouds.update(cloud.name, kept, entry.revision)
            log.info("%s", logs.fields(event="cloud settings refreshed", cloud=cloud.name,
                                       enabled=kept.enabled))
            changes["refreshed"].append(cloud.name)
        for name in sorted(existing.keys() - {c.name for c in configured}):
            log.warning("%s", logs.fields(
                event="cloud in KV but not in config; left as it is", cloud=name))
            changes["not_in_config"].append(name)
        return {k: tuple(v) for k, v in changes.items()}

    def endpoints(self) -> list[Endpoint[Any, Any]]:
        """The endpoints this service registers under `cs.admin`."""
        return [
            Endpoint(calls.STATUS, self.status),
            Endpoint(calls.CLOUD_ENABLE, self.enable),
            Endpoint(calls.CLOUD_DISABLE, self.disable),
            Endpoint(calls.VM_KILL, self.kill),
            Endpoint(calls.VM_DRAIN, self.drain),
            Endpoint(calls.CONFIG_RELOAD, self.reload),
            Endpoint(calls.HISTORY, self.history),
            Endpoint(calls.VM_LIST, self.vm_list),
        ]

    async def history_point(self, since: float, now: float) -> HistoryPoint:
        """The site now, for the history (boots and failures since `since`)."""
        vms = [entry.value for entry in (await self._current()).values()]
        return history.take(await self._status(vms), vms, since, now)

    async def history(self, request: HistoryRequest) -> HistoryReply:
        """The history of the last `since_s` seconds in at most `max_points` steps (the
        status page draws it too)."""
        since_s, max_points = request.since_s, request.max_points
        if not 0 < since_s <= subjects.HISTORY_MAX_AGE_S:
            raise AdminError(ErrorCode.BAD_REQUEST, f"history since {since_s:.0f}s: ask for 1 s to "
                             f"{subjects.HISTORY_MAX_AGE_S / 3600:.0f} h (what is kept)")
        if not 1 <= max_points <= history.MAX_POINTS:
            raise AdminError(ErrorCode.BAD_REQUEST, f"history in {max_points} points: ask for 1 to "
                             f"{history.MAX_POINTS}")
        now = time.time()
        points = await self.bus.read_since(subjects.HISTORY_STREAM, subjects.history(),
                                           now - since_s, HistoryPoint)
        return history.downsample(points, self.history_interval_s, now - since_s, now,
                                  max_points)

    async def _select(self, request: VmKillRequest, verb: str
                      ) -> tuple[list[tuple[str, Versioned[VmRecord]]], list[Skipped]]:
        """The registry entries a kill or drain request names, and what it names in vain."""
        if request.all_on_cloud and not request.cloud:
            raise AdminError(ErrorCode.BAD_REQUEST, f"{verb} all VMs needs a cloud")
        if not request.all_on_cloud and not request.vm_ids:
            raise AdminError(ErrorCode.BAD_REQUEST,
                             f"name the VMs to {verb}, or ask for all on a cloud")
        if request.cloud and await self.clouds.get(request.cloud) is None:
            raise AdminError(ErrorCode.NOT_FOUND, f"unknown cloud {request.cloud!r}")
        entries = await self._current()
        by_id = {e.value.vm_id: (key, e) for key, e in entries.items()
                 if not request.cloud or e.value.cloud == request.cloud}
        wanted = sorted(by_id) if request.all_on_cloud else list(request.vm_ids)
        found: list[tuple[str, Versioned[VmRecord]]] = []
        skipped: list[Skipped] = []
        for vm_id in wanted:
            hit = by_id.get(vm_id)
            if hit is None:
                where = f" on {request.cloud}" if request.cloud else ""
                skipped.append(Skipped(vm_id=vm_id, reason=f"no such VM{where}"))
            elif hit[1].value.state in vmstates.ENDING:
                skipped.append(Skipped(vm_id=vm_id, reason="already being deleted"))
            else:
                found.append(hit)
        return found, skipped

    async def kill(self, request: VmKillRequest) -> VmKillReply:
        """Kill the named VMs (or all on a cloud): marked deleting, then a kill intent each,
        exactly as the planner's own kills, so provisioners and reconcile treat them alike."""
        found, skipped = await self._select(request, "kill")
        killed: dict[str, str] = {}
        now = time.time()
        for key, entry in found:
            vm_id = entry.value.vm_id
            reason = "killed by an operator"
            marked = await writes.mark(self.vms, key, entry, "deleting", reason,
                                         f"kill-{vm_id}-{int(now * 1000):x}", now)
            if marked is None:
                skipped.append(Skipped(vm_id=vm_id, reason="changed meanwhile; try again"))
                continue
            await writes.send_kill(self.bus, marked, reason, now)
            killed[vm_id] = marked.intent_id
        log.info("%s", logs.fields(event="vm kill", cloud=request.cloud or "-",
                                   killed=len(killed), skipped=len(skipped)))
        return VmKillReply(killed=killed, skipped=tuple(skipped))

    async def drain(self, request: VmDrainRequest) -> VmDrainReply:
        """Drain the named VMs (or all on a cloud): marked retiring and their startds asked
        to leave once their jobs are done, exactly as the planner's own retirements; the
        planner deletes each VM when its startd has left the pool."""
        found, skipped = await self._select(request, "drain")
        drained: dict[str, str] = {}
        now = time.time()
        for key, entry in found:
            vm_id = entry.value.vm_id
            if entry.value.state == "retiring":
                skipped.append(Skipped(vm_id=vm_id, reason="already draining"))
                continue
            marked = await writes.mark(self.vms, key, entry, "retiring",
                                         "drained by an operator",
                                         f"drain-{vm_id}-{int(now * 1000):x}", now)
            if marked is None:
                skipped.append(Skipped(vm_id=vm_id, reason="changed meanwhile; try again"))
                continue
            await writes.send_retire(self.bus, marked)
            drained[vm_id] = marked.intent_id
        log.info("%s", logs.fields(event="vm drain", cloud=request.cloud or "-",
                                   drained=len(drained), skipped=len(skipped)))
        return VmDrainReply(drained=drained, skipped=tuple(skipped))

    async def reload(self, _: ConfigReloadRequest) -> ConfigReloadReply:
        """Re-read the config file; bring cloud records up to date, enabled flags kept. A
        file with a mistake changes nothing and answers with the mistake."""
        if self.config_path is None:
            raise AdminError(ErrorCode.BAD_REQUEST,
                             "this admin service was started without a config file")
        try:
            site = siteconfig.load(self.config_path)
        except ConfigError as exc:
            raise AdminError(ErrorCode.BAD_REQUEST, f"config not reloaded: {exc}") from None
        changes = await self.seed(site.clouds)
        return ConfigReloadReply(path=str(self.config_path), **changes)

    async def status(self, _: StatusRequest | None = None) -> StatusReply:
        """Clouds, VMs, demand and the planner's latest reasons (the status page reads it
        too)."""
        return await self._status([entry.value for entry in (await self._current()).values()])

    async def _registry(self, reuse: bool = False) -> list[tuple[str, VmRecord]]:
        """The registry in key order: as it is now, or (`reuse`) as last sorted if that
        served a page within the last REGISTRY_REUSE_S, so a client paging through 100,000
        VMs costs one sort, not one a page (however long it takes to print each), and sees
        one registry. Pages are asked for by key, so a page from a newer copy goes on after
        the last key seen, neither repeating nor skipping a VM that stayed."""
        async with self._reading:
            fresh = time.monotonic() - self._read_at <= REGISTRY_REUSE_S
            self._read_at = time.monotonic() if reuse and fresh else self._read_at
            if not (reuse and fresh):
                entries = await self._current()
                self._read = [(key, entries[key].value) for key in sorted(entries)]
                self._read_at = time.monotonic()
            return self._read

    async def vm_list(self, request: VmListRequest) -> VmListReply:
        """One page of the registry, in key order, with the VMs' slots (the status page
        pages through it too)."""
        if not 1 <= request.limit <= VM_PAGE_MAX:
            raise AdminError(ErrorCode.BAD_REQUEST,
                             f"a page of {request.limit} VMs: ask for 1 to {VM_PAGE_MAX}")
        registry = await self._registry(reuse=bool(request.after))
        if request.cloud:
            head = f"{request.cloud}."
            lo = bisect.bisect_left(registry, head, key=lambda kv: kv[0])
            hi = bisect.bisect_left(registry, f"{request.cloud}/", key=lambda kv: kv[0])
            registry = registry[lo:hi]  # "/" sorts right after "."
        start = bisect.bisect_right(registry, request.after, key=lambda kv: kv[0])
        page = registry[start:start + request.limit]
        ids = {vm.vm_id for _, vm in page}
        pool = await self.bus.last(subjects.pool(), PoolSnapshot)
        startds = tuple(s for s in (pool.value.startds if pool else ()) if s.vm_id in ids)
        more = start + request.limit < len(registry)
        return VmListReply(vms=tuple(vm for _, vm in page), startds=startds,
                           next_after=page[-1][0] if more and page else "",
                           total=len(registry))

    async def _status(self, vms: list[VmRecord]) -> StatusReply:
        """The status of a site whose registry holds `vms`."""
        now = time.time()
        clouds = [v.value for v in (await self.clouds.items()).values()]
        health = {k: v.value for k, v in (await self.health.items()).items()}
        capacity = {k: v.value for k, v in (await self.capacity.items()).items()}
        by_cloud: dict[str, Counter[str]] = {}
        cores: Counter[str] = Counter()
        memory: Counter[str] = Counter()
        for vm in vms:
            by_cloud.setdefault(vm.cloud, Counter())[vm.state] += 1
            cores[vm.cloud] += vm.spec.cores
            memory[vm.cloud] += vm.spec.memory_mb
        attention = [vm for vm in vms if needs_attention(vm, now)]
        shown = sorted(attention, key=lambda vm: (vm.cloud, vm.vm_id))[:ATTENTION_MAX]
        demand = await self.bus.last(subjects.demand(), DemandSnapshot)
        pool = await self.bus.last(subjects.pool(), PoolSnapshot)
        plan = await self.bus.last(subjects.plan_report(), PlanReport)
        services = sorted((v.value for v in (await self.services.items()).values()),
                          key=lambda s: (s.service, s.host, s.pid))
        ids = {vm.vm_id for vm in shown}
        slots = pool.value.startds if pool else ()
        return StatusReply(
            services=tuple(services),
            clouds=tuple(
                CloudStatus(name=c.name, provider=c.provider, enabled=c.enabled,
                            max_vms=c.max_vms, vms_by_state=dict(by_cloud.get(c.name, {})),
                            health=health.get(c.name), max_cores=c.max_cores,
                            max_memory_mb=c.max_memory_mb, cores_used=cores[c.name],
                            memory_mb_used=memory[c.name], capacity=capacity.get(c.name),
                            address=c.address, priority=c.priority)
                for c in sorted(clouds, key=lambda c: c.name)
            ),
            vms=tuple(shown),
            demand=demand.value if demand else None,
            pool=pool.value.model_copy(update={"startds": tuple(
                s for s in slots if s.vm_id in ids)}) if pool else None,
            plan=plan.value if plan else None,
            vm_total=len(vms), attention_total=len(attention), slots_total=len(slots),
        )

    async def enable(self, request: CloudToggleRequest) -> CloudToggleReply:
        """Enable a cloud: the planner may boot there from its next cycle."""
        return await self._toggle(request.name, True)

    async def disable(self, request: CloudToggleRequest) -> CloudToggleReply:
        """Disable a cloud: no new boots there; running VMs are left alone."""
        return await self._toggle(request.name, False)

    async def _toggle(self, name: str, enabled: bool) -> CloudToggleReply:
        for _ in range(10):
            entry = await self.clouds.get(name)
            if entry is None:
                known = sorted((await self.clouds.items()).keys())
                raise AdminError(ErrorCode.NOT_FOUND, f"unknown cloud {name!r}; known clouds: "
                                 f"{', '.join(known) or 'none'}")
            if entry.value.enabled == enabled:
                return CloudToggleReply(name=name, enabled=enabled, changed=False)
            updated = entry.value.model_copy(update={
                "enabled": enabled, "updated_at": time.time(), "updated_by": "admin"})
            if await self.clouds.update(name, updated, entry.revision) is not None:
                log.info("%s", logs.fields(event="cloud toggled", cloud=name, enabled=enabled))
                return CloudToggleReply(name=name, enabled=enabled, changed=True)
        raise AdminError(ErrorCode.CONFLICT, f"cloud {name!r} kept changing under us; try again")
