"""A real HTCondor pool on loopback: Debian trixie's `condor` (HTCondor 23.9) in a chroot.

Debian 12 has no HTCondor; trixie does, so the pool's root is `debootstrap --variant=minbase
trixie` with `condor` installed by apt inside it (debootstrap's own `--include` cannot resolve
condor's dependencies), built once and cached under `.cache/condor-root-<hash of RECIPE>`
(about a minute). The same works on a Debian 13 host. Daemons started with `chroot` share the
host's loopback, so the poller's PyPI `htcondor2` bindings reach them over TCP.

The pool runs the container's own HTCondor config (`container/condor/`) and entrypoint
(`container/entrypoint.sh`, which makes the pool signing key), so the config we ship is the
config we test; `testbed/condor/70-testbed.conf` holds the few overrides a test machine needs
(its own port, no IPv6). Pool security is on: IDTOKENS, no `ALLOW_WRITE = *`.

    python -m tests.condor_pool up|down    # by hand: a pool on 127.0.0.1:19618
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = "trixie"
PACKAGES = ("condor", "openssl")
USERS = ("alice", "bob")
"""Ordinary users of the central manager: root cannot submit (it maps to the condor user)."""
RECIPE = f"{SUITE} {' '.join(PACKAGES)} users={' '.join(USERS)} v1"
"""What the cached root is built from: change it and a new root is built."""
TRUST_DOMAIN = "cloudscheduler"
"""The container config's TRUST_DOMAIN (container/condor/50-cloudscheduler.conf)."""
STATE_DIRS = ("var/lib/cloudscheduler", "var/spool/condor", "var/log/condor", "run/condor",
              "run/lock/condor")
"""What a pool leaves in its root: emptied before each start (the folders stay, with the
owners and modes the condor package gave them)."""


class PoolError(RuntimeError):
    """The pool could not be built or started; the message says which step and why."""


def root_dir() -> Path:
    """The cached root for the current recipe."""
    digest = hashlib.sha256(RECIPE.encode()).hexdigest()[:12]
    return ROOT / ".cache" / f"condor-root-{digest}"


def _environment() -> dict[str, str]:
    """This process's environment less HTCondor's variables: importing the bindings sets
    CONDOR_CONFIG=/dev/null when they find no config, and daemons in the root must read the
    root's own."""
    env = {k: v for k, v in os.environ.items()
           if k != "CONDOR_CONFIG" and not k.lower().startswith("_condor_")}
    return {**env, "DEBIAN_FRONTEND": "noninteractive"}


def _run(*argv: str, stdin: str | None = None, timeout: float = 600.0) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                          check=False, env=_environment())
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-5:]
        raise PoolError(f"{' '.join(argv[:4])}... exited with {done.returncode}: "
                        + " | ".join(tail))
    return done.stdout


