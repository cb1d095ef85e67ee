"""Scale-out: every service on a 3-node NATS cluster with JetStream replicas 3. The node that
leads the VM registry is killed mid-run: status still answers, new demand still boots VMs,
and no KV state (registry, enabled flags) is lost."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import nats
import pytest

from bus import subjects
from tests.demo import ROOT, site_toml
from tests.natscluster import NatsCluster
from tests.system import System

pytestmark = pytest.mark.e2e

CLOUD = "container-cloud"
TABLES = """[nats]
url = "{url}"
replicas = 3
[[cloud]]
name = "spare"
provider = "libvirt"
uri = "test:///default"
base_image = "worker.qcow2"
enabled = true
"""


async def _stream_clusters(url: str) -> dict[str, tuple[str, int]]:
    """stream -> (leader node, replicas) for every stream of ours."""
    nc = await nats.connect(url.split(","))
    try:
        js = nc.jetstream()
        out = {}
        for stream in await js.streams_info():
            assert stream.config.name is not None and stream.cluster is not None
            out[stream.config.name] = (stream.cluster.leader or "", stream.config.num_replicas
                                       or 1)
        return out
    finally:
        await nc.close()


def registry(doc: dict[str, Any]) -> dict[str, str]:
    """VM name -> intent id of the running VMs in a status document."""
    return {vm["name"]: vm["intent_id"] for vm in doc["vms"] if vm["state"] == "running"}


def test_services_survive_losing_a_nats_node(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path / "cluster")
    cluster.workdir.mkdir()
    cluster.start()
    queue = tmp_path / "queue.txt"
    demo = (ROOT / "examples" / "demo-queue.txt").read_text()
    queue.write_text(demo)
    config = tmp_path / "cs.toml"
    config.write_text(site_toml("cluster", TABLES.format(url=cluster.url)))
    system = System(tmp_path, config, cluster.url)
    system.start()
    try:
        before = system.wait_for("8 running VMs", lambda d: len(registry(d)) == 8, timeout=90)
        system.cs("cloud", "disable", "spare")
        streams = asyncio.run(_stream_clusters(cluster.url))
        vms_stream = f"KV_{subjects.VMS_BUCKET}"
        assert {name: r for name, (_, r) in streams.items()} == {
            name: 3 for name in streams}, streams
        assert {vms_stream, f"KV_{subjects.CLOUDS_BUCKET}", subjects.INTENT_STREAM} <= set(
            streams)

        # Kill the node that leads the VM registry's stream, as a crash would.
        victim = streams[vms_stream][0]
        cluster.kill(victim)

        # State survived: same VMs with the same intents, the disabled flag kept.
        doc = system.wait_for("status after the node loss",
                              lambda d: registry(d) == registry(before), timeout=60)
        flags = {c["name"]: c["enabled"] for c in doc["clouds"]}
        assert flags == {CLOUD: True, "spare": False}
        # Boots go on: three more jobs, three more VMs, on the cloud that is enabled.
        first = demo.split("\n\n")[0]
        queue.write_text(demo + "\n" + "\n\n".join(
            first.replace("ProcId = 0", f"ProcId = {200 + n}") for n in range(3)) + "\n")
        doc = system.wait_for("11 running VMs", lambda d: len(registry(d)) == 11, timeout=90)
        assert set(registry(before).items()) <= set(registry(doc).items())
        assert {vm["cloud"] for vm in doc["vms"]} == {CLOUD}
        shown = json.loads(system.cs("cloud", "show", CLOUD, "--json").stdout)
        assert sorted(i["name"] for i in shown["instances"]) == sorted(registry(doc))
        # A new leader took over, and the admin role still writes.
        streams = asyncio.run(_stream_clusters(cluster.url))
        assert streams[vms_stream][0] not in ("", victim)
        assert "disabled" in system.cs("cloud", "disable", CLOUD).stdout
    finally:
        try:
            if system.procs:
                system.stop()
        finally:
            cluster.stop()
