"""cs-provisioner-openstack: boot and delete worker VMs on OpenStack clouds."""

from __future__ import annotations

import asyncio
import logging

import siteconfig
from bus.connection import Bus
from bus.schemas import CloudRecord
from provisioning.driver import CloudDriver
from provisioning.service import run_provisioner
from provisioning.settings import ProvisionerServiceSettings
from provisioning.userdata import WorkerSettings
from runtime.runloop import ServiceBody, service_main
from services.provisioner_openstack.driver import OpenstackDriver

SERVICE = "cs-provisioner-openstack"


def build(site: siteconfig.SiteConfig, log: logging.Logger) -> ServiceBody:
    """The OpenStack provisioner's body: serve every OpenStack cloud of the site."""
    settings = ProvisionerServiceSettings.from_site(site)
    worker = WorkerSettings.from_site(site)

    async def make_driver(cloud: CloudRecord) -> CloudDriver:
        return OpenstackDriver(cloud, settings.site, worker, settings.clouds_yaml,
                               settings.call_timeout_s)

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        await run_provisioner(bus, "openstack", make_driver, settings.loops, stop)

    return body


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cs-provisioner-openstack`."""
    return service_main(SERVICE, __doc__ or SERVICE, argv, build)


if __name__ == "__main__":
    raise SystemExit(main())
