"""Shared fixtures: a real nats-server per test session, and a connected Bus."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bus.connection import Bus
from tests.natsserver import NatsServer


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server with JetStream for the whole session."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    """A connected Bus with the streams and buckets created."""
    connected = await Bus.connect(nats_server.url, "test", wait_s=10)
    await connected.ensure_infra()
    yield connected
    await connected.close()


@pytest.fixture
def fresh_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of the test's own (for tests that restart it or need empty state)."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()
