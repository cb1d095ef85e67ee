"""The provisioner runtime both provisioners run (services may not import each other, so it
lives here): the `CloudDriver` Protocol and its contract suite, the per-cloud worker loop and
its reconcile rules, the service that serves every cloud of a provider, the `[provisioner]`
settings, and user-data rendering. A provider adds only its driver."""
