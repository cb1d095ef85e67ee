"""A login node for the tests: OpenSSH's sshd on 127.0.0.1, on a port chosen free, with a
host key, a client key and an authorized_keys of its own, in one folder.

Debian's `openssh-server` package is not installed: its scripts would start and enable an
sshd on port 22 for the whole machine. Its sshd alone is taken from the package (`apt-get
download`, `dpkg-deb -x`), cached under `.cache/sshd-<version>`; the libraries it needs come
with the `openssh-client` every Debian has; the system user `sshd` (privilege separation) is
made if missing, as the package would. The tests' Slurm commands run through it to the
same host, as a site's provisioner runs them on a cluster's login node.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.demo import free_port

ROOT = Path(__file__).resolve().parents[1]


class LoginError(RuntimeError):
    """The login node could not be set up or started; says which step and why."""


def _run(*argv: str, cwd: Path | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False,
                          cwd=cwd)
    if done.returncode != 0:
        raise LoginError(f"{' '.join(argv[:3])}... exited with {done.returncode}: "
                         f"{(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def _candidate() -> str:
    """The openssh-server version apt would install ("" when it knows none)."""
    policy = _run("apt-cache", "policy", "openssh-server")
    found = next((line.split(":", 1)[1].strip() for line in policy.splitlines()
                  if line.strip().startswith("Candidate:")), "")
    return "" if found == "(none)" else found


def sshd_binary() -> Path:
    """The sshd of Debian's openssh-server of this machine's release, cached."""
    candidate = _candidate()
    if not candidate:  # package lists never fetched on this machine
        _run("apt-get", "update", "-qq")
        candidate = _candidate()
    if not candidate:
        raise LoginError("apt knows no openssh-server package (apt-cache policy shows no "
                         "candidate); check /etc/apt/sources.list")
    folder = ROOT / ".cache" / f"sshd-{candidate.replace(':', '_')}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f"{folder.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sshd = folder / "usr" / "sbin" / "sshd"
        if not sshd.exists():
            work = folder.with_name(folder.name + ".building")
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            print(f"ssh login: apt-get download openssh-server {candidate}", file=sys.stderr)
            _run("apt-get", "download", f"openssh-server={candidate}", cwd=work)
            [deb] = work.glob("openssh-server_*.deb")
            _run("dpkg-deb", "-x", str(deb), str(work / "root"))
            shutil.rmtree(folder, ignore_errors=True)
            (work / "root").rename(folder)
            shutil.rmtree(work)
        return sshd


class SshLogin:
    """sshd on 127.0.0.1 letting this machine's root in with a key of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = 0
        self.key = folder / "client_key"
        """The private key the provisioner logs in with."""
        self._proc: subprocess.Popen[bytes] | None = None

    def login_command(self) -> str:
        """What a Slurm cloud's `login_command` is to reach this login node."""
        return shlex.join([
            "ssh", "-p", str(self.port), "-i", str(self.key), "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={self.folder / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR", "root@127.0.0.1"])

    def up(self) -> None:
        """Keys, config, sshd started; back once it answers."""
        sshd = sshd_binary()
        self.folder.mkdir(parents=True, exist_ok=True)
        host_key = self.folder / "host_key"
        for key in (host_key, self.key):
            if not key.exists():
                _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        (self.folder / "authorized_keys").write_text(
            Path(f"{self.key}.pub").read_text())
        self.port = free_port()
        public = Path(f"{host_key}.pub").read_text().split()
        (self.folder / "known_hosts").write_text(
            f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n")
        config = self.folder / "sshd_config"
        session = sshd.parents[2] / "usr" / "lib" / "openssh"
        lines = [f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
                 f"AuthorizedKeysFile {self.folder / 'authorized_keys'}",
                 "PermitRootLogin prohibit-password", "PasswordAuthentication no",
                 "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
                 f"PidFile {self.folder / 'sshd.pid'}", "AcceptEnv none"]
        if (session / "sshd-session").exists():  # OpenSSH 9.8 and later (Debian 13)
            lines.append(f"SshdSessionPath {session / 'sshd-session'}")
        if (session / "sshd-auth").exists():
            lines.append(f"SshdAuthPath {session / 'sshd-auth'}")
        config.write_text("\n".join(lines) + "\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation
        if subprocess.run(["id", "sshd"], capture_output=True, check=False).returncode:
            _run("useradd", "--system", "--no-create-home", "--home-dir", "/run/sshd",
                 "--shell", "/usr/sbin/nologin", "sshd")  # what the package's scripts make
        log = (self.folder / "sshd.log").open("ab")
        self._proc = subprocess.Popen([str(sshd), "-D", "-e", "-f", str(config)],
                                      stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run([*shlex.split(self.login_command()), "true"],
                                  capture_output=True, text=True, timeout=30, check=False)
            if done.returncode == 0:
                return
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.down()
                tail = (self.folder / "sshd.log").read_text(errors="replace")[-800:]
                raise LoginError(f"sshd on 127.0.0.1:{self.port} did not let us in: "
                                 f"{done.stderr.strip()} | {tail}")
            time.sleep(0.2)

    def down(self) -> None:
        """Stop sshd (and every session it started)."""
        if self._proc is not None:
            self._proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(10)
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


@contextlib.contextmanager
def running_login(folder: Path) -> Iterator[SshLogin]:
    """A login node up for the block."""
    login = SshLogin(folder)
    login.up()
    try:
        yield login
    finally:
        login.down()


if __name__ == "__main__":
    with running_login(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/cs-login")) as node:
        print(node.login_command())
        os.system(node.login_command() + " hostname")
