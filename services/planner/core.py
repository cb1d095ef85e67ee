"""The planner's pure decision core: snapshots and `now` in, intents and reasons out.

No I/O, no bus, no SDK: `plan()` is a function of its arguments, so tests build scenarios as
data and replicas given the same inputs decide the same thing. VM ids are derived from the
demand class and the smallest free sequence number on that cloud, so two replicas planning at
once pick the same id and the registry's create-if-absent lets exactly one of them book it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from bus.schemas import (
    ALIVE_STATES,
    CloudHealth,
    CloudRecord,
    DemandClass,
    DemandSnapshot,
    PlanDecision,
    PoolSnapshot,
    VmRecord,
    VmSpec,
)
from services.planner.decisions import (
    DEFAULT_POLICY,
    Boot,
    Plan,
    Policy,
    Resend,
    decision,
    intent_id,
)
from services.planner.health import blocked, recovered
from services.planner.policies import Usage, order
from services.planner.retire import Lifecycle, lifecycle, slots_by_vm, surplus


def vm_name(site: str, cloud: str, class_key: str, seq: int) -> str:
    """The VM's name on the cloud, which maps back to the registry without guessing."""
    return f"cs-{site}-{cloud}-{class_key[:6]}-{seq}"


def resolve(mapping: dict[str, str], cloud: str) -> str | None:
    """A per-cloud map's value for `cloud`: its own entry, the default, "" if the map is
    empty, None if the map names other clouds only."""
    if not mapping:
        return ""
    return mapping.get(cloud, mapping.get(""))


def _free_seqs(taken: set[int], count: int) -> list[int]:
    """The `count` smallest sequence numbers not in `taken`."""
    seq, out = 0, list[int]()
    while len(out) < count:
        if seq not in taken:
            out.append(seq)
        seq += 1
    return out


def _why_not(
    cls: DemandClass | None, cloud: CloudRecord, usage: Usage, errors: int
) -> str | None:
    """Why `cloud` cannot take one more VM of `cls` (of any class, for None) this cycle, or
    None if it can."""
    if cls is not None and cls.target_clouds and cloud.name not in cls.target_clouds:
        return "not in the jobs' TargetClouds"
    if not cloud.enabled:
        return "cloud disabled"
    if cls is not None:
        if resolve(cls.image, cloud.name) is None:
            return "no image for this cloud in VMAMI"
        if cloud.max_vm_cores and cls.cores > cloud.max_vm_cores:
            return f"a {cls.cores}-core VM is over the cloud's {cloud.max_vm_cores}-core limit"
        if cloud.max_vm_memory_mb and cls.memory_mb > cloud.max_vm_memory_mb:
            return (f"a {cls.memory_mb} MB VM is over the cloud's "
                    f"{cloud.max_vm_memory_mb} MB limit")
    if errors:
        return f"{errors} VM(s) of this class in error here; waiting for them to be cleared"
    if usage.vms >= cloud.max_vms:
        return f"at max_vms ({usage.vms}/{cloud.max_vms})"
    if usage.booted >= cloud.boots_per_cycle:
        return f"boot limit of {cloud.boots_per_cycle} per cycle reached"
    if cls is not None:
        if cloud.max_cores and usage.cores + cls.cores > cloud.max_cores:
            return f"cores quota reached ({usage.cores}/{cloud.max_cores} in use)"
        if cloud.max_memory_mb and usage.memory_mb + cls.memory_mb > cloud.max_memory_mb:
            return f"memory quota reached ({usage.memory_mb}/{cloud.max_memory_mb} MB in use)"
    return None


