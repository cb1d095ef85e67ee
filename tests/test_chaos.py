"""Chaos: a 1,000-job burst while a driver kills -9 a random service every few seconds (and
once nats-server itself, which `cs up` restarts on the same store), on two clouds: a real Nova
(servers outlive every process) and libvirt's test driver (its domains die with their
provisioner, so reconcile must notice). After the chaos stops the system must converge to:
the registry equal to each cloud's listing, no VM twice (by name or by intent), no orphan,
the demand met up to the clouds' limits, and the operator's enable/disable flags intact.
The figures are printed (`pytest -s` shows them)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cli.supervisor import COMMANDS
from providers.openstack.driver import META_INTENT
from tests.demo import ROOT, cs, free_port
from tests.openstack_bed import APPCRED_CLOUD, IMAGE, Testbed
from tests.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SITE = "chaos"
LV, OS, SPARE = "chaos-lv", "chaos-os", "chaos-spare"
LIMITS = {LV: 12, OS: 8}
JOBS = 1000
CHAOS_S = 60.0
SERVICES = ("cs-admin", "cs-poller", "cs-planner", "cs-provisioner-libvirt",
            "cs-provisioner-openstack")

CONFIG = """
site = "chaos"
[nats]
url = "nats://127.0.0.1:{port}"
[poller]
source = "replay"
queue_file = "queue.txt"
interval_s = 1
[planner]
interval_s = 1
register_timeout_s = 0
backoff_base_s = 5
backoff_max_s = 20
[provisioner]
clouds_yaml = "{clouds_yaml}"
reconcile_interval_s = 2
orphan_grace_s = 10
vanished_grace_s = 5
[[cloud]]
name = "chaos-lv"
provider = "libvirt"
uri = "test://{host}"
base_image = "worker.qcow2"
enabled = true
max_vms = 12
[[cloud]]
name = "chaos-os"
provider = "openstack"
os_cloud = "{os_cloud}"
network = "none"
enabled = true
max_vms = 8
boot_timeout_s = 120
[[cloud]]
name = "chaos-spare"
provider = "libvirt"
uri = "test:///default"
base_image = "worker.qcow2"
enabled = true
max_vms = 0
"""


def burst(path: Path) -> None:
    """JOBS idle jobs of one class that fits either cloud."""
    first = (ROOT / "examples" / "demo-queue.txt").read_text().split("\n\n")[0]
    ad = (first.replace('TargetClouds = "container-cloud"\n', "")
          .replace('VMAMI = "container-cloud:centos7-condor.qcow2"',
                   f'VMAMI = "{OS}:{IMAGE},{LV}:worker.qcow2"')
          .replace("VMMem = 2048", "VMMem = 512").replace("RequestMemory = 2048",
                                                          "RequestMemory = 512"))
    path.write_text("\n\n".join(ad.replace("ProcId = 0", f"ProcId = {n}")
                                for n in range(JOBS)) + "\n")


def children(pid: int) -> dict[str, int]:
    """service (or nats-server) -> pid, among `cs up`'s children."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    found: dict[str, int] = {}
    for kid in map(int, out.split()):
        try:
            cmdline = Path(f"/proc/{kid}/cmdline").read_text().replace("\0", " ")
        except OSError:
            continue
        if "nats-server" in cmdline:
            found["nats-server"] = kid
        for name in SERVICES:
            if " ".join(COMMANDS[name]) + " " in cmdline:
                found[name] = kid
    return found


def nova_servers(admin: Any) -> list[Any]:
    return [s for s in admin.compute.servers(all_projects=True)
            if s.name.startswith(f"cs-{SITE}-")]


def snapshot(port: int, admin: Any) -> dict[str, Any]:
    """What must agree once converged: registry, listings, Nova, flags."""
    status = cs("status", "--json", port=port)
    if status.returncode != 0:
        return {"error": status.stderr}
    doc = json.loads(status.stdout)
    listings = {}
    for cloud in (LV, OS):
        shown = cs("cloud", "show", cloud, "--json", port=port)
        if shown.returncode != 0:
            return {"error": shown.stderr}
        listings[cloud] = sorted((i["name"], i["intent_id"])
                                 for i in json.loads(shown.stdout)["instances"])
    servers = nova_servers(admin)
    return {
        "registry": {c: sorted((v["name"], v["intent_id"]) for v in doc["vms"]
                               if v["cloud"] == c) for c in (LV, OS, SPARE)},
        "states": Counter(v["state"] for v in doc["vms"]),
        "listings": listings,
        "nova": sorted((s.name, (s.metadata or {}).get(META_INTENT, "")) for s in servers),
        "flags": {c["name"]: c["enabled"] for c in doc["clouds"]},
    }


LOOPS_AGAIN = {"plan": 3, LV: 2, OS: 2}
"""Cycles each loop must run again after convergence before it counts as stable."""


