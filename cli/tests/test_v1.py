"""v1's cloud_status shapes for a fixed state, against golden files written from v1's format
strings (hep-gc/cloud-scheduler, dev: info_server.py, cluster_tools.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bus.schemas import CloudStatus, StatusReply, VmRecord, VmSpec
from cli import v1
from cli.v1_commands import admin_main, status_main

GOLDEN = Path(__file__).parent / "golden"


def _vm(n: int, cloud: str, state: str, vm_type: str = "cloudscheduler-worker") -> VmRecord:
    return VmRecord(vm_id=f"cs-demo-{cloud}-99b0f1-{n}", cloud=cloud, intent_id=f"i{n}",
                    class_key="99b0f1", spec=VmSpec(vm_type=vm_type, image="w.qcow2", cores=1,
                                                    memory_mb=2048),
                    state=state, created_at=100.0 + n, updated_at=100.0 + n)  # type: ignore[arg-type]


STATE = StatusReply(
    clouds=(
        CloudStatus(name="cc-west", provider="openstack", enabled=False, max_vms=20,
                    address="cc-west", priority=1),
        CloudStatus(name="container-cloud", provider="libvirt", enabled=True, max_vms=10,
                    address="qemu:///system", max_memory_mb=16000, memory_mb_used=6144,
                    cores_used=3),
    ),
    vms=(_vm(0, "container-cloud", "running"), _vm(1, "container-cloud", "booting"),
         _vm(2, "container-cloud", "retiring")),
)


@pytest.mark.parametrize(("name", "render"), [
    ("cloud_status.txt", lambda: v1.clusters(STATE)),
    ("cloud_status-c.txt", lambda: v1.cluster_info(STATE, "container-cloud")),
    ("cloud_status-m.txt", lambda: v1.vms(STATE) + "\n"),
    ("cloud_status-j.json", lambda: json.dumps(v1.pool_json(STATE), indent=1) + "\n"),
])
def test_v1_shapes_match_the_golden_files(name: str, render: Callable[[], str]) -> None:
    assert render() == (GOLDEN / name).read_text()


def test_the_cluster_block_lines_up_in_v1s_columns() -> None:
    lines = v1.cluster_short(STATE, STATE.clouds[1]).splitlines()
    assert lines[0] == "Cluster: container-cloud "
    header, row = lines[1], lines[2]
    for column in ("CLOUD TYPE", "VM SLOTS", "MEMORY", "STORAGE", "PRIORITY", "ENABLED"):
        start = header.index(column)
        assert row[start - 1] == " " and row[start] != " "  # each value starts under its title
    assert "localhost" in row and " 8 " in row and "9856" in row and "True" in row


def test_unsupported_flags_say_what_to_use_instead(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        status_main(["-z"])
    assert info.value.code == 2
    assert "boot failures show as cloud health in `cs status`" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        admin_main(["-q"])
    assert "stopping the scheduler never kills VMs" in capsys.readouterr().err
    assert admin_main(["-k", "-c", "c1"]) == 2
    assert "-k needs -c CLOUD and one of -n ID, -a, -b NUM" in capsys.readouterr().err
