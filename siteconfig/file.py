"""The site configuration file (TOML) that every service and `cs up` read.

One file describes the installation: its id, the NATS URL, a section per service and a
`[[cloud]]` table per cloud. Errors name the file, the section and the key, and say the fix.
Environment variables override the file where noted (CS_NATS_URL).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bus import subjects
from bus.errors import ConfigError
from bus.schemas import CloudRecord
from providers.spec import ConfigContext, ProviderOptions
from providers.table import PROVIDERS
from siteconfig.section import Section
from siteconfig.template import check_template
from siteconfig.textfile import read_text

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


COMMON_CLOUD_KEYS = frozenset({
    "name", "provider", "enabled", "max_vms", "boots_per_cycle", "priority", "max_cores",
    "max_memory_mb", "max_vm_cores", "max_vm_memory_mb", "boot_timeout_s", "user_data",
})
"""Keys of every [[cloud]] table, whatever its provider."""
TOP_KEYS = frozenset({
    "site", "nats", "poller", "planner", "provisioner", "admin", "worker", "cloud", "metrics",
    "logging",
})
"""The top level: the installation id, the [[cloud]] array, and one table per concern."""
NATS_KEYS = frozenset({"url", "replicas", "ca_file"})
"""Keys of the [nats] table."""


@dataclass(frozen=True)
class SiteConfig:
    """The parsed file: installation id, NATS URL, clouds, and raw per-service sections."""

    path: Path
    site: str
    nats_url: str
    clouds: tuple[CloudRecord, ...]
    tables: dict[str, dict[str, Any]]
    nats_replicas: int = 1
    """Copies of every stream and KV bucket ([nats] replicas): 3 on a 3-node NATS cluster."""
    nats_ca_file: str = ""
    """CA certificate(s) to verify a TLS NATS server with ([nats] ca_file, CS_NATS_CA_FILE);
    "" = the system's authorities (for tls:// URLs)."""
    launcher_problem: str = ""
    """A problem the program that started the services found (CS_LAUNCHER_PROBLEM: the
    container's entrypoint, e.g. no CENTRAL_MANAGER given); the admin service shows it in
    `cs status`. "" = none."""

    def section(self, name: str) -> Section:
        """One service's table (empty when absent)."""
        return Section(self.path, name, self.tables.get(name, {}))


def _cloud(path: Path, index: int, data: Any) -> CloudRecord:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [[cloud]] #{index + 1}: expected a table")
    sec = Section(path, f"cloud #{index + 1}", data)
    name = sec.string("name", "")
    if not name:
        raise ConfigError(f"{path}: [[cloud]] #{index + 1}: 'name' is required")
    sec = Section(path, f"cloud {name}", data)
    subjects.check_token(name, f"{path}: [cloud {name}] name:")
    provider = PROVIDERS.get(sec.string("provider", ""))
    if provider is None:
        raise ConfigError(f"{sec.where('provider')}: expected one of {', '.join(PROVIDERS)}, "
                          f"got {data.get('provider', '')!r}")
    own = {k: v for k, v in data.items() if k not in COMMON_CLOUD_KEYS}
    known = set(provider.options.model_fields) | COMMON_CLOUD_KEYS
    for key in own.keys() - known:
        # Another provider's key is a mistake of its own; any other is a typo (with a guess).
        others = [p.name for p in PROVIDERS.values() if key in p.options.model_fields]
        if others:
            raise ConfigError(f"{sec.where(key)}: not a setting of a {provider.name} cloud (it "
                              f"is one of {', '.join(others)})")
    sec.check_keys(known)
    try:
        options = provider.options.read(own, ConfigContext(config_dir=path.parent, cloud=name))
    except ValueError as exc:
        raise ConfigError(f"{path}: [cloud {name}] " + "; ".join(str(exc).splitlines())) \
            from None
    user_data_file = sec.path_value("user_data", "")
    user_data = ""
    if user_data_file is not None:
        try:
            user_data = read_text(user_data_file, "a user-data template", "no such file")
        except ConfigError as exc:
            raise ConfigError(f"{path}: [cloud {name}] user_data: cannot read {exc}") from None
        check_template(user_data, f"{user_data_file} (user_data of cloud {name})",
                       provider.options.TEMPLATE_VARIABLES)
    return cloud_record(
        name, options, provider=provider.name,
        enabled=sec.boolean("enabled", False),
        max_vms=sec.integer("max_vms", 10),
        boots_per_cycle=sec.integer("boots_per_cycle", 5, minimum=1),
        priority=sec.integer("priority", 0),
        max_cores=sec.integer("max_cores", 0),
        max_memory_mb=sec.integer("max_memory_mb", 0),
        max_vm_cores=sec.integer("max_vm_cores", 0),
        max_vm_memory_mb=sec.integer("max_vm_memory_mb", 0),
        boot_timeout_s=sec.number("boot_timeout_s", 600.0, minimum=1.0),
        user_data=user_data, user_data_file=str(user_data_file or ""))


