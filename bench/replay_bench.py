"""The poller on a replayed queue of 10 million jobs: the real cs-poller process reading a
condor_q -long dump as a stream, next to classad2.parseOne alone on the same text.

    PYTHONPATH=. python bench/replay_bench.py [--jobs 10000000] [--classes 2000]
                                              [--baseline-jobs 1000000]

Writes the dump (bench/poller_bench.py's synthetic jobs: 16 attributes each, 12 of them ones
the poller reads) to a temporary directory, times `classad2.parseOne` alone on each of its
first `--baseline-jobs` ads (read from the same file; only the calls are timed), then starts
a nats-server and cs-poller (source = "replay") and waits for its first demand snapshot: its
poll time (`cs_poll_seconds`) gives the poller's rate, /proc its memory (VmHWM: the peak).
Prints a table, then every figure as `name=value`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import classad2

from bench.poller_bench import synthetic_ads
from bench.rss_bench import memory_mb
from bench.scale_bench import scrape, wait_until
from bus import subjects
from bus.connection import Bus
from bus.schemas import DemandSnapshot
from cli.supervisor import COMMANDS
from runtime.observe import PORT_OFFSETS
from tests.natsserver import NatsServer
from tests.observed import free_block

CONFIG = """
site = "replay"
[nats]
url = "{url}"
[poller]
source = "replay"
queue_file = "{queue}"
interval_s = 3600
[metrics]
base_port = {base}
"""


def write_dump(path: Path, jobs: int, classes: int) -> None:
    """The synthetic queue, written 10,000 ads at a time."""
    with path.open("w") as out:
        batch: list[str] = []
        for ad in synthetic_ads(jobs, classes):
            batch.append(ad)
            if len(batch) == 10_000:
                out.write("\n".join(batch) + "\n")
                batch = []
        out.write("\n".join(batch))


def parse_one_rate(path: Path, count: int) -> float:
    """Ads a second of classad2.parseOne on the dump's first `count` ads (only the calls
    timed)."""
    spent, done = 0.0, 0
    block: list[str] = []
    with path.open() as dump:
        for line in dump:
            if line.strip():
                block.append(line)
                continue
            if block:
                text = "".join(block)
                started = time.perf_counter()
                ad = classad2.parseOne(text, classad2.ParserType.Old)
                spent += time.perf_counter() - started
                assert len(ad) == len(block), text
                done += 1
                block = []
                if done == count:
                    break
    return done / spent


async def first_demand(url: str, timeout: float) -> DemandSnapshot:
    """The first demand snapshot the poller publishes."""
    bus = await Bus.connect(url, "bench")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = await bus.last(subjects.demand(), DemandSnapshot)
            if last is not None:
                return last.value
            await asyncio.sleep(1.0)
        raise SystemExit(f"replay_bench: no demand within {timeout:.0f} s")
    finally:
        await bus.close()


def main() -> None:
    """Write the dump, time the baseline and the poller, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000_000)
    parser.add_argument("--classes", type=int, default=2000)
    parser.add_argument("--baseline-jobs", type=int, default=1_000_000)
    args = parser.parse_args()
    figures: dict[str, float] = {"jobs": args.jobs}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        queue = work / "queue.txt"
        started = time.perf_counter()
        write_dump(queue, args.jobs, args.classes)
        figures["dump_write_s"] = time.perf_counter() - started
        figures["dump_gb"] = queue.stat().st_size / 1e9
        figures["classad2_parseOne_ads_per_s"] = parse_one_rate(
            queue, min(args.jobs, args.baseline_jobs))
        nats = NatsServer(work / "nats")
        nats.start()
        base = free_block(len(PORT_OFFSETS))
        config = work / "cs.toml"
        config.write_text(CONFIG.format(url=nats.url, queue=queue, base=base))
        env = dict(os.environ, CS_CONFIG=str(config), CS_NATS_URL=nats.url)
        port = base + PORT_OFFSETS["cs-poller"]
        proc = subprocess.Popen([sys.executable, *COMMANDS["cs-poller"]], env=env,
                                stdout=(work / "cs-poller.log").open("wb"),
                                stderr=subprocess.STDOUT)
        try:
            demand = asyncio.run(first_demand(nats.url, 3 * 3600))
            wait_until("the poll's metric", lambda: scrape(port).get(
                "cs_poll_seconds_count", 0) >= 1, 60)
            poll_s = scrape(port)["cs_poll_seconds_sum"]
            assert proc.poll() is None, "cs-poller died: see its log"
            rss, peak = memory_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(60)
            nats.stop()
    counted = sum(c.idle + c.running for c in demand.classes)
    if counted != args.jobs or len(demand.classes) != args.classes or demand.stale:
        raise SystemExit(f"replay_bench: the demand holds {counted} jobs in "
                         f"{len(demand.classes)} classes (stale: {demand.stale_reason!r}); "
                         f"expected {args.jobs} in {args.classes}")
    figures["poller_poll_s"] = poll_s
    figures["poller_ads_per_s"] = args.jobs / poll_s
    figures["poller_vs_parseOne_ratio"] = figures["poller_ads_per_s"] / figures[
        "classad2_parseOne_ads_per_s"]
    figures["poller_rss_mb"] = rss
    figures["poller_rss_peak_mb"] = peak
    print(f"cs-poller replaying {args.jobs:,} jobs in {args.classes:,} classes "
          f"({platform.machine()}, Python {platform.python_version()}):")
    for name, value in figures.items():
        print(f"  {name:32} {value:16,.3f}")
    for name, value in figures.items():
        print(f"{name}={value:.4f}")


if __name__ == "__main__":
    main()
