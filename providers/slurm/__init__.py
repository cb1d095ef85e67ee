"""The Slurm provider: worker "VMs" as drones, batch jobs on a Slurm cluster that run the
pool's HTCondor startd (`options.py`: its `[[cloud]]` keys; `driver.py`: sbatch, squeue,
scancel and sinfo, the only module that runs them)."""
