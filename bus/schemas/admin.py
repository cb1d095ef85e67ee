"""The admin service's requests and replies (`cs` -> admin), and the history it keeps."""

from __future__ import annotations

from pydantic import Field

from bus.schemas.demand import DemandSnapshot, PoolSnapshot, Startd
from bus.schemas.message import Message, Provider
from bus.schemas.records import CloudCapacity, CloudHealth, PlanReport, VmRecord


class StatusRequest(Message):
    """Ask the admin service for the whole status."""


class CloudStatus(Message):
    """A cloud as `cs status` shows it."""

    name: str
    provider: Provider
    enabled: bool
    max_vms: int
    vms_by_state: dict[str, int] = Field(default_factory=dict)
    health: CloudHealth | None = None
    max_cores: int = 0
    """Configured limit of our VMs' cores (0 = none)."""
    max_memory_mb: int = 0
    """Configured limit of our VMs' memory (0 = none)."""
    cores_used: int = 0
    """Cores of our VMs in the registry (every state: they hold quota until gone)."""
    memory_mb_used: int = 0
    capacity: CloudCapacity | None = None
    """What the cloud last reported it can hold (its provisioner writes it)."""
    address: str = ""
    """Where the cloud is: its libvirt URI or its clouds.yaml entry."""
    priority: int = 0


class ServiceHealth(Message):
    """One running service instance, as it reports itself every few seconds (KV
    `cs-services`; an instance that stops reporting expires)."""

    service: str
    instance: str
    host: str
    pid: int
    started_at: float
    seen_at: float
    reconnects: int = 0
    """Times its NATS connection came back after an outage."""
    problems: tuple[str, ...] = ()
    """Recent bus problems it cannot report otherwise: permission violations (newest last)."""


class StatusReply(Message):
    """Everything an operator sees in `cs status`, in a size that does not grow with the
    registry: VM counts per cloud and state, and only the VMs that need attention (every VM
    comes page by page from `cs.admin.vm-list`)."""

    clouds: tuple[CloudStatus, ...] = ()
    services: tuple[ServiceHealth, ...] = ()
    vms: tuple[VmRecord, ...] = ()
    """VMs that need attention (in error, retiring, being deleted, or starting for longer
    than they should), the first ATTENTION_MAX of them by cloud and name."""
    demand: DemandSnapshot | None = None
    pool: PoolSnapshot | None = None
    """The poller's pool snapshot, with the slots of the VMs in `vms` only."""
    plan: PlanReport | None = None
    vm_total: int = 0
    """VMs in the registry."""
    attention_total: int = 0
    """VMs that need attention (`vms` holds the first of them)."""
    slots_total: int = 0
    """Slots of ours in the pool snapshot."""

    def summary(self) -> str:
        """`status 2 clouds, 8 VMs, 1 needing attention`."""
        return (f"status {len(self.clouds)} clouds, {self.vm_total} VMs, "
                f"{self.attention_total} needing attention")


ATTENTION_MAX = 500
"""Most VMs needing attention that one status reply carries."""


class VmListRequest(Message):
    """One page of the registry: VMs after `after` (a registry key, `<cloud>.<vm>`; "" for
    the first page), in key order, on `cloud` ("" for every cloud)."""

    cloud: str = ""
    after: str = ""
    limit: int = 1000


class VmListReply(Message):
    """One page of VMs with their slots in the pool; `next_after` asks for the next page
    ("" when this was the last)."""

    vms: tuple[VmRecord, ...] = ()
    startds: tuple[Startd, ...] = ()
    next_after: str = ""
    total: int = 0
    """VMs the listing covers (on `cloud`, or all), when this page was read."""

    def summary(self) -> str:
        """`8 of 100000 VMs`."""
        return f"{len(self.vms)} of {self.total} VMs" + (" (more)" if self.next_after else "")


class CloudToggleRequest(Message):
    """Enable or disable one cloud (which one depends on the endpoint)."""

    name: str

    def summary(self) -> str:
        """`cloud cloud-a`."""
        return f"cloud {self.name}"


