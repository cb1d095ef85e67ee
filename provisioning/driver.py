"""The provider contract: what a provisioner needs from one cloud (the one interface file per
boundary). Drivers report in provider-neutral terms (`Instance` states) and raise only the
three provider errors of `bus.errors`; `provisioning.contract` is the test suite every driver,
real or fake, must pass."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from bus.schemas import CloudCapacity, CloudRecord, Instance, VmRecord


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
