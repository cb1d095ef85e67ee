"""The connection helper: one `Bus` per process, typed KV access, typed publish/request.

A `Bus` wraps a nats-py client with reconnect forever, JetStream, and the codec, so services
never see raw bytes, subject strings of their own, or nats-py exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, NamedTuple, TypeVar
from urllib.parse import urlparse

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bus import codec, infra, subjects
from bus.errors import AdminError, BusUnavailable, DecodeError
from bus.metrics import Metrics
from bus.schemas import CondorAction, DeadLetter, Intent, Message

M = TypeVar("M", bound=Message)
R = TypeVar("R", bound=Message)

log = logging.getLogger("bus")

READ_CONSUMER_IDLE_S = 5.0
"""How long the server keeps a finished read's consumer that could not be deleted."""
_MAX_LISTED_SUBJECTS = 100_000
"""nats-server answers a stream's subject list in pages of this many."""

HANDLER_GRACE_S = 5.0
"""How long a stopping consumer lets the messages in hand be handled before cancelling."""

SERVICE_ERROR = "Nats-Service-Error"
SERVICE_ERROR_CODE = "Nats-Service-Error-Code"


class Versioned(NamedTuple, Generic[M]):
    """A KV value with the revision to compare-and-set against."""

    value: M
    revision: int


class Traced(NamedTuple, Generic[M]):
    """A message with the trace id it carried."""

    value: M
    trace: str


@dataclass(frozen=True)
class RawMessage:
    """A message as it travelled, for tracing."""

    subject: str
    headers: dict[str, str]
    data: bytes


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


class Backlog(NamedTuple):
    """A work queue's consumer at one moment."""

    pending: int
    """Messages not yet delivered to any replica."""
    unacked: int
    """Messages delivered and not yet acked (in a handler, or waiting out a nak's delay)."""
    waiting: int
    """Pull requests waiting for messages: replicas ready for work."""


class Delivery(Generic[M]):
    """One decoded work-queue message with its acknowledgement handles."""

    def __init__(self, msg: Msg, value: M, trace: str) -> None:
        self._msg = msg
        self.value = value
        self.trace = trace
        self.outcome: Literal["", "ack", "nak", "term"] = ""
        """How the handler settled it (empty while it has not): what tests wait for."""

    async def ack(self) -> None:
        """Done: remove it from the work queue."""
        await self._msg.ack()
        self.outcome = "ack"

    async def nak(self, delay: float) -> None:
        """Not now: redeliver after `delay` seconds."""
        await self._msg.nak(delay=delay)
        self.outcome = "nak"

    async def term(self) -> None:
        """Never: drop it without redelivery (the reason must already be recorded)."""
        await self._msg.term()
        self.outcome = "term"


