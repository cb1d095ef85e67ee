"""A Slurm cloud's own `[[cloud]]` keys, their defaults and checks, and its table entry."""

from __future__ import annotations

from typing import ClassVar

from pydantic import model_validator

from providers.spec import Provider, ProviderOptions


class SlurmOptions(ProviderOptions):
    """How drones are submitted to one Slurm cluster."""

    NEEDS_IMAGE: ClassVar[bool] = False

    partition: str = ""
    """The partition drones are submitted to; "" = the cluster's default partition."""
    account: str = ""
    """The account drones are charged to (`sbatch --account`); "" = the user's default."""
    walltime_min: int = 60
    """Each drone's time limit (`sbatch --time`, minutes): Slurm ends it then; the drone
    is gone, not in error, and is replaced while demand lasts."""
    slurm_conf: str = ""
    """The slurm.conf the commands use (`SLURM_CONF`); "" = the system's."""
    bin_dir: str = ""
    """Where sbatch, squeue, scancel and sinfo are; "" = on PATH."""
    log_dir: str = ""
    """Folder (on the cluster) for each drone's output, `<log_dir>/<vm>-<job id>.out`;
    "" = none kept (/dev/null)."""

    @model_validator(mode="after")
    def _checked(self) -> SlurmOptions:
        if self.walltime_min < 1:
            raise ValueError(f"walltime_min: must be at least 1, got {self.walltime_min}")
        return self

    def address(self, cloud: str) -> str:
        """The partition (and the cluster's config, when not the system's)."""
        where = f"partition {self.partition or '(default)'}"
        return f"{where} of {self.slurm_conf}" if self.slurm_conf else where


PROVIDER = Provider(
    name="slurm", options=SlurmOptions, driver="providers.slurm.driver",
    summary="drones: batch jobs on a Slurm cluster that run the pool's startd",
    user_data_required=("a Slurm cloud's drones run its user_data as their batch script "
                        "(the site's HTCondor started for the pool): set user_data = FILE"))
"""The Slurm line of the table of providers."""
