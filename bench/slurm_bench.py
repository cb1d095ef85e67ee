"""Drone submissions on the tests' one-node Slurm cluster: N boots through our provisioner
(intents on NATS, CloudWorker, SlurmDriver: the script rendered, sbatch with our tag) next to
a bare loop of the same sbatch calls at the same concurrency (the driver's 4 threads), in one
run; then the whole loop's `slurm_sbatch_to_joined_s` (sbatch to the drone's startd in the
pool) from tests/test_slurm_loop.py.

    PYTHONPATH=. python bench/slurm_bench.py [--boots 100] [--rounds 3] [--no-loop]

Needs root (Slurm's daemons, the pool's chroot). Each round's drones are cancelled before the
next. Prints a table, then every figure as `name=value`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.boots import time_provisioner, vms_of
from bench.pool_bench import failed, run_figures
from bus.schemas import VmRecord, VmSpec
from providers.slurm.driver import SlurmDriver, tag
from providers.slurm.options import SlurmOptions
from provisioning.driver import DriverContext
from provisioning.userdata import WorkerSettings, render
from siteconfig import cloud_record
from tests.natsserver import NatsServer
from tests.slurm_cluster import PARTITION, SlurmCluster

SITE = "bench"
SCRIPT = "#!/bin/sh\n# drone ${CS_VM_ID}\nexec sleep 600\n"
WORKER = WorkerSettings("cm", None)
THREADS = 4
"""The Slurm driver's worker threads: the bare loop runs as many at once."""


SPEC = VmSpec(vm_type="w", cores=1, memory_mb=16)
"""Every drone's size."""


def bare(cluster: SlurmCluster, opts: SlurmOptions, boots: int) -> float:
    """Seconds for `boots` sbatch calls like the driver's, THREADS at a time."""
    cloud = f"bare{uuid.uuid4().hex[:6]}"

    def submit(vm: VmRecord) -> None:
        script = render(SCRIPT, vm, SITE, WORKER).decode()
        subprocess.run(
            ["sbatch", "--parsable", f"--job-name={vm.vm_id}",
             f"--comment={tag(SITE, cloud, vm.intent_id)}", f"--time={opts.walltime_min}",
             "--nodes=1", "--ntasks=1", f"--cpus-per-task={vm.spec.cores}",
             f"--mem={vm.spec.memory_mb}", "--output=/dev/null", "--open-mode=append",
             f"--partition={PARTITION}"],
            input=script, capture_output=True, text=True, env=cluster.env, check=True)

    vms = vms_of(SITE, cloud, boots, SPEC)
    start = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(submit, vms))
    return time.perf_counter() - start


async def ours(url: str, cluster: SlurmCluster, opts: SlurmOptions, boots: int) -> float:
    """Seconds from publishing `boots` intents until every drone has left `requested`."""
    cloud = f"bench{uuid.uuid4().hex[:6]}"
    record = cloud_record(cloud, opts, enabled=True, max_vms=boots, user_data=SCRIPT)
    driver = SlurmDriver(record, DriverContext.of(SITE, WORKER))
    return await time_provisioner(url, "slurm", driver, vms_of(SITE, cloud, boots, SPEC))


def main() -> int:
    """Run both, then the whole loop; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boots", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-loop", action="store_true", help="skip the whole loop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = SlurmCluster(Path(tmp) / "slurm")
        (Path(tmp) / "slurm").mkdir()
        cluster.up()
        nats = NatsServer(Path(tmp))
        nats.start()
        opts = SlurmOptions.read({"slurm_conf": str(cluster.conf), "partition": PARTITION})
        try:
            bare_runs, ours_runs = [], []
            for _ in range(args.rounds):
                bare_runs.append(bare(cluster, opts, args.boots))
                cluster.run("scancel", "--user=root")
                ours_runs.append(asyncio.run(ours(nats.url, cluster, opts, args.boots)))
                cluster.run("scancel", "--user=root")
        finally:
            nats.stop()
            cluster.down()
    bare_s, ours_s = min(bare_runs), min(ours_runs)
    bare_rate, ours_rate = args.boots / bare_s, args.boots / ours_s
    print(f"Slurm drone submissions ({platform.machine()}, {os.cpu_count()} cores): "
          f"{args.boots} boots, {THREADS} at a time, best of {args.rounds} rounds")
    print(f"  {'bare sbatch loop':28} {bare_s:7.2f} s  {bare_rate:7.1f} boots/s")
    print(f"  {'cloudscheduler provisioner':28} {ours_s:7.2f} s  {ours_rate:7.1f} boots/s")
    print(f"  ratio {ours_rate / bare_rate:.2f} (goal: at least 0.9)")
    print(f"slurm_boots={args.boots}")
    print(f"slurm_bare_boots_per_s={bare_rate:.1f}")
    print(f"slurm_boots_per_s={ours_rate:.1f}")
    print(f"slurm_boots_ratio={ours_rate / bare_rate:.2f}")
    if args.no_loop:
        return 0
    done, figures = run_figures(["test_slurm_loop.py"], 1800)
    if done.returncode != 0:
        return failed("slurm_bench", done)
    for name, value in figures.items():
        if name.startswith("slurm_"):
            print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