class WorkQueue(Generic[M]):
    """A durable pull consumer of a work-queue stream, shared by all replicas of a service."""

    def __init__(
        self, bus: Bus, sub: JetStreamContext.PullSubscription, schema: type[M]
    ) -> None:
        self._bus = bus
        self._sub = sub
        self._schema = schema

    async def fetch(self, batch: int = 10, timeout: float = 1.0) -> list[Delivery[M]]:
        """Up to `batch` messages; bad ones are dead-lettered and terminated here."""
        try:
            msgs = await self._sub.fetch(batch, timeout=timeout)
        except (nats.errors.TimeoutError, TimeoutError):
            # An empty queue: nats-py raises either its own or asyncio's TimeoutError,
            # depending on where in the pull the deadline passes.
            return []
        out: list[Delivery[M]] = []
        for msg in msgs:
            headers = dict(msg.headers or {})
            try:
                value = codec.decode(msg.data, headers, self._schema, msg.subject)
            except DecodeError as exc:
                await self._bus.dead_letter(msg.subject, msg.data, headers, str(exc))
                await msg.term()
                continue
            out.append(Delivery(msg, value, codec.trace_of(headers)))
        return out

    async def close(self) -> None:
        """Stop pulling (the durable consumer stays for the next replica)."""
        await self._sub.unsubscribe()

    async def serve(
        self, stop: asyncio.Event, handle: Callable[[Delivery[M]], Awaitable[None]],
        key: Callable[[M], str] | None = None, batch: int = 10,
    ) -> None:
        """Hand every message to `handle` (which acks or naks it) until `stop` is set.

        With `key`, up to `batch` messages are handled at once, continuously (a slow one does
        not hold up the others), those with the same key one after the other in queue order
        (a boot and a kill of one VM never race); without, one at a time.
        """
        inflight: set[asyncio.Task[None]] = set()
        tails: dict[str, asyncio.Task[None]] = {}

        async def after(before: asyncio.Task[None] | None, delivery: Delivery[M]) -> None:
            if before is not None:
                await asyncio.wait([before])
            try:
                await handle(delivery)
            except asyncio.CancelledError:
                # Stopping with it in hand: back to the queue at once for another replica,
                # not after the ack wait.
                with contextlib.suppress(Exception):
                    await delivery.nak(0)
                raise
            except Exception:
                # Not acked: it comes back after the ack wait.
                log.exception("handling %s failed", delivery.value.__class__.__name__)

        try:
            while not stop.is_set():
                if key is None:
                    for delivery in await self.fetch(batch=batch, timeout=1.0):
                        await handle(delivery)
                    continue
                room = batch - len(inflight)
                if room <= 0:
                    await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                for delivery in await self.fetch(batch=room, timeout=1.0):
                    lane = key(delivery.value)
                    task = asyncio.create_task(after(tails.get(lane), delivery))
                    tails[lane] = task
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                    task.add_done_callback(functools.partial(_forget, tails, lane))
        finally:
            if inflight:
                # Handlers finish what they are doing, for a while: one stuck in a cloud
                # call that never returns is cancelled; its message, unacked, comes back.
                await asyncio.wait(inflight, timeout=HANDLER_GRACE_S)
                for task in inflight:
                    task.cancel()
                await asyncio.gather(*inflight, return_exceptions=True)
            await self.close()


def redacted(url: str) -> str:
    """`url` without passwords or tokens (URLs reach logs and error messages)."""
    out = []
    for one in url.split(","):
        parsed = urlparse(one.strip())
        if parsed.password or parsed.username:
            host = parsed.hostname or ""
            port = f":{parsed.port}" if parsed.port else ""
            one = parsed._replace(netloc=f"{parsed.username or ''}:***@{host}{port}").geturl()
        out.append(one)
    return ",".join(out)


def _forget(tails: dict[str, asyncio.Task[None]], lane: str, done: asyncio.Task[None]) -> None:
    """Drop a lane's last task once it is done, unless a later one took its place."""
    if tails.get(lane) is done:
        del tails[lane]


async def _reachable(url: str) -> bool:
    """Whether any server of `url` (comma-separated for a cluster) accepts TCP connections."""
    for one in url.split(","):
        parsed = urlparse(one.strip())
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(parsed.hostname or "127.0.0.1", parsed.port or 4222), 2)
        except (OSError, TimeoutError):
            continue
        writer.close()
        return True
    return False


async def _refused(url: str) -> Client:
    raise ConnectionRefusedError(f"no server of {url} accepts connections")


