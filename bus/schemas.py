"""Typed, versioned message schemas: every message and KV value that crosses a process.

Each schema is a frozen pydantic model validated strictly (no silent "3" -> 3 coercion) and
ignoring unknown fields, so adding a field is compatible with older readers. Removing or
retyping a field is a new schema version (`SCHEMA`), which the codec checks on decode.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Provider = str
"""Which provider serves a cloud: a name in the table of providers (`providers.table`)."""

OptionValue = str | int | float | bool | tuple[str, ...]
"""A value of a provider's own setting (what a TOML key of a `[[cloud]]` table can hold)."""

VmState = Literal["requested", "booting", "running", "retiring", "deleting", "error", "gone"]
"""A VM's state in the registry. `requested`: the planner recorded it and sent a boot intent;
`booting`: the provider accepted it; `running`: the provider reports it up; `retiring`: asked to
drain; `deleting`: a kill intent was sent; `error`: the provider failed it (see `reason`);
`gone`: it no longer exists on the cloud (the record is about to be removed)."""

ALIVE_STATES: frozenset[str] = frozenset({"requested", "booting", "running"})
"""States in which a VM counts as capacity that serves or will serve demand."""

InstanceState = Literal["creating", "running", "stopped", "deleting", "error", "unknown"]
"""A provider's view of one instance, in provider-neutral terms."""


class Message(BaseModel):
    """Base of every schema: frozen, strict, forward compatible."""

    # bytes (dead letters carry raw bodies) render as base64 in JSON, never as broken UTF-8.
    model_config = ConfigDict(frozen=True, strict=True, extra="ignore",
                              ser_json_bytes="base64", val_json_bytes="base64")
    SCHEMA: ClassVar[int] = 1

    def summary(self) -> str:
        """A few words a person reads in the Cs-Summary header (`nats sub`, `cs trace`)."""
        return type(self).__name__


# ---- demand and pool (poller -> planner) ------------------------------------------------


class DemandClass(Message):
    """One distinct VM need, with how many jobs want it."""

    key: str
    vm_type: str
    image: dict[str, str] = Field(default_factory=dict)
    """Image per cloud; the key "" is the default for clouds not named."""
    flavor: dict[str, str] = Field(default_factory=dict)
    """Flavor / instance type per cloud; the key "" is the default."""
    cores: int = 1
    memory_mb: int = 512
    disk_gb: int = 0
    target_clouds: tuple[str, ...] = ()
    """Clouds the jobs may use; empty means any."""
    keep_alive_min: int = 0
    high_priority: bool = False
    network: str = ""
    """VMNetwork: network name or id the VM must be on; "" means the cloud's default."""
    max_price: float = 0.0
    """VMMaximumPrice: most the job pays per VM-hour on a priced cloud; 0 means no limit."""
    idle: int = 0
    running: int = 0
    """Running jobs whose slot is on one of our VMs (or wherever they run, when the pool
    could not be seen)."""
    running_elsewhere: int = 0
    """Running jobs on machines that are not our VMs (a static node beside the cloud): they
    need no VM of ours, so they are not counted in `running`."""
    users: dict[str, int] = Field(default_factory=dict)
    """Idle jobs per user."""
    notes: tuple[str, ...] = ()
    """What the class's jobs ask that is not acted on (v1 attributes we do not support),
    one line each, said once for the class."""


class RejectedJob(Message):
    """A job whose VM attributes could not be understood, and why."""

    job: str
    reason: str


