"""cs-provisioner-libvirt: boot and delete worker VMs as libvirt domains."""

from __future__ import annotations

import asyncio
import logging

from bus.connection import Bus
from bus.schemas import CloudRecord
from provisioning.driver import CloudDriver
from provisioning.service import run_provisioner
from provisioning.settings import ProvisionerServiceSettings
from provisioning.userdata import WorkerSettings
from runtime.runloop import ServiceBody, service_main
from services.provisioner_libvirt.driver import LibvirtDriver
from siteconfig import SiteConfig

SERVICE = "cs-provisioner-libvirt"


def build(site: SiteConfig, log: logging.Logger) -> ServiceBody:
    """The libvirt provisioner's body: serve every libvirt cloud of the site."""
    settings = ProvisionerServiceSettings.from_site(site)
    worker = WorkerSettings.from_site(site)

    async def make_driver(cloud: CloudRecord) -> CloudDriver:
        return LibvirtDriver(cloud, settings.site, worker, settings.call_timeout_s)

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        await run_provisioner(bus, "libvirt", make_driver, settings.loops, stop)

    return body


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cs-provisioner-libvirt`."""
    return service_main(SERVICE, __doc__ or SERVICE, argv, build)


if __name__ == "__main__":
    raise SystemExit(main())
