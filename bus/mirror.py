"""Buckets and snapshot subjects held in memory, kept current by the bus: a loop that looks
at the whole state on every cycle reads it without a round trip.

A mirror is an optimisation, never the truth: `load` replaces it with a fresh read (a watch
lost in a NATS outage costs at most one load interval of staleness), and every write a
service makes from what it read is a compare-and-set or a create-if-absent, which a stale
mirror can only make fail, never make wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from nats.aio.msg import Msg

from bus import codec
from bus.connection import Bus, Traced
from bus.errors import DecodeError
from bus.kv import TypedKv, Versioned
from bus.schemas import Message

M = TypeVar("M", bound=Message)

CATCH_UP_S = 2.0
"""How long a reader waits for a mirror to bring the writes made before it asked (`current`)
before it reads the bucket afresh instead, or answers from the mirror as it is."""
RELOAD_S = 300.0
"""How often a long-lived mirror is read afresh all the same: a watch that lost a delete in a
NATS outage is right again after this."""

log = logging.getLogger("bus")


def _group_of(key: str) -> str:
    """A key's first token: the cloud of a registry key `<cloud>.<vm>`."""
    return key.partition(".")[0]


class KvMirror(Generic[M]):
    """Every live key of one bucket with its value and revision; `compact`, if given, is
    applied to each value as it is decoded (`registry.compact.Compactor` shares the equal
    parts of records held by the thousand). `grouped` keeps an index by the keys' first
    token (`group`: one cloud's VMs without looking at the others')."""

    def __init__(self, kv: TypedKv[M], wake: asyncio.Event | None = None,
                 compact: Callable[[M], M] | None = None, grouped: bool = False) -> None:
        self._kv = kv
        self._groups: dict[str, dict[str, Versioned[M]]] | None = {} if grouped else None
        self._loaded = False
        self._first_load = asyncio.Event()
        self._loading = asyncio.Lock()  # one read of the bucket at a time
        self._healing: asyncio.Task[None] | None = None  # a load started by `current`
        self._wake = wake  # set after each change the watch applies
        self._entries: dict[str, Versioned[M]] = {}
        self._revisions: dict[str, int] = {}  # of the last write seen per key, deletes too
        self._watch: asyncio.Task[None] | None = None
        self._closed = False  # the watch ends at its next entry even if a cancel was lost
        self._compact = compact
        self._high = 0  # the newest revision this mirror holds: every write up to it is in
        self._advanced = asyncio.Event()  # set when _high grows

    def entries(self) -> dict[str, Versioned[M]]:
        """The mirrored bucket (a copy: the caller may keep it across awaits)."""
        return dict(self._entries)

    def group(self, name: str) -> dict[str, Versioned[M]]:
        """The entries whose key's first token is `name` (a copy), for a grouped mirror."""
        if self._groups is None:
            raise TypeError("group() of a mirror made without grouped=True")
        return dict(self._groups.get(name, {}))

    @property
    def loaded(self) -> bool:
        """Whether a `load` has succeeded (before, the mirror holds nothing to go by)."""
        return self._loaded

    async def wait_loaded(self, timeout: float) -> bool:
        """Wait up to `timeout` for the first `load` someone else makes; whether it came."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_load.wait(), timeout)
        return self._loaded

    async def keep_loaded(self, stop: asyncio.Event, every_s: float = RELOAD_S) -> None:
        """`load` now and every `every_s` until `stop` (a failed load is logged and tried
        again at the next); the watch keeps the mirror current in between."""
        while not stop.is_set():
            try:
                await self.load()
            except Exception as exc:  # NATS away: readers fall back or wait, and so does this
                log.warning("read of %s failed: %r; again in %.0fs", self._kv.bucket, exc,
                            every_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    async def ensure_loaded(self) -> None:
        """`load`, unless a load has succeeded (one in progress is waited for, not doubled)."""
        if not self._loaded:
            async with self._loading:
                if not self._loaded:
                    await self._load()

    async def load(self) -> dict[str, Versioned[M]]:
        """Read the whole bucket afresh, make it the mirror (keeping writes the watch saw
        after the read), start the watch if it is not running; the entries."""
        async with self._loading:
            return await self._load()

    async def _load(self) -> dict[str, Versioned[M]]:
        floor = await self._kv.last_revision()  # the read is at least this new
        fresh = await self._kv.items(known=self._entries, compact=self._compact)
        newest = max((v.revision for v in fresh.values()), default=0)
        for key, revision in self._revisions.items():
            if revision > newest:
                # Written after the read reached it: the watch's view is the newer one.
                if key in self._entries:
                    fresh[key] = self._entries[key]
                else:
                    fresh.pop(key, None)
        self._entries = fresh
        self._revisions = {k: v.revision for k, v in fresh.items()} | {
            k: r for k, r in self._revisions.items() if r > newest}
        if self._groups is not None:
            groups: dict[str, dict[str, Versioned[M]]] = {}
            for key, entry in fresh.items():
                groups.setdefault(_group_of(key), {})[key] = entry
            self._groups = groups
        self._loaded = True
        self._first_load.set()
        self._reached(floor)
        if not self._closed and (self._watch is None or self._watch.done()):
            # After the read: the watch starts with every key's last value, which the read
            # already has (skipped, not decoded a second time).
            self._watch = asyncio.create_task(self._follow())
        return self.entries()

    async def current(self, timeout: float) -> bool:
        """Wait until the mirror holds every write the bucket held when asked (one round
        trip, then the watch catching up): a reader's answer then includes every write
        that finished before it asked. False when the watch did not get there within
        `timeout` (a NATS outage, a watch restarting): the mirror stays as it is, and a
        fresh `load` starts in the background (should the watch never get there, as when the
        bucket's newest message was removed, the next answers need not wait again)."""
        if not self._loaded:
            return False
        target = await self._kv.last_revision()
        deadline = asyncio.get_running_loop().time() + timeout
        while self._high < target:
            self._advanced.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                if not self._loading.locked() and (
                        self._healing is None or self._healing.done()):
                    self._healing = asyncio.create_task(self._heal())
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), left)
        return True

    async def _heal(self) -> None:
        try:
            await self.load()
        except Exception as exc:  # NATS away: the next reader that waits in vain tries again
            log.warning("read of %s behind its watch failed: %r", self._kv.bucket, exc)

    def _reached(self, revision: int) -> None:
        if revision > self._high:
            self._high = revision
            self._advanced.set()

    def note(self, key: str, value: M | None, revision: int) -> bool:
        """A write this service made (None: a delete), so the next cycle sees it even
        before the watch brings it back; whether the mirror changed (older news, or the
        delete of a key it does not hold, changes nothing)."""
        if revision <= self._revisions.get(key, 0):
            return False
        self._revisions[key] = revision
        group = None if self._groups is None else self._groups.setdefault(_group_of(key), {})
        if value is None:
            if self._entries.pop(key, None) is None:
                return False
            if group is not None:
                group.pop(key, None)
        else:
            if self._compact is not None:
                value = self._compact(value)
            self._entries[key] = Versioned(value, revision)
            if group is not None:
                group[key] = self._entries[key]
        return True

    async def _follow(self) -> None:
        while not self._closed:
            try:
                await self._watch_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next `load` is correct either way; watch again
                log.warning("watch of %s failed: %r; again in 1s", self._kv.bucket, exc)
                await asyncio.sleep(1.0)

    async def _watch_once(self) -> None:
        watcher = await (await self._kv.handle()).watchall()
        try:
            while not self._closed:
                try:
                    entry = await watcher.updates(timeout=3600)  # type: ignore[no-untyped-call]
                except TimeoutError:
                    continue
                if entry is None:
                    continue  # "initial values done"
                if (entry.revision or 0) <= self._revisions.get(entry.key, 0):
                    self._reached(entry.revision or 0)
                    continue  # a value this mirror has
                value: M | None = None
                if entry.operation not in ("DEL", "PURGE"):
                    try:
                        value = self._kv.decode(entry.key, entry.value)
                    except DecodeError:
                        self._reached(entry.revision or 0)
                        continue  # `load` dead-letters it: once per read, not per watch
                changed = self.note(entry.key, value, entry.revision or 0)
                self._reached(entry.revision or 0)
                if changed and self._wake is not None:
                    # Not for a tombstone the watch starts with: the key was gone already.
                    self._wake.set()
        finally:
            with contextlib.suppress(Exception):
                # Bounded: a stop is an unsubscribe round trip; it must not hold a close.
                await asyncio.wait_for(watcher.stop(), 2.0)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        """Stop following the bucket (a `load` after this reads, but starts no watch)."""
        self._closed = True
        if self._healing is not None:
            self._healing.cancel()
            await asyncio.gather(self._healing, return_exceptions=True)
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._watch, 5.0)


