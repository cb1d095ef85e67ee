"""The single container, built from container/Dockerfile and run with podman as
docs/container.md tells a site to: every program up, the seed's `cloud_status` and
`cloud_admin`, a v1 job submitted inside it by an ordinary user running on a VM the container's
own libvirt booted (QEMU under TCG), kept while busy and retired after, with no credential in
a log, a new container on the same volume keeping what it must, bad input said in one line,
and the same image booting a server on the OpenStack testbed from a mounted clouds.yaml (the
seed's external cloud).

Figures printed: `container_build_s`, `container_image_mb`, `container_ready_s`,
`container_stop_s`, and the loop's `container_pool_<step>_s` (seconds after the submit; the
same steps as tests/test_condor_vm.py's `pool_<step>_s`).
"""

from __future__ import annotations

import base64
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cli.supervisor import SERVICES
from tests.condor_pool import ROOT, master_told
from tests.container_image import IMAGE, RUNTIME, Container, build, podman
from tests.demo import free_port
from tests.openstack_bed import APPCRED_CLOUD, Testbed
from tests.openstack_bed import IMAGE as IMAGE_ON_NOVA
from tests.waiting import eventually
from tests.worker_image import WorkerImage, build_image

T = TypeVar("T")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

PROGRAMS = {"nats-server", "condor_master", "virtlogd", "libvirtd", *SERVICES}
"""Every program container/supervisord.conf runs."""
VM_TYPE = "ctr-worker"
JOB = f"""
executable = /bin/sleep
arguments = 30
Requirements = VMType =?= "{VM_TYPE}"
+VMType = "{VM_TYPE}"
+VMAMI = "worker.raw"
+VMCPUCores = 1
+VMMem = 1024
request_memory = 256
queue 1
"""
"""A v1 job, as the seed's try_local.job: its VM type and the image (a volume of libvirt's
pool "default", where docs/container.md says worker images go)."""
STEPS = ("intent", "domain_started", "startd_joined", "job_started", "job_done",
         "retire_sent", "startd_gone", "vm_gone")
KEPT = ("/var/lib/cloudscheduler/condor/passwords.d/POOL",
        "/var/lib/cloudscheduler/condor/ssl/ca.crt", "/var/lib/cloudscheduler/condor/ssl/ca.key")
"""What a new container must find as the first one left it: workers' tokens and certificates
are signed with these."""
CONSOLES = "/var/lib/cloudscheduler/consoles"
"""Where the test's container-cloud writes its VMs' serial consoles (in the volume)."""
STOP_TIMEOUT_S = 90
"""`podman stop -t`: condor_master's stopwaitsecs (60) and a margin."""


@pytest.fixture(scope="module")
def image() -> str:
    built = build()
    print(f"container_build_s={built.seconds:.1f}")
    print(f"container_image_mb={built.megabytes:.0f}")
    return IMAGE


@pytest.fixture(scope="module")
def worker() -> WorkerImage:
    return build_image()


def shipped_config(edits: dict[str, str]) -> str:
    """The shipped container/cloudscheduler.toml with a site's `edits` (each old text must be
    there exactly once, so a change to the shipped file cannot silently skip one)."""
    text = (ROOT / "container" / "cloudscheduler.toml").read_text()
    for old, new in edits.items():
        assert text.count(old) == 1, f"container/cloudscheduler.toml no longer has {old!r}"
        text = text.replace(old, new)
    return text


def site_config(worker: WorkerImage) -> str:
    """The shipped config with fast cycles, and container-cloud booting the test worker
    image's kernel under TCG on QEMU's user network (the image has no boot loader; no
    /dev/kvm here)."""
    return shipped_config({
        "interval_s = 15": "interval_s = 2\nquery_timeout_s = 30",
        "[planner]\ninterval_s = 10": "[planner]\ninterval_s = 2\nmin_vm_age_s = 0\n"
                                      "register_timeout_s = 900",
        '[provisioner]\n': '[provisioner]\nreconcile_interval_s = 2\n',
        'base_image = "worker.qcow2"': (
            'base_image = "worker.qcow2"\nbase_format = "raw"\ndomain_type = "qemu"\n'
            f'user_network = true\nkernel = "{worker.kernel}"\ninitrd = "{worker.initrd}"\n'
            f'cmdline = "{worker.cmdline()}"\nreserved_memory_mb = 256\nboot_timeout_s = 900\n'
            f'console_log_dir = "{CONSOLES}"'),
        "max_vms = 2\n": "max_vms = 1\n",
    })


