"""The message bus contract of cloudscheduler.

Everything that crosses a process boundary is declared here, once: subject names
(`subjects`), typed and versioned message schemas (`schemas`), the msgpack codec with its
headers (`codec`), KV buckets and streams (`infra`), the connection helper (`connection`), the
service run-loop (`runloop`), the error vocabulary (`errors`) and the site configuration file
that every service reads (`siteconfig`). Only this package imports `nats` and `msgpack`.
"""
