"""End to end: NATS and every service as separate processes, the demo queue, libvirt.

Replays a queue, checks that VMs appear in libvirt (the provisioner's live listing) and in
`cs status --json`, that disabling the cloud stops new boots, and that the enabled flag
survives a restart of every service and of NATS itself.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.demo import site_toml
from tests.natsserver import NatsServer
from tests.system import System
from tests.waiting import OutputWatch

ROOT = Path(__file__).resolve().parents[1]
CLOUD = "container-cloud"

TABLES = """[nats]
url = "{url}"
[[cloud]]
name = "cc-west"
provider = "openstack"
enabled = false
"""


def config_text(url: str) -> str:
    """The e2e site: the demo cloud with short orphan and vanish graces, and a disabled
    OpenStack cloud."""
    return site_toml("e2e", TABLES.format(url=url),
                     provisioner="orphan_grace_s = 5\nvanished_grace_s = 2")

pytestmark = pytest.mark.e2e


def running(doc: dict[str, Any], cloud: str = CLOUD) -> list[str]:
    return sorted(vm["name"] for vm in doc["vms"]
                  if vm["cloud"] == cloud and vm["state"] == "running")


def cloud_of(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in doc["clouds"] if c["name"] == name]
    assert len(found) == 1, name
    return found[0]


def more_jobs(queue: Path, extra: int) -> None:
    """Append `extra` idle jobs of the demo's worker class to the replayed queue."""
    text = (ROOT / "examples" / "demo-queue.txt").read_text()
    first = text.split("\n\n")[0]
    ads = [first.replace("ProcId = 0", f"ProcId = {100 + n}") for n in range(extra)]
    queue.write_text(text + "\n" + "\n\n".join(ads) + "\n")


def start_demo(tmp_path: Path, nats: NatsServer) -> tuple[System, Path]:
    """Every service on `nats`, replaying a copy of the demo queue (returned, to edit)."""
    queue = tmp_path / "queue.txt"
    shutil.copy(ROOT / "examples" / "demo-queue.txt", queue)
    config = tmp_path / "cs.toml"
    config.write_text(config_text(nats.url))
    system = System(tmp_path, config, nats.url)
    system.start()
    return system, queue


def test_whole_loop(tmp_path: Path, fresh_nats: NatsServer) -> None:
    system, queue = start_demo(tmp_path, fresh_nats)
    try:
        # The demo queue: 6 + 2 idle jobs in two classes, one rejected job.
        doc = system.wait_for("8 running VMs", lambda d: len(running(d)) == 8)
        assert cloud_of(doc, CLOUD)["enabled"] is True
        assert doc["demand"]["rejected"] == [
            {"job": "104.0", "reason": "VMMem: expected an integer, got 'lots'"}]
        assert sorted(c["idle"] for c in doc["demand"]["classes"]) == [2, 6]
        assert all(vm["name"].startswith("cs-e2e-container-cloud-") for vm in doc["vms"])

        # `cs trace --json` shows the bus decoded: subject, headers, body.
        lines = system.cs("trace", "--json", "--count", "3", "--subject", "cs.demand"
                          ).stdout.splitlines()
        assert len(lines) == 3
        message = json.loads(lines[0])
        assert message["subject"] == "cs.demand"
        assert message["headers"]["Cs-Type"] == "DemandSnapshot"
        assert message["headers"]["Cs-Schema"] == "1" and message["headers"]["Cs-Trace"]
        assert message["body"]["rejected"][0]["job"] == "104.0"

        # The VMs exist in libvirt, with our tag, one domain per registry entry.
        shown = json.loads(system.cs("cloud", "show", CLOUD, "--json").stdout)
        assert sorted(i["name"] for i in shown["instances"]) == running(doc)
        assert all(i["intent_id"].startswith("boot-" + i["name"]) for i in shown["instances"])

        # Disable: more demand arrives, nothing new boots, and the planner says why.
        out = system.cs("cloud", "disable", CLOUD).stdout
        assert f"cloud {CLOUD} disabled" in out
        more_jobs(queue, 3)
        doc = system.wait_for(
            "the planner to hold 3 VMs because the cloud is disabled",
            lambda d: any("cloud disabled" in x["reason"] and x["count"] == 3
                          for x in (d["plan"] or {}).get("decisions", [])))
        assert len(running(doc)) == 8 and len(doc["vms"]) == 8

        # Restart every service and NATS (same store): the flag survives.
        system.stop()
        fresh_nats.restart()
        system.start()
        doc = system.wait_for("status after restart", lambda d: bool(d["clouds"]))
        assert cloud_of(doc, CLOUD)["enabled"] is False
        assert cloud_of(doc, "cc-west")["enabled"] is False
        # libvirt's test driver lives inside the provisioner process, so its domains went
        # with the old process: reconcile must mark them gone rather than keep ghosts.
        doc = system.wait_for("ghost VMs marked gone", lambda d: not d["vms"])

        # Enable again: the planner books the whole demand (6 + 3 + 2) on its next cycles.
        assert f"cloud {CLOUD} enabled" in system.cs("cloud", "enable", CLOUD).stdout
        doc = system.wait_for("11 running VMs", lambda d: len(running(d)) == 11)
        shown = json.loads(system.cs("cloud", "show", CLOUD, "--json").stdout)
        assert sorted(i["name"] for i in shown["instances"]) == running(doc)

        # The workers' jobs leave the queue: their VMs are retired, on the cloud too.
        big = [ad for ad in queue.read_text().split("\n\n") if "big-worker" in ad]
        queue.write_text("\n\n".join(big) + "\n")
        doc = system.wait_for("only the 2 big-worker VMs left",
                              lambda d: len(d["vms"]) == 2 and len(running(d)) == 2)
        assert {vm["spec"]["vm_type"] for vm in doc["vms"]} == {"big-worker"}
        shown = json.loads(system.cs("cloud", "show", CLOUD, "--json").stdout)
        assert sorted(i["name"] for i in shown["instances"]) == running(doc)
    finally:
        if system.procs:
            system.stop()