class DemandSnapshot(Message):
    """What the queue asks for, grouped into demand classes."""

    source: str
    taken_at: float
    stale: bool = False
    stale_reason: str = ""
    classes: tuple[DemandClass, ...] = ()
    rejected: tuple[RejectedJob, ...] = ()
    """The first rejected jobs (at most 1,000, so a broken submission cannot make the snapshot
    too big to publish); `rejected_total` counts them all."""
    rejected_total: int = 0
    jobs_read: int = 0
    """Every job the queue gave, demand or not."""
    not_demand: int = 0
    """Jobs read that are neither idle nor running (held, completed, removed): no VM."""

    def summary(self) -> str:
        """`demand 2 classes, 8 idle, 0 running` (and rejected jobs, staleness)."""
        text = (f"demand {len(self.classes)} classes, {sum(c.idle for c in self.classes)} idle,"
                f" {sum(c.running for c in self.classes)} running")
        rejected = max(self.rejected_total, len(self.rejected))
        if rejected:
            text += f", {rejected} rejected"
        return text + (f", STALE: {self.stale_reason}" if self.stale else "")


class Startd(Message):
    """One slot of a startd of ours seen in the collector (matched by its CS_VM_ID)."""

    vm_id: str
    name: str
    state: str
    """HTCondor slot state: Unclaimed, Claimed, Owner, Matched, Preempting, Drained, ..."""
    activity: str
    """HTCondor slot activity: Idle, Busy, Retiring, Vacating, ..."""
    entered_state_at: float
    """When the slot entered its current state (EnteredCurrentState), epoch seconds."""


class PoolSnapshot(Message):
    """The startds of our VMs that the collector knows."""

    source: str
    taken_at: float
    stale: bool = False
    stale_reason: str = ""
    startds: tuple[Startd, ...] = ()

    def summary(self) -> str:
        """`pool 8 slots of ours`."""
        text = f"pool {len(self.startds)} slots of ours"
        return text + (f", STALE: {self.stale_reason}" if self.stale else "")


class CondorAction(Message):
    """A condor-side action the planner asks of the poller before a VM is deleted."""

    action_id: str
    vm_id: str
    action: Literal["retire"]
    """`retire`: peaceful shutdown of the VM's HTCondor daemons (running jobs finish first,
    no new job starts); the startd then leaves the collector."""
    requested_at: float
    reason: str = ""

    def summary(self) -> str:
        """`retire cs-x-0`."""
        return f"{self.action} {self.vm_id}" + (f": {self.reason}" if self.reason else "")


class CondorActionDone(Message):
    """The poller carried out (or could not carry out) a CondorAction."""

    action_id: str
    vm_id: str
    action: Literal["retire"]
    contacted: int
    """How many of the VM's HTCondor masters were told; 0 means it had already left."""
    at: float
    left_pool: bool = False
    """False: the daemons were told (a first report); True: its startd has since left the
    pool (a second report, from the poller that carried the action out)."""
    error: str = ""

    def summary(self) -> str:
        """`retire cs-x-0: 1 master told` / `retire cs-x-0: left the pool`."""
        if self.error:
            return f"{self.action} {self.vm_id} failed: {self.error}"
        if self.left_pool:
            return f"{self.action} {self.vm_id}: left the pool"
        return f"{self.action} {self.vm_id}: {self.contacted} master(s) told"


# ---- clouds and VMs (KV records) -------------------------------------------------------


class CloudCapacity(Message):
    """What a cloud says it can hold, and how much of it is used by instances that are not
    ours (KV `cs-capacity`, key = cloud name; written by its provisioner on every reconcile).
    0 means no limit reported."""

    cloud: str
    source: str
    """Where the figures come from (e.g. "libvirt host", "nova absolute limits")."""
    max_instances: int = 0
    max_cores: int = 0
    max_memory_mb: int = 0
    others_instances: int = 0
    """Instances counted against the limits that do not belong to this installation."""
    others_cores: int = 0
    others_memory_mb: int = 0
    reported_at: float = 0.0


