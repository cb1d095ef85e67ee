#!/bin/bash
# cloudscheduler container entrypoint: settings from the environment, first-start set-up of
# the state volume (pool signing key), then the command (supervisord by default).
#
#   CENTRAL_MANAGER    host name or IP the worker VMs reach the pool at (default: this
#                      container's own address, which only container-cloud's VMs reach)
#   NETWORK_INTERFACE  the address HTCondor binds and advertises (default: HTCondor's choice)
set -euo pipefail

state=${CS_STATE_DIR:-/var/lib/cloudscheduler}

# A broken config is said once, clearly, and the container stops (exit 78, EX_CONFIG) rather
# than have supervisord restart five services that each fail the same way.
if [ "${1:-}" = supervisord ] && ! problem=$(cs config check 2>&1 >/dev/null); then
    echo "cs-entrypoint: the site config ${CS_CONFIG:-} is not usable: ${problem#error: }" >&2
    echo "cs-entrypoint: fix it (or mount a good one) and start the container again" >&2
    exit 78
fi

if [ -n "${CENTRAL_MANAGER:-}" ]; then
    central_manager=$CENTRAL_MANAGER
else
    central_manager=$(hostname -I 2>/dev/null | awk '{print $1}')
    central_manager=${central_manager:-$(hostname -f)}
    # Said in the log and, through the admin service, in `cs status`.
    CS_LAUNCHER_PROBLEM="CENTRAL_MANAGER is not set: VMs are told the pool is at $central_manager (this container's own address), which only container-cloud's VMs reach; set -e CENTRAL_MANAGER=<an address every cloud's VMs reach>"
    export CS_LAUNCHER_PROBLEM
    echo "cs-entrypoint: WARNING: $CS_LAUNCHER_PROBLEM" >&2
fi
mkdir -p "$state/logs" "$state/nats" "$state/condor/passwords.d" "$state/condor/tokens.d"
chmod 0700 "$state/condor/passwords.d" "$state/condor/tokens.d"
# HTCondor's job queue (SPOOL in container/condor/), kept with the rest of the state.
mkdir -p "$state/condor/spool"
chown condor:condor "$state/condor/spool"

{
    echo "# written by cs-entrypoint from the container's environment at each start"
    echo "CONDOR_HOST = $central_manager"
    if [ -n "${NETWORK_INTERFACE:-}" ]; then
        echo "NETWORK_INTERFACE = $NETWORK_INTERFACE"
    fi
} > /etc/condor/config.d/60-environment.conf

# The pool's signing key: made once, kept in the volume, never printed. Every worker token
# is signed with it; a new key would lock out every running VM.
key="$state/condor/passwords.d/POOL"
if [ ! -s "$key" ]; then
    echo "cs-entrypoint: creating the pool signing key in $key"
    openssl rand -base64 64 | condor_store_cred -c -f "$key" add >/dev/null
    chmod 0600 "$key"
fi

# The site CA and two certificates it signs, made once: the poller's (its DaemonsOffPeaceful
# authenticates with it at a worker's master) and the workers' (handed to every VM with its
# token; all workers share it and it maps to no one). The CA's key never leaves this volume.
ssl="$state/condor/ssl"
if [ ! -s "$ssl/worker.crt" ]; then
    echo "cs-entrypoint: creating the site CA and the poller's and workers' certificates in $ssl"
    mkdir -p "$ssl"
    chmod 0700 "$ssl"
    openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/O=cloudscheduler/CN=cloudscheduler site CA" \
        -keyout "$ssl/ca.key" -out "$ssl/ca.crt" 2>/dev/null
    for who in poller worker; do
        openssl req -newkey rsa:3072 -nodes -subj "/O=cloudscheduler/CN=cloudscheduler-$who" \
            -keyout "$ssl/$who.key" -out "$ssl/$who.csr" 2>/dev/null
        openssl x509 -req -in "$ssl/$who.csr" -CA "$ssl/ca.crt" -CAkey "$ssl/ca.key" \
            -CAcreateserial -days 3650 -out "$ssl/$who.crt" 2>/dev/null
        rm -f "$ssl/$who.csr"
    done
    chmod 0600 "$ssl"/*.key
fi

# A privileged container sees the host's /dev/kvm with the host's kvm group id, which is not
# this image's: QEMU (user libvirt-qemu) could not open it, and libvirt would probe QEMU again
# at every call (seen: 28 s before a VM's domain was defined). The group is made here, in the
# container; the host's device is left as it is.
if [ -e /dev/kvm ] && id libvirt-qemu >/dev/null 2>&1; then
    gid=$(stat -c %g /dev/kvm)
    group=$(getent group "$gid" | cut -d: -f1 || true)
    if [ -z "$group" ]; then
        group=host-kvm
        groupadd --gid "$gid" "$group"
    fi
    usermod --append --groups "$group" libvirt-qemu
fi

# The services tell the VMs where the pool is (overrides [worker] central_manager).
export CS_CENTRAL_MANAGER="$central_manager"
echo "cs-entrypoint: central manager $central_manager; state in $state"
exec "$@"
