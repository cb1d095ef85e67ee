"""The bus against a real nats-server: KV compare-and-set, dead letters, last values, errors."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bus import subjects
from bus.calls import Call
from bus.connection import Bus
from bus.errors import AdminError, BusUnavailable, ErrorCode
from bus.micro import Endpoint, serve
from bus.schemas import (
    CloudRecord,
    CloudToggleReply,
    CloudToggleRequest,
    DeadLetter,
    DemandSnapshot,
    PoolSnapshot,
    Startd,
    VmRecord,
)
from bus.tests.examples import DEMAND, INTENT, VM
from tests.collect import collect


async def _dead_letters(bus: Bus) -> tuple[asyncio.Queue[DeadLetter], asyncio.Task[None]]:
    """Collect what arrives on the dead-letter subject from now on."""
    return await collect(bus, subjects.deadletter(), DeadLetter)


def _key() -> str:
    return f"c1.vm-{uuid.uuid4().hex[:8]}"


async def test_kv_create_is_exclusive_and_update_is_compare_and_set(bus: Bus) -> None:
    kv = bus.kv(subjects.VMS_BUCKET, VmRecord)
    key = _key()
    first = await kv.create(key, VM)
    assert first is not None
    assert await kv.create(key, VM) is None  # a second planner loses the race
    running = VM.model_copy(update={"state": "running"})
    second = await kv.update(key, running, first)
    assert second is not None and second > first
    assert await kv.update(key, VM, first) is None  # stale revision: refused
    entry = await kv.get(key)
    assert entry is not None and entry.value.state == "running"
    assert key in await kv.items()
    assert await kv.delete(key, second)
    assert await kv.get(key) is None
    assert key not in await kv.items()
    assert await kv.create(key, VM) is not None  # a deleted key can be booked again


async def test_undecodable_kv_value_is_dead_lettered_not_fatal(bus: Bus) -> None:
    kv = bus.kv(subjects.VMS_BUCKET, VmRecord)
    good, bad = _key(), _key()
    await kv.create(good, VM)
    raw = await bus.js.key_value(subjects.VMS_BUCKET)
    letters, task = await _dead_letters(bus)
    await raw.put(bad, b"\x93not a record")
    items = await kv.items()
    assert good in items and bad not in items
    letter = await asyncio.wait_for(letters.get(), 5)
    assert bad in letter.subject and "VmRecord" in letter.error
    task.cancel()
    await raw.delete(bad)


async def test_bad_intent_is_dead_lettered_and_the_consumer_goes_on(bus: Bus) -> None:
    cloud = f"dl{uuid.uuid4().hex[:6]}"
    queue = await bus.intent_queue("test", cloud)
    letters, task = await _dead_letters(bus)
    await bus.js.publish(subjects.intent(cloud), b"garbage", headers={"Cs-Type": "Intent",
                                                                      "Cs-Schema": "1"})
    good = INTENT.model_copy(update={"cloud": cloud})
    await bus.js_publish(subjects.intent(cloud), good, trace="tr-9", msg_id=uuid.uuid4().hex)
    got = []
    for _ in range(5):
        got.extend(await queue.fetch(batch=5, timeout=1.0))
        if got:
            break
    assert [d.value for d in got] == [good]
    assert got[0].trace == "tr-9"
    await got[0].ack()
    letter = await asyncio.wait_for(letters.get(), 5)
    assert letter.subject == subjects.intent(cloud)
    assert "not valid msgpack" in letter.error and letter.data == b"garbage"
    assert await queue.fetch(batch=5, timeout=0.5) == []  # nothing redelivered
    task.cancel()
    await queue.close()


async def test_last_value_of_a_snapshot_subject(bus: Bus) -> None:
    await bus.js_publish(subjects.demand(), DEMAND.model_copy(update={"taken_at": 1.0}))
    await bus.js_publish(subjects.demand(), DEMAND, trace="tr-last")
    last = await bus.last(subjects.demand(), DemandSnapshot)
    assert last is not None and last.value == DEMAND and last.trace == "tr-last"


async def test_service_errors_reach_the_caller_typed(bus: Bus) -> None:
    async def refuse(req: CloudToggleRequest) -> CloudToggleReply:
        if req.name == "boom":
            raise RuntimeError("secret internals")
        raise AdminError(ErrorCode.NOT_FOUND, f"unknown cloud {req.name!r}")

    group = f"cs.test{uuid.uuid4().hex[:6]}"
    service = await serve(bus, "cs-test", "0.1.0", group, [
        Endpoint(Call("toggle", CloudToggleRequest, CloudToggleReply), refuse)])
    with pytest.raises(AdminError) as info:
        await bus.request(f"{group}.toggle", CloudToggleRequest(name="x"), CloudToggleReply)
    assert (info.value.code, info.value.message) == ("404", "unknown cloud 'x'")
    with pytest.raises(AdminError) as info:
        await bus.request(f"{group}.toggle", CloudToggleRequest(name="boom"), CloudToggleReply)
    assert info.value.code == "500" and "secret internals" not in info.value.message
    # A malformed request gets a 400 that says what was wrong.
    reply = await bus.nc.request(f"{group}.toggle", b"\x01", headers={"Cs-Type": "Nope"})
    assert reply.headers is not None and reply.headers["Nats-Service-Error-Code"] == "400"
    assert "unknown message type" in reply.headers["Nats-Service-Error"]
    await service.stop()
    with pytest.raises(AdminError) as info:
        await bus.request(f"{group}.toggle", CloudToggleRequest(name="x"), CloudToggleReply,
                          timeout=1)
    assert info.value.code == "no_responders"


async def test_a_problem_set_under_a_key_is_reported_until_cleared(bus: Bus) -> None:
    before = bus.problems
    bus.set_problem("reconcile c1", "cloud c1: clouds.yaml does not exist")
    bus.set_problem("reconcile c1", "cloud c1: clouds.yaml is not valid YAML at line 3")
    bus.set_problem("reconcile c2", "cloud c2: storage pool 'x' does not exist")
    assert bus.problems == (*before, "cloud c1: clouds.yaml is not valid YAML at line 3",
                            "cloud c2: storage pool 'x' does not exist")
    bus.set_problem("reconcile c1", "")
    bus.set_problem("reconcile c2", "")
    assert bus.problems == before


async def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(BusUnavailable, match=r"cannot reach NATS at nats://127\.0\.0\.1:1"):
        await Bus.connect("nats://127.0.0.1:1", "test", wait_s=0.5)


async def test_a_pool_of_20000_startds_fits_through_nats(bus: Bus) -> None:
    # 2.7 MB of msgpack: over NATS' 1 MiB max_payload unless compressed on the way.
    slots = tuple(Startd(vm_id=f"cs-site-cloud{n % 200}-abc123-{n}", name=f"slot1@vm{n}",
                         state="Claimed", activity="Busy", entered_state_at=float(n))
                  for n in range(20_000))
    snap = PoolSnapshot(source="big", taken_at=1.0, startds=slots)
    await bus.js_publish(subjects.pool(), snap)
    last = await bus.last(subjects.pool(), PoolSnapshot)
    assert last is not None and last.value == snap


async def test_kv_snapshot_misses_no_key_while_keys_are_being_written(bus: Bus) -> None:
    # nats-py's watch signals "initial values done" too early under concurrent writes: a
    # key replaced before it was delivered went missing from 1 in 9 snapshots.
    kv = bus.kv(subjects.VMS_BUCKET, VmRecord)
    prefix = f"stress{uuid.uuid4().hex[:6]}"
    keys = [f"{prefix}.k{i}" for i in range(40)]
    for key in keys:
        await kv.put(key, VM)
    stop = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            await kv.put(keys[n % len(keys)], VM.model_copy(update={"reason": str(n)}))
            n += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(writer())
    try:
        short = 0
        for _ in range(60):
            seen = [k for k in await kv.items() if k.startswith(prefix)]
            short += len(seen) != len(keys)
            # The filtered read, under the same writes: every key, and only these.
            under = await kv.items(prefix=f"{prefix}.")
            short += sorted(under) != sorted(keys)
        assert short == 0
    finally:
        stop.set()
        await task
        for key in keys:
            await kv.delete(key)


async def test_a_read_under_a_prefix_has_its_keys_only_with_deletes_and_empty(
    bus: Bus,
) -> None:
    kv = bus.kv(subjects.VMS_BUCKET, VmRecord)
    mine, other = f"p{uuid.uuid4().hex[:6]}", f"p{uuid.uuid4().hex[:6]}"
    assert await kv.items(prefix=f"{mine}.") == {}  # nothing under it yet: no wait
    for i in range(5):
        await kv.put(f"{mine}.k{i}", VM.model_copy(update={"reason": str(i)}))
        await kv.put(f"{other}.k{i}", VM)
    await kv.put(f"{mine}x.k0", VM)  # a longer name with the same start is not under it
    await kv.delete(f"{mine}.k3")
    revision = await kv.put(f"{mine}.k1", VM.model_copy(update={"reason": "again"}))
    under = await kv.items(prefix=f"{mine}.")
    assert sorted(under) == [f"{mine}.k{i}" for i in (0, 1, 2, 4)]
    assert under[f"{mine}.k1"] == (VM.model_copy(update={"reason": "again"}), revision)
    assert under[f"{mine}.k4"].value.reason == "4"
    whole = await kv.items()
    assert {k: v for k, v in whole.items() if k.startswith(f"{mine}.")} == under
    for key in [*under, *(f"{other}.k{i}" for i in range(5)), f"{mine}x.k0"]:
        await kv.delete(key)


async def test_a_read_under_a_prefix_gives_the_last_revision_where_several_are_kept(
    bus: Bus,
) -> None:
    # The clouds bucket keeps 5 revisions: an older one must not end the read for its key.
    kv = bus.kv(subjects.CLOUDS_BUCKET, CloudRecord)
    name = f"p{uuid.uuid4().hex[:6]}"
    first = CloudRecord(name=name, provider="libvirt", enabled=True, max_vms=1)
    for n in range(1, 4):
        revision = await kv.put(f"{name}.a", first.model_copy(update={"max_vms": n}))
    under = await kv.items(prefix=f"{name}.")
    assert under == {f"{name}.a": (first.model_copy(update={"max_vms": 3}), revision)}
    await kv.delete(f"{name}.a")
