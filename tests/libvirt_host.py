"""libvirt's test driver (`test:///default`) set up as a cloud host for the tests.

The test driver keeps one shared state per process: a storage pool `default-pool` and no
volumes. Our driver needs a base image volume to lay overlays on, so tests create it here.
"""

from __future__ import annotations

import libvirt

from bus.schemas import CloudRecord, VmRecord
from providers.libvirt.driver import (
    OVERLAY_SUFFIX,
    SEED_SUFFIX,
    LibvirtDriver,
    domain_xml,
    tag_of,
)
from providers.libvirt.options import LibvirtOptions
from provisioning.driver import DriverContext
from provisioning.userdata import WorkerSettings
from siteconfig import cloud_record

URI = "test:///default"
BASE_IMAGE = "img.qcow2"
WORKER = WorkerSettings(central_manager="cm.test", token_file=None)


_held: list[libvirt.virConnect] = []
"""The test driver frees its shared state when its last connection closes: one stays open
for the whole test session, so the base image outlives the drivers that come and go."""


def ensure_base_image(uri: str = URI, pool: str = "default-pool") -> None:
    """Create the base image volume in the test host's pool if it is not there yet."""
    if not _held:
        _held.append(libvirt.open(uri))
    storage = _held[0].storagePoolLookupByName(pool)
    if BASE_IMAGE not in storage.listVolumes():
        storage.createXML(
            f"<volume><name>{BASE_IMAGE}</name><capacity unit='GiB'>2</capacity>"
            "<target><format type='qcow2'/></target></volume>", 0)


def record(cloud: str, uri: str = URI, **options: str) -> CloudRecord:
    """A libvirt cloud record on the test host."""
    return cloud_record(cloud, LibvirtOptions.read({"uri": uri, **options}), enabled=True,
                        max_vms=10)


def host_driver(cloud: str, site: str, **options: str) -> LibvirtDriver:
    """Our driver on the test host, with its base image in place."""
    ensure_base_image()
    return LibvirtDriver(record(cloud, **options), DriverContext.of(site, WORKER))


def _conn() -> libvirt.virConnect:
    ensure_base_image()
    return _held[0]


def volumes(pool: str = "default-pool") -> list[str]:
    """Names of the volumes in the test host's pool."""
    return list(_conn().storagePoolLookupByName(pool).listVolumes())


def volume_desc(name: str, pool: str = "default-pool") -> str:
    """The XML description of one volume of the test host's pool."""
    return str(_conn().storagePoolLookupByName(pool).storageVolLookupByName(name).XMLDesc())


def remove_domain(name: str) -> None:
    """Stop and undefine a domain behind the driver's back (as a crash or an operator would)."""
    dom = _conn().lookupByName(name)
    if dom.isActive():
        dom.destroy()
    dom.undefine()


def define_foreign(name: str) -> None:
    """Define a domain without our tag (someone else's VM that happens to share a name)."""
    _conn().defineXML(f"<domain type='test'><name>{name}</name><memory>1024</memory>"
                      "<os><type>hvm</type></os></domain>")


def domain_exists(name: str) -> bool:
    """Whether the test host has a domain of that name."""
    return name in [d.name() for d in _conn().listAllDomains()]


def host_figures(site: str, cloud: str) -> tuple[int, int, int, int]:
    """The test host's (cpus, memory MB, active domains that are not the VMs of `site` on
    `cloud`, their vcpus): read here from libvirt, as an operator would count them."""
    conn = _conn()
    _model, memory_mb, cpus, *_ = conn.getInfo()
    others = []
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        tag = tag_of(dom) or {}
        if (tag.get("site"), tag.get("cloud")) != (site, cloud):
            others.append(dom)
    return cpus, memory_mb, len(others), sum(d.info()[3] for d in others)


def define_stopped(vm: VmRecord, site: str) -> None:
    """Define `vm` with our tag but never start it (a guest that shut itself down)."""
    opts = LibvirtOptions(uri=URI, domain_type="test", storage_pool="default-pool")
    xml = domain_xml(vm, site, opts,
                     vm.vm_id + OVERLAY_SUFFIX, vm.vm_id + SEED_SUFFIX)
    _conn().defineXML(xml)
