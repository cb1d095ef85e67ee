"""Pure failure accounting: exponential backoff per cloud, and a brake per (cloud, VM type).

A boot failure (a VM in error, a VM stuck booting) backs the whole cloud off; a VM that came
up but never joined the pool backs off only its VM type on that cloud, so a broken image
cannot boot forever (TARDIS #205, Vcycle's "fizzle") while other types keep running there.
Both reset when a VM proves the cloud (or the type) works again.
"""

from __future__ import annotations

from collections.abc import Iterable

from bus.schemas import CloudHealth, VmRecord
from services.planner.decisions import Kill, Policy


def backoff_s(failures: int, policy: Policy) -> float:
    """Seconds of backoff after `failures` consecutive failures: doubling, capped."""
    if failures <= 0:
        return 0.0
    return float(min(policy.backoff_base_s * 2 ** (failures - 1), policy.backoff_max_s))


def blocked(health: CloudHealth | None, vm_type: str, now: float) -> str | None:
    """Why this cloud takes no VM of `vm_type` now, or None."""
    if health is None:
        return None
    if health.backoff_until > now:
        return (f"backing off for {health.backoff_until - now:.0f}s after "
                f"{health.failures} failure(s): {health.reason}")
    until = health.type_backoff_until.get(vm_type, 0.0)
    if until > now:
        return (f"{vm_type} backed off for {until - now:.0f}s here: "
                f"{health.type_failures.get(vm_type, 0)} VM(s) never joined the pool")
    return None


def after_failure(health: CloudHealth | None, kill: Kill, vm_type: str, now: float,
           policy: Policy) -> CloudHealth:
    """`health` after the failure behind `kill` (whose `failure` is not empty)."""
    h = health or CloudHealth(cloud=kill.cloud)
    if kill.failure == "boot":
        failures = h.failures + 1
        return h.model_copy(update={
            "failures": failures, "last_failure_at": now,
            "backoff_until": now + backoff_s(failures, policy), "reason": kill.reason,
            "updated_at": now})
    count = h.type_failures.get(vm_type, 0) + 1
    return h.model_copy(update={
        "type_failures": {**h.type_failures, vm_type: count},
        "type_last_failure_at": {**h.type_last_failure_at, vm_type: now},
        "type_backoff_until": {**h.type_backoff_until,
                               vm_type: now + backoff_s(count, policy)},
        "updated_at": now})


def recovered(health: CloudHealth, vms: Iterable[VmRecord], now: float) -> CloudHealth | None:
    """`health` reset where a VM proved the cloud works since the last failure: one came up
    (resets the cloud), one of a type joined the pool (resets that type). None: no change."""
    running_since = max((vm.updated_at for vm in vms if vm.state == "running"), default=0.0)
    registered: dict[str, float] = {}
    for vm in vms:
        if vm.registered_at:
            t = vm.spec.vm_type
            registered[t] = max(registered.get(t, 0.0), vm.registered_at)
    update: dict[str, object] = {}
    if health.failures and running_since > health.last_failure_at:
        update |= {"failures": 0, "backoff_until": 0.0, "reason": ""}
    healed = [t for t, at in health.type_last_failure_at.items()
              if health.type_failures.get(t) and registered.get(t, 0.0) > at]
    if healed:
        update |= {
            "type_failures": {t: n for t, n in health.type_failures.items() if t not in healed},
            "type_last_failure_at": {t: a for t, a in health.type_last_failure_at.items()
                                     if t not in healed},
            "type_backoff_until": {t: u for t, u in health.type_backoff_until.items()
                                   if t not in healed},
        }
    if not update:
        return None
    return health.model_copy(update={**update, "updated_at": now})