def _free_ip() -> str:
    """An address on podman's default network (10.88.0.0/16) for a container of this run."""
    return f"10.88.{random.randint(100, 250)}.{random.randint(2, 250)}"


def wait_programs(box: Container, timeout: float = 120.0) -> None:
    """Every program RUNNING (raises with the container's logs if not)."""
    def all_running() -> bool:
        if box.state() not in ("running", "created", "configured"):
            raise AssertionError(f"the container is {box.state()}:\n{box.logs()[-3000:]}")
        seen = box.programs()
        return set(seen) == PROGRAMS and set(seen.values()) == {"RUNNING"}

    until("every program RUNNING", all_running, timeout,
          lambda: f"programs: {box.programs()}\n{box.logs()[-3000:]}")


def until(what: str, check: Callable[[], T], timeout: float,
          detail: Callable[[], str] = lambda: "") -> T:
    """`eventually`, asking once a second (each ask is a `podman exec`)."""
    return eventually(what, check, timeout, 1.0, detail)


def _digest(box: Container, path: str) -> str:
    digest = box.exec("sha256sum", path).split()[0]
    assert len(digest) == 64, digest
    return digest


@pytest.fixture(scope="module")
def volume() -> Iterator[str]:
    name = f"cs-test-state-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "--force", name, check=False)


@pytest.fixture(scope="module")
def running(image: str, worker: WorkerImage, volume: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Container, list[str]]]:
    """The container as docs/container.md runs it, with the worker image and the site's
    config mounted; (container, the run options, for a second start on the same volume)."""
    work = tmp_path_factory.mktemp("container")
    config = work / "cloudscheduler.toml"
    config.write_text(site_config(worker))
    ip = _free_ip()
    box = Container(f"cs-test-{uuid.uuid4().hex[:8]}", image)
    options = [
        "--ip", ip, "-e", f"CENTRAL_MANAGER={ip}",
        "-v", f"{volume}:/var/lib/cloudscheduler",
        "-v", f"{config}:/etc/cloudscheduler/cloudscheduler.toml:ro",
        "-v", f"{worker.disk}:/var/lib/libvirt/images/worker.raw:ro",
        "-v", f"{worker.kernel.parent}:{worker.kernel.parent}:ro",
    ]
    started = time.monotonic()
    box.run(*options)
    try:
        wait_programs(box)
        print(f"container_ready_s={time.monotonic() - started:.1f}")
        yield box, options
    finally:
        box.remove()


def test_every_program_runs_and_the_seeds_commands_answer(
        running: tuple[Container, list[str]]) -> None:
    box, _ = running
    # Each daemon advertises itself once it is up (the master last, seconds after the rest).
    until("the master, collector, negotiator and schedd in condor_status -any",
          lambda: {"Collector", "Negotiator", "Scheduler", "DaemonMaster"} <= set(
              box.exec("condor_status", "-any", "-af", "MyType").split()), 60,
          lambda: box.exec("condor_status", "-any"))

    clouds = box.exec("cloud_status")
    assert "container-cloud" in clouds and "cc-west" in clouds, clouds
    assert re.search(r"qemu:///system\s+localhost\s+1\s.*False", clouds), clouds
    box.exec("cloud_admin", "-e", "container-cloud")
    assert re.search(r"qemu:///system\s+localhost\s+1\s.*True", box.exec("cloud_status"))
    box.exec("cloud_admin", "-d", "container-cloud")
    assert re.search(r"container-cloud\s.*\bno\b", box.exec("cs", "cloud", "list"))

    # The shipped config's OpenStack cloud has no clouds.yaml mounted: said next to its
    # provisioner in `cs status`, in one line, and nothing restarts over it.
    def said() -> str:
        status = box.exec("cs", "status", "--json")
        return status if "/etc/cloudscheduler/clouds.yaml does not exist" in status else ""

    until("the missing clouds.yaml in cs status", said, 60, lambda: box.exec("cs", "status"))
    assert set(box.programs().values()) == {"RUNNING"}


