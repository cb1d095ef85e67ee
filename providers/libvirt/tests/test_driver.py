"""The libvirt driver against libvirt's real test driver (`test:///default`)."""

from __future__ import annotations

import asyncio
import threading
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus.errors import PermanentError, TemporaryError
from providers.libvirt import seed
from providers.libvirt.driver import (
    NAMESPACE,
    OVERLAY_SUFFIX,
    SEED_SUFFIX,
    LibvirtDriver,
    domain_xml,
)
from providers.libvirt.options import LibvirtOptions
from provisioning.contract import DriverContract, make_vm
from provisioning.driver import DriverContext
from provisioning.userdata import WorkerSettings, render
from tests.libvirt_host import (
    BASE_IMAGE,
    WORKER,
    define_foreign,
    domain_exists,
    host_driver,
    host_figures,
    record,
    remove_domain,
    volume_desc,
    volumes,
)


@pytest.fixture
async def driver() -> AsyncIterator[LibvirtDriver]:
    d = host_driver("contract", "site-a")
    yield d
    await d.close()


@pytest.fixture
async def other_site_driver() -> AsyncIterator[LibvirtDriver]:
    d = host_driver("contract", "site-b")
    yield d
    await d.close()


class TestLibvirtContract(DriverContract):
    """The shared driver contract, on libvirt."""


def test_domain_xml_carries_capacity_disks_console_and_our_tag() -> None:
    vm = make_vm("c1")
    opts = LibvirtOptions(uri="test:///default", domain_type="qemu", storage_pool="p1",
                          network="net0", console_log_dir="/var/log/cs/")
    root = ET.fromstring(domain_xml(vm, "site-a", opts, "o.qcow2", "s.iso"))
    assert root.get("type") == "qemu"
    assert root.findtext("name") == vm.vm_id
    assert root.findtext("vcpu") == "2"
    memory = root.find("memory")
    assert memory is not None and (memory.text, memory.get("unit")) == ("1024", "MiB")
    assert root.find("features/acpi") is not None
    assert root.find("os/boot") is not None and root.find("os/kernel") is None
    disks = [(d.find("source").get("pool"), d.find("source").get("volume"),  # type: ignore[union-attr]
              d.find("driver").get("type"), d.find("readonly") is not None)  # type: ignore[union-attr]
             for d in root.findall("devices/disk")]
    assert disks == [("p1", "o.qcow2", "qcow2", False), ("p1", "s.iso", "raw", True)]
    nic = root.find("devices/interface/source")
    assert nic is not None and nic.get("network") == "net0"
    log = root.find("devices/serial/log")
    assert log is not None and log.get("file") == f"/var/log/cs/{vm.vm_id}-console.log"
    tag = root.find(f"metadata/{{{NAMESPACE}}}vm")
    assert tag is not None
    assert tag.findtext(f"{{{NAMESPACE}}}intent") == vm.intent_id
    assert tag.findtext(f"{{{NAMESPACE}}}site") == "site-a"
    assert tag.findtext(f"{{{NAMESPACE}}}cloud") == "c1"


def test_direct_kernel_boot_and_no_nic() -> None:
    opts = LibvirtOptions(uri="test:///default", kernel="/k/vmlinuz", initrd="/k/initrd",
                          cmdline="console=ttyS0")
    root = ET.fromstring(domain_xml(make_vm("c1"), "s", opts, "o", "s"))
    assert (root.findtext("os/kernel"), root.findtext("os/initrd"),
            root.findtext("os/cmdline")) == ("/k/vmlinuz", "/k/initrd", "console=ttyS0")
    assert root.find("os/boot") is None
    assert root.find("devices/interface") is None


def test_the_jobs_network_wins_over_the_clouds_nic() -> None:
    """VMNetwork names a libvirt network of the host: the VM's NIC is on it, whatever the
    cloud's network or user_network say."""
    vm = make_vm("c1")
    vm = vm.model_copy(update={"spec": vm.spec.model_copy(update={"network": "jobnet"})})
    for opts in (LibvirtOptions(uri="test:///default", network="cloudnet"),
                 LibvirtOptions(uri="test:///default", user_network=True),
                 LibvirtOptions(uri="test:///default")):
        nic = ET.fromstring(domain_xml(vm, "s", opts, "o", "s")).find("devices/interface")
        assert nic is not None and nic.get("type") == "network"
        source = nic.find("source")
        assert source is not None and source.get("network") == "jobnet"


