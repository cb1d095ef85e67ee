"""The only module that touches HTCondor: the `htcondor2` bindings and `classad2` parsing.

Two CondorSources: `BindingsSource`, a live pool asked through the bindings in a child process
under our own timeout, and `ReplaySource`, saved `condor_q -long`/`-json` and
`condor_status -long` dumps, which is how the demo and the tests feed queues and pools.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import classad2
import htcondor2

from bus.errors import ConfigError
from services.poller import pool
from services.poller.demand import JOB_IDLE, JOB_RUNNING, PROJECTION, JobAd
from services.poller.source import SourceUnavailable

_EXPR_ATTRS = frozenset({"Requirements"})
_JSON_EXPR_PREFIX, _JSON_EXPR_SUFFIX = "/Expr(", ")/"


def ad_to_job(ad: classad2.ClassAd, only: Sequence[str] | None = None) -> JobAd:
    """Plain values for literal attributes; expression text for expressions.

    With `only`, just those attributes, keyed by the names given there (ClassAd names are
    case-insensitive, so a dump's `vmmem` arrives as `VMMem`).
    """
    # The ad's literals come out in one C++ call (its JSON form) and only expressions are
    # evaluated one by one: at 100,000 jobs, a lookup and an eval per projected attribute
    # cost four times the schedd's own query.
    wanted = None if only is None else {name.lower(): name for name in only}
    out: dict[str, object] = {}
    for key, value in json.loads(ad.printJson()).items():
        attr = key if wanted is None else wanted.get(key.lower())
        if attr is None:
            continue
        expression = (isinstance(value, str) and value.startswith(_JSON_EXPR_PREFIX)
                      and value.endswith(_JSON_EXPR_SUFFIX))
        if attr in _EXPR_ATTRS:
            # The JSON form carries the expression's text as ClassAds print it.
            out[attr] = (value[len(_JSON_EXPR_PREFIX):-len(_JSON_EXPR_SUFFIX)] if expression
                         else str(ad.lookup(key)))
            continue
        if expression:
            try:
                value = ad.eval(key)
            except (ValueError, TypeError, RuntimeError):
                value = None
        if isinstance(value, bool | int | float | str):
            out[attr] = value
        else:
            out[attr] = str(ad.lookup(key))
    return out


def _json_ad(row: dict[str, object], origin: str, index: int) -> classad2.ClassAd:
    """A ClassAd from one condor_q -json object, expressions (`/Expr(...)/`) included, so
    they evaluate exactly as in a -long dump."""
    ad = classad2.ClassAd()
    for key, value in row.items():
        if (isinstance(value, str) and value.startswith(_JSON_EXPR_PREFIX)
                and value.endswith(_JSON_EXPR_SUFFIX)):
            text = value[len(_JSON_EXPR_PREFIX):-len(_JSON_EXPR_SUFFIX)]
            try:
                ad[key] = classad2.ExprTree(text)
            except (classad2.ClassAdException, ValueError):
                raise ConfigError(f"{origin}: ad #{index + 1}: {key}: not a ClassAd "
                                  f"expression: {text!r}") from None
        elif isinstance(value, bool | int | float | str) or value is None:
            ad[key] = value
        else:
            ad[key] = json.dumps(value)  # lists and nested ads: kept as text, never used
    return ad


def parse_dump(text: str, origin: str, only: Sequence[str] | None = None) -> list[JobAd]:
    """Ads from `condor_q`/`condor_status` `-long` (old ClassAd syntax) or `-json` text;
    `only` keeps just the attributes that matter (see `ad_to_job`)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{origin}: not valid condor_q -json output: {exc}") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ConfigError(
                f"{origin}: not valid condor_q -json output: expected a list of objects")
        return [ad_to_job(_json_ad(row, origin, i), only) for i, row in enumerate(rows)]
    return [ad_to_job(ad, only) for ad in _parse_long(text, origin)]


def _parse_long(text: str, origin: str) -> list[classad2.ClassAd]:
    """Ads separated by blank lines. classad2 silently stops at the first bad line, which
    would drop jobs unseen, so every attribute line is checked to have made it into its ad."""
    ads: list[classad2.ClassAd] = []
    block: list[tuple[int, str]] = []
    for number, line in enumerate([*text.splitlines(), ""], start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "-- ")):
            block.append((number, line))
            continue
        if stripped or not block:
            continue
        try:
            ad = classad2.parseOne("\n".join(text for _, text in block), classad2.ParserType.Old)
        except (classad2.ClassAdException, ValueError) as exc:
            raise ConfigError(
                f"{origin}: line {block[0][0]}: not valid condor_q -long output: {exc}"
            ) from None
        if len(ad) != len(block):  # fast path: every line became an attribute
            parsed = {name.lower() for name in ad}
            for at, raw in block:
                name = raw.partition("=")[0].strip().lower()
                if name not in parsed:
                    raise ConfigError(
                        f"{origin}: line {at}: not valid condor_q -long output: "
                        f"{raw.strip()!r}")
        ads.append(ad)
        block = []
    return ads


def read_dump(path: Path, only: Sequence[str] | None = None) -> list[JobAd]:
    """Ads from a dump file; ConfigError names the file when it is missing or bad."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read queue dump: {exc.strerror}") from None
    return parse_dump(text, str(path), only)


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

    @staticmethod
    async def _read(path: Path, only: Sequence[str]) -> list[JobAd]:
        try:
            return await asyncio.to_thread(read_dump, path, only)
        except ConfigError as exc:
            raise SourceUnavailable(str(exc)) from None

    async def jobs(self) -> list[JobAd]:
        """The queue dump's jobs."""
        return await self._read(self.queue_file, PROJECTION)

    async def startds(self) -> list[JobAd]:
        """The pool dump's slots, less those of retired VMs (no pool file: no slots)."""
        if self.pool_file is None:
            return []
        ads = await self._read(self.pool_file, pool.PROJECTION)
        return [ad for ad in ads if ad.get(pool.VM_ID_ATTR) not in self.retired]

    async def retire(self, vm_id: str) -> int:
        """Drop the VM's slots from the replayed pool; 1 if it had any."""
        had = any(ad.get(pool.VM_ID_ATTR) == vm_id for ad in await self.startds())
        self.retired.add(vm_id)
        return 1 if had else 0


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