def test_a_v1_job_submitted_inside_runs_on_a_vm_the_container_booted(
        running: tuple[Container, list[str]]) -> None:
    box, _ = running
    box.exec("useradd", "--create-home", "alice")
    box.exec("sh", "-c", "cat > job.sub", user="alice", stdin=JOB)
    box.exec("mkdir", "-p", CONSOLES)
    box.exec("cloud_admin", "-e", "container-cloud")
    t0 = time.monotonic()
    at: dict[str, float] = {}

    def mark(step: str) -> None:
        at[step] = time.monotonic() - t0
        print(f"container_pool_{step}_s={at[step]:.1f}", flush=True)

    submitted = box.exec("condor_submit", "job.sub", user="alice")
    cluster = re.search(r"submitted to cluster (\d+)", submitted)
    assert cluster, submitted

    def vms() -> list[str]:
        return re.findall(r"\bcs-container-container-cloud-\S+", box.exec("cs", "vm", "list"))

    until("the planner's boot intent", vms, 120, lambda: box.exec("cs", "status"))
    mark("intent")
    vm_id = vms()[0]

    def domains() -> list[str]:
        return box.exec("virsh", "-c", "qemu:///system", "list", "--all", "--name").split()

    until("the VM's domain", lambda: vm_id in domains(), 120, lambda: box.exec("cs", "status"))
    mark("domain_started")

    def slots() -> list[str]:
        return box.exec("condor_status", "-constraint", f'CS_VM_ID == "{vm_id}"',
                        "-af", "Name").split()

    def console() -> str:
        return box.exec("sh", "-c", f"tail -c 3000 {CONSOLES}/{vm_id}-console.log; tail -c 2000 "
                        "/var/lib/cloudscheduler/logs/cs-provisioner-libvirt.log", check=False)

    until("the VM's startd in the pool", slots, 600, console)
    mark("startd_joined")

    def job_status() -> str:
        return box.exec("condor_q", cluster.group(1), "-af", "JobStatus").strip()

    until("the job running", lambda: job_status() == "2", 180, lambda: f"job status {job_status()}")
    mark("job_started")

    # Demand is gone (the one job runs) and the VM is busy: it stays, cycle after cycle.
    busy_states = set()
    while job_status() == "2":
        listed = json.loads(box.exec("cs", "vm", "list", "--json") or "[]")
        vm = next((v for v in listed if v["name"] == vm_id), None)
        assert vm is not None, "the busy VM left the registry"
        busy_states.add(vm["state"])
        time.sleep(2)
    assert busy_states == {"running"}, busy_states

    def finished() -> list[str]:
        return box.exec("condor_history", cluster.group(1), "-af", "JobStatus", "ExitCode",
                        "LastRemoteHost").split()

    until("the job in the history", finished, 120, lambda: f"job status {job_status()}")
    history = finished()
    assert history[:2] == ["4", "0"] and history[2].endswith(f"@{vm_id}"), history
    mark("job_done")

    def retired() -> bool:
        return master_told(box.exec("cat", "/var/lib/cloudscheduler/logs/cs-poller.log"), vm_id)

    until("the retire sent to the VM's master", retired, 120, lambda: box.exec("cs", "status"))
    mark("retire_sent")
    until("the startd gone", lambda: not slots(), 180, lambda: "the startd did not leave the pool")
    mark("startd_gone")

    def traces() -> list[str]:
        volumes = box.exec("virsh", "-c", "qemu:///system", "vol-list", "default").split()
        return [name for name in [*domains(), *volumes] if vm_id in name]

    until("the domain, overlay and seed gone", lambda: not traces(), 180,
          lambda: f"left: {traces()}")
    mark("vm_gone")
    assert list(at) == list(STEPS)
    assert not vms(), box.exec("cs", "vm", "list")

    # No credential in what an operator sees: the logs in the volume, status, the VM list.
    seen = box.exec("sh", "-c", "cat /var/lib/cloudscheduler/logs/*.log")
    seen += box.exec("cs", "status", "--json") + box.exec("cs", "vm", "list")
    assert "action=boot outcome=" in seen  # the logs were read
    assert not re.search(r"eyJ[\w-]{10,}\.eyJ", seen), "an IDTOKEN is in a log or status"
    key = box.exec("cat", "/var/lib/cloudscheduler/condor/ssl/worker.key")
    body = "".join(key.splitlines()[1:-1])
    as_sent = base64.b64encode(key.encode()).decode()  # as the user-data carries it
    flat = seen.replace("\n", "")
    assert body[:40] not in flat and as_sent[:40] not in flat, "the workers' key is in a log"


