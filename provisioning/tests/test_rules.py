"""Reconcile's pure rule for names that repeat on a cloud."""

from __future__ import annotations

from bus.schemas import Instance
from provisioning.rules import one_per_name


def inst(name: str, intent: str, iid: str) -> Instance:
    return Instance(name=name, cloud="c", state="running", vm_id=name, intent_id=intent,
                    instance_id=iid)


def test_the_registrys_instance_stays_whatever_the_listing_order() -> None:
    for listed in ([inst("a", "old", "1"), inst("a", "new", "2")],
                   [inst("a", "new", "2"), inst("a", "old", "1")]):
        kept, extras = one_per_name(listed, {"a": "new"})
        assert kept["a"].instance_id == "2"
        assert [e.instance_id for e in extras] == ["1"]


def test_unregistered_names_and_id_less_instances_are_left_to_the_orphan_rules() -> None:
    kept, extras = one_per_name([inst("x", "i", "1"), inst("x", "j", "2")], {})
    assert list(kept) == ["x"] and extras == []
    kept, extras = one_per_name([inst("a", "i", ""), inst("a", "j", "")], {"a": "i"})
    assert extras == []


def test_unique_names_have_no_extras() -> None:
    kept, extras = one_per_name([inst("a", "i", "1"), inst("b", "j", "2")], {"a": "i"})
    assert set(kept) == {"a", "b"} and extras == []
