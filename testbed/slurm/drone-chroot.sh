#!/bin/sh
# The test drones' condor_wrapper: run a command in the HTCondor root of the tests (a
# debootstrap'd Debian trixie with condor, tests/condor_pool.py), as a node with HTCondor
# installed would run it. Test plumbing, like the QEMU image's port forward: in a mount
# namespace of the drone's own (nothing stays mounted when it ends), the root gets the
# drone's folder at the same path, the host's /proc (condor_procd reads it), and a config.d
# holding only the overrides a test host needs (OVERRIDES: the drones share the host's
# loopback with the central manager). HTCondor runs as the root's user condor, as a site's
# drones run as the user who submits them: the test's Slurm runs jobs as root.
#   drone-chroot.sh ROOT OVERRIDES COMMAND...   (CS_DRONE_DIR set by the drone script)
set -eu
root=$1 overrides=$2
shift 2
: "${CS_DRONE_DIR:?the drone script sets CS_DRONE_DIR}"
# shellcheck disable=SC2016  # the inner script expands its own arguments
exec unshare --mount --propagation private /bin/sh -eu -c '
root=$1 overrides=$2
shift 2
mkdir -p "$root$CS_DRONE_DIR"
mount --bind "$CS_DRONE_DIR" "$root$CS_DRONE_DIR"
mount --bind /proc "$root/proc"
mount -t tmpfs -o size=1m,mode=755 cs-drone-config "$root/etc/condor/config.d"
cp "$overrides" "$root/etc/condor/config.d/"
chmod -R a+rX "$root/etc/condor/config.d"  # the drone script sets umask 077; HTCondor runs as condor
trap : TERM INT  # Slurm signals HTCondor itself; this shell outlives it to clean up
ids=$(chroot "$root" id -u condor):$(chroot "$root" id -g condor)
chown -R "$ids" "$CS_DRONE_DIR"
status=0
chroot --userspec="$ids" "$root" "$@" || status=$?
umount "$root$CS_DRONE_DIR" && rmdir "$root$CS_DRONE_DIR" || true
exit "$status"' drone-chroot "$root" "$overrides" "$@"
