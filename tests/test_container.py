"""The single container's supervision outside any image (tests/test_container_image.py
builds and runs the image itself), where processes can be killed one by one: supervisord runs
container/supervisord.conf (paths from the environment, as the Dockerfile sets them) minus the
system daemons that cannot run here, every program reaches RUNNING, `cs status` answers, a
service killed with -9 is restarted and the system keeps working. Plus the image's lints."""

from __future__ import annotations

import configparser
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from cli.supervisor import SERVICES  # cs up's, and so the container's
from tests.demo import ROOT, config, cs, free_port, wait_running

pytestmark = pytest.mark.e2e

CONF = ROOT / "container" / "supervisord.conf"
BIN = Path(sys.executable).parent
# Outside the image there is no HTCondor on the host (Debian 12 has none); the host's own
# libvirtd (the QEMU tests use it) owns /run/libvirt, so a second one cannot start either.
# The demo cloud is libvirt's test driver.
SYSTEM_DAEMONS = ("condor_master", "virtlogd", "libvirtd")
TOKEN = "eyJhbGciOiJIUzI1NiJ9.pool-token-never-shown"


def without_system_daemons(text: str) -> str:
    """The config with the [program:X] sections of SYSTEM_DAEMONS cut out."""
    sections = re.split(r"(?m)^(?=\[)", text)
    kept = [s for s in sections
            if not any(s.startswith(f"[program:{name}]") for name in SYSTEM_DAEMONS)]
    assert len(sections) - len(kept) == len(SYSTEM_DAEMONS), "a system daemon's section moved"
    return "".join(kept)


def ctl(conf: Path, env: dict[str, str], *args: str) -> str:
    return subprocess.run([str(BIN / "supervisorctl"), "-c", str(conf), *args],
                          capture_output=True, text=True, env=env, timeout=30).stdout


def statuses(conf: Path, env: dict[str, str]) -> dict[str, tuple[str, int]]:
    """program -> (state, pid) from `supervisorctl status`."""
    out: dict[str, tuple[str, int]] = {}
    for line in ctl(conf, env, "status").splitlines():
        fields = line.split()
        if len(fields) >= 2:
            pid = re.search(r"pid (\d+)", line)
            out[fields[0]] = (fields[1], int(pid.group(1)) if pid else 0)
    return out


def wait_all_running(conf: Path, env: dict[str, str], programs: set[str],
                     timeout: float = 60) -> dict[str, tuple[str, int]]:
    deadline = time.monotonic() + timeout
    seen: dict[str, tuple[str, int]] = {}
    while time.monotonic() < deadline:
        seen = statuses(conf, env)
        if set(seen) == programs and all(state == "RUNNING" for state, _ in seen.values()):
            return seen
        time.sleep(0.5)
    raise AssertionError(f"not every program RUNNING within {timeout}s: {seen}")


