"""The poller's loop on a real bus: snapshots, stale data that keeps what it knew, and
condor actions carried out and reported."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from bus import subjects
from bus.connection import Bus
from bus.schemas import CondorAction, CondorActionDone, DemandSnapshot, PoolSnapshot
from services.poller.condor import BindingsSource, ReplaySource
from services.poller.shell import Poller
from tests.collect import collect

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def replay(tmp_path: Path) -> ReplaySource:
    queue, pool = tmp_path / "q.txt", tmp_path / "pool.txt"
    shutil.copy(ROOT / "examples" / "demo-queue.txt", queue)
    shutil.copy(ROOT / "tests" / "data" / "pool.txt", pool)
    return ReplaySource(queue, pool)


RUNNING = """
ClusterId = 9
ProcId = {proc}
Owner = "alice"
JobStatus = 2
RemoteHost = "{slot}"
Requirements = (VMType =?= "worker")
VMMem = 2048
"""


async def test_a_running_job_needs_a_vm_only_where_it_runs_on_one_of_ours(
    bus: Bus, replay: ReplaySource,
) -> None:
    """The usual mixed pool: a job running on a static node beside the cloud needs no VM of
    ours; one running on our VM (its slot in the pool) does. Without a pool read yet, a
    stale one counts every running job (nothing is let go on a blip)."""
    replay.queue_file.write_text("\n".join(RUNNING.format(proc=n, slot=slot) for n, slot in (
        (0, "slot1_1@cs-t-c1-abc123-0.novalocal"), (1, "slot1@static-node.example.org"),
        (2, "slot2@static-node.example.org"))))
    poller = Poller(bus, replay)
    await poller.step()
    demand = await bus.last(subjects.demand(), DemandSnapshot)
    assert demand is not None
    [cls] = demand.value.classes
    assert (cls.idle, cls.running, cls.running_elsewhere) == (0, 1, 2)

    assert replay.pool_file is not None
    replay.pool_file.unlink()  # the pool cannot be read: the last one seen decides
    await poller.step()
    again = await bus.last(subjects.demand(), DemandSnapshot)
    assert again is not None and again.value.classes == demand.value.classes
    fresh = Poller(bus, replay)  # and with none seen yet, every running job counts
    await fresh.step()
    counted = await bus.last(subjects.demand(), DemandSnapshot)
    assert counted is not None
    assert [(c.running, c.running_elsewhere) for c in counted.value.classes] == [(3, 0)]


async def _drain_actions(bus: Bus) -> None:
    """Leave no action of an earlier test in the shared work queue."""
    queue = await bus.condor_queue()
    while deliveries := await queue.fetch(batch=50, timeout=0.3):
        for d in deliveries:
            await d.ack()
    await queue.close()


async def test_replay_publishes_then_goes_stale_keeping_what_it_knew(
    bus: Bus, replay: ReplaySource
) -> None:
    poller = Poller(bus, replay)
    await poller.step()
    first = await bus.last(subjects.demand(), DemandSnapshot)
    pool = await bus.last(subjects.pool(), PoolSnapshot)
    assert first is not None and not first.value.stale and len(first.value.classes) == 2
    assert pool is not None and len(pool.value.startds) == 3
    assert pool.trace == first.trace
    replay.queue_file.unlink()
    assert replay.pool_file is not None
    replay.pool_file.unlink()
    await poller.step()
    second = await bus.last(subjects.demand(), DemandSnapshot)
    assert second is not None and second.value.stale
    assert "cannot read queue dump" in second.value.stale_reason
    assert second.value.classes == first.value.classes  # nothing retired on a blip
    assert second.trace == first.trace  # the same demand keeps its trace id
    stale_pool = await bus.last(subjects.pool(), PoolSnapshot)
    assert stale_pool is not None and stale_pool.value.stale
    assert stale_pool.value.startds == pool.value.startds


async def test_unreachable_pool_is_stale_with_the_reason(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(os.environ, "CONDOR_CONFIG", "ONLY_ENV")
    await Poller(bus, BindingsSource((), 20)).step()
    snap = await bus.last(subjects.demand(), DemandSnapshot)
    assert snap is not None and snap.value.stale and snap.value.source == "none"
    assert snap.value.stale_reason.startswith("jobs query failed:")
    pool = await bus.last(subjects.pool(), PoolSnapshot)
    assert pool is not None and pool.value.stale
    assert pool.value.stale_reason.startswith("startds query failed:")


async def test_retire_action_is_carried_out_and_reported(
    bus: Bus, replay: ReplaySource
) -> None:
    await _drain_actions(bus)
    poller = Poller(bus, replay)
    done, collector = await collect(bus, subjects.condor_done(), CondorActionDone)
    action = CondorAction(action_id=f"retire-{uuid.uuid4().hex[:6]}", vm_id="cs-t-c1-abc123-0",
                          action="retire", requested_at=time.time())
    await bus.js_publish(subjects.condor_action(), action, trace="tr-r")
    stop = asyncio.Event()
    server = asyncio.create_task(poller.serve_actions(stop))
    report = await asyncio.wait_for(done.get(), 10)
    stop.set()
    await server
    assert (report.action_id, report.vm_id, report.contacted, report.left_pool) == (
        action.action_id, "cs-t-c1-abc123-0", 1, False)
    await poller.step()
    pool = await bus.last(subjects.pool(), PoolSnapshot)
    assert pool is not None
    assert {s.vm_id for s in pool.value.startds} == {"cs-t-c1-abc123-1"}
    gone = await asyncio.wait_for(done.get(), 10)  # the report back once it has left
    assert (gone.action_id, gone.vm_id, gone.left_pool) == (action.action_id,
                                                             "cs-t-c1-abc123-0", True)
    collector.cancel()


async def test_a_retire_that_finds_no_master_of_a_startd_in_the_pool_is_retried(
    bus: Bus, replay: ReplaySource
) -> None:
    """The pool showed the VM's startd, but no master of it answers the retire (it joined a
    moment ago): the action is retried, not reported done and lost. Once the pool no longer
    shows it either, a retire that finds nothing is done."""
    await _drain_actions(bus)
    poller = Poller(bus, replay, retry_s=0.5)
    await poller.step()  # the pool with cs-t-c1-abc123-0's slots
    assert replay.pool_file is not None
    kept = [block for block in replay.pool_file.read_text().split("\n\n")
            if "cs-t-c1-abc123-0" not in block]
    replay.pool_file.write_text("\n\n".join(kept))  # the collector no longer has it
    action = CondorAction(action_id=f"retire-{uuid.uuid4().hex[:6]}", vm_id="cs-t-c1-abc123-0",
                          action="retire", requested_at=time.time())
    await bus.js_publish(subjects.condor_action(), action)
    queue = await bus.condor_queue()
    [delivery] = await queue.fetch(batch=1, timeout=5)
    await poller.act(delivery)
    assert delivery.outcome == "nak"
    await poller.step()  # the pool without it now
    [again] = await queue.fetch(batch=1, timeout=10)
    await poller.act(again)
    assert again.outcome == "ack"
    await queue.close()


async def test_a_failed_action_is_kept_for_a_retry(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _drain_actions(bus)
    monkeypatch.setitem(os.environ, "CONDOR_CONFIG", "ONLY_ENV")
    poller = Poller(bus, BindingsSource((), 20), retry_s=0.5)
    action = CondorAction(action_id=f"retire-{uuid.uuid4().hex[:6]}", vm_id="cs-x-0",
                          action="retire", requested_at=time.time())
    await bus.js_publish(subjects.condor_action(), action)
    queue = await bus.condor_queue()
    [delivery] = await queue.fetch(batch=1, timeout=5)
    await poller.act(delivery)  # fails: no collector here
    assert delivery.outcome == "nak"
    [again] = await queue.fetch(batch=1, timeout=10)  # back after retry_s
    assert again.value == action
    await again.ack()
    await queue.close()
