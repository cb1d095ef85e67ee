"""Pure lifecycle and retirement rules: which VMs go, how, and why the others stay.

Race-free by construction: a VM whose startd may hold a job is never killed outright. It is
retired (its daemons told to shut down peacefully, so a running job finishes and no new one
starts) and killed only once its startd has left the pool. Killed outright are only VMs that
cannot hold a job: not booted yet, or never registered in the pool. A registered VM missing
from the pool is "unknown" (a collector restart looks like that) and is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from bus import vmstates
from bus.schemas import (
    DemandSnapshot,
    PlanDecision,
    PoolSnapshot,
    Startd,
    VmRecord,
)
from services.planner.decisions import Kill, Policy, Register, Retire, decision, intent_id


@dataclass
class Lifecycle:
    """The outcome of the rules below for one cycle."""

    kills: list[Kill] = field(default_factory=list)
    retires: list[Retire] = field(default_factory=list)
    registrations: list[Register] = field(default_factory=list)
    decisions: list[PlanDecision] = field(default_factory=list)

    def kill(self, vm: VmRecord, reason: str, now: float,
             failure: Literal["", "boot", "blackhole"] = "") -> None:
        """Kill `vm` with `reason`; `failure` says what the cloud's health must count."""
        self.kills.append(Kill(vm.cloud, vm.vm_id, intent_id(vm.vm_id, "kill", now), reason,
                               failure))
        self.decisions.append(decision(kind="kill", cloud=vm.cloud, class_key=vm.class_key,
                                           count=1, reason=f"{vm.vm_id}: {reason}"))

    def retire(self, vm: VmRecord, reason: str, now: float) -> None:
        """Retire `vm` (drain first) with `reason`."""
        self.retires.append(Retire(vm.cloud, vm.vm_id, intent_id(vm.vm_id, "retire", now),
                                   reason))
        self.decisions.append(decision(kind="retire", cloud=vm.cloud,
                                           class_key=vm.class_key, count=1,
                                           reason=f"{vm.vm_id}: {reason}"))


def slots_by_vm(pool: PoolSnapshot | None) -> dict[str, list[Startd]]:
    """The pool's slots grouped by the VM that runs them."""
    out: dict[str, list[Startd]] = {}
    for slot in pool.startds if pool else ():
        out.setdefault(slot.vm_id, []).append(slot)
    return out


def idle_since(slots: Sequence[Startd]) -> float | None:
    """When the VM became idle (every slot Unclaimed/Idle), or None while any slot works."""
    if not slots or any(s.state != "Unclaimed" or s.activity != "Idle" for s in slots):
        return None
    return max(s.entered_state_at for s in slots)


def lifecycle(
    vms: Sequence[VmRecord], pool: PoolSnapshot | None, slots: dict[str, list[Startd]],
    boot_timeout_s: dict[str, float], now: float, policy: Policy, out: Lifecycle,
) -> None:
    """Registration, VMs stuck booting, VMs that never registered, and retired VMs whose
    startd is gone; `slots` is `slots_by_vm(pool)`, `boot_timeout_s` per cloud."""
    fresh = pool is not None and not pool.stale
    for vm in vms:
        timeout = boot_timeout_s.get(vm.cloud, 0.0)
        if vm.vm_id in slots and not vm.registered_at and vm.state in vmstates.ALIVE:
            out.registrations.append(Register(vm))
        elif (vm.state in ("requested", "booting") and vm.vm_id not in slots and timeout
              and now - vm.created_at >= timeout):
            out.kill(vm, f"stuck {vm.state} for {now - vm.created_at:.0f}s "
                         f"(the cloud's boot_timeout_s is {timeout:.0f})", now, "boot")
        elif (vm.state == "running" and not vm.registered_at and fresh
              and policy.register_timeout_s > 0
              and now - vm.created_at >= policy.register_timeout_s):
            out.kill(vm, f"its startd never joined the pool within "
                         f"{policy.register_timeout_s:.0f}s", now, "blackhole")
        elif vm.state == "retiring" and fresh and vm.vm_id not in slots:
            out.kill(vm, "retired: its startd has left the pool", now)