def test_a_nic_on_qemus_user_network() -> None:
    opts = LibvirtOptions(uri="test:///default", user_network=True)
    nic = ET.fromstring(domain_xml(make_vm("c1"), "s", opts, "o", "s")).find("devices/interface")
    assert nic is not None and nic.get("type") == "user" and nic.find("source") is None
    model = nic.find("model")
    assert model is not None and model.get("type") == "virtio"


def test_names_are_escaped_in_xml() -> None:
    vm = make_vm("c1").model_copy(update={"intent_id": "a<b&c"})
    opts = LibvirtOptions(uri="test:///default", storage_pool="p'q", domain_type="test")
    root = ET.fromstring(domain_xml(vm, "s", opts, "o'", "s&"))
    assert root.findtext(f"metadata/{{{NAMESPACE}}}vm/{{{NAMESPACE}}}intent") == "a<b&c"
    source = root.find("devices/disk/source")
    assert source is not None and (source.get("pool"), source.get("volume")) == ("p'q", "o'")


def test_seed_iso_is_labelled_cidata_and_carries_the_rendered_user_data() -> None:
    vm = make_vm("c1")
    user_data = render("CS_VM_ID = ${CS_VM_ID}\nCONDOR_HOST = ${CENTRAL_MANAGER}\n", vm, "s",
                       WORKER)
    image = seed.build(vm.vm_id, user_data)
    assert seed.volume_label(image) == "cidata"
    files = seed.read(image)
    assert files["user-data"] == f"CS_VM_ID = {vm.vm_id}\nCONDOR_HOST = cm.test\n".encode()
    assert f"instance-id: {vm.vm_id}".encode() in files["meta-data"]


async def test_create_lays_an_overlay_and_a_seed_and_delete_removes_them(
    driver: LibvirtDriver,
) -> None:
    vm = make_vm("contract", "site-a")
    await driver.create(vm)
    overlay = ET.fromstring(volume_desc(vm.vm_id + OVERLAY_SUFFIX))
    assert overlay.findtext("backingStore/path", "").endswith(BASE_IMAGE)
    assert overlay.find("backingStore/format").get("type") == "qcow2"  # type: ignore[union-attr]
    assert overlay.find("target/format").get("type") == "qcow2"  # type: ignore[union-attr]
    assert vm.vm_id + SEED_SUFFIX in volumes()
    await driver.delete(vm.vm_id)
    assert not [v for v in volumes() if v.startswith(vm.vm_id)]


async def test_leftover_volumes_are_listed_and_deleted(driver: LibvirtDriver) -> None:
    vm = make_vm("contract", "site-a")
    await driver.create(vm)
    remove_domain(vm.vm_id)  # as if the provisioner died between the volumes and the domain
    listed = {i.vm_id: i for i in await driver.list()}
    assert listed[vm.vm_id].state == "unknown"
    await driver.delete(vm.vm_id)
    assert vm.vm_id not in {i.vm_id for i in await driver.list()}
    assert not [v for v in volumes() if v.startswith(vm.vm_id)]


async def test_missing_base_image_is_a_permanent_error_naming_the_pool() -> None:
    d = LibvirtDriver(record("contract"), DriverContext.of("site-a", WORKER))
    try:
        with pytest.raises(PermanentError, match=r"'nope\.qcow2'.*default-pool"):
            await d.create(make_vm("contract", "site-a", image="nope.qcow2"))
    finally:
        await d.close()


async def test_the_jobs_image_wins_over_the_clouds_base_image() -> None:
    """base_image is the image for jobs that name none: a job's VMAMI names another volume,
    as v1's default_VMAMI was only a default."""
    d = LibvirtDriver(record("contract", base_image="nope.qcow2"),
                      DriverContext.of("site-a", WORKER))
    vm = make_vm("contract", "site-a")  # asks for img.qcow2, which the pool has
    try:
        await d.create(vm)
        with pytest.raises(PermanentError, match=r"'nope\.qcow2'.*default-pool"):
            await d.create(make_vm("contract", "site-a", image=""))
    finally:
        await d.delete(vm.vm_id)
        await d.close()


