"""Buckets and snapshot subjects held in memory, on a real nats-server: writes by another
client arrive without a read; a fresh read replaces what the watch missed; a service's own
write is seen at once; a corrupt value is dead-lettered by the read, not kept."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from bus import subjects
from bus.connection import Bus
from bus.mirror import KvMirror, LastMessage
from bus.schemas import CloudRecord, DeadLetter, DemandSnapshot
from tests.collect import collect
from tests.natsserver import NatsServer


def cloud(name: str, enabled: bool = True) -> CloudRecord:
    return CloudRecord(name=name, provider="libvirt", enabled=enabled, max_vms=1,
                       uri="test:///default")


async def until(done: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def test_a_mirror_follows_writes_deletes_and_wakes_its_loop(
    bus: Bus, nats_server: NatsServer,
) -> None:
    name = f"m{uuid.uuid4().hex[:8]}"
    kv = bus.kv(subjects.CLOUDS_BUCKET, CloudRecord)
    await kv.put(name, cloud(name))
    wake = asyncio.Event()
    mirror = KvMirror(kv, wake)
    other = await Bus.connect(nats_server.url, "other")
    try:
        assert mirror.entries() == {}
        gone = f"{name}-gone"
        await kv.put(gone, cloud(gone))
        await kv.delete(gone)  # the watch starts with its tombstone: no change, no wake-up
        loaded = await mirror.load()
        assert loaded[name].value.enabled and gone not in loaded
        other_kv = other.kv(subjects.CLOUDS_BUCKET, CloudRecord)
        sentinel = f"{name}-sentinel"
        await other_kv.put(sentinel, cloud(sentinel))
        # The watch delivers in order: once the sentinel is in, its start is behind it.
        await until(lambda: sentinel in mirror.entries(), "the watch brought no write")
        assert not mirror.note(gone, None, 10**9), "the delete of an absent key changed it"
        wake.clear()
        revision = await other_kv.put(name, cloud(name, enabled=False))
        await until(lambda: wake.is_set(), "no wake-up after another client's write")
        entry = mirror.entries()[name]
        assert (entry.value.enabled, entry.revision) == (False, revision)
        await other_kv.delete(name)
        await until(lambda: name not in mirror.entries(), "a delete was not followed")
        # A write arriving as the mirror closes: Python 3.11's wait_for (inside nats-py's
        # watcher) can swallow the cancel then, and the close must not wait for it.
        await other_kv.delete(sentinel)
        started = time.monotonic()
        await mirror.close()
        assert time.monotonic() - started < 1.0, "a close waited for its watch"
    finally:
        await mirror.close()
        await other.close()


async def test_a_load_replaces_what_the_watch_missed_and_notes_win_over_older_news(
    bus: Bus,
) -> None:
    kv = bus.kv(subjects.CLOUDS_BUCKET, CloudRecord)
    names = [f"m{uuid.uuid4().hex[:8]}" for _ in range(3)]
    mirror = KvMirror(kv)
    try:
        await mirror.load()
        await mirror.close()  # from here on only `load` and `note` change it
        for name in names:
            await kv.put(name, cloud(name))
        assert not set(names) & set(mirror.entries())
        revision = await kv.put(names[0], cloud(names[0], enabled=False))
        mirror.note(names[0], cloud(names[0], enabled=False), revision)
        mirror.note(names[0], cloud(names[0]), revision - 1)  # older news: ignored
        assert mirror.entries()[names[0]].value.enabled is False
        loaded = await mirror.load()
        assert set(names) <= set(loaded)
        assert loaded[names[0]] == (cloud(names[0], enabled=False), revision)
        await kv.delete(names[1])
        assert names[1] not in await mirror.load()
    finally:
        await mirror.close()
        for name in names:
            await kv.delete(name)


async def test_a_corrupt_value_is_left_out_and_dead_lettered_by_the_read(bus: Bus) -> None:
    name = f"m{uuid.uuid4().hex[:8]}"
    kv = bus.kv(subjects.CLOUDS_BUCKET, CloudRecord)
    raw = await kv.handle()
    letters, task = await collect(bus, subjects.deadletter(), DeadLetter)
    mirror = KvMirror(kv)
    try:
        await raw.put(name, b"\x93not a record")
        assert name not in await mirror.load()
        letter = await asyncio.wait_for(letters.get(), 5)
        assert name in letter.subject and "CloudRecord" in letter.error
        # The watch saw it too, and kept it out: it delivers in order, so once a later
        # write is in the mirror, the corrupt one went past it.
        await kv.put(f"{name}-after", cloud(f"{name}-after"))
        await until(lambda: f"{name}-after" in mirror.entries(), "the write after it")
        assert name not in mirror.entries()
    finally:
        task.cancel()
        await mirror.close()
        await kv.delete(name)
        await kv.delete(f"{name}-after")


async def test_the_last_message_arrives_without_a_read_and_a_read_keeps_newer_news(
    bus: Bus,
) -> None:
    wake = asyncio.Event()
    last = LastMessage(bus, subjects.demand(), DemandSnapshot, wake)
    await last.start()
    stamp = time.time() + 1e6  # no other test's snapshot has it
    await bus.js_publish(subjects.demand(), DemandSnapshot(source="a", taken_at=stamp),
                         trace="t-a")
    await until(lambda: wake.is_set(), "no wake-up on a new snapshot")
    seen = last.value()
    assert seen is not None and (seen.value.taken_at, seen.trace) == (stamp, "t-a")
    loaded = await last.load()
    assert loaded is not None and loaded.value.taken_at == stamp
