"""Pure renderings of admin replies: the JSON documents and rich tables `cs` prints."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Group, JustifyMethod
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


@dataclass
class Column:
    """One column of a table that fits its terminal: the columns are offered in order of
    importance, and those that do not fit are left out (all of them with `-o wide`)."""

    header: str
    cells: list[str | Text]
    keep: bool = False
    """Never left out (what the table is about: a VM's name, its cloud, its state)."""
    wrap: bool = False
    """Long free text (a reason): may wrap over lines; the others are never cut."""
    justify: JustifyMethod = "left"


WRAP_MIN = 24
"""Narrowest a wrapping column is counted as when deciding what fits."""


def _cell_width(cell: str | Text) -> int:
    return max((len(line) for line in str(cell).splitlines()), default=0)


def fitted(title: str, columns: list[Column], width: int | None,
           order: list[str] | None = None, only: set[str] | None = None,
           header: bool = True) -> Table:
    """A table of `columns` that fits `width` characters (None: all columns). `columns` come
    in order of importance; `order`, by header, is the order they are shown in. `only`
    forces the columns shown (a page of a listing shows those of the first page), and
    `header` False leaves the title and the column names out (a later page)."""
    chosen: list[Column] = []
    used = 1  # the right-hand border
    for col in columns:
        natural = max([len(col.header), *(_cell_width(c) for c in col.cells)])
        need = (min(natural, WRAP_MIN) if col.wrap else natural) + 3  # border and padding
        if only is not None:
            if col.header in only:
                chosen.append(col)
        elif col.keep or width is None or used + need <= width:
            chosen.append(col)
            used += need
    hidden = len(columns) - len(chosen)
    if order:
        chosen.sort(key=lambda c: order.index(c.header) if c.header in order else len(order))
    table = Table(title=title + (f" (+{hidden} columns: -o wide)" if hidden else "")
                  if header else None, title_justify="left", show_header=header)
    for col in chosen:
        table.add_column(col.header, no_wrap=not col.wrap, overflow="fold" if col.wrap
                         else "ellipsis", justify=col.justify)
    for row in zip(*(c.cells for c in chosen), strict=True):
        table.add_row(*row)
    return table


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


def clouds_table(status: StatusReply, now: float, width: int | None = None) -> Table:
    """`cs cloud list`: every cloud, its VMs by state, quota use and health."""
    cs = status.clouds
    columns = [
        Column("cloud", [c.name for c in cs], keep=True),
        Column("VMs by state", [", ".join(f"{k} {v}" for k, v in sorted(c.vms_by_state.items()))
                                or "-" for c in cs], keep=True),
        Column("enabled", ["yes" if c.enabled else Text("no", style="red") for c in cs]),
        Column("health", [health_text(c.health, now) for c in cs], wrap=True),
        Column("max VMs", [str(c.max_vms) for c in cs], justify="right"),
        Column("provider", [c.provider for c in cs]),
        Column("quota use", [quota_text(c) for c in cs], wrap=True),
    ]
    return fitted("Clouds", columns, width, ["cloud", "provider", "enabled", "max VMs",
                                             "VMs by state", "quota use", "health"])


def vms_table(status: StatusReply, now: float, width: int | None = None,
              title: str = "", only: set[str] | None = None, header: bool = True) -> Table:
    """`cs vm list`: the VMs of `status` with their startd state (`title`, `only` and
    `header` as `fitted` takes them)."""
    startds = startd_states(status)
    vms = status.vms
    columns = [
        Column("name", [vm.vm_id for vm in vms], keep=True),
        Column("cloud", [vm.cloud for vm in vms], keep=True),
        Column("state", [vm.state for vm in vms], keep=True),
        Column("age", [_age(vm.created_at, now) for vm in vms], justify="right"),
        Column("type", [vm.spec.vm_type for vm in vms]),
        Column("startd", [startds.get(vm.vm_id, "-") for vm in vms]),
        Column("reason", [vm.reason for vm in vms], wrap=True),
    ]
    return fitted(title or f"VMs ({len(vms)})", columns, width,
                  ["name", "cloud", "type", "state", "age", "startd", "reason"], only, header)


def services_health_table(status: StatusReply, now: float, width: int | None = None
                          ) -> Table:
    """The running service instances as they report themselves, with their bus problems."""
    svcs = status.services
    columns = [
        Column("service", [s.service for s in svcs], keep=True),
        Column("seen", [f"{_age(s.seen_at, now)} ago" for s in svcs], keep=True),
        Column("problems", ["; ".join(s.problems) or "-" for s in svcs], keep=True, wrap=True),
        Column("host", [s.host for s in svcs]),
        Column("up", [_age(s.started_at, now) for s in svcs], justify="right"),
        Column("reconnects", [str(s.reconnects) for s in svcs], justify="right"),
        Column("pid", [str(s.pid) for s in svcs], justify="right"),
    ]
    return fitted("Services", columns, width,
                  ["service", "host", "pid", "up", "seen", "reconnects", "problems"])


def status_tables(status: StatusReply, now: float | None = None, width: int | None = None
                  ) -> Group:
    """`cs status`: one table each for clouds, VMs, demand, rejected jobs, planner reasons;
    each fits `width` columns (None: every column)."""
    now = time.time() if now is None else now
    parts: list[Table | Text] = [clouds_table(status, now, width)]
    if len(status.vms) == status.vm_total:  # every VM (--all)
        parts.append(vms_table(status, now, width))
    else:
        title = f"VMs needing attention ({status.attention_total} of {status.vm_total})"
        parts.append(vms_table(status, now, width, title=title))
        first = (f"the first {len(status.vms)} shown; " if len(status.vms) <
                 status.attention_total else "")
        parts.append(Text(f"{first}every VM: cs vm list, or cs status --all", style="dim"))
    if status.services:
        parts.append(services_health_table(status, now, width))
    demand = status.demand
    if demand is None:
        parts.append(Text("Demand: no snapshot yet (is cs-poller running?)"))
    else:
        title = f"Demand from {demand.source}, {_age(demand.taken_at, now)} ago"
        if demand.stale:
            title += f" [STALE: {demand.stale_reason}]"
        cls = demand.classes
        parts.append(fitted(title, [
            Column("class", [c.key for c in cls], keep=True),
            Column("idle", [str(c.idle) for c in cls], keep=True, justify="right"),
            Column("running", [str(c.running) for c in cls], keep=True, justify="right"),
            Column("VM type", [c.vm_type for c in cls]),
            Column("cores", [str(c.cores) for c in cls], justify="right"),
            Column("MB", [str(c.memory_mb) for c in cls], justify="right"),
            Column("clouds", [", ".join(c.target_clouds) or "any" for c in cls]),
            Column("users", [", ".join(f"{u} {n}" for u, n in sorted(c.users.items()))
                             for c in cls], wrap=True),
        ], width, ["class", "VM type", "cores", "MB", "idle", "running", "users", "clouds"]))
        if any(c.notes for c in cls):
            parts.append(_notes([(c.key, c.vm_type, c.notes) for c in cls]))
        if demand.rejected:
            shown = (f"{len(demand.rejected)}" if demand.rejected_total <= len(demand.rejected)
                     else f"first {len(demand.rejected)} of {demand.rejected_total}")
            parts.append(fitted(f"Rejected jobs ({shown})", [
                Column("job", [j.job for j in demand.rejected], keep=True),
                Column("reason", [j.reason for j in demand.rejected], keep=True, wrap=True),
            ], width))
    if status.plan is not None:
        ds = status.plan.decisions
        parts.append(fitted(
            f"Planner ({status.plan.planner}, {_age(status.plan.at, now)} ago)", [
                Column("decision", [d.kind for d in ds], keep=True),
                Column("count", [str(d.count) for d in ds], keep=True, justify="right"),
                Column("reason", [d.reason for d in ds], keep=True, wrap=True),
                Column("cloud", [d.cloud or "-" for d in ds]),
                Column("class", [d.class_key or "-" for d in ds]),
            ], width, ["decision", "cloud", "class", "count", "reason"]))
    return Group(*parts)


def _notes(classes: list[tuple[str, str, Sequence[str]]]) -> Text:
    """What the classes' jobs ask that is not acted on, a line each."""
    return Text("Not acted on:\n" + "\n".join(
        f"  {key} ({vm_type}): {note}" for key, vm_type, notes in classes for note in notes))


def plan_tables(doc: dict[str, Any]) -> Group:
    """`cs plan`: demand classes, rejected jobs, intents and the planner's reasons."""
    jobs = doc["jobs"]
    counted = (f"{jobs['read']} job(s) read: {jobs['not_demand']} neither idle nor running "
               f"(held, completed, removed), {jobs['rejected']} rejected")
    parts: list[Table | Text] = []
    if doc["demand"]:
        demand = Table(title="Demand", title_justify="left", caption=counted,
                       caption_justify="left")
        for col in ("class", "VM type", "cores", "MB", "idle", "running", "elsewhere",
                    "users"):
            demand.add_column(col)
        for c in doc["demand"]:
            demand.add_row(c["class"], c["vm_type"], str(c["cores"]), str(c["memory_mb"]),
                           str(c["idle"]), str(c["running"]), str(c["running_elsewhere"]),
                           ", ".join(f"{u} {n}" for u, n in sorted(c["users"].items())))
        parts.append(demand)
        if any(c["notes"] for c in doc["demand"]):
            parts.append(_notes([(c["class"], c["vm_type"], c["notes"])
                                 for c in doc["demand"]]))
    else:
        parts.append(Text(f"No demand: {counted}."))
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
