"""A process's NATS connection: the first connect (bounded, with one clear error for each
way it fails), then reconnects forever. `Link` keeps what the connection has been through;
nats-py's callbacks are its methods."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from urllib.parse import urlparse

import nats
import nats.errors
from nats.aio.client import Client

from bus.errors import BusUnavailable
from bus.metrics import Metrics

log = logging.getLogger("bus")

DENIALS_KEPT = 20
"""Permission violations remembered (newest last)."""


def redacted(url: str) -> str:
    """`url` without passwords or tokens (URLs reach logs and error messages)."""
    out = []
    for one in url.split(","):
        parsed = urlparse(one.strip())
        if parsed.password or parsed.username:
            host = parsed.hostname or ""
            port = f":{parsed.port}" if parsed.port else ""
            one = parsed._replace(netloc=f"{parsed.username or ''}:***@{host}{port}").geturl()
        out.append(one)
    return ",".join(out)


async def _reachable(url: str) -> bool:
    """Whether any server of `url` (comma-separated for a cluster) accepts TCP connections."""
    for one in url.split(","):
        parsed = urlparse(one.strip())
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(parsed.hostname or "127.0.0.1", parsed.port or 4222), 2)
        except (OSError, TimeoutError):
            continue
        writer.close()
        return True
    return False


async def _refused(url: str) -> Client:
    raise ConnectionRefusedError(f"no server of {url} accepts connections")


class Link:
    """One service's connection history: outages, reconnects, refusals."""

    def __init__(self, service: str, metrics: Metrics) -> None:
        self.service = service
        self.metrics = metrics
        """The process's metrics (reconnects and permission errors are counted here)."""
        self.closing = False
        """Set by the Bus's close(), so a chosen disconnect is not a warning."""
        self.outage = False
        """Set while disconnected, so each outage is reported once."""
        self.denied: list[str] = []
        """Permission violations the server reported (asynchronous in NATS), newest last."""
        self.refused = ""
        """The server refused our credentials (nats-py keeps retrying; `open` gives up)."""
        self.tls_failed: ssl.SSLError | None = None
        """A server we cannot verify: retrying will not help."""
        self.reconnects: list[float] = []
        """When the connection came back after each outage."""

    async def on_error(self, exc: Exception) -> None:
        """nats-py's error callback."""
        if isinstance(exc, ssl.SSLError):
            self.tls_failed = exc
        if isinstance(exc, OSError) and self.outage:
            return  # nats-py reports every reconnect attempt of an outage
        if "authorization violation" in str(exc).lower():
            self.refused = str(exc)
            return
        if "permissions violation" in str(exc).lower():
            # Asynchronous in NATS: the publish "succeeded"; the server said no later.
            self.denied.append(str(exc))
            del self.denied[:-DENIALS_KEPT]
            self.metrics.bus_permission_errors.inc()
            log.error("nats permission denied service=%s error=%s", self.service, exc)
            return
        log.warning("nats error service=%s error=%r", self.service, exc)

    async def on_disconnect(self) -> None:
        """nats-py's disconnected callback."""
        if not self.closing and not self.outage:
            log.warning("nats disconnected service=%s; reconnecting", self.service)
        self.outage = True

    async def on_reconnect(self) -> None:
        """nats-py's reconnected callback."""
        self.outage = False
        self.reconnects.append(time.time())
        self.metrics.bus_reconnects.inc()
        log.info("nats reconnected service=%s", self.service)

    def denial_for(self, subject: str) -> str:
        """The server's latest refusal of `subject` (or of our reply inbox); "" = none."""
        for problem in reversed(self.denied):
            if subject in problem or "_INBOX" in problem:
                return problem
        return ""

    async def open(self, url: str, wait_s: float, ca_file: str) -> Client:
        """Connect to `url`, retrying for up to `wait_s` seconds, then reconnect forever;
        BusUnavailable says why not (TLS, credentials, nothing listening)."""
        # A cluster is several URLs, comma-separated; nats-py wants them as a list.
        servers = [one.strip() for one in url.split(",") if one.strip()]
        tls: dict[str, ssl.SSLContext] = {}
        if ca_file or any(one.startswith("tls://") for one in servers):
            try:
                tls["tls"] = ssl.create_default_context(cafile=ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise BusUnavailable(f"cannot use the NATS CA file {ca_file}: {exc}") from None
        deadline = time.monotonic() + wait_s
        last_error: Exception | None = None
        while True:
            remaining = deadline - time.monotonic()
            try:
                # nats-py retries an initial connect forever when reconnects are unlimited,
                # so the first connection is bounded here; reconnects are then unlimited.
                return await asyncio.wait_for(nats.connect(
                    servers,
                    name=self.service,
                    connect_timeout=2,
                    reconnect_time_wait=1,
                    # A handler stuck in a hung cloud call must not hold a stop for
                    # nats-py's default 30 s.
                    drain_timeout=5,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    error_cb=self.on_error,
                    disconnected_cb=self.on_disconnect,
                    reconnected_cb=self.on_reconnect,
                    **tls,
                ) if await _reachable(url) else _refused(url), max(remaining, 0.5))
            except (OSError, nats.errors.Error, TimeoutError) as exc:
                if isinstance(exc, ssl.SSLError):
                    self.tls_failed = exc
                if self.tls_failed is not None:
                    problem = self.tls_failed
                    raise BusUnavailable(
                        f"TLS with NATS at {redacted(url)} failed ({problem.reason or problem})"
                        "; give the server's CA in [nats] ca_file or CS_NATS_CA_FILE"
                    ) from None
                if self.refused or "authorization violation" in str(exc).lower():
                    raise BusUnavailable(
                        f"NATS at {redacted(url)} refused the credentials (authorization "
                        "violation): check the user and password in CS_NATS_URL or [nats] url"
                    ) from None
                last_error = exc
            if time.monotonic() >= deadline:
                raise BusUnavailable(
                    f"cannot reach NATS at {redacted(url)} after {wait_s:.0f}s ({last_error}); "
                    "is the server running? `make run` starts one, or set CS_NATS_URL"
                )
            await asyncio.sleep(0.2)
