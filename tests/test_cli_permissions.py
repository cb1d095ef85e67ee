"""A NATS server with users: the CLI says "permission denied" when the server refuses a
request, "refused the credentials" for a wrong password, and never prints a password."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.supervisor import COMMANDS
from tests.natsserver import NatsServer

pytestmark = pytest.mark.e2e

USERS = """
authorization {
  users = [
    {user: admin, password: "admin-s3cret"}
    {user: viewer, password: "viewer-s3cret", permissions: {publish: {deny: ["cs.admin.>"]}}}
  ]
}
"""
CONFIG = """
site = "perm"
[[cloud]]
name = "c1"
provider = "libvirt"
uri = "test:///default"
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    (tmp_path / "users.conf").write_text(USERS)
    nats = NatsServer(tmp_path / "nats", config=tmp_path / "users.conf")
    nats.start()
    yield nats
    nats.stop()


def _url(server: NatsServer, user: str, password: str) -> str:
    return server.url.replace("nats://", f"nats://{user}:{password}@")


def cs(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, CS_NATS_URL=url))


def test_permission_denied_and_bad_credentials_are_one_clear_line(
    server: NatsServer, tmp_path: Path,
) -> None:
    config = tmp_path / "cs.toml"
    config.write_text(CONFIG)
    admin_url = _url(server, "admin", "admin-s3cret")
    log = tmp_path / "admin.log"
    admin = subprocess.Popen([sys.executable, *COMMANDS["cs-admin"]],
                             stdout=log.open("ab"), stderr=subprocess.STDOUT,
                             env=dict(os.environ, CS_CONFIG=str(config), CS_NATS_URL=admin_url))
    try:
        deadline = time.monotonic() + 30
        while (ok := cs(admin_url, "status", "--json")).returncode != 0:
            assert time.monotonic() < deadline, ok.stderr + log.read_text()
            time.sleep(0.5)

        denied = cs(_url(server, "viewer", "viewer-s3cret"), "cloud", "disable", "c1")
        assert denied.returncode == 1
        assert "permission denied on cs.admin.cloud-disable" in denied.stderr
        assert denied.stderr.count("\n") == 1

        wrong = cs(_url(server, "admin", "not-it"), "status")
        assert wrong.returncode == 1
        assert "refused the credentials" in wrong.stderr and "not-it" not in wrong.stderr

        unreachable = cs("nats://admin:admin-s3cret@127.0.0.1:1", "status")
        assert unreachable.returncode == 1 and "admin:***@127.0.0.1:1" in unreachable.stderr
        assert "s3cret" not in unreachable.stderr
    finally:
        admin.terminate()
        admin.wait(15)
    assert "s3cret" not in log.read_text()  # the service never logs its credentials