def test_supervisord_conf_runs_and_restarts_every_service(tmp_path: Path) -> None:
    # The file as shipped parses, and names every service and the system daemons.
    parser = configparser.RawConfigParser()
    parser.read(CONF)
    programs = {s.removeprefix("program:") for s in parser.sections() if s.startswith("program")}
    assert programs == {"nats-server", *SERVICES, *SYSTEM_DAEMONS}

    port = free_port()
    state = tmp_path / "state"
    (state / "logs").mkdir(parents=True)
    conf = tmp_path / "supervisord.conf"
    conf.write_text(without_system_daemons(CONF.read_text()))
    site = config(tmp_path, port)
    # The pool token the VMs get comes from a command, and must show up nowhere.
    site.write_text(site.read_text().replace(
        '[worker]', f'[worker]\ntoken_command = "echo {TOKEN}"'))
    env = dict(os.environ, CS_BIN=str(BIN), CS_STATE_DIR=str(state), CS_NATS_HOST="127.0.0.1",
               CS_NATS_PORT=str(port), CS_NATS_URL=f"nats://127.0.0.1:{port}",
               CS_CONFIG=str(site), PYTHONUNBUFFERED="1")
    supervisord = subprocess.Popen([str(BIN / "supervisord"), "-c", str(conf)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        running = wait_all_running(conf, env, {"nats-server", *SERVICES})
        wait_running(port, 8)  # the demo queue's 8 VMs: every service did its part
        assert (state / "nats" / "jetstream").is_dir()
        assert (state / "logs" / "cs-planner.log").read_text().strip()

        # kill -9 the planner and the admin service: supervisord starts new ones.
        for victim in ("cs-planner", "cs-admin"):
            os.kill(running[victim][1], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            now = statuses(conf, env)
            if all(now[v][0] == "RUNNING" and now[v][1] != running[v][1]
                   for v in ("cs-planner", "cs-admin")):
                break
            assert time.monotonic() < deadline, f"not restarted: {now}"
            time.sleep(0.5)
        # ... and the system keeps working: the new admin answers, the new planner plans.
        assert "disabled" in cs("cloud", "disable", "container-cloud", port=port).stdout
        assert "enabled" in cs("cloud", "enable", "container-cloud", port=port).stdout
        queue = tmp_path / "demo-queue.txt"
        first = queue.read_text().split("\n\n")[0]
        with queue.open("a") as more:
            more.write("\n" + first.replace("ProcId = 0", "ProcId = 77") + "\n")
        wait_running(port, 9)
        pids = [pid for _, pid in statuses(conf, env).values()]
        status = cs("status", "--json", port=port).stdout + cs("vm", "list", port=port).stdout
        assert TOKEN not in status
    finally:
        supervisord.send_signal(signal.SIGTERM)
        output, _ = supervisord.communicate(timeout=90)
    assert supervisord.returncode == 0, output
    log = (state / "logs" / "supervisord.log").read_text()
    assert "exited: cs-planner (terminated by SIGKILL" in log
    for program in ("nats-server", *SERVICES):
        assert f"stopped: {program}" in log, log[-3000:]
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"{pid} outlived supervisord"
    for path in (state / "logs").iterdir():
        assert TOKEN not in path.read_text(errors="replace"), path


def test_dockerfile_and_scripts_pass_their_linters() -> None:
    hadolint = subprocess.run(
        [str(BIN / "hadolint"), "--config", str(ROOT / "container" / "hadolint.yaml"),
         str(ROOT / "container" / "Dockerfile")], capture_output=True, text=True)
    assert hadolint.returncode == 0, hadolint.stdout + hadolint.stderr
    # The linter does fail a bad Dockerfile (so a pass above means something).
    bad = subprocess.run([str(BIN / "hadolint"), "-"], input="FROM almalinux\nRUN cd /x\n",
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "DL3006" in bad.stdout and "DL3003" in bad.stdout
    scripts = [str(ROOT / "container" / "entrypoint.sh"),
               *map(str, sorted((ROOT / "scripts").glob("*.sh")))]
    shellcheck = subprocess.run([str(BIN / "shellcheck"), "-x", *scripts], cwd=ROOT,
                                capture_output=True, text=True)
    assert shellcheck.returncode == 0, shellcheck.stdout


def test_the_image_copies_every_package_the_install_needs() -> None:
    """The build stage copies folders one by one: a package added to pyproject.toml but not
    to the Dockerfile (or .dockerignore) would build an image whose services fail on
    import, or no image."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = {name for name in project["tool"]["setuptools"]["packages"]["find"]["include"]
              if "." not in name}
    dockerfile = (ROOT / "container" / "Dockerfile").read_text()
    build_stage = dockerfile.split("\nFROM ", 2)[1]
    copied = set(re.findall(r"^COPY (\w+) \1$", build_stage, flags=re.M))
    assert wanted and wanted <= copied, f"not copied into the image: {sorted(wanted - copied)}"
    # ... and the build context must hold them: .dockerignore leaves out all but its `!` lines
    sent = set(re.findall(r"^!(\w+)$", (ROOT / ".dockerignore").read_text(), flags=re.M))
    assert wanted <= sent, f"left out of the context by .dockerignore: {sorted(wanted - sent)}"
