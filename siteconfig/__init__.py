"""The site configuration file (TOML) that every service and `cs up` read.

`file` parses it (the installation, NATS, the clouds, and each service's raw table),
`section` gives typed access to one table, `template` checks user-data templates. Each
service reads its own table into its own settings class; `docs/configuration.md` lists every
key, and a test keeps the two in step.
"""

from siteconfig.file import DEFAULT_NATS_URL, SiteConfig, cloud_record, config_path, load
from siteconfig.section import Section

__all__ = ["DEFAULT_NATS_URL", "Section", "SiteConfig", "cloud_record", "config_path", "load"]
