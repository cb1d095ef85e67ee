"""Test helper: what arrives on a subject, decoded, from now on."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from bus import codec
from bus.connection import Bus
from bus.schemas import Message

M = TypeVar("M", bound=Message)


async def collect(bus: Bus, subject: str, schema: type[M]) -> tuple[
        asyncio.Queue[M], asyncio.Task[None]]:
    """A queue of every `schema` message published on `subject` from now on, and the task
    filling it (cancel it when done)."""
    received: asyncio.Queue[M] = asyncio.Queue()
    subscribed = asyncio.Event()

    async def run() -> None:
        async for msg in bus.tail(subject, subscribed):
            await received.put(codec.decode(msg.data, msg.headers, schema))

    task = asyncio.create_task(run())
    await asyncio.wait_for(subscribed.wait(), 10)
    return received, task
