"""A real HTCondor pool on loopback: Debian trixie's `condor` (HTCondor 23.9) in a chroot.

Debian 12 has no HTCondor; trixie does, so the pool's root is `debootstrap --variant=minbase
trixie` with `condor` installed by apt inside it (debootstrap's own `--include` cannot resolve
condor's dependencies), built once and cached under `.cache/condor-root-<hash of its recipe>`
(about a minute). The same works on a Debian 13 host. Daemons started with `chroot` share the
host's loopback, so the poller's PyPI `htcondor2` bindings reach them over TCP.

The pool runs the container's own HTCondor config (`container/condor/`) and entrypoint
(`container/entrypoint.sh`, which makes the pool signing key), so the config we ship is the
config we test; `testbed/condor/70-testbed.conf` holds the few overrides a test machine needs
(its own port, no IPv6). Pool security is on: IDTOKENS, no `ALLOW_WRITE = *`.

    python -m tests.condor_pool up|down    # by hand: a pool on 127.0.0.1:19618
    python -m tests.condor_pool submit alice examples/pool-jobs.sub
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bus.schemas import VmRecord
from provisioning.userdata import WorkerSettings, render
from tests.demo import free_port

ROOT = Path(__file__).resolve().parents[1]
SUITE = "trixie"


@dataclass(frozen=True)
class Recipe:
    """What a cached root is built from: change it and a new root is built."""

    name: str
    packages: tuple[str, ...]
    users: tuple[str, ...] = ()

    def directory(self) -> Path:
        """The cached root of this recipe."""
        digest = hashlib.sha256(repr((SUITE, self)).encode()).hexdigest()[:12]
        return ROOT / ".cache" / f"{self.name}-{digest}"


CENTRAL_MANAGER = Recipe("condor-root", ("condor", "openssl"), users=("alice", "bob"))
"""The central manager: ordinary users, since root cannot submit (it maps to condor)."""
WORKER = Recipe("condor-worker-root", ("condor", "cloud-init"))
"""A worker's system, as a VM image would have it: HTCondor and cloud-init."""
TRUST_DOMAIN = "cloudscheduler"
"""The container config's TRUST_DOMAIN (container/condor/50-cloudscheduler.conf)."""
WORKER_AUTHZ = ("ADVERTISE_STARTD", "ADVERTISE_MASTER", "READ")
"""What a worker's token allows, as the container's [worker] token_command mints it."""
STATE_DIRS = ("var/lib/cloudscheduler", "var/spool/condor", "var/log/condor", "run/condor",
              "run/lock/condor")
"""What a pool leaves in its root: emptied before each start (the folders stay, with the
owners and modes the condor package gave them)."""


class PoolError(RuntimeError):
    """The pool could not be built or started; the message says which step and why."""


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


