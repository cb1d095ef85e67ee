"""The poller's shell: publish demand and pool snapshots each cycle; carry out condor actions.

Level-triggered: each cycle asks the source for the whole queue and the whole pool. When the
source cannot answer, the last known snapshot is republished flagged stale with the reason, so
the planner sees the outage and retires nothing on a blip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TypeVar

from bus import subjects
from bus.codec import new_trace
from bus.connection import Bus
from bus.schemas import CondorAction, CondorActionDone, DemandSnapshot, PoolSnapshot
from bus.workqueue import Delivery
from runtime import logs
from services.poller.demand import DEFAULTS, JobDefaults, build_demand
from services.poller.pool import build_pool, machines
from services.poller.source import CondorSource, SourceUnavailable

log = logging.getLogger("cs-poller")

S = TypeVar("S", DemandSnapshot, PoolSnapshot)


def _stale(last: S, now: float, exc: SourceUnavailable) -> S:
    """The last good snapshot, flagged stale with the reason, so nothing is retired on a
    blip: everything it knew is kept, whatever fields it has."""
    return last.model_copy(update={"taken_at": now, "stale": True, "stale_reason": str(exc)})


class Poller:
    """One poller replica."""

    def __init__(self, bus: Bus, source: CondorSource, retry_s: float = 10.0,
                 defaults: JobDefaults = DEFAULTS) -> None:
        self.bus = bus
        self.source = source
        self.retry_s = retry_s
        self.defaults = defaults
        """The VM of a job that does not say ([poller] default_vm_*)."""
        self._demand: DemandSnapshot | None = None
        self._pool: PoolSnapshot | None = None
        self._trace = new_trace()
        # Actions this process carried out, until their startd leaves the pool (then it
        # reports that too). Not state anyone relies on: the planner reads the pool itself.
        self._retiring: dict[str, tuple[CondorActionDone, str]] = {}

    async def _read_demand(self, now: float, pool: asyncio.Task[PoolSnapshot]
                           ) -> DemandSnapshot:
        try:
            ads = await self.source.jobs()
            # Where running jobs run decides whether they need a VM of ours: the pool read
            # at the same time, or the last one seen (none: every running job counts).
            seen = await pool
            known = self._pool if seen.stale else seen
            hosts = None if known is None else machines(known)
            # In a thread: a replayed queue of millions is read and grouped as one stream
            # (minutes), and the loop must go on meanwhile (heartbeats, condor actions).
            return await asyncio.to_thread(build_demand, ads, self.source.describe(), now,
                                           defaults=self.defaults, our_hosts=hosts)
        except SourceUnavailable as exc:
            return _stale(self._demand or DemandSnapshot(source="none", taken_at=now), now, exc)

    async def _read_pool(self, now: float) -> PoolSnapshot:
        try:
            ads = await self.source.startds()
        except SourceUnavailable as exc:
            return _stale(self._pool or PoolSnapshot(source="none", taken_at=now), now, exc)
        snap, problems = build_pool(ads, self.source.describe(), now)
        for problem in problems:
            log.warning("%s", logs.fields(loop="poll", pool_problem=problem))
        return snap

    async def step(self) -> None:
        """One poll: read queue and pool, publish both, log one line."""
        now = time.time()
        reading = asyncio.ensure_future(self._read_pool(now))
        demand = await self._read_demand(now, reading)
        pool = await reading
        self._measure(demand, time.time() - now)
        last = self._demand
        if last is None or (last.classes, last.rejected) != (demand.classes, demand.rejected):
            self._trace = new_trace()
        if not demand.stale:
            self._demand = demand
        if not pool.stale:
            self._pool = pool
        await self.bus.js_publish(subjects.demand(), demand, trace=self._trace)
        await self.bus.js_publish(subjects.pool(), pool, trace=self._trace)
        if not pool.stale:
            present = {s.vm_id for s in pool.startds}
            for vm_id in [v for v in self._retiring if v not in present]:
                done, trace = self._retiring.pop(vm_id)
                gone = done.model_copy(update={"left_pool": True, "at": now})
                await self.bus.publish(subjects.condor_done(), gone, trace=trace)
                log.info("%s", logs.fields(vm=vm_id, action=done.action,
                                           intent=done.action_id, outcome="left the pool"))
        log.info("%s", logs.fields(
            loop="poll", source=demand.source, classes=len(demand.classes),
            idle=sum(c.idle for c in demand.classes),
            running=sum(c.running for c in demand.classes),
            rejected=demand.rejected_total, startds=len(pool.startds),
            stale="; ".join(filter(None, (demand.stale_reason, pool.stale_reason))) or "no",
            trace=self._trace))

    def _measure(self, demand: DemandSnapshot, took_s: float) -> None:
        metrics = self.bus.metrics
        metrics.poll_seconds.observe(took_s)
        metrics.demand_stale.set(1 if demand.stale else 0)
        metrics.demand_rejected.set(demand.rejected_total)
        metrics.demand_jobs.clear()  # classes that left the queue leave the metrics too
        for cls in demand.classes:
            metrics.demand_jobs.labels(cls.vm_type, cls.key, "idle").set(cls.idle)
            metrics.demand_jobs.labels(cls.vm_type, cls.key, "running").set(cls.running)

    async def act(self, delivery: Delivery[CondorAction]) -> None:
        """Carry out one condor action; a failure is retried, never dropped."""
        action = delivery.value
        fields = logs.fields(vm=action.vm_id, action=action.action, intent=action.action_id,
                             trace=delivery.trace)
        try:
            told = await self.source.retire(action.vm_id)
        except SourceUnavailable as exc:
            log.warning("%s outcome=retry delay=%.0f error=%s", fields, self.retry_s, exc)
            await delivery.nak(self.retry_s)
            return
        if not told and self._pool is not None and any(
                s.vm_id == action.vm_id for s in self._pool.startds):
            # A startd in the pool whose master is not (yet) in the collector: a drone or
            # VM that joined a moment ago. Done now, the retire would be lost (the planner's
            # resend of the same action is a duplicate for the stream).
            log.warning("%s outcome=retry delay=%.0f error=its startd is in the pool but no "
                        "master of it is yet", fields, self.retry_s)
            await delivery.nak(self.retry_s)
            return
        done = CondorActionDone(action_id=action.action_id, vm_id=action.vm_id,
                                action=action.action, contacted=told, at=time.time())
        await self.bus.publish(subjects.condor_done(), done, trace=delivery.trace)
        self._retiring[action.vm_id] = (done, delivery.trace)
        log.info("%s outcome=done masters_told=%d", fields, told)
        await delivery.ack()

    async def serve_actions(self, stop: asyncio.Event) -> None:
        """Consume condor actions until `stop` is set."""
        queue = await self.bus.condor_queue()
        await queue.serve(stop, self.act)
