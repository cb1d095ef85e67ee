"""Clouds and VMs as kept in KV, the intents and events about them, the plan report, and a
provider's instances."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from bus.schemas.message import InstanceState, Message, OptionValue, Provider, VmState
from bus.schemas.vm import VmSpec


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
    needs_image: bool = True
    """Whether a VM here boots an image (false for a Slurm drone, a batch job): the planner
    holds a boot that names none only where one is needed."""
    lifetime_s: float = 0.0
    """How long a VM here may run (from `running`) before the planner retires it and
    counts it no more, so a replacement boots while demand lasts; 0 = no limit. A Slurm
    drone's is its time limit less its drain time."""
    options: dict[str, OptionValue] = Field(default_factory=dict)
    """The provider's own settings, as its options model (`providers/<name>/options.py`)
    read them from the config; its driver reads them back through the same model."""
    user_data: str = ""
    """The user-data template (text, `${VAR}` placeholders; a Slurm drone's batch script);
    "" = the provider's built-in one.
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
