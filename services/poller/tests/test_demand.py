"""Demand from real ClassAd text (condor_q -long and -json), with v1 attribute semantics."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bus.errors import ConfigError
from services.poller import classads
from services.poller.classads import iter_dump, parse_dump, read_dump
from services.poller.demand import (
    MAX_REJECTED_LISTED,
    PROJECTION,
    BadAttribute,
    JobDefaults,
    build_demand,
    class_key,
    parse_cloud_map,
    parse_job,
)

ROOT = Path(__file__).resolve().parents[3]


def long_ad(**attrs: str) -> str:
    base = {"ClusterId": "7", "ProcId": "0", "Owner": '"alice"', "JobStatus": "1",
            "Requirements": '(VMType =?= "worker") && (Arch == "X86_64")'}
    base.update(attrs)
    return "\n".join(f"{k} = {v}" for k, v in base.items() if v) + "\n"


def test_demo_queue_groups_into_classes_and_rejects_the_bad_job() -> None:
    snap = build_demand(read_dump(ROOT / "examples" / "demo-queue.txt"), "demo", 1.0)
    by_type = {c.vm_type: c for c in snap.classes}
    assert set(by_type) == {"cloudscheduler-worker", "big-worker"}
    worker = by_type["cloudscheduler-worker"]
    assert (worker.idle, worker.users, worker.memory_mb, worker.target_clouds) == (
        6, {"alice": 4, "bob": 2}, 2048, ("container-cloud",))
    assert worker.image == {"container-cloud": "centos7-condor.qcow2"}
    big = by_type["big-worker"]
    assert (big.cores, big.memory_mb, big.keep_alive_min, big.flavor) == (
        4, 8192, 30, {"cc-west": "c8-30gb"})
    assert [(r.job, r.reason) for r in snap.rejected] == [
        ("104.0", "VMMem: expected an integer, got 'lots'")]


def test_vmtype_comes_from_requirements_before_the_attribute() -> None:
    [ad] = parse_dump(long_ad(VMType='"from-attr"'), "t")
    assert parse_job(ad).shape.vm_type == "worker"
    [ad] = parse_dump(long_ad(Requirements='Arch == "X86_64"', VMType='"from-attr"'), "t")
    assert parse_job(ad).shape.vm_type == "from-attr"
    [ad] = parse_dump(long_ad(Requirements='Arch == "X86_64"'), "t")
    assert parse_job(ad).shape.vm_type == "default"


def test_attribute_names_are_case_insensitive_as_in_classads() -> None:
    [ad] = parse_dump(long_ad(vmmem="4096", requestcpus="3", owner='"carol"'), "t",
                      PROJECTION)
    need = parse_job(ad)
    assert (need.shape.memory_mb, need.shape.cores, need.owner) == (4096, 3, "carol")


def test_a_repeated_attribute_is_not_a_parse_error() -> None:
    [ad] = parse_dump(long_ad() + "VMMem = 1024\nVMMem = 2048\n", "t")
    assert parse_job(ad).shape.memory_mb == 2048


def test_request_attributes_are_the_fallback() -> None:
    [ad] = parse_dump(long_ad(RequestCpus="4", RequestMemory="3000",
                              RequestDisk="5242880"), "t")
    need = parse_job(ad)
    assert (need.shape.cores, need.shape.memory_mb, need.shape.disk_gb) == (4, 3000, 5)
    [ad] = parse_dump(long_ad(RequestCpus="4", VMCPUCores="2", VMMem="1024",
                              VMStorage="10"), "t")
    need = parse_job(ad)
    assert (need.shape.cores, need.shape.memory_mb, need.shape.disk_gb) == (2, 1024, 10)
    [ad] = parse_dump(long_ad(), "t")
    need = parse_job(ad)
    assert (need.shape.cores, need.shape.memory_mb, need.shape.disk_gb) == (1, 512, 0)


def test_quoted_numbers_are_read_as_v1_read_them() -> None:
    """v1 took `int(job.VMMem)`, so job files quote numbers (`+VMMem = "4096"`)."""
    [ad] = parse_dump(long_ad(VMMem='"4096"', VMCPUCores='" 2 "', VMStorage='"20"',
                              VMKeepAlive='"30"', VMHighPriority='"1"'), "t")
    need = parse_job(ad)
    assert (need.shape.memory_mb, need.shape.cores, need.shape.disk_gb, need.shape.keep_alive_min,
            need.high_priority) == (4096, 2, 20, 30, True)
    [ad] = parse_dump(long_ad(RequestMemory='"3000"'), "t")
    assert parse_job(ad).shape.memory_mb == 3000


SUBMIT_DEFAULTS = {
    "RequestMemory": "ifthenelse(MemoryUsage =!= undefined,MemoryUsage,(ImageSize + 1023) / 1024)",
    "RequestDisk": "DiskUsage", "ImageSize": "1", "DiskUsage": "1", "RequestCpus": "1"}
"""What condor_submit writes into a job that asks for no memory and no disk (HTCondor 23.9,
as `condor_q -long` shows it: RequestMemory is 1 for a job that never ran)."""


@pytest.mark.parametrize("form", ["long", "json"])
def test_a_job_that_asks_for_nothing_gets_the_sites_defaults_not_1_mb(form: str) -> None:
    text = long_ad(**SUBMIT_DEFAULTS)
    if form == "json":
        text = json.dumps([{k: (int(v) if v.isdigit() else v.strip('"') if v.startswith('"')
                                else f"/Expr({v})/") for k, v in (
            line.split(" = ", 1) for line in text.splitlines())}])
    [ad] = parse_dump(text, "t", PROJECTION)
    assert "RequestMemory" not in ad and "RequestDisk" not in ad and ad["RequestCpus"] == 1
    need = parse_job(ad)
    assert (need.shape.cores, need.shape.memory_mb, need.shape.disk_gb) == (1, 512, 0)
    site = JobDefaults(cores=2, memory_mb=2048, disk_gb=10)
    need = parse_job(ad, site)
    # RequestCpus = 1
    assert (need.shape.cores, need.shape.memory_mb, need.shape.disk_gb) == (1, 2048, 10)
    [snap] = [build_demand([ad], "t", 0.0, defaults=site)]
    assert snap.classes[0].memory_mb == 2048


def test_a_request_the_job_gave_is_honoured_literal_or_constant() -> None:
    [ad] = parse_dump(long_ad(**{**SUBMIT_DEFAULTS, "RequestMemory": "3000",
                                 "RequestDisk": "2 * 1048576"}), "t", PROJECTION)
    need = parse_job(ad, JobDefaults(memory_mb=9999, disk_gb=99))
    assert (need.shape.memory_mb, need.shape.disk_gb) == (3000, 2)


@pytest.mark.parametrize(("attrs", "need"), [
    ({"VMMem": "MY.MemoryNeeded"}, (1, 512, 0)),
    ({"VMCPUCores": "MY.CoresNeeded"}, (1, 512, 0)),
    ({"VMMem": "undefined", "VMStorage": "UNDEFINED"}, (1, 512, 0)),
    ({"VMMem": "MY.MemoryNeeded", "RequestMemory": "1500"}, (1, 1500, 0)),
])
def test_undefined_is_as_if_the_job_had_not_said(attrs: dict[str, str],
                                                 need: tuple[int, int, int]) -> None:
    """Not 2 MB and 2 cores: classad2's UNDEFINED is an int (2) to Python."""
    [ad] = parse_dump(long_ad(**attrs), "t", PROJECTION)
    got = parse_job(ad)
    assert (got.shape.cores, got.shape.memory_mb, got.shape.disk_gb) == need
    assert all(type(v) in (int, str, bool, float) for v in ad.values()), ad


