"""cs-planner: turn demand into VM intents, one level-triggered cycle at a time."""

from __future__ import annotations

import asyncio
import logging

from bus.connection import Bus
from runtime.runloop import ServiceBody, every, service_main
from services.planner.settings import PlannerSettings
from services.planner.shell import PlannerShell
from siteconfig import SiteConfig

SERVICE = "cs-planner"


def build(site: SiteConfig, log: logging.Logger) -> ServiceBody:
    """The planner's body for this site."""
    settings = PlannerSettings.from_site(site)

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        shell = PlannerShell(bus, settings)
        await shell.start()
        try:
            await every(settings.interval_s, stop, shell.step, log, shell.wake)
        finally:
            await shell.close()

    return body


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cs-planner`."""
    return service_main(SERVICE, __doc__ or SERVICE, argv, build)


if __name__ == "__main__":
    raise SystemExit(main())
