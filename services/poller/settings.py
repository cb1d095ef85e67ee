"""The poller's settings, from the `[poller]` table of the site config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from bus.errors import ConfigError
from services.poller.demand import DEFAULTS, JobDefaults
from siteconfig import SiteConfig


@dataclass(frozen=True)
class PollerSettings:
    """How the poller senses demand."""

    nats_url: str
    """NATS server URL (CS_NATS_URL overrides the file)."""
    source: Literal["replay", "condor"]
    """`replay`: read `queue_file` each cycle; `condor`: query schedds via htcondor2."""
    queue_file: Path | None
    """condor_q -long or -json dump replayed as the queue (source = "replay")."""
    pool_file: Path | None
    """condor_status -long dump replayed as the pool (source = "replay"); none: no startds."""
    schedds: tuple[str, ...]
    """Schedd names located via the collector; empty means the local schedd, ["*"] every
    schedd the collector knows."""
    interval_s: float
    """Seconds between polls. Default 5."""
    query_timeout_s: float
    """Seconds a schedd or collector query may take before what it feeds is marked stale,
    and a condor action may take before it is retried. Default 20."""
    defaults: JobDefaults = DEFAULTS
    """The VM of a job that does not say what it needs (`default_vm_cores` 1,
    `default_vm_memory_mb` 512, `default_vm_disk_gb` 0: v1's default_VMCPUCores,
    default_VMMem, default_VMStorage). condor_submit's own RequestMemory/RequestDisk for a
    job without request_memory/request_disk is not taken as a request."""

    KEYS: ClassVar[frozenset[str]] = frozenset({
        "source", "queue_file", "pool_file", "schedds", "interval_s", "query_timeout_s",
        "default_vm_cores", "default_vm_memory_mb", "default_vm_disk_gb"})
    """The keys of the `[poller]` table."""

    @classmethod
    def from_site(cls, site: SiteConfig) -> PollerSettings:
        """Read and validate the `[poller]` table."""
        sec = site.section("poller")
        sec.check_keys(cls.KEYS)
        source = sec.string("source", "condor")
        if source not in ("replay", "condor"):
            raise ConfigError(
                f"{site.path}: [poller] source: expected \"replay\" or \"condor\", got {source!r}"
            )
        queue_file = sec.path_value("queue_file", "")
        if source == "replay" and queue_file is None:
            raise ConfigError(
                f"{site.path}: [poller] queue_file: source = \"replay\" needs a condor_q dump"
            )
        return cls(
            nats_url=site.nats_url,
            source="replay" if source == "replay" else "condor",
            queue_file=queue_file,
            pool_file=sec.path_value("pool_file", ""),
            schedds=sec.strings("schedds"),
            interval_s=sec.number("interval_s", 5.0, minimum=0.1),
            query_timeout_s=sec.number("query_timeout_s", 20.0, minimum=1.0),
            defaults=JobDefaults(
                cores=sec.integer("default_vm_cores", DEFAULTS.cores, minimum=1),
                memory_mb=sec.integer("default_vm_memory_mb", DEFAULTS.memory_mb, minimum=1),
                disk_gb=sec.integer("default_vm_disk_gb", DEFAULTS.disk_gb, minimum=0)),
        )
