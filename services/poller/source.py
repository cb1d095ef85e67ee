"""The poller's window on HTCondor, as a Protocol: a live pool or a replayed one.

Both implementations live in `condor.py` (the only module that imports the bindings):
`BindingsSource` asks the schedds and the collector; `ReplaySource` reads `condor_q` and
`condor_status` dumps, which is what the demo and the tests run on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from services.poller.demand import JobAd


class SourceUnavailable(Exception):
    """HTCondor could not be asked in time; what we know is stale."""


class CondorSource(Protocol):
    """What the poller needs from HTCondor. Every method is required and raises only
    SourceUnavailable."""

    def describe(self) -> str:
        """Where demand comes from, for status (`schedd:local`, `replay:queue.txt`)."""
        ...

    async def jobs(self) -> Iterable[JobAd]:
        """Idle and running jobs with the attributes that decide a VM: a list, or an
        iterator that reads them as they are used (a replayed dump of millions), which may
        raise SourceUnavailable while it is read."""
        ...

    async def startds(self) -> list[JobAd]:
        """Slot ads of startds that advertise a CS_VM_ID (our VMs)."""
        ...

    async def retire(self, vm_id: str) -> int:
        """Peacefully shut down the HTCondor daemons of the VM `vm_id` (running jobs finish,
        no new one starts); how many masters were told, 0 when it had already left."""
        ...
