"""A Slurm cloud's own `[[cloud]]` keys, their defaults and checks, and its table entry."""

from __future__ import annotations

import shlex
from typing import ClassVar

from pydantic import model_validator

from providers.slurm.drone import DRONE_SCRIPT
from providers.spec import Provider, ProviderOptions


class SlurmOptions(ProviderOptions):
    """How drones are submitted to one Slurm cluster."""

    NEEDS_IMAGE: ClassVar[bool] = False
    TEMPLATE_VARIABLES: ClassVar[dict[str, str]] = {
        "CS_WALLTIME_S": "the drone's time limit in seconds (walltime_min)",
        "CS_DRAIN_S": "seconds before its end when the drone takes no new job (drain_min)",
        "CS_CONDOR_WRAPPER": "the command HTCondor runs under (condor_wrapper), or nothing",
    }

    partition: str = ""
    """The partition drones are submitted to; "" = the cluster's default partition."""
    account: str = ""
    """The account drones are charged to (`sbatch --account`); "" = the user's default."""
    walltime_min: int = 60
    """Each drone's time limit (`sbatch --time`, minutes): Slurm ends it then; the drone
    is gone, not in error, and is replaced while demand lasts."""
    drain_min: int = 10
    """Minutes before its time limit when a drone takes no new job and the planner retires
    it (peacefully: a running job goes on to the end) and boots a replacement while demand
    lasts; less than walltime_min."""
    condor_wrapper: str = ""
    """A command the drone runs HTCondor under (e.g. `apptainer exec htcondor.sif`), with
    `CS_DRONE_DIR` (the drone's folder, which it must show at the same path) in its
    environment; "" = HTCondor is installed on the nodes."""
    login_command: str = ""
    """A command that runs its last argument on the cluster's login node, e.g. `ssh -o
    BatchMode=yes -i /etc/cs/hpc_key cs@login.hpc.example` (the key stays a file of the
    provisioner's host: never in the config's values, on the bus or in logs); "" = Slurm's
    commands run on the provisioner's host."""
    slurm_conf: str = ""
    """The slurm.conf the commands use (`SLURM_CONF`, set on the login node when there is
    one); "" = the system's."""
    bin_dir: str = ""
    """Where sbatch, squeue, scancel and sinfo are (on the login node when there is one);
    "" = on PATH."""
    log_dir: str = ""
    """Folder (on the cluster) for each drone's output, `<log_dir>/<vm>-<job id>.out`;
    "" = none kept (/dev/null)."""

    @model_validator(mode="after")
    def _checked(self) -> SlurmOptions:
        if self.walltime_min < 1:
            raise ValueError(f"walltime_min: must be at least 1, got {self.walltime_min}")
        if not 0 <= self.drain_min < self.walltime_min:
            raise ValueError(f"drain_min: must be at least 0 and less than walltime_min "
                             f"({self.walltime_min}), got {self.drain_min}")
        for key in ("condor_wrapper", "login_command"):
            try:
                shlex.split(getattr(self, key))
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return self

    def address(self, cloud: str) -> str:
        """The partition (and the cluster's config, when not the system's)."""
        where = f"partition {self.partition or '(default)'}"
        where = f"{where} of {self.slurm_conf}" if self.slurm_conf else where
        login = shlex.split(self.login_command)
        return f"{where} via {login[-1]}" if login else where

    def lifetime_s(self) -> float:
        """Until the drain: the planner retires the drone then."""
        return (self.walltime_min - self.drain_min) * 60.0

    def template_values(self) -> dict[str, str]:
        """The drone script's own placeholders."""
        return {"CS_WALLTIME_S": str(self.walltime_min * 60),
                "CS_DRAIN_S": str(self.drain_min * 60),
                "CS_CONDOR_WRAPPER": self.condor_wrapper}


PROVIDER = Provider(
    name="slurm", options=SlurmOptions, driver="providers.slurm.driver",
    summary="drones: batch jobs on a Slurm cluster that run the pool's startd",
    default_user_data=DRONE_SCRIPT)
"""The Slurm line of the table of providers."""
