"""`cs plan` and `cs config check`: the services' pure cores and settings, offline.

What the planner would decide for a queue dump, touching no cloud and no bus; whether every
service accepts the site config. This is the one place where the admin package imports other
services (allowed by the import contract for this module only).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bus.schemas import PoolSnapshot
from provisioning.settings import ProvisionerServiceSettings
from provisioning.userdata import WorkerSettings
from runtime.observe import PORT_OFFSETS, ObserveSettings
from services.admin.history import interval_of
from services.admin.statuspage import listen_address
from services.planner.core import plan
from services.planner.settings import PlannerSettings
from services.poller.classads import read_dump
from services.poller.demand import PROJECTION, build_demand
from services.poller.pool import PROJECTION as POOL_PROJECTION
from services.poller.pool import build_pool, machines
from services.poller.settings import PollerSettings
from siteconfig import SiteConfig


def plan_offline(site: SiteConfig, queue: Path, pool_file: Path | None,
                 now: float | None = None) -> dict[str, Any]:
    """The `cs plan --json` document: demand per class, rejected jobs, pool, intents, reasons.

    Clouds come from the site config with their configured enabled flags; no VM exists yet.
    """
    now = time.time() if now is None else now
    pool: PoolSnapshot | None = None
    problems: list[str] = []
    if pool_file is not None:
        pool, problems = build_pool(read_dump(pool_file, POOL_PROJECTION),
                                    f"replay:{pool_file.name}", now)
    # A running job needs a VM of ours only where it runs on one: on the pool's (none
    # without a pool: no VM of ours exists offline).
    ours = machines(pool) if pool else frozenset()
    demand = build_demand(read_dump(queue, PROJECTION), f"replay:{queue.name}", now,
                          defaults=PollerSettings.from_site(site).defaults, our_hosts=ours)
    result = plan(site.site, demand, site.clouds, [], now, pool=pool)
    intents = [{"action": "boot", "cloud": b.cloud, "vm_id": b.vm_id, "class": b.class_key,
                "spec": b.spec.model_dump(mode="json")} for b in result.boots]
    intents += [{"action": "kill", "cloud": k.cloud, "vm_id": k.vm_id, "reason": k.reason}
                for k in result.kills]
    return {
        "demand": [{"class": c.key, "vm_type": c.vm_type, "idle": c.idle, "running": c.running,
                    "running_elsewhere": c.running_elsewhere, "notes": list(c.notes),
                    "users": c.users, "cores": c.cores, "memory_mb": c.memory_mb,
                    "disk_gb": c.disk_gb, "target_clouds": list(c.target_clouds)}
                   for c in demand.classes],
        "rejected": [{"job": r.job, "reason": r.reason} for r in demand.rejected],
        "jobs": {"read": demand.jobs_read, "not_demand": demand.not_demand,
                 "rejected": demand.rejected_total},
        "pool": [s.model_dump(mode="json") for s in pool.startds] if pool else [],
        "pool_problems": problems,
        "intents": intents,
        "decisions": [d.model_dump(mode="json") for d in result.decisions],
    }


def check_config(site: SiteConfig) -> None:
    """Validate every service's table of the site config (ConfigError names the key)."""
    PollerSettings.from_site(site)
    PlannerSettings.from_site(site)
    ProvisionerServiceSettings.from_site(site)
    WorkerSettings.from_site(site)
    listen_address(site)
    interval_of(site)
    for service in PORT_OFFSETS:
        ObserveSettings.from_site(site, service, {})
