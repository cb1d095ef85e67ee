"""Lifecycle and retirement rules: drain first, never a VM that may hold a job."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus import vmstates
from bus.schemas import (
    CloudRecord,
    DemandClass,
    DemandSnapshot,
    PoolSnapshot,
    Startd,
    VmRecord,
    VmSpec,
)
from services.planner.core import plan, vm_name
from services.planner.decisions import Plan, Policy

NOW = 1_000_000.0
POLICY = Policy(register_timeout_s=900, max_retires_per_cycle=10)


def demand(idle: int = 0, running: int = 0, keep_alive_min: int = 0,
           stale: bool = False) -> DemandSnapshot:
    cls = DemandClass(key="k1", vm_type="w", idle=idle, running=running,
                      keep_alive_min=keep_alive_min, users={"alice": idle})
    return DemandSnapshot(source="t", taken_at=NOW, classes=(cls,) if idle + running else (),
                          stale=stale, stale_reason="schedd timeout" if stale else "")


def vm(seq: int, state: str = "running", registered: bool = True, age: float = 3600,
       keep_alive_min: int = 0) -> VmRecord:
    return VmRecord(vm_id=vm_name("s", "c1", "k1", seq), cloud="c1", intent_id=f"i{seq}",
                    class_key="k1", spec=VmSpec(vm_type="w", keep_alive_min=keep_alive_min),
                    state=state,  # type: ignore[arg-type]
                    created_at=NOW - age, updated_at=NOW - 5,
                    registered_at=NOW - age + 60 if registered else 0.0)


def slot(seq: int, state: str = "Unclaimed", activity: str = "Idle",
         idle_for: float = 600, n: int = 1) -> Startd:
    vm_id = vm_name("s", "c1", "k1", seq)
    return Startd(vm_id=vm_id, name=f"slot{n}@{vm_id}", state=state, activity=activity,
                  entered_state_at=NOW - idle_for)


def pool(*slots: Startd, stale: bool = False) -> PoolSnapshot:
    return PoolSnapshot(source="t", taken_at=NOW, startds=slots, stale=stale,
                        stale_reason="collector timeout" if stale else "")


def run(d: DemandSnapshot, vms: list[VmRecord], p: PoolSnapshot | None,
        policy: Policy = POLICY) -> Plan:
    return plan("s", d, [], vms, NOW, policy, p)


def names(seqs: list[int]) -> list[str]:
    return [vm_name("s", "c1", "k1", n) for n in seqs]


NOTHING = "(no decision at all)"
"""A row's expected reason when the cycle decides nothing, not even a hold."""


def reasons(result: Plan) -> str:
    return " | ".join(d.reason for d in result.decisions)