def test_a_new_container_on_the_volume_keeps_the_pool_and_the_flags(
        running: tuple[Container, list[str]], image: str, volume: str) -> None:
    box, options = running
    box.exec("cloud_admin", "-e", "container-cloud")
    kept = {path: _digest(box, path) for path in KEPT}
    # A job no VM will serve (it asks for cc-west, which stays disabled): it must survive too.
    box.exec("useradd", "--create-home", "bob")
    box.exec("sh", "-c", "cat > wait.sub", user="bob", stdin=JOB.replace(
        VM_TYPE, "never-served").replace("queue", '+TargetClouds = "cc-west"\nqueue'))
    queued = box.exec("condor_submit", "wait.sub", user="bob")
    assert "submitted to cluster" in queued, queued

    started = time.monotonic()
    podman("stop", "--time", str(STOP_TIMEOUT_S), box.name, timeout=STOP_TIMEOUT_S + 30)
    stop_s = time.monotonic() - started
    print(f"container_stop_s={stop_s:.1f}")
    assert stop_s < STOP_TIMEOUT_S, "supervisord did not stop its programs in time"
    log = podman("run", "--rm", *RUNTIME, "-v", f"{volume}:/state", "--entrypoint", "cat",
                 image, "/state/logs/supervisord.log").stdout
    for program in PROGRAMS:
        assert f"stopped: {program} (" in log or f"stopped: {program}\n" in log, \
            f"{program} was not stopped by supervisord:\n{log[-3000:]}"
    assert "SIGKILL" not in log.split("SIGTERM")[-1], log[-3000:]

    again = Container(box.name + "-2", image)
    try:
        again.run(*options)
        wait_programs(again)
        assert {path: _digest(again, path) for path in KEPT} == kept
        status = again.exec("cloud_status")
        assert re.search(r"qemu:///system\s+localhost\s+1\s.*True", status), status
        # The job queue is in the volume: bob's job waits on.
        owners = again.exec("condor_q", "-allusers", "-af", "Owner").split()
        assert "bob" in owners, owners
        # Nothing booted for the waiting job (its cloud is disabled), nothing left over.
        until("the waiting job's class in cs status",
              lambda: "never-served" in again.exec("cs", "status"), 60,
                   lambda: again.exec("cs", "status"))
        assert again.exec("virsh", "-c", "qemu:///system", "list", "--all", "--name").split() \
            == []
        assert not re.findall(r"cs-container-\S+", again.exec("cs", "vm", "list"))
    finally:
        again.remove()