def test_cli_errors_are_one_line_and_nonzero(tmp_path: Path, fresh_nats: NatsServer) -> None:
    config = tmp_path / "cs.toml"
    config.write_text(config_text(fresh_nats.url))
    system = System(tmp_path, config, fresh_nats.url)
    # Nothing answers yet: NATS is up, cs-admin is not.
    result = system.cs("status", check=False)
    assert result.returncode == 1
    assert "no service answers on cs.admin.status" in result.stderr
    assert "Traceback" not in result.stderr
    # NATS unreachable.
    result = system.cs("status", "--nats", "nats://127.0.0.1:1", check=False)
    assert result.returncode == 1 and "cannot reach NATS at nats://127.0.0.1:1" in result.stderr
    system.start()
    try:
        system.wait_for("admin up", lambda d: bool(d["clouds"]))
        result = system.cs("cloud", "enable", "nope", check=False)
        assert result.returncode == 1
        assert "unknown cloud 'nope'; known clouds: cc-west, container-cloud" in result.stderr
        result = system.cs("cloud", "disable", "bad name", check=False)
        assert result.returncode == 1 and "not a valid name" in result.stderr
        assert "already was" in system.cs("cloud", "disable", "cc-west").stdout
        # No queue file yet: the demand is stale and says why.
        doc = system.wait_for("stale demand", lambda d: bool(d["demand"]))
        assert doc["demand"]["stale"] is True
        assert "cannot read queue dump" in doc["demand"]["stale_reason"]
        # A job for the OpenStack cloud, whose clouds.yaml entry does not exist here: the VM
        # is failed with the reason, visible in status, instead of hanging in `requested`.
        ad = (ROOT / "examples" / "demo-queue.txt").read_text().split("\n\n")[0]
        (tmp_path / "queue.txt").write_text(
            ad.replace('TargetClouds = "container-cloud"', 'TargetClouds = "cc-west"')
            .replace('VMAMI = "container-cloud:', 'VMAMI = "cc-west:'))
        system.cs("cloud", "enable", "cc-west")
        doc = system.wait_for("the OpenStack VM to fail clearly",
                              lambda d: any(v["state"] == "error" for v in d["vms"]))
        [vm] = doc["vms"]
        assert vm["cloud"] == "cc-west" and "no usable entry 'cc-west'" in vm["reason"]
    finally:
        system.stop()


