"""Writes to the VM registry that more than one service makes the same way."""

from __future__ import annotations

from bus import subjects, vmstates
from bus.connection import Bus
from bus.kv import TypedKv, Versioned
from bus.schemas import CondorAction, Intent, VmRecord, VmState


async def mark(
    vms: TypedKv[VmRecord], key: str, entry: Versioned[VmRecord], state: VmState,
    reason: str, intent: str, now: float,
) -> VmRecord | None:
    """Compare-and-set a VM to `state` under the id of the intent that will follow; None
    when it changed since it was read: the caller decides again on fresh state. A move the
    table of states (`bus.vmstates`) does not allow is a bug of the caller: ValueError."""
    if not vmstates.may_move(entry.value.state, state):
        raise ValueError(f"{entry.value.vm_id}: no move from {entry.value.state} to {state}")
    marked = entry.value.model_copy(update={
        "state": state, "reason": reason, "updated_at": now, "intent_id": intent})
    if await vms.update(key, marked, entry.revision) is None:
        return None
    return marked


async def send_kill(bus: Bus, vm: VmRecord, reason: str, now: float) -> None:
    """The kill intent for a VM already marked `deleting` under `vm.intent_id`."""
    await bus.js_publish(
        subjects.intent(vm.cloud),
        Intent(intent_id=vm.intent_id, action="kill", cloud=vm.cloud, vm_id=vm.vm_id,
               created_at=now, reason=reason),
        trace=vm.trace, msg_id=vm.intent_id)


async def send_retire(bus: Bus, vm: VmRecord) -> None:
    """Ask the poller to retire the HTCondor daemons of a VM marked `retiring` under
    `vm.intent_id` (idempotent, so resendable)."""
    action = CondorAction(action_id=vm.intent_id, vm_id=vm.vm_id, action="retire",
                          requested_at=vm.updated_at, reason=vm.reason)
    await bus.js_publish(subjects.condor_action(), action, trace=vm.trace,
                         msg_id=vm.intent_id)
