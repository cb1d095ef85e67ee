"""The provisioner service of every provider: `cs-provisioner PROVIDER` runs the shared
provisioner runtime (`provisioning/`) with the driver the table of providers names."""
