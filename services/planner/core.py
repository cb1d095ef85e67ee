"""The planner's pure decision core: snapshots and `now` in, intents and reasons out.

No I/O, no bus, no SDK: `plan()` is a function of its arguments, so tests build scenarios as
data and replicas given the same inputs decide the same thing. VM ids are derived from the
demand class and the smallest free sequence number on that cloud, so two replicas planning at
once pick the same id and the registry's create-if-absent lets exactly one of them book it.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bus import vmstates
from bus.schemas import (
    CloudCapacity,
    CloudHealth,
    CloudRecord,
    DemandClass,
    DemandSnapshot,
    PlanDecision,
    PoolSnapshot,
    VmRecord,
    VmSpec,
    resolve,
)
from providers.table import PROVIDERS
from services.planner.capacity import within
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
from services.planner.retire import Lifecycle, lifecycle, lifetimes, slots_by_vm, surplus


def vm_name(site: str, cloud: str, class_key: str, seq: int) -> str:
    """The VM's name on the cloud, which maps back to the registry without guessing."""
    return f"cs-{site}-{cloud}-{class_key[:6]}-{seq}"


def _cloud_image(cloud: CloudRecord) -> str | None:
    """The image a cloud boots for jobs that name none ("" = none); None when the record
    carries no provider settings to tell."""
    return cloud.default_image if cloud.options else None


def _image_key(cloud: CloudRecord) -> str:
    """The config key of the cloud's default image (its provider's own name for it)."""
    provider = PROVIDERS.get(cloud.provider)
    return provider.options.IMAGE_KEY if provider and provider.options.IMAGE_KEY else "an image"


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
        image = resolve(cls.image, cloud.name)
        if image is None:
            return "no image for this cloud in VMAMI"
        if not image and cloud.needs_image and _cloud_image(cloud) == "":
            return ("no image: the jobs name none (VMAMI) and the cloud has no default "
                    f"(set {_image_key(cloud)} for cloud {cloud.name})")
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
            return f"cores quota reached ({usage.cores}/{max(cloud.max_cores, 0)} in use)"
        if cloud.max_memory_mb and usage.memory_mb + cls.memory_mb > cloud.max_memory_mb:
            return (f"memory quota reached ({usage.memory_mb}/{max(cloud.max_memory_mb, 0)} MB "
                    "in use)")
    return None


def plan(
    site: str,
    demand: DemandSnapshot | None,
    clouds: Sequence[CloudRecord],
    vms: Sequence[VmRecord],
    now: float,
    policy: Policy = DEFAULT_POLICY,
    pool: PoolSnapshot | None = None,
    health: Mapping[str, CloudHealth] | None = None,
    capacity: Mapping[str, CloudCapacity] | None = None,
) -> Plan:
    """Decide boots, retirements, kills, registrations, resends and health recoveries for
    one cycle. `capacity`: what clouds report they can hold, narrowing their limits."""
    health = health or {}
    out = Lifecycle()
    resends: list[Resend] = []
    for vm in vms:
        age = now - vm.updated_at
        if vm.state in vmstates.RESENT and age >= policy.resend_after_s:
            resends.append(Resend(vm))
        elif vm.state == "error" and age >= policy.error_kill_after_s:
            out.kill(vm, f"in error for {age:.0f}s: {vm.reason or 'no reason given'}", now,
                     _failure_of(vm))
    slots = slots_by_vm(pool)
    lifecycle(vms, pool, slots, {c.name: c.boot_timeout_s for c in clouds}, now, policy, out)
    limits = {c.name: c.lifetime_s for c in clouds if c.lifetime_s}
    ending = lifetimes(vms, slots, limits, now, out) if limits else set()
    serving = [vm for vm in vms if vm.vm_id not in ending] if ending else vms
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
            surplus(demand, serving, pool, slots, now, policy, out)
        if capacity:
            clouds = [_within(c, capacity.get(c.name), out.decisions) for c in clouds]
        boots = _boots(site, demand, clouds, vms, now, policy, health, out.decisions, ending)
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


def _failure_of(vm: VmRecord) -> Literal["", "boot", "blackhole"]:
    """What a VM's error says about its cloud: a failed boot backs the cloud off; a VM that
    came up and died before joining the pool backs its type off there (a black hole: broken
    image or contextualisation); a VM that served and died later says nothing."""
    if vm.registered_at:
        return ""
    return "blackhole" if vm.running_at else "boot"


