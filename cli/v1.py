"""v1's `cloud_status` output shapes, from our status (pure: text in v1's columns).

The formats are v1's own (hep-gc/cloud-scheduler, branch dev: `info_server.py` and
`cluster_tools.py`): the cluster block of `get_cluster_info_short`, the VM table of
`VM.get_vm_info_header` / `get_cluster_vms_info`, and the JSON of `ResourcePoolJSONEncoder`.
Values are ours, mapped to v1's meaning where one exists (free VM slots, free memory).
"""

from __future__ import annotations

from typing import Any

from bus import vmstates
from bus.schemas import CloudStatus, StatusReply, VmRecord
from providers.table import PROVIDERS

CLOUD_TYPES = {p.name: p.v1_type or p.name for p in PROVIDERS.values()}
"""v1's cloud_type for each of our providers."""

VM_STATES = {
    "requested": "Starting", "booting": "Starting", "running": "Running",
    "retiring": "Retiring", "deleting": "Destroyed", "error": "Error", "gone": "Destroyed",
}
"""v1's global VM states for ours."""


def _alive(status: StatusReply, cloud: str) -> list[VmRecord]:
    return [vm for vm in status.vms if vm.cloud == cloud and vm.state in vmstates.ALIVE]


def _free_slots(status: StatusReply, c: CloudStatus) -> int:
    return max(0, c.max_vms - len(_alive(status, c.name)))


def _free_memory(c: CloudStatus) -> str:
    return str(max(0, c.max_memory_mb - c.memory_mb_used)) if c.max_memory_mb else "-"


def cluster_short(status: StatusReply, c: CloudStatus) -> str:
    """v1's `get_cluster_info_short` block for one cloud."""
    row = "%-25s  %-15s  %-10s  %-10s %-10s %-10s %-10s\n"
    return (f"Cluster: {c.name} \n"
            + row % ("ADDRESS", "CLOUD TYPE", "VM SLOTS", "MEMORY", "STORAGE", "PRIORITY",
                     "ENABLED")
            + row % (c.address, CLOUD_TYPES.get(c.provider, c.provider),
                     _free_slots(status, c), _free_memory(c), "-", c.priority, c.enabled))


def clusters(status: StatusReply) -> str:
    """`cloud_status` (and `-a`): every cloud's block."""
    return "Clusters in resource pool:\n" + "".join(
        cluster_short(status, c) + "\n" for c in status.clouds)


def cluster_info(status: StatusReply, name: str) -> str:
    """`cloud_status -c NAME`."""
    for c in status.clouds:
        if c.name == name:
            return f"Cluster Info: {name}\n" + cluster_short(status, c)
    return f"Cluster Info: {name}\nCloud {name} not found\n"


def _vm_row(vm: VmRecord) -> str:
    info = "%-6s %-25s %-20s %-10s %-12s\n" % (
        vm.vm_id, vm.vm_id, vm.spec.vm_type, "-", VM_STATES.get(vm.state, vm.state))
    return "%s %-15s\n" % (info[:-1], vm.cloud)


def vms(status: StatusReply, cloud: str | None = None) -> str:
    """`cloud_status -m` (with `-c NAME`: one cloud's VMs)."""
    clouds = [c for c in status.clouds if cloud is None or c.name == cloud]
    out = "%-6s %-25s %-20s %-10s %-12s %-23s\n" % (
        "ID", "HOSTNAME", "VMTYPE", "USER", "STATUS", "CLUSTER")
    count = 0
    for c in clouds:
        mine = [vm for vm in status.vms if vm.cloud == c.name]
        count += len(mine)
        out += "".join(_vm_row(vm) for vm in mine)
    return out + f"\nTotal VMs: {count}. Total Clouds: {len(clouds)}"


def vm_json(vm: VmRecord, c: CloudStatus) -> dict[str, Any]:
    """One VM as v1's VMJSONEncoder wrote it."""
    return {"name": vm.vm_id, "id": vm.vm_id, "vmtype": vm.spec.vm_type,
            "hostname": vm.vm_id, "clusteraddr": c.address,
            "cloudtype": CLOUD_TYPES.get(c.provider, c.provider), "network": "",
            "cpuarch": "x86_64", "image": vm.spec.image, "memory": vm.spec.memory_mb,
            "mementry": 0, "cpucores": vm.spec.cores, "storage": vm.spec.disk_gb,
            "status": VM_STATES.get(vm.state, vm.state)}


def cluster_json(status: StatusReply, c: CloudStatus) -> dict[str, Any]:
    """One cloud as v1's ClusterJSONEncoder wrote it."""
    return {"name": c.name, "network_address": c.address,
            "cloud_type": CLOUD_TYPES.get(c.provider, c.provider),
            "memory": [max(0, c.max_memory_mb - c.memory_mb_used)] if c.max_memory_mb else [],
            "cpu_archs": ["x86_64"], "network_pools": [],
            "vm_slots": _free_slots(status, c), "cpu_cores": c.cores_used, "storageGB": 0,
            "vms": [vm_json(vm, c) for vm in status.vms if vm.cloud == c.name]}


def pool_json(status: StatusReply, cloud: str | None = None) -> dict[str, Any]:
    """`cloud_status -j` (with `-c NAME`: that cloud only, as v1's get_json_cluster)."""
    if cloud is not None:
        match = [c for c in status.clouds if c.name == cloud]
        return cluster_json(status, match[0]) if match else {}
    return {"resources": [cluster_json(status, c) for c in status.clouds]}
