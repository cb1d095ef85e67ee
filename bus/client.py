"""The typed client side of the admin and provider endpoints, used by `cs` and tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.aio.msg import Msg

from bus import subjects
from bus.connection import Bus
from bus.schemas import (
    CloudToggleReply,
    CloudToggleRequest,
    ConfigReloadReply,
    ConfigReloadRequest,
    HistoryReply,
    HistoryRequest,
    InstanceList,
    InstancesRequest,
    Startd,
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


@dataclass(frozen=True)
class ServiceInstance:
    """One live service instance, as it answered $SRV.INFO."""

    name: str
    id: str
    version: str
    description: str
    endpoints: tuple[str, ...]


async def discover(bus: Bus, wait_s: float = 1.0) -> list[ServiceInstance]:
    """Every service instance that answers $SRV.INFO within `wait_s` (answers are JSON, by
    the NATS services protocol); an unreadable answer is skipped."""
    found: list[ServiceInstance] = []

    async def on_reply(msg: Msg) -> None:
        try:
            info = json.loads(msg.data)
            found.append(ServiceInstance(
                name=str(info["name"]), id=str(info["id"]), version=str(info["version"]),
                description=str(info.get("description") or ""),
                endpoints=tuple(str(e["subject"]) for e in info.get("endpoints") or ())))
        except (ValueError, KeyError, TypeError):
            return

    inbox = bus.nc.new_inbox()
    sub = await bus.nc.subscribe(inbox, cb=on_reply)
    await bus.nc.publish(subjects.SERVICE_INFO, b"", reply=inbox)
    await asyncio.sleep(wait_s)
    await sub.unsubscribe()
    return sorted(found, key=lambda s: (s.name, s.id))


class AdminClient:
    """Requests to `cs-admin` and the provisioners; errors arrive as AdminError."""

    def __init__(self, bus: Bus, timeout_s: float = 5.0) -> None:
        self.bus = bus
        self.timeout_s = timeout_s

    async def status(self) -> StatusReply:
        """The whole status."""
        return await self.bus.request(
            subjects.admin_endpoint(subjects.ADMIN_STATUS), StatusRequest(), StatusReply,
            self.timeout_s)

    async def vm_pages(self, cloud: str = "", limit: int = 1000
                       ) -> AsyncIterator[VmListReply]:
        """The registry page by page (on `cloud`, or every cloud), in key order."""
        after = ""
        while True:
            page = await self.bus.request(
                subjects.admin_endpoint(subjects.ADMIN_VM_LIST),
                VmListRequest(cloud=cloud, after=after, limit=limit), VmListReply,
                self.timeout_s)
            yield page
            if not page.next_after:
                return
            after = page.next_after

    async def full_status(self, cloud: str = "") -> StatusReply:
        """The status with every VM (on `cloud`, or all) and every slot of theirs, gathered
        page by page: what `cs status --json` and v1's commands show."""
        status = await self.status()
        vms: list[VmRecord] = []
        slots: list[Startd] = []
        async for page in self.vm_pages(cloud):
            vms += page.vms
            slots += page.startds
        pool = status.pool.model_copy(update={"startds": tuple(slots)}) if status.pool else None
        return status.model_copy(update={"vms": tuple(vms), "pool": pool})

    async def history(self, since_s: float, max_points: int) -> HistoryReply:
        """The site's history over the last `since_s` seconds, in at most `max_points`."""
        return await self.bus.request(
            subjects.admin_endpoint(subjects.ADMIN_HISTORY),
            HistoryRequest(since_s=since_s, max_points=max_points), HistoryReply,
            self.timeout_s)

    async def set_enabled(self, cloud: str, enabled: bool) -> CloudToggleReply:
        """Enable or disable `cloud`."""
        name = subjects.ADMIN_CLOUD_ENABLE if enabled else subjects.ADMIN_CLOUD_DISABLE
        return await self.bus.request(
            subjects.admin_endpoint(name), CloudToggleRequest(name=cloud), CloudToggleReply,
            self.timeout_s)

    async def kill(self, request: VmKillRequest) -> VmKillReply:
        """Kill VMs (they go through the same deleting state as the planner's kills)."""
        return await self.bus.request(
            subjects.admin_endpoint(subjects.ADMIN_VM_KILL), request, VmKillReply,
            self.timeout_s)

    async def drain(self, request: VmDrainRequest) -> VmDrainReply:
        """Drain VMs: their startds leave the pool when their jobs are done, then they go."""
        return await self.bus.request(
            subjects.admin_endpoint(subjects.ADMIN_VM_DRAIN), request, VmDrainReply,
            self.timeout_s)

    async def reload(self) -> ConfigReloadReply:
        """Have the admin service re-read the config file (clouds; enabled flags kept)."""
        return await self.bus.request(
            subjects.admin_endpoint(subjects.ADMIN_CONFIG_RELOAD), ConfigReloadRequest(),
            ConfigReloadReply, self.timeout_s)

    async def instances(self, cloud: str) -> InstanceList:
        """The live listing of `cloud`, straight from its provisioner's driver."""
        return await self.bus.request(
            subjects.provider_instances(cloud), InstancesRequest(), InstanceList,
            self.timeout_s)
