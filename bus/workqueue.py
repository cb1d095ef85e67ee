"""Work queues: a durable JetStream pull consumer whose messages are all of one schema, each
delivery acked, nak'ed with a delay or terminated; `serve` handles messages of different
keys at once and those of one key (a lane: one VM) in order."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, Literal, NamedTuple, TypeVar

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from bus import codec
from bus.errors import DecodeError
from bus.schemas import Message

if TYPE_CHECKING:
    from bus.connection import Bus

M = TypeVar("M", bound=Message)

log = logging.getLogger("bus")

HANDLER_GRACE_S = 5.0
"""How long a stopping consumer lets the messages in hand be handled before cancelling."""


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


def _forget(tails: dict[str, asyncio.Task[None]], lane: str, done: asyncio.Task[None]) -> None:
    """Drop a lane's last task once it is done, unless a later one took its place."""
    if tails.get(lane) is done:
        del tails[lane]
