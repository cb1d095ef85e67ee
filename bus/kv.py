"""Typed KV buckets: every value of a bucket one schema, read as a consistent snapshot (one
ordered watch, or a subject-filtered read of the bucket's stream for a key prefix), written
with compare-and-set. Undecodable values are dead-lettered, never returned."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

import nats.js.errors
import nats.js.kv
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from bus import codec
from bus.errors import DecodeError
from bus.schemas import Message

if TYPE_CHECKING:
    from bus.connection import Bus

M = TypeVar("M", bound=Message)

log = logging.getLogger("bus")

READ_CONSUMER_IDLE_S = 5.0
"""How long the server keeps a finished read's consumer that could not be deleted."""
_MAX_LISTED_SUBJECTS = 100_000
"""nats-server answers a stream's subject list in pages of this many."""


class Versioned(NamedTuple, Generic[M]):
    """A KV value with the revision to compare-and-set against."""

    value: M
    revision: int


class TypedKv(Generic[M]):
    """A KV bucket whose values are all of one schema."""

    def __init__(self, bus: Bus, bucket: str, schema: type[M]) -> None:
        self._bus = bus
        self._bucket = bucket
        self._schema = schema
        self._handle: nats.js.kv.KeyValue | None = None

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self._bucket

    async def handle(self) -> nats.js.kv.KeyValue:
        """nats-py's handle on the bucket (for `bus.mirror`)."""
        # Binding asks the server for the bucket's stream info: once per TypedKv, not per call.
        if self._handle is None:
            self._handle = await self._bus.js.key_value(self._bucket)
        return self._handle

    def decode(self, key: str, data: bytes | None) -> M:
        """A value of `key` as stored; DecodeError when it is not one of the schema."""
        return codec.decode_body(data or b"", self._schema, f"$KV.{self._bucket}.{key}")

    async def get(self, key: str) -> Versioned[M] | None:
        """The current value and revision of `key`; None when absent, deleted, or
        undecodable (then dead-lettered, like `items`)."""
        kv = await self.handle()
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        try:
            return Versioned(self.decode(key, entry.value), entry.revision or 0)
        except DecodeError as exc:
            await self._bus.dead_letter(exc.subject, entry.value or b"", {}, str(exc))
            return None

    async def last_revision(self) -> int:
        """The bucket's newest revision (its stream's last sequence: any key's write or
        delete); 0 when it holds no message."""
        info = await self._bus.js.stream_info(f"KV_{self._bucket}")
        return int(info.state.last_seq) if info.state.messages else 0

    async def items(
        self, timeout: float = 10.0, known: Mapping[str, Versioned[M]] | None = None,
        compact: Callable[[M], M] | None = None, prefix: str = "",
    ) -> dict[str, Versioned[M]]:
        """Every live key with its value; undecodable values are dead-lettered and skipped.
        Values in `known` at the revision read are reused, not decoded again; `compact` is
        applied to each value as it is decoded (before the next one is: see `registry.compact`).
        With `prefix` (ending in "."), only the keys under it, read by a filtered consumer:
        the server sends only those (a provisioner reads its cloud's VMs, not everyone's).

        A snapshot at least as new as the call: the watch is read up to the bucket's last
        sequence, asked again once reached, until no newer write arrived meanwhile. The
        watcher's own "initial values done" signal (pending count 0) is not enough while keys
        are being written: a key whose old value is replaced before it is delivered would go
        missing (seen in a stress test: 1 in 9 snapshots short of a key).
        """
        out: dict[str, Versioned[M]] = {}

        async def take(key: str, operation: str | None, data: bytes | None,
                       revision: int) -> None:
            if operation in ("DEL", "PURGE"):
                out.pop(key, None)
            elif known is not None and (same := known.get(key)) is not None \
                    and same.revision == revision:
                out[key] = same
            else:
                try:
                    value = self.decode(key, data)
                    if compact is not None:
                        value = compact(value)
                    out[key] = Versioned(value, revision)
                except DecodeError as exc:
                    await self._bus.dead_letter(exc.subject, data or b"", {}, str(exc))

        if prefix and await self._read_under(prefix, timeout, take):
            return out
        kv = await self.handle()
        target = await self.last_revision()
        if not target:
            return out
        # A snapshot's watch ends here: its consumer is dropped by the server soon after, not
        # kept the library's default 5 minutes (see `Bus.drop_consumer`).
        watcher = await kv.watchall(inactive_threshold=READ_CONSUMER_IDLE_S)
        try:
            while True:
                entry = await watcher.updates(timeout=timeout)  # type: ignore[no-untyped-call]
                if entry is None:
                    continue  # the watcher's premature "initial values done" marker
                if entry.key.startswith(prefix):
                    await take(entry.key, entry.operation, entry.value, entry.revision or 0)
                if (entry.revision or 0) >= target:
                    latest = await self.last_revision()
                    if latest <= (entry.revision or 0):
                        break
                    target = latest
        finally:
            # nats-py's KeyWatcher keeps its subscription in `_sub` (no public handle).
            await self._bus.drop_consumer(f"KV_{self._bucket}", watcher._sub)
            with contextlib.suppress(Exception):  # its tasks; the subscription is gone
                await watcher.stop()  # type: ignore[no-untyped-call]
        return out

    async def _read_under(
        self, prefix: str, timeout: float,
        take: Callable[[str, str | None, bytes | None, int], Awaitable[None]],
    ) -> bool:
        """Hand each key's last message under `prefix` to `take`, then what is written
        meanwhile, in order, until each key the stream held under it when asked has come;
        False (nothing read) when there are too many keys to list in one answer. The end is
        the list of keys, not the consumer's pending count: that count runs short while keys
        are rewritten during the read (a rewritten key's old message is removed; seen in the
        stress test: 4 short reads in 60), and so did nats-py's watch built on it."""
        stream = f"KV_{self._bucket}"
        head = f"$KV.{self._bucket}."
        info = await self._bus.js.stream_info(stream, subjects_filter=f"{head}{prefix}>")
        waiting = {s[len(head):] for s in (info.state.subjects or {})}
        if len(waiting) >= _MAX_LISTED_SUBJECTS:
            return False  # the server pages longer lists; the caller reads the whole bucket
        if not waiting:
            return True
        arrived: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_msg(msg: Msg) -> None:
            await arrived.put(msg)

        async def hand(msg: Msg) -> str:
            key = msg.subject[len(head):]
            await take(key, (msg.headers or {}).get("KV-Operation"), msg.data,
                       msg.metadata.sequence.stream)
            return key

        # Each key's last message when the consumer starts (no older revision of a bucket
        # that keeps several), then whatever is written meanwhile, in order.
        sub = await self._bus.js.subscribe(
            f"{head}{prefix}>", stream=stream, cb=on_msg, ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            inactive_threshold=READ_CONSUMER_IDLE_S)
        try:
            while waiting:
                waiting.discard(await hand(await asyncio.wait_for(arrived.get(), timeout)))
            while not arrived.empty():  # sent with the last awaited key: newer still
                await hand(arrived.get_nowait())
        finally:
            await self._bus.drop_consumer(stream, sub)
        return True

    async def create(self, key: str, value: M) -> int | None:
        """Create `key` only if absent; the new revision, or None when it already exists."""
        kv = await self.handle()
        try:
            return await kv.create(key, codec.encode_body(value))
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    async def put(self, key: str, value: M) -> int:
        """Write `key` unconditionally (for values with a single writer); the new revision."""
        kv = await self.handle()
        return await kv.put(key, codec.encode_body(value))

    async def update(self, key: str, value: M, revision: int) -> int | None:
        """Compare-and-set: write only if `key` is still at `revision`; None on conflict."""
        kv = await self.handle()
        try:
            return await kv.update(key, codec.encode_body(value), last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    async def delete(self, key: str, revision: int | None = None) -> bool:
        """Delete `key` (only if at `revision` when given); False on CAS conflict."""
        kv = await self.handle()
        try:
            await kv.delete(key, last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        except nats.js.errors.APIError as exc:
            if exc.err_code in (10071, 10164):
                return False
            raise
        return True