def _within(cloud: CloudRecord, cap: CloudCapacity | None, decisions: list[PlanDecision]
            ) -> CloudRecord:
    narrowed, note = within(cloud, cap)
    if note is not None:
        decisions.append(decision(kind="hold", cloud=cloud.name, reason=note))
    return narrowed


_MAX_NAMED = 5
"""Clouds named one by one in a reason; the rest are counted."""


def _boots(
    site: str, demand: DemandSnapshot, clouds: Sequence[CloudRecord],
    vms: Sequence[VmRecord], now: float, policy: Policy,
    health: Mapping[str, CloudHealth], decisions: list[PlanDecision],
    ending: set[str] | frozenset[str] = frozenset(),
) -> list[Boot]:
    """VMs to book for unmet demand, fairly between users, within every cloud's limits;
    VMs in `ending` (past their lifetime) hold room but serve no demand.

    VMs are handed out one at a time to the class furthest below its fair share. Linear in
    classes + clouds + VMs (plus a heap), not their product: a class with TargetClouds looks
    at those clouds only, and a cloud that refuses a class leaves its candidates for the rest
    of the cycle, so thousands of classes do not re-check hundreds of full clouds.
    """
    boots: list[Boot] = []
    alive_by_class: Counter[str] = Counter()
    # Every VM in the registry holds room on its cloud until it is gone, including VMs in
    # error (they still use quota) and VMs being retired or deleted.
    usage: dict[str, Usage] = {c.name: Usage() for c in clouds}
    errors: Counter[tuple[str, str]] = Counter()
    for vm in vms:  # one pass: at 20,000 VMs each pass costs milliseconds
        held = usage.get(vm.cloud)
        if held is None:
            held = usage[vm.cloud] = Usage()
        spec = vm.spec
        held.vms += 1
        held.cores += spec.cores
        held.memory_mb += spec.memory_mb
        state = vm.state
        if state in vmstates.ALIVE and vm.vm_id not in ending:
            alive_by_class[vm.class_key] += 1
        elif state == "error":
            errors[(vm.cloud, vm.class_key)] += 1
    # Names in use; each (cloud, class) hands out the smallest free sequence numbers from a
    # cursor, so only classes that boot pay for the search.
    names = {vm.vm_id for vm in vms}
    cursors: dict[tuple[str, str], int] = {}
    by_name = {c.name: c for c in sorted(clouds, key=lambda c: c.name)}
    # Removal by name is O(1), where comparing models would not be.
    open_clouds = {c.name: c for c in by_name.values()
                   if _why_not(None, c, usage[c.name], 0) is None}
    weights = fair_weights(demand.classes, policy.high_priority_weight)
    shared = order(open_clouds.values(), usage, policy.cloud_order)
    head = [0]  # index of the first cloud of `shared` that may still be open

    wanting: dict[str, _Want] = {}
    for cls in sorted(demand.classes, key=lambda c: c.key):
        have = alive_by_class[cls.key]
        unmet = cls.idle + cls.running - have
        if unmet <= 0:
            decisions.append(decision(
                kind="hold", class_key=cls.key, reason=f"demand met: {have} VM(s) of "
                f"{cls.vm_type} for {cls.idle} idle and {cls.running} running job(s)"
                + _elsewhere(cls)))
        else:
            wanting[cls.key] = _Want(cls, unmet, have, weights[cls.key])
    # Fair share by the highest averages (D'Hondt): the next VM goes to the class whose share
    # of VMs is furthest below its users' share of the queue; ties by key, so replicas agree.
    heap = [(w.next_rank(), key) for key, w in wanting.items()]
    heapq.heapify(heap)
    while heap:
        _, key = heapq.heappop(heap)
        want = wanting[key]
        cloud = _pick(want, by_name, open_clouds, shared, head, usage, errors, health, policy,
                      now)
        if cloud is None:
            continue  # no cloud takes this class any more this cycle; its reasons are kept
        held = usage[cloud.name]
        seq = cursors.get((cloud.name, key), 0)
        vm_id = vm_name(site, cloud.name, key, seq)
        while vm_id in names:
            seq += 1
            vm_id = vm_name(site, cloud.name, key, seq)
        cursors[(cloud.name, key)] = seq + 1
        boots.append(Boot(cloud.name, vm_id, intent_id(vm_id, "boot", now), key,
                          want.spec(cloud.name)))
        held.vms += 1
        held.booted += 1
        held.cores += want.cls.cores
        held.memory_mb += want.cls.memory_mb
        if _why_not(None, cloud, held, 0) is not None:
            open_clouds.pop(cloud.name, None)
        want.booked[cloud.name] = want.booked.get(cloud.name, 0) + 1
        want.unmet -= 1
        want.served += 1
        if want.unmet > 0:
            heapq.heappush(heap, (want.next_rank(), key))

    for key, want in sorted(wanting.items()):
        cls = want.cls
        for cloud_name, count in sorted(want.booked.items()):
            decisions.append(decision(
                kind="boot", cloud=cloud_name, class_key=key, count=count,
                reason=f"{cls.idle} idle job(s) of {cls.vm_type}; booting {count}"
                + _elsewhere(cls)))
        if want.unmet > 0:
            decisions.append(decision(
                kind="hold", class_key=key, count=want.unmet,
                reason=f"{want.unmet} VM(s) of {cls.vm_type} still wanted: " + _refusal_text(
                    cls, want.refusals, by_name, open_clouds, usage)))
    return boots


