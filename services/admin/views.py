"""Pure renderings of admin replies: the JSON documents and rich tables `cs` prints."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.table import Table as RichTable
from rich.text import Text

from bus.client import ServiceInstance
from bus.schemas import CloudHealth, CloudStatus, InstanceList, StatusReply


class Table(RichTable):
    """A rich Table whose title and string cells are shown as they are: a reason or a job
    attribute with `[brackets]` must not be read as console markup."""

    def __init__(self, *columns: Any, title: str | None = None, **kwargs: Any) -> None:
        super().__init__(*columns, title=None if title is None else Text(title), **kwargs)

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        """Add a row, each string cell as plain text."""
        super().add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **kwargs)


def startd_states(status: StatusReply) -> dict[str, str]:
    """Per VM id, its slots' states as HTCondor shows them (`Claimed/Busy, Unclaimed/Idle`)."""
    out: dict[str, list[str]] = {}
    for slot in status.pool.startds if status.pool else ():
        out.setdefault(slot.vm_id, []).append(f"{slot.state}/{slot.activity}")
    return {vm_id: ", ".join(sorted(states)) for vm_id, states in out.items()}


def status_json(status: StatusReply) -> dict[str, Any]:
    """`cs status --json`: clouds, vms (each with name, cloud, state, startd), services (each
    instance with its bus problems), demand, pool, plan."""
    startds = startd_states(status)
    return {
        "clouds": [c.model_dump(mode="json") for c in status.clouds],
        "vms": [{"name": vm.vm_id, "startd": startds.get(vm.vm_id, ""),
                 **vm.model_dump(mode="json")} for vm in status.vms],
        "services": [s.model_dump(mode="json") for s in status.services],
        "demand": status.demand.model_dump(mode="json") if status.demand else None,
        "pool": status.pool.model_dump(mode="json") if status.pool else None,
        "plan": status.plan.model_dump(mode="json") if status.plan else None,
    }


def _age(since: float, now: float) -> str:
    seconds = max(0, int(now - since))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def health_text(health: CloudHealth | None, now: float) -> str:
    """A cloud's health in a few words: ok, or what is backed off, for how long, and why."""
    if health is None:
        return "ok"
    parts = []
    if health.backoff_until > now:
        parts.append(f"backing off {health.backoff_until - now:.0f}s after "
                     f"{health.failures} failure(s): {health.reason}")
    for vm_type, until in sorted(health.type_backoff_until.items()):
        if until > now:
            parts.append(f"{vm_type} backed off {until - now:.0f}s "
                         f"({health.type_failures.get(vm_type, 0)} never joined the pool)")
    return "; ".join(parts) or "ok"


def _use(used: int, configured: int, reported: int, others: int, unit: str) -> str:
    limits = []
    if configured:
        limits.append(str(configured))
    if reported:
        limits.append(f"cloud {reported}" + (f" - {others} others" if others else ""))
    return f"{used}{unit}" + (f"/{' & '.join(limits)}" if limits else "")


def quota_text(c: CloudStatus) -> str:
    """Our VMs' cores and memory against the configured and the reported limits."""
    cap = c.capacity
    cores = _use(c.cores_used, c.max_cores, cap.max_cores if cap else 0,
                 cap.others_cores if cap else 0, " cores")
    memory = _use(c.memory_mb_used, c.max_memory_mb, cap.max_memory_mb if cap else 0,
                  cap.others_memory_mb if cap else 0, " MB")
    return f"{cores}, {memory}"


def clouds_table(status: StatusReply, now: float) -> Table:
    """`cs cloud list`: every cloud, its VMs by state, quota use and health."""
    clouds = Table(title="Clouds", title_justify="left")
    for col in ("cloud", "provider", "enabled", "max VMs", "VMs by state", "quota use",
                "health"):
        clouds.add_column(col)
    for c in status.clouds:
        states = ", ".join(f"{k} {v}" for k, v in sorted(c.vms_by_state.items())) or "-"
        clouds.add_row(c.name, c.provider, "yes" if c.enabled else Text("no", style="red"),
                       str(c.max_vms), states, quota_text(c), health_text(c.health, now))
    return clouds


def vms_table(status: StatusReply, now: float) -> Table:
    """`cs vm list`: the VMs of `status` with their startd state."""
    vms = Table(title=f"VMs ({len(status.vms)})", title_justify="left")
    vms.add_column("name", no_wrap=True)
    for col in ("cloud", "type", "state", "age", "startd", "reason"):
        vms.add_column(col)
    startds = startd_states(status)
    for vm in status.vms:
        vms.add_row(vm.vm_id, vm.cloud, vm.spec.vm_type, vm.state, _age(vm.created_at, now),
                    startds.get(vm.vm_id, "-"), vm.reason)
    return vms


