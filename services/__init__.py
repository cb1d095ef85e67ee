"""cloudscheduler's services: poller, planner, provisioners (libvirt, openstack), admin."""
