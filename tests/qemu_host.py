"""This machine as a real libvirt/QEMU host (qemu:///system, TCG) for the real-VM tests."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import libvirt

from bus.schemas import CloudRecord
from providers.libvirt.options import LibvirtOptions
from siteconfig import cloud_record
from tests import guest

ROOT = Path(__file__).resolve().parents[1]
URI = "qemu:///system"
POOL = "cs-test"
POOL_DIR = Path("/var/lib/cloudscheduler-test/pool")
BASE = "base.qcow2"
CONSOLE_DIR = "/var/log/libvirt/qemu"


def prepare() -> guest.Guest:
    """Install and start libvirt and QEMU if needed, build the guest, define the storage pool
    with a base image; returns the guest's kernel and initrd."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "qemu-host.sh")],
                            capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/qemu-host.sh failed: {result.stderr.strip()}")
    built = guest.build()
    conn = libvirt.open(URI)
    try:
        try:
            pool = conn.storagePoolLookupByName(POOL)
        except libvirt.libvirtError:
            POOL_DIR.mkdir(parents=True, exist_ok=True)
            pool = conn.storagePoolDefineXML(
                f"<pool type='dir'><name>{POOL}</name><target><path>{POOL_DIR}</path>"
                "</target></pool>", 0)
        if not pool.isActive():
            pool.create()
        pool.refresh()
        if BASE not in pool.listVolumes():
            # An empty disk: the tiny guest boots from kernel + initrd, the overlay on this
            # base is still what a real worker image would get.
            pool.createXML(f"<volume><name>{BASE}</name><capacity unit='MiB'>64</capacity>"
                           "<target><format type='qcow2'/></target></volume>", 0)
    finally:
        conn.close()
    return built


def add_base(disk: Path, volume: str) -> None:
    """`disk` as the volume `volume` of the test pool (a sparse copy, once)."""
    target = POOL_DIR / volume
    if not target.exists():
        copying = POOL_DIR / f".{volume}.copying"
        subprocess.run(["cp", "--sparse=always", str(disk), str(copying)], check=True,
                       timeout=600)
        copying.rename(target)
    conn = libvirt.open(URI)
    try:
        conn.storagePoolLookupByName(POOL).refresh()
    finally:
        conn.close()


def record(name: str, built: guest.Guest, user_data: str) -> CloudRecord:
    """A libvirt cloud on this host that boots the tiny guest under TCG."""
    return cloud_record(
        name, LibvirtOptions(uri=URI, storage_pool=POOL, base_image=BASE, domain_type="qemu",
                             kernel=str(built.kernel), initrd=str(built.initrd),
                             cmdline="console=ttyS0 panic=-1", console_log_dir=CONSOLE_DIR,
                             reserved_memory_mb=256),
        enabled=True, max_vms=2, user_data=user_data)


def console(vm_id: str) -> str:
    """What the VM has written to its serial console so far."""
    path = Path(CONSOLE_DIR) / f"{vm_id}-console.log"
    return path.read_text(errors="replace") if path.exists() else ""


def wait_console(vm_id: str, text: str, timeout: float = 240.0) -> str:
    """The console log once it contains `text`; AssertionError with its tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = console(vm_id)
        if text in log:
            return log
        time.sleep(1.0)
    raise AssertionError(f"{text!r} not on the console of {vm_id} within {timeout:.0f}s; "
                         f"console tail:\n{console(vm_id)[-3000:]}")


def ours(prefix: str) -> tuple[list[str], list[str]]:
    """Domains and pool volumes whose names start with `prefix`."""
    conn = libvirt.open(URI)
    try:
        domains = [d.name() for d in conn.listAllDomains() if d.name().startswith(prefix)]
        pool = conn.storagePoolLookupByName(POOL)  # no refresh: it fails during an upload
        volumes = [v for v in pool.listVolumes() if v.startswith(prefix)]
        return domains, volumes
    finally:
        conn.close()


def domain_defined(name: str) -> bool:
    """Whether a domain of that name exists on the host (defined, running or not)."""
    return bool(ours(name)[0])


def destroy(name: str) -> None:
    """Remove the domain `name` and its volumes (a test's clean-up after a failure)."""
    conn = libvirt.open(URI)
    try:
        for dom in conn.listAllDomains():
            if dom.name() == name:
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        pool = conn.storagePoolLookupByName(POOL)
        pool.refresh()
        for volume in pool.listVolumes():
            if volume.startswith(name):
                pool.storageVolLookupByName(volume).delete()
    finally:
        conn.close()