class CloudRecord(Message):
    """A cloud's configuration and operator-set enabled flag (KV `cs-clouds`)."""

    SCHEMA: ClassVar[int] = 2
    """2: the provider's own settings in `options` (were the `libvirt`/`openstack` tables
    and the `uri`/`os_cloud` fields)."""

    name: str
    provider: Provider
    enabled: bool
    max_vms: int
    """Most VMs of ours on this cloud at once (v1's vm_slots)."""
    boots_per_cycle: int = 5
    """Most boots the planner asks of this cloud in one cycle (v1's boot rate limit)."""
    priority: int = 0
    """Lower is preferred (v1's priority), under the planner's cloud policies."""
    max_cores: int = 0
    """Most cores of all our VMs here together; 0 means no limit beyond max_vms."""
    max_memory_mb: int = 0
    """Most memory (MB) of all our VMs here together; 0 means no limit."""
    max_vm_cores: int = 0
    """Largest VM in cores this cloud takes (v1's cpu_cores); 0 means any."""
    max_vm_memory_mb: int = 0
    """Largest VM in MB this cloud takes (v1's max_vm_mem); 0 means any."""
    boot_timeout_s: float = 600.0
    """A VM not up (and not in the pool) this long after it was requested is killed."""
    address: str = ""
    """Where the cloud is, as its provider names it (a libvirt URI, a clouds.yaml entry)."""
    default_image: str = ""
    """The image a VM gets when its job names none for this cloud (the provider's own key:
    libvirt's base_image, OpenStack's image); "" = none, jobs must name one."""
    options: dict[str, OptionValue] = Field(default_factory=dict)
    """The provider's own settings, as its options model (`providers/<name>/options.py`)
    read them from the config; its driver reads them back through the same model."""
    user_data: str = ""
    """The cloud-init user-data template (text, `${VAR}` placeholders); "" = the built-in one.
    Carried here, not as a path, so provisioners on other machines render the same text."""
    user_data_file: str = ""
    """Where `user_data` was read from, for operators."""
    updated_at: float = 0.0
    updated_by: str = ""


class CloudHealth(Message):
    """How a cloud has been failing us, and until when the planner leaves it alone
    (KV `cs-health`, key = cloud name; written by the planner)."""

    cloud: str
    failures: int = 0
    """Consecutive boot failures (VMs in error, VMs stuck booting)."""
    last_failure_at: float = 0.0
    backoff_until: float = 0.0
    """No boots on this cloud before this time (epoch seconds)."""
    reason: str = ""
    """The last failure, as the cloud or the planner put it."""
    type_failures: dict[str, int] = Field(default_factory=dict)
    """Per VM type: consecutive VMs that never joined the pool (a black hole: broken image or
    contextualisation)."""
    type_last_failure_at: dict[str, float] = Field(default_factory=dict)
    type_backoff_until: dict[str, float] = Field(default_factory=dict)
    updated_at: float = 0.0


class VmSpec(Message):
    """What to boot: resolved for one cloud."""

    vm_type: str
    image: str = ""
    flavor: str = ""
    cores: int = 1
    memory_mb: int = 512
    disk_gb: int = 0
    keep_alive_min: int = 0
    """Minutes an idle VM of this kind is kept before it is retired (the jobs' VMKeepAlive)."""


class VmRecord(Message):
    """One VM in the registry (KV `cs-vms`, key `<cloud>.<vm>`)."""

    vm_id: str
    cloud: str
    intent_id: str
    class_key: str
    spec: VmSpec
    state: VmState
    reason: str = ""
    created_at: float
    updated_at: float
    registered_at: float = 0.0
    """When its startd was first seen in the pool; 0 while it never was."""
    running_at: float = 0.0
    """When the provider first reported it running; 0 while it never was."""
    trace: str = ""


# ---- intents and events ---------------------------------------------------------------