def build(recipe: Recipe, progress: bool = True) -> Path:
    """The root of `recipe`, built if the cache has none (needs root)."""
    final = recipe.directory()
    final.parent.mkdir(parents=True, exist_ok=True)
    with (final.parent / f"{final.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be building it
        return _build_locked(recipe, final, progress)


def _build_locked(recipe: Recipe, final: Path, progress: bool) -> Path:
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
    say(f"debootstrap {SUITE} into {building}")
    _run("debootstrap", "--variant=minbase", SUITE, str(building), *_mirror(), timeout=900)
    shutil.copy("/etc/resolv.conf", building / "etc" / "resolv.conf")
    say(f"apt-get install {' '.join(recipe.packages)} in the root")
    _run("chroot", str(building), "sh", "-c",
         "apt-get update -qq && apt-get install -y -qq --no-install-recommends "
         f"{' '.join(recipe.packages)} && apt-get clean", timeout=900)
    for user in recipe.users:
        _run("chroot", str(building), "useradd", "--create-home", user)
    building.rename(final)
    say("root ready")
    return final


def wait_until(check: Callable[[], object], timeout_s: float) -> bool:
    """Whether `check()` came true within `timeout_s`, asked once a second."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)
    return True


class ChrootNode:
    """One machine of the pool: a cached root whose processes are started with chroot."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def reset(self) -> None:
        """Empty what daemons leave behind (STATE_DIRS) and the config files the last start
        wrote (config.d/5x-9x), so every start is a first start."""
        for old in (self.root / "etc" / "condor" / "config.d").glob("[5-9]*"):
            old.unlink()
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

    def mount_proc(self) -> None:
        """The host's /proc in the root: condor_procd reads it."""
        proc = self.root / "proc"
        if not os.path.ismount(proc):
            _run("mount", "--bind", "/proc", str(proc))

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

    def condor(self, *argv: str, user: str = "root", stdin: str | None = None) -> str:
        """An HTCondor command run in the root, as `user` (from the user's home)."""
        if user == "root":
            return _run("chroot", str(self.root), *argv, stdin=stdin, timeout=60)
        command = "cd && exec " + " ".join(_quote(a) for a in argv)
        return _run("chroot", str(self.root), "su", user, "-c", command, stdin=stdin,
                    timeout=60)


class CondorPool(ChrootNode):
    """Central manager and schedd (collector, negotiator, schedd) in the cached root."""

    def __init__(self, work: Path, port: int | None = None) -> None:
        super().__init__(CENTRAL_MANAGER.directory())
        self.work = work
        """Host-side files: the poller's HTCondor config and token."""
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.client_config = work / "condor_config"
        """CONDOR_CONFIG for clients on the host (the poller): where the pool is, its token
        and certificate."""
        self.ssl_dir = self.root / "var" / "lib" / "cloudscheduler" / "condor" / "ssl"
        """The site CA and certificates the container's entrypoint made (its [worker] ssl_dir)."""

    # ---- running ----------------------------------------------------------------------

    def up(self, timeout_s: float = 90.0) -> None:
        """Build the root if needed, start the daemons, wait until the schedd is known; on a
        failure nothing is left running or mounted."""
        build(CENTRAL_MANAGER)
        self.down()
        try:
            self._start(timeout_s)
        except BaseException:
            self.down()
            raise

    def _start(self, timeout_s: float) -> None:
        self.reset()
        for user in CENTRAL_MANAGER.users:
            for old_job in (self.root / "home" / user).glob("job-*.sub"):
                old_job.unlink()
        config_d = self.root / "etc" / "condor" / "config.d"
        shutil.copy(ROOT / "container" / "condor" / "50-cloudscheduler.conf", config_d)
        overrides = (ROOT / "testbed" / "condor" / "70-testbed.conf").read_text()
        (config_d / "70-testbed.conf").write_text(overrides.replace("${PORT}", str(self.port)))
        entrypoint = self.root / "usr" / "local" / "bin" / "cs-entrypoint"
        shutil.copy(ROOT / "container" / "entrypoint.sh", entrypoint)
        entrypoint.chmod(0o755)
        self.mount_proc()
        _run("chroot", str(self.root), "env", f"CENTRAL_MANAGER={self.address}",
             "NETWORK_INTERFACE=127.0.0.1", "/usr/local/bin/cs-entrypoint", "condor_master")
        wanted = {"Collector", "Negotiator", "Scheduler"}
        seen: set[str] = set()

        def ready() -> bool:
            nonlocal seen
            try:
                seen = set(self.condor("condor_status", "-any", "-af", "MyType").split())
            except PoolError:
                seen = set()
            return wanted <= seen

        if not wait_until(ready, timeout_s):
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
            "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS, SSL\n"
            f"SEC_TOKEN_DIRECTORY = {tokens}\n"
            f"AUTH_SSL_CLIENT_CERTFILE = {self.ssl_dir / 'poller.crt'}\n"
            f"AUTH_SSL_CLIENT_KEYFILE = {self.ssl_dir / 'poller.key'}\n"
            f"AUTH_SSL_CLIENT_CAFILE = {self.ssl_dir / 'ca.crt'}\n"
            "SSL_SKIP_HOST_CHECK = True\n")

    # ---- using ------------------------------------------------------------------------

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

    @staticmethod
    def token_argv(identity: str, *authz: str) -> tuple[str, ...]:
        """condor_token_create for `identity`, limited to the `authz` levels."""
        return ("condor_token_create", "-identity", identity,
                *(a for level in authz for a in ("-authz", level)))

    def token(self, identity: str, *authz: str) -> str:
        """An IDTOKEN for `identity` signed by the pool's key, limited to `authz` levels."""
        return self.condor(*self.token_argv(identity, *authz)).strip()


@contextlib.contextmanager
def running_pool(work: Path) -> Iterator[CondorPool]:
    """A pool up with its host-side files in `work`, stopped when the block ends."""
    pool = CondorPool(work)
    pool.up()
    try:
        yield pool
    finally:
        pool.down()


