#!/usr/bin/env bash
# Make this machine a libvirt/QEMU host for the real-VM tests (and for a local libvirt cloud):
# install libvirt's daemons and QEMU from Debian's packages, make /dev/kvm usable or leave it
# be, and start virtlogd and libvirtd if they are not running. Safe to run again.
# Needs root (or sudo). Prints one line per thing it did.
set -euo pipefail
# shellcheck source=scripts/root.sh
. "$(dirname "$0")/root.sh"
as_root qemu-host "sudo $0"

install_missing qemu-host no-recommends libvirt-daemon-system qemu-system-x86 qemu-utils

# A /dev/kvm that exists but cannot be opened makes libvirt re-probe QEMU on every call
# (defineXML then takes 30 s and more); group kvm, mode 660 keeps the probe cached.
if [ -e /dev/kvm ]; then
    $SUDO chgrp kvm /dev/kvm 2>/dev/null || true
    $SUDO chmod 660 /dev/kvm 2>/dev/null || true
fi

# No systemd in containers: start the daemons ourselves (they daemonise, and survive us).
if ! pgrep -x virtlogd >/dev/null; then
    echo "qemu-host: starting virtlogd"
    $SUDO virtlogd -d
fi
if ! pgrep -x libvirtd >/dev/null; then
    echo "qemu-host: starting libvirtd"
    $SUDO libvirtd -d
fi
for _ in $(seq 1 50); do
    $SUDO virsh -c qemu:///system version >/dev/null 2>&1 && exit 0
    sleep 0.2
done
echo "qemu-host: libvirtd does not answer on qemu:///system" >&2
exit 1
