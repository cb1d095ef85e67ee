"""cs-poller: publish the queue's demand every cycle."""

from __future__ import annotations

import asyncio
import logging

from bus.connection import Bus
from bus.runloop import ServiceBody, every, service_main
from bus.siteconfig import SiteConfig
from services.poller.settings import PollerSettings
from services.poller.shell import Poller

SERVICE = "cs-poller"


def build(site: SiteConfig, log: logging.Logger) -> ServiceBody:
    """The poller's body for this site."""
    settings = PollerSettings.from_site(site)

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        await every(settings.interval_s, stop, Poller(bus, settings).step, log)

    return body


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cs-poller`."""
    return service_main(SERVICE, __doc__ or SERVICE, argv, build)


if __name__ == "__main__":
    raise SystemExit(main())
