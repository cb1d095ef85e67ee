"""The built-in drone script: rendered for a Slurm cloud that sets no user_data, clean under
shellcheck, and run for real with a wrapper that stands where HTCondor would (the whole
loop with HTCondor is tests/test_slurm_loop.py)."""

from __future__ import annotations

import asyncio
import base64
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus.errors import ConfigError
from providers.slurm.drone import DRONE_SCRIPT
from providers.slurm.options import SlurmOptions
from provisioning.contract import make_vm
from provisioning.driver import DriverContext
from provisioning.userdata import WorkerSettings
from siteconfig import cloud_record
from siteconfig.template import check_template

VENV_BIN = Path(sys.executable).parent


def worker(tmp_path: Path) -> WorkerSettings:
    ssl = tmp_path / "ssl"
    ssl.mkdir()
    for name in WorkerSettings.SSL_FILES:
        (ssl / name).write_text(f"-----{name}-----\n")
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3b3JrZXIifQ.c2lnbmF0dXJl\n")
    return WorkerSettings(central_manager="cm.example:9618", token_file=token, ssl_dir=ssl)


def rendered(tmp_path: Path, **options: object) -> str:
    opts = SlurmOptions.read({"walltime_min": 30, "drain_min": 5, **options})
    record = cloud_record("hpc", opts, enabled=True, max_vms=1)
    vm = make_vm("hpc", "site-a")
    context = DriverContext.of("site-a", worker(tmp_path))
    return asyncio.run(context.user_data(record, vm, opts)).decode()


def test_a_slurm_cloud_without_user_data_runs_the_built_in_drone(tmp_path: Path) -> None:
    script = rendered(tmp_path, condor_wrapper="apptainer exec /cvmfs/htc.sif")
    assert script.startswith("#!/bin/sh\n# cloudscheduler's built-in drone cs-site-a-hpc-")
    assert "CONDOR_HOST = cm.example:9618" in script
    assert "$((START_AT + 1800))" in script and "> 300) &&" in script
    assert "apptainer exec /cvmfs/htc.sif condor_master -f" in script
    path = tmp_path / "drone.sh"
    path.write_text(script)
    done = subprocess.run([str(VENV_BIN / "shellcheck"), "-s", "sh", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_the_drone_script_uses_only_known_placeholders() -> None:
    check_template(DRONE_SCRIPT, "built-in drone", SlurmOptions.TEMPLATE_VARIABLES)
    with pytest.raises(ConfigError, match=r"unknown placeholder.*CS_WALLTIME_S"):
        check_template(DRONE_SCRIPT, "built-in drone")


@pytest.mark.parametrize("end_from_slurm", [False, True])
def test_the_drone_writes_its_htcondor_folder_runs_the_wrapper_and_cleans_up(
    tmp_path: Path, end_from_slurm: bool,
) -> None:
    """The wrapper stands where HTCondor would run: it copies the drone's folder out as
    HTCondor would find it, then the drone ends and its folder is gone."""
    seen = tmp_path / "seen"
    copy = f"cp -a \"$CS_DRONE_DIR\" {shlex.quote(str(seen))}; echo \"$CONDOR_CONFIG $*\""
    script = rendered(tmp_path, condor_wrapper=f"sh -c {shlex.quote(copy)} wrapper")
    (tmp_path / "drone.sh").write_text(script)
    jobs = tmp_path / "tmp"
    jobs.mkdir()
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(jobs), "SLURM_JOB_ID": "4242"}
    if end_from_slurm:
        env["SLURM_JOB_END_TIME"] = "2000000000"
    started = time.time()
    done = subprocess.run(["sh", str(tmp_path / "drone.sh")], capture_output=True, text=True,
                          env=env, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    folder = jobs / "cs-drone-4242"
    assert done.stdout.split() == [f"{folder}/condor_config", "condor_master", "-f"]
    assert not folder.exists(), "the drone's folder outlived it"
    config = (seen / "condor_config").read_text()
    assert f"LOCAL_DIR = {folder}\n" in config
    end = int(config.split("CS_DRONE_END = ")[1].split()[0])
    if end_from_slurm:
        assert end == 2_000_000_000
    else:
        assert started + 1800 - 5 <= end <= time.time() + 1800 + 5
    token = seen / "tokens.d" / "cloudscheduler.token"
    assert token.read_text().startswith("eyJhbGciOiJIUzI1NiJ9.")
    assert token.stat().st_mode & 0o077 == 0, "the token is readable by others"
    assert (seen / "ssl" / "worker.key").read_text() == "-----worker.key-----\n"
    assert base64.b64encode(b"-----ca.crt-----\n").decode() in script
    assert {p.name for p in seen.iterdir()} >= {"log", "spool", "execute", "lock", "run"}