class Bus:
    """A connected service: NATS, JetStream, typed KV and publish helpers."""

    def __init__(self, nc: Client, service: str, metrics: Metrics | None = None) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.service = service
        self.metrics = metrics or Metrics(service)
        """This process's metrics (served on /metrics by the run-loop)."""
        self._closing: list[bool] = []
        self._denied: list[str] = []
        self._noted: list[str] = []
        self._current: dict[str, str] = {}
        self._reconnects: list[float] = []

    @property
    def problems(self) -> tuple[str, ...]:
        """What the service's heartbeat reports for `cs status`: problems noted by the
        service, then the latest permission violations the server reported (asynchronous in
        NATS, so kept here), newest last."""
        return tuple(self._noted) + tuple(self._current.values()) + tuple(self._denied[-5:])

    def note_problem(self, problem: str) -> None:
        """Report a lasting problem of this process (a port it could not serve) in its
        heartbeat, so `cs status` shows it next to the service."""
        self._noted.append(problem)

    def set_problem(self, key: str, problem: str) -> None:
        """Report a problem that lasts until it is fixed (a cloud's listing failing) in the
        heartbeat, in place of the last one under `key`; "" clears it."""
        if problem:
            self._current[key] = problem
        else:
            self._current.pop(key, None)

    @property
    def reconnects(self) -> int:
        """How often this connection came back after an outage."""
        return len(self._reconnects)

    @classmethod
    async def connect(cls, url: str, service: str, wait_s: float = 30.0,
                      ca_file: str = "") -> Bus:
        """Connect to `url`, retrying for up to `wait_s` seconds, then reconnect forever.
        `tls://` URLs (or a `ca_file`) use TLS, verified against `ca_file` or else the
        system's certificate authorities."""

        closing: list[bool] = []  # set by close(), so a chosen disconnect is not a warning
        outage: list[bool] = []  # set while disconnected, so each outage is reported once

        denied: list[str] = []  # permission violations the server reported, newest last
        refused: list[str] = []  # the server refused our credentials

        tls_failed: list[ssl.SSLError] = []  # a server we cannot verify: retrying won't help
        metrics = Metrics(service)

        async def on_error(exc: Exception) -> None:
            if isinstance(exc, ssl.SSLError):
                tls_failed.append(exc)
                del tls_failed[:-1]
            if isinstance(exc, OSError) and outage:
                return  # nats-py reports every reconnect attempt of an outage
            if "authorization violation" in str(exc).lower():
                refused.append(str(exc))  # nats-py keeps retrying; connect() gives up on it
                return
            if "permissions violation" in str(exc).lower():
                # Asynchronous in NATS: the publish "succeeded"; the server said no later.
                denied.append(str(exc))
                del denied[:-20]
                metrics.bus_permission_errors.inc()
                log.error("nats permission denied service=%s error=%s", service, exc)
                return
            log.warning("nats error service=%s error=%r", service, exc)

        async def on_disconnect() -> None:
            if not closing and not outage:
                log.warning("nats disconnected service=%s; reconnecting", service)
            outage.append(True)

        reconnects: list[float] = []

        async def on_reconnect() -> None:
            outage.clear()
            reconnects.append(time.time())
            metrics.bus_reconnects.inc()
            log.info("nats reconnected service=%s", service)

        # A cluster is several URLs, comma-separated; nats-py wants them as a list.
        servers = [one.strip() for one in url.split(",") if one.strip()]
        tls: dict[str, ssl.SSLContext] = {}
        if ca_file or any(one.startswith("tls://") for one in servers):
            try:
                tls["tls"] = ssl.create_default_context(cafile=ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise BusUnavailable(f"cannot use the NATS CA file {ca_file}: {exc}") from None
        deadline = time.monotonic() + wait_s
        last_error: Exception | None = None
        while True:
            remaining = deadline - time.monotonic()
            try:
                # nats-py retries an initial connect forever when reconnects are unlimited,
                # so the first connection is bounded here; reconnects are then unlimited.
                nc = await asyncio.wait_for(nats.connect(
                    servers,
                    name=service,
                    connect_timeout=2,
                    reconnect_time_wait=1,
                    # A handler stuck in a hung cloud call must not hold a stop for
                    # nats-py's default 30 s.
                    drain_timeout=5,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    error_cb=on_error,
                    disconnected_cb=on_disconnect,
                    reconnected_cb=on_reconnect,
                    **tls,
                ) if await _reachable(url) else _refused(url), max(remaining, 0.5))
                bus = cls(nc, service, metrics)
                bus._closing = closing
                bus._denied = denied
                bus._reconnects = reconnects
                return bus
            except (OSError, nats.errors.Error, TimeoutError) as exc:
                if isinstance(exc, ssl.SSLError):
                    tls_failed.append(exc)
                if tls_failed:
                    problem = tls_failed[-1]
                    raise BusUnavailable(
                        f"TLS with NATS at {redacted(url)} failed ({problem.reason or problem})"
                        "; give the server's CA in [nats] ca_file or CS_NATS_CA_FILE"
                    ) from None
                if refused or "authorization violation" in str(exc).lower():
                    raise BusUnavailable(
                        f"NATS at {redacted(url)} refused the credentials (authorization "
                        "violation): check the user and password in CS_NATS_URL or [nats] url"
                    ) from None
                last_error = exc
            if time.monotonic() >= deadline:
                raise BusUnavailable(
                    f"cannot reach NATS at {redacted(url)} after {wait_s:.0f}s ({last_error}); "
                    "is the server running? `make run` starts one, or set CS_NATS_URL"
                )
            await asyncio.sleep(0.2)

    async def ensure_infra(self, replicas: int = 1, wait_s: float = 60.0) -> None:
        """Create the streams and buckets if they are missing. A JetStream still starting
        (a cluster electing its leaders, a server replaying its store) is waited for up to
        `wait_s`: services started together with NATS must not give up on it."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                await infra.ensure(self.js, replicas)
                return
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError,
                    nats.js.errors.ServiceUnavailableError, nats.js.errors.ServerError,
                    infra.NotReady) as exc:
                if time.monotonic() > deadline:
                    raise BusUnavailable(
                        f"JetStream did not become ready within {wait_s:.0f}s ({exc!r}); is "
                        "nats-server started with -js (and, on a cluster, is a majority of "
                        "its nodes up)?") from None
                log.info("waiting for JetStream service=%s (%r)", self.service, exc)
                await asyncio.sleep(1.0)

    def kv(self, bucket: str, schema: type[M]) -> TypedKv[M]:
        """Typed access to one KV bucket."""
        return TypedKv(self, bucket, schema)

    async def publish(self, subject: str, msg: Message, trace: str = "") -> None:
        """Core-NATS publish (events: fire and forget)."""
        data, headers = codec.encode(msg, trace)
        await self.nc.publish(subject, data, headers=headers)

    async def js_publish(
        self, subject: str, msg: Message, trace: str = "", msg_id: str = ""
    ) -> None:
        """JetStream publish, acknowledged by the server; `msg_id` deduplicates resends."""
        data, headers = codec.encode(msg, trace)
        if msg_id:
            headers["Nats-Msg-Id"] = msg_id
        await self.js.publish(subject, data, headers=headers)

    async def last(self, subject: str, expected: type[M]) -> Traced[M] | None:
        """The last message kept for `subject` in the snapshot stream, or None."""
        try:
            raw = await self.js.get_last_msg(subjects.SNAPSHOT_STREAM, subject)
        except nats.js.errors.NotFoundError:
            return None
        headers = codec.headers_of(raw.headers)
        try:
            value = codec.decode(raw.data or b"", headers, expected, subject)
        except DecodeError as exc:
            await self.dead_letter(subject, raw.data or b"", headers, str(exc))
            return None
        return Traced(value, codec.trace_of(headers))

    async def read_since(self, stream: str, subject: str, since: float, expected: type[M],
                         timeout: float = 10.0, batch: int = 500) -> list[M]:
        """Every message of `subject` in `stream` stored at or after `since` (epoch seconds),
        oldest first; undecodable ones are dead-lettered and skipped. Reads what was there
        when asked (the consumer's pending count then), in batches."""
        start = datetime.datetime.fromtimestamp(since, datetime.UTC)
        psub = await self.js.pull_subscribe(
            subject, stream=stream, config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start,
                ack_policy=AckPolicy.NONE, inactive_threshold=READ_CONSUMER_IDLE_S))
        out: list[M] = []
        try:
            pending = (await psub.consumer_info()).num_pending or 0
            while pending > 0:
                msgs = await psub.fetch(min(batch, pending), timeout=timeout)
                pending -= len(msgs)
                for msg in msgs:
                    headers = codec.headers_of(msg.headers)
                    try:
                        out.append(codec.decode(msg.data, headers, expected, msg.subject))
                    except DecodeError as exc:
                        await self.dead_letter(msg.subject, msg.data, headers, str(exc))
        finally:
            await self.drop_consumer(stream, psub)
        return out

    async def drop_consumer(self, stream: str, sub: Any) -> None:
        """Unsubscribe and delete a read's ephemeral consumer now. Left to expire, a provisioner
        serving 200 clouds (a read per cloud every reconcile) kept some 2,400 alive on the VM
        bucket, and nats-server refused the stream's 1,001st consumer: every read and watch of
        the registry failed (found by bench/scale_bench.py)."""
        name = ""
        with contextlib.suppress(Exception):
            name = (await sub.consumer_info()).name or ""
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        if name:
            with contextlib.suppress(Exception):
                await self.js.delete_consumer(stream, name)

    async def request(
        self, subject: str, msg: Message, reply_type: type[R], timeout: float = 5.0
    ) -> R:
        """Request/reply with a typed answer; service errors become AdminError."""
        data, headers = codec.encode(msg)
        try:
            reply = await self.nc.request(subject, data, timeout=timeout, headers=headers)
        except nats.errors.NoRespondersError:
            self._raise_if_denied(subject)
            raise AdminError(
                "no_responders", f"no service answers on {subject}; is it running?"
            ) from None
        except nats.errors.TimeoutError:
            self._raise_if_denied(subject)
            raise AdminError(
                "timeout", f"no answer on {subject} within {timeout:.0f}s"
            ) from None
        rheaders = dict(reply.headers or {})
        if SERVICE_ERROR_CODE in rheaders:
            raise AdminError(
                rheaders.get(SERVICE_ERROR_CODE, ""), rheaders.get(SERVICE_ERROR, "")
            )
        return codec.decode(reply.data, rheaders, reply_type, subject)

    def _raise_if_denied(self, subject: str) -> None:
        """A request that got no answer because the server refused it says so."""
        for problem in reversed(self._denied):
            if subject in problem or "_INBOX" in problem:
                raise AdminError("permission", f"permission denied on {subject}: this NATS user "
                                 "may not do that (the server said: "
                                 f"{problem.strip()}); use the admin role's credentials")

    async def _work_queue(
        self, subject: str, stream: str, durable: str, schema: type[M]
    ) -> WorkQueue[M]:
        sub = await self.js.pull_subscribe(
            subject, durable=durable, stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60.0, max_deliver=-1),
        )
        return WorkQueue(self, sub, schema)

    async def intent_queue(self, provider: str, cloud: str) -> WorkQueue[Intent]:
        """Bind to (creating if needed) the durable consumer of `cloud`'s intents."""
        return await self._work_queue(
            subjects.intent(cloud), subjects.INTENT_STREAM,
            subjects.intent_durable(provider, cloud), Intent)

    async def intent_backlog(self, provider: str, cloud: str) -> Backlog | None:
        """What `cloud`'s intent consumer holds now (one round trip), or None before a
        provisioner created it."""
        try:
            info = await self.js.consumer_info(subjects.INTENT_STREAM,
                                               subjects.intent_durable(provider, cloud))
        except nats.js.errors.NotFoundError:
            return None
        return Backlog(pending=info.num_pending or 0, unacked=info.num_ack_pending or 0,
                       waiting=info.num_waiting or 0)

    async def condor_queue(self) -> WorkQueue[CondorAction]:
        """Bind to the durable consumer of CondorActions (the pollers share it)."""
        return await self._work_queue(
            subjects.condor_action(), subjects.CONDOR_STREAM, subjects.CONDOR_DURABLE,
            CondorAction)

    async def dead_letter(
        self, subject: str, data: bytes, headers: dict[str, str], error: str
    ) -> None:
        """Log a rejected message and republish it with the error on the dead-letter subject."""
        log.error("dead-letter subject=%s error=%s", subject, error)
        # Labelled by the subject's first two tokens: one series per kind, not per VM.
        self.metrics.dead_letters.labels(".".join(subject.split(".")[:2])).inc()
        letter = DeadLetter(
            subject=subject,
            error=error,
            service=self.service,
            headers=headers,
            data=data[: codec.MAX_MESSAGE_BYTES // 2],
        )
        await self.publish(subjects.deadletter(), letter)

    async def tail(self, subject: str, ready: asyncio.Event | None = None
                   ) -> AsyncIterator[RawMessage]:
        """Every message published on `subject` (wildcards allowed), as it travels; `ready`
        is set once the server has the subscription (nothing published later is missed)."""
        queue: asyncio.Queue[RawMessage] = asyncio.Queue()

        async def on_msg(msg: Msg) -> None:
            headers = codec.headers_of(msg.headers)
            await queue.put(RawMessage(msg.subject, headers, msg.data))

        sub = await self.nc.subscribe(subject, cb=on_msg)
        if ready is not None:
            await self.nc.flush()
            ready.set()
        try:
            while True:
                yield await queue.get()
        finally:
            await sub.unsubscribe()

    async def close(self) -> None:
        """Drain pending messages and close the connection."""
        self._closing.append(True)
        if self.nc.is_connected:
            try:
                await self.nc.drain()
            except (TimeoutError, nats.errors.Error):
                await self.nc.close()
        else:
            await self.nc.close()
