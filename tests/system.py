"""Start every service as its own process against a given NATS, as `cs up` would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.supervisor import COMMANDS


class System:
    """The five services as separate processes, plus a way to run `cs`."""

    def __init__(self, workdir: Path, config: Path, nats_url: str,
                 service_urls: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.config = config
        self.nats_url = nats_url
        """What `cs` connects with."""
        self.service_urls = service_urls or {}
        """A service's own NATS URL (its own user on a locked-down bus), else nats_url."""
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = dict(os.environ, CS_CONFIG=str(config), CS_NATS_URL=nats_url,
                        PYTHONUNBUFFERED="1")

    def start(self) -> None:
        """Start every service."""
        for name, command in COMMANDS.items():
            log = (self.workdir / f"{name}.log").open("ab")
            env = dict(self.env, CS_NATS_URL=self.service_urls.get(name, self.nats_url))
            self.procs[name] = subprocess.Popen(
                [sys.executable, *command], stdout=log, stderr=subprocess.STDOUT, env=env)

    def stop(self) -> None:
        """SIGTERM every service and wait; every one must exit cleanly."""
        for proc in self.procs.values():
            proc.terminate()
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        self.procs.clear()
        bad = {n: c for n, c in codes.items() if c != 0}
        assert not bad, f"services did not stop cleanly: {bad}\n{self.logs()}"

    def cs(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the `cs` CLI."""
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", *args], capture_output=True,
            text=True, env=self.env, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"cs {' '.join(args)} failed: {result.stderr}\n{self.logs()}")
        return result

    def status(self) -> dict[str, Any]:
        """`cs status --json`, parsed."""
        doc: dict[str, Any] = json.loads(self.cs("status", "--json").stdout)
        return doc

    def wait_for(self, what: str, check: Callable[[dict[str, Any]], bool],
                 timeout: float = 60.0) -> dict[str, Any]:
        """Poll `cs status --json` until `check` holds; the status that satisfied it."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            result = self.cs("status", "--json", check=False)
            if result.returncode == 0:
                last = json.loads(result.stdout)
                if check(last):
                    return last
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last status: "
                             f"{json.dumps(last)[:3000]}\n{self.logs()}")

    def logs(self, lines: int = 15) -> str:
        """The tail of every service log, for failure messages."""
        out = []
        for path in sorted(self.workdir.glob("cs-*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(out)