@pytest.mark.parametrize("attr", ["VMStorage", "VMMem", "VMType", "TargetClouds",
                                  "RequestMemory"])
def test_error_rejects_the_job_naming_the_attribute(attr: str) -> None:
    [ad] = parse_dump(long_ad(**{attr: "ERROR"}), "t", PROJECTION)
    with pytest.raises(BadAttribute, match=f"^{attr}: its expression evaluates to ERROR$"):
        parse_job(ad)
    [ad] = parse_dump(long_ad(**{attr: '"a" + 1'}), "t", PROJECTION)  # ERROR, evaluated
    snap = build_demand([ad], "t", 0.0)
    assert snap.classes == () and snap.rejected[0].reason.startswith(f"{attr}: ")


def test_running_jobs_count_where_they_run_on_our_vms() -> None:
    ads = [parse_dump(long_ad(JobStatus="2", ProcId=str(n), RemoteHost=f'"{slot}"'), "t",
                      PROJECTION)[0]
           for n, slot in enumerate(["slot1_1@vm-a.novalocal", "slot1@static.example.org",
                                     "slot1_2@vm-a.novalocal"])]
    [cls] = build_demand(ads, "t", 0.0, our_hosts=frozenset({"vm-a.novalocal"})).classes
    assert (cls.running, cls.running_elsewhere) == (2, 1)
    [cls] = build_demand(ads, "t", 0.0, our_hosts=frozenset()).classes  # no VM of ours
    assert (cls.running, cls.running_elsewhere) == (0, 3)
    [cls] = build_demand(ads, "t", 0.0).classes  # the pool unseen: every one counts
    assert (cls.running, cls.running_elsewhere) == (3, 0)


