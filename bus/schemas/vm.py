"""The VM a job asks for, declared once: `VmShape` holds what may differ per cloud as v1's
per-cloud maps; `VmSpec` is the same shape resolved for one cloud (what a boot intent carries
and a driver reads). A field added to `VmShape` reaches the demand class (which extends it),
the intent and the drivers without another list to extend."""

from __future__ import annotations

from pydantic import Field

from bus.schemas.message import Message


def resolve(mapping: dict[str, str], cloud: str) -> str | None:
    """A per-cloud map's value for `cloud`: its own entry (the map's names are lowercased,
    as v1 read them), the default, "" if the map is empty, None if the map names other clouds
    only."""
    if not mapping:
        return ""
    return mapping.get(cloud.lower(), mapping.get(""))


class VmSpec(Message):
    """What to boot: a `VmShape` resolved for one cloud."""

    vm_type: str
    image: str = ""
    """Image (name, id, volume or URL); "" = the cloud's default."""
    flavor: str = ""
    """Flavor / instance type; "" = the cloud's default or the smallest that fits."""
    cores: int = 1
    memory_mb: int = 512
    disk_gb: int = 0
    keep_alive_min: int = 0
    """Minutes an idle VM of this kind is kept before it is retired (the jobs' VMKeepAlive)."""
    network: str = ""
    """Network the VM's NIC is on (VMNetwork); "" = the cloud's own setting."""
    key_name: str = ""
    """Keypair to inject (VMKeyName); "" = the cloud's key_name."""
    security_groups: tuple[str, ...] = ()
    """Security groups asked for (VMSecurityGroup), used where the cloud lists them too (as
    v1 did); () = the cloud's."""


class VmShape(Message):
    """The VM a job asks for: a VmSpec whose text fields may name a value per cloud."""

    vm_type: str
    image: dict[str, str] = Field(default_factory=dict)
    """Image per cloud; the key "" is the default for clouds not named."""
    flavor: dict[str, str] = Field(default_factory=dict)
    """Flavor / instance type per cloud; the key "" is the default."""
    cores: int = 1
    memory_mb: int = 512
    disk_gb: int = 0
    keep_alive_min: int = 0
    """Minutes an idle VM of this kind is kept (VMKeepAlive)."""
    network: dict[str, str] = Field(default_factory=dict)
    """VMNetwork per cloud; {} = each cloud's own setting."""
    key_name: dict[str, str] = Field(default_factory=dict)
    """VMKeyName per cloud; {} = each cloud's own key_name."""
    security_groups: tuple[str, ...] = ()
    """VMSecurityGroup: groups asked for on every cloud."""

    def spec_for(self, cloud: str) -> VmSpec:
        """The shape on `cloud`: each per-cloud map resolved (a map naming other clouds
        only gives "", the cloud's own setting)."""
        values: dict[str, object] = {}
        for name in VmSpec.model_fields:
            value = getattr(self, name)
            values[name] = resolve(value, cloud) or "" if isinstance(value, dict) else value
        return VmSpec.model_validate(values)
