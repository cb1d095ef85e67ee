"""Shared fixtures: a real nats-server per test session, and a connected Bus; the OpenStack
testbed; the poller's view of a module's HTCondor pool."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from bus.connection import Bus
from tests.condor_pool import CondorPool
from tests.natsserver import NatsServer
from tests.openstack_bed import ADMIN_CLOUD, Testbed
from tests.slurm_cluster import SlurmCluster

# The suite is the same every run: property tests draw the same examples each time (derived
# from each test), and no database of past failures makes one machine's run differ from
# another's. `make fuzz` explores: new random examples for each of many seeds.
settings.register_profile("suite", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("CS_HYPOTHESIS_PROFILE", "suite"))


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


@pytest.fixture(scope="session")
def bed() -> Iterator[Testbed]:
    """The OpenStack test cloud (tests/openstack_bed.py), up once for every test that needs
    it, torn down at the end of the session."""
    testbed = Testbed()
    if os.environ.get("CS_TESTBED_REUSE") == "1" and testbed.running():
        yield testbed  # a developer's running testbed (python -m tests.openstack_bed up)
        return
    with testbed.held():  # another run's testbed is never taken down under it
        testbed.up()
        yield testbed
        testbed.down()


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A one-node Slurm cluster of this session (tests/slurm_cluster.py), stopped at its end."""
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="session")
def admin(bed: Testbed) -> Iterator[Any]:
    """An openstacksdk connection as the cloud's admin (sees every project's servers)."""
    import openstack

    os.environ["OS_CLIENT_CONFIG_FILE"] = str(bed.clouds_yaml)
    conn = openstack.connect(cloud=ADMIN_CLOUD)
    yield conn
    conn.close()


@pytest.fixture
def condor_config(pool: CondorPool, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The poller's HTCondor client config for the module's `pool` fixture (the poller's
    query children inherit the environment)."""
    monkeypatch.setenv("CONDOR_CONFIG", str(pool.client_config))
    return pool.client_config
