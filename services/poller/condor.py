"""One of the two modules that touch HTCondor: the `htcondor2` bindings (`classads.py`, the
other, reads ClassAd text).

Two CondorSources: `BindingsSource`, a live pool asked through the bindings in a child process
under our own timeout, and `ReplaySource`, saved `condor_q -long`/`-json` and
`condor_status -long` dumps, which is how the demo and the tests feed queues and pools.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import classad2
import htcondor2

from bus.errors import ConfigError
from services.poller import pool
from services.poller.classads import ad_to_job, iter_dump, read_dump
from services.poller.demand import JOB_IDLE, JOB_RUNNING, PROJECTION, JobAd
from services.poller.source import SourceUnavailable

_WANTED = (JOB_IDLE, JOB_RUNNING)
"""The job states the poller asks the schedd for."""


def _schedds(names: tuple[str, ...]) -> list[htcondor2.Schedd]:
    if not names:
        return [htcondor2.Schedd()]
    collector = htcondor2.Collector()
    if names == ("*",):
        return [htcondor2.Schedd(ad) for ad in collector.locateAll(htcondor2.DaemonType.Schedd)]
    return [htcondor2.Schedd(collector.locate(htcondor2.DaemonType.Schedd, name))
            for name in names]


def _jobs(names: tuple[str, ...]) -> list[JobAd]:
    constraint = f"JobStatus == {JOB_IDLE} || JobStatus == {JOB_RUNNING}"
    ads: list[JobAd] = []
    for schedd in _schedds(names):
        ads.extend(ad_to_job(ad, PROJECTION)
                   for ad in schedd.query(constraint, list(PROJECTION)))
    return ads


def _startds() -> list[JobAd]:
    collector = htcondor2.Collector()
    ads = collector.query(htcondor2.AdType.Startd, f"{pool.VM_ID_ATTR} =!= undefined",
                          list(pool.PROJECTION))
    return [ad_to_job(ad, pool.PROJECTION) for ad in ads]


def _masters(vm_id: str) -> list[classad2.ClassAd]:
    """The master ads advertising `vm_id` (MASTER_ATTRS carries CS_VM_ID): matched by our
    id, never by host name, which on a private network or NAT may be shared."""
    collector = htcondor2.Collector()
    return list(collector.query(htcondor2.AdType.Master,
                                f"{pool.VM_ID_ATTR} == {classad2.quote(vm_id)}"))


def _retire(vm_id: str) -> int:
    """DaemonsOffPeaceful to the master of `vm_id` (csv2's way: jobs finish, nothing new
    starts, then the daemons exit); how many masters were told."""
    masters = _masters(vm_id)
    for master in masters:
        htcondor2.send_command(master, htcondor2.DaemonCommand.DaemonsOffPeaceful)
    return len(masters)


class BindingsSource:
    """A live pool, asked through htcondor2.

    Every call runs in a child process, not a thread: htcondor2 holds the GIL while it waits
    on a collector or schedd (measured: a thread blocked the event loop for 60 s against an
    unresponsive collector), so only a process can be abandoned on time.
    """

    def __init__(self, schedds: tuple[str, ...], timeout_s: float) -> None:
        self.schedds = schedds
        self.timeout_s = timeout_s

    def describe(self) -> str:
        """`schedd:` and the schedd names (`local`, `*` for all the collector knows)."""
        return "schedd:" + (",".join(self.schedds) or "local")

    async def _child(self, verb: str, *args: str) -> object:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.poller.condor", verb, *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise SourceUnavailable(
                f"{verb} query did not answer within {self.timeout_s:.0f}s") from None
        if proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            why = lines[-1] if lines else str(proc.returncode)
            if "Unable to locate local daemon" in why or "determine collector host" in why:
                why += (" (the poller finds the pool through the HTCondor config in "
                        "CONDOR_CONFIG: COLLECTOR_HOST, and a local schedd unless "
                        "[poller] schedds names some)")
            raise SourceUnavailable(f"{verb} query failed: {why}")
        try:
            return json.loads(out)
        except json.JSONDecodeError as exc:
            raise SourceUnavailable(f"{verb} query returned unreadable output: {exc}") from None

    async def _ads(self, verb: str, *args: str) -> list[JobAd]:
        rows = await self._child(verb, *args)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise SourceUnavailable(f"{verb} query returned unreadable output: not ads")
        return rows

    async def jobs(self) -> list[JobAd]:
        """Idle and running jobs of the configured schedds."""
        return await self._ads("jobs", *self.schedds)

    async def startds(self) -> list[JobAd]:
        """Slots advertising CS_VM_ID, from the collector."""
        return await self._ads("startds")

    async def retire(self, vm_id: str) -> int:
        """DaemonsOffPeaceful to the VM's masters; how many were told."""
        told = await self._child("retire", vm_id)
        if not isinstance(told, int):
            raise SourceUnavailable(f"retire of {vm_id} returned unreadable output")
        return told


class ReplaySource:
    """A pool replayed from dumps, re-read every cycle so edits show up live.

    A retired VM's slots are dropped from the replayed pool from then on, as they would
    leave a real collector.
    """

    def __init__(self, queue_file: Path, pool_file: Path | None) -> None:
        self.queue_file = queue_file
        self.pool_file = pool_file
        self.retired: set[str] = set()

    def describe(self) -> str:
        """`replay:` and the queue file's name."""
        return f"replay:{self.queue_file.name}"

    async def jobs(self) -> Iterable[JobAd]:
        """The queue dump's idle and running jobs, as the schedd's query would give them
        (`JobStatus == 1 || JobStatus == 2`), read as they are used: 10 million jobs are
        never held at once (a line of the dump that is wrong raises SourceUnavailable
        then)."""
        return _unavailable_on_error(
            ad for ad in iter_dump(self.queue_file, PROJECTION)
            if type(status := ad.get("JobStatus")) is int and status in _WANTED)

    async def startds(self) -> list[JobAd]:
        """The pool dump's slots, less those of retired VMs (no pool file: no slots)."""
        if self.pool_file is None:
            return []
        try:
            ads = await asyncio.to_thread(read_dump, self.pool_file, pool.PROJECTION)
        except ConfigError as exc:
            raise SourceUnavailable(str(exc)) from None
        return [ad for ad in ads if ad.get(pool.VM_ID_ATTR) not in self.retired]

    async def retire(self, vm_id: str) -> int:
        """Drop the VM's slots from the replayed pool; 1 if it had any."""
        had = any(ad.get(pool.VM_ID_ATTR) == vm_id for ad in await self.startds())
        self.retired.add(vm_id)
        return 1 if had else 0


def _unavailable_on_error(ads: Iterator[JobAd]) -> Iterator[JobAd]:
    """`ads`, with a dump's ConfigError raised as the source being unavailable."""
    try:
        yield from ads
    except ConfigError as exc:
        raise SourceUnavailable(str(exc)) from None


def _child_main(argv: list[str]) -> int:
    """The query process: JSON on stdout, or one error line on stderr and exit 1."""
    verb, args = (argv[0], argv[1:]) if argv else ("", [])
    try:
        if verb == "jobs":
            result: object = _jobs(tuple(args))
        elif verb == "startds":
            result = _startds()
        elif verb == "retire" and len(args) == 1:
            result = _retire(args[0])
        else:
            print(f"usage: condor (jobs [SCHEDD...] | startds | retire VM_ID), got {argv}",
                  file=sys.stderr)
            return 2
    except (htcondor2.HTCondorException, OSError, RuntimeError, ValueError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    # One write: json.dump writes every token separately (100,000 jobs: 5 s of system time).
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1:]))
