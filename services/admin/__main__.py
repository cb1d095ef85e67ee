"""cs-admin: answer `cs` over the NATS services API; keep operator state in KV."""

from __future__ import annotations

import argparse
import asyncio

from bus import logs, siteconfig, subjects
from bus.connection import Bus
from bus.errors import ConfigError
from bus.micro import serve
from bus.runloop import run_service
from services.admin.service import AdminService

SERVICE = "cs-admin"


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cs-admin`."""
    parser = argparse.ArgumentParser(prog=SERVICE, description=__doc__)
    parser.add_argument("--config", help="site config file (default: $CS_CONFIG)")
    args = parser.parse_args(argv)
    log = logs.setup(SERVICE)
    try:
        site = siteconfig.load(siteconfig.config_path(args.config))
    except ConfigError as exc:
        log.error("%s", exc)
        return 2

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        admin = AdminService(bus)
        await admin.seed(site.clouds)
        service = await serve(bus, subjects.ADMIN_SERVICE, "0.1.0", subjects.ADMIN_GROUP,
                              admin.endpoints(), "cloudscheduler admin")
        log.info("%s", logs.fields(event="serving", group=subjects.ADMIN_GROUP,
                                   clouds=len(site.clouds)))
        await stop.wait()
        await service.stop()

    return run_service(SERVICE, site.nats_url, body)


if __name__ == "__main__":
    raise SystemExit(main())