def test_v1_attributes_not_acted_on_are_named_once_per_class() -> None:
    ads = [parse_dump(long_ad(ProcId=str(n), **extra), "t", PROJECTION)[0] for n, extra in
           enumerate([{"VMAMIConfig": '"http://x/a.yaml:cloud-config"', "VMJobPerCore": "true"},
                      {"VMAMIConfig": '"http://x/b.yaml:cloud-config"'}, {}])]
    [cls] = build_demand(ads, "t", 0.0).classes  # one VM wanted: one class, not three
    assert cls.idle == 3
    assert cls.notes == (
        "VMAMIConfig is not supported: user-data comes from the cloud's user_data template",
        "VMJobPerCore is not supported: a VM runs one partitionable slot of all its cores")


def test_v1_flags_network_and_price() -> None:
    [ad] = parse_dump(long_ad(VMHighPriority="2", VMNetwork='" private-net "',
                              VMMaximumPrice='"0.25"'), "t")
    need = parse_job(ad)
    assert (need.high_priority, need.shape.network, need.max_price) == (
        True, {"": "private-net"}, 0.25)
    [ad] = parse_dump(long_ad(VMHighPriority="0"), "t")
    assert parse_job(ad).high_priority is False


def test_keypair_security_groups_and_network_per_cloud_reach_the_class() -> None:
    """v1's VMKeyName and VMSecurityGroup (job_management.py, dev e1673dd, 206-207:
    `splitnstrip(',', VMSecurityGroup)`), and VMNetwork per cloud like VMAMI."""
    [ad] = parse_dump(long_ad(VMKeyName='"mykey"', VMSecurityGroup='"default, condor,default"',
                              VMNetwork='"CC-West:west-net,otter-net"'), "t")
    [cls] = build_demand([ad], "t", 0.0).classes
    assert (cls.key_name, cls.security_groups) == ({"": "mykey"}, ("default", "condor"))
    assert cls.spec_for("cc-west").network == "west-net"
    assert cls.spec_for("otter").network == "otter-net"
    assert cls.notes == ()  # no longer "not supported"


def test_a_class_keeps_its_key_across_the_upgrade() -> None:
    """A class's key names its VMs in the registry: a job that sets none of the attributes
    read since VmShape keeps the key it had (computed here as it was), so an upgrade does not
    orphan the VMs serving it; one that sets them gets a key of its own."""
    [ad] = parse_dump(long_ad(VMAMI='"cc-west:a.img,b.img"', VMNetwork='"net0"',
                              TargetClouds='"cc-west"', VMMem="2048"), "t")
    need = parse_job(ad)
    before = ("worker", (("", "b.img"), ("cc-west", "a.img")), (), 1, 2048, 0, ("cc-west",),
              0, False, "net0", 0.0)
    assert need.shape.vm_type == "worker"
    assert class_key(need) == hashlib.sha1(repr(before).encode()).hexdigest()[:10]
    [keyed] = parse_dump(long_ad(VMAMI='"cc-west:a.img,b.img"', VMNetwork='"net0"',
                                 TargetClouds='"cc-west"', VMMem="2048",
                                 VMKeyName='"k"'), "t")
    assert class_key(parse_job(keyed)) != class_key(need)


def test_v1_resources_from_requirements_when_nothing_else_says() -> None:
    req = ('(VMType =?= "worker") && (TARGET.Memory >= 3000) && (Cpus >= 2) && '
           "(Disk >= 5000000)")
    [ad] = parse_dump(long_ad(Requirements=req), "t")
    need = parse_job(ad)
    assert (need.shape.cores, need.shape.memory_mb, need.shape.disk_gb) == (2, 3000, 5)
    [ad] = parse_dump(long_ad(Requirements=req, RequestMemory="1000"), "t")
    assert parse_job(ad).shape.memory_mb == 1000  # RequestMemory comes first


