"""The message bus of cloudscheduler: the contract and the connection, nothing else.

Everything that crosses a process boundary is declared here, once: subject names
(`subjects`), typed and versioned message schemas (`schemas`), the msgpack codec with its
headers (`codec`), the error vocabulary (`errors`), KV buckets and streams (`infra`), the
connection (`connection`) and the typed client of the admin endpoints (`client`), endpoints on
the NATS services API (`micro`), buckets held in memory (`mirror`), who may use which subject
(`permissions`), and the metrics every process exports (`metrics`, carried on the `Bus`). Only
this package imports `nats` and `msgpack`, and it imports nothing of ours: it is the bottom
layer (see `docs/architecture.md`).
"""
