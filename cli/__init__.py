"""The operator's tools, above the services: the `cs` CLI (`main.py` and its command
modules), v1's `cloud_status`/`cloud_admin` (`v1_commands.py`, `v1.py`), `cs up`
(`supervisor.py`), `cs plan` and `cs config check` offline (`offline.py`: the services'
pure cores), `cs config import-v1` (`importv1.py`) and `cs trace` (`tracing.py`)."""
