"""`cs plan`: the planner's decision for a queue dump, offline, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DEMO = ["--config", str(ROOT / "examples" / "demo.toml")]


def test_plan_json_shows_demand_rejected_and_intents() -> None:
    result = CliRunner().invoke(app, [
        "plan", "--from-queue", str(ROOT / "examples" / "demo-queue.txt"),
        "--from-pool", str(ROOT / "tests" / "data" / "pool.txt"), "--json", *DEMO])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {(c["vm_type"], c["idle"], c["running"]) for c in doc["demand"]} == {
        ("cloudscheduler-worker", 6, 0), ("big-worker", 2, 0)}
    assert {"alice": 4, "bob": 2} in [c["users"] for c in doc["demand"]]
    assert doc["rejected"] == [{"job": "104.0",
                                "reason": "VMMem: expected an integer, got 'lots'"}]
    assert len(doc["pool"]) == 3 and len(doc["pool_problems"]) == 1
    # boots_per_cycle = 5 on the only enabled cloud: 5 intents now, shared fairly between
    # the three users (carol's 2 big-worker jobs get theirs; alice and bob share 3)
    assert [i["action"] for i in doc["intents"]] == ["boot"] * 5
    assert all(i["cloud"] == "container-cloud" for i in doc["intents"])
    by_type = {c["class"]: c["vm_type"] for c in doc["demand"]}
    booted = sorted(by_type[i["class"]] for i in doc["intents"])
    assert booted == ["big-worker"] * 2 + ["cloudscheduler-worker"] * 3
    holds = [d for d in doc["decisions"] if d["kind"] == "hold"]
    assert any(d["count"] == 3 and "container-cloud: boot limit of 5 per cycle reached"
               in d["reason"] for d in holds)


def test_plan_tables_render() -> None:
    result = CliRunner().invoke(app, [
        "plan", "--from-queue", str(ROOT / "examples" / "demo-queue.txt"), *DEMO])
    assert result.exit_code == 0, result.output
    for part in ("Demand", "Rejected jobs (1)", "Intents (5)", "Reasons"):
        assert part in result.stdout


def test_plan_with_a_missing_or_broken_queue_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "plan", "--from-queue", str(tmp_path / "nope.txt"), *DEMO])
    assert result.exit_code == 1
    assert "nope.txt: cannot read queue dump" in result.output
    broken = tmp_path / "q.txt"
    broken.write_text("ClusterId = 1\nOwner = = \"x\"\n")
    result = CliRunner().invoke(app, ["plan", "--from-queue", str(broken), *DEMO])
    assert result.exit_code == 1
    assert "q.txt: line 2: not valid condor_q -long output" in result.output


def test_plan_gives_a_job_that_asks_for_nothing_the_sites_default(tmp_path: Path) -> None:
    """The seed's try.job (its VM lines commented out) as condor_q -long shows it: no VMMem,
    condor_submit's own RequestMemory expression; the VM gets [poller] default_vm_memory_mb,
    not 1 MB."""
    queue = tmp_path / "queue.txt"
    queue.write_text(
        'ClusterId = 1\nProcId = 0\nOwner = "alice"\nJobStatus = 1\nImageSize = 1\n'
        "RequestCpus = 1\nRequestDisk = DiskUsage\nDiskUsage = 1\n"
        "RequestMemory = ifthenelse(MemoryUsage =!= undefined,MemoryUsage,"
        "(ImageSize + 1023) / 1024)\n"
        'Requirements = (VMType =?= "cloudscheduler-worker") && (Arch == "X86_64")\n')
    config = tmp_path / "cs.toml"
    config.write_text((ROOT / "examples" / "demo.toml").read_text().replace(
        "[poller]\n", "[poller]\ndefault_vm_memory_mb = 2048\n", 1))
    result = CliRunner().invoke(app, ["plan", "--from-queue", str(queue), "--json",
                                      "--config", str(config)])
    assert result.exit_code == 0, result.output
    [cls] = json.loads(result.stdout)["demand"]
    assert (cls["memory_mb"], cls["cores"], cls["disk_gb"]) == (2048, 1, 0)


def test_plan_of_a_queue_with_no_demand_says_what_it_read(tmp_path: Path) -> None:
    queue = tmp_path / "held.txt"
    queue.write_text('ClusterId = 1\nProcId = 0\nOwner = "a"\nJobStatus = 5\n\n'
                     'ClusterId = 1\nProcId = 1\nOwner = "a"\nJobStatus = 4\n\n'
                     'ClusterId = 2\nProcId = 0\nOwner = "a"\nJobStatus = 1\nVMMem = "x"\n')
    result = CliRunner().invoke(app, ["plan", "--from-queue", str(queue), *DEMO])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert ("No demand: 3 job(s) read: 2 neither idle nor running (held, completed, "
            "removed), 1 rejected.") in text
    assert "Demand" not in text.split("No demand")[0]


def test_plan_names_the_v1_attributes_it_does_not_act_on(tmp_path: Path) -> None:
    queue = tmp_path / "q.txt"
    queue.write_text('ClusterId = 1\nProcId = 0\nOwner = "a"\nJobStatus = 1\n'
                     'VMInjectCA = true\nVMAMI = "img"\n')
    result = CliRunner().invoke(app, ["plan", "--from-queue", str(queue), "--json", *DEMO])
    assert result.exit_code == 0, result.output
    [cls] = json.loads(result.stdout)["demand"]
    assert cls["notes"] == ["VMInjectCA is not supported: the site CA reaches every VM "
                            "through [worker] ssl_dir"]
    shown = CliRunner().invoke(app, ["plan", "--from-queue", str(queue), *DEMO])
    assert "Not acted on:" in shown.stdout and "VMInjectCA is not supported" in " ".join(
        shown.stdout.split())
