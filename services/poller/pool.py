"""Pure pool logic: startd slot ads in, the PoolSnapshot of our VMs out."""

from __future__ import annotations

from collections.abc import Iterable

from bus.schemas import PoolSnapshot, Startd
from services.poller.demand import JobAd, host_of

VM_ID_ATTR = "CS_VM_ID"
"""The startd attribute our VMs advertise (STARTD_ATTRS), set from their user-data."""

PROJECTION = ("Name", "Machine", "State", "Activity", "EnteredCurrentState", VM_ID_ATTR)
"""The attributes read from the collector for each slot."""


def build_pool(
    ads: Iterable[JobAd], source: str, now: float
) -> tuple[PoolSnapshot, list[str]]:
    """Our VMs' slots, and a problem line for every slot ad of ours that made no sense."""
    startds: list[Startd] = []
    problems: list[str] = []
    for ad in ads:
        vm_id = ad.get(VM_ID_ATTR)
        if vm_id is None:
            continue  # not one of ours
        name = ad.get("Name")
        state, activity = ad.get("State"), ad.get("Activity")
        entered = ad.get("EnteredCurrentState")
        if not isinstance(vm_id, str) or not vm_id:
            problems.append(f"slot {name!r}: {VM_ID_ATTR} is not a name: {vm_id!r}")
            continue
        if not (isinstance(name, str) and isinstance(state, str) and isinstance(activity, str)):
            problems.append(f"slot {name!r} of {vm_id}: Name, State or Activity missing")
            continue
        if isinstance(entered, bool) or not isinstance(entered, int | float):
            problems.append(f"slot {name} of {vm_id}: EnteredCurrentState is {entered!r}")
            continue
        startds.append(Startd(vm_id=vm_id, name=name, state=state, activity=activity,
                              entered_state_at=float(entered)))
    startds.sort(key=lambda s: (s.vm_id, s.name))
    return PoolSnapshot(source=source, taken_at=now, startds=tuple(startds)), problems


def machines(pool: PoolSnapshot) -> frozenset[str]:
    """The machines our VMs' slots are on (`slot1_1@host` -> `host`): where a running job
    runs on one of ours."""
    return frozenset(host_of(s.name) for s in pool.startds)
