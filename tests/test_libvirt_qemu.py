"""Real VMs: the libvirt driver on qemu:///system under TCG, booting a tiny Debian-kernel guest
that reads its NoCloud seed and prints its own CS_VM_ID to the serial console."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from bus.contextualize import WorkerSettings
from services.provisioner_libvirt.driver import LibvirtDriver
from tests import guest, qemu_host
from tests.driver_contract import DriverContract, make_vm

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
    d = LibvirtDriver(qemu_host.record(CLOUD, built, USER_DATA), SITE, WORKER, timeout_s=120)
    yield d
    await d.close()


@pytest.fixture
async def other_site_driver(built: guest.Guest) -> AsyncIterator[LibvirtDriver]:
    d = LibvirtDriver(qemu_host.record(CLOUD, built, USER_DATA), "qemu-other", WORKER,
                      timeout_s=120)
    yield d
    await d.close()


class TestQemuContract(DriverContract):
    """The shared driver contract, on a real hypervisor."""

    cloud = CLOUD
    site = SITE
    other_site = "qemu-other"


async def test_a_real_vm_boots_reads_its_seed_and_is_removed_without_a_trace(
    driver: LibvirtDriver,
) -> None:
    vm = make_vm(CLOUD, SITE)
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
    assert 0 < cap.max_memory_mb
    assert cap.source.startswith("libvirt host ")