class Intent(Message):
    """An order to a provisioner: boot or kill one VM. The registry stays the truth."""

    intent_id: str
    action: Literal["boot", "kill"]
    cloud: str
    vm_id: str
    spec: VmSpec | None = None
    created_at: float
    reason: str = ""

    def summary(self) -> str:
        """`boot cs-x-0 on cloud-a` (with the spec's type), `kill cs-x-0 on cloud-a: why`."""
        text = f"{self.action} {self.vm_id} on {self.cloud}"
        if self.spec is not None:
            text += f" as {self.spec.vm_type}"
        return text + (f": {self.reason}" if self.reason else "")


class VmEvent(Message):
    """A VM changed state (published by provisioners for tracing and watchers)."""

    vm_id: str
    cloud: str
    state: VmState
    reason: str = ""
    at: float

    def summary(self) -> str:
        """`cs-x-0 on cloud-a running` (with the reason of an error)."""
        return f"{self.vm_id} on {self.cloud} {self.state}" + (
            f": {self.reason}" if self.reason else "")


class PlanDecision(Message):
    """One decision or non-decision of the planner, with its reason."""

    kind: Literal["boot", "retire", "kill", "hold"]
    cloud: str = ""
    class_key: str = ""
    count: int = 0
    reason: str


class PlanReport(Message):
    """The planner's latest cycle: what it decided and why."""

    planner: str
    at: float
    decisions: tuple[PlanDecision, ...] = ()

    def summary(self) -> str:
        """`plan by planner-1: boot 8, hold 2` (VMs per decision kind; holds count once)."""
        counts: dict[str, int] = {}
        for d in self.decisions:
            counts[d.kind] = counts.get(d.kind, 0) + (d.count if d.kind != "hold" else 1)
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "nothing to do"
        return f"plan by {self.planner}: {kinds}"


class Instance(Message):
    """One instance as the provider lists it, mapped back to our ids by its tag."""

    name: str
    cloud: str
    state: InstanceState
    vm_id: str
    intent_id: str
    detail: str = ""
    """What the provider says about the state (an error's fault message)."""
    instance_id: str = ""
    """The provider's own id (Nova server id, libvirt domain UUID): names can repeat on some
    clouds, ids cannot."""


class InstancesRequest(Message):
    """Ask a provisioner for its live listing of one cloud."""


class InstanceList(Message):
    """A provisioner's live listing of the instances carrying our tag on one cloud."""

    cloud: str
    listed_at: float
    instances: tuple[Instance, ...] = ()

    def summary(self) -> str:
        """`instances on cloud-a: 8`."""
        return f"instances on {self.cloud}: {len(self.instances)}"


class DeadLetter(Message):
    """A message that was rejected, with where it came from and why."""

    subject: str
    error: str
    service: str
    headers: dict[str, str] = Field(default_factory=dict)
    data: bytes = b""

    def summary(self) -> str:
        """`dead letter from cs-planner on cs.intent.x: why`."""
        return f"dead letter from {self.service} on {self.subject}: {self.error}"


# ---- admin requests and replies -------------------------------------------------------


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


# ---- history (admin -> its stream -> status page and `cs status --since`) -------------


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


ALL_SCHEMAS: tuple[type[Message], ...] = (
    DemandClass,
    RejectedJob,
    DemandSnapshot,
    Startd,
    PoolSnapshot,
    CondorAction,
    CondorActionDone,
    CloudRecord,
    CloudHealth,
    VmSpec,
    VmRecord,
    Intent,
    VmEvent,
    PlanDecision,
    PlanReport,
    Instance,
    InstancesRequest,
    InstanceList,
    DeadLetter,
    StatusRequest,
    CloudStatus,
    ServiceHealth,
    StatusReply,
    CloudToggleRequest,
    CloudToggleReply,
    VmKillRequest,
    Skipped,
    VmKillReply,
    VmDrainRequest,
    VmDrainReply,
    ConfigReloadRequest,
    ConfigReloadReply,
    CloudCapacity,
    HistoryPoint,
    HistoryRequest,
    HistoryReply,
    VmListRequest,
    VmListReply,
)
"""Every schema, by which `Cs-Type` header values are resolved."""