def test_expressions_in_request_attributes_are_evaluated() -> None:
    [ad] = parse_dump(long_ad(RequestMemory="1024 * 2"), "t")
    assert parse_job(ad).shape.memory_mb == 2048


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"VMCPUCores": "0"}, "VMCPUCores: must be at least 1"),
        ({"VMMem": "0"}, "VMMem: must be at least 1, got 0"),
        ({"VMMem": '"0"'}, "VMMem: must be at least 1, got 0"),
        ({"VMMem": "-512"}, "VMMem: must be at least 1"),
        ({"RequestMemory": "0"}, "RequestMemory: must be at least 1"),
        ({"VMStorage": "-1"}, "VMStorage: must be at least 0"),
        ({"VMMem": '"4096MB"'}, "VMMem: expected an integer, got '4096MB'"),
        ({"VMMem": "true"}, "VMMem: expected an integer"),
        ({"VMAMI": '"c1:,c2:x"'}, "VMAMI: empty value for cloud 'c1'"),
        ({"VMAMI": '"c1:a,c1:b"'}, "VMAMI: cloud 'c1' given twice"),
        ({"VMInstanceType": "5"}, "VMInstanceType: expected a string"),
        ({"VMKeepAlive": '"soon"'}, "VMKeepAlive: expected an integer"),
        ({"VMHighPriority": '"urgent"'}, "VMHighPriority: expected an integer"),
        ({"VMMaximumPrice": '"cheap"'}, "VMMaximumPrice: expected a number"),
        ({"VMMaximumPrice": "-1"}, "VMMaximumPrice: expected a number of at least 0"),
        ({"VMNetwork": "12"}, "VMNetwork: expected a string like 'cloud:value,...', got 12"),
        ({"VMKeyName": "7"}, "VMKeyName: expected a string like 'cloud:value,...', got 7"),
        ({"VMSecurityGroup": "true"}, "VMSecurityGroup: expected names like 'a,b', got True"),
        ({"TargetClouds": "3"}, "TargetClouds: expected cloud names like 'a,b', got 3"),
        ({"Owner": ""}, "Owner: expected a user name"),
    ],
)
def test_malformed_attributes_are_rejected_with_the_attribute_named(
    attrs: dict[str, str], message: str
) -> None:
    [ad] = parse_dump(long_ad(**attrs), "t")
    with pytest.raises(BadAttribute, match=message):
        parse_job(ad)
    snap = build_demand([ad], "t", 0.0)
    assert snap.classes == () and snap.rejected[0].job == "7.0"


@pytest.mark.parametrize("value", ['"a, b"', '"\'a\', \'b\'"', '{"a","b"}', '{ "b", "a" }',
                                   '" a ,b,a "'])
def test_target_clouds_as_v1_read_them(value: str) -> None:
    """v1 split on commas and stripped spaces and quotes; a ClassAd list reads the same."""
    for form in ("long", "json"):
        text = long_ad(TargetClouds=value)
        if form == "json":
            rows = [{"ClusterId": 7, "ProcId": 0, "Owner": "alice", "JobStatus": 1,
                     "TargetClouds": (["a", "b"] if value.startswith("{") else
                                      json.loads(value))}]
            text = json.dumps(rows)
        [ad] = parse_dump(text, "t", PROJECTION)
        assert parse_job(ad).target_clouds == ("a", "b"), (form, ad)


def test_cloud_maps_are_lowercased_as_v1_did() -> None:
    assert parse_cloud_map("VMAMI", "CC-West:img,Other:x") == (("cc-west", "img"),
                                                             ("other", "x"))
    with pytest.raises(BadAttribute, match="given twice"):
        parse_cloud_map("VMAMI", "CC-West:a,cc-west:b")


