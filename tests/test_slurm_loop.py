"""The whole loop on Slurm, with nothing imitated: a job submitted with condor_submit to a
real schedd, for a VMType only the Slurm cloud serves, makes the services `sbatch` a drone
(the built-in drone script) on a real one-node Slurm cluster; the drone's HTCondor (the
tests' trixie root, through the test wrapper testbed/slurm/drone-chroot.sh) joins the pool
with our CS_VM_ID; the job runs there; while it runs the drone is kept and its Slurm job
left alone although demand is gone; then the drone is retired through its own master, its
Slurm job ends and its record goes.

A drone whose Slurm job is cancelled from outside while it is idle and demand lasts is
noticed and replaced; its START refuses a job that would outlast it (`MaxWallTimeMins`).

The timeline is printed (`slurm_<step>_s=` lines, seconds after the submit), and
`slurm_submit_to_joined_s`: from the drone's sbatch to its startd in the pool.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.condor_pool import (
    ROOT,
    WORKER,
    ChrootNode,
    CondorPool,
    build,
    loop_site,
    master_told,
    running_pool,
    wait_until,
)
from tests.natsserver import NatsServer
from tests.slurm_cluster import PARTITION, SlurmCluster
from tests.system import System
from tests.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SITE = "drones"
CLOUD = "hpc"
VM_TYPE = "slurm-worker"
WALLTIME_MIN = 30
DRAIN_MIN = 5
JOB = """
executable = /bin/sleep
arguments = {seconds}
Requirements = VMType =?= "{vm_type}"
+VMType = "{vm_type}"
+VMCPUCores = 1
+VMMem = 1024
request_memory = 128
{extra}
queue 1
"""
"""A v1 job: no slot matches it until a drone of its type joins."""
STEPS = ("intent", "sbatch", "startd_joined", "job_started", "job_done", "retire_sent",
         "startd_gone", "slurm_job_ended", "record_gone")


def site_config(pool: CondorPool, cluster: SlurmCluster, logs: Path) -> str:
    """The site: the pool's schedd and collector, one Slurm cloud running the built-in
    drone under the test wrapper."""
    wrapper = " ".join(shlex.quote(str(p)) for p in (
        ROOT / "testbed" / "slurm" / "drone-chroot.sh", WORKER.directory(),
        ROOT / "testbed" / "condor" / "70-worker-testbed.conf"))
    return loop_site(pool, SITE, pool.address, 300) + f"""[[cloud]]
name = "{CLOUD}"
provider = "slurm"
slurm_conf = "{cluster.conf}"
partition = "{PARTITION}"
walltime_min = {WALLTIME_MIN}
drain_min = {DRAIN_MIN}
condor_wrapper = {json.dumps(wrapper)}
log_dir = "{logs}"
boot_timeout_s = 300
enabled = true
max_vms = 2
"""


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CondorPool]:
    build(WORKER)
    with running_pool(tmp_path_factory.mktemp("condor")) as the_pool:
        yield the_pool


@pytest.fixture
def system(tmp_path: Path, pool: CondorPool, slurm: SlurmCluster, fresh_nats: NatsServer,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[System]:
    """Every service, on a NATS of this test's own; afterwards no drone is left in Slurm
    and no HTCondor process in the drones' root."""
    config = tmp_path / "site.toml"
    logs = tmp_path / "drone-logs"
    logs.mkdir()
    config.write_text(site_config(pool, slurm, logs))
    monkeypatch.setenv("CONDOR_CONFIG", str(pool.client_config))
    services = System(tmp_path, config, fresh_nats.url)
    services.start()
    try:
        yield services
    finally:
        services.stop()
        left = drones(slurm)
        if left:
            slurm.run("scancel", *(job["job_id"] for job in left), check=False)
        ChrootNode(WORKER.directory()).down()
        assert not left, f"drones left in Slurm: {left}"


