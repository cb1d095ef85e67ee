"""A VM's states in the registry and the moves between them, as data: the one home of what
each state means, who moves a VM from one to another, and the groups of states the services
test against. The state diagram in docs/architecture.md is checked against `MOVES` by a
test; the registry's two writers (the provisioner's worker and `registry.writes.mark`, which
the planner and the admin use) refuse a move that is not here."""

from __future__ import annotations

from dataclasses import dataclass

from bus.schemas import VmState

MEANING: dict[VmState, str] = {
    "requested": "the planner recorded it and sent a boot intent",
    "booting": "the provider accepted the boot",
    "running": "the provider reports it up",
    "retiring": "asked to drain: its startd leaves the pool once its jobs are done",
    "deleting": "a kill intent was sent",
    "error": "the provider failed it (see its reason)",
    "gone": "it no longer exists on the cloud (the record is removed; events only)",
}
"""Every state, and what it means."""


@dataclass(frozen=True)
class Move:
    """One allowed change of a VM's state."""

    source: VmState
    target: VmState
    by: str
    """Which service makes it."""
    why: str


MOVES: tuple[Move, ...] = (
    Move("requested", "booting", "provisioner", "the boot is under way"),
    Move("requested", "running", "provisioner", "the cloud answered the create with it up"),
    Move("booting", "running", "provisioner", "the cloud reports it up"),
    Move("requested", "error", "provisioner", "the cloud refused the boot"),
    Move("booting", "error", "provisioner", "the boot failed, or the instance died"),
    Move("running", "error", "provisioner", "the instance stopped or crashed"),
    Move("requested", "deleting", "provisioner", "the cloud answered the create deleting it"),
    Move("booting", "deleting", "provisioner", "the cloud reports it being deleted"),
    Move("requested", "retiring", "admin", "drained before it registered (cs vm drain)"),
    Move("booting", "retiring", "admin", "drained before it registered (cs vm drain)"),
    Move("running", "retiring", "planner",
         "surplus or past its lifetime, and registered (or cs vm drain)"),
    Move("error", "retiring", "admin", "drained (cs vm drain)"),
    Move("requested", "deleting", "planner", "not needed before it served, or stuck"),
    Move("booting", "deleting", "planner", "not up within boot_timeout_s"),
    Move("running", "deleting", "planner",
         "never registered (or past its lifetime so), stale, or not needed yet idle"),
    Move("retiring", "deleting", "planner", "its startd left the pool"),
    Move("error", "deleting", "planner", "in error for error_kill_after_s"),
    Move("booting", "gone", "provisioner", "the instance vanished from the cloud"),
    Move("running", "gone", "provisioner", "the instance vanished from the cloud"),
    Move("deleting", "gone", "provisioner", "deleted"),
)
"""Every allowed move (a VM also stays where it is: writes of the same state are moves too).
An operator's `cs vm kill` moves any state but deleting and gone to deleting."""

_ALLOWED = frozenset((m.source, m.target) for m in MOVES)

ALIVE: frozenset[VmState] = frozenset({"requested", "booting", "running"})
"""States in which a VM counts as capacity that serves or will serve demand."""
STARTING: frozenset[VmState] = frozenset({"requested", "booting"})
"""Not up yet: the boot timeout runs."""
ON_CLOUD: frozenset[VmState] = frozenset({"booting", "running"})
"""The cloud should list an instance for it (missing: vanished; stopped: error)."""
WINDING_DOWN: frozenset[VmState] = frozenset({"retiring", "deleting"})
"""A retire or kill was decided: a boot's late result never overwrites it."""
RESENT: frozenset[VmState] = frozenset({"requested", "retiring", "deleting"})
"""States whose intent the planner sends again while the VM stays in them."""
ENDING: frozenset[VmState] = frozenset({"deleting", "gone"})
"""Being deleted or deleted: nothing more to ask of it."""


def may_move(source: VmState, target: VmState) -> bool:
    """Whether a VM in `source` may be written as `target`."""
    return source == target or (source, target) in _ALLOWED or (
        target == "deleting" and source not in ENDING)