def lifetimes(
    vms: Sequence[VmRecord], slots: dict[str, list[Startd]], lifetime_s: dict[str, float],
    now: float, out: Lifecycle,
) -> set[str]:
    """VMs past their cloud's lifetime (a Slurm drone near its time limit): each is retired
    (peacefully, so a running job finishes; never killed while it may hold one) or, if it
    never joined the pool, killed. Returns their ids: none of them counts for demand any
    more, so a replacement boots while demand lasts. A VM the pool does not show now is
    left alone (unknown), but not counted either."""
    acted = {k.vm_id for k in out.kills} | {r.vm_id for r in out.retires}
    ending: set[str] = set()
    for vm in vms:
        limit = lifetime_s.get(vm.cloud, 0.0)
        if not limit or vm.state != "running" or not vm.running_at:
            continue
        age = now - vm.running_at
        if age < limit:
            continue
        ending.add(vm.vm_id)
        if vm.vm_id in acted:
            continue
        if vm.vm_id in slots:
            out.retire(vm, f"reached its cloud's lifetime ({age:.0f}s running, "
                           f"lifetime_s {limit:.0f}); drained and replaced", now)
        elif not vm.registered_at:
            out.kill(vm, f"reached its cloud's lifetime ({age:.0f}s running, lifetime_s "
                         f"{limit:.0f}) and never joined the pool, so it holds no job", now)
    return ending


def _rank(vm: VmRecord, slots: dict[str, list[Startd]]) -> tuple[int, float]:
    """Cheapest to let go first: not booted, then never registered, then longest idle."""
    unseen = not vm.registered_at and vm.vm_id not in slots
    if unseen and vm.state == "requested":
        return (0, -vm.created_at)
    if unseen and vm.state == "booting":
        return (1, -vm.created_at)
    if unseen:
        return (2, -vm.created_at)
    since = idle_since(slots.get(vm.vm_id, []))
    return (3, since if since is not None else float("inf"))


def surplus(
    demand: DemandSnapshot, vms: Sequence[VmRecord], pool: PoolSnapshot | None,
    slots: dict[str, list[Startd]], now: float, policy: Policy, out: Lifecycle,
) -> None:
    """Let go of VMs beyond what the queue needs, each with the gentlest means that is safe.

    The caller skips this when the demand is stale: an outage must not look like no demand.
    """
    need = {c.key: c.idle + c.running for c in demand.classes}
    keep_alive = {c.key: c.keep_alive_min * 60.0 for c in demand.classes}
    pool_fresh = pool is not None and not pool.stale
    by_class: dict[str, list[VmRecord]] = {}
    for vm in vms:
        if vm.state in vmstates.ALIVE:
            by_class.setdefault(vm.class_key, []).append(vm)
    budget = policy.max_retires_per_cycle
    for key, group in sorted(by_class.items()):
        extra = len(group) - need.get(key, 0)
        if extra <= 0:
            continue
        kept: dict[str, int] = {}
        for vm in sorted(group, key=lambda v: _rank(v, slots)):
            if extra == 0:
                break
            if budget == 0:
                kept["churn budget spent"] = kept.get("churn budget spent", 0) + 1
                continue
            # The registry can lag behind the pool (a VM still `booting` here may already
            # run a job), so only a VM the pool has never shown is let go without a drain.
            registered = bool(vm.registered_at) or vm.vm_id in slots
            if not registered and vm.state in vmstates.STARTING:
                out.kill(vm, "more VMs than jobs; this one is not serving yet", now)
            elif not registered:
                out.kill(vm, "more VMs than jobs; never registered, so it holds no job", now)
            else:
                why = _why_kept(vm, slots, pool_fresh, keep_alive.get(
                    key, vm.spec.keep_alive_min * 60.0), policy.min_vm_age_s, now)
                if why is not None:
                    kept[why] = kept.get(why, 0) + 1
                    continue
                idle = now - (idle_since(slots[vm.vm_id]) or now)
                out.retire(vm, f"more VMs than jobs; idle for {idle:.0f}s", now)
            extra -= 1
            budget -= 1
        if kept:
            out.decisions.append(decision(
                kind="hold", class_key=key, count=sum(kept.values()),
                reason=f"{len(group) - need.get(key, 0)} VM(s) more than jobs; kept: "
                + ", ".join(f"{n} {why}" for why, n in sorted(kept.items()))))


def _why_kept(vm: VmRecord, slots: dict[str, list[Startd]], pool_fresh: bool,
              keep_alive_s: float, min_age_s: float, now: float) -> str | None:
    """Why a registered surplus VM is not retired now, or None if it may be."""
    if not pool_fresh:
        return "pool view stale"
    if vm.vm_id not in slots:
        return "missing from the pool (unknown; a collector restart looks like this)"
    since = idle_since(slots[vm.vm_id])
    if since is None:
        return "busy"
    if now - since < keep_alive_s:
        return "within keep-alive"
    if now - vm.created_at < min_age_s:
        return "younger than min_vm_age_s"
    return None
