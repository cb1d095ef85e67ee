"""The poller's shell: read the configured source, publish a DemandSnapshot each cycle."""

from __future__ import annotations

import asyncio
import logging
import time

from bus import logs, subjects
from bus.codec import new_trace
from bus.connection import Bus
from bus.errors import ConfigError
from bus.schemas import DemandSnapshot
from services.poller import condor
from services.poller.demand import build_demand
from services.poller.settings import PollerSettings

log = logging.getLogger("cs-poller")


class Poller:
    """Reads the configured source and publishes a DemandSnapshot each cycle."""

    def __init__(self, bus: Bus, settings: PollerSettings) -> None:
        self.bus = bus
        self.settings = settings
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
        log.info(
            "%s", logs.fields(
                loop="poll", source=snap.source, classes=len(snap.classes),
                idle=sum(c.idle for c in snap.classes),
                running=sum(c.running for c in snap.classes),
                rejected=len(snap.rejected), stale=snap.stale_reason or "no",
                trace=self._trace,
            )
        )