@pytest.mark.parametrize(
    ("name", "d", "vms", "p", "killed", "retired", "reason_part"),
    [
        ("not yet booted goes first", demand(idle=1),
         [vm(0), vm(1, "requested", False), vm(2, "booting", False)], pool(slot(0)), [1, 2],
         [], "not serving yet"),
        ("a booting VM already in the pool is drained like any other", demand(),
         [vm(0, "booting", False)], pool(slot(0, "Claimed", "Busy")), [], [], "1 busy"),
        ("never registered: killed, holds no job", demand(idle=1),
         [vm(0), vm(1, registered=False, age=60)], pool(slot(0)), [1], [], "never registered"),
        ("registered and idle past keep-alive: drained, not killed", demand(idle=1),
         [vm(0), vm(1)], pool(slot(0, "Claimed", "Busy"), slot(1, idle_for=600)), [], [1],
         "idle for 600s"),
        ("busy VMs are kept", demand(),
         [vm(0)], pool(slot(0, "Claimed", "Busy")), [], [], "kept: 1 busy"),
        ("one busy slot keeps the VM", demand(),
         [vm(0)], pool(slot(0), slot(0, "Claimed", "Busy", n=2)), [], [], "1 busy"),
        ("keep-alive from the jobs", demand(idle=1, keep_alive_min=30),
         [vm(0), vm(1)], pool(slot(0, "Claimed", "Busy"), slot(1, idle_for=600)), [], [],
         "within keep-alive"),
        ("keep-alive of a class whose jobs are gone comes from the VM", demand(),
         [vm(0, keep_alive_min=30)], pool(slot(0, idle_for=600)), [], [], "within keep-alive"),
        ("missing from the pool is unknown, not dead", demand(),
         [vm(0)], pool(), [], [], "missing from the pool (unknown"),
        ("a stale pool retires nothing registered", demand(),
         [vm(0)], pool(slot(0), stale=True), [], [], "pool view stale"),
        ("stale demand retires nothing at all", demand(stale=True),
         [vm(0), vm(1, "requested", False)], pool(slot(0)), [], [], "demand is stale"),
        ("the retired VM is killed once its startd left", demand(),
         [vm(0, "retiring")], pool(), [0], [], "retired: its startd has left the pool"),
        ("the retired VM waits while its startd drains", demand(),
         [vm(0, "retiring")], pool(slot(0, "Claimed", "Retiring")), [], [], NOTHING),
        ("a stale pool is no proof a retired VM left", demand(),
         [vm(0, "retiring")], pool(stale=True), [], [], NOTHING),
        ("never registered within the timeout", demand(idle=1),
         [vm(0, registered=False, age=1000)], pool(), [0], [], "never joined the pool"),
        ("not yet past the registration timeout", demand(idle=1),
         [vm(0, registered=False, age=100)], pool(), [], [], "demand met"),
        ("a stale pool is no proof a startd never joined (a collector outage)", demand(idle=1),
         [vm(0, registered=False, age=1000)], pool(stale=True), [], [], "demand met"),
        ("no pool view at all is no proof either", demand(idle=1),
         [vm(0, registered=False, age=1000)], None, [], [], "demand met"),
        ("idle past keep-alive but younger than min_vm_age_s: kept", demand(),
         [vm(0, age=200)], pool(slot(0, idle_for=150)), [], [],
         "kept: 1 younger than min_vm_age_s"),
        ("idle and just past min_vm_age_s: drained", demand(),
         [vm(0, age=301)], pool(slot(0, idle_for=150)), [], [0], "idle for 150s"),
    ],
)
def test_rules(name: str, d: DemandSnapshot, vms: list[VmRecord], p: PoolSnapshot | None,
               killed: list[int], retired: list[int], reason_part: str) -> None:
    assert POLICY.min_vm_age_s == 300  # the min_vm_age_s rows are written for it
    result = run(d, vms, p)
    assert sorted(k.vm_id for k in result.kills) == names(killed), (name, reasons(result))
    assert sorted(r.vm_id for r in result.retires) == names(retired), (name, reasons(result))
    if reason_part is NOTHING:
        assert result.decisions == (), (name, reasons(result))
    else:
        assert reason_part in reasons(result), (name, reasons(result))


def test_registration_timeout_can_be_turned_off() -> None:
    result = run(demand(idle=1), [vm(0, registered=False, age=10_000)], pool(),
                 Policy(register_timeout_s=0))
    assert result.kills == ()


def test_first_sighting_in_the_pool_is_recorded() -> None:
    result = run(demand(idle=2), [vm(0, registered=False, age=60), vm(1)],
                 pool(slot(0), slot(1)))
    assert [r.vm.vm_id for r in result.registrations] == names([0])


def test_churn_budget_caps_what_goes_per_cycle() -> None:
    vms = [vm(n, registered=False, age=60) for n in range(15)]
    result = run(demand(), vms, pool(), Policy(max_retires_per_cycle=10))
    assert len(result.kills) == 10
    assert "5 churn budget spent" in reasons(result)


def test_retiring_vms_are_resent_their_condor_action() -> None:
    old = vm(0, "retiring").model_copy(update={"updated_at": NOW - 100})
    result = run(demand(), [old], pool(slot(0, "Claimed", "Retiring")))
    assert [r.vm.vm_id for r in result.resends] == names([0])


SLOT_KINDS = {"busy": ("Claimed", "Busy"), "claimed-idle": ("Claimed", "Idle"),
              "retiring": ("Claimed", "Retiring"), "idle": ("Unclaimed", "Idle"),
              "matched": ("Matched", "Idle")}


