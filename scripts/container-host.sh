#!/usr/bin/env bash
# Make this machine able to build and run the single container (tests/test_container_image.py):
# podman (with its recommends: netavark, slirp4netns) and runc from Debian's packages (crun, podman's default on Debian 12, fails
# on hosts whose cgroups are in hybrid mode; the tests run podman with --runtime runc), and
# debootstrap for the base image (no image registry is reachable here). Safe to run again.
# Needs root (or sudo). Prints one line per thing it did.
set -euo pipefail
# shellcheck source=scripts/root.sh
. "$(dirname "$0")/root.sh"
as_root container-host "sudo $0"

install_missing container-host recommends podman runc debootstrap debian-archive-keyring
