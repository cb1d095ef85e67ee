"""Real VMs: the libvirt driver on qemu:///system under TCG, booting a tiny Debian-kernel guest
that reads its NoCloud seed and prints its own CS_VM_ID to the serial console."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus import subjects
from bus.connection import Bus
from bus.schemas import CloudRecord, Intent, VmRecord, VmSpec
from cli.supervisor import COMMANDS
from providers.libvirt.driver import OVERLAY_SUFFIX, SEED_SUFFIX, LibvirtDriver
from provisioning.contract import DriverContract, make_vm
from provisioning.driver import DriverContext
from provisioning.userdata import WorkerSettings
from tests import guest, qemu_host
from tests.natsserver import NatsServer
from tests.waiting import eventually_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SITE = "qemu-test"
CLOUD = "tcg"
USER_DATA = "#cloud-config\n# CS_VM_ID = ${CS_VM_ID}\n# pool = ${CENTRAL_MANAGER}\n"
WORKER = WorkerSettings(central_manager="cm.qemu.test", token_file=None)


@pytest.fixture(scope="module")
def built() -> guest.Guest:
    return qemu_host.prepare()


@pytest.fixture
async def driver(built: guest.Guest) -> AsyncIterator[LibvirtDriver]:
    d = LibvirtDriver(qemu_host.record(CLOUD, built, USER_DATA),
                      DriverContext.of(SITE, WORKER, 120))
    yield d
    await d.close()


@pytest.fixture
async def other_site_driver(built: guest.Guest) -> AsyncIterator[LibvirtDriver]:
    d = LibvirtDriver(qemu_host.record(CLOUD, built, USER_DATA),
                      DriverContext.of("qemu-other", WORKER, 120))
    yield d
    await d.close()


class TestQemuContract(DriverContract):
    """The shared driver contract, on a real hypervisor."""

    cloud = CLOUD
    site = SITE
    other_site = "qemu-other"
    image = qemu_host.BASE


async def test_a_real_vm_boots_reads_its_seed_and_is_removed_without_a_trace(
    driver: LibvirtDriver,
) -> None:
    vm = make_vm(CLOUD, SITE, qemu_host.BASE)
    instance = await driver.create(vm)
    assert instance.state == "running"
    try:
        log = qemu_host.wait_console(vm.vm_id, f"{guest.MARK} done")
        assert f"{guest.MARK} # CS_VM_ID = {vm.vm_id}" in log, log[-3000:]
        assert "no disk labelled cidata" not in log
    finally:
        await driver.delete(vm.vm_id)
    assert await driver.state(vm.vm_id) is None
    assert qemu_host.ours(vm.vm_id) == ([], [])


async def test_capacity_is_this_host(driver: LibvirtDriver) -> None:
    cap = await driver.capacity()
    assert cap.max_cores == os.cpu_count()
    assert cap.max_memory_mb > 0
    assert cap.source.startswith("libvirt host ")


PROVISIONER_CONFIG = """
site = "{site}"
[nats]
url = "{url}"
[worker]
central_manager = "cm.qemu.test"
[provisioner]
reconcile_interval_s = 1
orphan_grace_s = 5
vanished_grace_s = 600
"""


def _start_provisioner(config: Path, log: Path, url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CS_CONFIG=str(config), CS_NATS_URL=url, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, *COMMANDS["cs-provisioner-libvirt"]],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)


async def _registry_state(bus: Bus, vm: VmRecord, want: str, timeout: float) -> VmRecord:
    kv = bus.kv(subjects.VMS_BUCKET, VmRecord)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = await kv.get(subjects.vm_key(vm.cloud, vm.vm_id))
        if entry is not None and entry.value.state == want:
            return entry.value
        await asyncio.sleep(0.5)
    raise AssertionError(f"{vm.vm_id} not {want} in the registry within {timeout:.0f}s")


async def _waiting(bus: Bus, cloud: str, replicas: int) -> bool:
    backlog = await bus.intent_backlog("libvirt", cloud)
    return backlog is not None and backlog.waiting >= replicas


async def _book_cloud(bus: Bus, built: guest.Guest, cloud: str, count: int,
                      spec: VmSpec | None = None) -> list[VmRecord]:
    """The cloud's record in KV and `count` VMs booked in the registry (as the admin service
    and the planner would have done); the booked VMs."""
    await bus.kv(subjects.CLOUDS_BUCKET, CloudRecord).put(
        cloud, qemu_host.record(cloud, built, USER_DATA))
    kv = bus.kv(subjects.VMS_BUCKET, VmRecord)
    vms = []
    for _ in range(count):
        vm = make_vm(cloud, SITE, qemu_host.BASE)
        update: dict[str, object] = {"created_at": time.time(), "updated_at": time.time()}
        if spec is not None:
            update["spec"] = spec
        vm = vm.model_copy(update=update)
        assert await kv.create(subjects.vm_key(cloud, vm.vm_id), vm) is not None
        vms.append(vm)
    return vms


async def test_provisioner_killed_between_create_and_ack_makes_exactly_one_vm(
    bus: Bus, nats_server: NatsServer, built: guest.Guest, tmp_path: Path,
) -> None:
    cloud = f"crash{uuid.uuid4().hex[:6]}"
    [vm] = await _book_cloud(bus, built, cloud, 1)
    config = tmp_path / "cs.toml"
    config.write_text(PROVISIONER_CONFIG.format(site=SITE, url=nats_server.url))
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _start_provisioner(config, first_log, nats_server.url)
    second = None
    try:
        await bus.js_publish(subjects.intent(cloud), Intent(
            intent_id=vm.intent_id, action="boot", cloud=cloud, vm_id=vm.vm_id, spec=vm.spec,
            created_at=time.time()))
        deadline = time.monotonic() + 120
        while not qemu_host.domain_defined(vm.vm_id):
            assert time.monotonic() < deadline, first_log.read_text()
            assert first.poll() is None, first_log.read_text()
            await asyncio.sleep(0.02)
        first.kill()  # SIGKILL: no cleanup, no ack
        first.wait()
        assert "outcome=" not in first_log.read_text(), "killed too late: the intent was acked"

        second = _start_provisioner(config, second_log, nats_server.url)
        # The unacked intent comes back after the work queue's ack wait (60 s); reconcile may
        # mark the VM running before that, from the domain it finds.
        deadline = time.monotonic() + 150
        while f"intent={vm.intent_id}" not in second_log.read_text():
            assert time.monotonic() < deadline, second_log.read_text()
            await asyncio.sleep(1.0)
        running = await _registry_state(bus, vm, "running", timeout=30)
        assert running.intent_id == vm.intent_id
        domains, volumes = qemu_host.ours(f"cs-{SITE}-{cloud}-")
        assert domains == [vm.vm_id]
        assert sorted(volumes) == sorted([vm.vm_id + OVERLAY_SUFFIX, vm.vm_id + SEED_SUFFIX])
        await bus.js_publish(subjects.intent(cloud), Intent(
            intent_id=vm.intent_id, action="kill", cloud=cloud, vm_id=vm.vm_id,
            created_at=time.time()))
        deadline = time.monotonic() + 60
        while qemu_host.ours(f"cs-{SITE}-{cloud}-") != ([], []):
            assert time.monotonic() < deadline, second_log.read_text()
            await asyncio.sleep(0.5)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(15)
        leftover_driver = LibvirtDriver(qemu_host.record(cloud, built, USER_DATA),
                                        DriverContext.of(SITE, WORKER))
        await leftover_driver.delete(vm.vm_id)
        await leftover_driver.close()


async def test_two_provisioner_replicas_share_a_clouds_intents_and_make_each_vm_once(
    bus: Bus, nats_server: NatsServer, built: guest.Guest, tmp_path: Path,
) -> None:
    cloud = f"pair{uuid.uuid4().hex[:6]}"
    vms = await _book_cloud(bus, built, cloud, 6,
                            VmSpec(vm_type="worker", cores=1, memory_mb=128))
    config = tmp_path / "cs.toml"
    # One intent at a time per replica, so both take some of the six.
    config.write_text(PROVISIONER_CONFIG.format(site=SITE, url=nats_server.url)
                      + "parallel_intents = 1\n")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    replicas = [_start_provisioner(config, log, nats_server.url) for log in logs]
    try:
        await eventually_async("both replicas pulling intents",  # before the intents come
                               lambda: _waiting(bus, cloud, 2), timeout=120, interval=0.2)
        for vm in vms:
            await bus.js_publish(subjects.intent(cloud), Intent(
                intent_id=vm.intent_id, action="boot", cloud=cloud, vm_id=vm.vm_id,
                spec=vm.spec, created_at=time.time()))
        for vm in vms:
            await _registry_state(bus, vm, "running", timeout=120)
        domains, volumes = qemu_host.ours(f"cs-{SITE}-{cloud}-")
        assert sorted(domains) == sorted(vm.vm_id for vm in vms)  # each VM once
        assert len(volumes) == 2 * len(vms)
        deadline = time.monotonic() + 30
        while True:  # a VM is running before its intent's outcome is logged
            applied = [log.read_text().count(f"cloud={cloud} vm=") for log in logs]
            if sum(applied) >= len(vms) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert sum(applied) == len(vms) and all(applied), applied  # shared, none twice
    finally:
        for proc in replicas:
            proc.terminate()
            proc.wait(15)
        cleanup = LibvirtDriver(qemu_host.record(cloud, built, USER_DATA),
                                        DriverContext.of(SITE, WORKER))
        for vm in vms:
            await cleanup.delete(vm.vm_id)
        await cleanup.close()
    assert qemu_host.ours(f"cs-{SITE}-{cloud}-") == ([], [])
