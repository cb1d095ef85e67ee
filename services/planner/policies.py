"""Which cloud first: small ordering policies, chained like cluster-autoscaler's expanders.

Each policy maps a cloud (and what it holds now) to a sort key, lower meaning preferred; a
chain sorts by the first policy, breaks its ties with the next, and finally by name, so the
order is always total and every replica computes the same one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bus.schemas import CloudRecord


@dataclass
class Usage:
    """What our VMs hold on one cloud, and what this cycle booted there."""

    vms: int = 0
    cores: int = 0
    memory_mb: int = 0
    booted: int = 0

    def fill(self, cloud: CloudRecord) -> float:
        """Share of the cloud's VM slots in use (v1's slot fill ratio)."""
        return self.vms / cloud.max_vms if cloud.max_vms else 1.0


CloudPolicy = Callable[[CloudRecord, Usage], float]


def priority(cloud: CloudRecord, usage: Usage) -> float:
    """The operator's order: lower `priority` first (v1)."""
    return float(cloud.priority)


def spread(cloud: CloudRecord, usage: Usage) -> float:
    """The emptiest cloud first, spreading VMs out (v1 sorted by slot fill ratio)."""
    return usage.fill(cloud)


def fill_first(cloud: CloudRecord, usage: Usage) -> float:
    """The fullest cloud first, filling one before the next."""
    return -usage.fill(cloud)


POLICIES: dict[str, CloudPolicy] = {
    "priority": priority,
    "spread": spread,
    "fill-first": fill_first,
}
"""Policies by the name used in `[planner] cloud_order`."""

"""v1's order: slot fill ratio, then priority."""


def order(
    clouds: Iterable[CloudRecord], usage: dict[str, Usage], chain: Sequence[str]
) -> list[CloudRecord]:
    """`clouds` in the order `chain` prefers them."""
    keys = [POLICIES[name] for name in chain]
    return sorted(clouds, key=lambda c: (*(k(c, usage[c.name]) for k in keys), c.name))
