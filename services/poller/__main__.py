"""cs-poller: publish the queue's demand every cycle."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

from bus import logs, siteconfig, subjects
from bus.codec import new_trace
from bus.connection import Bus
from bus.errors import ConfigError
from bus.runloop import every, run_service
from bus.schemas import DemandSnapshot
from services.poller import condor
from services.poller.demand import build_demand
from services.poller.settings import PollerSettings

SERVICE = "cs-poller"


class Poller:
    """Reads the configured source and publishes a DemandSnapshot each cycle."""

    def __init__(self, bus: Bus, settings: PollerSettings) -> None:
        self.bus = bus
        self.settings = settings
        self.log = logging.getLogger(SERVICE)
        self._last: DemandSnapshot | None = None
        self._trace = new_trace()

    async def _read(self) -> DemandSnapshot:
        now = time.time()
        s = self.settings
        if s.source == "replay":
            assert s.queue_file is not None
            try:
                ads = await asyncio.to_thread(condor.read_dump, s.queue_file)
            except ConfigError as exc:
                return self._stale(str(exc), now)
            return build_demand(ads, f"replay:{s.queue_file.name}", now)
        try:
            ads = await condor.query_schedds(s.schedds, s.query_timeout_s)
        except condor.SourceUnavailable as exc:
            return self._stale(str(exc), now)
        return build_demand(ads, "schedd:" + (",".join(s.schedds) or "local"), now)

    def _stale(self, reason: str, now: float) -> DemandSnapshot:
        """Keep the last known classes, flagged stale, so nothing is retired on a blip."""
        last = self._last
        return DemandSnapshot(
            source=last.source if last else "none", taken_at=now, stale=True,
            stale_reason=reason, classes=last.classes if last else (),
            rejected=last.rejected if last else (),
        )

    async def step(self) -> None:
        """One poll: read, publish, log one line."""
        snap = await self._read()
        last = self._last
        if last is None or (last.classes, last.rejected) != (snap.classes, snap.rejected):
            self._trace = new_trace()
        if not snap.stale:
            self._last = snap
        await self.bus.js_publish(subjects.demand(), snap, trace=self._trace)
        self.log.info(
            "%s", logs.fields(
                loop="poll", source=snap.source, classes=len(snap.classes),
                idle=sum(c.idle for c in snap.classes),
                running=sum(c.running for c in snap.classes),
                rejected=len(snap.rejected), stale=snap.stale_reason or "no",
                trace=self._trace,
            )
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point of `cs-poller`."""
    parser = argparse.ArgumentParser(prog=SERVICE, description=__doc__)
    parser.add_argument("--config", help="site config file (default: $CS_CONFIG)")
    args = parser.parse_args(argv)
    log = logs.setup(SERVICE)
    try:
        site = siteconfig.load(siteconfig.config_path(args.config))
        settings = PollerSettings.from_site(site)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        poller = Poller(bus, settings)
        await every(settings.interval_s, stop, poller.step, log)

    return run_service(SERVICE, settings.nats_url, body)


if __name__ == "__main__":
    raise SystemExit(main())