class CloudToggleReply(Message):
    """The cloud's enabled flag after the request, and whether it changed."""

    name: str
    enabled: bool
    changed: bool

    def summary(self) -> str:
        """`cloud cloud-a enabled` (or `disabled`, `unchanged`)."""
        return (f"cloud {self.name} {'enabled' if self.enabled else 'disabled'}"
                + ("" if self.changed else " (unchanged)"))


class VmKillRequest(Message):
    """Kill VMs: the named ones, or every VM on `cloud` with `all_on_cloud`."""

    cloud: str = ""
    vm_ids: tuple[str, ...] = ()
    all_on_cloud: bool = False

    def summary(self) -> str:
        """`all VMs on cloud-a` or `3 VMs`."""
        if self.all_on_cloud:
            return f"all VMs on {self.cloud}"
        return f"{len(self.vm_ids)} VM(s)" + (f" on {self.cloud}" if self.cloud else "")


class Skipped(Message):
    """A VM an admin request left alone, and why."""

    vm_id: str
    reason: str


class VmKillReply(Message):
    """Which VMs are now being deleted (with the kill's intent id: names are reused once a
    VM is gone, so the intent tells this VM from a later one), and which were left alone."""

    killed: dict[str, str] = Field(default_factory=dict)
    skipped: tuple[Skipped, ...] = ()


class VmDrainRequest(VmKillRequest):
    """Drain VMs (named, or every VM on `cloud`): their startds finish the running jobs and
    leave the pool, then the VMs are deleted."""


class VmDrainReply(Message):
    """Which VMs are now draining (with the drain's action id), and which were left alone."""

    drained: dict[str, str] = Field(default_factory=dict)
    skipped: tuple[Skipped, ...] = ()


class ConfigReloadRequest(Message):
    """Re-read the site config file and bring the cloud records in KV up to date."""


class ConfigReloadReply(Message):
    """What a config reload changed. Enabled flags set at run time are kept."""

    path: str
    added: tuple[str, ...] = ()
    refreshed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    not_in_config: tuple[str, ...] = ()
    """Clouds with a record in KV but none in the file: left as they are."""


class HistoryPoint(Message):
    """The site at one moment, kept for a day (stream `CS_HISTORY`, one point a
    `history_interval_s`): what the status page's charts and `cs status --since` show."""

    at: float
    idle: dict[str, int] = Field(default_factory=dict)
    """Idle jobs per demand class key (the largest classes, the rest under "other")."""
    running_jobs: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    """Per class key, its VM type (for legends)."""
    vms: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Per cloud, VMs per state."""
    boots: int = 0
    """VMs booked since the previous point."""
    failures: int = 0
    """VMs that went into error since the previous point."""

    def total_idle(self) -> int:
        """Idle jobs of every class."""
        return sum(self.idle.values())

    def vms_in(self, *states: str) -> int:
        """VMs over every cloud in any of `states` (all states when none is named)."""
        return sum(n for by_state in self.vms.values() for s, n in by_state.items()
                   if not states or s in states)

    def summary(self) -> str:
        """`history 8 idle, 8 VMs (8 running), 0 boots, 0 failures`."""
        return (f"history {self.total_idle()} idle, {self.vms_in()} VMs "
                f"({self.vms_in('running')} running), {self.boots} boots, "
                f"{self.failures} failures")


class HistoryRequest(Message):
    """Ask the admin service for the history since `since_s` seconds ago."""

    since_s: float = 3600.0
    max_points: int = 120
    """Most points in the reply: a longer span is shown in coarser steps."""


class HistoryReply(Message):
    """The history asked for, oldest first, at most `max_points` points: each the last of
    its step for the gauges (idle, VMs), with the boots and failures of the step added up."""

    interval_s: float
    """How often points are taken."""
    step_s: float
    """How much time one point of this reply stands for."""
    points: tuple[HistoryPoint, ...] = ()
