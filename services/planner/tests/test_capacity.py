"""Reported capacity narrows a cloud's limits: tables for the rule, a property for plan()."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.schemas import CloudCapacity, CloudRecord
from services.planner.capacity import within
from services.planner.core import plan
from services.planner.tests.test_core import NOW, cls, demand, vm


def record(**limits: int) -> CloudRecord:
    return CloudRecord.model_validate({"name": "c1", "provider": "libvirt", "enabled": True,
                                       "max_vms": 100, "boots_per_cycle": 100, **limits})


def report(**figures: int) -> CloudCapacity:
    return CloudCapacity(cloud="c1", source="libvirt host h1", **figures)


@pytest.mark.parametrize(
    ("configured", "reported", "expected"),
    [
        ({}, {"max_cores": 16}, {"max_cores": 16}),
        ({}, {"max_cores": 16, "others_cores": 6}, {"max_cores": 10}),
        ({"max_cores": 8}, {"max_cores": 16, "others_cores": 6}, {"max_cores": 8}),
        ({"max_cores": 12}, {"max_cores": 16, "others_cores": 6}, {"max_cores": 10}),
        ({}, {"max_cores": 4, "others_cores": 9}, {"max_cores": -1}),
        ({"max_cores": 8}, {"max_cores": 4, "others_cores": 4}, {"max_cores": -1}),
        ({}, {"max_instances": 3, "others_instances": 3}, {"max_vms": 0}),
        ({}, {"max_memory_mb": 16384, "others_memory_mb": 4096}, {"max_memory_mb": 12288}),
        ({"max_vms": 100}, {"max_instances": 10, "others_instances": 3}, {"max_vms": 7}),
        ({"max_vms": 5}, {"max_instances": 10, "others_instances": 3}, {"max_vms": 5}),
        ({}, {}, {}),
    ],
)
def test_the_tighter_limit_wins(configured: dict[str, int], reported: dict[str, int],
                                expected: dict[str, int]) -> None:
    narrowed, note = within(record(**configured), report(**reported))
    base = record(**configured)
    for key, value in expected.items():
        assert getattr(narrowed, key) == value, key
    changed = any(getattr(narrowed, k) != getattr(base, k) for k in expected)
    assert (note is not None) == changed
    if note is not None:
        assert "libvirt host h1 reports" in note


def test_a_cloud_without_a_report_keeps_its_limits() -> None:
    c = record(max_cores=4)
    assert within(c, None) == (c, None)


def test_plan_stops_at_the_reported_room_and_says_why() -> None:
    c = record()
    k = cls(idle=10).model_copy(update={"cores": 2})
    result = plan("s", demand(k), [c], [vm(0)], NOW,
                  capacity={"c1": report(max_cores=8, others_cores=2)})
    # 6 cores of room; our running VM (1 core spec default) holds 1 -> 2 more 2-core VMs.
    assert len(result.boots) == 2
    reasons = " | ".join(d.reason for d in result.decisions)
    assert "planning within max_cores 6" in reasons
    assert "cores quota reached" in reasons


@given(
    cores=st.integers(0, 64), others=st.integers(0, 64), memory=st.integers(0, 65536),
    others_mem=st.integers(0, 65536), idle=st.integers(0, 50), size=st.integers(1, 8),
)
def test_boots_never_exceed_what_the_cloud_reports(
    cores: int, others: int, memory: int, others_mem: int, idle: int, size: int,
) -> None:
    k = cls(idle=idle).model_copy(update={"cores": size, "memory_mb": 1024})
    cap = report(max_cores=cores, others_cores=others, max_memory_mb=memory,
                 others_memory_mb=others_mem)
    result = plan("s", demand(k), [record()], [], NOW, capacity={"c1": cap})
    used_cores = size * len(result.boots)
    used_mem = 1024 * len(result.boots)
    assert not cores or used_cores <= max(0, cores - others)
    assert not memory or used_mem <= max(0, memory - others_mem)
    if len(result.boots) < idle:
        assert any(d.kind == "hold" and d.class_key == k.key for d in result.decisions)