def loop_lines(state: Path) -> dict[str, int]:
    """How many planner cycles and reconciles of each cloud the logs under `state` show."""
    logs = state / "logs"

    def text(name: str) -> str:
        path = logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    return {"plan": text("cs-planner").count("loop=plan"),
            LV: text("cs-provisioner-libvirt").count(f"loop=reconcile cloud={LV} "),
            OS: text("cs-provisioner-openstack").count(f"loop=reconcile cloud={OS} ")}


def ran_again(state: Path, seen: dict[str, int]) -> None:
    """Wait until each loop ran LOOPS_AGAIN more times than `seen`."""
    eventually("3 more planner cycles and 2 more reconciles of each cloud", lambda: all(
        loop_lines(state)[k] >= seen[k] + need for k, need in LOOPS_AGAIN.items()),
        timeout=60)


def converged(snap: dict[str, Any]) -> bool:
    if "error" in snap:
        return False
    registry = snap["registry"]
    return (snap["states"] == Counter({"running": sum(LIMITS.values())})
            and all(len(registry[c]) == n for c, n in LIMITS.items())
            and all(snap["listings"][c] == registry[c] for c in LIMITS)
            and [n for n, _ in snap["nova"]] == [n for n, _ in registry[OS]])


def test_chaos_converges_with_no_leak_no_duplicate_and_flags_kept(
    tmp_path: Path, bed: Testbed, admin: Any,
) -> None:
    port = free_port()
    burst(tmp_path / "queue.txt")
    config = tmp_path / "cs.toml"
    config.write_text(CONFIG.format(port=port, clouds_yaml=bed.clouds_yaml,
                                    host=ROOT / "examples" / "demo-host.xml",
                                    os_cloud=APPCRED_CLOUD))
    state = tmp_path / "state"
    output = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen([sys.executable, "-m", "cli.main", "up", "--config",
                           str(config), "--state-dir", str(state)],
                          stdout=output, stderr=subprocess.STDOUT,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    rng = random.Random(20261125)
    kills: Counter[str] = Counter()
    figures: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 120
        while cs("cloud", "disable", SPARE, port=port).returncode != 0:
            assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()[-3000:]
            time.sleep(1)
        # The burst is being booted: start killing.
        started = time.monotonic()
        nats_killed = False
        while time.monotonic() - started < CHAOS_S:
            time.sleep(rng.uniform(2.0, 4.0))
            kids = children(up.pid)
            if not nats_killed and time.monotonic() - started > CHAOS_S / 2 and \
                    "nats-server" in kids:
                victim = "nats-server"
                nats_killed = True
            else:
                alive = [s for s in SERVICES if s in kids]
                if not alive:
                    continue
                victim = rng.choice(alive)
            os.kill(kids[victim], signal.SIGKILL)
            kills[victim] += 1
        chaos_end = time.monotonic()

        deadline = chaos_end + 360
        snap: dict[str, Any] = {}
        while True:
            snap = snapshot(port, admin)
            if converged(snap):
                # And it stays so: the planner and both clouds' reconciles ran again past
                # the state that converged (counted in their logs), then the same check.
                ran_again(state, loop_lines(state))
                snap = snapshot(port, admin)
                if converged(snap):
                    break
            assert time.monotonic() < deadline, (
                f"not converged: {json.dumps(snap, default=str)[:4000]}\n"
                + (tmp_path / "up.log").read_text(errors="replace")[-4000:])
            time.sleep(2)
        figures["converge_s"] = time.monotonic() - chaos_end

        # No VM twice, by name or by the intent that made it; none outside the registry.
        nova_names = [n for n, _ in snap["nova"]]
        nova_intents = [i for _, i in snap["nova"]]
        figures["duplicates"] = (len(nova_names) - len(set(nova_names))
                                 + len(nova_intents) - len(set(nova_intents)))
        known = {n for c in LIMITS for n, _ in snap["registry"][c]}
        figures["orphans"] = len(set(nova_names) - known) + sum(
            len({n for n, _ in snap["listings"][c]} - known) for c in LIMITS)
        assert figures["duplicates"] == 0 and figures["orphans"] == 0, snap
        assert sorted(snap["nova"]) == snap["registry"][OS]  # with the intent of each
        # Demand met up to the limits; the operator's flag survived every admin restart.
        assert snap["flags"] == {LV: True, OS: True, SPARE: False}
        assert snap["registry"][SPARE] == []
        assert nats_killed and sum(kills.values()) >= 10
        logs = state / "logs"
        figures["boots_applied"] = sum(
            p.read_text(errors="replace").count("action=boot outcome=")
            for p in logs.glob("cs-provisioner-*.log"))
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(90)
        finally:
            output.close()
            for server in nova_servers(admin):
                admin.compute.delete_server(server)
    assert up.returncode == 0
    print(f"\nchaos: {JOBS} jobs, {CHAOS_S:.0f}s of kills: "
          + ", ".join(f"{k}={n}" for k, n in sorted(kills.items())))
    for name, value in figures.items():
        print(f"chaos_{name}={value:.1f}" if isinstance(value, float) else
              f"chaos_{name}={value}")