def _mirror() -> list[str]:
    """The Debian archive this machine's apt uses (debootstrap's own default otherwise)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file() or path.suffix not in ("", ".list", ".sources"):
            continue
        for line in path.read_text(errors="replace").splitlines():
            found = re.match(r"^\s*(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s*", line)
            if found:
                return [found.group(1)]
    return []


def build(progress: bool = True) -> Path:
    """The pool's root, built if the cache has none for this recipe (needs root)."""
    final = root_dir()
    if (final / "usr" / "sbin" / "condor_master").exists():
        return final
    if os.geteuid() != 0:
        raise PoolError("building the HTCondor test root needs root (debootstrap, chroot); "
                        "run make test as root or with sudo")
    started = time.monotonic()

    def say(what: str) -> None:
        if progress:
            print(f"condor pool: {what} ({time.monotonic() - started:.0f}s)", file=sys.stderr,
                  flush=True)

    if shutil.which("debootstrap") is None or not Path(
            "/usr/share/keyrings/debian-archive-keyring.gpg").exists():
        say("apt-get install debootstrap debian-archive-keyring")
        _run("apt-get", "update", "-qq")
        _run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap",
             "debian-archive-keyring")
    building = final.with_name(final.name + ".building")
    if os.path.ismount(building / "proc"):
        raise PoolError(f"{building / 'proc'} is mounted; unmount it before the root is built")
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    say(f"debootstrap {SUITE} into {building}")
    _run("debootstrap", "--variant=minbase", SUITE, str(building), *_mirror(), timeout=900)
    shutil.copy("/etc/resolv.conf", building / "etc" / "resolv.conf")
    say(f"apt-get install {' '.join(PACKAGES)} in the root")
    _run("chroot", str(building), "sh", "-c",
         "apt-get update -qq && apt-get install -y -qq --no-install-recommends "
         f"{' '.join(PACKAGES)} && apt-get clean", timeout=900)
    for user in USERS:
        _run("chroot", str(building), "useradd", "--create-home", user)
    building.rename(final)
    say("root ready")
    return final


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CondorPool:
    """Central manager and schedd (collector, negotiator, schedd) in the cached root."""

    def __init__(self, work: Path, port: int | None = None) -> None:
        self.root = root_dir()
        self.work = work
        """Host-side files: the poller's HTCondor config and token."""
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.client_config = work / "condor_config"
        """CONDOR_CONFIG for clients on the host (the poller): where the pool is, its token."""

    # ---- running ----------------------------------------------------------------------

    def up(self, timeout_s: float = 90.0) -> None:
        """Build the root if needed, start the daemons, wait until the schedd is known; on a
        failure nothing is left running or mounted."""
        build()
        self.down()
        try:
            self._start(timeout_s)
        except BaseException:
            self.down()
            raise

    def _start(self, timeout_s: float) -> None:
        for rel in STATE_DIRS:
            folder = self.root / rel
            if not folder.resolve().is_relative_to(self.root):
                # var/run is a link to /run: followed from the host, it would be the host's.
                raise PoolError(f"{folder} leads out of the root; not emptying it")
            for left in folder.glob("*"):
                if left.is_dir() and not left.is_symlink():
                    shutil.rmtree(left)
                else:
                    left.unlink()
        for user in USERS:
            for old_job in (self.root / "home" / user).glob("job-*.sub"):
                old_job.unlink()
        config_d = self.root / "etc" / "condor" / "config.d"
        for old in config_d.glob("[5-9]*"):
            old.unlink()
        shutil.copy(ROOT / "container" / "condor" / "50-cloudscheduler.conf", config_d)
        overrides = (ROOT / "testbed" / "condor" / "70-testbed.conf").read_text()
        (config_d / "70-testbed.conf").write_text(overrides.replace("${PORT}", str(self.port)))
        entrypoint = self.root / "usr" / "local" / "bin" / "cs-entrypoint"
        shutil.copy(ROOT / "container" / "entrypoint.sh", entrypoint)
        entrypoint.chmod(0o755)
        proc = self.root / "proc"
        if not os.path.ismount(proc):
            _run("mount", "--bind", "/proc", str(proc))  # condor_procd reads /proc
        _run("chroot", str(self.root), "env", f"CENTRAL_MANAGER={self.address}",
             "NETWORK_INTERFACE=127.0.0.1", "/usr/local/bin/cs-entrypoint", "condor_master")
        deadline = time.monotonic() + timeout_s
        wanted = {"Collector", "Negotiator", "Scheduler"}
        seen: set[str] = set()
        while time.monotonic() < deadline:
            try:
                seen = set(self.condor("condor_status", "-any", "-af", "MyType").split())
            except PoolError:
                seen = set()
            if wanted <= seen:
                break
            time.sleep(1.0)
        else:
            raise PoolError(f"the pool at {self.address} did not come up within "
                            f"{timeout_s:.0f}s (daemons seen: {sorted(seen) or 'none'}); "
                            f"logs in {self.root / 'var/log/condor'}")
        self._write_client_config()

    def _write_client_config(self) -> None:
        tokens = self.work / "tokens.d"
        tokens.mkdir(mode=0o700, exist_ok=True)
        token = self.token(f"poller@{TRUST_DOMAIN}", "READ")
        (tokens / "poller").write_text(token + "\n")
        (tokens / "poller").chmod(0o600)
        self.client_config.write_text(
            f"COLLECTOR_HOST = {self.address}\n"
            "ENABLE_IPV6 = False\n"
            "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS\n"
            f"SEC_TOKEN_DIRECTORY = {tokens}\n")

    def pids(self, name: str | None = None) -> list[int]:
        """Processes running in this root (those named `name` only, if given)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "root").readlink() != self.root:
                    continue
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if name is None or comm == name:
                found.append(int(entry.name))
        return found

    def down(self) -> None:
        """Stop every process in the root (TERM, then KILL after 15 s) and unmount /proc."""
        for sig, wait_s in ((signal.SIGCONT, 0.0), (signal.SIGTERM, 15.0),
                            (signal.SIGKILL, 5.0)):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.2)
        proc = self.root / "proc"
        if os.path.ismount(proc):
            _run("umount", "--lazy", str(proc))

    def signal(self, daemon: str, sig: signal.Signals) -> None:
        """Send `sig` to the root's `daemon` (e.g. condor_schedd)."""
        pids = self.pids(daemon)
        if not pids:
            raise PoolError(f"no {daemon} is running in {self.root}")
        for pid in pids:
            os.kill(pid, sig)

    # ---- using ------------------------------------------------------------------------

    def condor(self, *argv: str, user: str = "root", stdin: str | None = None) -> str:
        """An HTCondor command run in the root, as `user` (from the user's home)."""
        if user == "root":
            return _run("chroot", str(self.root), *argv, stdin=stdin, timeout=60)
        command = "cd && exec " + " ".join(_quote(a) for a in argv)
        return _run("chroot", str(self.root), "su", user, "-c", command, stdin=stdin,
                    timeout=60)

    def submit(self, user: str, description: str) -> int:
        """condor_submit `description` (a submit file's text) as `user`; the cluster id."""
        home = self.root / "home" / user
        jobs = sorted(home.glob("job-*.sub"))
        name = f"job-{len(jobs) + 1}.sub"
        (home / name).write_text(description)
        out = self.condor("condor_submit", name, user=user)
        found = re.search(r"submitted to cluster (\d+)", out)
        if found is None:
            raise PoolError(f"condor_submit said: {out.strip()}")
        return int(found.group(1))

    def token(self, identity: str, *authz: str) -> str:
        """An IDTOKEN for `identity` signed by the pool's key, limited to `authz` levels."""
        args = [a for level in authz for a in ("-authz", level)]
        return self.condor("condor_token_create", "-identity", identity, *args).strip()


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def main(argv: list[str]) -> int:
    """`up` (a pool on 127.0.0.1:19618, left running) or `down`."""
    work = ROOT / ".cache" / "condor-pool-manual"
    work.mkdir(parents=True, exist_ok=True)
    pool = CondorPool(work, port=19618)
    if argv == ["up"]:
        pool.up()
        print(f"pool at {pool.address}; CONDOR_CONFIG={pool.client_config}")
        return 0
    if argv == ["down"]:
        pool.down()
        return 0
    print("usage: python -m tests.condor_pool up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