@given(
    states=st.lists(st.sampled_from(["requested", "booting", "running", "retiring"]),
                    min_size=1, max_size=12),
    registered=st.lists(st.booleans(), min_size=12, max_size=12),
    vm_slots=st.lists(st.lists(st.sampled_from(sorted(SLOT_KINDS)), max_size=4),
                      min_size=12, max_size=12),
    idle_jobs=st.integers(0, 12),
    pool_stale=st.booleans(),
    idle_for=st.sampled_from([0.0, 600.0, 4000.0]),
)
def test_never_kills_or_retires_a_vm_with_a_claimed_slot(
    states: list[str], registered: list[bool], vm_slots: list[list[str]], idle_jobs: int,
    pool_stale: bool, idle_for: float,
) -> None:
    """Each VM has no slot (absent from the pool) or up to four, any mix of idle and
    working ones: a VM with any slot not Unclaimed/Idle is never let go."""
    vms = [vm(n, s, registered[n]) for n, s in enumerate(states)]
    slots = [slot(n, *SLOT_KINDS[kind], idle_for=idle_for, n=i + 1)
             for n in range(len(states)) for i, kind in enumerate(vm_slots[n])]
    result = run(demand(idle=idle_jobs), vms, pool(*slots, stale=pool_stale))
    working = {s.vm_id for s in slots if (s.state, s.activity) != ("Unclaimed", "Idle")}
    assert not working & {k.vm_id for k in result.kills}
    assert not working & {r.vm_id for r in result.retires}
    # and never lets go of more VMs than exceed the demand
    alive = sum(s in ("requested", "booting", "running") for s in states)
    surplus = [k for k in result.kills if "more VMs than jobs" in k.reason]
    assert len(surplus) + len(result.retires) <= max(0, alive - idle_jobs)


@given(
    states=st.lists(st.sampled_from(sorted(set(vmstates.MEANING) - {"gone"})), min_size=1,
                    max_size=10),
    registered=st.lists(st.booleans(), min_size=10, max_size=10),
    ages=st.lists(st.sampled_from([10.0, 700.0, 4000.0, 90000.0]), min_size=10, max_size=10),
    in_pool=st.lists(st.booleans(), min_size=10, max_size=10),
    idle_jobs=st.integers(0, 10),
)
def test_every_retire_and_kill_is_a_move_the_table_of_states_allows(
    states: list[str], registered: list[bool], ages: list[float], in_pool: list[bool],
    idle_jobs: int,
) -> None:
    """Whatever the registry holds, the planner asks only for moves `bus.vmstates` allows
    (`registry.writes.mark` would refuse any other), and never for a VM already deleting."""
    vms = [vm(n, s, registered[n], age=ages[n]) for n, s in enumerate(states)]
    slots = [slot(n) for n in range(len(states)) if in_pool[n]]
    result = run(demand(idle=idle_jobs), vms, pool(*slots))
    state_of = {v.vm_id: v.state for v in vms}
    for kill in result.kills:
        assert state_of[kill.vm_id] != "deleting"
        assert vmstates.may_move(state_of[kill.vm_id], "deleting")
    for retire in result.retires:
        assert vmstates.may_move(state_of[retire.vm_id], "retiring"), state_of[retire.vm_id]


def drone_cloud(lifetime_s: float) -> CloudRecord:
    return CloudRecord(name="c1", provider="slurm", enabled=True, max_vms=10,
                       lifetime_s=lifetime_s, needs_image=False)


def drone(seq: int, running_for: float, registered: bool = True) -> VmRecord:
    return vm(seq, registered=registered, age=running_for + 30).model_copy(
        update={"running_at": NOW - running_for})


def test_a_drone_past_its_lifetime_is_drained_and_replaced_even_while_busy() -> None:
    """The cloud's lifetime (a Slurm drone's time limit less its drain): an idle or a busy
    drone past it is retired (peacefully: a running job finishes), one younger is kept, and
    the jobs get a new drone while demand lasts; one that never joined is killed."""
    clouds = [drone_cloud(3000)]
    vms = [drone(0, 3100), drone(1, 3100), drone(2, 100), drone(3, 3100, registered=False)]
    busy = slot(1, "Claimed", "Busy")
    result = plan("s", demand(idle=0, running=3), clouds, vms, NOW, POLICY,
                  pool(slot(0), busy, slot(2)))
    assert sorted(r.vm_id for r in result.retires) == names([0, 1])
    assert all("lifetime" in r.reason for r in result.retires)
    assert [k.vm_id for k in result.kills] == names([3])
    # 3 jobs running, one drone left that serves: 2 more booted, not counted twice.
    assert len(result.boots) == 2, result.decisions


def test_without_a_lifetime_nothing_ages_out() -> None:
    result = plan("s", demand(idle=0, running=1), [drone_cloud(0)], [drone(0, 10**6)], NOW,
                  POLICY, pool(slot(0, "Claimed", "Busy")))
    assert (result.retires, result.kills, result.boots) == ((), (), ())


def test_a_drone_past_its_lifetime_the_pool_does_not_show_is_left_but_not_counted() -> None:
    """Missing from the pool (a collector restart looks like this): not retired, not
    killed, but it serves no demand, so a replacement boots."""
    result = plan("s", demand(idle=1), [drone_cloud(3000)], [drone(0, 3100)], NOW, POLICY,
                  pool())
    assert (result.retires, result.kills) == ((), ())
    assert len(result.boots) == 1
