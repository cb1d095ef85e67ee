"""The OpenStack provisioner's settings, from the `[provisioner]` table of the site config."""

from __future__ import annotations

from dataclasses import dataclass

from bus.provisioning import ProvisionerSettings
from bus.siteconfig import SiteConfig


@dataclass(frozen=True)
class OpenstackSettings:
    """What the OpenStack provisioner needs."""

    nats_url: str
    """NATS server URL (CS_NATS_URL overrides the file)."""
    loops: ProvisionerSettings
    """Reconcile interval and grace periods."""

    @classmethod
    def from_site(cls, site: SiteConfig) -> OpenstackSettings:
        """Read and validate the `[provisioner]` table."""
        sec = site.section("provisioner")
        sec.check_keys(set(ProvisionerSettings.KEYS) | {"call_timeout_s"})
        return cls(nats_url=site.nats_url, loops=ProvisionerSettings.from_section(sec))
