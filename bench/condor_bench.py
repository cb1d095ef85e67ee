"""The poller's query of a real schedd next to `condor_q -af` of the same attributes.

    PYTHONPATH=. python bench/condor_bench.py [--jobs 10000 100000] [--rounds 3]   # as root

A real pool (tests/condor_pool.py: Debian trixie's HTCondor 23.9 in a chroot, the
container's config) is filled with idle jobs carrying v1's attributes, in steps up to each
`--jobs` figure. At each size both sides read every idle and running job with the poller's
projection (services.poller.demand.PROJECTION), best of `--rounds`:

- the poller: `BindingsSource.jobs()`, i.e. a child process asking the schedd through the
  PyPI htcondor2 bindings and handing the ads back as JSON, as cs-poller does every cycle;
- `condor_q -allusers -af <projection>` in the pool's root, the same constraint.

Prints a table, then every figure as `name=value` (`condor_poll_s_<jobs>`,
`condor_q_af_s_<jobs>`, `condor_poll_ratio_<jobs>`; goal: the ratio within 1.2).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from services.poller.condor import BindingsSource
from services.poller.demand import JOB_IDLE, JOB_RUNNING, PROJECTION
from tests.condor_pool import V1_WORKER_JOBS, CondorPool

CONSTRAINT = f"JobStatus == {JOB_IDLE} || JobStatus == {JOB_RUNNING}"


async def poll(source: BindingsSource) -> tuple[float, int]:
    """Seconds for one poller query, and the jobs it returned."""
    started = time.perf_counter()
    jobs = await source.jobs()
    return time.perf_counter() - started, len(jobs)


def condor_q(pool: CondorPool) -> tuple[float, int]:
    """Seconds for `condor_q -af` of the projection, and the lines it printed."""
    started = time.perf_counter()
    out = pool.condor("condor_q", "-allusers", "-constraint", CONSTRAINT, "-af", *PROJECTION)
    return time.perf_counter() - started, len(out.splitlines())


def fill(pool: CondorPool, have: int, want: int) -> None:
    """Submit idle jobs until the queue holds `want` (in clusters of at most 20,000)."""
    while have < want:
        count = min(20_000, want - have)
        started = time.perf_counter()
        pool.submit("alice", V1_WORKER_JOBS.format(count=count))
        have += count
        print(f"  submitted {have:,} jobs ({time.perf_counter() - started:.1f} s for "
              f"{count:,})", file=sys.stderr, flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("condor_bench: the HTCondor pool runs in a chroot; run as root")
    with tempfile.TemporaryDirectory() as work:
        pool = CondorPool(Path(work))
        pool.up()
        try:
            os.environ["CONDOR_CONFIG"] = str(pool.client_config)  # the poller's children
            source = BindingsSource(("*",), timeout_s=600)
            figures: dict[str, float] = {}
            print(f"schedd queries (HTCondor 23.9 schedd, htcondor2 bindings; "
                  f"{platform.machine()}, Python {platform.python_version()}), best of "
                  f"{args.rounds}:")
            print(f"  {'jobs':>8}  {'poller s':>9}  {'condor_q -af s':>14}  {'ratio':>6}")
            have = 0
            for size in sorted(args.jobs):
                fill(pool, have, size)
                have = size
                polls = [await poll(source) for _ in range(args.rounds)]
                queries = [condor_q(pool) for _ in range(args.rounds)]
                assert all(n == size for _, n in polls + queries), (polls, queries)
                best_poll = min(s for s, _ in polls)
                best_q = min(s for s, _ in queries)
                print(f"  {size:>8,}  {best_poll:>9.2f}  {best_q:>14.2f}  "
                      f"{best_poll / best_q:>6.2f}")
                figures[f"condor_poll_s_{size}"] = round(best_poll, 3)
                figures[f"condor_q_af_s_{size}"] = round(best_q, 3)
                figures[f"condor_poll_ratio_{size}"] = round(best_poll / best_q, 2)
        finally:
            pool.down()
    for name, value in figures.items():
        print(f"{name}={value}")


if __name__ == "__main__":
    asyncio.run(main())
