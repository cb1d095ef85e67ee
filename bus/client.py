"""The typed client side of the admin and provider endpoints, used by `cs` and tests."""

from __future__ import annotations

from bus import subjects
from bus.connection import Bus
from bus.schemas import (
    CloudToggleReply,
    CloudToggleRequest,
    InstanceList,
    InstancesRequest,
    StatusReply,
    StatusRequest,
)


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

    async def set_enabled(self, cloud: str, enabled: bool) -> CloudToggleReply:
        """Enable or disable `cloud`."""
        name = subjects.ADMIN_CLOUD_ENABLE if enabled else subjects.ADMIN_CLOUD_DISABLE
        return await self.bus.request(
            subjects.admin_endpoint(name), CloudToggleRequest(name=cloud), CloudToggleReply,
            self.timeout_s)

    async def instances(self, cloud: str) -> InstanceList:
        """The live listing of `cloud`, straight from its provisioner's driver."""
        return await self.bus.request(
            subjects.provider_instances(cloud), InstancesRequest(), InstanceList,
            self.timeout_s)
