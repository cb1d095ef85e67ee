"""Pure: a cloud's configured limits narrowed by what the cloud itself reports it can hold.

The provisioner reports the cloud's limits (a host's cores and memory, a project's quota) and
what instances that are not ours use of them; what is left is the most our VMs may use. The
configured limits stay in force where they are tighter.
"""

from __future__ import annotations

from bus.schemas import CloudCapacity, CloudRecord

NO_ROOM = -1
"""A narrowed limit with nothing left: 0 would read as "no limit" in a CloudRecord."""


def _narrow(configured: int, reported: int, others: int) -> int:
    """The tighter of a configured limit (0 = none) and a reported one (0 = none)."""
    if not reported:
        return configured
    room = reported - others
    if room <= 0:
        return NO_ROOM
    return room if not configured else min(configured, room)


def within(cloud: CloudRecord, cap: CloudCapacity | None) -> tuple[CloudRecord, str | None]:
    """`cloud` with its limits narrowed by `cap`, and a note when the report is what binds."""
    if cap is None:
        return cloud, None
    narrowed = {
        "max_vms": (max(0, _narrow(cloud.max_vms, cap.max_instances, cap.others_instances))
                    if cap.max_instances else cloud.max_vms),
        "max_cores": _narrow(cloud.max_cores, cap.max_cores, cap.others_cores),
        "max_memory_mb": _narrow(cloud.max_memory_mb, cap.max_memory_mb, cap.others_memory_mb),
    }
    changed = {k: v for k, v in narrowed.items() if v != getattr(cloud, k)}
    if not changed:
        return cloud, None
    limits = ", ".join(f"{k} {v}" for k, v in changed.items())
    note = (f"{cap.source} reports {cap.max_instances or 'any'} instances, "
            f"{cap.max_cores or 'any'} cores, {cap.max_memory_mb or 'any'} MB; others use "
            f"{cap.others_instances}, {cap.others_cores} cores, {cap.others_memory_mb} MB: "
            f"planning within {limits}")
    return cloud.model_copy(update=changed), note
