"""The libvirt driver against libvirt's real test driver (`test:///default`)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import pytest

from bus.errors import PermanentError, TemporaryError
from services.provisioner_libvirt.driver import NAMESPACE, LibvirtDriver, domain_xml
from tests.driver_contract import DriverContract, make_vm

URI = "test:///default"


@pytest.fixture
async def driver() -> AsyncIterator[LibvirtDriver]:
    d = LibvirtDriver("contract", URI, site="site-a")
    yield d
    await d.close()


@pytest.fixture
async def other_site_driver() -> AsyncIterator[LibvirtDriver]:
    d = LibvirtDriver("contract", URI, site="site-b")
    yield d
    await d.close()


class TestLibvirtContract(DriverContract):
    """The shared driver contract, on libvirt."""


def test_domain_xml_carries_capacity_and_our_tag() -> None:
    vm = make_vm("c1")
    root = ET.fromstring(domain_xml(vm, "site-a", "qemu"))
    assert root.get("type") == "qemu"
    assert root.findtext("name") == vm.vm_id
    assert root.findtext("vcpu") == "2"
    memory = root.find("memory")
    assert memory is not None and (memory.text, memory.get("unit")) == ("1024", "MiB")
    assert root.find("features/acpi") is not None
    tag = root.find(f"metadata/{{{NAMESPACE}}}vm")
    assert tag is not None
    assert tag.findtext(f"{{{NAMESPACE}}}intent") == vm.intent_id
    assert tag.findtext(f"{{{NAMESPACE}}}site") == "site-a"


def test_names_are_escaped_in_xml() -> None:
    vm = make_vm("c1").model_copy(update={"intent_id": "a<b&c"})
    root = ET.fromstring(domain_xml(vm, "s", "test"))
    assert root.find(f"metadata/{{{NAMESPACE}}}vm/{{{NAMESPACE}}}intent") is not None


async def test_unreachable_hypervisor_is_a_temporary_error() -> None:
    d = LibvirtDriver("c1", "qemu+tcp://127.0.0.1:1/system", site="s", timeout_s=10)
    with pytest.raises(TemporaryError, match="cannot connect"):
        await d.list()
    await d.close()


async def test_invalid_definition_is_a_permanent_error(driver: LibvirtDriver) -> None:
    vm = make_vm("c1").model_copy(update={"vm_id": "bad name with spaces/" * 20})
    with pytest.raises(PermanentError):
        await driver.create(vm)
