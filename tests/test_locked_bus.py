"""A locked-down bus: `cs config nats-users` makes one NATS user per service with allow lists
(bus/permissions.py); every service runs under its own user and the demo still boots its VMs
with no permission error anywhere, while a provisioner's credentials can neither enable a cloud
nor kill a VM (through the admin API, the cloud bucket or the intent stream), the viewer can
only look, and no password shows up in any log or output."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest

from bus import subjects
from bus.connection import Bus
from bus.errors import AdminError
from bus.schemas import CloudRecord, Intent, VmKillReply, VmKillRequest, VmSpec
from cli.supervisor import SERVICES
from tests.demo import ROOT, free_port, site_toml
from tests.natsserver import NatsServer
from tests.system import System
from tests.waiting import eventually_async

pytestmark = pytest.mark.e2e

CLOUD = "container-cloud"


def env_url(creds: Path, user: str) -> str:
    return (creds / f"{user}.env").read_text().strip().removeprefix("CS_NATS_URL=")


def cs_as(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, CS_NATS_URL=url))


async def _provisioner_tries_the_back_doors(url: str, victim: str) -> tuple[str, str]:
    """With a provisioner's credentials: enable-by-KV-write of the cloud bucket and a kill
    intent published straight onto the intent stream. Both must fail; their errors."""
    bus = await Bus.connect(url, "intruder", wait_s=10)
    errors = []
    try:
        disabled = CloudRecord(name=CLOUD, provider="libvirt", enabled=False, max_vms=0)
        try:
            await asyncio.wait_for(bus.kv(subjects.CLOUDS_BUCKET, CloudRecord).put(
                CLOUD, disabled), 10)
            errors.append("")
        except Exception as exc:
            errors.append(repr(exc))
        try:
            await asyncio.wait_for(bus.js_publish(subjects.intent(CLOUD), Intent(
                intent_id="intruder", action="kill", cloud=CLOUD, vm_id=victim,
                spec=VmSpec(vm_type="x"), created_at=time.time(), reason="intruder")), 10)
            errors.append("")
        except Exception as exc:
            errors.append(repr(exc))
        with pytest.raises(AdminError, match=r"permission denied on cs\.admin\.vm-kill"):
            await bus.request(subjects.admin_endpoint(subjects.ADMIN_VM_KILL),
                              VmKillRequest(vm_ids=(victim,)), VmKillReply, timeout=3)
    finally:
        await bus.close()
    return errors[0], errors[1]


async def _intents_settled(url: str) -> None:
    """Wait until the cloud's intent consumer holds nothing undelivered or unacked."""
    bus = await Bus.connect(url, "checker", wait_s=10)
    try:
        async def settled() -> bool:
            backlog = await bus.intent_backlog("libvirt", CLOUD)
            return backlog is not None and backlog.pending == backlog.unacked == 0
        await eventually_async("the provisioner to settle every intent", settled, timeout=60)
    finally:
        await bus.close()


