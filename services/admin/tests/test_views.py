"""What `cs` prints: status JSON shape, tables, and trace lines for any message."""

from __future__ import annotations

import json

from rich.console import Console

from bus.schemas import CloudCapacity, CloudStatus
from bus.tests.examples import HEALTH, STATUS, VM
from services.admin import views


def test_status_json_has_the_documented_shape() -> None:
    doc = views.status_json(STATUS)
    assert set(doc) == {"clouds", "vms", "services", "demand", "pool", "plan"}
    assert doc["services"][0]["problems"][0].startswith("nats: permissions violation")
    [vm] = doc["vms"]
    assert (vm["name"], vm["cloud"], vm["state"]) == (VM.vm_id, VM.cloud, VM.state)
    assert vm["startd"] == "Unclaimed/Idle"
    assert doc["demand"]["classes"][0]["idle"] == 5
    json.dumps(doc)  # serialisable as it stands


def test_status_tables_render_every_section() -> None:
    console = Console(width=200, record=True)
    console.print(views.status_tables(STATUS, now=10.0))
    text = console.export_text()
    for part in ("Clouds", "VMs (1)", VM.vm_id, "Unclaimed/Idle", "Demand from replay:q",
                 "Rejected jobs (1)", "VMMem: expected an integer", "Planner (p1",
                 "Services", "cs-planner", "host1", "permissions violation"):
        assert part in text


def test_cloud_health_reads_in_a_few_words() -> None:
    assert views.health_text(None, 0.0) == "ok"
    assert views.health_text(HEALTH, 9.0) == (
        "backing off 120s after 2 failure(s): permanent: bad image; "
        "w backed off 59s (1 never joined the pool)")
    assert views.health_text(HEALTH, 1000.0) == "ok"


def test_brackets_in_reasons_are_shown_not_read_as_markup() -> None:
    odd = STATUS.model_copy(update={"demand": STATUS.demand.model_copy(update={  # type: ignore[union-attr]
        "rejected": (STATUS.demand.rejected[0].model_copy(  # type: ignore[union-attr]
            update={"reason": "VMAMI: bad [red]value[/red] in [planner]"}),)})})
    odd = odd.model_copy(update={"demand": odd.demand.model_copy(update={  # type: ignore[union-attr]
        "stale": True, "stale_reason": "[poller] timeout"})})
    console = Console(width=200, record=True)
    console.print(views.status_tables(odd, now=10.0))
    text = console.export_text()
    assert "VMAMI: bad [red]value[/red] in [planner]" in text
    assert "[STALE: [poller] timeout]" in text


def test_quota_use_shows_configured_and_reported_limits() -> None:
    plain = CloudStatus(name="c", provider="libvirt", enabled=True, max_vms=5, cores_used=4,
                        memory_mb_used=8192)
    assert views.quota_text(plain) == "4 cores, 8192 MB"
    both = plain.model_copy(update={"max_cores": 8, "capacity": CloudCapacity(
        cloud="c", source="libvirt host h", max_cores=16, others_cores=2,
        max_memory_mb=15360)})
    assert views.quota_text(both) == "4 cores/8 & cloud 16 - 2 others, 8192 MB/cloud 15360"


def test_tables_fit_their_width_leaving_out_secondary_columns_never_the_state() -> None:
    narrow = Console(width=80, record=True)
    narrow.print(views.vms_table(STATUS, 10.0, width=60))
    text = narrow.export_text()
    assert all(len(line) <= 60 for line in text.splitlines())
    row = next(line for line in text.splitlines() if VM.vm_id in line)
    assert f" {VM.cloud} " in row and f" {VM.state} " in row and "…" not in text
    assert "VMs (1) (+" in text and "columns: -o wide)" in text
    assert "Unclaimed/Idle" not in text  # the startd column was left out
    wide = Console(width=300, record=True)
    wide.print(views.vms_table(STATUS, 10.0, width=None))
    assert "Unclaimed/Idle" in wide.export_text() and "-o wide" not in wide.export_text()


def test_status_shows_the_vms_needing_attention_and_says_how_to_see_all() -> None:
    some = STATUS.model_copy(update={"vm_total": 100_000, "attention_total": 700})
    console = Console(width=200, record=True)
    console.print(views.status_tables(some, now=10.0))
    text = console.export_text()
    assert "VMs needing attention (700 of 100000)" in text
    assert "the first 1 shown; every VM: cs vm list, or cs status --all" in text
    assert VM.vm_id in text


def test_status_names_what_a_class_asks_that_is_not_acted_on() -> None:
    assert STATUS.demand is not None
    cls = STATUS.demand.classes[0].model_copy(update={
        "notes": ("VMJobPerCore is not supported: a VM runs one partitionable slot",)})
    status = STATUS.model_copy(update={"demand": STATUS.demand.model_copy(
        update={"classes": (cls,)})})
    console = Console(width=120, record=True)
    console.print(views.status_tables(status, now=10.0))
    text = console.export_text()
    assert f"Not acted on:\n  {cls.key} ({cls.vm_type}): VMJobPerCore is not supported" in text
