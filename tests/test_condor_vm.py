"""The whole loop, once, with nothing imitated: a job submitted with condor_submit to a real
schedd makes the services boot a real VM (Debian trixie with HTCondor and cloud-init, under
TCG on qemu:///system), which our user-data makes a worker of the pool; the job runs there;
while it runs the planner keeps the busy VM although demand is gone; once it ends the
planner retires the VM through its own master (DaemonsOffPeaceful, authenticated by the
poller's certificate), the startd leaves, and the VM is killed without a trace.

The timeline is printed (`pool_<step>_s=` lines, seconds after the submit); `bench/pool_bench.py`
prints the same figures for `make bench`.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import qemu_host
from tests.condor_pool import CondorPool, loop_site, master_told, running_pool, wait_until
from tests.natsserver import NatsServer
from tests.system import System
from tests.worker_image import WorkerImage, build_image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

SITE = "loop"
CLOUD = "tcg"
VM_TYPE = "loop-worker"
JOB_SECONDS = 60
"""Long enough for several planner cycles with the VM busy and no demand left."""
JOB = f"""
executable = /bin/sleep
arguments = {JOB_SECONDS}
Requirements = VMType =?= "{VM_TYPE}"
+VMType = "{VM_TYPE}"
+VMCPUCores = 1
+VMMem = 1024
request_memory = 256
queue 1
"""
"""A v1 job: no slot matches it until a VM of its type joins."""
STEPS = ("intent", "domain_started", "startd_joined", "job_started", "job_done",
         "retire_sent", "startd_gone", "vm_gone")


def site_config(pool: CondorPool, image: WorkerImage) -> str:
    """The site: the pool's schedd and collector, one QEMU cloud on the user network."""
    return loop_site(pool, SITE, f"10.0.2.2:{pool.port}", 900) + f"""[[cloud]]
name = "{CLOUD}"
provider = "libvirt"
uri = "{qemu_host.URI}"
storage_pool = "{qemu_host.POOL}"
base_image = "{image.volume()}"
base_format = "raw"
domain_type = "qemu"
user_network = true
kernel = "{image.kernel}"
initrd = "{image.initrd}"
cmdline = "{image.cmdline(forward_port=pool.port)}"
console_log_dir = "{qemu_host.CONSOLE_DIR}"
reserved_memory_mb = 256
boot_timeout_s = 900
enabled = true
max_vms = 1
"""


@pytest.fixture(scope="module")
def image() -> WorkerImage:
    qemu_host.prepare()
    built = build_image()
    qemu_host.add_base(built.disk, built.volume())
    return built


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CondorPool]:
    with running_pool(tmp_path_factory.mktemp("condor")) as the_pool:
        yield the_pool


@pytest.fixture
def system(tmp_path: Path, pool: CondorPool, image: WorkerImage, fresh_nats: NatsServer,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[System]:
    """Every service, on a NATS of this test's own: the session's holds other tests' VM
    records, some on clouds named like this one."""
    config = tmp_path / "site.toml"
    config.write_text(site_config(pool, image))
    monkeypatch.setenv("CONDOR_CONFIG", str(pool.client_config))
    services = System(tmp_path, config, fresh_nats.url)
    services.start()
    try:
        yield services
    finally:
        services.stop()
        for name in qemu_host.ours(f"cs-{SITE}-")[0]:
            qemu_host.destroy(name)


def _ours(status: dict[str, object]) -> list[dict[str, str]]:
    vms = status.get("vms", [])
    assert isinstance(vms, list)
    return [vm for vm in vms if vm.get("name", "").startswith(f"cs-{SITE}-{CLOUD}-")]


def test_a_job_runs_on_a_vm_we_booted_which_is_kept_while_busy_then_retired(
    pool: CondorPool, system: System
) -> None:
    t0 = time.monotonic()
    at: dict[str, float] = {}

    def mark(step: str) -> None:
        at[step] = time.monotonic() - t0
        print(f"pool_{step}_s={at[step]:.1f}", flush=True)

    cluster = pool.submit("alice", JOB)
    status = system.wait_for("the planner's boot intent", lambda s: bool(_ours(s)), 120)
    mark("intent")
    vm_id = _ours(status)[0]["name"]
    assert wait_until(lambda: qemu_host.domain_defined(vm_id), 120), system.logs()
    mark("domain_started")

    def slots() -> list[str]:
        return pool.condor("condor_status", "-constraint", f'CS_VM_ID == "{vm_id}"',
                           "-af", "Name").split()

    if not wait_until(slots, 600):
        raise AssertionError(f"the VM's startd never joined; console tail:\n"
                             f"{qemu_host.console(vm_id)[-3000:]}\n{system.logs()}")
    mark("startd_joined")
    system.wait_for("cs status showing the VM's startd",
                    lambda s: any(v["name"] == vm_id and v["startd"] for v in _ours(s)), 60)

    def job_status() -> str:
        return pool.condor("condor_q", str(cluster), "-af", "JobStatus").strip()

    assert wait_until(lambda: job_status() == "2", 180), f"the job never ran: {job_status()}"
    mark("job_started")

    # Demand is gone (the one job runs) and the VM is busy: it must stay, cycle after cycle.
    busy_states = set()
    while job_status() == "2":
        vm = next((v for v in _ours(system.status()) if v["name"] == vm_id), None)
        assert vm is not None, "the busy VM left the registry"
        busy_states.add(vm["state"])
        assert vm["state"] not in ("retiring", "deleting", "deleted"), (vm, system.logs())
        time.sleep(2)
    assert busy_states == {"running"}, busy_states

    def finished() -> list[str]:
        return pool.condor("condor_history", str(cluster), "-af", "JobStatus", "ExitCode",
                           "LastRemoteHost").split()

    # condor_q may still list the job as completed (4) a moment before it is in the history.
    assert wait_until(finished, 60), f"the job never reached the history: {job_status()}"
    history = finished()
    assert history[:2] == ["4", "0"] and history[2].endswith(f"@{vm_id}"), history
    mark("job_done")

    poller_log = system.workdir / "cs-poller.log"
    assert wait_until(lambda: master_told(poller_log.read_text(errors="replace"), vm_id), 120), \
        f"the VM's master was never told\n{system.logs()}"
    mark("retire_sent")
    assert wait_until(lambda: not slots(), 180), "the startd did not leave the pool"
    mark("startd_gone")
    assert wait_until(lambda: qemu_host.ours(vm_id) == ([], []), 180), qemu_host.ours(vm_id)
    mark("vm_gone")
    assert list(at) == list(STEPS)

    # No credential in what an operator sees: logs, status, the console.
    seen = "".join(p.read_text(errors="replace") for p in system.workdir.glob("cs-*.log"))
    seen += system.cs("status", "--json").stdout + system.cs("vm", "list").stdout
    assert not re.search(r"eyJ[\w-]{10,}\.eyJ", seen), "an IDTOKEN is in a log or status"
    key = (pool.ssl_dir / "worker.key").read_bytes()
    body = "".join(key.decode().splitlines()[1:-1])
    as_sent = base64.b64encode(key).decode()  # as the user-data carries it
    flat = seen.replace("\n", "")
    assert body[:40] not in flat and as_sent[:40] not in flat, "the workers' key is in a log"
