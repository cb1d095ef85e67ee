"""Every NATS subject, stream, bucket and durable name, as functions and constants.

No other module writes a subject string: it calls one of these. Cloud and VM names become
subject tokens, so they are validated here (`check_token`).
"""

from __future__ import annotations

import re

from bus.errors import ConfigError

ROOT = "cs"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

# JetStream streams and KV buckets.
INTENT_STREAM = "CS_INTENTS"
CONDOR_STREAM = "CS_CONDOR"
CONDOR_DURABLE = "poller-condor"
SNAPSHOT_STREAM = "CS_SNAPSHOTS"
HISTORY_STREAM = "CS_HISTORY"
HISTORY_MAX_AGE_S = 24 * 3600.0
"""How long history points are kept."""
HISTORY_DEDUP_S = 300.0
"""Points of one step published by several admin replicas are stored once within this."""
CLOUDS_BUCKET = "cs-clouds"
VMS_BUCKET = "cs-vms"
HEALTH_BUCKET = "cs-health"
CAPACITY_BUCKET = "cs-capacity"
SERVICES_BUCKET = "cs-services"
SERVICE_TTL_S = 60.0
"""A service instance's heartbeat expires after this long without a refresh."""

# The admin service, on the NATS services API.
ADMIN_SERVICE = "cs-admin"
ADMIN_GROUP = f"{ROOT}.admin"
PROVIDER_SERVICE_PREFIX = "cs-provisioner"
ADMIN_STATUS = "status"
ADMIN_CLOUD_ENABLE = "cloud-enable"
ADMIN_CLOUD_DISABLE = "cloud-disable"
ADMIN_VM_KILL = "vm-kill"
ADMIN_VM_DRAIN = "vm-drain"
ADMIN_CONFIG_RELOAD = "config-reload"
ADMIN_HISTORY = "history"
ADMIN_VM_LIST = "vm-list"
SERVICE_INFO = "$SRV.INFO"
"""Every service on the NATS services API answers here with its name, id and endpoints."""
PROVIDER_INSTANCES = "instances"


def check_token(value: str, what: str) -> str:
    """Return `value` if it can be one subject token / KV key part, else raise ConfigError."""
    if not _TOKEN.match(value):
        raise ConfigError(
            f"{what} {value!r} is not a valid name: use 1-128 letters, digits, '-' or '_'"
        )
    return value


def everything() -> str:
    """Wildcard for every cloudscheduler message (what `cs trace` listens to)."""
    return f"{ROOT}.>"


def demand() -> str:
    """The poller's latest DemandSnapshot (last value kept in the snapshot stream)."""
    return f"{ROOT}.demand"


def pool() -> str:
    """The poller's latest PoolSnapshot (last value kept in the snapshot stream)."""
    return f"{ROOT}.pool"


def plan_report() -> str:
    """The planner's latest PlanReport: its decisions and reasons."""
    return f"{ROOT}.plan"


def history() -> str:
    """The admin service's HistoryPoints (kept for a day in the history stream)."""
    return f"{ROOT}.history"


def history_point_id(step: int) -> str:
    """Message id of the point of one step: replicas publishing the same step store one."""
    return f"history-{step}"


def snapshot_subjects() -> list[str]:
    """Subjects held by the snapshot stream, one last value each."""
    return [demand(), pool(), plan_report()]


def kv_changes(bucket: str) -> str:
    """Every update of a KV bucket, as published by JetStream (for waking loops early)."""
    return f"$KV.{bucket}.>"


def intent(cloud: str) -> str:
    """Work-queue subject of intents addressed to one cloud."""
    return f"{ROOT}.intent.{check_token(cloud, 'cloud')}"


def intents_all() -> str:
    """Every intent subject (the intent stream's filter)."""
    return f"{ROOT}.intent.>"


def condor_action() -> str:
    """Work-queue subject of CondorActions for the poller."""
    return f"{ROOT}.condor.action"


def condor_done() -> str:
    """Where the poller reports a CondorAction it carried out."""
    return f"{ROOT}.condor.done"


def vm_event(cloud: str, vm: str) -> str:
    """A VM state change reported by a provisioner."""
    return f"{ROOT}.vm.{check_token(cloud, 'cloud')}.{check_token(vm, 'vm')}"


def deadletter() -> str:
    """Where undecodable or invalid messages are republished, with the error."""
    return f"{ROOT}.deadletter"


def admin_endpoint(name: str) -> str:
    """Subject of one admin endpoint (`status`, `cloud-enable`, ...)."""
    return f"{ADMIN_GROUP}.{name}"


def provider_group(cloud: str) -> str:
    """Group of a provisioner's per-cloud endpoints (e.g. its live instance listing)."""
    return f"{ROOT}.provider.{check_token(cloud, 'cloud')}"


def provider_instances(cloud: str) -> str:
    """Request subject answered by the provisioner of `cloud` with its live VM listing."""
    return f"{provider_group(cloud)}.{PROVIDER_INSTANCES}"


def intent_durable(provider: str, cloud: str) -> str:
    """Durable consumer name shared by all replicas of one provider for one cloud."""
    return f"prov-{provider}-{check_token(cloud, 'cloud')}"


def service_key(service: str, instance: str) -> str:
    """Key of a service instance in the services bucket."""
    return f"{check_token(service, 'service')}.{check_token(instance, 'instance')}"


def vm_key(cloud: str, vm: str) -> str:
    """Key of a VM in the registry bucket."""
    return f"{check_token(cloud, 'cloud')}.{check_token(vm, 'vm')}"
