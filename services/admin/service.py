"""Admin endpoints: status, cloud enable/disable, VM kill; and seeding cloud records from config.

The enabled flag lives in KV, so it survives every restart: seeding from the config file
creates records for new clouds and refreshes the others' settings, but never touches `enabled`
of a cloud that already has a record.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bus import logs, registry, subjects
from bus.connection import Bus, TypedKv
from bus.errors import AdminError
from bus.micro import Endpoint
from bus.schemas import (
    CloudCapacity,
    CloudHealth,
    CloudRecord,
    CloudStatus,
    CloudToggleReply,
    CloudToggleRequest,
    DemandSnapshot,
    Message,
    PlanReport,
    PoolSnapshot,
    Skipped,
    StatusReply,
    StatusRequest,
    VmKillReply,
    VmKillRequest,
    VmRecord,
)

log = logging.getLogger("cs-admin")



class AdminService:
    """Answers the CLI; writes desired state to KV."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.clouds: TypedKv[CloudRecord] = bus.kv(subjects.CLOUDS_BUCKET, CloudRecord)
        self.vms: TypedKv[VmRecord] = bus.kv(subjects.VMS_BUCKET, VmRecord)
        self.health: TypedKv[CloudHealth] = bus.kv(subjects.HEALTH_BUCKET, CloudHealth)
        self.capacity: TypedKv[CloudCapacity] = bus.kv(subjects.CAPACITY_BUCKET,
                                                       CloudCapacity)

    async def seed(self, configured: Sequence[CloudRecord]) -> None:
        """Make KV hold every configured cloud, keeping each existing record's enabled flag."""
        now = time.time()
        existing = await self.clouds.items()
        for cloud in configured:
            entry = existing.get(cloud.name)
            fresh = cloud.model_copy(update={"updated_at": now, "updated_by": "config"})
            if entry is None:
                if await self.clouds.create(cloud.name, fresh) is not None:
                    log.info("%s", logs.fields(event="cloud added", cloud=cloud.name,
                                               enabled=cloud.enabled))
                continue
            kept = fresh.model_copy(update={"enabled": entry.value.enabled})
            same = kept.model_copy(update={"updated_at": 0.0, "updated_by": ""}) == \
                entry.value.model_copy(update={"updated_at": 0.0, "updated_by": ""})
            if not same:
                await self.clouds.update(cloud.name, kept, entry.revision)
                log.info("%s", logs.fields(event="cloud settings refreshed", cloud=cloud.name,
                                           enabled=kept.enabled))
        for name in existing.keys() - {c.name for c in configured}:
            log.warning("%s", logs.fields(
                event="cloud in KV but not in config; left as it is", cloud=name))

    def endpoints(self) -> list[Endpoint[Any]]:
        """The endpoints this service registers under `cs.admin`."""
        return [
            Endpoint(subjects.ADMIN_STATUS, StatusRequest, self.status),
            Endpoint(subjects.ADMIN_CLOUD_ENABLE, CloudToggleRequest, self.enable),
            Endpoint(subjects.ADMIN_CLOUD_DISABLE, CloudToggleRequest, self.disable),
            Endpoint(subjects.ADMIN_VM_KILL, VmKillRequest, self.kill),
        ]

    async def kill(self, request: VmKillRequest) -> Message:
        """Kill the named VMs (or all on a cloud): marked deleting, then a kill intent each,
        exactly as the planner's own kills, so provisioners and reconcile treat them alike."""
        if request.all_on_cloud and not request.cloud:
            raise AdminError("400", "killing all VMs needs a cloud")
        if not request.all_on_cloud and not request.vm_ids:
            raise AdminError("400", "name the VMs to kill, or ask for all on a cloud")
        if request.cloud and await self.clouds.get(request.cloud) is None:
            raise AdminError("404", f"unknown cloud {request.cloud!r}")
        entries = await self.vms.items()
        by_id = {e.value.vm_id: (key, e) for key, e in entries.items()
                 if not request.cloud or e.value.cloud == request.cloud}
        wanted = sorted(by_id) if request.all_on_cloud else list(request.vm_ids)
        killed: dict[str, str] = {}
        skipped: list[Skipped] = []
        now = time.time()
        for vm_id in wanted:
            found = by_id.get(vm_id)
            if found is None:
                where = f" on {request.cloud}" if request.cloud else ""
                skipped.append(Skipped(vm_id=vm_id, reason=f"no such VM{where}"))
                continue
            key, entry = found
            if entry.value.state in ("deleting", "gone"):
                skipped.append(Skipped(vm_id=vm_id, reason="already being deleted"))
                continue
            reason = "killed by an operator"
            marked = await registry.mark(self.vms, key, entry, "deleting", reason,
                                         f"kill-{vm_id}-{int(now * 1000):x}", now)
            if marked is None:
                skipped.append(Skipped(vm_id=vm_id, reason="changed meanwhile; try again"))
                continue
            await registry.send_kill(self.bus, marked, reason, now)
            killed[vm_id] = marked.intent_id
        log.info("%s", logs.fields(event="vm kill", cloud=request.cloud or "-",
                                   killed=len(killed), skipped=len(skipped)))
        return VmKillReply(killed=killed, skipped=tuple(skipped))

    async def status(self, _: StatusRequest) -> Message:
        """Clouds, VMs, demand and the planner's latest reasons."""
        clouds = [v.value for v in (await self.clouds.items()).values()]
        health = {k: v.value for k, v in (await self.health.items()).items()}
        vms = sorted((v.value for v in (await self.vms.items()).values()),
                     key=lambda vm: (vm.cloud, vm.vm_id))
        capacity = {k: v.value for k, v in (await self.capacity.items()).items()}
        by_cloud: dict[str, Counter[str]] = {}
        cores: Counter[str] = Counter()
        memory: Counter[str] = Counter()
        for vm in vms:
            by_cloud.setdefault(vm.cloud, Counter())[vm.state] += 1
            cores[vm.cloud] += vm.spec.cores
            memory[vm.cloud] += vm.spec.memory_mb
        demand = await self.bus.last(subjects.demand(), DemandSnapshot)
        pool = await self.bus.last(subjects.pool(), PoolSnapshot)
        plan = await self.bus.last(subjects.plan_report(), PlanReport)
        return StatusReply(
            clouds=tuple(
                CloudStatus(name=c.name, provider=c.provider, enabled=c.enabled,
                            max_vms=c.max_vms, vms_by_state=dict(by_cloud.get(c.name, {})),
                            health=health.get(c.name), max_cores=c.max_cores,
                            max_memory_mb=c.max_memory_mb, cores_used=cores[c.name],
                            memory_mb_used=memory[c.name], capacity=capacity.get(c.name))
                for c in sorted(clouds, key=lambda c: c.name)
            ),
            vms=tuple(vms),
            demand=demand.value if demand else None,
            pool=pool.value if pool else None,
            plan=plan.value if plan else None,
        )

    async def enable(self, request: CloudToggleRequest) -> Message:
        """Enable a cloud: the planner may boot there from its next cycle."""
        return await self._toggle(request.name, True)

    async def disable(self, request: CloudToggleRequest) -> Message:
        """Disable a cloud: no new boots there; running VMs are left alone."""
        return await self._toggle(request.name, False)

    async def _toggle(self, name: str, enabled: bool) -> Message:
        for _ in range(10):
            entry = await self.clouds.get(name)
            if entry is None:
                known = sorted((await self.clouds.items()).keys())
                raise AdminError(
                    "404", f"unknown cloud {name!r}; known clouds: {', '.join(known) or 'none'}")
            if entry.value.enabled == enabled:
                return CloudToggleReply(name=name, enabled=enabled, changed=False)
            updated = entry.value.model_copy(update={
                "enabled": enabled, "updated_at": time.time(), "updated_by": "admin"})
            if await self.clouds.update(name, updated, entry.revision) is not None:
                log.info("%s", logs.fields(event="cloud toggled", cloud=name, enabled=enabled))
                return CloudToggleReply(name=name, enabled=enabled, changed=True)
        raise AdminError("409", f"cloud {name!r} kept changing under us; try again")
