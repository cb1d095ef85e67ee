"""Providers: one folder per kind of cloud (`providers/<name>/`), found by name in the table
(`providers.table`). A folder holds its options model and table entry (`options.py`: plain
data, read by the site config, the admin and the planner) and its driver (`driver.py` and
what only the driver uses: read by the provisioner service alone, through the table).

This file imports nothing, so reading a provider's options never loads a cloud SDK.
"""
