"""A provisioner's registry read: one cloud's VMs out of a registry shared by many clouds,
read whole and filtered by the cloud (what reconcile does), on a real nats-server.

    PYTHONPATH=. python bench/registry_read_bench.py [--vms 20000] [--clouds 50] [--reads 5]

The VM bucket is filled with `--vms` records spread over `--clouds` clouds; each read is
timed `--reads` times (best kept). A provisioner serving every cloud reads once per cloud
per reconcile interval, so the whole-bucket figure is paid `--clouds` times. Prints a table,
then every figure as `name=value`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bus import subjects
from bus.connection import Bus
from bus.schemas import VmRecord, VmSpec
from registry.compact import Compactor
from tests.natsserver import NatsServer


async def fill(bus: Bus, vms: int, clouds: int) -> None:
    """`vms` running VM records, round-robin over `clouds` clouds."""
    kv = bus.kv(subjects.VMS_BUCKET, VmRecord)
    now = time.time()
    spec = VmSpec(vm_type="worker", image="worker.qcow2", cores=1, memory_mb=512)
    for start in range(0, vms, 500):
        await asyncio.gather(*(kv.put(subjects.vm_key(f"c{i % clouds}", f"vm-{i}"), VmRecord(
            vm_id=f"vm-{i}", cloud=f"c{i % clouds}", intent_id=f"boot-vm-{i}",
            class_key="k1", spec=spec, state="running", created_at=now, updated_at=now))
            for i in range(start, min(vms, start + 500))))


async def best_of(reads: int, read: Callable[[], Awaitable[dict[str, object]]]
                  ) -> tuple[float, int]:
    """The fastest of `reads` calls of `read` in ms, and the keys it returned."""
    times, keys = [], 0
    for _ in range(reads):
        started = time.perf_counter()
        keys = len(await read())
        times.append((time.perf_counter() - started) * 1000)
    return min(times), keys


async def run(args: argparse.Namespace, url: str) -> dict[str, float]:
    bus = await Bus.connect(url, "bench")
    await bus.ensure_infra()
    try:
        await fill(bus, args.vms, args.clouds)
        kv = bus.kv(subjects.VMS_BUCKET, VmRecord)

        async def whole() -> dict[str, object]:
            return {k: v for k, v in (await kv.items(compact=Compactor())).items()
                    if k.startswith("c0.")}

        async def filtered() -> dict[str, object]:
            return dict(await kv.items(prefix="c0.", compact=Compactor()))

        whole_ms, whole_keys = await best_of(args.reads, whole)
        filtered_ms, filtered_keys = await best_of(args.reads, filtered)
        assert whole_keys == filtered_keys, (whole_keys, filtered_keys)
    finally:
        await bus.close()
    return {"registry_read_whole_ms": whole_ms, "registry_read_filtered_ms": filtered_ms,
            "registry_read_keys": float(filtered_keys),
            "registry_read_per_round_whole_s": whole_ms * args.clouds / 1000,
            "registry_read_per_round_filtered_s": filtered_ms * args.clouds / 1000}


def main() -> None:
    """Run, print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--vms", type=int, default=20_000)
    parser.add_argument("--clouds", type=int, default=50)
    parser.add_argument("--reads", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        nats = NatsServer(Path(tmp) / "nats")
        nats.start()
        try:
            figures = asyncio.run(run(args, nats.url))
        finally:
            nats.stop()
    print(f"one cloud's VMs from the registry ({platform.machine()}, {os.cpu_count()} cores; "
          f"{args.vms} VMs over {args.clouds} clouds, best of {args.reads}):")
    print(f"  whole bucket, then filtered   {figures['registry_read_whole_ms']:9.1f} ms   "
          f"{figures['registry_read_per_round_whole_s']:6.2f} s for all {args.clouds} clouds")
    print(f"  filtered by the server        {figures['registry_read_filtered_ms']:9.1f} ms   "
          f"{figures['registry_read_per_round_filtered_s']:6.2f} s for all {args.clouds} clouds")
    for key, value in figures.items():
        print(f"{key}={value:.3f}")


if __name__ == "__main__":
    main()
