"""The table of providers: every part of the system that knows which providers exist (the
site config, the provisioner service, the admin, `cs up`, the bus's users) reads it here.
Adding a provider is a folder under `providers/` and one entry below."""

from __future__ import annotations

from providers.libvirt.options import PROVIDER as LIBVIRT
from providers.openstack.options import PROVIDER as OPENSTACK
from providers.slurm.options import PROVIDER as SLURM
from providers.spec import Provider

PROVIDERS: dict[str, Provider] = {p.name: p for p in (
    LIBVIRT,
    OPENSTACK,
    SLURM,
)}
"""Every provider, by the name a `[[cloud]]` table gives in `provider = "..."`."""


def provider(name: str) -> Provider:
    """The provider called `name`; KeyError says which ones exist."""
    found = PROVIDERS.get(name)
    if found is None:
        raise KeyError(f"unknown provider {name!r}: expected one of {', '.join(PROVIDERS)}")
    return found


def programs() -> tuple[str, ...]:
    """Every provisioner program, in table order."""
    return tuple(p.program for p in PROVIDERS.values())
