"""The provisioner's pure rules: what an instance's state means for its registry entry, which
of several instances under one name stays, and what a cloud's driver is built from."""

from __future__ import annotations

from bus.schemas import CloudRecord, Instance, VmState

DEAD_REASONS: dict[str, str] = {
    "stopped": "stopped on the cloud (the guest shut down or was stopped)",
    "error": "the cloud reports the instance in error (crashed)",
}
"""Instance states that end a booting or running VM, with the reason the registry shows."""

BOOTED_STATES: dict[str, VmState] = {
    "running": "running", "creating": "booting", "stopped": "booting",
    "unknown": "booting", "deleting": "deleting", "error": "error",
}
"""The registry state of a VM whose create returned an instance in each state."""


def one_per_name(listed: list[Instance], intents: dict[str, str]
                 ) -> tuple[dict[str, Instance], list[Instance]]:
    """The instances by VM name, one each, and the extras: where a name repeats, the one
    carrying the registry's intent for that VM stays (else the first listed, and the orphan
    rules decide about the name)."""
    by_name: dict[str, Instance] = {}
    extras: list[Instance] = []
    for instance in listed:
        kept = by_name.get(instance.vm_id)
        if kept is None:
            by_name[instance.vm_id] = instance
            continue
        if instance.vm_id not in intents or not instance.instance_id or not kept.instance_id:
            continue  # unknown names are orphans (deleted by name), ids are needed to choose
        if instance.intent_id == intents[instance.vm_id] != kept.intent_id:
            by_name[instance.vm_id], instance = instance, kept
        extras.append(instance)
    return by_name, extras


def driver_settings(record: CloudRecord) -> tuple[object, ...]:
    """What a driver is built from (limits and the enabled flag are the planner's business:
    changing them keeps the driver and its connection)."""
    return (record.provider, record.options, record.user_data)
