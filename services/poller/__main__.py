"""cs-poller: publish the queue's demand every cycle."""

from __future__ import annotations

import asyncio
import logging

from bus.connection import Bus
from runtime.runloop import ServiceBody, every, keep_running, service_main
from services.poller.condor import BindingsSource, ReplaySource
from services.poller.settings import PollerSettings
from services.poller.shell import Poller
from services.poller.source import CondorSource
from siteconfig import SiteConfig

SERVICE = "cs-poller"


def build(site: SiteConfig, log: logging.Logger) -> ServiceBody:
    """The poller's body for this site."""
    settings = PollerSettings.from_site(site)
    source: CondorSource
    if settings.source == "replay":
        assert settings.queue_file is not None
        source = ReplaySource(settings.queue_file, settings.pool_file)
    else:
        source = BindingsSource(settings.schedds, settings.query_timeout_s)

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        poller = Poller(bus, source, defaults=settings.defaults)
        actions = asyncio.create_task(
            keep_running("condor action consumer", stop, poller.serve_actions, log))
        await every(settings.interval_s, stop, poller.step, log)
        await actions

    return body


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cs-poller`."""
    return service_main(SERVICE, __doc__ or SERVICE, argv, build)


if __name__ == "__main__":
    raise SystemExit(main())
