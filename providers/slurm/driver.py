"""The only module that runs Slurm's commands: worker "VMs" as drones, batch jobs that run
the cloud's `user_data` (the drone script: the site's HTCondor started for the pool).

A drone is `sbatch`ed under the VM's name with our tag in its comment (site, cloud, intent),
its cores and memory as the VM's, and the cloud's time limit; listing is one `squeue --json`
per reconcile, filtered on the tag; a kill is `scancel`. A drone Slurm ended (its script
done, cancelled, its time limit reached) is not listed: the registry marks it gone, and
the planner replaces it while demand lasts; one that failed is in error. The commands run
on the provisioner's host (`SLURM_CONF` points them at the cluster), or on the cluster's login
node through the cloud's `login_command` (ssh), on the driver's threads under a timeout of
ours; their failures are translated here, once.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bus.errors import OutOfResources, PermanentError, TemporaryError
from bus.schemas import CloudCapacity, CloudRecord, Instance, InstanceState, VmRecord
from providers.slurm.options import SlurmOptions
from provisioning.blocking import BlockingCalls
from provisioning.driver import DriverContext

TAG = "cs:"
"""Our drones' comment starts so: `cs:site=S;cloud=C;intent=I`."""

STATES: dict[str, InstanceState] = {
    "PENDING": "creating", "CONFIGURING": "creating", "REQUEUED": "creating",
    "REQUEUE_HOLD": "creating", "REQUEUE_FED": "creating", "RESV_DEL_HOLD": "creating",
    "RUNNING": "running", "RESIZING": "running", "SIGNALING": "running",
    "STAGE_OUT": "deleting", "COMPLETING": "deleting",
    "SUSPENDED": "stopped", "STOPPED": "stopped",
    "FAILED": "error", "NODE_FAIL": "error", "BOOT_FAIL": "error", "OUT_OF_MEMORY": "error",
}
"""Slurm job state -> our instance state. A state not here (COMPLETED, CANCELLED, TIMEOUT,
PREEMPTED, DEADLINE, ...) is a drone that has ended: not listed."""

DELETE_WAIT_S = 30.0
"""How long a delete waits for Slurm to stop listing the drone as live."""

_TEMPORARY = ("socket timed out", "unable to contact slurm controller", "connection refused",
              "slurm_persist_conn", "try again", "temporarily unavailable",
              "communications connection failure", "zero bytes were transmitted")
_NO_ROOM = ("qosmaxsubmitjob", "assocmaxsubmitjob", "qosmaxjobs", "assocmaxjobs",
            "maxsubmitjobs", "job violates accounting/qos policy")


def translate(exc: Exception, doing: str) -> Exception:
    """The one place a failed Slurm command becomes our error kinds."""
    if isinstance(exc, FileNotFoundError):
        return PermanentError(f"{doing}: {exc.filename} not found (set bin_dir for this cloud, "
                              "or install Slurm's client commands, or fix login_command)")
    if isinstance(exc, subprocess.TimeoutExpired):
        return TemporaryError(f"{doing}: {exc.cmd[0]} did not answer within "
                              f"{exc.timeout:.0f}s", delay=15.0)
    if isinstance(exc, subprocess.CalledProcessError):
        said = (exc.stderr or exc.stdout or "").strip().splitlines()
        message = f"{doing}: {said[-1] if said else f'exit {exc.returncode}'}"
        lower = message.lower()
        if exc.returncode == 255 and Path(str(exc.cmd[0])).name == "ssh":
            # ssh's own failure, not the command's: refused keys do not heal by retrying.
            if "permission denied" in lower or "host key verification failed" in lower:
                return PermanentError(f"{message} (the login node refused us: check "
                                      "login_command's key, user and known hosts)")
            return TemporaryError(f"{message} (the login node could not be reached)",
                                  delay=15.0)
        if any(word in lower for word in _NO_ROOM):
            return OutOfResources(message)
        if any(word in lower for word in _TEMPORARY):
            return TemporaryError(message, delay=15.0)
        return PermanentError(message)
    return exc


def tag(site: str, cloud: str, intent: str) -> str:
    """The comment that marks a drone as ours."""
    return f"{TAG}site={site};cloud={cloud};intent={intent}"


