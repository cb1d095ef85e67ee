"""A real NATS cluster on loopback for tests: N nats-servers with JetStream, routed together."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.demo import free_port


class NatsCluster:
    """`start()` N nodes; `kill(i)` one as a crash would; `url` lists every node."""

    def __init__(self, workdir: Path, nodes: int = 3) -> None:
        self.workdir = workdir
        self.names = [f"n{i + 1}" for i in range(nodes)]
        self.client_ports = [free_port() for _ in self.names]
        self.route_ports = [free_port() for _ in self.names]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (what CS_NATS_URL takes)."""
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.client_ports)

    def _config(self, index: int) -> Path:
        name = self.names[index]
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for i, p in enumerate(self.route_ports)
                           if i != index)
        path = self.workdir / f"{name}.conf"
        path.write_text(f"""
server_name: {name}
listen: 127.0.0.1:{self.client_ports[index]}
jetstream {{ store_dir: "{self.workdir / name}" }}
cluster {{
  name: cs-test
  listen: 127.0.0.1:{self.route_ports[index]}
  routes: [{routes}]
}}
""")
        return path

    def start(self) -> None:
        """Start every node (a stopped one again, on its old store)."""
        binary = Path(sys.executable).parent / "nats-server"
        for index, name in enumerate(self.names):
            if name in self.procs:
                continue
            log = (self.workdir / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(
                [str(binary), "-c", str(self._config(index))], stdout=log,
                stderr=subprocess.STDOUT)
        # Ports open is enough: the services wait for JetStream's leaders themselves.
        deadline = time.monotonic() + 30
        for port in self.client_ports:
            while True:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if any(p.poll() is not None for p in self.procs.values()):
                    raise RuntimeError(f"a nats-server exited: see {self.workdir}")
                assert time.monotonic() < deadline, f"no nats-server on port {port}"
                time.sleep(0.1)

    def log_of(self, name: str) -> str:
        """A node's log so far."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, name: str) -> None:
        """SIGKILL one node."""
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait()

    def stop(self) -> None:
        """Stop every node."""
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
