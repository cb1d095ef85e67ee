"""The services at the scale of the largest sites: a registry of 100,000 VMs over 200 clouds,
with demand for all of them, next to the same at 2,000 VMs.

    PYTHONPATH=. python bench/scale_bench.py [--sizes 2000,100000] [--clouds 200] [--window 20]

For each size: a nats-server, the cloud records and the VMs written into the registry (running,
on libvirt test clouds; the provisioner keeps records it does not find on the driver, as a
real cloud's would be there), the demand that holds them, and the admin, planner and
provisioner services as processes of their own (the poller is left out: the benchmark
publishes the demand; its own scale is bench/poller_bench.py). Once every loop has run, it
measures over `--window` seconds: each service's memory (VmRSS, peak VmHWM), the planner's
cycle (wall time and CPU per cycle, from its metrics and /proc), a reconcile of one cloud's
VMs (inside the service, where 200 clouds share it, and alone: 500 VMs at 100,000 over 200
clouds), demand change to intent (50 changes, each one more idle job), and `cs status`,
`cs vm list` and `cs status --json` (time to the first line, and to the end). Prints a
table, then every figure as `name=value`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from nats.aio.msg import Msg

from bench.boots import cpu_s
from bench.latency_bench import quantile
from bench.rss_bench import memory_mb
from bus import subjects
from bus.connection import Bus
from bus.schemas import (
    CloudRecord,
    DemandClass,
    DemandSnapshot,
    PlanReport,
    VmRecord,
    VmSpec,
)
from cli.supervisor import COMMANDS
from providers.libvirt.driver import LibvirtDriver
from providers.libvirt.options import LibvirtOptions
from provisioning.driver import DriverContext
from provisioning.settings import ProvisionerSettings
from provisioning.userdata import WorkerSettings
from provisioning.worker import CloudWorker
from runtime.observe import PORT_OFFSETS
from siteconfig import cloud_record
from tests.demo import ROOT
from tests.natsserver import NatsServer
from tests.observed import free_block, samples

CONFIG = """
site = "scale"
[nats]
url = "{url}"
[planner]
interval_s = 2
register_timeout_s = 0
[provisioner]
reconcile_interval_s = {reconcile}
vanished_grace_s = 86400   # the VMs exist only in the registry: keep them
orphan_grace_s = 86400
[metrics]
base_port = {base}
[admin]
status_page = "127.0.0.1:{page}"
"""
RECONCILE_S = 5.0
"""The provisioner's reconcile interval here."""
SERVICES = ("cs-admin", "cs-planner", "cs-provisioner-libvirt")


