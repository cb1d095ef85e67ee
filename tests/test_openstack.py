"""The OpenStack driver and provisioner against a real Nova (tests/openstack_bed.py): Keystone
auth (password and application credential), Glance images, Nova's fake virt driver with
injected faults, real quotas."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openstack
import pytest

import siteconfig
from bus import subjects
from bus.connection import Bus
from bus.errors import OutOfResources, PermanentError
from bus.schemas import CloudRecord, Instance, Intent, VmRecord, VmSpec
from cli.supervisor import COMMANDS
from providers.openstack.driver import OpenstackDriver
from providers.openstack.options import OpenstackOptions
from provisioning.contract import DriverContract, make_vm
from provisioning.driver import DriverContext
from provisioning.settings import ProvisionerSettings
from provisioning.userdata import WorkerSettings
from provisioning.worker import CloudWorker
from services.planner.core import plan
from services.planner.decisions import Policy
from services.planner.health import after_failure, blocked
from tests.applied import settle
from tests.faultproxy import Fault, FaultProxy
from tests.holdproxy import HoldProxy
from tests.natsserver import NatsServer
from tests.openstack_bed import APPCRED_CLOUD, DEMO_CLOUD, IMAGE, Testbed
from tests.waiting import eventually_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SITE = "os-test"
WORKER = WorkerSettings(central_manager="cm.os.test", token_file=None)
USER_DATA = "#cloud-config\n# CS_VM_ID = ${CS_VM_ID}\n"


def cloud_record(name: str, os_cloud: str = APPCRED_CLOUD, network: str = "none"
                 ) -> CloudRecord:
    return siteconfig.cloud_record(
        name, OpenstackOptions(os_cloud=os_cloud, network=network), enabled=True, max_vms=5,
        user_data=USER_DATA)


def os_vm(cloud: str, site: str = SITE) -> VmRecord:
    vm = make_vm(cloud, site)
    now = time.time()
    return vm.model_copy(update={"spec": VmSpec(vm_type="worker", image=IMAGE, cores=1,
                                                memory_mb=512),
                                 "created_at": now, "updated_at": now})


def new_driver(bed: Testbed, cloud: str, site: str = SITE, os_cloud: str = APPCRED_CLOUD
               ) -> OpenstackDriver:
    return OpenstackDriver(cloud_record(cloud, os_cloud), DriverContext.of(site, WORKER),
                           bed.clouds_yaml)


@pytest.fixture
async def driver(bed: Testbed) -> AsyncIterator[OpenstackDriver]:
    d = new_driver(bed, "os1", "site-a")
    yield d
    await d.close()


@pytest.fixture
async def other_site_driver(bed: Testbed) -> AsyncIterator[OpenstackDriver]:
    d = new_driver(bed, "os1", "site-b", os_cloud=DEMO_CLOUD)  # password auth
    yield d
    await d.close()


class TestOpenstackContract(DriverContract):
    """The shared driver contract, on a real Nova (application credential and password)."""

    cloud = "os1"
    image = IMAGE


def servers_named(admin: Any, name: str) -> list[Any]:
    return list(admin.compute.servers(all_projects=True, name=f"^{name}$"))


@pytest.fixture
async def worker(bus: Bus, bed: Testbed) -> AsyncIterator[CloudWorker]:
    cloud = f"os{uuid.uuid4().hex[:6]}"
    driver = new_driver(bed, cloud)
    yield CloudWorker(bus, "openstack", cloud, driver,
                      ProvisionerSettings(orphan_grace_s=0.0, vanished_grace_s=0.0))
    await driver.close()


async def _apply(bus: Bus, worker: CloudWorker, vm: VmRecord, action: str = "boot",
                 times: int = 1) -> None:
    """Publish the intent `times` times and let the worker take each of them, to its ack
    (the stream keeps all of them: they carry no message id to deduplicate)."""
    for _ in range(times):
        await bus.js_publish(subjects.intent(worker.cloud), Intent(
            intent_id=vm.intent_id, action=action,  # type: ignore[arg-type]
            cloud=worker.cloud, vm_id=vm.vm_id, spec=vm.spec, created_at=time.time()))
    settled = await settle(worker, times, timeout=120)
    assert [(d.value.intent_id, d.outcome) for d in settled] == [(vm.intent_id, "ack")] * times


async def _registry(worker: CloudWorker, vm: VmRecord) -> VmRecord | None:
    entry = await worker.vms.get(subjects.vm_key(worker.cloud, vm.vm_id))
    return None if entry is None else entry.value


async def _reconcile_until(worker: CloudWorker, vm: VmRecord, state: str,
                           timeout: float = 60) -> VmRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await worker.reconcile()
        current = await _registry(worker, vm)
        if current is not None and current.state == state:
            return current
        await asyncio.sleep(1.0)
    raise AssertionError(f"{vm.vm_id} not {state}: {await _registry(worker, vm)}")


async def _book(worker: CloudWorker, vm: VmRecord) -> None:
    assert await worker.vms.create(subjects.vm_key(worker.cloud, vm.vm_id), vm) is not None


async def test_boot_carries_user_data_and_metadata_then_runs_is_listed_and_deleted(
    bus: Bus, worker: CloudWorker, admin: Any,
) -> None:
    vm = os_vm(worker.cloud)
    await _book(worker, vm)
    await _apply(bus, worker, vm, times=2)  # a redelivered intent
    assert len(servers_named(admin, vm.vm_id)) == 1
    assert (await _reconcile_until(worker, vm, "running")).running_at > 0
    [server] = servers_named(admin, vm.vm_id)
    full = admin.compute.get_server(server.id)
    assert full.metadata["cs_site"] == SITE and full.metadata["cs_intent"] == vm.intent_id
    assert full.metadata["cs_cloud"] == worker.cloud
    assert base64.b64decode(full.user_data).decode() == f"#cloud-config\n# CS_VM_ID = {vm.vm_id}\n"
    assert vm.vm_id in {i.vm_id for i in await worker.driver.list()}
    cap = await worker.driver.capacity()
    assert cap is not None and cap.max_instances > 0
    assert cap.source.startswith("nova absolute limits")

    await _apply(bus, worker, vm.model_copy(update={"intent_id": vm.intent_id}), "kill")
    assert servers_named(admin, vm.vm_id) == []
    assert await _registry(worker, vm) is None


async def test_a_named_network_is_looked_up_and_the_server_gets_a_port_on_it(
    bed: Testbed, admin: Any,
) -> None:
    """`network = "NAME"`: the driver finds the network by name in Neutron (the testbed's
    stand-in holds one, cs-test-net) and boots the server on it; Nova makes its port there,
    and deletes it with the server. A name Neutron does not know is a permanent error."""
    cloud = f"net{uuid.uuid4().hex[:6]}"
    driver = OpenstackDriver(cloud_record(cloud, network="cs-test-net"),
                             DriverContext.of(SITE, WORKER), bed.clouds_yaml)
    vm = os_vm(cloud)
    try:
        await driver.create(vm)
        state = await eventually_async("the server on cs-test-net running", lambda: _running(
            driver, vm.vm_id), timeout=120, interval=0.5)
        [server] = servers_named(admin, vm.vm_id)
        assert state is not None and state.instance_id == server.id
        network = admin.network.find_network("cs-test-net", ignore_missing=False)
        [port] = list(admin.network.ports(device_id=server.id))
        assert port.network_id == network.id
        addresses = admin.compute.get_server(server.id).addresses
        assert [a["addr"] for a in addresses["cs-test-net"]] == [
            ip["ip_address"] for ip in port.fixed_ips]
        await driver.delete(vm.vm_id)
        assert servers_named(admin, vm.vm_id) == []
        assert list(admin.network.ports(device_id=server.id)) == []
    finally:
        await driver.close()
    missing = OpenstackDriver(cloud_record(cloud, network="no-such-net"),
                              DriverContext.of(SITE, WORKER), bed.clouds_yaml)
    try:
        with pytest.raises(PermanentError,
                           match=f"network 'no-such-net' not found on cloud {cloud}"):
            await missing.create(os_vm(cloud))
    finally:
        await missing.close()
    assert servers_named(admin, f"cs-{SITE}-{cloud}-.*") == []


async def test_the_jobs_network_and_keypair_win_over_the_clouds(
    bed: Testbed, admin: Any,
) -> None:
    """A job's VMNetwork and VMKeyName (in the VM's spec) are used on a cloud configured
    with neither (network = "none", no key_name): the server is on the job's network with
    the job's keypair; a keypair the project lacks boots it with the cloud's (none here)."""
    import openstack
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    # The keypair is the project user's own: made through the driver's own credentials
    # (the `admin` fixture points OS_CLIENT_CONFIG_FILE at the testbed's clouds.yaml).
    owner = openstack.connect(cloud=APPCRED_CLOUD)
    key = f"cs-test-{uuid.uuid4().hex[:6]}"
    owner.compute.create_keypair(name=key, public_key=public)
    cloud = f"job{uuid.uuid4().hex[:6]}"
    driver = OpenstackDriver(cloud_record(cloud), DriverContext.of(SITE, WORKER),
                             bed.clouds_yaml)
    keyed, unknown = os_vm(cloud), os_vm(cloud)
    keyed = keyed.model_copy(update={"spec": keyed.spec.model_copy(
        update={"network": "cs-test-net", "key_name": key})})
    unknown = unknown.model_copy(update={"spec": unknown.spec.model_copy(
        update={"key_name": "no-such-key"})})
    try:
        await driver.create(keyed)
        await driver.create(unknown)
        server = await eventually_async("the job's server listed", lambda: _one_named(
            admin, keyed.vm_id), timeout=60, interval=0.5)
        assert server.key_name == key
        network = admin.network.find_network("cs-test-net", ignore_missing=False)
        await eventually_async("the job's server has a port", lambda: _ports(admin, server.id),
                               timeout=120, interval=0.5)
        assert [p.network_id for p in admin.network.ports(device_id=server.id)] == [
            network.id]
        other = await eventually_async("the other server listed", lambda: _one_named(
            admin, unknown.vm_id), timeout=60, interval=0.5)
        assert other.key_name is None
    finally:
        await driver.delete(keyed.vm_id)
        await driver.delete(unknown.vm_id)
        await driver.close()
        owner.compute.delete_keypair(key, ignore_missing=True)
        owner.close()
    assert servers_named(admin, f"cs-{SITE}-{cloud}-.*") == []


async def _one_named(admin: Any, name: str) -> Any:
    found = servers_named(admin, name)
    return found[0] if len(found) == 1 else None


async def _ports(admin: Any, server_id: str) -> list[Any] | None:
    return list(admin.network.ports(device_id=server_id)) or None


async def _running(driver: OpenstackDriver, vm_id: str) -> Instance | None:
    state = await driver.state(vm_id)
    return state if state is not None and state.state == "running" else None


async def test_over_quota_is_out_of_resources_and_the_planner_backs_off(
    bus: Bus, worker: CloudWorker, admin: Any,
) -> None:
    demo = admin.identity.find_project("demo", ignore_missing=False)
    used = admin.compute.get_quota_set(demo, usage=True).usage["instances"]
    admin.compute.update_quota_set(demo, instances=used)
    try:
        vm = os_vm(worker.cloud)
        with pytest.raises(OutOfResources, match=r"(?i)quota exceeded"):
            await worker.driver.create(vm)
        await _book(worker, vm)
        await _apply(bus, worker, vm)
        failed = await _registry(worker, vm)
        assert failed is not None and failed.state == "error"
        assert failed.reason.startswith("out_of_resources:") and "uota" in failed.reason
    finally:
        admin.compute.revert_quota_set(demo)
    later = failed.updated_at + 3600
    result = plan(SITE, None, [cloud_record(worker.cloud)], [failed], later)
    [kill] = result.kills
    assert kill.failure == "boot"
    health = after_failure(None, kill, "worker", later, Policy())
    why = blocked(health, "worker", later + 1)
    assert why is not None and "backing off" in why and "uota" in why
    assert servers_named(admin, vm.vm_id) == []


async def test_spawn_failure_is_error_with_the_fault_then_deleted(
    bus: Bus, worker: CloudWorker, admin: Any, bed: Testbed,
) -> None:
    vm = os_vm(worker.cloud)
    bed.set_faults({"fake:spawn": "fail", "name_regex": vm.vm_id})
    try:
        await _book(worker, vm)
        await _apply(bus, worker, vm)
        failed = await _reconcile_until(worker, vm, "error")
    finally:
        bed.set_faults(None)
    assert "in error" in failed.reason and "injected spawn failure" in failed.reason
    [server] = servers_named(admin, vm.vm_id)
    assert server.status == "ERROR"
    await _apply(bus, worker, vm, "kill")
    assert servers_named(admin, vm.vm_id) == []


async def test_orphans_with_our_tag_are_deleted_after_the_grace(
    worker: CloudWorker, admin: Any,
) -> None:
    orphan = os_vm(worker.cloud)
    await worker.driver.create(orphan)  # on the cloud, not in the registry
    worker.settings = ProvisionerSettings(orphan_grace_s=3600.0)
    await worker.reconcile()
    assert len(servers_named(admin, orphan.vm_id)) == 1  # within the grace: kept
    worker.settings = ProvisionerSettings(orphan_grace_s=0.0)
    await worker.reconcile()
    assert servers_named(admin, orphan.vm_id) == []


PROVISIONER_CONFIG = """
site = "{site}"
[nats]
url = "{url}"
[worker]
central_manager = "cm.os.test"
[provisioner]
clouds_yaml = "{clouds_yaml}"
reconcile_interval_s = 1
orphan_grace_s = 5
vanished_grace_s = 600
"""


def proxied_clouds_yaml(bed: Testbed, port: int, tmp_path: Path) -> Path:
    """The testbed's clouds.yaml with Nova reached through a proxy on `port`."""
    clouds = json.loads(bed.clouds_yaml.read_text())
    clouds["clouds"][APPCRED_CLOUD]["compute_endpoint_override"] = \
        f"http://127.0.0.1:{port}/v2.1"
    proxied = tmp_path / "clouds.yaml"
    proxied.write_text(json.dumps(clouds))
    return proxied