def drones(cluster: SlurmCluster) -> list[dict[str, str]]:
    """This site's drones Slurm lists as live: job id, name and state."""
    out = cluster.run("squeue", "-h", "-o", "%i|%j|%T|%k")
    found = []
    for line in out.splitlines():
        job_id, name, state, comment = line.split("|", 3)
        if comment.startswith(f"cs:site={SITE};cloud={CLOUD};"):
            found.append({"job_id": job_id, "name": name, "state": state})
    return found


def _ours(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [vm for vm in status.get("vms", [])
            if str(vm.get("name", "")).startswith(f"cs-{SITE}-{CLOUD}-")]


def _slots(pool: CondorPool, vm_id: str, *attrs: str) -> list[str]:
    return pool.condor("condor_status", "-constraint", f'CS_VM_ID == "{vm_id}"', "-af",
                       *(attrs or ("Name",))).split()


def _pool_ads(pool: CondorPool) -> str:
    """Every ad of ours in the collector, for failure messages."""
    return pool.condor("condor_status", "-any", "-constraint", "CS_VM_ID =!= undefined",
                       "-af", "MyType", "Name", "CS_VM_ID", "MyAddress", "DaemonStartTime")


def _retires(system: System) -> str:
    """The poller's retire lines, for failure messages."""
    log = (system.workdir / "cs-poller.log").read_text(errors="replace")
    return "\n".join(line for line in log.splitlines() if "action=retire" in line)


def _job_status(pool: CondorPool, cluster: int) -> str:
    return pool.condor("condor_q", str(cluster), "-af", "JobStatus").strip()


def test_a_job_runs_on_a_drone_that_is_kept_while_busy_then_retired_and_its_slurm_job_ends(
    pool: CondorPool, slurm: SlurmCluster, system: System
) -> None:
    t0 = time.monotonic()
    at: dict[str, float] = {}

    def mark(step: str) -> None:
        at[step] = time.monotonic() - t0
        print(f"slurm_{step}_s={at[step]:.1f}", flush=True)

    cluster = pool.submit("alice", JOB.format(seconds=20, vm_type=VM_TYPE, extra=""))
    status = system.wait_for("the planner's boot intent", lambda s: bool(_ours(s)), 120)
    mark("intent")
    vm_id = _ours(status)[0]["name"]
    [first] = eventually("the drone in Slurm", lambda: [
        d for d in drones(slurm) if d["name"] == vm_id], 60, 0.2, system.logs)
    mark("sbatch")
    eventually("the drone's startd in the pool", lambda: _slots(pool, vm_id), 120, 0.2,
               lambda: f"Slurm: {drones(slurm)}\n{system.logs()}")
    mark("startd_joined")
    print(f"slurm_submit_to_joined_s={at['startd_joined'] - at['sbatch']:.1f}", flush=True)
    vm_type, cpus, memory, end = _slots(pool, vm_id, "VMType", "TotalSlotCpus",
                                        "TotalSlotMemory", "CS_DRONE_END")
    assert (vm_type, cpus, memory) == (VM_TYPE, "1", "1024")
    assert abs(int(end) - (time.time() + WALLTIME_MIN * 60)) < 120, end
    system.wait_for("cs status showing the drone's startd",
                    lambda s: any(v["name"] == vm_id and v["startd"] for v in _ours(s)), 60)
    assert wait_until(lambda: _job_status(pool, cluster) == "2", 120), "the job never ran"
    mark("job_started")

    # No demand is left and the drone is busy: it stays, and so does its Slurm job.
    while _job_status(pool, cluster) == "2":
        vm = next((v for v in _ours(system.status()) if v["name"] == vm_id), None)
        assert vm is not None and vm["state"] in ("booting", "running"), (vm, system.logs())
        assert [d["job_id"] for d in drones(slurm) if d["state"] == "RUNNING"] == \
            [first["job_id"]], drones(slurm)
        time.sleep(2)

    def finished() -> list[str]:
        return pool.condor("condor_history", str(cluster), "-af", "JobStatus", "ExitCode",
                           "LastRemoteHost").split()

    assert wait_until(finished, 60), "the job never reached the history"
    history = finished()
    assert history[:2] == ["4", "0"] and history[2].endswith(f"@{vm_id}"), history
    mark("job_done")
    poller_log = system.workdir / "cs-poller.log"
    assert wait_until(lambda: master_told(poller_log.read_text(errors="replace"), vm_id), 60), \
        f"the drone's master was never told\n{system.logs()}"
    mark("retire_sent")
    assert wait_until(lambda: not _slots(pool, vm_id), 120), "the startd did not leave"
    mark("startd_gone")
    assert wait_until(lambda: not drones(slurm), 120), drones(slurm)
    mark("slurm_job_ended")
    system.wait_for("the drone's record gone", lambda s: not _ours(s), 60)
    mark("record_gone")
    assert list(at) == list(STEPS)
    out = system.workdir / "drone-logs" / f"{vm_id}-{first['job_id']}.out"
    assert out.exists(), sorted(p.name for p in (system.workdir / "drone-logs").iterdir())
    eventually("HTCondor gone with its drone", lambda: not ChrootNode(WORKER.directory()).pids(),
               30, 0.5)
    # No credential in what an operator sees: the services' logs, status, the drone's output.
    seen = "".join(p.read_text(errors="replace") for p in system.workdir.glob("cs-*.log"))
    seen += out.read_text(errors="replace") + system.cs("status", "--json").stdout
    assert not re.search(r"eyJ[\w-]{10,}\.eyJ", seen), "an IDTOKEN is in a log or status"


def test_a_drone_cancelled_while_idle_is_replaced_while_demand_lasts(
    pool: CondorPool, slurm: SlurmCluster, system: System
) -> None:
    """The job asks for more time than a drone has left (MaxWallTimeMins), so the drone's
    START refuses it: the job stays idle, the drone stays idle. Cancelled from outside, the
    drone is gone (not in error) and a new one is submitted for the demand that is left;
    once the job is removed, that one is retired."""
    too_long = f"+MaxWallTimeMins = {WALLTIME_MIN + 10}"
    cluster = pool.submit("alice", JOB.format(seconds=5, vm_type=VM_TYPE, extra=too_long))
    assert wait_until(lambda: drones(slurm), 120), system.logs()
    [first] = drones(slurm)
    assert wait_until(lambda: _slots(pool, first["name"]), 120), system.logs()
    for _ in range(5):  # several negotiation cycles (5 s each): never matched
        time.sleep(3)
        assert _job_status(pool, cluster) == "1"
        assert _slots(pool, first["name"], "State") == ["Unclaimed"]

    cancelled_at = time.time()
    slurm.run("scancel", first["job_id"])

    def replaced() -> list[dict[str, str]]:
        return [d for d in drones(slurm) if d["job_id"] != first["job_id"]]

    assert wait_until(replaced, 120), f"no new drone; {drones(slurm)}\n{system.logs()}"
    [second] = replaced()

    def second_joined() -> bool:
        # The new drone may have the old one's name: only a startd started since counts.
        started = _slots(pool, second["name"], "DaemonStartTime")
        return any(int(at) >= cancelled_at - 1 for at in started)

    eventually("the new drone's startd", second_joined, 120, 0.5, system.logs)
    errors = [v for v in _ours(system.status()) if v["state"] == "error"]
    assert errors == [], errors

    pool.condor("condor_rm", str(cluster))
    eventually("the last drone retired and ended", lambda: not drones(slurm), 120, 0.5,
               lambda: f"{drones(slurm)}\n{_ours(system.status())}\n{_pool_ads(pool)}\n"
               f"{_retires(system)}\n{system.logs(40)}")
    system.wait_for("no drone left in the registry", lambda s: not _ours(s), 60)
