"""The admin service (status, enable/disable on the NATS services API) and the `cs` CLI."""