def start_provisioner(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """cs-provisioner-openstack on `config`, its output appended to `log`."""
    return subprocess.Popen(
        [sys.executable, *COMMANDS["cs-provisioner-openstack"]], stdout=log.open("ab"),
        stderr=subprocess.STDOUT, env=dict(os.environ, CS_CONFIG=str(config),
                                           PYTHONUNBUFFERED="1"))


async def _reasons_until(worker: CloudWorker, vm: VmRecord, done: Callable[
        [VmRecord | None], bool], timeout: float = 120) -> list[str]:
    """Every distinct reason the VM's record showed (as `cs status` would) until `done`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        current = await _registry(worker, vm)
        if current is not None and current.reason and current.reason not in seen:
            seen.append(current.reason)
        if done(current):
            return seen
        assert time.monotonic() < deadline, f"{vm.vm_id}: {current}; reasons {seen}"
        await asyncio.sleep(0.2)


async def test_cloud_faults_are_retried_with_the_reason_shown_and_nothing_leaks(
    bus: Bus, bed: Testbed, admin: Any, tmp_path: Path,
) -> None:
    # Nova behind a fault injector: the first create gets a 503, the second is never
    # answered (nova-api hung), the third goes through; the first delete gets a 500.
    faults = [Fault("POST", "/servers", times=1, status=503),
              Fault("POST", "/servers", times=1, hang=True),
              Fault("DELETE", "/servers/", times=1, status=500)]
    proxy = FaultProxy(bed.ports["nova-api"], faults)
    await proxy.start()
    cloud = f"fault{uuid.uuid4().hex[:6]}"
    driver = OpenstackDriver(cloud_record(cloud), DriverContext.of(SITE, WORKER, 3.0),
                             proxied_clouds_yaml(bed, proxy.port, tmp_path))
    worker = CloudWorker(bus, "openstack", cloud, driver,
                         ProvisionerSettings(orphan_grace_s=0.0, vanished_grace_s=0.0))
    vm = os_vm(cloud)
    await _book(worker, vm)
    stop = asyncio.Event()
    consumer = asyncio.create_task(worker.consume(stop))
    try:
        for action in ("boot", "kill"):
            await bus.js_publish(subjects.intent(cloud), Intent(
                intent_id=vm.intent_id, action=action,
                cloud=cloud, vm_id=vm.vm_id, spec=vm.spec, created_at=time.time(),
                reason="test"))
            if action == "boot":
                reasons = await _reasons_until(worker, vm, lambda r: r is not None and r.state
                                               in ("booting", "running") and not r.reason
                                               and bool(servers_named(admin, vm.vm_id)))
                assert [f.hits for f in faults] == [1, 1, 0]
                # The 503, then the hung call's timeout; a real Nova slower than the
                # timeout on a busy machine can add a retry, never a second server.
                assert len(reasons) >= 2, reasons
                assert reasons[0].startswith("retrying in 15s: ") and "injected" in reasons[0]
                assert all(r.startswith("retrying in ") for r in reasons[1:]), reasons
                assert "injected" not in reasons[1], reasons
                assert len(servers_named(admin, vm.vm_id)) == 1
            else:
                reasons = await _reasons_until(worker, vm, lambda r: r is None)
                assert faults[2].hits == 1
                assert [r for r in reasons if "delete" in r and "injected" in r], reasons
                assert servers_named(admin, vm.vm_id) == []
    finally:
        stop.set()
        await asyncio.wait_for(consumer, 60)
        await driver.close()
        await proxy.close()
        for server in servers_named(admin, vm.vm_id):
            admin.compute.delete_server(server)


async def test_provisioner_killed_between_create_and_ack_makes_exactly_one_server(
    bus: Bus, nats_server: NatsServer, bed: Testbed, admin: Any, tmp_path: Path,
) -> None:
    cloud = f"crash{uuid.uuid4().hex[:6]}"
    await bus.kv(subjects.CLOUDS_BUCKET, CloudRecord).put(cloud, cloud_record(cloud))
    vm = os_vm(cloud)
    assert await bus.kv(subjects.VMS_BUCKET, VmRecord).create(
        subjects.vm_key(cloud, vm.vm_id), vm) is not None
    # Nova is reached through a proxy that swallows the answer to the create: the server
    # exists, the provisioner never hears of it and is killed right then.
    proxy = HoldProxy(bed.ports["nova-api"], (b"POST ", b"/servers"))
    await proxy.start()
    proxied = proxied_clouds_yaml(bed, proxy.port, tmp_path)
    config = tmp_path / "cs.toml"
    config.write_text(PROVISIONER_CONFIG.format(site=SITE, url=nats_server.url,
                                                clouds_yaml=proxied))
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    first = start_provisioner(config, logs[0])
    second = None
    try:
        await bus.js_publish(subjects.intent(cloud), Intent(
            intent_id=vm.intent_id, action="boot", cloud=cloud, vm_id=vm.vm_id, spec=vm.spec,
            created_at=time.time()))
        await asyncio.wait_for(proxy.held.wait(), 120)
        first.kill()
        first.wait()
        assert len(servers_named(admin, vm.vm_id)) == 1  # Nova made it
        assert "outcome=" not in logs[0].read_text(), "killed too late: the intent was acked"
        second = start_provisioner(config, logs[1])
        kv = bus.kv(subjects.VMS_BUCKET, VmRecord)
        deadline = time.monotonic() + 150  # the unacked intent returns after the ack wait
        while f"intent={vm.intent_id}" not in logs[1].read_text():
            assert time.monotonic() < deadline, logs[1].read_text()
            await asyncio.sleep(1.0)
        while True:
            entry = await kv.get(subjects.vm_key(cloud, vm.vm_id))
            if entry is not None and entry.value.state == "running":
                break
            assert time.monotonic() < deadline, logs[1].read_text()
            await asyncio.sleep(1.0)
        assert len(servers_named(admin, vm.vm_id)) == 1
        clouds = json.loads(bed.clouds_yaml.read_text())["clouds"]
        secrets = [clouds[APPCRED_CLOUD]["auth"]["application_credential_secret"],
                   clouds[APPCRED_CLOUD]["auth"]["application_credential_id"]]
        for log in logs:
            text = log.read_text()
            assert not [s for s in secrets if s in text], "a credential reached the log"
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(15)
        await proxy.close()
        for server in servers_named(admin, vm.vm_id):
            admin.compute.delete_server(server)


async def test_a_provisioner_stuck_in_a_call_nova_never_answers_still_stops_promptly(
    bus: Bus, nats_server: NatsServer, bed: Testbed, admin: Any, tmp_path: Path,
) -> None:
    # Nova takes the create and never answers: the boot hangs in a worker thread (for the
    # 30 s HTTP timeout, then the intent is retried). A SIGTERM (supervisord stopping it,
    # `cs up` on Ctrl-C) must still end the provisioner within seconds, and the boot must
    # not be lost: its intent, unacked, waits for the next provisioner.
    hang = Fault("POST", "/servers", times=1_000_000, hang=True)
    proxy = FaultProxy(bed.ports["nova-api"], [hang])
    await proxy.start()
    cloud = f"hung{uuid.uuid4().hex[:6]}"
    clouds = bus.kv(subjects.CLOUDS_BUCKET, CloudRecord)
    await clouds.put(cloud, cloud_record(cloud))
    vm = os_vm(cloud)
    assert await bus.kv(subjects.VMS_BUCKET, VmRecord).create(
        subjects.vm_key(cloud, vm.vm_id), vm) is not None
    config = tmp_path / "cs.toml"
    config.write_text(PROVISIONER_CONFIG.format(
        site=SITE, url=nats_server.url,
        clouds_yaml=proxied_clouds_yaml(bed, proxy.port, tmp_path)))
    log = tmp_path / "provisioner.log"
    proc = start_provisioner(config, log)
    queue = await bus.intent_queue("openstack", cloud)
    try:
        await bus.js_publish(subjects.intent(cloud), Intent(
            intent_id=vm.intent_id, action="boot", cloud=cloud, vm_id=vm.vm_id, spec=vm.spec,
            created_at=time.time()))
        deadline = time.monotonic() + 120
        while hang.hits < 1:  # the create is on its way to Nova, and stays there
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.2)
        asked = time.monotonic()
        proc.terminate()
        code = await asyncio.to_thread(proc.wait, 90)
        took = time.monotonic() - asked
        text = log.read_text()
        assert code == 0, text
        assert took < 15, f"stopped {took:.1f}s after SIGTERM\n{text}"
        assert "stopped" in text and "outcome=" not in text, text
        assert servers_named(admin, vm.vm_id) == []
        # The boot is handed back at once (not after the 60 s ack wait) for whoever serves
        # the cloud next.
        [again] = await queue.fetch(batch=1, timeout=20)
        assert again.value.intent_id == vm.intent_id
        await again.ack()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await queue.close()
        await clouds.delete(cloud)
        await proxy.close()


async def test_a_second_server_under_a_registered_name_is_deleted_by_its_id(
    bus: Bus, worker: CloudWorker, admin: Any, bed: Testbed,
) -> None:
    # Nova allows two servers with one name; reconcile keys instances by name, so an extra
    # one would hide behind the registered VM and leak.
    vm = os_vm(worker.cloud)
    await _book(worker, vm)
    await _apply(bus, worker, vm)
    [kept] = servers_named(admin, vm.vm_id)
    demo: Any = openstack.connect(cloud=APPCRED_CLOUD)
    image = demo.image.find_image(IMAGE, ignore_missing=False)
    flavor = demo.compute.find_flavor("m1.tiny", ignore_missing=False)
    extra = demo.compute.create_server(
        name=vm.vm_id, image_id=image.id, flavor_id=flavor.id, networks="none",
        metadata={"cs_site": SITE, "cs_cloud": worker.cloud, "cs_intent": "an-older-boot"})
    demo.close()
    assert {s.id for s in servers_named(admin, vm.vm_id)} == {kept.id, extra.id}
    await worker.reconcile()
    assert [s.id for s in servers_named(admin, vm.vm_id)] == [kept.id]
    assert (await _registry(worker, vm)) is not None  # the registered VM is untouched
    await _apply(bus, worker, vm, "kill")


async def test_a_server_stuck_building_is_killed_at_the_boot_timeout_and_counted(
    bus: Bus, worker: CloudWorker, admin: Any, bed: Testbed,
) -> None:
    # Runs last in this module: it stops nova-compute (boots never finish) and restarts it.
    bed.stop_service("nova-compute", sig=9)
    try:
        vm = os_vm(worker.cloud)
        await _book(worker, vm)
        await _apply(bus, worker, vm)
        booting = await _registry(worker, vm)
        assert booting is not None and booting.state == "booting"
        await worker.reconcile()
        [server] = servers_named(admin, vm.vm_id)
        assert server.status == "BUILD"
        record_ = cloud_record(worker.cloud).model_copy(update={"boot_timeout_s": 1.0})
        later = booting.created_at + 5
        result = plan(SITE, None, [record_], [booting], later)
        [kill] = result.kills
        assert kill.failure == "boot" and "stuck booting" in kill.reason
        entry = await worker.vms.get(subjects.vm_key(worker.cloud, vm.vm_id))
        assert entry is not None
        await worker.vms.update(subjects.vm_key(worker.cloud, vm.vm_id), entry.value.model_copy(
            update={"state": "deleting", "intent_id": kill.intent_id}), entry.revision)
        await _apply(bus, worker, vm.model_copy(update={"intent_id": kill.intent_id}), "kill")
        assert servers_named(admin, vm.vm_id) == []
        assert await _registry(worker, vm) is None
    finally:
        bed.start_service("nova-compute")
