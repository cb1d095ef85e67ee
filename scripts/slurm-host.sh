#!/usr/bin/env bash
# Make this machine able to run the one-node Slurm cluster of the tests (tests/slurm_cluster.py):
# Debian's slurmctld, slurmd, the Slurm client commands and munge, and ssh (the login node's
# tests; their sshd is unpacked by tests/ssh_login.py, not installed). No daemon is started here
# (the tests start their own, on loopback, in a folder of their own). Safe to run again.
# Needs root (or sudo). Prints one line per thing it did.
set -euo pipefail
# shellcheck source=scripts/root.sh
. "$(dirname "$0")/root.sh"
as_root slurm-host "sudo $0"

install_missing slurm-host no-recommends slurmctld slurmd slurm-client munge openssh-client
