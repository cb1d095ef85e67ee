"""The typed client side of the admin and provider endpoints, used by `cs` and tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.aio.msg import Msg

from bus import calls, subjects
from bus.calls import A, Call, Q
from bus.connection import Bus
from bus.schemas import (
    CloudToggleReply,
    CloudToggleRequest,
    InstanceList,
    InstancesRequest,
    Startd,
    StatusReply,
    StatusRequest,
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
    """Requests to `cs-admin` and the provisioners, derived from their declarations in
    `bus.calls`; errors arrive as AdminError."""

    def __init__(self, bus: Bus, timeout_s: float = 5.0) -> None:
        self.bus = bus
        self.timeout_s = timeout_s

    async def call(self, call: Call[Q, A], request: Q, subject: str = "") -> A:
        """Ask `call` of the admin service (or on `subject`, e.g. a cloud's provisioner)."""
        return await self.bus.request(subject or subjects.admin_endpoint(call.name), request,
                                      call.reply, self.timeout_s)

    async def status(self) -> StatusReply:
        """The whole status."""
        return await self.call(calls.STATUS, StatusRequest())

    async def vm_pages(self, cloud: str = "", limit: int = 1000
                       ) -> AsyncIterator[VmListReply]:
        """The registry page by page (on `cloud`, or every cloud), in key order."""
        after = ""
        while True:
            page = await self.call(calls.VM_LIST,
                                   VmListRequest(cloud=cloud, after=after, limit=limit))
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

    async def set_enabled(self, cloud: str, enabled: bool) -> CloudToggleReply:
        """Enable or disable `cloud`."""
        return await self.call(calls.CLOUD_ENABLE if enabled else calls.CLOUD_DISABLE,
                               CloudToggleRequest(name=cloud))

    async def instances(self, cloud: str) -> InstanceList:
        """The live listing of `cloud`, straight from its provisioner's driver."""
        return await self.call(calls.INSTANCES, InstancesRequest(),
                               subjects.provider_instances(cloud))
