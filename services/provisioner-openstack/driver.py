"""The OpenStack driver seat: where openstacksdk will be the only import (issue 6).

Until the openstacksdk driver lands, `NotConfiguredDriver` fills the seat honestly: it owns no
server, so listing is empty and deleting succeeds, and every boot fails permanently with a
message that says why, which the registry and `cs status` then show.
"""

from __future__ import annotations

from collections.abc import Callable

from bus.errors import PermanentError
from bus.schemas import CloudCapacity, Instance, VmRecord


class NotConfiguredDriver:
    """A CloudDriver that refuses to boot, with the reason."""

    def __init__(self, cloud: str, os_cloud: str) -> None:
        self.cloud = cloud
        self.os_cloud = os_cloud

    @property
    def reason(self) -> str:
        """Why this cloud cannot boot VMs."""
        return (f"OpenStack cloud {self.cloud!r} (clouds.yaml entry {self.os_cloud!r}) is not "
                "configured: this build has no openstacksdk driver yet")

    async def list(self) -> list[Instance]:
        """No server was ever created, so none carries our tag."""
        return []

    async def create(self, vm: VmRecord) -> Instance:
        """Always refuses: PermanentError with the reason."""
        raise PermanentError(self.reason)

    async def delete(self, vm_id: str) -> None:
        """Nothing to delete: success."""

    async def state(self, vm_id: str) -> Instance | None:
        """No server exists."""
        return None

    async def capacity(self) -> CloudCapacity | None:
        """No limits can be read without the SDK."""
        return None

    def watch(self, changed: Callable[[str], None]) -> None:
        """No events: reconcile alone keeps the registry truthful."""

    async def close(self) -> None:
        """Nothing to release."""
