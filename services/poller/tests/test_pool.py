"""Pool sensing from real `condor_status -long` text."""

from __future__ import annotations

from pathlib import Path

from services.poller.classads import read_dump
from services.poller.pool import build_pool

POOL = Path(__file__).resolve().parents[3] / "tests" / "data" / "pool.txt"


def test_our_slots_are_found_by_cs_vm_id_and_others_ignored() -> None:
    snap, problems = build_pool(read_dump(POOL), "replay:pool.txt", 5.0)
    assert [(s.vm_id, s.name, s.state, s.activity, s.entered_state_at) for s in snap.startds] == [
        ("cs-t-c1-abc123-0", "slot1@cs-t-c1-abc123-0.novalocal", "Unclaimed", "Idle",
         1764070100.0),
        ("cs-t-c1-abc123-0", "slot1_1@cs-t-c1-abc123-0.novalocal", "Claimed", "Busy",
         1764070200.0),
        ("cs-t-c1-abc123-1", "slot1@cs-t-c1-abc123-1.novalocal", "Unclaimed", "Idle",
         1764069000.5),
    ]
    assert snap.source == "replay:pool.txt" and snap.taken_at == 5.0
    assert problems == [
        "slot slot1@cs-t-c1-abc123-2.novalocal of cs-t-c1-abc123-2: "
        "EnteredCurrentState is 'yesterday'"]


def test_a_bad_vm_id_is_a_problem_not_a_crash() -> None:
    snap, problems = build_pool([{"CS_VM_ID": 7, "Name": "slot1@x"}], "t", 0.0)
    assert snap.startds == () and problems == ["slot 'slot1@x': CS_VM_ID is not a name: 7"]
