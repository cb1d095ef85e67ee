"""cs-provisioner-libvirt: boot and delete worker VMs as libvirt domains."""

from __future__ import annotations

import asyncio
import logging

from bus.connection import Bus
from bus.contextualize import WorkerSettings
from bus.provisioning import CloudDriver, ProvisionerServiceSettings, run_provisioner
from bus.runloop import ServiceBody, service_main
from bus.schemas import CloudRecord
from bus.siteconfig import SiteConfig
from services.provisioner_libvirt.driver import LibvirtDriver

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
