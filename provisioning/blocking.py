"""A driver's blocking SDK calls, run on the driver's own threads under a timeout of ours:
the plumbing every driver shares, so a hung cloud API never blocks the event loop and every
vendor exception is translated at one choke point."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from bus.errors import OutOfResources, PermanentError, TemporaryError

T = TypeVar("T")

Translate = Callable[[Exception, str], Exception]
"""A driver's translation of a vendor exception (and what it was doing) into one of our error
kinds; an exception it does not know is returned as it is."""


class BlockingCalls:
    """A pool of worker threads for one cloud's SDK calls."""

    def __init__(self, name: str, threads: int, timeout_s: float, translate: Translate,
                 what: str) -> None:
        self.timeout_s = timeout_s
        """Seconds a call may take before it counts as a temporary failure."""
        self._translate = translate
        self._what = what
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=name)
        self._closed = False

    async def call(self, doing: str, fn: Callable[[], T]) -> T:
        """`fn()` on a worker thread; its vendor errors translated, a timeout a
        TemporaryError that says what did not answer."""
        def run() -> T:
            try:
                return fn()
            except (TemporaryError, OutOfResources, PermanentError):
                raise
            except Exception as exc:
                translated = self._translate(exc, doing)
                if translated is exc:
                    raise
                raise translated from exc

        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._pool, run), self.timeout_s)
        except TimeoutError:
            raise TemporaryError(
                f"{doing}: {self._what} did not answer within {self.timeout_s:.0f}s") from None

    async def close(self, last: Callable[[], None]) -> None:
        """Run `last` (closing the connection) on a worker thread, then stop the threads;
        closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._pool, last)
        self._pool.shutdown(wait=False)