def test_cloud_maps() -> None:
    assert parse_cloud_map("VMAMI", "img.qcow2") == (("", "img.qcow2"),)
    assert parse_cloud_map("VMAMI", " a:x , b:y,dflt ") == (("", "dflt"), ("a", "x"), ("b", "y"))
    assert parse_cloud_map("VMAMI", None) == ()
    # A URL is one value for every cloud (or, after `cloud:`, for that one), ports and all.
    assert parse_cloud_map("VMAMI", "http://host:8080/img.gz") == (("", "http://host:8080/img.gz"),)
    assert parse_cloud_map("VMAMI", "https://h/a.img,Otter:http://h/b.img") == (
        ("", "https://h/a.img"), ("otter", "http://h/b.img"))


def test_tab_separated_lines_are_read_even_where_classad2_reads_the_ad() -> None:
    """`Name<TAB>=<TAB>value`: classad2 kept the tab in the name and every attribute of an
    ad with an expression was lost (the job rejected as JobStatus None)."""
    text = "".join(f"{k}\t=\t{v}\n" for k, v in {
        "ClusterId": "7", "ProcId": "0", "Owner": '"alice"', "JobStatus": "1",
        "RequestMemory": "1024 * 2", "Requirements": '(VMType =?= "w")'}.items())
    [ad] = parse_dump(text, "t", PROJECTION)
    need = parse_job(ad)
    assert (need.owner, need.shape.memory_mb, need.shape.vm_type) == ("alice", 2048, "w")


def test_a_long_bad_line_is_shown_cut() -> None:
    with pytest.raises(ConfigError, match=r"line 6: not valid condor_q -long output \(`Name = "
                                          r"value` lines.*'x{80}' \.\.\. \(8001 chars\)$"):
        parse_dump(long_ad() + "x" * 8001 + "\n", "t")


def test_held_and_completed_jobs_are_not_demand() -> None:
    text = "\n".join([long_ad(JobStatus="1"), long_ad(ProcId="1", JobStatus="2"),
                      long_ad(ProcId="2", JobStatus="5"), long_ad(ProcId="3", JobStatus="4")])
    snap = build_demand(parse_dump(text, "t"), "t", 0.0)
    [c] = snap.classes
    assert (c.idle, c.running) == (1, 1)
    assert (snap.jobs_read, snap.not_demand) == (4, 2)


def test_condor_q_json_dump() -> None:
    rows = [{"ClusterId": 9, "ProcId": p, "Owner": "bob", "JobStatus": 1,
             "Requirements": '/Expr((VMType =?= "worker") && (Arch == "X86_64"))/',
             "VMMem": 4096, "TargetClouds": "c1,c2"} for p in range(3)]
    [c] = build_demand(parse_dump(json.dumps(rows), "t"), "t", 0.0).classes
    assert (c.vm_type, c.idle, c.memory_mb, c.target_clouds) == ("worker", 3, 4096, ("c1", "c2"))


def test_condor_q_json_expressions_evaluate_like_the_long_format() -> None:
    row = {"ClusterId": 9, "ProcId": 0, "Owner": "bob", "JobStatus": 1,
           "RequestMemory": "/Expr(ifthenelse(MemoryUsage =!= undefined, MemoryUsage, 2048))/",
           "RequestCpus": "/Expr(1 + 1)/", "Requirements": "/Expr(VMType =?= \"w\")/",
           "Environment": {"nested": True}}
    [ad] = parse_dump(json.dumps([row]), "t")
    need = parse_job(ad)
    assert (need.shape.memory_mb, need.shape.cores, need.shape.vm_type) == (2048, 2, "w")


@pytest.mark.parametrize(
    "text", ["[{]", "[1, 2]", "ClusterId = = 3\n", "A = 1\nB = (\nC = 3\n\nA = 2\n"])
def test_unparseable_dumps_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match=r"dump\.txt: (line \d+: )?not valid condor_q"):
        parse_dump(text, "dump.txt")


def test_rejected_jobs_are_listed_up_to_a_bound_and_all_counted() -> None:
    ads = [{"ClusterId": 1, "ProcId": n, "Owner": "x", "JobStatus": 1, "VMMem": "lots"}
           for n in range(MAX_REJECTED_LISTED + 5)]
    snap = build_demand(ads, "t", 0.0)
    assert len(snap.rejected) == MAX_REJECTED_LISTED
    assert snap.rejected_total == MAX_REJECTED_LISTED + 5