async def test_missing_storage_pool_is_a_permanent_error_that_says_the_fix() -> None:
    d = LibvirtDriver(record("contract", storage_pool="nopool"), DriverContext.of("site-a", WORKER))
    try:
        with pytest.raises(PermanentError, match="pool-define-as"):
            await d.create(make_vm("contract", "site-a"))
    finally:
        await d.close()


@pytest.mark.parametrize(("content", "message"), [
    (None, r"/token: cannot read the pool token \(\[worker\] token_file\): no such file"),
    (b"eyJ\xe9", r"/token: line 1, column 4 \(byte 3\): 0xe9 is not UTF-8; the pool token"),
])
async def test_unreadable_pool_token_fails_the_boot_and_leaves_nothing(
    tmp_path: Path, content: bytes | None, message: str,
) -> None:
    token = tmp_path / "token"
    if content is not None:
        token.write_bytes(content)
    worker = WorkerSettings(central_manager="cm", token_file=token)
    d = LibvirtDriver(record("contract"), DriverContext.of("site-a", worker))
    vm = make_vm("contract", "site-a")
    try:
        with pytest.raises(PermanentError, match=message):
            await d.create(vm)
        assert await d.state(vm.vm_id) is None
    finally:
        await d.close()


async def test_pool_token_from_a_command_reaches_the_seed_and_a_failing_one_boots_nothing(
) -> None:
    minted = WorkerSettings("cm", None, ("echo", "tok-for-the-vm"))
    vm = make_vm("contract", "site-a")
    files = seed.read(seed.build(vm.vm_id, render("", vm, "site-a", minted)))
    assert "tok-for-the-vm" in files["user-data"].decode()
    failing = WorkerSettings("cm", None, ("sh", "-c", "echo no key >&2; exit 1"))
    d = LibvirtDriver(record("contract"), DriverContext.of("site-a", failing))
    try:
        with pytest.raises(TemporaryError, match="exited with 1: no key"):
            await d.create(vm)
        assert await d.state(vm.vm_id) is None
    finally:
        await d.close()


async def test_a_foreign_domain_with_our_name_is_not_touched(driver: LibvirtDriver) -> None:
    vm = make_vm("contract", "site-a")
    define_foreign(vm.vm_id)
    with pytest.raises(PermanentError, match="not ours"):
        await driver.create(vm)
    assert domain_exists(vm.vm_id)
    remove_domain(vm.vm_id)


async def test_capacity_is_the_host_less_the_reserve_and_others_use(
    driver: LibvirtDriver,
) -> None:
    # Counted apart from the driver (a VM of ours another test left running is ours, not
    # another's: the count once took it for a foreign domain and failed).
    cpus, memory_mb, foreign, foreign_cores = host_figures("site-a", "contract")
    vm = make_vm("contract", "site-a")
    await driver.create(vm)  # ours: not counted as others
    cap = await driver.capacity()
    assert cap.max_cores == cpus
    assert cap.max_memory_mb == max(0, memory_mb - 1024)
    assert cap.others_instances == foreign >= 1  # the test host's own domain "test"
    assert cap.others_cores == foreign_cores
    await driver.delete(vm.vm_id)


async def test_lifecycle_events_reach_the_watcher(driver: LibvirtDriver) -> None:
    seen: list[str] = []
    got = threading.Event()

    def changed(vm_id: str) -> None:
        seen.append(vm_id)
        got.set()

    driver.watch(changed)
    vm = make_vm("contract", "site-a")
    await driver.create(vm)
    await asyncio.get_running_loop().run_in_executor(None, got.wait, 5.0)
    assert vm.vm_id in seen
    await driver.delete(vm.vm_id)


async def test_unreachable_hypervisor_is_a_temporary_error() -> None:
    d = LibvirtDriver(record("c1", uri="qemu+tcp://127.0.0.1:1/system"),
                      DriverContext.of("s", WORKER, 10))
    with pytest.raises(TemporaryError, match="cannot connect"):
        await d.list()
    await d.close()


async def test_invalid_definition_is_a_permanent_error(driver: LibvirtDriver) -> None:
    vm = make_vm("c1").model_copy(update={"vm_id": "bad name with spaces/" * 20})
    with pytest.raises(PermanentError):
        await driver.create(vm)
