"""The [worker] table and the pool token each boot hands to its VM."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from bus.errors import ConfigError, PermanentError, TemporaryError
from provisioning.contract import make_vm
from provisioning.userdata import WorkerSettings, render
from siteconfig.tests.test_file import GOOD, load_text


def test_central_manager_from_the_environment(tmp_path: Path) -> None:
    text = GOOD + '[worker]\ncentral_manager = "a"\n'
    assert WorkerSettings.from_site(load_text(tmp_path, text)).central_manager == "a"
    site = load_text(tmp_path, text, {"CS_CENTRAL_MANAGER": "cm.example.org:9618"})
    assert WorkerSettings.from_site(site).central_manager == "cm.example.org:9618"


def test_worker_token_from_a_command(tmp_path: Path) -> None:
    worker = WorkerSettings.from_site(load_text(
        tmp_path, GOOD + '[worker]\ntoken_command = "printf \'  eyJ.tok.en \\n\'"\n'))
    assert worker.token_command[0] == "printf"
    assert worker.token() == "eyJ.tok.en"
    # A failing command: its exit code and stderr's last line, never its stdout.
    failing = WorkerSettings("cm", None, ("sh", "-c", "echo SECRET; echo nope >&2; exit 3"))
    with pytest.raises(TemporaryError) as info:
        failing.token()
    assert "exited with 3: nope" in str(info.value) and "SECRET" not in str(info.value)
    with pytest.raises(PermanentError, match="no-such-minter not found"):
        WorkerSettings("cm", None, ("no-such-minter",)).token()
    with pytest.raises(TemporaryError, match="took longer than 0s"):
        WorkerSettings("cm", None, ("sleep", "5"), token_timeout_s=0.2).token()
    with pytest.raises(ConfigError, match="both token_file and token_command"):
        WorkerSettings.from_site(load_text(
            tmp_path, GOOD + '[worker]\ntoken_file = "t"\ntoken_command = "true"\n'))
    with pytest.raises(ConfigError, match="token_command: No closing quotation"):
        WorkerSettings.from_site(load_text(tmp_path, GOOD + '[worker]\ntoken_command = "a \'b"\n'))


def test_the_retire_credentials_reach_the_vm_base64_and_errors_never_quote_them(
    tmp_path: Path
) -> None:
    ssl = tmp_path / "ssl"
    ssl.mkdir()
    for name in WorkerSettings.SSL_FILES:
        (ssl / name).write_text(f"-----BEGIN {name}-----\nsecret {name}\n-----END-----\n")
    worker = WorkerSettings.from_site(load_text(
        tmp_path, GOOD + f'[worker]\nssl_dir = "{ssl}"\n'))
    assert worker.ssl_dir == ssl
    user_data = yaml.safe_load(render("", make_vm("c1"), "s", worker))
    files = {f["path"]: f for f in user_data["write_files"]}
    for name in WorkerSettings.SSL_FILES:
        entry = files[f"/etc/condor/cloudscheduler/{name}"]
        assert entry["encoding"] == "b64"
        assert base64.b64decode(entry["content"]) == (ssl / name).read_bytes()
    assert files["/etc/condor/cloudscheduler/worker.key"]["permissions"] == "0600"
    config = files["/etc/condor/config.d/50-cloudscheduler.conf"]["content"]
    assert "ALLOW_ADMINISTRATOR = $(ALLOW_ADMINISTRATOR) poller@cloudscheduler" in config
    mapfile = files["/etc/condor/cloudscheduler/mapfile"]["content"]
    assert mapfile.strip().endswith("-poller$\" poller@cloudscheduler")
    (ssl / "worker.key").unlink()
    with pytest.raises(PermanentError, match=r"worker.key \(\[worker\] ssl_dir\)") as info:
        worker.ssl_files()
    assert "secret" not in str(info.value)
    # Without ssl_dir the VM gets empty files (its master then refuses the retire command).
    assert WorkerSettings("cm", None).ssl_files() == ("", "", "")