def services_health_table(status: StatusReply, now: float) -> Table:
    """The running service instances as they report themselves, with their bus problems."""
    table = Table(title="Services", title_justify="left")
    for col in ("service", "host", "pid", "up", "seen", "reconnects", "problems"):
        table.add_column(col)
    for svc in status.services:
        table.add_row(svc.service, svc.host, str(svc.pid), _age(svc.started_at, now),
                      f"{_age(svc.seen_at, now)} ago", str(svc.reconnects),
                      "; ".join(svc.problems) or "-")
    return table


def status_tables(status: StatusReply, now: float | None = None) -> Group:
    """`cs status`: one table each for clouds, VMs, demand, rejected jobs, planner reasons."""
    now = time.time() if now is None else now
    parts: list[Table | Text] = [clouds_table(status, now), vms_table(status, now)]
    if status.services:
        parts.append(services_health_table(status, now))
    demand = status.demand
    if demand is None:
        parts.append(Text("Demand: no snapshot yet (is cs-poller running?)"))
    else:
        title = f"Demand from {demand.source}, {_age(demand.taken_at, now)} ago"
        if demand.stale:
            title += f" [STALE: {demand.stale_reason}]"
        table = Table(title=title, title_justify="left")
        for col in ("class", "VM type", "cores", "MB", "idle", "running", "users", "clouds"):
            table.add_column(col)
        for cls in demand.classes:
            table.add_row(
                cls.key, cls.vm_type, str(cls.cores), str(cls.memory_mb), str(cls.idle),
                str(cls.running), ", ".join(f"{u} {n}" for u, n in sorted(cls.users.items())),
                ", ".join(cls.target_clouds) or "any")
        parts.append(table)
        if demand.rejected:
            shown = (f"{len(demand.rejected)}" if demand.rejected_total <= len(demand.rejected)
                     else f"first {len(demand.rejected)} of {demand.rejected_total}")
            rejected = Table(title=f"Rejected jobs ({shown})", title_justify="left")
            rejected.add_column("job")
            rejected.add_column("reason")
            for job in demand.rejected:
                rejected.add_row(job.job, job.reason)
            parts.append(rejected)
    if status.plan is not None:
        plan = Table(title=f"Planner ({status.plan.planner}, {_age(status.plan.at, now)} ago)",
                     title_justify="left")
        for col in ("decision", "cloud", "class", "count", "reason"):
            plan.add_column(col)
        for d in status.plan.decisions:
            plan.add_row(d.kind, d.cloud or "-", d.class_key or "-", str(d.count), d.reason)
        parts.append(plan)
    return Group(*parts)


def plan_tables(doc: dict[str, Any]) -> Group:
    """`cs plan`: demand classes, rejected jobs, intents and the planner's reasons."""
    demand = Table(title="Demand", title_justify="left")
    for col in ("class", "VM type", "cores", "MB", "idle", "running", "users"):
        demand.add_column(col)
    for c in doc["demand"]:
        demand.add_row(c["class"], c["vm_type"], str(c["cores"]), str(c["memory_mb"]),
                       str(c["idle"]), str(c["running"]),
                       ", ".join(f"{u} {n}" for u, n in sorted(c["users"].items())))
    parts: list[Table | Text] = [demand]
    if doc["rejected"]:
        rejected = Table(title=f"Rejected jobs ({len(doc['rejected'])})", title_justify="left")
        rejected.add_column("job")
        rejected.add_column("reason")
        for r in doc["rejected"]:
            rejected.add_row(r["job"], r["reason"])
        parts.append(rejected)
    if doc["pool"] or doc["pool_problems"]:
        parts.append(Text(f"Pool: {len(doc['pool'])} slot(s) of ours"
                          + "".join(f"\n  problem: {p}" for p in doc["pool_problems"])))
    intents = Table(title=f"Intents ({len(doc['intents'])})", title_justify="left")
    for col in ("action", "cloud", "VM"):
        intents.add_column(col)
    for i in doc["intents"]:
        intents.add_row(i["action"], i["cloud"], i["vm_id"])
    reasons = Table(title="Reasons", title_justify="left")
    for col in ("decision", "cloud", "class", "count", "reason"):
        reasons.add_column(col)
    for d in doc["decisions"]:
        reasons.add_row(d["kind"], d["cloud"] or "-", d["class_key"] or "-", str(d["count"]),
                        d["reason"])
    return Group(*parts, intents, reasons)


def services_table(found: list[ServiceInstance]) -> Table:
    """`cs services`: every live instance and what it answers."""
    table = Table(title=f"Services ({len(found)} instance(s))", title_justify="left")
    for col in ("service", "id", "version", "endpoints"):
        table.add_column(col)
    for svc in found:
        table.add_row(svc.name, svc.id, svc.version, ", ".join(svc.endpoints))
    return table


def instances_table(listing: InstanceList) -> Table:
    """`cs cloud show`: what the cloud itself holds."""
    table = Table(title=f"Instances on {listing.cloud} ({len(listing.instances)})",
                  title_justify="left")
    for col in ("name", "state", "intent"):
        table.add_column(col)
    for inst in listing.instances:
        table.add_row(inst.name, inst.state, inst.intent_id)
    return table
