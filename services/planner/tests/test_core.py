"""plan(): scenarios as data, plus property-based invariants."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.schemas import (
    CloudRecord,
    DemandClass,
    DemandSnapshot,
    VmRecord,
    VmSpec,
    resolve,
)
from providers.libvirt.options import LibvirtOptions
from providers.openstack.options import OpenstackOptions
from providers.slurm.options import SlurmOptions
from services.planner.core import plan, vm_name
from services.planner.decisions import Policy
from siteconfig import cloud_record

NOW = 1_000_000.0


def cloud(name: str = "c1", enabled: bool = True, max_vms: int = 10, per_cycle: int = 5,
          ) -> CloudRecord:
    return CloudRecord(name=name, provider="libvirt", enabled=enabled, max_vms=max_vms,
                       boots_per_cycle=per_cycle, address="test:///default")


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


def test_high_priority_users_are_owed_more() -> None:
    low = cls("low", idle=5).model_copy(update={"users": {"alice": 5}})
    high = cls("high", idle=3, high=True).model_copy(update={"users": {"bob": 3}})
    result = plan("s", demand(low, high), [cloud(per_cycle=4)], [], NOW,
                  Policy(high_priority_weight=4))
    assert Counter(b.class_key for b in result.boots) == {"high": 3, "low": 1}


def test_fair_share_between_users_not_by_queue_length() -> None:
    # alice queued 100 jobs, bob 2: with room for 4 VMs each gets 2, as v1 gave each user
    # an equal share instead of serving the longest queue first.
    a = cls("ka", idle=100).model_copy(update={"users": {"alice": 100}})
    b = cls("kb", idle=2).model_copy(update={"users": {"bob": 2}})
    result = plan("s", demand(a, b), [cloud(per_cycle=4)], [], NOW)
    assert Counter(x.class_key for x in result.boots) == {"ka": 2, "kb": 2}


def test_vms_already_running_count_against_a_users_share() -> None:
    a = cls("ka", idle=10).model_copy(update={"users": {"alice": 10}})
    b = cls("kb", idle=10).model_copy(update={"users": {"bob": 10}})
    vms = [vm(n, key="ka") for n in range(4)]  # alice's class already has 4
    result = plan("s", demand(a, b), [cloud(per_cycle=4, max_vms=20)], vms, NOW)
    assert Counter(x.class_key for x in result.boots) == {"kb": 4}


def test_a_user_split_over_classes_shares_one_share() -> None:
    a1 = cls("ka1", idle=5).model_copy(update={"users": {"alice": 5}})
    a2 = cls("ka2", idle=5).model_copy(update={"users": {"alice": 5}})
    b = cls("kb", idle=10).model_copy(update={"users": {"bob": 10}})
    result = plan("s", demand(a1, a2, b), [cloud(per_cycle=4)], [], NOW)
    got = Counter(x.class_key for x in result.boots)
    assert got["kb"] == 2 and got["ka1"] + got["ka2"] == 2


def test_spec_resolves_per_cloud_image_and_flavor() -> None:
    c = cls(idle=1, image={"c1": "a.qcow2", "": "default.qcow2"})
    result = plan("s", demand(c), [cloud()], [], NOW)
    assert result.boots[0].spec.image == "a.qcow2"
    assert resolve({"": "d"}, "x") == "d"
    assert resolve({}, "x") == ""
    assert resolve({"y": "i"}, "x") is None
    assert resolve({"cc-west": "i"}, "CC-West") == "i"  # v1's maps match names lowercased
    mixed = plan("s", demand(cls(idle=1, image={"cc-west": "w.qcow2"})), [cloud("CC-West")],
                 [], NOW)
    assert [b.spec.image for b in mixed.boots] == ["w.qcow2"]


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


def limited(name: str = "c1", **limits: int) -> CloudRecord:
    return cloud(name).model_copy(update=limits)


@pytest.mark.parametrize(
    ("name", "c", "classes", "vms", "expected", "reason_part"),
    [
        ("per-VM cores limit", limited(max_vm_cores=2),
         [cls(idle=2).model_copy(update={"cores": 4})], [], {},
         "a 4-core VM is over the cloud's 2-core limit"),
        ("per-VM memory limit", limited(max_vm_memory_mb=1024),
         [cls(idle=2).model_copy(update={"memory_mb": 2048})], [], {},
         "a 2048 MB VM is over the cloud's 1024 MB limit"),
        ("total cores cap the count", limited(max_cores=10),
         [cls(idle=5).model_copy(update={"cores": 4})], [], {"c1": 2},
         "cores quota reached (8/10 in use)"),
        ("total memory counts VMs already there", limited(max_memory_mb=3000),
         [cls(idle=3)], [vm(0).model_copy(update={"spec": VmSpec(vm_type="x",
                                                                  memory_mb=2000)})],
         {"c1": 1}, "memory quota reached (2512/3000 MB in use)"),
    ],
)
def test_resource_limits(name: str, c: CloudRecord, classes: list[DemandClass],
                         vms: list[VmRecord], expected: dict[str, int],
                         reason_part: str) -> None:
    result = plan("s", demand(*classes), [c], vms, NOW)
    assert boots_per_cloud(result.boots) == expected, name
    assert any(reason_part in d.reason for d in result.decisions), (
        name, [d.reason for d in result.decisions])


def _first_cloud(clouds: list[CloudRecord], vms: list[VmRecord], chain: tuple[str, ...]) -> str:
    result = plan("s", demand(cls("k9", idle=1)), clouds, vms, NOW,
                  Policy(cloud_order=chain))
    return result.boots[0].cloud


def test_cloud_order_policies() -> None:
    clouds = [limited("a", priority=5), limited("b", priority=1), limited("c", priority=1)]
    # a holds 5 of 10 VMs, b 2, c none
    vms = [vm(n, cloud_name="a") for n in range(5)] + [vm(n, cloud_name="b") for n in range(2)]
    assert _first_cloud(clouds, vms, ("priority",)) == "b"  # ties broken by name
    assert _first_cloud(clouds, vms, ("spread",)) == "c"  # emptiest
    assert _first_cloud(clouds, vms, ("fill-first",)) == "a"  # fullest
    assert _first_cloud(clouds, vms, ("fill-first", "priority")) == "a"
    assert _first_cloud(clouds, [], ("spread", "priority")) == "b"  # v1: fill, then priority


def test_vms_stuck_booting_are_killed_after_the_clouds_timeout() -> None:
    c = limited(boot_timeout_s=600)
    vms = [vm(0, "booting", age=700), vm(1, "requested", age=700), vm(2, "booting", age=100)]
    result = plan("s", demand(cls(idle=3)), [c], vms, NOW)
    assert sorted(k.vm_id for k in result.kills) == [vm(0).vm_id, vm(1).vm_id]
    assert "stuck booting for 700s" in " ".join(k.reason for k in result.kills)


@given(
    idles=st.lists(st.integers(0, 20), min_size=1, max_size=5),
    sizes=st.lists(st.tuples(st.integers(1, 8), st.sampled_from([512, 2048, 8192])),
                   min_size=5, max_size=5),
    limits=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40_000),
                              st.integers(0, 8), st.sampled_from(["a", "b"])),
                    min_size=1, max_size=3),
    targeted=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_limits_hold_and_every_unmet_class_has_a_reason(
    idles: list[int], sizes: list[tuple[int, int]],
    limits: list[tuple[int, int, int, str]], targeted: list[bool],
) -> None:
    clouds = [limited(f"c{i}", max_cores=mc, max_memory_mb=mm, max_vm_cores=mv)
              for i, (mc, mm, mv, _) in enumerate(limits)]
    classes = [cls(f"k{i}", idle=n, targets=("c0",) if targeted[i] else ()).model_copy(
        update={"cores": sizes[i][0], "memory_mb": sizes[i][1]}) for i, n in enumerate(idles)]
    result = plan("s", demand(*classes), clouds, [], NOW)
    by_key = {c.key: c for c in classes}
    for c in clouds:
        mine = [by_key[b.class_key] for b in result.boots if b.cloud == c.name]
        assert not c.max_cores or sum(k.cores for k in mine) <= c.max_cores
        assert not c.max_memory_mb or sum(k.memory_mb for k in mine) <= c.max_memory_mb
        assert not c.max_vm_cores or all(k.cores <= c.max_vm_cores for k in mine)
    for k in classes:
        booked = sum(b.class_key == k.key for b in result.boots)
        if booked < k.idle:  # unmet demand is never silent
            assert any(d.kind == "hold" and d.class_key == k.key and d.reason
                       for d in result.decisions), k


@pytest.mark.parametrize(
    ("running_at", "registered_at", "failure"),
    [(0.0, 0.0, "boot"), (NOW - 50, 0.0, "blackhole"), (NOW - 500, NOW - 400, "")],
)
def test_what_an_error_counts_against_the_cloud(running_at: float, registered_at: float,
                                                failure: str) -> None:
    dead = vm(0, "error", age=3600).model_copy(
        update={"running_at": running_at, "registered_at": registered_at,
                "reason": "stopped on the cloud"})
    result = plan("s", demand(), [cloud()], [dead], NOW)
    assert [(k.vm_id, k.failure) for k in result.kills] == [(dead.vm_id, failure)]


def test_jobs_running_elsewhere_need_no_vm_and_the_reasons_say_so() -> None:
    """A queue whose only jobs run on a static node beside the cloud boots nothing (it once
    booted one VM a running job); our VMs of that class are surplus."""
    elsewhere = cls(idle=0).model_copy(update={"running_elsewhere": 3})
    result = plan("s", demand(elsewhere), [cloud()], [], NOW)
    assert result.boots == ()
    [held] = [d for d in result.decisions if d.class_key == "k1"]
    assert held.reason == ("demand met: 0 VM(s) of type-k1 for 0 idle and 0 running job(s) "
                           "(3 running job(s) left out: they run on machines that are not "
                           "our VMs)")
    mixed = cls(idle=2, running=1).model_copy(update={"running_elsewhere": 4})
    result = plan("s", demand(mixed), [cloud()], [vm(0)], NOW)
    assert len(result.boots) == 2  # 2 idle + 1 running on our VM, which it has
    assert any("booting 2 (4 running job(s) left out" in d.reason for d in result.decisions)


def test_no_boot_where_neither_the_job_nor_the_cloud_names_an_image() -> None:
    """A boot that can only fail is a hold with the reason and the fix, not an intent."""
    common: dict[str, Any] = {"enabled": True, "max_vms": 10}
    bare = cloud_record("c1", LibvirtOptions(uri="test:///default"), **common)
    result = plan("s", demand(cls(idle=2)), [bare], [], NOW)
    assert result.boots == ()
    assert any("c1: no image: the jobs name none (VMAMI) and the cloud has no default (set "
               "base_image for cloud c1)" in d.reason for d in result.decisions), [
        d.reason for d in result.decisions]
    based = cloud_record("c1", LibvirtOptions(uri="test:///default", base_image="w.qcow2"),
                         **common)
    assert len(plan("s", demand(cls(idle=2)), [based], [], NOW).boots) == 2
    named = plan("s", demand(cls(idle=2, image={"": "j.qcow2"})), [bare], [], NOW)
    assert [b.spec.image for b in named.boots] == ["j.qcow2"] * 2
    nova = cloud_record("os1", OpenstackOptions(image="cirros"), enabled=True, max_vms=5)
    assert len(plan("s", demand(cls(idle=1)), [nova], [], NOW).boots) == 1
    # A drone boots no image: a Slurm cloud takes the jobs that name none.
    hpc = cloud_record("hpc", SlurmOptions(), enabled=True, max_vms=5)
    assert not hpc.needs_image
    assert len(plan("s", demand(cls(idle=1)), [hpc], [], NOW).boots) == 1