def scrape(port: int) -> dict[str, float]:
    """Every sample of a service's /metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as page:
        return samples(page.read().decode())


def summed(samples: dict[str, float], name: str) -> float:
    """A metric summed over its labels."""
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


def cloud_name(i: int) -> str:
    """The name of the i-th cloud."""
    return f"c{i:03d}"


def host_xml(work: Path) -> str:
    """A test host (the demo's) big enough for every VM: its uri."""
    text = (ROOT / "examples" / "demo-host.xml").read_text()
    text = text.replace("<cores>16</cores>", "<cores>2048</cores>").replace(
        "<memory>67108864</memory>", "<memory>4294967296</memory>").replace(
        "<capacity unit='GiB'>4</capacity>", "<capacity unit='MiB'>64</capacity>")
    # (the test driver's pool holds about 100 GB whatever the file says, and counts each
    # overlay at the base's full size: a small base leaves room for the benchmark's boots)
    (work / "host.xml").write_text(text)
    return f"test://{work / 'host.xml'}"


async def fill(url: str, vms: int, clouds: int, uri: str) -> None:
    """The clouds and `vms` running VMs spread over them, and the demand that holds them."""
    bus = await Bus.connect(url, "bench")
    await bus.ensure_infra()
    per_cloud = -(-vms // clouds)
    records = bus.kv(subjects.CLOUDS_BUCKET, CloudRecord)
    for i in range(clouds):
        await records.put(cloud_name(i), cloud_record(
            cloud_name(i), LibvirtOptions(uri=uri, base_image="worker.qcow2", domain_type="test"),
            enabled=True, max_vms=per_cloud + 1000, boots_per_cycle=1000))
    kv = bus.kv(subjects.VMS_BUCKET, VmRecord)
    now = time.time()
    spec = VmSpec(vm_type="w", image="worker.qcow2", cores=1, memory_mb=512)
    names = [(cloud_name(n % clouds), f"cs-scale-{cloud_name(n % clouds)}-k1-{n}")
             for n in range(vms)]
    for start in range(0, vms, 2000):
        await asyncio.gather(*(kv.put(subjects.vm_key(cloud, vm), VmRecord(
            vm_id=vm, cloud=cloud, intent_id=f"boot-{vm}", class_key="k1", spec=spec,
            state="running", created_at=now, updated_at=now, running_at=now))
            for cloud, vm in names[start:start + 2000]))
    await bus.js_publish(subjects.demand(), demand(vms, 0, "fill"))
    await bus.close()


def demand(running: int, extra: int, trace: str) -> DemandSnapshot:
    """The jobs the registry's VMs serve, and `extra` idle jobs of another class."""
    classes = [DemandClass(key="k1", vm_type="w", image={"": "worker.qcow2"}, idle=0,
                           running=running)]
    if extra:
        classes.append(DemandClass(key="k2", vm_type="w2", image={"": "worker.qcow2"},
                                   idle=extra, users={"u": extra}))
    return DemandSnapshot(source=f"bench {trace}", taken_at=time.time(), classes=tuple(classes))


async def lags(url: str, vms: int, changes: int) -> list[float]:
    """Milliseconds from each demand change (one more idle job) to its first intent."""
    bus = await Bus.connect(url, "bench")
    seen: dict[str, float] = {}
    arrived = asyncio.Event()

    async def on_intent(msg: Msg) -> None:
        seen.setdefault((msg.headers or {}).get("Cs-Trace", ""), time.perf_counter())
        arrived.set()

    sub = await bus.nc.subscribe(subjects.intents_all(), cb=on_intent)
    out = []
    try:
        for n in range(1, changes + 1):
            trace = f"scale-{n}"
            start = time.perf_counter()
            await bus.js_publish(subjects.demand(), demand(vms, n, trace), trace=trace)
            deadline = start + 60
            while trace not in seen:
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(),
                                           max(0.01, deadline - time.perf_counter()))
                except TimeoutError:
                    plan = await bus.last(subjects.plan_report(), PlanReport)
                    said = [d.reason for d in plan.value.decisions] if plan else []
                    for info in await bus.js.streams_info():
                        said.append(f"{info.config.name}: {info.state.consumer_count} "
                                    "consumers")
                    raise SystemExit(f"scale_bench: no intent for demand change {n} within "
                                     "60 s; the planner said, and the streams hold: "
                                     f"{said[-14:]}") from None
            out.append((seen[trace] - start) * 1000)
            await asyncio.sleep(0.2)
    finally:
        await sub.unsubscribe()
        await bus.close()
    return out


async def reconcile_alone(url: str, cloud: str, times: int = 7) -> float:
    """Milliseconds of one reconcile of `cloud` (median of `times`), by a provisioner loop
    of its own with nothing else running: the registry read of the cloud's VMs, the driver's
    listing and the comparison."""
    bus = await Bus.connect(url, "bench")
    entry = await bus.kv(subjects.CLOUDS_BUCKET, CloudRecord).get(cloud)
    assert entry is not None
    driver = LibvirtDriver(entry.value, DriverContext.of(
        "scale", WorkerSettings(central_manager="cm.bench", token_file=None)))
    worker = CloudWorker(bus, "libvirt", cloud, driver, ProvisionerSettings(
        vanished_grace_s=86400, orphan_grace_s=86400))
    took = []
    try:
        for _ in range(times):
            start = time.perf_counter()
            await worker.reconcile()
            took.append((time.perf_counter() - start) * 1000)
    finally:
        await driver.close()
        await bus.close()
    return sorted(took)[len(took) // 2]


def first_line(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds to the first line of `cs ARGS` and to its end (Python's start included); NaN
    both, and what it said, if it failed."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    first = time.perf_counter() - start
    _, problems = proc.communicate(timeout=600)
    if proc.returncode != 0:
        print(f"cs {' '.join(args)} failed: {problems.decode().strip()}", file=sys.stderr)
        return math.nan, math.nan
    return first, time.perf_counter() - start


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll `check` every second until it holds; the benchmark ends if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass  # a metrics port not served yet
        if time.monotonic() > deadline:
            raise SystemExit(f"scale_bench: {what} not within {timeout:.0f} s")
        time.sleep(1)


def one_size(vms: int, clouds: int, window: float) -> dict[str, float]:
    """Every figure at one size."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        nats = NatsServer(work / "nats")
        nats.start()
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            started = time.perf_counter()
            asyncio.run(fill(nats.url, vms, clouds, host_xml(work)))
            figures["fill_s"] = time.perf_counter() - started
            base = free_block(len(PORT_OFFSETS))
            config = work / "cs.toml"
            page = free_block(1)
            config.write_text(CONFIG.format(url=nats.url, base=base, reconcile=RECONCILE_S,
                                            page=page))
            env = dict(os.environ, CS_CONFIG=str(config), CS_NATS_URL=nats.url)
            for name in SERVICES:
                procs[name] = subprocess.Popen([sys.executable, *COMMANDS[name]], env=env,
                                               stdout=(work / f"{name}.log").open("wb"),
                                               stderr=subprocess.STDOUT)
            port = {name: base + PORT_OFFSETS[name] for name in SERVICES}
            wait_until("three planning cycles", lambda: scrape(port["cs-planner"]).get(
                "cs_plan_seconds_count", 0) >= 3, 600)
            wait_until("two reconciles of every cloud", lambda: summed(scrape(
                port["cs-provisioner-libvirt"]), "cs_reconcile_seconds_count") >= 2 * clouds,
                600)
            planner, provider = procs["cs-planner"].pid, procs["cs-provisioner-libvirt"].pid
            before = scrape(port["cs-planner"]), scrape(port["cs-provisioner-libvirt"])
            cpu_before = cpu_s(planner), cpu_s(provider)
            time.sleep(window)
            after = scrape(port["cs-planner"]), scrape(port["cs-provisioner-libvirt"])
            cycles = after[0]["cs_plan_seconds_count"] - before[0]["cs_plan_seconds_count"]
            figures["plan_cycle_s"] = (after[0]["cs_plan_seconds_sum"]
                                       - before[0]["cs_plan_seconds_sum"]) / cycles
            figures["plan_cpu_per_cycle_s"] = (cpu_s(planner) - cpu_before[0]) / cycles
            reconciles = (summed(after[1], "cs_reconcile_seconds_count")
                          - summed(before[1], "cs_reconcile_seconds_count"))
            figures["reconcile_one_cloud_ms"] = 1000 * (
                summed(after[1], "cs_reconcile_seconds_sum")
                - summed(before[1], "cs_reconcile_seconds_sum")) / reconciles
            figures["provisioner_cpu_share"] = (cpu_s(provider) - cpu_before[1]) / window
            lag = asyncio.run(lags(nats.url, vms, 50))
            figures["intent_lag_p50_ms"] = sorted(lag)[len(lag) // 2]
            figures["intent_lag_p99_ms"] = quantile(lag, 0.99)
            for label, args in (("status", ["status"]), ("vm_list", ["vm", "list"]),
                                ("status_json", ["status", "--json"])):
                first, whole = first_line(args, env)
                figures[f"cs_{label}_first_line_s"] = first
                figures[f"cs_{label}_whole_s"] = whole
            for label, path in (("status_page", "/"), ("status_page_deep", "/?after=c199.")):
                started = time.perf_counter()
                with urllib.request.urlopen(f"http://127.0.0.1:{page}{path}",
                                            timeout=60) as answer:
                    answer.read()
                figures[f"{label}_s"] = time.perf_counter() - started
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} died: see its log"
                rss, peak = memory_mb(proc.pid)
                key = name.removeprefix("cs-").replace("-", "_")
                figures[f"rss_mb_{key}"] = rss
                figures[f"rss_peak_mb_{key}"] = peak
            started = time.perf_counter()
            for proc in procs.values():
                proc.terminate()
            for name, proc in procs.items():
                proc.wait(60)
                key = name.removeprefix("cs-").replace("-", "_")
                figures[f"exit_after_sigterm_s_{key}"] = time.perf_counter() - started
            figures["reconcile_alone_ms"] = asyncio.run(reconcile_alone(nats.url,
                                                                        cloud_name(0)))
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(60)
            nats.stop()
    return figures


def main() -> None:
    """Run every size, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,100000")
    parser.add_argument("--clouds", type=int, default=200)
    parser.add_argument("--window", type=float, default=20.0)
    args = parser.parse_args()
    if args.window < 2 * RECONCILE_S:
        parser.error(f"--window {args.window:g}: at least {2 * RECONCILE_S:g} s, so every "
                     f"cloud is reconciled inside it (every {RECONCILE_S:g} s)")
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {vms: one_size(vms, args.clouds, args.window) for vms in sizes}
    names = list(results[sizes[0]])
    print(f"{args.clouds} clouds ({platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}):")
    print(f"  {'figure':32}" + "".join(f"{f'{vms:,} VMs':>14}" for vms in sizes))
    for name in names:
        print(f"  {name:32}" + "".join(f"{results[vms][name]:14.3f}" for vms in sizes))
    small, large = sizes[0], sizes[-1]
    for vms in sizes:
        for name, value in results[vms].items():
            print(f"{name}_{vms}={value:.4f}")
    if large > small:
        per_10k = 10_000 / (large - small)
        for name in names:
            if name.startswith("rss_mb_"):
                growth = (results[large][name] - results[small][name]) * per_10k
                print(f"{name}_per_10k_vms={growth:.2f}")
        ratio = results[large]["intent_lag_p99_ms"] / results[small]["intent_lag_p99_ms"]
        print(f"intent_lag_p99_ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
