"""The built-in drone: the batch script a Slurm cloud's drones run when it sets no
`user_data`. Plain data (a `${VAR}` template like the VMs' user-data; `$$` is a shell `$`).

HPC nodes have no cloud-init and no HTCondor of ours, so the script does what the VMs'
user-data and image do: it writes an HTCondor config of its own into a folder of the job
(`${TMPDIR:-/tmp}/cs-drone-<job id>`, removed when the job ends), with the pool token, the
retire certificate and our attributes, and runs `condor_master -f` there, under the cloud's
`condor_wrapper` when HTCondor lives in a container or on a shared file system.

Walltime: the startd advertises `CS_DRONE_END` (the job's end, from Slurm's
`SLURM_JOB_END_TIME` where it sets it, else the start plus the time limit) and starts no job
within the drain time of it, nor one whose `MaxWallTimeMins` would outlast it. The planner
retires the drone at the same point (its cloud's `lifetime_s`): peacefully, so a running job
finishes. The master exits once its startd is off, which ends the batch job.
"""

DRONE_SCRIPT = """\
#!/bin/sh
# cloudscheduler's built-in drone ${CS_VM_ID} (cloud ${CS_CLOUD}): the site's HTCondor as a
# worker of the pool at ${CENTRAL_MANAGER} for this batch job's life.
set -eu
umask 077
CS_DRONE_DIR="$${TMPDIR:-/tmp}/cs-drone-$${SLURM_JOB_ID:-$$$$}"
export CS_DRONE_DIR
mkdir -p "$$CS_DRONE_DIR"
trap 'rm -rf "$$CS_DRONE_DIR"' EXIT
# Slurm's TERM (scancel, the time limit) reaches HTCondor too; the folder goes once it ends.
trap 'exit 143' TERM INT
cd "$$CS_DRONE_DIR"
mkdir -p log spool execute lock run tokens.d ssl
START_AT=$$(date +%s)
END_AT=$${SLURM_JOB_END_TIME:-$$((START_AT + ${CS_WALLTIME_S}))}
printf '%s\\n' '${CS_POOL_TOKEN}' > tokens.d/cloudscheduler.token
printf '%s' '${CS_SSL_CA}' | base64 -d > ssl/ca.crt
printf '%s' '${CS_SSL_CERT}' | base64 -d > ssl/worker.crt
printf '%s' '${CS_SSL_KEY}' | base64 -d > ssl/worker.key
echo 'SSL "^/O=cloudscheduler/CN=cloudscheduler-poller$$" poller@cloudscheduler' > ssl/mapfile
cat > condor_config <<'EOF'
# The node's own HTCondor config first (paths of the installation), then the drone's.
include ifexist : /etc/condor/condor_config
use ROLE : Execute
use FEATURE : PartitionableSlot
use SECURITY : recommended_v9_0
CONDOR_HOST = ${CENTRAL_MANAGER}
CCB_ADDRESS = $$(COLLECTOR_HOST)
LOG = $$(LOCAL_DIR)/log
SPOOL = $$(LOCAL_DIR)/spool
EXECUTE = $$(LOCAL_DIR)/execute
LOCK = $$(LOCAL_DIR)/lock
RUN = $$(LOCAL_DIR)/run
SEC_TOKEN_DIRECTORY = $$(LOCAL_DIR)/tokens.d
NUM_CPUS = ${CS_CORES}
MEMORY = ${CS_MEMORY_MB}
CS_VM_ID = "${CS_VM_ID}"
CS_VM_TYPE = "${CS_VM_TYPE}"
VMType = "${CS_VM_TYPE}"
STARTD_ATTRS = $$(STARTD_ATTRS) CS_VM_ID CS_VM_TYPE VMType CS_DRONE_END
MASTER_ATTRS = $$(MASTER_ATTRS) CS_VM_ID CS_DRONE_END
# No job Slurm would end before it finishes: none within the drain time of the end, none
# whose MaxWallTimeMins outlasts it.
CS_DRONE_LEFT = (MY.CS_DRONE_END - time())
START = ($$(CS_DRONE_LEFT) > ${CS_DRAIN_S}) && \\
    (TARGET.MaxWallTimeMins =?= undefined || 60 * TARGET.MaxWallTimeMins < $$(CS_DRONE_LEFT))
# Once its startd is off (retired), the master exits, and with it the batch job.
MASTER.DAEMON_SHUTDOWN = (STARTD_StartTime =?= 0) && (time() - DaemonStartTime > 60)
SEC_DEFAULT_AUTHENTICATION_METHODS = IDTOKENS
SEC_ADMINISTRATOR_AUTHENTICATION_METHODS = FS, SSL
AUTH_SSL_SERVER_CERTFILE = $$(LOCAL_DIR)/ssl/worker.crt
AUTH_SSL_SERVER_KEYFILE = $$(LOCAL_DIR)/ssl/worker.key
AUTH_SSL_SERVER_CAFILE = $$(LOCAL_DIR)/ssl/ca.crt
AUTH_SSL_REQUIRE_CLIENT_CERTIFICATE = True
CERTIFICATE_MAPFILE = $$(LOCAL_DIR)/ssl/mapfile
ALLOW_ADMINISTRATOR = $$(ALLOW_ADMINISTRATOR) poller@cloudscheduler
EOF
printf 'LOCAL_DIR = %s\\nCS_DRONE_END = %s\\n' "$$CS_DRONE_DIR" "$$END_AT" >> condor_config
CONDOR_CONFIG="$$CS_DRONE_DIR/condor_config"
export CONDOR_CONFIG
status=0
${CS_CONDOR_WRAPPER} condor_master -f || status=$$?
exit "$$status"
"""
"""The drone's batch script; its own placeholders are SlurmOptions.TEMPLATE_VARIABLES."""