class Worker(ChrootNode):
    """A worker machine in a root of its own, contextualised as a VM is: its user-data is
    rendered by `provisioning.userdata` and applied by cloud-init itself (its write_files
    module, `cloud-init single`). A chroot has no init, so where the user-data's runcmd would
    restart HTCondor through systemd, `condor_master` is started here."""

    def __init__(self, pool: CondorPool, vm: VmRecord, site: str,
                 user_data_template: str = "") -> None:
        super().__init__(WORKER.directory())
        self.pool = pool
        self.vm = vm
        self.site = site
        self.template = user_data_template
        """The cloud's template ("" = the built-in one)."""

    def token_command(self) -> tuple[str, ...]:
        """The `[worker] token_command` of the container, run in the central manager's root."""
        return ("env", "-u", "CONDOR_CONFIG", "chroot", str(self.pool.root),
                *self.pool.token_argv(f"worker@{TRUST_DOMAIN}", *WORKER_AUTHZ))

    def up(self, worker: WorkerSettings | None = None, timeout_s: float = 90.0,
           joins: bool = True) -> None:
        """Contextualise and start the worker; with `joins`, wait until its startd is in the
        collector advertising the VM's id. Nothing is left running on a failure."""
        build(WORKER)
        self.down()
        settings = worker or WorkerSettings(
            central_manager=self.pool.address, token_file=None,
            token_command=self.token_command(), ssl_dir=self.pool.ssl_dir)
        try:
            self.reset()
            for old in (self.root / "etc" / "condor" / "tokens.d").glob("*"):
                old.unlink()
            (self.root / "root" / "user-data").write_bytes(
                render(self.template, self.vm, self.site, settings))
            _run("chroot", str(self.root), "cloud-init", "single", "--name", "write_files",
                 "--frequency", "always", "--file", "/root/user-data", timeout=120)
            shutil.copy(ROOT / "testbed" / "condor" / "70-worker-testbed.conf",
                        self.root / "etc" / "condor" / "config.d")
            self.mount_proc()
            _run("chroot", str(self.root), "condor_master")
            if joins:
                self.wait_joined(timeout_s)
        except BaseException:
            self.down()
            raise

    def _names(self, *kind: str) -> list[str]:
        out = self.pool.condor("condor_status", *kind, "-constraint",
                               f'CS_VM_ID == "{self.vm.vm_id}"', "-af", "Name")
        return out.split()

    def slots(self) -> list[str]:
        """The collector's slots advertising this VM's id."""
        return self._names()

    def masters(self) -> list[str]:
        """The collector's masters advertising this VM's id."""
        return self._names("-master")

    def wait_joined(self, timeout_s: float) -> None:
        """Until the collector lists a slot and the master of this VM."""
        if wait_until(lambda: self.slots() and self.masters(), timeout_s):
            return
        raise PoolError(f"worker {self.vm.vm_id} did not join {self.pool.address} within "
                        f"{timeout_s:.0f}s; logs in {self.root / 'var/log/condor'}")


def loop_site(pool: CondorPool, site: str, central_manager: str,
              register_timeout_s: int) -> str:
    """The tables of a whole-loop test's site config before its clouds: the poller on this
    pool, every loop at 2 s, workers told `central_manager`, their token minted by the
    central manager's condor_token_create (as the container's [worker] token_command)."""
    token = shlex.join(["env", "-u", "CONDOR_CONFIG", "chroot", str(pool.root),
                        *pool.token_argv(f"worker@{TRUST_DOMAIN}", *WORKER_AUTHZ)])
    return f"""site = "{site}"
[poller]
source = "condor"
schedds = ["*"]
interval_s = 2
query_timeout_s = 30
[planner]
interval_s = 2
min_vm_age_s = 0
register_timeout_s = {register_timeout_s}
[provisioner]
reconcile_interval_s = 2
[worker]
central_manager = "{central_manager}"
token_command = {json.dumps(token)}
ssl_dir = "{pool.ssl_dir}"
"""


def master_told(poller_log: str, vm_id: str) -> bool:
    """Whether the poller's log (text) says a retire of `vm_id` reached its master."""
    return any(f"vm={vm_id}" in line and "action=retire" in line
               and "outcome=done masters_told=1" in line for line in poller_log.splitlines())


V1_WORKER_JOBS = """
executable = /bin/true
Requirements = VMType =?= "worker"
+VMAMI = "cloud-a:img-a,img-default"
+VMCPUCores = 2
+VMMem = 4096
+TargetClouds = "cloud-a"
queue {count}
"""
"""`count` idle jobs as v1 users write them: VMType in Requirements, a per-cloud image map,
cores, memory and a target cloud."""


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


MANUAL = ROOT / ".cache" / "condor-pool-manual"
"""Where `python -m tests.condor_pool up` keeps the poller's config and token."""


def main(argv: list[str]) -> int:
    """`up` (a pool on 127.0.0.1:19618, left running), `submit USER FILE` or `down`."""
    MANUAL.mkdir(parents=True, exist_ok=True)
    pool = CondorPool(MANUAL, port=19618)
    if argv == ["up"]:
        pool.up()
        print(f"pool at {pool.address}; CONDOR_CONFIG={pool.client_config}")
        return 0
    if len(argv) == 3 and argv[0] == "submit":
        print(f"submitted cluster {pool.submit(argv[1], Path(argv[2]).read_text())}")
        return 0
    if argv == ["down"]:
        pool.down()
        return 0
    print("usage: python -m tests.condor_pool up | submit USER FILE | down  "
          f"(users: {', '.join(CENTRAL_MANAGER.users)})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
