"""What the planner's core decides: the policy knobs in, the decisions out (pure data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bus.schemas import CloudHealth, PlanDecision, VmRecord, VmSpec


@dataclass(frozen=True)
class Policy:
    """Knobs of the decision core (times in seconds)."""

    resend_after_s: float = 30.0
    """A VM still `requested`, `retiring` or `deleting` this long gets its intent (or condor
    action) sent again."""
    error_kill_after_s: float = 60.0
    """A VM in `error` this long is killed, which frees its slot for a new try."""
    register_timeout_s: float = 900.0
    """A running VM whose startd never joined the pool within this long is killed (v1's
    condor_register_time_limit). 0 turns the check off (pools without startds, the demo)."""
    max_retires_per_cycle: int = 10
    """At most this many VMs are retired or killed for lack of demand per cycle, so a
    flapping queue cannot thrash the clouds."""
    min_vm_age_s: float = 300.0
    """A running VM younger than this is not retired for lack of demand (churn budget: a
    queue that dips and comes back does not cost a boot)."""
    backoff_base_s: float = 60.0
    """Backoff after the first failure on a cloud (or of a VM type there); it doubles with
    each consecutive failure."""
    backoff_max_s: float = 3600.0
    """The longest backoff."""
    high_priority_weight: float = 4.0
    """How many times a normal user's share a user with VMHighPriority jobs is owed."""
    cloud_order: tuple[str, ...] = ("spread", "priority")
    """Cloud policies chained to order candidate clouds (see `policies`); the default is
    v1's: slot fill ratio, then priority."""


DEFAULT_POLICY = Policy()
"""The defaults, frozen: safe to share."""


@dataclass(frozen=True)
class Boot:
    """Book a new VM in the registry, then send its boot intent."""

    cloud: str
    vm_id: str
    intent_id: str
    class_key: str
    spec: VmSpec


@dataclass(frozen=True)
class Kill:
    """Mark a VM `deleting`, then send its kill intent."""

    cloud: str
    vm_id: str
    intent_id: str
    reason: str
    failure: Literal["", "boot", "blackhole"] = ""
    """Whether this kill is a failure the cloud's health must count: `boot` (error, stuck
    booting) backs the cloud off, `blackhole` (never joined the pool) its VM type."""


@dataclass(frozen=True)
class Retire:
    """Mark a VM `retiring`, then ask the poller to shut its HTCondor daemons down
    peacefully; it is killed once its startd has left the pool."""

    cloud: str
    vm_id: str
    action_id: str
    reason: str


@dataclass(frozen=True)
class Register:
    """Record that a VM's startd was seen in the pool (first time)."""

    vm: VmRecord


@dataclass(frozen=True)
class Resend:
    """Send an existing VM's intent or condor action again (the first may have been lost)."""

    vm: VmRecord


@dataclass(frozen=True)
class Plan:
    """What one cycle decided, and why (including what it decided not to do)."""

    boots: tuple[Boot, ...] = ()
    kills: tuple[Kill, ...] = ()
    retires: tuple[Retire, ...] = ()
    registrations: tuple[Register, ...] = ()
    resends: tuple[Resend, ...] = ()
    recoveries: tuple[CloudHealth, ...] = ()
    """Health records reset because a VM proved the cloud works again."""
    decisions: tuple[PlanDecision, ...] = field(default=())


def intent_id(vm_id: str, action: str, now: float) -> str:
    """A unique id for one intent (or condor action) about `vm_id`."""
    return f"{action}-{vm_id}-{int(now * 1000):x}"


def decision(
    kind: Literal["boot", "retire", "kill", "hold"], reason: str, cloud: str = "",
    class_key: str = "", count: int = 0,
) -> PlanDecision:
    """A PlanDecision built without re-validation: the arguments are typed here, and a plan
    at scale makes thousands per cycle (validation was a fifth of plan()'s time)."""
    return PlanDecision.model_construct(kind=kind, cloud=cloud, class_key=class_key,
                                        count=count, reason=reason)
