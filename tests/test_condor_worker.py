"""A worker contextualised by our user-data joins a real pool and runs a v1 job.

The worker is HTCondor 23.9 in a root of its own (tests/condor_pool.py `Worker`): the
built-in user-data is rendered by `provisioning.userdata` with the container's token command
and applied by cloud-init's own write_files module; only systemd is missing, so
condor_master is started by hand. Its startd must join the central manager advertising our
`CS_VM_ID` and v1's `VMType`, through CCB, with its IDTOKEN; a job written for v1
(`Requirements = VMType =?= "..."`) must run there; the poller must see the VM busy while a
job runs, and the planner must then keep it; a worker whose token is not the pool's must not
join."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.schemas import DemandSnapshot, PoolSnapshot
from provisioning.contract import make_vm
from provisioning.userdata import WorkerSettings
from services.planner.core import plan
from services.planner.decisions import Policy
from services.poller.condor import BindingsSource, ReplaySource
from services.poller.pool import PROJECTION, VM_ID_ATTR, build_pool
from services.poller.source import SourceUnavailable
from tests.condor_pool import (
    TRUST_DOMAIN,
    WORKER_AUTHZ,
    CondorPool,
    PoolError,
    Worker,
    running_pool,
    wait_until,
)
from tests.source_contract import reference_slots

pytestmark = pytest.mark.slow

SITE = "pool"
V1_JOB = """
executable = /bin/sleep
arguments = {seconds}
Requirements = VMType =?= "worker" && Arch == "X86_64"
+VMAMI = "img.qcow2"
queue 1
"""


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CondorPool]:
    """A central manager with schedd and no worker yet."""
    with running_pool(tmp_path_factory.mktemp("condor")) as the_pool:
        yield the_pool


@pytest.fixture
def worker(pool: CondorPool) -> Iterator[Worker]:
    """A worker contextualised by the built-in user-data, its startd and master in the pool."""
    node = Worker(pool, make_vm("cloud-a", SITE), SITE)
    node.up()
    try:
        yield node
    finally:
        node.down()


def _history(pool: CondorPool, cluster: int) -> list[str]:
    """condor_history's JobStatus, ExitCode and LastRemoteHost of `cluster`, once it left."""
    out = pool.condor("condor_history", str(cluster), "-af", "JobStatus", "ExitCode",
                      "LastRemoteHost")
    return out.split()


async def _pool_snapshot() -> PoolSnapshot:
    ads = await BindingsSource(("*",), timeout_s=30).startds()
    snapshot, problems = build_pool(ads, "live", time.time())
    assert problems == []
    return snapshot


async def test_a_v1_job_runs_on_the_worker_our_user_data_made(
    pool: CondorPool, worker: Worker, condor_config: Path
) -> None:
    vm_id = worker.vm.vm_id
    attrs = pool.condor("condor_status", "-constraint", f'CS_VM_ID == "{vm_id}"', "-af",
                        "VMType", "CS_VM_TYPE", "PartitionableSlot", "MyAddress").split()
    assert attrs[:3] == ["worker", "worker", "true"], attrs
    assert "CCBID=" in attrs[3], f"not reached through the central manager's CCB: {attrs[3]}"
    assert worker.masters() == [vm_id]
    snapshot = await _pool_snapshot()
    assert {s.vm_id for s in snapshot.startds} == {vm_id}

    cluster = pool.submit("alice", V1_JOB.format(seconds=1))
    assert wait_until(lambda: _history(pool, cluster), 120), "the job did not finish"
    status, exit_code, host = _history(pool, cluster)
    assert (status, exit_code) == ("4", "0")
    assert host.endswith(f"@{vm_id}"), host


async def test_a_busy_worker_is_kept_until_its_job_ends(
    pool: CondorPool, worker: Worker, condor_config: Path
) -> None:
    vm = worker.vm.model_copy(update={
        "state": "running", "created_at": time.time() - 3600, "updated_at": time.time(),
        "registered_at": time.time()})
    cluster = pool.submit("alice", V1_JOB.format(seconds=600))
    assert wait_until(lambda: pool.condor(
        "condor_q", str(cluster), "-af", "JobStatus").strip() == "2", 120), "the job never ran"
    no_demand = DemandSnapshot(source="live", taken_at=time.time())
    policy = Policy(min_vm_age_s=0, max_retires_per_cycle=10)

    def decide(snapshot: PoolSnapshot) -> tuple[list[str], list[str], list[str]]:
        result = plan(SITE, no_demand, [], [vm], time.time(), policy, pool=snapshot)
        return ([r.vm_id for r in result.retires], [k.vm_id for k in result.kills],
                [d.reason for d in result.decisions])

    # The collector hears of the claim from the startd a moment after the schedd: wait.
    deadline = time.monotonic() + 60
    busy = await _pool_snapshot()
    while not any(s.state == "Claimed" and s.activity == "Busy" for s in busy.startds):
        assert time.monotonic() < deadline, f"the collector never showed the job: {busy}"
        await asyncio.sleep(1.0)
        busy = await _pool_snapshot()
    retires, kills, reasons = decide(busy)
    assert (retires, kills) == ([], [])
    assert any("busy" in reason for reason in reasons), reasons

    pool.condor("condor_rm", str(cluster))
    deadline = time.monotonic() + 120
    snapshot = busy
    while time.monotonic() < deadline:
        snapshot = await _pool_snapshot()
        if snapshot.startds and all(s.state == "Unclaimed" and s.activity == "Idle"
                                    for s in snapshot.startds):
            break
        await asyncio.sleep(1.0)
    retires, kills, _ = decide(snapshot)
    assert (retires, kills) == ([vm.vm_id], []), snapshot


