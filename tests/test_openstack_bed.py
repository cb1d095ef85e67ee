"""The OpenStack testbed's readiness check: a service is ready when the process the testbed
started listens on the service's port and answers as that service, not when anything at
all answers there."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.openstack_bed import SOURCE, Testbed, free_ports
from tests.waiting import eventually


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Testbed]:
    testbed = Testbed(home=tmp_path)
    testbed.ports = {"neutron": free_ports(1)[0]}
    (tmp_path / "pids").mkdir()
    yield testbed


def _serve(command: list[str], bed: Testbed, record: bool = True) -> subprocess.Popen[bytes]:
    """`command` in a session of its own, its pid recorded as the testbed's neutron."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    if record:
        (bed.home / "pids" / "neutron.pid").write_text(str(proc.pid))
    return proc


def test_free_ports_are_distinct_and_free() -> None:
    ports = free_ports(9)
    assert len(set(ports)) == 9 and all(1024 < p < 65536 for p in ports)


def test_only_the_process_we_started_answering_as_neutron_is_neutron(bed: Testbed) -> None:
    port = str(bed.ports["neutron"])
    neutron = [sys.executable, str(SOURCE / "pylib" / "fake_neutron.py"), "127.0.0.1", port]
    assert not bed._serves("neutron")  # nothing started, nothing listening

    # Another kind of server on the port, started by us: it answers, but not as Neutron.
    other = _serve([sys.executable, "-m", "http.server", "-b", "127.0.0.1", port], bed)
    try:
        eventually("the other server to answer", lambda: _answers(port))
        assert not bed._serves("neutron")
    finally:
        other.kill()
        other.wait()

    # Neutron itself, but not the process the testbed recorded (a leftover of another run).
    stranger = _serve(neutron, bed, record=False)
    recorded = _serve([sys.executable, "-c", "import time; time.sleep(60)"], bed)
    try:
        eventually("the stranger to answer", lambda: _answers(port))
        assert not bed._serves("neutron")
    finally:
        for proc in (stranger, recorded):
            proc.kill()
            proc.wait()

    ours = _serve(neutron, bed)
    try:
        eventually("our neutron to be ready", lambda: bed._serves("neutron"), timeout=30)
    finally:
        ours.kill()
        ours.wait()


def _answers(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
            return True
    except OSError:
        return False


def test_one_test_run_at_a_time_holds_the_testbed(tmp_path: Path) -> None:
    """A second run waits for the first to be done with the machine's testbed (and says
    whose it is), instead of tearing it down under the first."""
    first, second = Testbed(home=tmp_path / "openstack"), Testbed(home=tmp_path / "openstack")
    with first.held(), pytest.raises(TimeoutError, match=rf"held by pid {os.getpid()} for 1s"), \
            second.held(wait_s=1.0):
        pass
    with second.held(wait_s=1.0):
        assert (tmp_path / "openstack.lock").read_text().strip() == str(os.getpid())
