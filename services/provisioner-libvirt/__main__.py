"""cs-provisioner-libvirt: boot and delete worker VMs as libvirt domains."""

from __future__ import annotations

import argparse
import asyncio

from bus import logs, siteconfig
from bus.connection import Bus
from bus.errors import ConfigError
from bus.provisioning import CloudDriver, run_provisioner
from bus.runloop import run_service
from bus.schemas import CloudRecord
from services.provisioner_libvirt.driver import LibvirtDriver
from services.provisioner_libvirt.settings import LibvirtSettings

SERVICE = "cs-provisioner-libvirt"


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cs-provisioner-libvirt`."""
    parser = argparse.ArgumentParser(prog=SERVICE, description=__doc__)
    parser.add_argument("--config", help="site config file (default: $CS_CONFIG)")
    args = parser.parse_args(argv)
    log = logs.setup(SERVICE)
    try:
        settings = LibvirtSettings.from_site(
            siteconfig.load(siteconfig.config_path(args.config)))
    except ConfigError as exc:
        log.error("%s", exc)
        return 2

    async def make_driver(cloud: CloudRecord) -> CloudDriver:
        return LibvirtDriver(cloud.name, cloud.uri, settings.site, settings.call_timeout_s)

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        await run_provisioner(bus, "libvirt", make_driver, settings.loops, stop)

    return run_service(SERVICE, settings.nats_url, body)


if __name__ == "__main__":
    raise SystemExit(main())
