"""Demand and pool snapshots (poller -> planner) and condor-side actions (-> poller)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from bus.schemas.message import Message
from bus.schemas.vm import VmShape


class DemandClass(VmShape):
    """One distinct VM need (its shape, and where and how it may run), with how many jobs
    want it."""

    SCHEMA: ClassVar[int] = 2
    """2: network became a per-cloud map; key_name and security_groups (from VmShape)."""

    key: str
    target_clouds: tuple[str, ...] = ()
    """Clouds the jobs may use; empty means any."""
    high_priority: bool = False
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
