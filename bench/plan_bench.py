"""plan() time at scale: idle jobs in demand classes, clouds, VMs in the registry.

    python bench/plan_bench.py [--repeat 5]

The target case is 1,000,000 idle jobs in 2,000 classes, 200 clouds and 20,000 VMs (goal:
under 100 ms on one core), each class naming 3 TargetClouds; `target_anycloud` is the same
with classes that may use any cloud. The scaling curve multiplies classes, clouds and VMs by
10 each, from a tenth of the target. Prints a table, then every figure as a `name=value` line.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from bus.schemas import (
    CloudRecord,
    DemandClass,
    DemandSnapshot,
    PoolSnapshot,
    Startd,
    VmRecord,
    VmSpec,
)
from services.planner.core import plan, vm_name

NOW = 1_800_000_000.0


def scenario(jobs: int, classes: int, clouds: int, vms: int, targeted: bool = True) -> tuple[
        DemandSnapshot, list[CloudRecord], list[VmRecord], PoolSnapshot]:
    """Demand spread evenly over classes; each class targets 3 clouds; VMs registered, half
    of them busy."""
    cloud_names = [f"cloud{n}" for n in range(clouds)]
    demand = DemandSnapshot(source="bench", taken_at=NOW, classes=tuple(
        DemandClass(key=f"{c:010x}", vm_type=f"type{c}", cores=1 + c % 4,
                    memory_mb=2048 * (1 + c % 4), idle=jobs // classes,
                    target_clouds=tuple(sorted({cloud_names[(c + k) % clouds]
                                                for k in range(3)})) if targeted else (),
                    users={f"user{c % 50}": jobs // classes})
        for c in range(classes)))
    records = [CloudRecord(name=name, provider="libvirt", enabled=n % 10 != 0,
                           max_vms=max(1, 2 * vms // clouds), boots_per_cycle=5,
                           address="test:///default")
               for n, name in enumerate(cloud_names)]
    registry = []
    startds = []
    for v in range(vms):
        c = v % classes
        cloud = cloud_names[(c + v % 3) % clouds]
        vm_id = vm_name("bench", cloud, f"{c:010x}", v)
        registry.append(VmRecord(
            vm_id=vm_id, cloud=cloud, intent_id=f"boot-{vm_id}", class_key=f"{c:010x}",
            spec=VmSpec(vm_type=f"type{c}"), state="running", created_at=NOW - 3600,
            updated_at=NOW - 3600, registered_at=NOW - 3500))
        busy = v % 2 == 0
        startds.append(Startd(vm_id=vm_id, name=f"slot1@{vm_id}",
                              state="Claimed" if busy else "Unclaimed",
                              activity="Busy" if busy else "Idle",
                              entered_state_at=NOW - 600))
    return demand, records, registry, PoolSnapshot(source="bench", taken_at=NOW,
                                                   startds=tuple(startds))


def time_plan(jobs: int, classes: int, clouds: int, vms: int, repeat: int,
              targeted: bool = True) -> float:
    """Median milliseconds of plan() over `repeat` runs."""
    demand, clouds_, registry, pool = scenario(jobs, classes, clouds, vms, targeted)
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = plan("bench", demand, clouds_, registry, NOW, pool=pool)
        runs.append((time.perf_counter() - started) * 1000)
        assert result.decisions
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    base = {"jobs": 100_000, "classes": 200, "clouds": 20, "vms": 2_000}
    cases = {
        "base": base,
        "classes_x10": {**base, "classes": 2_000},
        "clouds_x10": {**base, "clouds": 200},
        "vms_x10": {**base, "vms": 20_000},
        "target": {"jobs": 1_000_000, "classes": 2_000, "clouds": 200, "vms": 20_000},
        "target_anycloud": {"jobs": 1_000_000, "classes": 2_000, "clouds": 200,
                            "vms": 20_000, "targeted": 0},
    }
    figures = {}
    print(f"plan() on {platform.machine()}, Python {platform.python_version()}, one core, "
          f"median of {args.repeat}")
    print(f"  {'case':<16} {'jobs':>10} {'classes':>8} {'clouds':>7} {'VMs':>7} {'ms':>9}")
    for name, case in cases.items():
        ms = time_plan(case["jobs"], case["classes"], case["clouds"], case["vms"], args.repeat,
                       bool(case.get("targeted", 1)))
        figures[f"plan_ms_{name}"] = round(ms, 1)
        print(f"  {name:<16} {case['jobs']:>10,} {case['classes']:>8,} {case['clouds']:>7,} "
              f"{case['vms']:>7,} {ms:>9.1f}")
    figures["plan_ms"] = figures["plan_ms_target"]
    for key, value in figures.items():
        print(f"{key}={value}")


if __name__ == "__main__":
    main()