def test_a_dump_file_is_read_as_it_is_used(tmp_path: Path) -> None:
    """Ad by ad: the first ad comes before the bad line of the second is reached (a dump of
    10 million jobs is never whole in memory), and the error names that line."""
    dump = tmp_path / "queue.txt"
    dump.write_text("\n" + long_ad() + "\n" + long_ad(ProcId="1") + "VMMem = (\n")
    ads = iter_dump(dump, PROJECTION)
    assert next(ads)["ProcId"] == 0
    with pytest.raises(ConfigError, match=r"queue\.txt: line 13: not valid condor_q"):
        next(ads)


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_a_jsonl_dump_or_one_object_is_read_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int,
) -> None:
    """`condor_q -jsonl`: an object a line; one bare object (pretty-printed) alike."""
    monkeypatch.setattr(classads, "_CHUNK", chunk)
    rows = [{"ClusterId": 9, "ProcId": p, "Owner": "bob", "JobStatus": 1, "VMMem": 2048}
            for p in range(40)]
    dump = tmp_path / "queue.jsonl"
    dump.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert [ad["ProcId"] for ad in read_dump(dump, PROJECTION)] == list(range(40))
    dump.write_text(json.dumps(rows[0], indent=2))
    assert [ad["VMMem"] for ad in read_dump(dump, PROJECTION)] == [2048]
    dump.write_text(json.dumps(rows[0]) + "\n[1]\n")
    with pytest.raises(ConfigError, match=r"-jsonl \(an object a line\) output: expected an "
                                          r"object at character \d+"):
        read_dump(dump)


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_a_json_dump_is_read_a_chunk_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int,
) -> None:
    monkeypatch.setattr(classads, "_CHUNK", chunk)
    rows = [{"ClusterId": 9, "ProcId": p, "Owner": "bob \u00e9", "JobStatus": 1 + p % 2,
             "Requirements": '/Expr(VMType =?= "w")/', "VMMem": 1024 * (1 + p % 3),
             "Env": {"a": [1, 2]}} for p in range(300)]
    dump = tmp_path / "queue.json"
    dump.write_text("\n  " + json.dumps(rows, indent=1 + chunk % 2) + "\n")
    assert read_dump(dump, PROJECTION) == [
        classads.ad_to_job(classads._json_ad(row, "t", i), PROJECTION)
        for i, row in enumerate(rows)]
    for text, why in [("[{]", "Expecting property name"), ("[1, 2]", "a list of objects"),
                      ('[{"a": 1},]', "Expecting value"), ('[{"a": 1}] x', "text after"),
                      ('[{"a": 1}', "not closed"), ('[{"a": 1} {"b": 2}]', "expected ','"),
                      ("[", "not closed")]:
        dump.write_text(text)
        with pytest.raises(ConfigError, match=rf"queue\.json: not valid condor_q -json \(a "
                           rf"list of objects\) or -jsonl \(an object a line\) output: .*{why}"):
            read_dump(dump)


def test_an_htcondor_7_ad_with_submits_banner_gets_v1s_defaults() -> None:
    """tests/data/htcondor-7.9.0: `condor_submit -verbose` of 2012, its `** Proc` banner
    skipped; no VM attribute and condor_submit's own RequestMemory/RequestDisk expressions:
    v1's defaults (job_management.py 102-119), the literal RequestCpus = 1 alike."""
    ads = read_dump(ROOT / "tests" / "data" / "htcondor-7.9.0" / "condor_submit-verbose.txt")
    assert len(ads) == 1 and ads[0]["Owner"] == "apf"
    [cls] = build_demand(ads, "t", 0.0).classes
    assert (cls.vm_type, cls.idle, cls.cores, cls.memory_mb, cls.disk_gb, cls.users,
            cls.notes) == ("default", 1, 1, 512, 0, {"apf": 1}, ())


def test_banners_between_ads_end_an_ad_and_are_skipped() -> None:
    text = ('** Proc 1.0:\nClusterId = 1\nProcId = 0\nOwner = "a"\nJobStatus = 1\n'
            '** Proc 1.1:\nClusterId = 1\nProcId = 1\nOwner = "b"\nJobStatus = 1\n\n'
            '-- Schedd: s.example : <10.0.0.1:9618>\nClusterId = 2\nProcId = 0\n'
            'Owner = "c"\nJobStatus = 2\n')
    assert [(a["ClusterId"], a["ProcId"], a["Owner"]) for a in parse_dump(text, "t")] == [
        (1, 0, "a"), (1, 1, "b"), (2, 0, "c")]

