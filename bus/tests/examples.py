"""One valid example of every schema, for round trips and as building blocks in tests."""

from __future__ import annotations

from bus.schemas import (
    CloudCapacity,
    CloudHealth,
    CloudRecord,
    CloudStatus,
    CloudToggleReply,
    CloudToggleRequest,
    CondorAction,
    CondorActionDone,
    ConfigReloadReply,
    ConfigReloadRequest,
    DeadLetter,
    DemandClass,
    DemandSnapshot,
    HistoryPoint,
    HistoryReply,
    HistoryRequest,
    Instance,
    InstanceList,
    InstancesRequest,
    Intent,
    Message,
    PlanDecision,
    PlanReport,
    PoolSnapshot,
    RejectedJob,
    ServiceHealth,
    Skipped,
    Startd,
    StatusReply,
    StatusRequest,
    VmDrainReply,
    VmDrainRequest,
    VmEvent,
    VmKillReply,
    VmKillRequest,
    VmListReply,
    VmListRequest,
    VmRecord,
    VmSpec,
)

CLASS = DemandClass(
    key="abc123def0", vm_type="worker", image={"c1": "img.qcow2", "": "default-img"},
    flavor={"c1": "m1.small"}, cores=2, memory_mb=4096, disk_gb=20, target_clouds=("c1",),
    keep_alive_min=30, high_priority=True, idle=5, running=2, users={"alice": 3, "bob": 2},
)
REJECTED = RejectedJob(job="12.0", reason="VMMem: expected an integer, got 'x'")
DEMAND = DemandSnapshot(source="replay:q", taken_at=1.5, classes=(CLASS,), rejected=(REJECTED,))
STARTD = Startd(vm_id="cs-s-c1-abc123-0", name="slot1@vm-1", state="Unclaimed", activity="Idle",
                entered_state_at=10.0)
POOL = PoolSnapshot(source="collector", taken_at=2.0, startds=(STARTD,))
CLOUD = CloudRecord(name="c1", provider="libvirt", enabled=True, max_vms=10,
                    address="test:///default", default_image="w.qcow2",
                    options={"uri": "test:///default", "storage_pool": "default",
                             "base_image": "w.qcow2", "cpu_overcommit": 1.5,
                             "user_network": False, "security_groups": ("default",)})
SPEC = VmSpec(vm_type="worker", image="img.qcow2", cores=2, memory_mb=4096)
VM = VmRecord(vm_id="cs-s-c1-abc123-0", cloud="c1", intent_id="boot-x", class_key="abc123def0",
              spec=SPEC, state="requested", created_at=3.0, updated_at=3.0, trace="t1")
INTENT = Intent(intent_id="boot-x", action="boot", cloud="c1", vm_id=VM.vm_id, spec=SPEC,
                created_at=3.0)
EVENT = VmEvent(vm_id=VM.vm_id, cloud="c1", state="running", at=4.0)
DECISION = PlanDecision(kind="boot", cloud="c1", class_key="abc123def0", count=2, reason="why")
REPORT = PlanReport(planner="p1", at=5.0, decisions=(DECISION,))
INSTANCE = Instance(name=VM.vm_id, cloud="c1", state="running", vm_id=VM.vm_id,
                    intent_id="boot-x")
LISTING = InstanceList(cloud="c1", listed_at=6.0, instances=(INSTANCE,))
LETTER = DeadLetter(subject="cs.intent.c1", error="bad", service="x", headers={"a": "b"},
                    data=b"\x00\xff")
HEALTH = CloudHealth(cloud="c1", failures=2, last_failure_at=9.0, backoff_until=129.0,
                     reason="permanent: bad image", type_failures={"w": 1},
                     type_last_failure_at={"w": 8.0}, type_backoff_until={"w": 68.0})
CLOUD_STATUS = CloudStatus(name="c1", provider="libvirt", enabled=True, max_vms=10,
                           vms_by_state={"running": 1}, health=HEALTH)
SERVICE = ServiceHealth(service="cs-planner", instance="host1-42", host="host1", pid=42,
                        started_at=1.0, seen_at=9.0, reconnects=1,
                        problems=('nats: permissions violation for publish to "cs.intent.c1"',))
STATUS = StatusReply(clouds=(CLOUD_STATUS,), vms=(VM,), demand=DEMAND, pool=POOL, plan=REPORT,
                     services=(SERVICE,), vm_total=1, attention_total=1, slots_total=1)

ACTION = CondorAction(action_id="retire-x", vm_id=VM.vm_id, action="retire", requested_at=7.0,
                      reason="idle past keep-alive")
ACTION_DONE = CondorActionDone(action_id="retire-x", vm_id=VM.vm_id, action="retire", contacted=1,
                               at=8.0)

POINT = HistoryPoint(at=9.0, idle={"abc123def0": 5}, running_jobs=2,
                     labels={"abc123def0": "worker"}, vms={"c1": {"running": 1}}, boots=1)

EXAMPLES: tuple[Message, ...] = (
    ACTION, ACTION_DONE, HEALTH,
    CLASS, REJECTED, DEMAND, STARTD, POOL, CLOUD, SPEC, VM, INTENT, EVENT, DECISION, REPORT,
    INSTANCE, InstancesRequest(), LISTING, LETTER, StatusRequest(), CLOUD_STATUS, SERVICE, STATUS,
    CloudToggleRequest(name="c1"), CloudToggleReply(name="c1", enabled=False, changed=True),
    VmKillRequest(cloud="c1", vm_ids=(VM.vm_id,)), Skipped(vm_id="x", reason="unknown VM"),
    VmKillReply(killed={VM.vm_id: "kill-1"}, skipped=(Skipped(vm_id="x", reason="unknown VM"),)),
    VmDrainRequest(cloud="c1", all_on_cloud=True),
    VmDrainReply(drained={VM.vm_id: "drain-1"}),
    ConfigReloadRequest(),
    ConfigReloadReply(path="/etc/cs.toml", added=("c2",), refreshed=("c1",)),
    CloudCapacity(cloud="c1", source="libvirt host h1", max_cores=16, others_cores=2),
    POINT, HistoryRequest(since_s=600.0, max_points=10),
    HistoryReply(interval_s=60.0, step_s=60.0, points=(POINT,)),
    VmListRequest(cloud="c1", after="c1.a", limit=10),
    VmListReply(vms=(VM,), startds=(STARTD,), next_after="c1.b", total=3),
)