def test_bad_input_is_said_in_one_line(image: str, tmp_path: Path) -> None:
    # A broken mounted config: the container stops at once and says where.
    broken = tmp_path / "cloudscheduler.toml"
    broken.write_text('site = "x"\n[[cloud]\nname = "a"\n')
    done = podman("run", "--rm", *RUNTIME, "-v",
                  f"{broken}:/etc/cloudscheduler/cloudscheduler.toml:ro", image, check=False,
                  timeout=120)
    assert done.returncode == 78, (done.returncode, done.stdout, done.stderr)
    assert ("is not usable: /etc/cloudscheduler/cloudscheduler.toml: not valid TOML: "
            "Expected ']]' at the end of an array declaration (at line 2" in done.stderr), \
        done.stderr

    # No CENTRAL_MANAGER: it runs (container-cloud's VMs reach it), and says what to set.
    box = Container(f"cs-test-{uuid.uuid4().hex[:8]}", image)
    try:
        box.run()
        wait_programs(box)
        assert "WARNING: CENTRAL_MANAGER is not set" in box.logs()

        def said() -> str:
            status = box.exec("cs", "status", "--json")
            return status if "CENTRAL_MANAGER is not set: VMs are told" in status else ""

        until("the missing CENTRAL_MANAGER in cs status", said, 60,
              lambda: box.exec("cs", "status"))
    finally:
        box.remove()


def test_the_same_image_boots_on_an_openstack_cloud_from_a_mounted_clouds_yaml(
        image: str, bed: Testbed, admin: Any, tmp_path: Path) -> None:
    """The seed's external-cloud case: the image with a mounted clouds.yaml boots on the
    suite's OpenStack testbed (Keystone, Nova) for a job that asks for that cloud, and the
    server goes when the job does. On the host's network (the testbed's endpoints are on
    loopback), so every port the container opens is a free one."""
    nats_port, condor_port = free_port(), free_port()
    config = tmp_path / "cloudscheduler.toml"
    config.write_text(shipped_config({
        "interval_s = 15": "interval_s = 2",
        "[planner]\ninterval_s = 10": "[planner]\ninterval_s = 2\nmin_vm_age_s = 0",
        'os_cloud = "cc-west"\nenabled = false':
            f'os_cloud = "{APPCRED_CLOUD}"\nnetwork = "none"\nenabled = true',
    }))
    box = Container(f"cs-test-{uuid.uuid4().hex[:8]}", image)

    def servers() -> list[Any]:
        return [s for s in admin.compute.servers(all_projects=True)
                if s.name.startswith("cs-container-cc-west-")]

    try:
        box.run("--network", "host",
                "-e", f"CENTRAL_MANAGER=127.0.0.1:{condor_port}",
                "-e", "NETWORK_INTERFACE=127.0.0.1",
                "-e", f"_CONDOR_SHARED_PORT_PORT={condor_port}",
                "-e", f"CS_NATS_PORT={nats_port}",
                "-e", f"CS_NATS_URL=nats://127.0.0.1:{nats_port}",
                "-v", f"{config}:/etc/cloudscheduler/cloudscheduler.toml:ro",
                "-v", f"{bed.clouds_yaml}:/etc/cloudscheduler/clouds.yaml:ro")
        wait_programs(box)
        box.exec("useradd", "--create-home", "carol")
        box.exec("sh", "-c", "cat > cloud.sub", user="carol", stdin=JOB.replace(
            '+VMAMI = "worker.raw"', f'+VMAMI = "cc-west:{IMAGE_ON_NOVA}"').replace(
            "+VMMem = 1024", "+VMMem = 512").replace("queue", '+TargetClouds = "cc-west"\nqueue'))
        submitted = box.exec("condor_submit", "cloud.sub", user="carol")
        cluster = re.search(r"submitted to cluster (\d+)", submitted)
        assert cluster, submitted


        booted = until("a server on Nova for the job", servers, 180,
                       lambda: box.exec("cs", "status"))
        assert len(booted) == 1, booted
        until("the VM running in cs vm list",
              lambda: re.search(rf"{booted[0].name}\s.*running", box.exec("cs", "vm", "list")),
              120, lambda: box.exec("cs", "vm", "list"))
        # The job goes: the VM (it never joined the pool: Nova's fake driver runs no guest)
        # is no longer needed, and its server is deleted.
        box.exec("condor_rm", cluster.group(1), user="carol")
        until("the server deleted", lambda: not servers(), 180,
              lambda: box.exec("cs", "status"))
    finally:
        box.remove()
        for server in servers():
            admin.compute.delete_server(server)
