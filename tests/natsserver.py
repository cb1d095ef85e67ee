"""A real nats-server for tests: JetStream on, a free port, data in a directory we own."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


class NatsServer:
    """Start with `start()`; `restart()` keeps the port and the store (as a crash would)."""

    def __init__(self, workdir: Path, config: Path | None = None) -> None:
        self.workdir = workdir
        self.config = config
        """A nats-server config file (users, permissions), or None for an open server."""
        self.store = workdir / "jetstream"
        self.ports_dir = workdir / "ports"
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL."""
        assert self.port is not None, "server not started"
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start on the remembered port, or on a free one the first time."""
        self.ports_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.ports_dir.glob("*.ports"):
            stale.unlink()
        binary = Path(sys.executable).parent / "nats-server"
        port = str(self.port) if self.port else "-1"
        log = (self.workdir / "nats.log").open("ab")
        self.proc = subprocess.Popen(
            [str(binary), "-js", "-a", "127.0.0.1", "-p", port, "--ports_file_dir",
             str(self.ports_dir), "-sd", str(self.store),
             *(["-c", str(self.config)] if self.config else [])],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            files = list(self.ports_dir.glob("*.ports"))
            if files:
                try:
                    ports = json.loads(files[0].read_text())
                except json.JSONDecodeError:
                    time.sleep(0.05)
                    continue
                self.port = int(ports["nats"][0].rsplit(":", 1)[1])
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: see {self.workdir / 'nats.log'}")
            time.sleep(0.05)
        raise RuntimeError("nats-server did not write its ports file within 15 s")

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Stop and start again with the same port and store."""
        self.stop()
        self.start()
