"""Tracing with tools we did not write: a boot followed end to end on the official JavaScript
NATS client (what `nats sub` shows: subjects and readable headers), and `cs trace` following
the same boot in one line per message (`--changes`, `--trace ID`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.demo import ROOT, site_toml
from tests.natsserver import NatsServer
from tests.system import System

pytestmark = pytest.mark.e2e

CLOUD = "container-cloud"
NATS_JS = ROOT / ".cache" / "nats-js-3.4.0"


def blocks(text: str) -> list[tuple[str, dict[str, str]]]:
    """The messages a `nats sub` style output shows: subject and headers of each."""
    out = []
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        head = re.match(r'\[#\d+\] Received on "(.+)"', lines[0]) if lines else None
        if head:
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            out.append((head.group(1), headers))
    return out


def wait_for_line(path: Path, line: str, timeout: float = 30) -> None:
    """Wait until a listener's output holds `line` (it is subscribed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in path.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{path.name} never said {line!r}: {path.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[System, Path, Path]]:
    """The demo booting its 8 VMs with two listeners started before it: the JavaScript
    client's `nats-sub` and `cs trace --changes`; their outputs once all 8 run."""
    if not (NATS_JS / "node_modules").is_dir():
        raise AssertionError(f"no JavaScript NATS client in {NATS_JS}: run scripts/nats-js.sh")
    shutil.copy(ROOT / "tests" / "js" / "nats-sub.mjs", NATS_JS)
    tmp_path = tmp_path_factory.mktemp("traced")
    nats = NatsServer(tmp_path / "nats")
    nats.start()
    shutil.copy(ROOT / "examples" / "demo-queue.txt", tmp_path / "queue.txt")
    config = tmp_path / "cs.toml"
    config.write_text(site_toml("traced"))
    system = System(tmp_path, config, nats.url)
    js_out, cs_out = tmp_path / "nats-sub.txt", tmp_path / "cs-trace.txt"
    listeners = []
    try:
        with js_out.open("w") as js_file, cs_out.open("w") as cs_file:
            listeners.append(subprocess.Popen(
                ["node", str(NATS_JS / "nats-sub.mjs"), nats.url, "cs.>"], stdout=js_file,
                stderr=subprocess.STDOUT))
            listeners.append(subprocess.Popen(
                [sys.executable, "-m", "cli.main", "trace", "--changes"],
                stdout=cs_file, stderr=subprocess.STDOUT, env=system.env))
            wait_for_line(js_out, "Subscribing on cs.>")
            system.start()
            system.wait_for("8 running VMs", lambda d: sum(
                v["state"] == "running" for v in d["vms"]) == 8)
            yield system, js_out, cs_out
    finally:
        for proc in listeners:
            proc.terminate()
            proc.wait(10)
        try:
            system.stop()
        finally:
            nats.stop()



def test_a_boot_reads_end_to_end_in_another_clients_nats_sub(
    traced: tuple[System, Path, Path],
) -> None:
    system, js_out, _ = traced
    seen = blocks(js_out.read_text())
    assert seen, js_out.read_text()[:2000]
    # Every message says what it is in words: type, schema, summary.
    for subject, headers in seen:
        assert {"Cs-Type", "Cs-Schema", "Cs-Summary"} <= set(headers), (subject, headers)
        assert headers["Cs-Summary"].isprintable() and "\\x" not in headers["Cs-Summary"]
    intents = [(s, h) for s, h in seen if s == f"cs.intent.{CLOUD}"]
    assert len(intents) == 8
    trace = intents[0][1]["Cs-Trace"]
    vm = re.match(r"boot (\S+) on container-cloud as ", intents[0][1]["Cs-Summary"])
    assert vm, intents[0]
    # The same trace id from the demand change to the VM running.
    story = [(s, h["Cs-Summary"]) for s, h in seen if h.get("Cs-Trace") == trace]
    assert ("cs.demand", "demand 2 classes, 8 idle, 0 running, 1 rejected") in story
    assert any(s == "cs.plan" and " boot " in summary for s, summary in story), story[:5]
    assert (f"cs.vm.{CLOUD}.{vm.group(1)}", f"{vm.group(1)} on {CLOUD} running") in story
    assert {s for s, _ in story} >= {"cs.demand", "cs.pool", "cs.plan",
                                     f"cs.intent.{CLOUD}", f"cs.vm.{CLOUD}.{vm.group(1)}"}
    # The bodies stay msgpack for the services; `cs decode` makes one readable.
    assert "Cs-Encoding" not in intents[0][1]
    running = [v["name"] for v in system.status()["vms"] if v["state"] == "running"]
    assert vm.group(1) in running


def test_cs_trace_is_one_line_a_message_and_follows_one_trace(
    traced: tuple[System, Path, Path],
) -> None:
    system, _, cs_out = traced
    lines = cs_out.read_text().splitlines()
    boots = [line for line in lines if f" cs.intent.{CLOUD} " in line]
    assert len(boots) == 8, lines[:40]
    stamp, subject, kind, trace, *summary = boots[0].split()
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", stamp)
    assert (subject, kind, summary[0]) == (f"cs.intent.{CLOUD}", "Intent", "boot")
    # --changes: the demand of one trace is shown once, not every half second.
    demand = [line for line in lines if " cs.demand " in line and f" {trace} " in line]
    assert len(demand) == 1, demand
    mine = [line for line in lines if f" {trace} " in line]
    assert [line.split()[1] for line in mine][:2] == ["cs.demand", "cs.pool"]
    assert sum(" running" in line and " cs.vm." in line for line in mine) == 8
    # --trace ID: only that trace, and the repeats of its snapshot and report dropped.
    followed = system.cs("trace", "--trace", trace, "--count", "2").stdout.splitlines()
    assert len(followed) == 2 and all(f" {trace} " in line for line in followed)
    assert {line.split()[1] for line in followed} <= {"cs.demand", "cs.pool", "cs.plan"}
    assert len({line.split()[1] for line in followed}) == 2
    # --json: the whole message, for machines.
    doc = system.cs("trace", "--json", "--count", "1", "--subject", "cs.demand").stdout
    assert '"Cs-Summary": "demand 2 classes, 8 idle, 0 running, 1 rejected"' in doc


def test_cs_decode_reads_a_body_fetched_by_another_tool(
    traced: tuple[System, Path, Path],
) -> None:
    """A KV value as any client fetches it (raw bytes, no headers) through `cs decode`."""
    system, _, _ = traced
    vm = next(v for v in system.status()["vms"] if v["state"] == "running")
    key = f"{vm['cloud']}.{vm['name']}"
    got = subprocess.run(
        [sys.executable, "-c", (
            "import asyncio, sys, nats\n"
            "async def main():\n"
            f"    nc = await nats.connect({system.nats_url!r})\n"
            "    kv = await nc.jetstream().key_value('cs-vms')\n"
            f"    sys.stdout.buffer.write((await kv.get({key!r})).value)\n"
            "    await nc.close()\n"
            "asyncio.run(main())")], capture_output=True, check=True, timeout=60)
    decoded = subprocess.run(
        [sys.executable, "-m", "cli.main", "decode", "--type", "VmRecord"],
        input=got.stdout, capture_output=True, timeout=60, env=dict(os.environ))
    assert decoded.returncode == 0, decoded.stderr
    assert b'"state": "running"' in decoded.stdout and vm["name"].encode() in decoded.stdout
