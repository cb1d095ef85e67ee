"""Waiting for the event itself, never for a guessed time: a test polls for what it expects
(or for proof that a loop ran past the point where it would have acted) under a deadline that
only bounds a failure, and says what it waited for when the deadline passes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import IO, TypeVar

T = TypeVar("T")


def eventually(what: str, check: Callable[[], T], timeout: float = 60.0,
               interval: float = 0.1, detail: Callable[[], str] = lambda: "") -> T:
    """`check()`'s first truthy result, asked every `interval` s; AssertionError naming
    `what` (and `detail()`) if none came within `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; "
                                 f"last: {result!r} {detail()}".rstrip())
        time.sleep(interval)


async def eventually_async(what: str, check: Callable[[], Awaitable[T]],
                           timeout: float = 60.0, interval: float = 0.1) -> T:
    """`eventually` for a check that is a coroutine."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; "
                                 f"last: {result!r}")
        await asyncio.sleep(interval)


class OutputWatch:
    """A child process's output, read by a thread as it comes, so a test can wait for what
    the child prints."""

    def __init__(self, stream: IO[str]) -> None:
        self._chunks: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._lock:
                self._chunks.append(line)

    def text(self) -> str:
        """Everything read so far."""
        with self._lock:
            return "".join(self._chunks)

    def wait_for(self, what: str, check: Callable[[str], bool], timeout: float = 60.0) -> str:
        """The output once `check(output)` holds; AssertionError with the output if not
        within `timeout` s."""
        return eventually(what, lambda: self.text() if check(self.text()) else "", timeout,
                          detail=lambda: self.text()[-2000:])

    def ended(self, timeout: float = 30.0) -> str:
        """The whole output once the stream has closed (the child exited)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the output did not end within {timeout:.0f}s")
        return self.text()