@dataclass
class _Want:
    """A class with unmet demand, while this cycle hands out VMs."""

    cls: DemandClass
    unmet: int
    served: int
    weight: float
    booked: dict[str, int] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    candidates: list[CloudRecord] | None = None
    pos: int = 0
    _specs: dict[str, VmSpec] = field(default_factory=dict)

    def next_rank(self) -> float:
        """Lower goes first: VMs it would have after one more, per unit of fair share."""
        return (self.served + 1) / self.weight

    def spec(self, cloud: str) -> VmSpec:
        """What to boot for this class on `cloud` (built once per cloud)."""
        spec = self._specs.get(cloud)
        if spec is None:
            spec = self._specs[cloud] = self.cls.spec_for(cloud)
        return spec


def _pick(
    want: _Want, by_name: dict[str, CloudRecord], open_clouds: dict[str, CloudRecord],
    shared: list[CloudRecord], head: list[int], usage: dict[str, Usage],
    errors: Counter[tuple[str, str]], health: Mapping[str, CloudHealth], policy: Policy,
    now: float,
) -> CloudRecord | None:
    """The cloud for this class's next VM, or None. A cloud that refuses is passed over for
    the rest of the cycle, with its reason (capacity only shrinks within a cycle). Classes
    without TargetClouds walk one shared ordering of the clouds that were open at the start,
    skipping those closed since, instead of each sorting the clouds anew."""
    cls = want.cls
    if want.candidates is None:
        if cls.target_clouds:
            want.candidates = order([by_name[n] for n in cls.target_clouds if n in by_name],
                                    usage, policy.cloud_order)
        else:
            want.candidates = shared
    candidates = want.candidates
    if candidates is shared:
        # Skip the shared list's closed head once for all classes, not once per class.
        while head[0] < len(shared) and shared[head[0]].name not in open_clouds:
            head[0] += 1
        want.pos = max(want.pos, head[0])
    while want.pos < len(candidates):
        cloud = candidates[want.pos]
        if cls.target_clouds or cloud.name in open_clouds:
            why = _why_not(cls, cloud, usage[cloud.name], errors[(cloud.name, cls.key)]) or \
                blocked(health.get(cloud.name), cls.vm_type, now)
            if why is None:
                return cloud
            want.refusals.append(f"{cloud.name}: {why}")
        want.pos += 1
    return None


def fair_weights(classes: Sequence[DemandClass], high_priority_weight: float) -> dict[str, float]:
    """Each class's fair share of new VMs, from the users waiting for it (v1's idea).

    Every user with idle jobs is owed an equal share, weighted by `high_priority_weight` for
    users with VMHighPriority jobs; a user's share is split over their classes in proportion
    to their idle jobs there. A class with no idle job (only running ones short of VMs) gets
    a token share, so it is served after the others but still served.
    """
    per_user: dict[str, int] = {}
    high: set[str] = set()
    for cls in classes:
        for user, n in cls.users.items():
            per_user[user] = per_user.get(user, 0) + n
            if cls.high_priority:
                high.add(user)
    weights = {}
    for cls in classes:
        weight = sum((high_priority_weight if user in high else 1.0) * n / per_user[user]
                     for user, n in cls.users.items() if per_user[user])
        weights[cls.key] = weight or 1e-6
    return weights


def _elsewhere(cls: DemandClass) -> str:
    """What a class's reasons say of its jobs running on machines that are not our VMs."""
    if not cls.running_elsewhere:
        return ""
    return (f" ({cls.running_elsewhere} running job(s) left out: they run on machines that "
            "are not our VMs)")


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
