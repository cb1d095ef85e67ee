#!/bin/bash
# cloudscheduler container entrypoint: settings from the environment, first-start set-up of
# the state volume (pool signing key), then the command (supervisord by default).
#
#   CENTRAL_MANAGER    host name or IP the worker VMs reach the pool at (default: hostname -f)
#   NETWORK_INTERFACE  the address HTCondor binds and advertises (default: HTCondor's choice)
set -euo pipefail

state=${CS_STATE_DIR:-/var/lib/cloudscheduler}
central_manager=${CENTRAL_MANAGER:-$(hostname -f)}
mkdir -p "$state/logs" "$state/nats" "$state/condor/passwords.d" "$state/condor/tokens.d"
chmod 0700 "$state/condor/passwords.d" "$state/condor/tokens.d"

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

# The services tell the VMs where the pool is (overrides [worker] central_manager).
export CS_CENTRAL_MANAGER="$central_manager"
echo "cs-entrypoint: central manager $central_manager; state in $state"
exec "$@"