class LastMessage(Generic[M]):
    """The last message on one snapshot subject, as it arrives, with a wake-up for a loop
    waiting on it."""

    def __init__(self, bus: Bus, subject: str, schema: type[M],
                 wake: asyncio.Event | None = None) -> None:
        self._bus = bus
        self._subject = subject
        self._schema = schema
        self._wake = wake  # set after each message that arrives
        self._last: Traced[M] | None = None
        self._arrivals = 0

    async def start(self) -> None:
        """Follow the subject (core NATS: every message the stream stores is seen)."""
        await self._bus.nc.subscribe(self._subject, cb=self._arrived)

    async def _arrived(self, msg: Msg) -> None:
        headers = codec.headers_of(msg.headers)
        try:
            value = codec.decode(msg.data, headers, self._schema, self._subject)
        except DecodeError:
            return  # `load` reads it from the stream and dead-letters it
        self._last = Traced(value, codec.trace_of(headers))
        self._arrivals += 1
        if self._wake is not None:
            self._wake.set()

    def value(self) -> Traced[M] | None:
        """The last message seen (by `load` or as it arrived)."""
        return self._last

    async def load(self) -> Traced[M] | None:
        """Read the last message from the stream afresh (one that arrives meanwhile is at
        least as new, and is kept)."""
        arrivals = self._arrivals
        stored = await self._bus.last(self._subject, self._schema)
        if self._arrivals == arrivals:
            self._last = stored
        return self._last
