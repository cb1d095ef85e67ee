"""Poller aggregation throughput on a synthetic condor_q -long queue, next to classad2's own
parse throughput on the same text.

    python bench/poller_bench.py [--jobs 1000000] [--classes 2000]

classad2.parseAds over one large text is quadratic (measured: 19k ads/s at 10k ads, 1.6k ads/s
at 100k, from a str, a StringIO or a file alike), so it is timed on two small prefixes to show
the curve; classad2.parseOne per blank-line-separated ad, which the poller's replay parser
builds on, is timed on the whole text. Prints a table, then every figure as `name=value`.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Iterator

import classad2

from services.poller.classads import parse_dump
from services.poller.demand import PROJECTION, build_demand


def synthetic_ads(jobs: int, classes: int, start: int = 0) -> Iterator[str]:
    """Jobs `start` to `jobs` of a queue of `classes` VM classes and 50 owners, one
    condor_q -long ad each (no blank line)."""
    for n in range(start, jobs):
        c = n % classes
        yield (f'ClusterId = {1000 + n // 100}\nProcId = {n % 100}\n'
               f'GlobalJobId = "schedd.example.org#{1000 + n // 100}.{n % 100}#1764070000"\n'
               f'Owner = "user{n % 50}"\nJobStatus = {1 if n % 4 else 2}\n'
               f'Requirements = (VMType =?= "type{c}") && (Arch == "X86_64")\n'
               f'VMAMI = "cloud{c % 200}:image{c}.qcow2"\nVMCPUCores = {1 + c % 8}\n'
               f'VMMem = {2048 * (1 + c % 4)}\nRequestDisk = 1048576\nJobPrio = 0\n'
               f'TargetClouds = "cloud{c % 200},cloud{(c + 1) % 200}"\nQDate = 1764070000\n'
               f'Cmd = "/home/user{n % 50}/run.sh"\nIwd = "/home/user{n % 50}"\n')


def synthetic_queue(jobs: int, classes: int) -> str:
    """`jobs` idle/running jobs of `classes` VM classes and 50 owners, condor_q -long style."""
    return "\n".join(synthetic_ads(jobs, classes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=2000)
    args = parser.parse_args()

    started = time.perf_counter()
    text = synthetic_queue(args.jobs, args.classes)
    make_s = time.perf_counter() - started

    blocks = text.split("\n\n")
    parse_ads: dict[int, float] = {}
    for size in sorted({min(args.jobs, 5000), min(args.jobs, 20000)}):
        prefix = "\n\n".join(blocks[:size])
        started = time.perf_counter()
        count = sum(1 for _ in classad2.parseAds(prefix, classad2.ParserType.Old))
        parse_ads[size] = count / (time.perf_counter() - started)
        assert count == size, count

    started = time.perf_counter()
    raw = sum(len(classad2.parseOne(b, classad2.ParserType.Old)) > 0 for b in blocks)
    classad2_s = time.perf_counter() - started
    assert raw == args.jobs, raw

    started = time.perf_counter()
    ads = parse_dump(text, "synthetic", PROJECTION)
    parse_s = time.perf_counter() - started

    started = time.perf_counter()
    snap = build_demand(ads, "synthetic", 0.0)
    group_s = time.perf_counter() - started
    assert len(snap.classes) == args.classes and not snap.rejected

    figures = {
        "jobs": args.jobs,
        "classes": len(snap.classes),
        "text_mb": round(len(text) / 1e6, 1),
        **{f"classad2_parseAds_{size}_ads_per_s": round(rate)
           for size, rate in parse_ads.items()},
        "classad2_parseOne_ads_per_s": round(raw / classad2_s),
        "poller_parse_ads_per_s": round(args.jobs / parse_s),
        "poller_group_ads_per_s": round(args.jobs / group_s),
        "poller_total_ads_per_s": round(args.jobs / (parse_s + group_s)),
        "poller_vs_classad2_ratio": round(classad2_s / (parse_s + group_s), 3),
        "synthesis_s": round(make_s, 1),
    }
    print(f"poller aggregation on {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, one core")
    for name, value in figures.items():
        print(f"  {name:<36} {value:>14,}")
    for name, value in figures.items():
        print(f"{name}={value}")


if __name__ == "__main__":
    main()
