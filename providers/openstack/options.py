"""An OpenStack cloud's own `[[cloud]]` keys, their defaults, and its table entry."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationInfo, model_validator

from providers.spec import ConfigContext, Provider, ProviderOptions


class OpenstackOptions(ProviderOptions):
    """How an OpenStack cloud boots our VMs (besides the jobs' image and flavor)."""

    IMAGE_KEY = "image"

    os_cloud: str = ""
    """The cloud's entry in clouds.yaml (credentials stay there; default: the cloud's name)."""
    network: str = "auto"
    """"auto" (Nova picks the project's network), "none", or a network name or id."""
    key_name: str = ""
    """Keypair injected into the VMs; "" = none."""
    security_groups: tuple[str, ...] = ()
    """Security group names; () = the project's default."""
    availability_zone: str = ""
    """Availability zone of the VMs; "" = Nova's choice."""
    image: str = ""
    """Image (name or id) for jobs that name none for this cloud."""
    flavor: str = ""
    """Flavor (name or id) for jobs that name none; "" = the smallest that fits the job."""

    @model_validator(mode="before")
    @classmethod
    def _entry(cls, data: Any, info: ValidationInfo) -> Any:
        """os_cloud defaults to the cloud's name."""
        if isinstance(data, dict) and not data.get("os_cloud") \
                and isinstance(info.context, ConfigContext):
            return {**data, "os_cloud": info.context.cloud}
        return data

    def address(self, cloud: str) -> str:
        """The clouds.yaml entry."""
        return self.os_cloud or cloud


PROVIDER = Provider(
    name="openstack", options=OpenstackOptions, driver="providers.openstack.driver",
    summary="VMs as Nova servers of an OpenStack project (clouds.yaml credentials)",
    provisioner_keys={"clouds_yaml": ""}, v1_type="OpenStackNative")
"""The OpenStack line of the table of providers."""
