"""The planner's settings, from the `[planner]` table of the site config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bus.errors import ConfigError
from services.planner.decisions import DEFAULT_POLICY, Policy
from services.planner.policies import POLICIES
from siteconfig import SiteConfig


@dataclass(frozen=True)
class PlannerSettings:
    """How often and how carefully the planner decides."""

    nats_url: str
    """NATS server URL (CS_NATS_URL overrides the file)."""
    site: str
    """Installation id; part of every VM name."""
    interval_s: float
    """Seconds between planning cycles (a new demand snapshot also wakes it). Default 2."""
    policy: Policy
    """Knobs of the decision core (resend_after_s, error_kill_after_s, register_timeout_s,
    max_retires_per_cycle, min_vm_age_s, backoff_base_s, backoff_max_s, high_priority_weight,
    cloud_order); see `Policy`."""

    KEYS: ClassVar[frozenset[str]] = frozenset({
        "interval_s", "resend_after_s", "error_kill_after_s", "register_timeout_s",
        "max_retires_per_cycle", "min_vm_age_s", "backoff_base_s", "backoff_max_s",
        "high_priority_weight", "cloud_order"})
    """The keys of the `[planner]` table."""

    @classmethod
    def from_site(cls, site: SiteConfig) -> PlannerSettings:
        """Read and validate the `[planner]` table."""
        sec = site.section("planner")
        sec.check_keys(cls.KEYS)
        d = DEFAULT_POLICY  # each default written once, in Policy
        chain = sec.strings("cloud_order", d.cloud_order)
        for name in chain:
            if name not in POLICIES:
                raise ConfigError(
                    f"{site.path}: [planner] cloud_order: unknown policy {name!r}; "
                    f"choose from {', '.join(POLICIES)}")
        return cls(
            nats_url=site.nats_url,
            site=site.site,
            interval_s=sec.number("interval_s", 2.0, minimum=0.1),
            policy=Policy(
                resend_after_s=sec.number("resend_after_s", d.resend_after_s, minimum=1.0),
                error_kill_after_s=sec.number("error_kill_after_s", d.error_kill_after_s),
                register_timeout_s=sec.number("register_timeout_s", d.register_timeout_s),
                max_retires_per_cycle=sec.integer("max_retires_per_cycle",
                                                  d.max_retires_per_cycle, minimum=1),
                min_vm_age_s=sec.number("min_vm_age_s", d.min_vm_age_s),
                backoff_base_s=sec.number("backoff_base_s", d.backoff_base_s, minimum=1.0),
                backoff_max_s=sec.number("backoff_max_s", d.backoff_max_s, minimum=1.0),
                high_priority_weight=sec.number("high_priority_weight", d.high_priority_weight,
                                                minimum=1.0),
                cloud_order=chain,
            ),
        )
