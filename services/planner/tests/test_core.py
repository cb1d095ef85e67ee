"""plan(): scenarios as data, plus property-based invariants."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.schemas import CloudRecord, DemandClass, DemandSnapshot, VmRecord, VmSpec
from services.planner.core import plan, resolve, vm_name
from services.planner.decisions import Policy

NOW = 1_000_000.0


def cloud(name: str = "c1", enabled: bool = True, max_vms: int = 10, per_cycle: int = 5,
          ) -> CloudRecord:
    return CloudRecord(name=name, provider="libvirt", enabled=enabled, max_vms=max_vms,
                       boots_per_cycle=per_cycle, uri="test:///default")


def cls(key: str = "k1", idle: int = 3, running: int = 0, targets: tuple[str, ...] = (),
        image: dict[str, str] | None = None, high: bool = False) -> DemandClass:
    return DemandClass(key=key, vm_type=f"type-{key}", image=image or {}, idle=idle,
                       running=running, target_clouds=targets, high_priority=high,
                       users={"alice": idle})


def demand(*classes: DemandClass, stale: bool = False) -> DemandSnapshot:
    return DemandSnapshot(source="test", taken_at=NOW, classes=classes, stale=stale,
                          stale_reason="schedd timeout" if stale else "")


def vm(seq: int, state: str = "running", key: str = "k1", cloud_name: str = "c1",
       age: float = 0.0) -> VmRecord:
    return VmRecord(vm_id=vm_name("s", cloud_name, key, seq), cloud=cloud_name,
                    intent_id=f"i{seq}", class_key=key, spec=VmSpec(vm_type=f"type-{key}"),
                    state=state,  # type: ignore[arg-type]
                    created_at=NOW - age, updated_at=NOW - age)


def boots_per_cloud(result_boots: tuple[object, ...]) -> dict[str, int]:
    return dict(Counter(b.cloud for b in result_boots))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "classes", "clouds", "vms", "expected_boots", "reason_part"),
    [
        ("boots for unmet demand", [cls(idle=3)], [cloud()], [], {"c1": 3}, "booting 3"),
        ("existing VMs count", [cls(idle=3)], [cloud()], [vm(0), vm(1, "booting")],
         {"c1": 1}, "booting 1"),
        ("running jobs keep their VMs", [cls(idle=0, running=2)], [cloud()], [vm(0), vm(1)],
         {}, "demand met: 2 VM(s)"),
        ("disabled cloud boots nothing", [cls(idle=3)], [cloud(enabled=False)], [], {},
         "c1: cloud disabled"),
        ("max_vms caps", [cls(idle=9)], [cloud(max_vms=4)], [vm(0)], {"c1": 3},
         "at max_vms (4/4)"),
        ("VMs being deleted still hold room", [cls(idle=3)], [cloud(max_vms=3)],
         [vm(0, "deleting"), vm(1, "deleting")], {"c1": 1}, "at max_vms (3/3)"),
        ("per-cycle cap", [cls(idle=9)], [cloud(per_cycle=2)], [], {"c1": 2},
         "boot limit of 2 per cycle"),
        ("spill to the next cloud", [cls(idle=5)], [cloud("a", max_vms=2), cloud("b")], [],
         {"a": 2, "b": 3}, "booting 3"),
        ("TargetClouds respected", [cls(idle=2, targets=("b",))], [cloud("a"), cloud("b")], [],
         {"b": 2}, "booting 2"),
        ("image map must name the cloud", [cls(idle=2, image={"b": "img"})],
         [cloud("a"), cloud("b")], [], {"b": 2}, "booting 2"),
        ("no image anywhere", [cls(idle=2, image={"z": "img"})], [cloud("a")], [], {},
         "a: no image for this cloud in VMAMI"),
        ("errors on a cloud hold that class there", [cls(idle=2)], [cloud()],
         [vm(0, "error")], {}, "in error here"),
        ("no clouds at all", [cls(idle=1)], [], [], {}, "no cloud configured"),
    ],
)
def test_scenarios(name: str, classes: list[DemandClass], clouds: list[CloudRecord],
                   vms: list[VmRecord], expected_boots: dict[str, int], reason_part: str) -> None:
    result = plan("s", demand(*classes), clouds, vms, NOW)
    assert boots_per_cloud(result.boots) == expected_boots, name
    assert any(reason_part in d.reason for d in result.decisions), (
        name, [d.reason for d in result.decisions])


def test_vm_ids_take_the_smallest_free_sequence_numbers() -> None:
    result = plan("s", demand(cls(idle=4)), [cloud()], [vm(0), vm(2, "error", age=1)], NOW)
    # error VMs block the class on that cloud; without one, numbers fill the gaps
    assert result.boots == ()
    result = plan("s", demand(cls(idle=4)), [cloud()], [vm(0), vm(2)], NOW)
    assert [b.vm_id for b in result.boots] == [vm_name("s", "c1", "k1", n) for n in (1, 3)]
    assert all(b.intent_id.startswith("boot-" + b.vm_id) for b in result.boots)


def test_replicas_given_the_same_state_pick_the_same_ids() -> None:
    a = plan("s", demand(cls(idle=3)), [cloud()], [vm(1)], NOW)
    b = plan("s", demand(cls(idle=3)), [cloud()], [vm(1)], NOW + 0.5)
    assert [x.vm_id for x in a.boots] == [x.vm_id for x in b.boots]


def test_high_priority_classes_are_served_first() -> None:
    result = plan("s", demand(cls("low", idle=5), cls("high", idle=3, high=True)),
                  [cloud(per_cycle=4)], [], NOW)
    assert Counter(b.class_key for b in result.boots) == {"high": 3, "low": 1}


def test_spec_resolves_per_cloud_image_and_flavor() -> None:
    c = cls(idle=1, image={"c1": "a.qcow2", "": "default.qcow2"})
    result = plan("s", demand(c), [cloud()], [], NOW)
    assert result.boots[0].spec.image == "a.qcow2"
    assert resolve({"": "d"}, "x") == "d"
    assert resolve({}, "x") == ""
    assert resolve({"y": "i"}, "x") is None


def test_without_demand_nothing_boots_and_the_reason_says_why() -> None:
    result = plan("s", None, [cloud()], [], NOW)
    assert result.boots == () and "is cs-poller running" in result.decisions[0].reason


def test_vms_of_vanished_classes_are_retired_but_not_on_stale_demand() -> None:
    vms = [vm(0, key="gone"), vm(1, key="k1")]
    fresh = plan("s", demand(cls(idle=1)), [cloud()], vms, NOW)
    assert [k.vm_id for k in fresh.kills] == [vms[0].vm_id]
    stale = plan("s", demand(cls(idle=1), stale=True), [cloud()], vms, NOW)
    assert stale.kills == ()
    assert any("stale" in d.reason for d in stale.decisions)


def test_errors_are_killed_after_a_while_and_stuck_intents_resent() -> None:
    vms = [vm(0, "error", age=100), vm(1, "error", age=5), vm(2, "requested", age=40),
           vm(3, "requested", age=1), vm(4, "deleting", age=31)]
    result = plan("s", demand(cls(idle=5)), [cloud()], vms, NOW,
                  Policy(resend_after_s=30, error_kill_after_s=60))
    assert [k.vm_id for k in result.kills] == [vms[0].vm_id]
    assert [r.vm.vm_id for r in result.resends] == [vms[2].vm_id, vms[4].vm_id]


@given(
    idles=st.lists(st.integers(0, 30), min_size=1, max_size=4),
    maxes=st.lists(st.integers(0, 12), min_size=1, max_size=3),
    per_cycle=st.integers(1, 6),
    enabled=st.lists(st.booleans(), min_size=3, max_size=3),
    existing=st.integers(0, 8),
)
def test_invariants(idles: list[int], maxes: list[int], per_cycle: int, enabled: list[bool],
                    existing: int) -> None:
    clouds = [cloud(f"c{i}", enabled=enabled[i], max_vms=m, per_cycle=per_cycle)
              for i, m in enumerate(maxes)]
    classes = [cls(f"k{i}", idle=n) for i, n in enumerate(idles)]
    vms = [vm(i, key="k0", cloud_name="c0") for i in range(existing)]
    result = plan("s", demand(*classes), clouds, vms, NOW)
    per_cloud = Counter(b.cloud for b in result.boots)
    present = Counter(v.cloud for v in vms)
    for c in clouds:
        # never a boot on a disabled cloud, never past max_vms, never past the per-cycle cap
        assert c.enabled or per_cloud[c.name] == 0
        assert per_cloud[c.name] == 0 or present[c.name] + per_cloud[c.name] <= c.max_vms
        assert per_cloud[c.name] <= c.boots_per_cycle
    for k in classes:
        booked = sum(1 for b in result.boots if b.class_key == k.key)
        have = sum(1 for v in vms if v.class_key == k.key)
        # never more VMs than jobs
        assert booked <= max(0, k.idle + k.running - have)
    assert len({b.vm_id for b in result.boots} | {v.vm_id for v in vms}) == \
        len(result.boots) + len(vms)  # no id booked twice