def test_each_service_only_what_it_needs(tmp_path: Path) -> None:
    port = free_port()
    creds = tmp_path / "creds"
    made = cs_as("nats://127.0.0.1:1", "config", "nats-users", str(creds), "--url",
                 f"nats://127.0.0.1:{port}")
    assert made.returncode == 0, made.stderr
    assert {p.name for p in creds.iterdir()} == {
        "auth.conf", "cs-admin.env", "cs-planner.env", "cs-poller.env",
        "cs-provisioner-libvirt.env", "cs-provisioner-openstack.env",
        "cs-provisioner-slurm.env", "operator.env", "viewer.env"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in creds.iterdir())
    again = cs_as("nats://127.0.0.1:1", "config", "nats-users", str(creds))
    assert again.returncode == 1 and "pass --force" in again.stderr
    # nats-server's config holds bcrypt hashes, no password; each hash is of its user's.
    auth = (creds / "auth.conf").read_text()
    hashes = {u["user"]: u["password"] for u in map(json.loads, (
        line.strip() for line in auth.splitlines() if line.strip().startswith("{")))}
    assert len(hashes) == len(SERVICES) + 2  # every service, the operator and the viewer
    for user, digest in hashes.items():
        password = env_url(creds, user).rsplit("@", 1)[0].rsplit(":", 1)[1]
        assert password not in auth
        assert digest.startswith("$2a$11$") and bcrypt.checkpw(password.encode(),
                                                                digest.encode())

    server_conf = tmp_path / "nats.conf"
    server_conf.write_text('include "creds/auth.conf"\n')
    nats = NatsServer(tmp_path / "nats", config=server_conf)
    nats.port = port
    nats.start()
    (tmp_path / "queue.txt").write_text((ROOT / "examples" / "demo-queue.txt").read_text())
    config = tmp_path / "cs.toml"
    config.write_text(site_toml("locked"))
    services = {name: env_url(creds, name) for name in SERVICES}
    operator = env_url(creds, "operator")
    system = System(tmp_path, config, operator, service_urls=services)
    system.start()
    try:
        doc = system.wait_for("8 running VMs", lambda d: sum(
            vm["state"] == "running" for vm in d["vms"]) == 8)
        victim = doc["vms"][0]["name"]
        provisioner = services["cs-provisioner-libvirt"]

        # Through the admin API: refused by the server, said in one line.
        for args in (("cloud", "disable", CLOUD), ("vm", "kill", victim)):
            refused = cs_as(provisioner, *args)
            assert refused.returncode == 1, refused.stdout
            assert "permission denied on cs.admin." in refused.stderr
        # Around it: the cloud bucket and the intent stream are not the provisioner's either.
        kv_error, intent_error = asyncio.run(_provisioner_tries_the_back_doors(
            provisioner, victim))
        assert kv_error and intent_error, (kv_error, intent_error)

        # The viewer sees, and cannot change.
        viewer = env_url(creds, "viewer")
        seen = json.loads(cs_as(viewer, "status", "--json").stdout)
        assert sorted(v["name"] for v in seen["vms"]) == sorted(v["name"] for v in doc["vms"])
        assert "permission denied" in cs_as(viewer, "cloud", "disable", CLOUD).stderr

        # A service given the wrong credentials (a poller with the provisioner's): the
        # server's refusals arrive asynchronously; the service reports them and `cs status`
        # shows them against it.
        (tmp_path / "misconfigured").mkdir()
        wrong = subprocess.Popen(
            [sys.executable, "-m", "services.poller"], env=dict(
                system.env, CS_NATS_URL=provisioner, CS_CONFIG=str(config)),
            stdout=(tmp_path / "misconfigured" / "poller.log").open("ab"),
            stderr=subprocess.STDOUT)
        try:
            doc = system.wait_for("the misconfigured poller's problems in status", lambda d: any(
                s["service"] == "cs-poller" and s["pid"] == wrong.pid and any(
                    'permissions violation for publish to "cs.demand"' in p
                    for p in s["problems"]) for s in d["services"]))
            shown = system.cs("status").stdout
            assert "Services" in shown and "permissions" in shown  # (the cell wraps)
            healthy = [s for s in doc["services"] if s["pid"] != wrong.pid]
            assert sorted(s["service"] for s in healthy) == sorted(services)
            assert not [s for s in healthy if s["problems"]]
        finally:
            wrong.terminate()
            wrong.wait(15)

        # Proof the provisioner got past where it would have acted: every intent published
        # until now delivered and settled (an intruder's would have been among them).
        asyncio.run(_intents_settled(provisioner))
        after = system.status()
        assert {c["name"]: c["enabled"] for c in after["clouds"]} == {CLOUD: True}
        assert victim in {v["name"] for v in after["vms"] if v["state"] == "running"}
        # The operator may: the same kill goes through, and every other command works.
        assert "killed 1 VM(s)" in system.cs("vm", "kill", victim).stdout
        other = next(v["name"] for v in after["vms"] if v["name"] != victim)
        assert system.cs("vm", "drain", other).returncode == 0
        assert system.cs("config", "reload").returncode == 0
        traced = system.cs("trace", "--count", "30").stdout
        assert traced.count("\n") == 30
        assert {s["name"] for s in json.loads(system.cs("services", "--json").stdout)} == {
            "cs-admin", "cs-provisioner-libvirt"}  # no OpenStack cloud here
        assert json.loads(system.cs("cloud", "show", CLOUD, "--json").stdout)["instances"]
        outputs = json.dumps(system.status()) + system.cs("vm", "list").stdout + traced
    finally:
        try:
            system.stop()
        finally:
            nats.stop()
    logs = {p.name: p.read_text(errors="replace") for p in tmp_path.glob("*.log")}
    # Every service did its work within its allow list: no violation anywhere.
    for name, text in logs.items():
        assert "permission denied" not in text, f"{name}: {text[-2000:]}"
    passwords = [url.split(":")[2].split("@")[0] for url in (*services.values(), operator)]
    for text in [*logs.values(), outputs, made.stdout]:
        assert not [p for p in passwords if p in text]
