"""The only module that touches HTCondor: the `htcondor2` bindings and `classad2` parsing.

Two sources of job ads: a live schedd (queried in a thread under our own timeout, because a
schedd query can block for 20 s and ignores config timeouts), and a replay of a saved
`condor_q -long` or `condor_q -json` dump, which is how the demo and the tests feed queues.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import classad2
import htcondor2

from bus.errors import ConfigError
from services.poller.demand import JOB_IDLE, JOB_RUNNING, PROJECTION, JobAd

_EXPR_ATTRS = frozenset({"Requirements"})
_JSON_EXPR_PREFIX, _JSON_EXPR_SUFFIX = "/Expr(", ")/"


class SourceUnavailable(Exception):
    """The schedd could not be queried in time; the demand is stale."""


def ad_to_job(ad: classad2.ClassAd) -> JobAd:
    """Plain values for literal attributes; expression text for expressions."""
    out: dict[str, object] = {}
    for attr in ad:
        if attr in _EXPR_ATTRS:
            out[attr] = str(ad.lookup(attr))
            continue
        try:
            value = ad.eval(attr)
        except (ValueError, TypeError, RuntimeError):
            value = None
        if isinstance(value, bool | int | float | str):
            out[attr] = value
        else:
            out[attr] = str(ad.lookup(attr))
    return out


def _json_value(value: object) -> object:
    if (isinstance(value, str) and value.startswith(_JSON_EXPR_PREFIX)
            and value.endswith(_JSON_EXPR_SUFFIX)):
        return value[len(_JSON_EXPR_PREFIX):-len(_JSON_EXPR_SUFFIX)]
    return value


def parse_dump(text: str, origin: str) -> list[JobAd]:
    """Job ads from `condor_q -long` (old ClassAd syntax) or `condor_q -json` text."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{origin}: not valid condor_q -json output: {exc}") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ConfigError(
                f"{origin}: not valid condor_q -json output: expected a list of objects")
        return [{k: _json_value(v) for k, v in row.items()} for row in rows]
    return [ad_to_job(ad) for ad in _parse_long(text, origin)]


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
        parsed = {name.lower() for name in ad}
        for at, raw in block:
            name = raw.partition("=")[0].strip().lower()
            if name not in parsed:
                raise ConfigError(
                    f"{origin}: line {at}: not valid condor_q -long output: {raw.strip()!r}")
        ads.append(ad)
        block = []
    return ads


def read_dump(path: Path) -> list[JobAd]:
    """Job ads from a dump file; ConfigError names the file when it is missing or bad."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read queue dump: {exc.strerror}") from None
    return parse_dump(text, str(path))


def _query_schedds(names: tuple[str, ...]) -> list[JobAd]:
    constraint = f"JobStatus == {JOB_IDLE} || JobStatus == {JOB_RUNNING}"
    schedds = []
    if names:
        collector = htcondor2.Collector()
        for name in names:
            schedds.append(htcondor2.Schedd(collector.locate(htcondor2.DaemonType.Schedd, name)))
    else:
        schedds.append(htcondor2.Schedd())
    ads: list[JobAd] = []
    for schedd in schedds:
        ads.extend(ad_to_job(ad) for ad in schedd.query(constraint, list(PROJECTION)))
    return ads


async def query_schedds(names: tuple[str, ...], timeout_s: float) -> list[JobAd]:
    """Idle and running jobs of the named schedds (or the local one), within `timeout_s`.

    The query runs in a child process, not a thread: htcondor2 holds the GIL while it waits
    on a collector or schedd (measured: a thread blocked the event loop for 60 s against an
    unresponsive collector), so only a process can be abandoned on time.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.poller.condor", *names,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise SourceUnavailable(
            f"schedd query did not answer within {timeout_s:.0f}s") from None
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise SourceUnavailable(f"schedd query failed: {lines[-1] if lines else proc.returncode}")
    try:
        rows = json.loads(out)
    except json.JSONDecodeError as exc:
        raise SourceUnavailable(f"schedd query returned unreadable output: {exc}") from None
    if not isinstance(rows, list):
        raise SourceUnavailable("schedd query returned unreadable output: not a list")
    return rows


def _child(names: list[str]) -> int:
    """The query process: job ads as a JSON list on stdout, or one error line on stderr."""
    try:
        ads = _query_schedds(tuple(names))
    except (htcondor2.HTCondorException, OSError, RuntimeError, ValueError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    json.dump(ads, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1:]))
