"""The OpenStack provisioner: worker VMs on OpenStack clouds through openstacksdk."""
