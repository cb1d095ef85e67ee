"""The connection helper: one `Bus` per process, typed KV access, typed publish/request.

A `Bus` wraps a nats-py client with reconnect forever, JetStream, and the codec, so services
never see raw bytes, subject strings of their own, or nats-py exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bus import codec, infra, subjects
from bus.errors import AdminError, BusUnavailable, DecodeError, ErrorCode
from bus.kv import READ_CONSUMER_IDLE_S, TypedKv
from bus.link import Link
from bus.metrics import Metrics
from bus.schemas import CondorAction, DeadLetter, Intent, Message
from bus.workqueue import Backlog, WorkQueue

M = TypeVar("M", bound=Message)
R = TypeVar("R", bound=Message)

log = logging.getLogger("bus")

SERVICE_ERROR = "Nats-Service-Error"
SERVICE_ERROR_CODE = "Nats-Service-Error-Code"


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


class Bus:
    """A connected service: NATS, JetStream, typed KV and publish helpers."""

    def __init__(self, nc: Client, service: str, link: Link | None = None) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.service = service
        self.link = link or Link(service, Metrics(service))
        """What the connection has been through (outages, reconnects, refusals)."""
        self.metrics = self.link.metrics
        """This process's metrics (served on /metrics by the run-loop)."""
        self._noted: list[str] = []
        self._current: dict[str, str] = {}

    @property
    def problems(self) -> tuple[str, ...]:
        """What the service's heartbeat reports for `cs status`: problems noted by the
        service, then the latest permission violations the server reported (asynchronous in
        NATS, so kept here), newest last."""
        return tuple(self._noted) + tuple(self._current.values()) + tuple(self.link.denied[-5:])

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
        return len(self.link.reconnects)

    @classmethod
    async def connect(cls, url: str, service: str, wait_s: float = 30.0,
                      ca_file: str = "") -> Bus:
        """Connect to `url`, retrying for up to `wait_s` seconds, then reconnect forever.
        `tls://` URLs (or a `ca_file`) use TLS, verified against `ca_file` or else the
        system's certificate authorities."""
        link = Link(service, Metrics(service))
        return cls(await link.open(url, wait_s, ca_file), service, link)

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
                ErrorCode.NO_RESPONDERS, f"no service answers on {subject}; is it running?"
            ) from None
        except nats.errors.TimeoutError:
            self._raise_if_denied(subject)
            raise AdminError(
                ErrorCode.TIMEOUT, f"no answer on {subject} within {timeout:.0f}s"
            ) from None
        rheaders = dict(reply.headers or {})
        if SERVICE_ERROR_CODE in rheaders:
            raise AdminError(
                ErrorCode.of(rheaders.get(SERVICE_ERROR_CODE, "")),
                rheaders.get(SERVICE_ERROR, "")
            )
        return codec.decode(reply.data, rheaders, reply_type, subject)

    def _raise_if_denied(self, subject: str) -> None:
        """A request that got no answer because the server refused it says so."""
        problem = self.link.denial_for(subject)
        if problem:
            raise AdminError(ErrorCode.PERMISSION, f"permission denied on {subject}: this NATS "
                             "user may not do that (the server said: "
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
        self.link.closing = True
        if self.nc.is_connected:
            try:
                await self.nc.drain()
            except (TimeoutError, nats.errors.Error):
                await self.nc.close()
        else:
            await self.nc.close()
