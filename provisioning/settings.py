"""The provisioners' settings, from the `[provisioner]` table of the site config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from providers.table import PROVIDERS
from siteconfig.file import SiteConfig
from siteconfig.section import Section


@dataclass(frozen=True)
class ProvisionerSettings:
    """Timing of a provisioner's loops (seconds)."""

    reconcile_interval_s: float = 10.0
    """How often the cloud's listing is compared with the registry."""
    orphan_grace_s: float = 60.0
    """An instance with our tag but no registry entry is destroyed after this long."""
    vanished_grace_s: float = 30.0
    """A registry entry younger than this is not marked gone when its instance is missing."""
    parallel_intents: int = 8
    """Intents (of different VMs) applied at once per cloud."""

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"reconcile_interval_s", "orphan_grace_s", "vanished_grace_s", "parallel_intents"})
    """The `[provisioner]` keys of the loop timings."""

    @classmethod
    def from_section(cls, sec: Section) -> ProvisionerSettings:
        """Read the loop timings from a config table (the caller checks unknown keys)."""
        d = cls()  # each default written once, on the fields above
        return cls(
            reconcile_interval_s=sec.number("reconcile_interval_s", d.reconcile_interval_s,
                                            minimum=0.5),
            orphan_grace_s=sec.number("orphan_grace_s", d.orphan_grace_s),
            vanished_grace_s=sec.number("vanished_grace_s", d.vanished_grace_s),
            parallel_intents=sec.integer("parallel_intents", d.parallel_intents, minimum=1),
        )


@dataclass(frozen=True)
class ProvisionerServiceSettings:
    """What a provisioner service (of any provider) reads from the site config."""

    nats_url: str
    """NATS server URL (CS_NATS_URL overrides the file)."""
    site: str
    """Installation id, written into every VM's tag; VMs of other sites are never touched."""
    call_timeout_s: float
    """Seconds one cloud API call may take before it counts as a temporary failure."""
    loops: ProvisionerSettings
    """Reconcile interval, grace periods, intents at once."""

    KEYS: ClassVar[frozenset[str]] = ProvisionerSettings.KEYS.union(
        {"call_timeout_s"}, *(set(p.provisioner_keys) for p in PROVIDERS.values()))
    """The keys of the `[provisioner]` table (with those only one provider reads)."""

    @classmethod
    def from_site(cls, site: SiteConfig) -> ProvisionerServiceSettings:
        """Read and validate the `[provisioner]` table."""
        sec = site.section("provisioner")
        sec.check_keys(cls.KEYS)
        return cls(nats_url=site.nats_url, site=site.site,
                   call_timeout_s=sec.number("call_timeout_s", 30.0, minimum=1.0),
                   loops=ProvisionerSettings.from_section(sec))
