"""The libvirt provisioner's settings, from the `[provisioner]` table of the site config."""

from __future__ import annotations

from dataclasses import dataclass

from bus.provisioning import ProvisionerSettings
from bus.siteconfig import SiteConfig


@dataclass(frozen=True)
class LibvirtSettings:
    """What the libvirt provisioner needs."""

    nats_url: str
    """NATS server URL (CS_NATS_URL overrides the file)."""
    site: str
    """Installation id, written into every domain's <metadata>; domains of other sites are
    never touched."""
    call_timeout_s: float
    """Seconds one libvirt call may take before it counts as a temporary failure. Default 30."""
    loops: ProvisionerSettings
    """Reconcile interval and grace periods."""

    @classmethod
    def from_site(cls, site: SiteConfig) -> LibvirtSettings:
        """Read and validate the `[provisioner]` table."""
        sec = site.section("provisioner")
        sec.check_keys(set(ProvisionerSettings.KEYS) | {"call_timeout_s", "clouds_yaml"})
        return cls(
            nats_url=site.nats_url,
            site=site.site,
            call_timeout_s=sec.number("call_timeout_s", 30.0, minimum=1.0),
            loops=ProvisionerSettings.from_section(sec),
        )
