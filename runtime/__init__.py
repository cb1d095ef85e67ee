"""What every service process runs on, beside the bus: the run-loop (connect, set up, run,
stop on a signal), logging, and the `[metrics]`/`[logging]` settings."""
