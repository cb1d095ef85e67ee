"""Demand change -> intent on the bus, through the real planner service, next to the raw NATS
request/reply round trip measured in the same run.

    PYTHONPATH=. python bench/latency_bench.py [--changes 200] [--rtts 2000]

A nats-server on a free port and the cs-planner service (a process of its own) with one
libvirt cloud; the benchmark plays the poller: it publishes a demand snapshot with one more
idle job each time and times until the intent that change caused (same trace id) is seen on
the bus. Prints a table, then every figure as `name=value`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nats.aio.msg import Msg

from bus import subjects
from bus.connection import Bus
from bus.schemas import CloudRecord, DemandClass, DemandSnapshot
from providers.libvirt.options import LibvirtOptions
from siteconfig import cloud_record
from tests.natsserver import NatsServer

CLOUD = "bench-lv"
CONFIG = """
site = "bench"
[nats]
url = "{url}"
[planner]
interval_s = 3600          # only demand changes wake it: what is measured is the reaction
resend_after_s = 3600
register_timeout_s = 0
"""


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def rtts(bus: Bus, count: int) -> list[float]:
    """Milliseconds of `count` request/reply round trips to a responder on the same server."""
    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    sub = await bus.nc.subscribe("bench.echo", cb=echo)
    out = []
    for _ in range(count):
        start = time.perf_counter()
        await bus.nc.request("bench.echo", b"x", timeout=5)
        out.append((time.perf_counter() - start) * 1000)
    await sub.unsubscribe()
    return out


async def lags(bus: Bus, changes: int) -> list[float]:
    """Milliseconds from each demand change to its intent on the bus."""
    seen: dict[str, float] = {}
    arrived = asyncio.Event()

    async def on_intent(msg: Msg) -> None:
        trace = (msg.headers or {}).get("Cs-Trace", "")
        seen.setdefault(trace, time.perf_counter())
        arrived.set()

    sub = await bus.nc.subscribe(subjects.intents_all(), cb=on_intent)
    out = []
    for n in range(1, changes + 1):
        trace = f"bench-{n}"
        demand = DemandSnapshot(source="bench", taken_at=time.time(), classes=(DemandClass(
            key="k1", vm_type="w", image={"": "worker.qcow2"}, cores=1, memory_mb=512,
            idle=n, users={"u": n}),))
        start = time.perf_counter()
        await bus.js_publish(subjects.demand(), demand, trace=trace)
        deadline = start + 10
        while trace not in seen:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), max(0.01, deadline - time.perf_counter()))
        out.append((seen[trace] - start) * 1000)
        await asyncio.sleep(0.05)
    await sub.unsubscribe()
    return out


async def run(args: argparse.Namespace, url: str) -> dict[str, float]:
    bus = await Bus.connect(url, "bench")
    await bus.ensure_infra()
    await bus.kv(subjects.CLOUDS_BUCKET, CloudRecord).put(CLOUD, cloud_record(
        CLOUD, LibvirtOptions(uri="test:///default", base_image="worker.qcow2"), enabled=True,
        max_vms=100_000, boots_per_cycle=1000))
    try:
        await asyncio.sleep(3.0)  # the planner: connected, first (empty) cycle done
        rtt = await rtts(bus, args.rtts)
        lag = await lags(bus, args.changes)
    finally:
        await bus.close()
    p50_rtt, p99_rtt = statistics.median(rtt), quantile(rtt, 0.99)
    return {"nats_rtt_p50_ms": p50_rtt, "nats_rtt_p99_ms": p99_rtt,
            "intent_lag_p50_ms": statistics.median(lag), "intent_lag_p99_ms": quantile(lag, 0.99),
            "intent_lag_p99_in_rtts": quantile(lag, 0.99) / p50_rtt}


def main() -> None:
    """Run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--rtts", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        nats = NatsServer(work / "nats")
        nats.start()
        config = work / "cs.toml"
        config.write_text(CONFIG.format(url=nats.url))
        with (work / "planner.log").open("wb") as log:
            planner = subprocess.Popen([sys.executable, "-m", "services.planner"],
                                       env=dict(os.environ, CS_CONFIG=str(config)),
                                       stdout=log, stderr=subprocess.STDOUT)
            try:
                figures = asyncio.run(run(args, nats.url))
            finally:
                planner.terminate()
                planner.wait(15)
                nats.stop()
    print(f"demand change -> intent on the bus ({platform.machine()}, {os.cpu_count()} cores, "
          f"{args.changes} changes; NATS round trips: {args.rtts}):")
    print(f"  {'':24} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"  {'NATS request/reply':24} {figures['nats_rtt_p50_ms']:8.3f} "
          f"{figures['nats_rtt_p99_ms']:8.3f}")
    print(f"  {'demand -> intent':24} {figures['intent_lag_p50_ms']:8.3f} "
          f"{figures['intent_lag_p99_ms']:8.3f}")
    print(f"  p99 lag = {figures['intent_lag_p99_in_rtts']:.1f} round trips (goal: under 5)")
    for key, value in figures.items():
        print(f"{key}={value:.3f}")


if __name__ == "__main__":
    main()