def test_operator_commands(tmp_path: Path, fresh_nats: NatsServer) -> None:
    system, _ = start_demo(tmp_path, fresh_nats)
    try:
        doc = system.wait_for("8 running VMs", lambda d: len(running(d)) == 8)
        found = json.loads(system.cs("services", "--json").stdout)
        assert {s["name"] for s in found} == {
            "cs-admin", "cs-provisioner-libvirt", "cs-provisioner-openstack"}
        admin = [s for s in found if s["name"] == "cs-admin"]
        assert len(admin) == 1 and "cs.admin.vm-kill" in admin[0]["endpoints"]

        listed = json.loads(system.cs("vm", "list", "--json", "--cloud", CLOUD).stdout)
        assert sorted(v["name"] for v in listed) == running(doc)
        victim = running(doc)[0]
        before = {i["name"]: i["intent_id"] for i in json.loads(
            system.cs("cloud", "show", CLOUD, "--json").stdout)["instances"]}
        result = system.cs("vm", "kill", victim)
        assert "killed 1 VM(s), skipped 0" in result.stdout
        # It left the cloud: the domain of that boot is gone (the planner may boot a new
        # VM under the same name for the demand, with a new intent).
        after = {i["name"]: i["intent_id"] for i in json.loads(
            system.cs("cloud", "show", CLOUD, "--json").stdout)["instances"]}
        assert after.get(victim) != before[victim]

        watcher = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "status", "--watch", "--interval",
             "0.3"], env=system.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert watcher.stdout is not None and watcher.stderr is not None
        shown_so_far = OutputWatch(watcher.stdout)
        shown_so_far.wait_for("cs status --watch to refresh",
                              lambda shown: shown.count("Clouds") >= 2)
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(30) == 0, watcher.stderr.read()
        shown_so_far.ended()
        assert "Traceback" not in watcher.stderr.read()
        result = system.cs("status", "--watch", "--json", check=False)
        assert result.returncode == 1 and "--watch shows tables" in result.stderr

        # Drain: the VM is retired through HTCondor first (the replayed pool has no startd
        # for it, so it has left at once) and deleted by the planner; progress until gone.
        doc = system.wait_for("8 running VMs again", lambda d: len(running(d)) == 8)
        drained = running(doc)[-1]
        result = system.cs("vm", "drain", drained, "--timeout", "60")
        assert "drained 1 VM(s), skipped 0" in result.stdout
        result = system.cs("vm", "drain", "no-such-vm", "--no-wait", check=False)
        assert result.returncode == 1 and "skipped no-such-vm: no such VM" in result.stderr

        # Config reload: a changed cloud is refreshed with its operator flag kept, a new one
        # added; a broken file changes nothing and says what is wrong.
        system.cs("cloud", "disable", CLOUD)
        config = system.config
        config.write_text(config.read_text().replace("max_vms = 20", "max_vms = 19") +
                          '[[cloud]]\nname = "extra"\nprovider = "libvirt"\n'
                          'uri = "test:///default"\n')
        reply = json.loads(system.cs("config", "reload", "--json").stdout)
        assert (reply["added"], reply["refreshed"]) == (["extra"], [CLOUD])
        shown = json.loads(system.cs("cloud", "show", CLOUD, "--json").stdout)["cloud"]
        assert (shown["enabled"], shown["max_vms"]) == (False, 19)
        config.write_text(config.read_text().replace("max_vms = 19", "max_vms = -3"))
        result = system.cs("config", "reload", check=False)
        assert result.returncode == 1 and "config not reloaded" in result.stderr
        assert "max_vms: must be at least 0" in result.stderr
        shown = json.loads(system.cs("cloud", "show", CLOUD, "--json").stdout)["cloud"]
        assert shown["max_vms"] == 19

        # v1's commands on the same endpoints, printing v1's shapes.
        def v1(command: str, *args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-c", "import sys; from cli.v1_commands import "
                 f"{command}_main as m; sys.exit(m())", *args],
                capture_output=True, text=True, env=system.env, timeout=60)

        shown_v1 = v1("status")
        assert shown_v1.returncode == 0, shown_v1.stderr
        assert "Clusters in resource pool:" in shown_v1.stdout
        assert "Cluster: container-cloud" in shown_v1.stdout
        table = v1("status", "-m").stdout
        assert table.startswith("ID     HOSTNAME") and "Total Clouds: 3" in table
        pool = json.loads(v1("status", "-j").stdout)
        assert {c["name"] for c in pool["resources"]} == {CLOUD, "cc-west", "extra"}
        assert v1("admin", "-e", "extra").stdout.strip() == "Cloud extra enabled"
        listed = json.loads(system.cs("vm", "list", "--json", "--cloud", CLOUD).stdout)
        retired = v1("admin", "-o", "-c", CLOUD, "-n", listed[0]["name"])
        assert retired.stdout.strip() == f"Retiring 1 VM(s) on {CLOUD}", retired.stderr

        result = system.cs("vm", "kill", "no-such-vm", "--no-wait", check=False)
        assert result.returncode == 1 and "skipped no-such-vm: no such VM" in result.stderr
        result = system.cs("vm", "kill", "--all", check=False)
        assert result.returncode == 1 and "--all needs --cloud NAME" in result.stderr
        result = system.cs("vm", "kill", "--all", "--cloud", "nope", check=False)
        assert result.returncode == 1 and "unknown cloud 'nope'" in result.stderr
    finally:
        system.stop()
