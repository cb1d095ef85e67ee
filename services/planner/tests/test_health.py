"""Failure accounting: exponential backoff per cloud, brake per (cloud, VM type)."""

from __future__ import annotations

from bus.schemas import CloudHealth, CloudRecord, DemandClass, DemandSnapshot, VmRecord, VmSpec
from services.planner.core import plan
from services.planner.decisions import Kill, Policy
from services.planner.health import after_failure, backoff_s, blocked, recovered

NOW = 1_000_000.0
POLICY = Policy(backoff_base_s=60, backoff_max_s=600)


def kill(failure: str) -> Kill:
    return Kill("c1", "vm-1", "kill-1", "permanent: image not found",
                failure)  # type: ignore[arg-type]


def vm(state: str, updated: float, registered: float = 0.0) -> VmRecord:
    return VmRecord(vm_id="vm-2", cloud="c1", intent_id="b", class_key="k",
                    spec=VmSpec(vm_type="w"), state=state,  # type: ignore[arg-type]
                    created_at=updated - 10, updated_at=updated, registered_at=registered)


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(n, POLICY) for n in range(6)] == [0, 60, 120, 240, 480, 600]


def test_boot_failures_back_the_cloud_off() -> None:
    h = after_failure(None, kill("boot"), "w", NOW, POLICY)
    h = after_failure(h, kill("boot"), "w", NOW + 1, POLICY)
    assert (h.failures, h.backoff_until, h.reason) == (2, NOW + 121,
                                                       "permanent: image not found")
    assert blocked(h, "w", NOW + 100) == (
        "backing off for 21s after 2 failure(s): permanent: image not found")
    assert blocked(h, "other", NOW + 100) is not None  # the whole cloud
    assert blocked(h, "w", NOW + 200) is None


def test_black_holes_brake_only_their_type() -> None:
    h = after_failure(None, kill("blackhole"), "w", NOW, POLICY)
    assert h.failures == 0 and h.type_failures == {"w": 1}
    assert blocked(h, "w", NOW + 10) == "w backed off for 50s here: 1 VM(s) never joined the pool"
    assert blocked(h, "other", NOW + 10) is None


def test_a_vm_that_comes_up_resets_the_cloud_and_a_registered_one_its_type() -> None:
    h = after_failure(after_failure(None, kill("boot"), "w", NOW, POLICY), kill("blackhole"),
                      "w", NOW, POLICY)
    assert recovered(h, [vm("running", NOW - 5)], NOW + 1) is None  # older than the failure
    up = recovered(h, [vm("running", NOW + 30)], NOW + 31)
    assert up is not None and up.failures == 0 and up.backoff_until == 0
    assert up.type_failures == {"w": 1}  # running is not registered
    joined = recovered(h, [vm("running", NOW + 30, registered=NOW + 40)], NOW + 41)
    assert joined is not None and joined.type_failures == {} and joined.type_backoff_until == {}


def test_plan_skips_a_cloud_in_backoff_with_the_reason() -> None:
    cls = DemandClass(key="k", vm_type="w", idle=3, users={"a": 3})
    d = DemandSnapshot(source="t", taken_at=NOW, classes=(cls,))
    clouds = [CloudRecord(name="c1", provider="libvirt", enabled=True, max_vms=10),
              CloudRecord(name="c2", provider="libvirt", enabled=True, max_vms=10)]
    h = CloudHealth(cloud="c1", failures=1, last_failure_at=NOW, backoff_until=NOW + 60,
                    reason="out_of_resources: quota exceeded")
    result = plan("s", d, clouds, [], NOW + 1, health={"c1": h})
    assert {b.cloud for b in result.boots} == {"c2"}
    result = plan("s", d, clouds[:1], [], NOW + 1, health={"c1": h})
    assert result.boots == ()
    assert any("c1: backing off for 59s after 1 failure(s): out_of_resources: quota exceeded"
               in x.reason for x in result.decisions)


def test_failures_are_labelled_on_the_kills_that_cause_them() -> None:
    d = DemandSnapshot(source="t", taken_at=NOW, classes=(
        DemandClass(key="k", vm_type="w", idle=1, users={"a": 1}),))
    err = vm("error", NOW - 100).model_copy(update={"vm_id": "e", "reason": "permanent: x"})
    stuck = vm("booting", NOW).model_copy(update={"vm_id": "s", "created_at": NOW - 5000})
    c = CloudRecord(name="c1", provider="libvirt", enabled=True, max_vms=10,
                    boot_timeout_s=600)
    result = plan("s", d, [c], [err, stuck], NOW)
    assert {(k.vm_id, k.failure) for k in result.kills} == {("e", "boot"), ("s", "boot")}
