"""The planner: decides which VMs to boot and kill, with a reason for every decision."""
