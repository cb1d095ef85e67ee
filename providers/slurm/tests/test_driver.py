"""The Slurm driver on a real one-node Slurm cluster (tests/slurm_cluster.py): the shared
driver contract, and what is Slurm's own: a drone that ended is gone, its tag and sizes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bus.errors import PermanentError, TemporaryError
from bus.schemas import CloudRecord
from providers.slurm.driver import SlurmDriver, number, parse_tag
from providers.slurm.options import SlurmOptions
from provisioning.contract import DriverContract, make_vm
from provisioning.driver import DriverContext
from provisioning.userdata import WorkerSettings
from siteconfig import cloud_record
from tests.demo import free_port
from tests.slurm_cluster import CPUS, MEMORY_MB, PARTITION, SlurmCluster
from tests.ssh_login import SshLogin, running_login
from tests.waiting import eventually_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

WORKER = WorkerSettings(central_manager="cm.slurm.test", token_file=None)
DRONE = "#!/bin/sh\n# drone ${CS_VM_ID} of ${CS_VM_TYPE} for ${CENTRAL_MANAGER}\nexec sleep 600\n"


def record(cluster: SlurmCluster, cloud: str = "contract", script: str = DRONE,
           **options: object) -> CloudRecord:
    opts = SlurmOptions.read({"slurm_conf": str(cluster.conf), "partition": PARTITION,
                              **options})
    return cloud_record(cloud, opts, enabled=True, max_vms=5, user_data=script)


def driver_of(cluster: SlurmCluster, site: str, cloud: str = "contract", script: str = DRONE,
              **options: object) -> SlurmDriver:
    return SlurmDriver(record(cluster, cloud, script, **options),
                       DriverContext.of(site, WORKER, 30.0))


@pytest.fixture
async def driver(slurm: SlurmCluster) -> AsyncIterator[SlurmDriver]:
    d = driver_of(slurm, "site-a")
    yield d
    await d.close()


@pytest.fixture
async def other_site_driver(slurm: SlurmCluster) -> AsyncIterator[SlurmDriver]:
    d = driver_of(slurm, "site-b")
    yield d
    await d.close()


class TestSlurmContract(DriverContract):
    """The shared driver contract, on real Slurm."""


@pytest.fixture(scope="module")
def login(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshLogin]:
    """A login node (sshd on 127.0.0.1) in front of the same cluster."""
    with running_login(tmp_path_factory.mktemp("login")) as node:
        yield node


class TestSlurmContractOverSsh(DriverContract):
    """The shared driver contract, with every Slurm command run on a login node over ssh
    (the cloud's login_command); SLURM_CONF is set there, not in the provisioner."""

    @pytest.fixture
    async def driver(self, slurm: SlurmCluster, login: SshLogin,
                     monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SlurmDriver]:
        monkeypatch.delenv("SLURM_CONF", raising=False)
        d = driver_of(slurm, "site-a", login_command=login.login_command())
        assert "SLURM_CONF" not in d._env
        yield d
        await d.close()

    @pytest.fixture
    async def other_site_driver(self, slurm: SlurmCluster, login: SshLogin
                                ) -> AsyncIterator[SlurmDriver]:
        d = driver_of(slurm, "site-b", login_command=login.login_command())
        yield d
        await d.close()


@pytest.fixture
def stranger(tmp_path: Path) -> Path:
    """A key the login node does not know."""
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


async def test_a_login_node_that_refuses_our_key_is_permanent_and_one_down_temporary(
    slurm: SlurmCluster, login: SshLogin, stranger: Path,
) -> None:
    refused = login.login_command().replace(str(login.key), str(stranger))
    d = driver_of(slurm, "site-a", cloud="refused", login_command=refused)
    try:
        with pytest.raises(PermanentError, match="the login node refused us") as info:
            await d.list()
        assert str(stranger) not in str(info.value)
    finally:
        await d.close()
    closed = login.login_command().replace(f"-p {login.port}", f"-p {free_port()}")
    d = driver_of(slurm, "site-a", cloud="down", login_command=closed)
    try:
        with pytest.raises(TemporaryError, match="could not be reached"):
            await d.list()
    finally:
        await d.close()


async def test_a_drone_is_a_job_with_our_tag_sizes_and_time_limit(
    slurm: SlurmCluster, driver: SlurmDriver,
) -> None:
    vm = make_vm("contract", "site-a")
    created = await driver.create(vm)
    try:
        [job] = [j for j in json.loads(slurm.run("squeue", "--json"))["jobs"]
                 if str(j["job_id"]) == created.instance_id]
        assert job["name"] == vm.vm_id
        assert parse_tag(job["comment"]) == {"site": "site-a", "cloud": "contract",
                                             "intent": vm.intent_id}
        # numbers as Slurm 22.05 writes them, or as objects (`{"number": 60, ...}`) later
        assert (number(job["cpus"]), number(job["memory_per_node"]),
                number(job["time_limit"])) == (2, 1024, 60)
        assert job["partition"] == PARTITION
        script = slurm.run("scontrol", "write", "batch_script", created.instance_id, "-")
        assert f"# drone {vm.vm_id} of worker for cm.slurm.test" in script
    finally:
        await driver.delete(vm.vm_id)


async def test_a_drone_that_ended_is_gone_not_in_error(slurm: SlurmCluster) -> None:
    """A drone whose script is done (as one whose time limit came) leaves the listing: the
    registry marks it gone and the planner replaces it while demand lasts."""
    d = driver_of(slurm, "site-a", cloud="ends", script="#!/bin/sh\nexit 0\n")
    vm = make_vm("ends", "site-a")
    try:
        await d.create(vm)
        await eventually_async("the drone to end", lambda: _gone(d, vm.vm_id), timeout=60,
                               interval=0.5)
        assert vm.vm_id not in {i.vm_id for i in await d.list()}
    finally:
        await d.close()


async def test_a_drone_at_its_time_limit_is_gone_not_in_error(slurm: SlurmCluster) -> None:
    """Slurm ends a drone at its time limit (TIMEOUT): the listing drops it, as the
    registry then marks it gone and the planner replaces it."""
    d = driver_of(slurm, "site-a", cloud="limit", walltime_min=1, drain_min=0)
    vm = make_vm("limit", "site-a")
    try:
        created = await d.create(vm, fresh=True)
        await eventually_async("the time limit", lambda: _gone(d, vm.vm_id), timeout=240,
                               interval=1.0)
        job = slurm.run("scontrol", "show", "job", created.instance_id, check=False)
        assert "JobState=TIMEOUT" in job, job  # kept MinJobAge (30 s) after its end
    finally:
        await d.delete(vm.vm_id)
        await d.close()


async def _gone(d: SlurmDriver, vm_id: str) -> bool:
    return await d.state(vm_id) is None


async def test_capacity_is_the_partition_less_what_others_hold(
    slurm: SlurmCluster, driver: SlurmDriver,
) -> None:
    cap = await driver.capacity()
    assert (cap.max_cores, cap.max_memory_mb) == (CPUS, MEMORY_MB)
    assert (cap.others_cores, cap.others_memory_mb) == (0, 0)
    other = slurm.run("sbatch", "--parsable", "--job-name=someone-else", "--cpus-per-task=1",
                      "--mem=100", "--output=/dev/null", "--wrap=sleep 300").strip()
    try:
        got = await eventually_async("the other job running", lambda: _others(driver),
                                     timeout=60, interval=0.5)
        assert got == (1, 100)
    finally:
        slurm.run("scancel", other)


async def _others(d: SlurmDriver) -> tuple[int, int] | None:
    cap = await d.capacity()
    return (cap.others_cores, cap.others_memory_mb) if cap.others_cores else None


async def test_a_partition_slurm_does_not_have_is_a_permanent_error(
    slurm: SlurmCluster,
) -> None:
    d = driver_of(slurm, "site-a", cloud="nopart", partition="nosuch")
    try:
        with pytest.raises(PermanentError, match=r"submit drone .*nvalid partition"):
            await d.create(make_vm("nopart", "site-a"))
    finally:
        await d.close()
