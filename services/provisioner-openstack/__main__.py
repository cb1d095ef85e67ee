"""cs-provisioner-openstack: boot and delete worker VMs on OpenStack clouds."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass

from bus import logs, siteconfig
from bus.connection import Bus
from bus.errors import ConfigError
from bus.provisioning import CloudDriver, ProvisionerSettings, run_provisioner
from bus.runloop import run_service
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cs-provisioner-openstack`."""
    parser = argparse.ArgumentParser(prog=SERVICE, description=__doc__)
    parser.add_argument("--config", help="site config file (default: $CS_CONFIG)")
    args = parser.parse_args(argv)
    log = logs.setup(SERVICE)
    try:
        settings = OpenstackSettings.from_site(
            siteconfig.load(siteconfig.config_path(args.config)))
    except ConfigError as exc:
        log.error("%s", exc)
        return 2

    async def make_driver(cloud: CloudRecord) -> CloudDriver:
        driver = NotConfiguredDriver(cloud.name, cloud.os_cloud)
        log.warning("%s", logs.fields(cloud=cloud.name, status="not configured",
                                      reason=driver.reason))
        return driver

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        await run_provisioner(bus, "openstack", make_driver, settings.loops, stop)

    return run_service(SERVICE, settings.nats_url, body)


if __name__ == "__main__":
    raise SystemExit(main())
