"""The provider contract: what a provisioner needs from one cloud (the one interface file per
boundary). Drivers report in provider-neutral terms (`Instance` states) and raise only the
three provider errors of `bus.errors`; `provisioning.contract` is the test suite every driver,
real or fake, must pass."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bus.schemas import CloudCapacity, CloudRecord, Instance, VmRecord
from providers.spec import ProviderOptions
from providers.table import PROVIDERS
from provisioning.userdata import WorkerSettings, render
from siteconfig.section import Section


class CloudDriver(Protocol):
    """What a provisioner needs from one cloud. Every method is required.

    Methods raise only `TemporaryError`, `OutOfResources` or `PermanentError`: vendor
    exceptions are translated inside the driver, at one choke point.
    """

    async def list(self) -> list[Instance]:
        """Every instance on the cloud that carries this installation's tag."""
        ...

    async def create(self, vm: VmRecord, fresh: bool = False) -> Instance:
        """Boot `vm` (named `vm.vm_id`); if an instance of that name exists, return it instead.
        `fresh`: no create of this VM was ever tried (the caller has just moved its record
        from requested to booting, which only one process can do), so a driver may skip
        looking for an instance of that name."""
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
        """Release connections; the driver is not used afterwards. Closing again does
        nothing."""
        ...


DriverFactory = Callable[[CloudRecord], Awaitable[CloudDriver]]
"""Builds the driver of one cloud from its record."""


@dataclass(frozen=True)
class DriverContext:
    """What every driver of a provisioner is built with, besides its cloud's record."""

    site: str
    """The installation id: the tag that marks instances as ours."""
    worker: WorkerSettings
    """What the built-in user-data puts into the VMs (central manager, token, CA)."""
    call_timeout_s: float
    """Seconds one cloud API call may take before it counts as a temporary failure."""
    provisioner: Section
    """The `[provisioner]` table, for the keys only one provider reads (its
    `provisioner_keys`, e.g. OpenStack's clouds_yaml)."""

    @classmethod
    def of(cls, site: str, worker: WorkerSettings, call_timeout_s: float = 30.0,
           provisioner: dict[str, object] | None = None) -> DriverContext:
        """A context without a config file (tests, benchmarks, tools)."""
        return cls(site=site, worker=worker, call_timeout_s=call_timeout_s,
                   provisioner=Section(Path("<no config file>"), "provisioner",
                                       dict(provisioner or {})))

    async def user_data(self, record: CloudRecord, vm: VmRecord,
                        options: ProviderOptions | None = None) -> bytes:
        """The VM's rendered user-data: the cloud's template, or its provider's built-in one,
        with the provider's own placeholders from `options` (on a thread: a [worker]
        token_command may take seconds)."""
        provider = PROVIDERS.get(record.provider)
        default = provider.default_user_data if provider else ""
        extra = options.template_values() if options else {}
        return await asyncio.to_thread(render, record.user_data, vm, self.site, self.worker,
                                       default, extra)


MakeDriver = Callable[[CloudRecord, DriverContext], CloudDriver]
"""What a provider's driver module exports as `make_driver`."""
