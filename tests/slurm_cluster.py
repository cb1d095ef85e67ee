"""A real one-node Slurm cluster on this machine for the tests: Debian's slurmctld and slurmd
(scripts/slurm-host.sh installs them) with a munged of their own, all on 127.0.0.1 in one
folder, on ports chosen free. Commands reach it through `SLURM_CONF=<folder>/slurm.conf`.

`python -m tests.slurm_cluster up DIR` runs one by hand (`down DIR` stops it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.openstack_bed import free_ports

MUNGE_KEY = Path("/etc/munge/munge.key")
"""Debian's munge package makes a key at install; the cluster uses a copy of its own."""
NODE = "cstest-node"
PARTITION = "debug"
CPUS = 2
MEMORY_MB = 4000
DAEMONS = ("slurmd", "slurmctld")

CONF = """\
ClusterName=cstest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge}/munge.socket
CredType=cred/munge
StateSaveLocation={root}/ctld
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
MinJobAge=30
KillWait=2
NodeName={node} NodeAddr=127.0.0.1 NodeHostname=localhost CPUs={cpus} RealMemory={memory}
PartitionName={partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class ClusterError(RuntimeError):
    """The cluster could not be brought up; says which part and its log's last lines."""


class SlurmCluster:
    """slurmctld, slurmd and munged of one test session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        self.munge = Path(f"/tmp/cs-munge-{hashlib.sha1(str(root).encode()).hexdigest()[:10]}")
        """munged's folder: outside `root`, whose parents (pytest's) user munge cannot
        enter."""
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        """The environment Slurm's commands need to reach this cluster."""

    def run(self, *argv: str, check: bool = True) -> str:
        """A Slurm command against this cluster; its standard output."""
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60,
                              check=False)
        if check and done.returncode != 0:
            raise ClusterError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout}")
        return done.stdout

    def up(self) -> None:
        """Everything from nothing, then wait until the node takes jobs."""
        t0 = time.monotonic()
        self.down()
        for sub in ("ctld", "spool"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
            (self.root / sub).mkdir(parents=True)
        munge = self.munge
        shutil.rmtree(munge, ignore_errors=True)
        munge.mkdir()
        shutil.copyfile(MUNGE_KEY, munge / "munge.key")
        (munge / "munge.key").chmod(0o400)
        shutil.chown(munge, "munge", "munge")
        shutil.chown(munge / "munge.key", "munge", "munge")
        munge.chmod(0o711)  # munged wants its socket's folder open to every user
        self._start("munged", "runuser", "-u", "munge", "--", "/usr/sbin/munged",
                    f"--socket={munge}/munge.socket", f"--key-file={munge}/munge.key",
                    f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log",
                    f"--seed-file={munge}/munged.seed")
        ctld_port, d_port = free_ports(2)
        self.conf.write_text(CONF.format(root=self.root, munge=self.munge, ctld_port=ctld_port,
                                         d_port=d_port, node=NODE, cpus=CPUS, memory=MEMORY_MB,
                                         partition=PARTITION))
        self._start("slurmctld", "slurmctld", "-i")
        self._start("slurmd", "slurmd", "-N", NODE)
        deadline = time.monotonic() + 60
        while "idle" not in self.run("sinfo", "-h", "-o", "%T", check=False):
            if time.monotonic() > deadline:
                raise ClusterError(f"node {NODE} not idle after 60s: "
                                   f"{self._tail('slurmctld')} | {self._tail('slurmd')}")
            time.sleep(0.5)
        print(f"slurm: cluster ready after {time.monotonic() - t0:.1f}s", file=sys.stderr)

    def _start(self, name: str, *argv: str) -> None:
        """A daemon that forks itself away; its exit status says whether it started."""
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60,
                              check=False)
        if done.returncode != 0:
            raise ClusterError(f"{name} did not start ({done.returncode}): "
                               f"{done.stderr.strip()} {self._tail(name)}")

    def _tail(self, name: str) -> str:
        log = (self.munge / "munged.log" if name == "munged"
               else self.root / f"{name}.log")
        try:
            return " | ".join(log.read_text(errors="replace").splitlines()[-3:])
        except OSError:
            return f"(no {log.name})"

    def down(self) -> None:
        """Stop every daemon of the cluster (its folder stays, logs included)."""
        pidfiles = [self.root / f"{d}.pid" for d in DAEMONS] + [self.munge / "munged.pid"]
        for pidfile in pidfiles:
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pidfile.unlink(missing_ok=True)
                continue
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
            pidfile.unlink(missing_ok=True)
        shutil.rmtree(self.munge, ignore_errors=True)


def main(argv: list[str]) -> int:
    """`up DIR` or `down DIR`."""
    if len(argv) == 3 and argv[1] in ("up", "down"):
        cluster = SlurmCluster(Path(argv[2]).resolve())
        if argv[1] == "up":
            cluster.up()
            print(f"SLURM_CONF={cluster.conf}")
        else:
            cluster.down()
        return 0
    print("usage: python -m tests.slurm_cluster up|down DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
