"""How a service is observed: where it serves /metrics, how it logs (the `[metrics]` and
`[logging]` tables, with environment overrides for one process)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from bus.errors import ConfigError
from providers.table import programs
from runtime.logs import FORMATS
from siteconfig import SiteConfig

PORT_OFFSETS = {"cs-admin": 0, "cs-poller": 1, "cs-planner": 2,
                **{program: 3 + n for n, program in enumerate(programs())}}
"""Each service's /metrics port is [metrics] base_port plus its offset (the provisioners in
the order of the table of providers)."""


@dataclass(frozen=True)
class ObserveSettings:
    """Metrics endpoint and log format of one service process."""

    metrics_host: str = "127.0.0.1"
    """Address /metrics listens on ([metrics] host); 0.0.0.0 for a Prometheus elsewhere."""
    metrics_port: int = 0
    """Port of this service's /metrics; 0 = none. [metrics] base_port + the service's
    offset (admin 0, poller 1, planner 2, provisioner-libvirt 3, -openstack 4), or
    CS_METRICS_PORT for this process (replicas on one host need one each)."""
    log_format: str = "text"
    """"text" (key=value lines) or "json" (one object per line); CS_LOG_FORMAT overrides."""
    log_level: str = "INFO"
    """Root log level ([logging] level)."""

    METRICS_KEYS: ClassVar[frozenset[str]] = frozenset({"host", "base_port"})
    """The keys of the `[metrics]` table."""
    LOGGING_KEYS: ClassVar[frozenset[str]] = frozenset({"format", "level"})
    """The keys of the `[logging]` table."""

    @classmethod
    def from_site(cls, site: SiteConfig, service: str,
                  env: Mapping[str, str]) -> ObserveSettings:
        """Read `[metrics]` and `[logging]`, then the environment's overrides."""
        metrics = site.section("metrics")
        metrics.check_keys(cls.METRICS_KEYS)
        logging_sec = site.section("logging")
        logging_sec.check_keys(cls.LOGGING_KEYS)
        base = metrics.integer("base_port", 0)
        port = base + PORT_OFFSETS.get(service, 0) if base else 0
        if env.get("CS_METRICS_PORT"):
            try:
                port = int(env["CS_METRICS_PORT"])
            except ValueError:
                raise ConfigError(f"CS_METRICS_PORT={env['CS_METRICS_PORT']!r}: expected a "
                                  "port number") from None
        if not 0 <= port <= 65535:
            raise ConfigError(f"{site.path}: [metrics] port {port} is not a port number")
        d = cls()  # each default written once, on the fields above
        fmt = env.get("CS_LOG_FORMAT") or logging_sec.choice("format", d.log_format, FORMATS)
        if fmt not in FORMATS:
            raise ConfigError(f"CS_LOG_FORMAT={fmt!r}: expected one of {', '.join(FORMATS)}")
        return cls(metrics_host=metrics.string("host", d.metrics_host), metrics_port=port,
                   log_format=fmt, log_level=logging_sec.choice(
                       "level", d.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")))
