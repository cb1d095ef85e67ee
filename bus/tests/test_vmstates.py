"""The table of VM states: complete, and what the writers rely on."""

from __future__ import annotations

from typing import get_args

import pytest

from bus import vmstates
from bus.schemas import VmState

STATES: list[VmState] = list(get_args(VmState))


def test_every_state_has_a_meaning_and_every_move_names_states() -> None:
    assert list(vmstates.MEANING) == STATES
    for move in vmstates.MOVES:
        assert move.source in STATES and move.target in STATES, move
        assert move.by in ("planner", "provisioner", "admin"), move


@pytest.mark.parametrize("source", STATES)
def test_a_vm_may_always_stay_and_be_killed_unless_it_is_ending(source: VmState) -> None:
    assert vmstates.may_move(source, source)
    if source != "deleting":
        assert vmstates.may_move(source, "deleting") == (source not in vmstates.ENDING)


def test_a_boots_late_result_never_overwrites_a_retire_or_kill() -> None:
    """What the provisioner's worker relies on: from retiring or deleting, no boot outcome
    (booting, running, error) may be written."""
    for source in vmstates.WINDING_DOWN:
        for outcome in ("booting", "running", "error", "requested"):
            assert not vmstates.may_move(source, outcome), (source, outcome)


def test_nothing_comes_back_from_gone_or_from_error_to_life() -> None:
    for target in vmstates.ALIVE:
        assert not vmstates.may_move("gone", target)
        assert not vmstates.may_move("error", target)
        assert not vmstates.may_move("deleting", target)
