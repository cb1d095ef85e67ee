"""The live schedd source: failures and hangs become stale demand on time, never a freeze."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from services.poller.condor import BindingsSource
from services.poller.source import SourceUnavailable


@pytest.fixture
def silent_collector() -> Iterator[int]:
    """A TCP port that accepts connections and never answers, like a hung collector."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()
    for conn in held:
        conn.close()


@pytest.fixture(autouse=True)
def isolated_condor_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTCondor reads only our environment, whatever this machine has installed."""
    monkeypatch.setitem(os.environ, "CONDOR_CONFIG", "ONLY_ENV")


async def test_no_local_schedd_is_reported_not_raised() -> None:
    source = BindingsSource((), timeout_s=30)
    assert source.describe() == "schedd:local"
    with pytest.raises(SourceUnavailable, match=r"jobs query failed: .*local daemon"):
        await source.jobs()
    with pytest.raises(SourceUnavailable, match=r"startds query failed: .*collector"):
        await source.startds()
    with pytest.raises(SourceUnavailable, match=r"retire query failed: .*collector"):
        await source.retire("cs-x-0")


async def test_a_hung_collector_times_out_and_the_loop_keeps_running(
    silent_collector: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(os.environ, "_CONDOR_COLLECTOR_HOST", f"127.0.0.1:{silent_collector}")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.1)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="jobs query did not answer within 3s"):
        await BindingsSource(("schedd.example.org",), timeout_s=3).jobs()
    elapsed = time.monotonic() - started
    ticker.cancel()
    assert elapsed < 6, elapsed  # the bindings alone would block for 60 s
    assert ticks >= 20  # the event loop was never frozen
