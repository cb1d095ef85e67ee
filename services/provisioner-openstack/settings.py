"""The OpenStack provisioner's settings, from the `[provisioner]` table of the site config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bus.provisioning import ProvisionerSettings
from bus.siteconfig import SiteConfig


@dataclass(frozen=True)
class OpenstackSettings:
    """What the OpenStack provisioner needs."""

    nats_url: str
    """NATS server URL (CS_NATS_URL overrides the file)."""
    site: str
    """Installation id, written into every server's metadata; servers of other sites are
    never touched."""
    clouds_yaml: Path | None
    """clouds.yaml holding each cloud's `os_cloud` entry (credentials stay there, by
    openstacksdk's convention); None = openstacksdk's search (OS_CLIENT_CONFIG_FILE,
    ./clouds.yaml, ~/.config/openstack/, /etc/openstack/)."""
    call_timeout_s: float
    """Seconds one OpenStack API call may take before it counts as a temporary failure."""
    loops: ProvisionerSettings
    """Reconcile interval and grace periods."""

    @classmethod
    def from_site(cls, site: SiteConfig) -> OpenstackSettings:
        """Read and validate the `[provisioner]` table."""
        sec = site.section("provisioner")
        sec.check_keys(set(ProvisionerSettings.KEYS) | {"call_timeout_s", "clouds_yaml"})
        return cls(nats_url=site.nats_url, site=site.site,
                   clouds_yaml=sec.path_value("clouds_yaml", ""),
                   call_timeout_s=sec.number("call_timeout_s", 30.0, minimum=1.0),
                   loops=ProvisionerSettings.from_section(sec))
