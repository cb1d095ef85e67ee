"""cs-provisioner-openstack: boot and delete worker VMs on OpenStack clouds."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bus import logs, siteconfig
from bus.connection import Bus
from bus.provisioning import CloudDriver, ProvisionerSettings, run_provisioner
from bus.runloop import ServiceBody, service_main
from bus.schemas import CloudRecord
from services.provisioner_openstack.driver import NotConfiguredDriver

SERVICE = "cs-provisioner-openstack"


@dataclass(frozen=True)
class OpenstackSettings:
    """What the OpenStack provisioner needs."""

    nats_url: str
    """NATS server URL (CS_NATS_URL overrides the file)."""
    loops: ProvisionerSettings
    """Reconcile interval and grace periods."""

    @classmethod
    def from_site(cls, site: siteconfig.SiteConfig) -> OpenstackSettings:
        """Read and validate the `[provisioner]` table."""
        sec = site.section("provisioner")
        sec.check_keys(set(ProvisionerSettings.KEYS) | {"call_timeout_s"})
        return cls(nats_url=site.nats_url, loops=ProvisionerSettings.from_section(sec))


def build(site: siteconfig.SiteConfig, log: logging.Logger) -> ServiceBody:
    """The OpenStack provisioner's body: serve every OpenStack cloud of the site."""
    settings = OpenstackSettings.from_site(site)

    async def make_driver(cloud: CloudRecord) -> CloudDriver:
        driver = NotConfiguredDriver(cloud.name, cloud.os_cloud)
        log.warning("%s", logs.fields(cloud=cloud.name, status="not configured",
                                      reason=driver.reason))
        return driver

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        await run_provisioner(bus, "openstack", make_driver, settings.loops, stop)

    return body


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cs-provisioner-openstack`."""
    return service_main(SERVICE, __doc__ or SERVICE, argv, build)


if __name__ == "__main__":
    raise SystemExit(main())