def parse_tag(comment: object) -> dict[str, str] | None:
    """A drone's tag, or None when the comment is not ours."""
    if not isinstance(comment, str) or not comment.startswith(TAG):
        return None
    fields = dict(part.partition("=")[::2] for part in comment[len(TAG):].split(";"))
    return fields if {"site", "cloud", "intent"} <= fields.keys() else None


def number(value: Any) -> int:
    """A count from Slurm's JSON: 22.05 writes plain numbers, later versions objects like
    `{"set": true, "infinite": false, "number": 4}`."""
    if isinstance(value, dict):
        return int(value.get("number") or 0) if value.get("set", True) else 0
    return int(value or 0)


def _state(job: dict[str, Any]) -> str:
    """A job's state: a string in 22.05, a list of flags later."""
    state = job.get("job_state", "")
    if isinstance(state, list):
        return str(state[0]) if state else ""
    return str(state)


class SlurmDriver:
    """A CloudDriver over one Slurm cluster (one partition)."""

    def __init__(self, record: CloudRecord, context: DriverContext) -> None:
        self.cloud = record.name
        self.opts = SlurmOptions.read(dict(record.options))
        self.site = context.site
        self.record = record
        self.context = context
        self._prefix = f"cs-{self.site}-{record.name}-"
        self._login = shlex.split(self.opts.login_command)
        self._env = dict(os.environ)
        if self.opts.slurm_conf and not self._login:
            self._env["SLURM_CONF"] = self.opts.slurm_conf
        self._calls = BlockingCalls(f"slurm-{record.name}", 4, context.call_timeout_s,
                                    translate, "Slurm")

    # ---- plumbing (on the worker threads) ----------------------------------------------

    def _run(self, argv: Sequence[str], stdin: str | None = None) -> str:
        command = [str(Path(self.opts.bin_dir) / argv[0]) if self.opts.bin_dir else argv[0],
                   *argv[1:]]
        if self._login:
            # One shell-quoted command line for the login node's shell (ssh joins its
            # arguments with spaces); SLURM_CONF set there, not here.
            conf = ["env", f"SLURM_CONF={self.opts.slurm_conf}"] if self.opts.slurm_conf else []
            command = [*self._login, shlex.join([*conf, *command])]
        # Never the provisioner's own stdin: ssh would read it.
        done = subprocess.run(command, input=stdin if stdin is not None else "",
                              capture_output=True, text=True, env=self._env,
                              timeout=self.context.call_timeout_s, check=True)
        return done.stdout

    def _jobs(self) -> list[dict[str, Any]]:
        """Every job of ours on the cluster that Slurm still lists as live."""
        try:
            doc = json.loads(self._run(["squeue", "--json"]))
        except json.JSONDecodeError as exc:
            raise TemporaryError(f"squeue --json answered no JSON ({exc})") from None
        ours = []
        for job in doc.get("jobs") or ():
            mark = parse_tag(job.get("comment"))
            if (mark is not None and mark["site"] == self.site and mark["cloud"] == self.cloud
                    and str(job.get("name", "")).startswith(self._prefix)
                    and _state(job) in STATES):
                ours.append(job)
        return ours

    def _instance(self, job: dict[str, Any]) -> Instance:
        mark = parse_tag(job.get("comment")) or {}
        state = _state(job)
        reason = str(job.get("state_reason") or "")
        return Instance(name=str(job["name"]), cloud=self.cloud, state=STATES[state],
                        vm_id=str(job["name"]), intent_id=mark.get("intent", ""),
                        detail=f"{state} ({reason})" if reason and reason != "None" else state,
                        instance_id=str(job["job_id"]))

    def _named(self, vm_id: str) -> list[dict[str, Any]]:
        return [job for job in self._jobs() if job.get("name") == vm_id]

    def _cancel(self, job_ids: Sequence[str], what: str) -> None:
        """scancel, then wait until Slurm no longer lists them as live."""
        if not job_ids:
            return
        self._run(["scancel", *job_ids])
        deadline = time.monotonic() + DELETE_WAIT_S
        while True:
            live = {str(j["job_id"]) for j in self._jobs()} & set(job_ids)
            if not live:
                return
            if time.monotonic() > deadline:
                raise TemporaryError(f"delete {what}: Slurm still lists job(s) "
                                     f"{', '.join(sorted(live))} after {DELETE_WAIT_S:.0f}s; "
                                     "retrying", delay=15.0)
            time.sleep(0.5)

    # ---- the CloudDriver protocol ----------------------------------------------------

    async def list(self) -> list[Instance]:
        """Our live drones on the cluster (one squeue)."""
        jobs = await self._calls.call(f"list the drones of {self.cloud}", self._jobs)
        return [self._instance(job) for job in jobs]

    async def create(self, vm: VmRecord, fresh: bool = False) -> Instance:
        """sbatch the drone, or return the live one of ours that already has this name
        (looked up unless `fresh`: the look-up costs as much as the sbatch)."""
        script = (await self.context.user_data(self.record, vm, self.opts)).decode()
        opts = self.opts

        def run() -> Instance:
            existing = [] if fresh else self._named(vm.vm_id)
            if existing:
                return self._instance(existing[0])
            output = (f"{opts.log_dir.rstrip('/')}/%x-%j.out" if opts.log_dir else "/dev/null")
            argv = ["sbatch", "--parsable", f"--job-name={vm.vm_id}",
                    f"--comment={tag(self.site, self.cloud, vm.intent_id)}",
                    f"--time={opts.walltime_min}", "--nodes=1", "--ntasks=1",
                    f"--cpus-per-task={vm.spec.cores}", f"--mem={vm.spec.memory_mb}",
                    f"--output={output}", "--open-mode=append"]
            if opts.partition:
                argv.append(f"--partition={opts.partition}")
            if opts.account:
                argv.append(f"--account={opts.account}")
            job_id = self._run(argv, stdin=script).strip().split(";")[0]
            return Instance(name=vm.vm_id, cloud=self.cloud, state="creating",
                            vm_id=vm.vm_id, intent_id=vm.intent_id, instance_id=job_id)

        return await self._calls.call(f"submit drone {vm.vm_id}", run)

    async def delete(self, vm_id: str) -> None:
        """scancel every live drone of ours with this name; none left is success."""
        await self._calls.call(f"delete {vm_id}", lambda: self._cancel(
            [str(j["job_id"]) for j in self._named(vm_id)], vm_id))

    async def delete_instance(self, instance_id: str) -> None:
        """scancel the drone with this job id, if it is ours and live."""
        await self._calls.call(f"delete job {instance_id}", lambda: self._cancel(
            [str(j["job_id"]) for j in self._jobs() if str(j["job_id"]) == instance_id],
            instance_id))

    async def state(self, vm_id: str) -> Instance | None:
        """The live drone of ours with this name, or None."""
        found = await self._calls.call(f"look up {vm_id}", lambda: self._named(vm_id))
        return self._instance(found[0]) if found else None

    async def capacity(self) -> CloudCapacity:
        """The partition's nodes (cores, memory), and what jobs that are not our drones
        hold of them."""
        def run() -> CloudCapacity:
            try:
                nodes = json.loads(self._run(["sinfo", "--json"])).get("nodes") or ()
            except json.JSONDecodeError as exc:
                raise TemporaryError(f"sinfo --json answered no JSON ({exc})") from None
            ours = [j for j in self._jobs() if STATES[_state(j)] == "running"]
            here = [n for n in nodes if not self.opts.partition
                    or self.opts.partition in (n.get("partitions") or ())]
            cores = sum(number(n.get("cpus")) for n in here)
            memory = sum(number(n.get("real_memory")) for n in here)
            used_cores = sum(number(n.get("alloc_cpus")) for n in here)
            used_memory = sum(number(n.get("alloc_memory")) for n in here)
            our_cores = sum(number(j.get("cpus")) for j in ours)
            our_memory = sum(number(j.get("memory_per_node")) for j in ours)
            return CloudCapacity(
                cloud=self.cloud,
                source=f"slurm partition {self.opts.partition or '(default)'}",
                max_cores=cores, max_memory_mb=memory,
                others_cores=max(0, used_cores - our_cores),
                others_memory_mb=max(0, used_memory - our_memory),
                reported_at=time.time())

        return await self._calls.call(f"read the partition of {self.cloud}", run)

    def watch(self, changed: Callable[[str], None]) -> None:
        """Slurm sends no events we can subscribe to here: reconcile polls (one squeue)."""

    async def close(self) -> None:
        """Stop the worker threads."""
        await self._calls.close(lambda: None)


def make_driver(record: CloudRecord, context: DriverContext) -> SlurmDriver:
    """The Slurm driver of one cloud (what the provisioner finds through the table)."""
    return SlurmDriver(record, context)