def _forged(token: str) -> str:
    """`token` with its signature changed: well formed, not signed by the pool's key."""
    head, _, signature = token.rpartition(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{flipped}"


def test_a_worker_whose_token_is_not_the_pools_does_not_join(
    pool: CondorPool, tmp_path: Path
) -> None:
    forged = tmp_path / "forged.token"
    forged.write_text(_forged(pool.token(f"worker@{TRUST_DOMAIN}", *WORKER_AUTHZ)))
    node = Worker(pool, make_vm("cloud-a", SITE), SITE)
    node.up(WorkerSettings(central_manager=pool.address, token_file=forged), joins=False)
    try:
        with pytest.raises(PoolError, match="did not join"):
            node.wait_joined(20)
        assert node.pids("condor_startd"), "the startd is not even running"
        log = (node.root / "var" / "log" / "condor" / "StartLog").read_text(errors="replace")
        assert "authenticat" in log.lower() or "denied" in log.lower(), log[-2000:]
        assert forged.read_text() not in log
    finally:
        node.down()



async def test_the_slots_of_a_worker_are_the_same_live_and_replayed(
    pool: CondorPool, worker: Worker, condor_config: Path, tmp_path: Path,
) -> None:
    """The source contract's pool half with a worker in the pool (tests/source_contract.py;
    the queue half runs in test_condor_pool): the collector through the bindings and a
    replay of `condor_status -long` give the slots condor_status shows, and retiring the
    worker tells one master (the replay drops its slots, as the collector would)."""
    dump = tmp_path / "pool.txt"
    dump.write_text(pool.condor("condor_status", "-long", "-constraint",
                                f"{VM_ID_ATTR} =!= undefined"))
    (tmp_path / "queue.txt").write_text("")
    replay, live = ReplaySource(tmp_path / "queue.txt", dump), BindingsSource(("*",), 60)
    slots = reference_slots(pool.condor)
    assert set(slots.values()) == {worker.vm.vm_id}
    for source in (live, replay):
        ads = await source.startds()
        assert {str(a["Name"]): str(a[VM_ID_ATTR]) for a in ads} == slots, source.describe()
        assert all(set(a) <= set(PROJECTION) for a in ads)
    assert build_pool(await replay.startds(), "r", 0.0)[0].startds == build_pool(
        await live.startds(), "l", 0.0)[0].startds
    assert await replay.retire(worker.vm.vm_id) == 1 and await replay.startds() == []


async def test_retire_reaches_the_vms_own_master_and_its_startd_leaves(
    pool: CondorPool, worker: Worker, condor_config: Path
) -> None:
    """The master is found by CS_VM_ID (never by host name); DaemonsOffPeaceful reaches it
    through CCB and authenticates with the poller's certificate (a worker cannot check an
    IDTOKEN): the startd leaves the collector, and the log shows who the poller was."""
    told = await BindingsSource(("*",), timeout_s=60).retire(worker.vm.vm_id)
    assert told == 1
    assert wait_until(lambda: not worker.slots(), 60), "the startd did not leave"
    log = (worker.root / "var" / "log" / "condor" / "MasterLog").read_text(errors="replace")
    assert "DAEMONS_OFF_PEACEFUL" in log or "peaceful" in log.lower(), log[-2000:]


def _without_certificate(config: Path, folder: Path) -> Path:
    """A copy of the poller's client config with no AUTH_SSL_CLIENT_* lines."""
    copy = folder / "condor_config"
    copy.write_text("\n".join(line for line in config.read_text().splitlines()
                              if not line.startswith("AUTH_SSL_CLIENT")) + "\n")
    return copy


async def test_a_client_without_the_pollers_certificate_cannot_retire_a_worker(
    pool: CondorPool, worker: Worker, condor_config: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poller's IDTOKEN alone (no certificate) is refused by the worker's master."""
    config = _without_certificate(condor_config, tmp_path)
    monkeypatch.setenv("CONDOR_CONFIG", str(config))
    with pytest.raises(SourceUnavailable, match="retire query failed"):
        await BindingsSource(("*",), timeout_s=60).retire(worker.vm.vm_id)
    assert worker.slots(), "the startd left although the command was refused"
