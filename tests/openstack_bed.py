"""A real OpenStack test cloud on this machine: Keystone, Nova, Placement and Glance from PyPI,
MariaDB and RabbitMQ from Debian's packages, Nova's fake virt driver (with fault injection),
all on 127.0.0.1. Users authenticate with passwords or application credentials through
Keystone's catalog, as a site's clouds.yaml does.

Neutron is a stand-in (testbed/openstack/pylib/fake_neutron.py): the few read calls Nova makes
for servers booted with `networks="none"`.

`python -m tests.openstack_bed up|down` runs it by hand; the tests use `Testbed`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "testbed" / "openstack"
HOME = Path(os.environ.get("CS_TESTBED_DIR", "/var/lib/cloudscheduler-test/openstack"))
"""Rendered configs, data, logs and pids; outside the repo (RabbitMQ runs as its own user)."""
APT = ("mariadb-server", "rabbitmq-server")
APIS = {"keystone": ("/v3", "application/vnd.openstack.identity-v3+json"),
        "placement": ("/", '"min_version"'),
        "glance": ("/versions", '"versions"'),
        "nova-api": ("/v2.1", "application/vnd.openstack.compute+json;version=2.1"),
        "neutron": ("/", '"v2.0"')}
"""Each HTTP service, with a path it answers without credentials and a text its answer must
hold: a process of another kind on the port is not taken for it."""
PORT_NAMES = (*APIS, "mariadb", "rabbitmq", "rabbitmq-dist", "epmd")
"""Every port the testbed listens on, each chosen free at `up` (kept in ports.json)."""
LOCK_WAIT_S = 3600.0
"""How long a test run waits for another run on this machine to be done with the testbed."""
DATABASES = ("keystone", "nova_api", "nova", "nova_cell0", "placement", "glance")
ADMIN_CLOUD = "cs-admin"
DEMO_CLOUD = "cs-demo"
APPCRED_CLOUD = "cs-demo-appcred"
IMAGE = "tiny"
FLAVORS = {"m1.tiny": (1, 512, 1), "m1.small": (1, 2048, 5), "c2.m2": (2, 2048, 5)}


def _venv() -> Path:
    digest = hashlib.sha256((SOURCE / "requirements.txt").read_bytes()).hexdigest()[:12]
    return ROOT / ".cache" / f"openstack-venv-{digest}"


def _log(msg: str) -> None:
    print(f"testbed: {msg}", file=sys.stderr, flush=True)


def _run(*cmd: str | Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env,
                            timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(str(c) for c in cmd)} failed ({result.returncode}):\n"
                           f"{(result.stderr or result.stdout)[-3000:]}")
    return result.stdout


class Testbed:
    """Start, use and stop the test cloud."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, home: Path = HOME) -> None:
        self.home = home
        self.venv = _venv()
        self.bin = self.venv / "bin"
        self.clouds_yaml = home / "clouds.yaml"
        self.chaos_file = home / "data" / "chaos.json"
        self.ports_file = home / "ports.json"
        self.ports: dict[str, int] = {}
        """The ports of the testbed that is up (read from ports.json), or of the next `up`."""
        with contextlib.suppress(OSError, ValueError):
            self.ports = {k: int(v) for k, v in json.loads(self.ports_file.read_text()).items()}

    @contextlib.contextmanager
    def held(self, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
        """The testbed for this process alone while the block runs: one testbed per machine
        (one RabbitMQ node name, one port mapper), so a second test run (a developer's
        beside CI's) waits here until the first has torn it down, rather than tearing it
        down under the first. The lock is a file lock: a run that dies releases it."""
        self.home.parent.mkdir(parents=True, exist_ok=True)
        path = self.home.parent / f"{self.home.name}.lock"
        with path.open("a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "?"
                _log(f"waiting for the OpenStack testbed: another test run (pid {holder}) "
                     f"holds {path}")
                deadline = time.monotonic() + wait_s
                while True:
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise TimeoutError(
                                f"the OpenStack testbed stayed held by pid {holder} for "
                                f"{wait_s:.0f}s ({path})") from None
                        time.sleep(2.0)
            lock.seek(0)
            lock.truncate()
            lock.write(f"{os.getpid()}\n")
            lock.flush()
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def url(self, service: str, path: str = "") -> str:
        """http://127.0.0.1:PORT of an API of the testbed that is up, and `path`."""
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    # ---- installation ------------------------------------------------------------------

    def install(self) -> None:
        """Debian packages and the services' venv (cached, keyed by the requirements)."""
        missing = [p for p in APT if subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True
        ).stdout != "install ok installed"]
        if missing:
            _log(f"installing {' '.join(missing)}")
            _run("apt-get", "update", "-qq")
            _run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing,
                 env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        # The Debian packages start their daemons where systemd exists; ours run elsewhere.
        subprocess.run(["service", "mariadb", "stop"], capture_output=True)
        subprocess.run(["service", "rabbitmq-server", "stop"], capture_output=True)
        if not (self.venv / ".ok").exists():
            _log(f"building the OpenStack venv {self.venv} (a few minutes, once)")
            shutil.rmtree(self.venv, ignore_errors=True)
            _run(sys.executable, "-m", "venv", self.venv)
            _run(self.bin / "pip", "install", "-q", "-r", SOURCE / "requirements.txt",
                 timeout=1800)
            (self.venv / ".ok").touch()

    def _render(self) -> None:
        """The configs with $TESTBED and each $PORT_<NAME> (PORT_NOVA_API for nova-api)."""
        values = {"$TESTBED": str(self.home)} | {
            f"$PORT_{name.upper().replace('-', '_')}": str(port)
            for name, port in self.ports.items()}
        for sub in ("etc", "pylib"):
            for src in (SOURCE / sub).rglob("*"):
                if src.is_file():
                    dst = self.home / sub / src.relative_to(SOURCE / sub)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    text = src.read_text()
                    # Longest first: $PORT_RABBITMQ is the start of $PORT_RABBITMQ_DIST.
                    for key in sorted(values, key=len, reverse=True):
                        text = text.replace(key, values[key])
                    dst.write_text(text)

    # ---- processes ---------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        etc = self.home / "etc"
        return dict(
            os.environ, PYTHONPATH=str(self.home / "pylib"),
            OS_NOVA_CONFIG_DIR=str(etc / "nova"),
            OS_NOVA_CONFIG_FILES="api-paste-keystone.ini;nova.conf",
            OS_PLACEMENT_CONFIG_DIR=str(etc / "placement"),
            OS_GLANCE_CONFIG_DIR=str(etc / "glance"),
            OS_KEYSTONE_CONFIG_DIR=str(etc / "keystone"),
            TESTBED_FAULTS_FILE=str(self.chaos_file))

    def _rabbit_env(self) -> dict[str, str]:
        rabbit = self.home / "rabbit"
        return dict(
            os.environ, HOME="/var/lib/rabbitmq",
            RABBITMQ_CONFIG_FILE=str(self.home / "etc" / "rabbitmq.conf"),
            RABBITMQ_MNESIA_BASE=str(rabbit / "mnesia"), RABBITMQ_LOG_BASE=str(rabbit / "log"),
            RABBITMQ_NODENAME="rabbit@localhost", RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.home / "etc" / "enabled_plugins"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            # A testbed from before ports.json used Erlang's own defaults (25672, 4369).
            **({"RABBITMQ_DIST_PORT": str(self.ports["rabbitmq-dist"]),
                "ERL_EPMD_PORT": str(self.ports["epmd"])} if "epmd" in self.ports else {}))

    def _start(self, name: str, *cmd: str | Path) -> None:
        log = (self.home / "logs" / f"{name}.log").open("ab")
        proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT,
                                env=self._env(), cwd=self.home, start_new_session=True)
        (self.home / "pids" / f"{name}.pid").write_text(str(proc.pid))

    def start_service(self, name: str) -> None:
        """Start one OpenStack service (after `stop_service`, for fault injection)."""
        gunicorn = (self.bin / "gunicorn", "-w", "1", "--threads", "8", "--timeout", "120")
        nova_conf = ("--config-file", self.home / "etc" / "nova" / "nova.conf")
        bind = {name: f"127.0.0.1:{self.ports[name]}" for name in APIS}
        commands: dict[str, tuple[str | Path, ...]] = {
            "keystone": (*gunicorn, "-b", bind["keystone"], "keystone_wsgi:application"),
            "placement": (*gunicorn, "-b", bind["placement"],
                          "placement.wsgi.api:application"),
            "glance": (*gunicorn, "-b", bind["glance"], "glance.wsgi.api:application"),
            "nova-api": (*gunicorn, "-b", bind["nova-api"], "nova_api_wsgi:application"),
            "neutron": (self.bin / "python", self.home / "pylib" / "fake_neutron.py",
                        "127.0.0.1", str(self.ports["neutron"])),
            "nova-conductor": (self.bin / "nova-conductor", *nova_conf),
            "nova-scheduler": (self.bin / "nova-scheduler", *nova_conf),
            "nova-compute": (self.bin / "python", self.home / "pylib" / "nova_compute_chaos.py",
                             *nova_conf),
        }
        self._start(name, *commands[name])

    def stop_service(self, name: str, sig: int = 15) -> None:
        """Stop one service started by `start_service` (SIGKILL with sig=9)."""
        pidfile = self.home / "pids" / f"{name}.pid"
        if not pidfile.exists():
            return
        pid = int(pidfile.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        pidfile.unlink(missing_ok=True)

    # ---- up and down -------------------------------------------------------------------

    def up(self) -> None:
        """Everything from nothing: databases, schemas, services, users, flavors, image."""
        t0 = time.monotonic()
        self.install()
        self.down()
        for sub in ("data", "mysql", "rabbit", "logs", "pids", "etc", "pylib"):
            shutil.rmtree(self.home / sub, ignore_errors=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
        self.ports_file.write_text(json.dumps(self.ports))
        for sub in ("data/images", "data/staging", "data/tasks", "data/state", "data/locks",
                    "data/keystone", "mysql", "rabbit", "logs", "pids"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        self._render()
        my_cnf = self.home / "etc" / "my.cnf"
        _run("mariadb-install-db", f"--defaults-file={my_cnf}", "--user=root",
             "--skip-test-db")
        self._start("mariadb", "mariadbd", f"--defaults-file={my_cnf}")
        _run("chown", "-R", "rabbitmq:rabbitmq", self.home / "rabbit")
        subprocess.run(["rabbitmq-server", "-detached"], env=self._rabbit_env(),
                       capture_output=True, timeout=60)
        self._wait("MariaDB", lambda: subprocess.run(
            ["mariadb-admin", f"--defaults-file={my_cnf}", "ping"],
            capture_output=True).returncode == 0, 60)
        grants = "".join(f"CREATE DATABASE {db};" for db in DATABASES)
        _run("mariadb", f"--defaults-file={my_cnf}", "-e",
             "CREATE USER 'os'@'127.0.0.1' IDENTIFIED BY 'os'; "
             f"GRANT ALL PRIVILEGES ON *.* TO 'os'@'127.0.0.1'; {grants}")
        self._schemas()
        self._wait("RabbitMQ", lambda: subprocess.run(
            ["rabbitmqctl", "-q", "await_startup"], env=self._rabbit_env(),
            capture_output=True, timeout=60).returncode == 0, 120)
        _log(f"databases and broker ready after {time.monotonic() - t0:.0f}s")
        for name in ("keystone", "placement", "glance", "nova-api", "neutron",
                     "nova-conductor", "nova-scheduler", "nova-compute"):
            self.start_service(name)
        for name in APIS:
            self._wait(name, functools.partial(self._serves, name), 120)
        self._write_clouds_yaml(appcred=None)
        self._setup_keystone()
        self._wait("nova-compute", self._computes_up, 180)
        nova_conf = self.home / "etc" / "nova" / "nova.conf"
        _run(self.bin / "nova-manage", "--config-file", nova_conf, "cell_v2",
             "discover_hosts", env=self._env())
        self._setup_cloud()
        _log(f"OpenStack ready after {time.monotonic() - t0:.0f}s")

    def _schemas(self) -> None:
        etc = self.home / "etc"
        ks = ("--config-file", etc / "keystone" / "keystone.conf")
        nova = ("--config-file", etc / "nova" / "nova.conf")
        env = self._env()
        steps: list[tuple[str | Path, ...]] = [
            (self.bin / "keystone-manage", *ks, "db_sync"),
            (self.bin / "keystone-manage", *ks, "fernet_setup", "--keystone-user", "root",
             "--keystone-group", "root"),
            (self.bin / "keystone-manage", *ks, "credential_setup", "--keystone-user", "root",
             "--keystone-group", "root"),
            (self.bin / "keystone-manage", *ks, "bootstrap", "--bootstrap-password", "admin",
             "--bootstrap-admin-url", self.url("keystone", "/v3/"),
             "--bootstrap-internal-url", self.url("keystone", "/v3/"),
             "--bootstrap-public-url", self.url("keystone", "/v3/"),
             "--bootstrap-region-id", "RegionOne"),
        ]
        parallel = [
            subprocess.Popen([str(self.bin / "placement-manage"), "--config-file",
                              str(etc / "placement" / "placement.conf"), "db", "sync"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
            subprocess.Popen([str(self.bin / "glance-manage"), "--config-file",
                              str(etc / "glance" / "glance-api.conf"), "db_sync"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
        ]
        steps += [(self.bin / "nova-manage", *nova, "api_db", "sync"),
                  (self.bin / "nova-manage", *nova, "cell_v2", "map_cell0"),
                  (self.bin / "nova-manage", *nova, "db", "sync"),
                  (self.bin / "nova-manage", *nova, "cell_v2", "create_cell", "--name",
                   "cell1")]
        for step in steps:
            _run(*step, env=env)
        for proc in parallel:
            _, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"{proc.args!r} failed: {err.decode()[-2000:]}")

    def down(self) -> None:
        """Stop every process of the testbed (leaves its data)."""
        pids = self.home / "pids"
        if pids.exists():
            for pidfile in pids.glob("*.pid"):
                self.stop_service(pidfile.stem)
        if (self.home / "rabbit").exists():
            subprocess.run(["rabbitmqctl", "stop"], env=self._rabbit_env(),
                           capture_output=True, timeout=60)
            # Erlang's port mapper outlives the broker; on a port of its own it would be left
            # behind by every run.
            subprocess.run(["epmd", "-kill"], env=self._rabbit_env(), capture_output=True,
                           timeout=60)

    # ---- readiness and set-up ----------------------------------------------------------

    def running(self) -> bool:
        """Whether a testbed is up here already (every API of ours answers, credentials
        written)."""
        return self.clouds_yaml.exists() and bool(self.ports) and all(
            self._serves(name) for name in APIS)

    @staticmethod
    def _wait(what: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready within {timeout:.0f}s")
            time.sleep(0.5)

    def _serves(self, name: str) -> bool:
        """Whether the service `name` we started listens on its port and answers as that
        service: the listening socket is held by the process we started (or one of its
        session), and its answer holds the service's own text (APIS)."""
        pidfile = self.home / "pids" / f"{name}.pid"
        try:
            session = int(pidfile.read_text())
        except (OSError, ValueError):
            return False
        if not any(_session_of(pid) == session for pid in _listeners(self.ports[name])):
            return False
        path, text = APIS[name]
        try:
            with urllib.request.urlopen(self.url(name, path), timeout=2) as reply:
                body = reply.read(65536).decode(errors="replace")
        except urllib.error.HTTPError as exc:  # Glance's version list is a 300
            body = exc.read(65536).decode(errors="replace")
        except OSError:
            return False
        return text in body

    def _computes_up(self) -> bool:
        out = self.admin_python(
            "print(sum(s.state == 'up' for s in c.compute.services()))")
        return out.strip() == "3"

    def admin_python(self, code: str) -> str:
        """Run `code` with `c` an admin openstacksdk connection (in this test's Python)."""
        prog = ("import openstack\n"
                f"c = openstack.connect(cloud={ADMIN_CLOUD!r})\n"
                # find_*'s ignore_missing=True is deprecated (its default flips in SDK 6.0).
                "def find(lookup, name):\n"
                "    try:\n"
                "        return lookup(name, ignore_missing=False)\n"
                "    except openstack.exceptions.NotFoundException:\n"
                "        return None\n" + code)
        return _run(sys.executable, "-c", prog,
                    env=dict(os.environ, OS_CLIENT_CONFIG_FILE=str(self.clouds_yaml)))

    def _write_clouds_yaml(self, appcred: tuple[str, str] | None) -> None:
        def password(user: str, project: str) -> dict[str, object]:
            return {"auth": {"auth_url": self.url("keystone", "/v3"), "username": user,
                             "password": user, "project_name": project,
                             "user_domain_name": "Default", "project_domain_name": "Default"},
                    "region_name": "RegionOne", "identity_api_version": 3}
        clouds: dict[str, object] = {ADMIN_CLOUD: password("admin", "admin"),
                                     DEMO_CLOUD: password("demo", "demo")}
        if appcred is not None:
            clouds[APPCRED_CLOUD] = {
                "auth_type": "v3applicationcredential",
                "auth": {"auth_url": self.url("keystone", "/v3"),
                         "application_credential_id": appcred[0],
                         "application_credential_secret": appcred[1]},
                "region_name": "RegionOne", "identity_api_version": 3}
        # JSON is YAML: no YAML writer needed.
        self.clouds_yaml.write_text(json.dumps({"clouds": clouds}, indent=2))
        self.clouds_yaml.chmod(0o600)

    def _setup_keystone(self) -> None:
        self.admin_python(f"""
idn = c.identity
def proj(n): return find(idn.find_project, n) or idn.create_project(name=n, domain_id='default')
def user(n):
    return find(idn.find_user, n) or idn.create_user(name=n, password=n, domain_id='default')
service, demo = proj('service'), proj('demo')
for u in ('nova', 'glance'):
    idn.assign_project_role_to_user(service, user(u), idn.find_role('admin', ignore_missing=False))
idn.assign_project_role_to_user(demo, user('demo'), idn.find_role('member', ignore_missing=False))
for typ, name, url in [('compute', 'nova', {self.url("nova-api", "/v2.1")!r}),
                       ('image', 'glance', {self.url("glance")!r}),
                       ('placement', 'placement', {self.url("placement")!r}),
                       ('network', 'neutron', {self.url("neutron")!r})]:
    svc = find(idn.find_service, name) or idn.create_service(name=name, type=typ)
    have = {{e.interface for e in idn.endpoints(service_id=svc.id)}}
    for iface in ('public', 'internal', 'admin'):
        if iface not in have:
            idn.create_endpoint(service_id=svc.id, interface=iface, url=url,
                                region_id='RegionOne')
""")
        out = _run(sys.executable, "-c", f"""
import openstack
d = openstack.connect(cloud={DEMO_CLOUD!r})
uid = d.current_user_id
cred = d.identity.create_application_credential(user=uid, name='cs-test')
print(cred.id, cred.secret)
""", env=dict(os.environ, OS_CLIENT_CONFIG_FILE=str(self.clouds_yaml)))
        cred_id, secret = out.split()
        self._write_clouds_yaml(appcred=(cred_id, secret))

    def _setup_cloud(self) -> None:
        flavors = ";".join(
            f"find(c.compute.find_flavor, {n!r}) or c.compute.create_flavor(name={n!r}, vcpus={v}, "
            f"ram={r}, disk={d})" for n, (v, r, d) in FLAVORS.items())
        self.admin_python(f"""
{flavors}
if not find(c.image.find_image, {IMAGE!r}):
    c.image.create_image(name={IMAGE!r}, data=b'\\0' * 1024 * 1024, disk_format='raw',
                         container_format='bare', visibility='public', wait=True)
""")

    def set_faults(self, rules: dict[str, str] | None) -> None:
        """Inject faults into nova-compute's spawn (see pylib/fault_driver.py); None clears."""
        if rules is None:
            self.chaos_file.unlink(missing_ok=True)
        else:
            self.chaos_file.write_text(json.dumps(rules))


def free_ports(count: int) -> list[int]:
    """`count` different TCP ports nothing listens on now (held open together while chosen,
    so no two are the same)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def _listeners(port: int) -> list[int]:
    """The processes holding a socket that listens on 127.0.0.1:`port` (or any address)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), Path(table).open() as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{inode}]")
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(str(fd.readlink()) in inodes for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
    return pids


def _session_of(pid: int) -> int:
    try:
        return os.getsid(pid)
    except OSError:
        return -1


def main(argv: list[str]) -> int:
    """`up` or `down`."""
    bed = Testbed()
    if argv[1:] == ["up"]:
        bed.up()
        print(f"OS_CLIENT_CONFIG_FILE={bed.clouds_yaml}")
        return 0
    if argv[1:] == ["down"]:
        bed.down()
        return 0
    print("usage: python -m tests.openstack_bed up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