def _room(cls: DemandClass, cloud: CloudRecord, usage: Usage, unmet: int) -> int:
    """How many VMs of `cls` fit on `cloud` now (it passed `_why_not`)."""
    room = min(unmet, cloud.max_vms - usage.vms, cloud.boots_per_cycle - usage.booted)
    if cloud.max_cores:
        room = min(room, (cloud.max_cores - usage.cores) // cls.cores)
    if cloud.max_memory_mb:
        room = min(room, (cloud.max_memory_mb - usage.memory_mb) // cls.memory_mb)
    return room


def plan(
    site: str,
    demand: DemandSnapshot | None,
    clouds: Sequence[CloudRecord],
    vms: Sequence[VmRecord],
    now: float,
    policy: Policy = DEFAULT_POLICY,
    pool: PoolSnapshot | None = None,
    health: Mapping[str, CloudHealth] | None = None,
) -> Plan:
    """Decide boots, retirements, kills, registrations, resends and health recoveries for
    one cycle."""
    health = health or {}
    out = Lifecycle()
    resends: list[Resend] = []
    for vm in vms:
        age = now - vm.updated_at
        if vm.state in ("requested", "retiring", "deleting") and age >= policy.resend_after_s:
            resends.append(Resend(vm))
        elif vm.state == "error" and age >= policy.error_kill_after_s:
            out.kill(vm, f"in error for {age:.0f}s: {vm.reason or 'no reason given'}", now,
                     "boot")
    slots = slots_by_vm(pool)
    lifecycle(vms, pool, slots, {c.name: c.boot_timeout_s for c in clouds}, now, policy, out)
    boots: list[Boot] = []
    if demand is None:
        out.decisions.append(decision(
            kind="hold", reason="no demand snapshot yet; is cs-poller running?"))
    else:
        if demand.stale:
            out.decisions.append(decision(
                kind="hold",
                reason=f"demand is stale ({demand.stale_reason}); no VM is retired"))
        else:
            surplus(demand, vms, pool, slots, now, policy, out)
        boots = _boots(site, demand, clouds, vms, now, policy, health, out.decisions)
    recoveries = []
    if health:
        by_cloud: dict[str, list[VmRecord]] = {}
        for vm in vms:
            by_cloud.setdefault(vm.cloud, []).append(vm)
        for name, h in sorted(health.items()):
            reset = recovered(h, by_cloud.get(name, []), now)
            if reset is not None:
                recoveries.append(reset)
    return Plan(boots=tuple(boots), kills=tuple(out.kills), retires=tuple(out.retires),
                registrations=tuple(out.registrations), resends=tuple(resends),
                recoveries=tuple(recoveries), decisions=tuple(out.decisions))


_MAX_NAMED = 5
"""Clouds named one by one in a reason; the rest are counted."""


def _boots(
    site: str, demand: DemandSnapshot, clouds: Sequence[CloudRecord],
    vms: Sequence[VmRecord], now: float, policy: Policy,
    health: Mapping[str, CloudHealth], decisions: list[PlanDecision],
) -> list[Boot]:
    """VMs to book for unmet demand, within every cloud's limits.

    Linear in classes + clouds + VMs, not their product: a class with TargetClouds looks at
    those clouds only, and clouds that are disabled or full for this cycle leave the list of
    candidates once, so thousands of classes do not re-check hundreds of full clouds.
    """
    boots: list[Boot] = []
    alive_by_class: Counter[str] = Counter()
    # Every VM in the registry holds room on its cloud until it is gone, including VMs in
    # error (they still use quota) and VMs being retired or deleted.
    usage: dict[str, Usage] = {c.name: Usage() for c in clouds}
    errors: Counter[tuple[str, str]] = Counter()
    taken: dict[tuple[str, str], set[int]] = {}
    for vm in vms:  # one pass: at 20,000 VMs each pass costs milliseconds
        held = usage.setdefault(vm.cloud, Usage())
        held.vms += 1
        held.cores += vm.spec.cores
        held.memory_mb += vm.spec.memory_mb
        if vm.state in ALIVE_STATES:
            alive_by_class[vm.class_key] += 1
        elif vm.state == "error":
            errors[(vm.cloud, vm.class_key)] += 1
        suffix = vm.vm_id.rpartition("-")[2]
        if suffix.isdigit():
            taken.setdefault((vm.cloud, vm.class_key), set()).add(int(suffix))
    by_name = {c.name: c for c in sorted(clouds, key=lambda c: c.name)}
    # Removal by name is O(1), where comparing models would not be.
    open_clouds = {c.name: c for c in by_name.values()
                   if _why_not(None, c, usage[c.name], 0) is None}
    ordered = sorted(demand.classes, key=lambda c: (not c.high_priority, -c.idle, c.key))

    for cls in ordered:
        have = alive_by_class[cls.key]
        unmet = cls.idle + cls.running - have
        if unmet <= 0:
            decisions.append(decision(
                kind="hold", class_key=cls.key, reason=f"demand met: {have} VM(s) of "
                f"{cls.vm_type} for {cls.idle} idle and {cls.running} running job(s)"))
            continue
        if cls.target_clouds:
            candidates = [by_name[n] for n in cls.target_clouds if n in by_name]
        else:
            candidates = list(open_clouds.values())
        candidates = order(candidates, usage, policy.cloud_order)
        refusals: list[str] = []
        for cloud in candidates:
            if unmet <= 0:
                break
            held = usage[cloud.name]
            why = _why_not(cls, cloud, held, errors[(cloud.name, cls.key)]) or blocked(
                health.get(cloud.name), cls.vm_type, now)
            if why is not None:
                refusals.append(f"{cloud.name}: {why}")
                continue
            room = _room(cls, cloud, held, unmet)
            seqs = _free_seqs(taken.setdefault((cloud.name, cls.key), set()), room)
            spec = VmSpec(
                vm_type=cls.vm_type, image=resolve(cls.image, cloud.name) or "",
                flavor=resolve(cls.flavor, cloud.name) or "", cores=cls.cores,
                memory_mb=cls.memory_mb, disk_gb=cls.disk_gb,
                keep_alive_min=cls.keep_alive_min,
            )
            for seq in seqs:
                vm_id = vm_name(site, cloud.name, cls.key, seq)
                boots.append(Boot(cloud.name, vm_id, intent_id(vm_id, "boot", now),
                                  cls.key, spec))
                taken[(cloud.name, cls.key)].add(seq)
            held.vms += room
            held.booted += room
            held.cores += room * cls.cores
            held.memory_mb += room * cls.memory_mb
            unmet -= room
            decisions.append(decision(
                kind="boot", cloud=cloud.name, class_key=cls.key, count=room,
                reason=f"{cls.idle} idle job(s) of {cls.vm_type}; booting {room}"))
            full = _why_not(cls, cloud, held, 0)
            if _why_not(None, cloud, held, 0) is not None:
                open_clouds.pop(cloud.name, None)
            if unmet > 0:
                refusals.append(f"{cloud.name}: {full}")
        if unmet > 0:
            decisions.append(decision(
                kind="hold", class_key=cls.key, count=unmet,
                reason=f"{unmet} VM(s) of {cls.vm_type} still wanted: " + _refusal_text(
                    cls, refusals, by_name, open_clouds, usage)))
    return boots


def _refusal_text(
    cls: DemandClass, refusals: list[str], by_name: dict[str, CloudRecord],
    open_clouds: dict[str, CloudRecord], usage: dict[str, Usage],
) -> str:
    """Why the rest of a class's demand waits, naming a few clouds and counting the rest."""
    if not by_name:
        return "no cloud configured"
    named = refusals[:_MAX_NAMED]
    more = len(refusals) - len(named)
    if cls.target_clouds:
        unknown = [n for n in cls.target_clouds if n not in by_name]
        if unknown:
            named.append(f"TargetClouds names unknown cloud(s) {', '.join(unknown)}")
    else:
        # Clouds closed before this class was looked at: name a few, count the others.
        seen = {r.partition(": ")[0] for r in refusals}
        closed = len(by_name) - len(open_clouds) - sum(n not in open_clouds for n in seen)
        for cloud in by_name.values():
            if len(named) >= _MAX_NAMED or closed == 0:
                break
            if cloud.name in open_clouds or cloud.name in seen:
                continue
            why = _why_not(cls, cloud, usage[cloud.name], 0)
            named.append(f"{cloud.name}: {why or 'full'}")
            closed -= 1
        more += closed
    return "; ".join(named) + (f"; and {more} more cloud(s)" if more > 0 else "")
