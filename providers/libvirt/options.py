"""A libvirt cloud's own `[[cloud]]` keys, their defaults and checks, and its table entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationInfo, model_validator

from providers.spec import ConfigContext, Provider, ProviderOptions

TEST_HOST = "test:///default"
"""libvirt's built-in test host (its storage pool is called `default-pool`)."""


class LibvirtOptions(ProviderOptions):
    """How a libvirt cloud lays out its VMs on the host."""

    IMAGE_KEY = "base_image"

    uri: str
    """libvirt connection URI, e.g. qemu:///system, qemu+ssh://host/system, test:///default
    (a test:///FILE next to the config file is found there)."""
    storage_pool: str = "default"
    """libvirt storage pool that holds the base image and receives each VM's overlay and seed
    (default: `default`, `default-pool` on test:///default)."""
    base_image: str = ""
    """Base disk for jobs that name no image: a volume name in `storage_pool` or an absolute
    path on the host; each VM gets a copy-on-write qcow2 overlay on it. A job's VMAMI (for this
    cloud) names another volume instead, as v1's default_VMAMI was only a default."""
    base_format: Literal["qcow2", "raw"] = "qcow2"
    """Format of the base image, written into the overlay (never probed: probing is unsafe)."""
    domain_type: Literal["kvm", "qemu", "test"] = "kvm"
    """libvirt domain type: kvm (hardware virtualisation), qemu (TCG emulation), test
    (default: test on test:/// URIs, else kvm)."""
    network: str = ""
    """libvirt network for the VM's NIC (virtio); "" = no NIC (unless user_network)."""
    user_network: bool = False
    """The NIC on QEMU's user-mode network instead of a libvirt network: no bridge, the VM's
    connections leave through the QEMU process (the host itself is 10.0.2.2 to the VM)."""
    kernel: str = ""
    """Direct kernel boot: path of the kernel on the host ("" = boot from the disk)."""
    initrd: str = ""
    """Direct kernel boot: path of the initrd on the host."""
    cmdline: str = ""
    """Direct kernel boot: kernel command line."""
    console_log_dir: str = "/var/log/libvirt/qemu"
    """The serial console of VM `<name>` is logged (by virtlogd) to `<dir>/<name>-console.log`."""
    reserved_memory_mb: int = 1024
    """Host memory kept for the host itself: not offered to VMs."""
    cpu_overcommit: float = 1.0
    """VM cores per host core the planner may use (at least 0.1)."""

    @model_validator(mode="before")
    @classmethod
    def _by_uri(cls, data: Any, info: ValidationInfo) -> Any:
        """Defaults that follow from the URI, and a test host file found beside the config."""
        if not isinstance(data, dict):
            return data
        uri = data.get("uri")
        if not uri:
            raise ValueError('uri: a libvirt cloud needs a connection URI, e.g. uri = '
                             '"qemu:///system" or "test:///default"')
        if not isinstance(uri, str):
            return data
        if isinstance(info.context, ConfigContext):
            uri = _test_host(info.context.config_dir, uri)
        defaults = {"storage_pool": "default-pool" if uri == TEST_HOST else "default",
                    "domain_type": "test" if uri.startswith("test:") else "kvm"}
        return {**defaults, **data, "uri": uri}

    @model_validator(mode="after")
    def _checked(self) -> LibvirtOptions:
        if self.user_network and self.network:
            raise ValueError("user_network: network and user_network = true both name the "
                             "VM's NIC; set one of them")
        if self.cpu_overcommit < 0.1:
            raise ValueError(f"cpu_overcommit: must be at least 0.1, got {self.cpu_overcommit}")
        if self.reserved_memory_mb < 0:
            raise ValueError("reserved_memory_mb: must be at least 0, got "
                             f"{self.reserved_memory_mb}")
        return self

    def address(self, cloud: str) -> str:
        """The connection URI."""
        return self.uri


def _test_host(config_dir: Path, uri: str) -> str:
    """A `test:///FILE` URI naming a host description next to the config file, made absolute
    (libvirt needs an absolute path; the demo's config must work from any folder)."""
    if not uri.startswith("test:///") or uri == TEST_HOST:
        return uri
    named = Path(uri.removeprefix("test://"))
    beside = config_dir.resolve() / str(named).lstrip("/")
    return f"test://{beside}" if not named.exists() and beside.exists() else uri


PROVIDER = Provider(
    name="libvirt", options=LibvirtOptions, driver="providers.libvirt.driver",
    summary="VMs as libvirt domains on one host (KVM or QEMU, local or over SSH)",
    v1_type="localhost")
"""The libvirt line of the table of providers."""