def cloud_record(name: str, options: ProviderOptions | dict[str, Any], provider: str = "",
                 **common: Any) -> CloudRecord:
    """A cloud's record from its provider's options (a model, or keys its model reads) and
    the settings every cloud has; what a `[[cloud]]` table gives, for code that builds one.
    `provider` may be left out when `options` is a model of a provider in the table."""
    if isinstance(options, dict):
        options = PROVIDERS[provider].options.read(options)
    elif not provider:
        provider = next(p.name for p in PROVIDERS.values() if p.options is type(options))
    return CloudRecord(name=name, provider=provider, address=options.address(name),
                       default_image=options.default_image(),
                       needs_image=options.NEEDS_IMAGE, lifetime_s=options.lifetime_s(),
                       options=options.model_dump(),
                       **common)


def load(path: Path, env: dict[str, str] | None = None) -> SiteConfig:
    """Read and validate the site config at `path`; `env` overrides (default os.environ)."""
    env = dict(os.environ) if env is None else env
    text = read_text(path, "the site config", missing=(
        "config file not found; pass --config FILE or set CS_CONFIG "
        "(examples/demo.toml is a working example)"))
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    top = Section(path, "top level", raw)
    top.check_keys(TOP_KEYS)
    site = top.string("site", "")
    if not site:
        raise ConfigError(f"{path}: 'site' (the installation id, e.g. site = \"uvic\") is required")
    subjects.check_token(site, f"{path}: site")
    tables: dict[str, dict[str, Any]] = {}
    for key in TOP_KEYS - {"site", "cloud"}:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: [{key}] must be a table")
        tables[key] = value
    if env.get("CS_CENTRAL_MANAGER"):
        # The container sets it from `docker run -e CENTRAL_MANAGER=...`: no file edits.
        tables["worker"] = {**tables["worker"], "central_manager": env["CS_CENTRAL_MANAGER"]}
    nats_sec = Section(path, "nats", tables["nats"])
    nats_sec.check_keys(NATS_KEYS)
    nats_url = env.get("CS_NATS_URL") or nats_sec.string("url", DEFAULT_NATS_URL)
    replicas = nats_sec.integer("replicas", 1, minimum=1)
    ca_path = nats_sec.path_value("ca_file", "")
    ca_file = env.get("CS_NATS_CA_FILE") or (str(ca_path) if ca_path else "")
    if replicas > 5:
        raise ConfigError(f"{path}: [nats] replicas = {replicas}: JetStream keeps at most 5 "
                          "copies (use 3 on a 3-node cluster)")
    raw_clouds = raw.get("cloud", [])
    if not isinstance(raw_clouds, list):
        raise ConfigError(f"{path}: 'cloud' must be an array of tables: write [[cloud]]")
    clouds = tuple(_cloud(path, i, c) for i, c in enumerate(raw_clouds))
    names = [c.name for c in clouds]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{path}: cloud {name!r} is defined more than once")
    return SiteConfig(path=path, site=site, nats_url=nats_url, clouds=clouds, tables=tables,
                      nats_replicas=replicas, nats_ca_file=ca_file,
                      launcher_problem=env.get("CS_LAUNCHER_PROBLEM", "").strip())


def config_path(explicit: str | None, env: dict[str, str] | None = None) -> Path:
    """The config file to use: explicit argument, else CS_CONFIG, else ./cloudscheduler.toml."""
    env = dict(os.environ) if env is None else env
    return Path(explicit or env.get("CS_CONFIG") or "cloudscheduler.toml")
