"""Every request/reply endpoint, declared once: its name, request type and reply type. The
client (`bus.client`) and the servers (`bus.micro.Endpoint`) are both derived from these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bus import subjects
from bus.schemas import (
    CloudToggleReply,
    CloudToggleRequest,
    ConfigReloadReply,
    ConfigReloadRequest,
    HistoryReply,
    HistoryRequest,
    InstanceList,
    InstancesRequest,
    Message,
    StatusReply,
    StatusRequest,
    VmDrainReply,
    VmDrainRequest,
    VmKillReply,
    VmKillRequest,
    VmListReply,
    VmListRequest,
)

Q = TypeVar("Q", bound=Message)
A = TypeVar("A", bound=Message)


@dataclass(frozen=True)
class Call(Generic[Q, A]):
    """One request/reply endpoint."""

    name: str
    """Its name within its service's group (the subject's last token)."""
    request: type[Q]
    """What it is asked with."""
    reply: type[A]
    """What it answers."""


STATUS = Call(subjects.ADMIN_STATUS, StatusRequest, StatusReply)
"""The site's status (clouds, VMs needing attention, demand, pool, plan, services)."""
CLOUD_ENABLE = Call(subjects.ADMIN_CLOUD_ENABLE, CloudToggleRequest, CloudToggleReply)
"""Enable a cloud."""
CLOUD_DISABLE = Call(subjects.ADMIN_CLOUD_DISABLE, CloudToggleRequest, CloudToggleReply)
"""Disable a cloud."""
VM_KILL = Call(subjects.ADMIN_VM_KILL, VmKillRequest, VmKillReply)
"""Kill VMs."""
VM_DRAIN = Call(subjects.ADMIN_VM_DRAIN, VmDrainRequest, VmDrainReply)
"""Drain VMs."""
CONFIG_RELOAD = Call(subjects.ADMIN_CONFIG_RELOAD, ConfigReloadRequest, ConfigReloadReply)
"""Re-read the site config."""
HISTORY = Call(subjects.ADMIN_HISTORY, HistoryRequest, HistoryReply)
"""The site's history."""
VM_LIST = Call(subjects.ADMIN_VM_LIST, VmListRequest, VmListReply)
"""One page of the registry."""

ADMIN: tuple[Call[Any, Any], ...] = (STATUS, CLOUD_ENABLE, CLOUD_DISABLE, VM_KILL, VM_DRAIN,
                                     CONFIG_RELOAD, HISTORY, VM_LIST)
"""Every endpoint of the admin service (group `cs.admin`)."""

INSTANCES = Call(subjects.PROVIDER_INSTANCES, InstancesRequest, InstanceList)
"""A cloud's live listing, answered by its provisioner (group `cs.provider.<cloud>`)."""
