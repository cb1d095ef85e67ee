"""The libvirt provisioner: worker VMs on local hypervisors, no cloud API needed."""
