"""`cs config import-v1`: a v1 `cloud_resources.conf` (and `cloud_scheduler.conf`) as our site
config, credentials moved to a clouds.yaml, and every key that could not be carried over
reported with the reason. Pure: text in, text out; the CLI writes the files.
"""

from __future__ import annotations

import configparser
import json
from dataclasses import dataclass, field

from bus.errors import ConfigError

OPENSTACK_TYPES = {"openstacknative"}
LIBVIRT_TYPES = {"localhost", "local", "kvm", "libvirt"}
EC2_API_TYPES = {"openstack", "amazonec2", "eucalyptus"}
"""v1's cloud types spoken through EC2's API (cloud_management.py, dev, lines 306-307): v1's
`OpenStack` is one of them, not OpenStack's own API."""

_CLOUD_KEYS: dict[str, tuple[str, str]] = {
    # v1 key: (our key, how the value is read)
    "vm_slots": ("max_vms", "int"),
    "cpu_cores": ("max_vm_cores", "int"),
    "total_cpu_cores": ("max_cores", "int"),
    "memory": ("max_memory_mb", "int_first"),
    "max_vm_mem": ("max_vm_memory_mb", "int"),
    "priority": ("priority", "int"),
    "boot_timeout": ("boot_timeout_s", "int"),
}
_OPENSTACK_KEYS: dict[str, tuple[str, str]] = {
    "key_name": ("key_name", "str"),
    "security_group": ("security_groups", "list"),
    "placement_zone": ("availability_zone", "str"),
    "networks": ("network", "first"),
}
_CREDENTIAL_KEYS = {
    "auth_url": "auth_url", "username": "username", "password": "password",
    "tenant_name": "project_name", "project_name": "project_name",
    "user_domain_name": "user_domain_name", "project_domain_name": "project_domain_name",
}
_CLOUD_REASONS = {
    "storage": "disk space is not a cloud limit here (the flavor or the image decides)",
    "max_vm_storage": "disk space is not a cloud limit here (the flavor or the image decides)",
    "vm_keep_alive": "keep-alive comes from the jobs' VMKeepAlive",
    "vm_lifetime": "VMs are not retired by age here",
    "enabled": "v1 rejected it; `enabled` is set at first start, then by cs cloud enable",
}
_JOB_MAPS = {"default_vmami": "image", "default_vminstancetypelist": "flavor"}
"""v1's per-cloud defaults of VMAMI and VMInstanceType: an OpenStack cloud's image and flavor
for jobs that name none."""
_JOB_DEFAULTS = {"default_vmmem": "default_vm_memory_mb",
                 "default_vmcpucores": "default_vm_cores",
                 "default_vmstorage": "default_vm_disk_gb"}
"""v1's defaults of job attributes that the poller has too (configparser lowercases keys)."""
_GLOBAL_REASONS = {
    "log_": "each service logs to its own stream (cs up: state/logs/)",
    "condor_": "HTCondor is reached through its Python bindings, not commands or URLs",
    "info_server_port": "cs talks to the services over NATS",
    "admin_server_port": "cs talks to the services over NATS",
    "persistence_file": "all state lives in NATS (JetStream KV)",
    "default_vm": "this default of a job attribute has no equivalent: jobs name it",
    "cloud_resource_config": "given on the command line",
    "graceful_shutdown": "retirement always drains first here",
    "ban_": "failing (cloud, VM type) pairs are backed off automatically",
    "job_ban_timeout": "failing (cloud, VM type) pairs are backed off automatically",
    "connection_fail_disable_time": "failing clouds back off exponentially "
                                    "([planner] backoff_base_s, backoff_max_s)",
    "vm_connection_fail_threshold": "failing clouds back off exponentially "
                                    "([planner] backoff_base_s, backoff_max_s)",
    "proxy": "X.509 proxies are not supported (pool tokens: [worker] token_file)",
    "myproxy": "X.509 proxies are not supported (pool tokens: [worker] token_file)",
    "cert_file": "X.509 credentials are not supported (pool tokens: [worker] token_file)",
    "key_file": "X.509 credentials are not supported (pool tokens: [worker] token_file)",
    "ca_": "X.509 credentials are not supported (pool tokens: [worker] token_file)",
}


@dataclass
class Imported:
    """The converted configuration."""

    toml: str
    clouds_yaml: dict[str, object]
    unmapped: list[str] = field(default_factory=list)
    """One line per key not carried over: file, section, key, why."""


def _parse(text: str, name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text, source=name)
    except configparser.Error as exc:
        raise ConfigError(f"{name}: not a v1 config file: {exc}") from None
    return parser


def _value(raw: str, how: str, where: str) -> object:
    raw = raw.strip().strip('"').strip("'")
    try:
        if how == "int":
            return int(float(raw))
        if how == "int_first":
            return int(float(raw.split(",")[0]))
    except ValueError:
        raise ConfigError(f"{where}: expected a number, got {raw!r}") from None
    if how == "list":
        return [v.strip() for v in raw.split(",") if v.strip()]
    if how == "first":
        return raw.split(",")[0].strip()
    return raw


def _toml(value: object) -> str:
    # JSON's strings, numbers, booleans and lists of strings are valid TOML values.
    return json.dumps(value)


def _reason(key: str, table: dict[str, str]) -> str | None:
    """Why a key is not carried over: the first entry whose text is part of the key."""
    for part, why in table.items():
        if part in key:
            return why
    return None


def _register_limit_s(value: object) -> object:
    """v1's condor_register_time_limit in seconds. It is minutes (the sample config: "the
    number of minutes ... The default value is 15"), except 900, taken as the seconds of an
    old default: v1 dev, cloudscheduler/config.py lines 131-134 (`if
    condor_register_time_limit != 900: condor_register_time_limit *= 60`)."""
    if isinstance(value, int) and not isinstance(value, bool) and value != 900:
        return value * 60
    return value


def convert(resources: str, resources_name: str, scheduler: str = "",
            scheduler_name: str = "", site: str = "imported") -> Imported:
    """Our site config (TOML text) and clouds.yaml entries from v1's two files."""
    lines = [f"# Imported from v1's {resources_name}"
             + (f" and {scheduler_name}" if scheduler_name else "")
             + " by `cs config import-v1`.", f'site = "{site}"', ""]
    unmapped: list[str] = []
    worker: dict[str, object] = {}
    planner: dict[str, object] = {}
    poller: dict[str, object] = {}
    default_boot_timeout: int | None = None
    job_maps: dict[str, dict[str, str]] = {}  # default_VMAMI, default_VMInstanceTypeList
    if scheduler:
        parsed = _parse(scheduler, scheduler_name)
        for section in parsed.sections():
            for key, raw in parsed.items(section):
                where = f"{scheduler_name}: [{section}] {key}"
                value = raw.strip().strip('"').strip("'")
                if key in ("condor_host", "condor_host_on_vm"):
                    if value and (key == "condor_host_on_vm" or "central_manager" not in worker):
                        worker["central_manager"] = value
                elif key == "condor_register_time_limit":
                    planner["register_timeout_s"] = _register_limit_s(
                        _value(raw, "int", where))
                elif key == "scheduler_interval":
                    planner["interval_s"] = _value(raw, "int", where)
                elif key == "job_poller_interval":
                    poller["interval_s"] = _value(raw, "int", where)
                elif key == "high_priority_job_weight":
                    planner["high_priority_weight"] = _value(raw, "int", where)
                elif key in _JOB_DEFAULTS:
                    poller[_JOB_DEFAULTS[key]] = _value(raw, "int", where)
                elif key in _JOB_MAPS:
                    job_maps[_JOB_MAPS[key]] = _v1_map(value)
                elif key == "vm_start_running_timeout":
                    timeout = _value(raw, "int", where)
                    if isinstance(timeout, int) and timeout > 0:
                        default_boot_timeout = timeout
                else:
                    why = _reason(key, _GLOBAL_REASONS) or "no equivalent here"
                    unmapped.append(f"{where}: not imported: {why}")
    for table, values in (("worker", worker), ("planner", planner), ("poller", poller)):
        if values:
            lines.append(f"[{table}]")
            lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
            lines.append("")
    clouds: dict[str, object] = {}
    skipped: list[str] = []
    imported = 0
    parsed = _parse(resources, resources_name)
    if not parsed.sections():
        raise ConfigError(f"{resources_name}: no cloud sections ([name] ...) found")
    for name in parsed.sections():
        items = dict(parsed.items(name))
        where = f"{resources_name}: [{name}]"
        kind = items.pop("cloud_type", "").strip().strip('"').lower()
        if kind in OPENSTACK_TYPES:
            provider = "openstack"
        elif kind in LIBVIRT_TYPES:
            provider = "libvirt"
        elif kind in EC2_API_TYPES:
            skipped.append(f"{where}: cloud not imported: cloud_type {kind!r} is v1's access "
                           "through EC2's API, which is not supported; an OpenStack cloud "
                           "imports as cloud_type = OpenStackNative with auth_url, username, "
                           "password and tenant_name")
            continue
        else:
            skipped.append(f"{where}: cloud not imported: cloud_type {kind or '(none)'!r} is "
                           "not supported (OpenStackNative and localhost clouds are)")
            continue
        # v1 named its clouds lowercased (cloud_management.py: name=cluster.lower()), and
        # the jobs' TargetClouds and VMAMI maps name them so.
        name = name.lower()
        out: dict[str, object] = {"name": name, "provider": provider, "enabled": True}
        if provider == "libvirt":
            out["uri"] = "qemu:///system"
        else:
            out["os_cloud"] = name
        auth: dict[str, object] = {}
        for key, raw in items.items():
            here = f"{where} {key}"
            if key in _CLOUD_KEYS:
                ours, how = _CLOUD_KEYS[key]
                out[ours] = _value(raw, how, here)
            elif (provider == "openstack" and key in _OPENSTACK_KEYS) or key == "networks":
                ours, how = _OPENSTACK_KEYS[key]
                out[ours] = _value(raw, how, here)
                if key == "networks" and "," in raw:
                    unmapped.append(f"{here}: only the first network ({out[ours]}) imported")
            elif provider == "openstack" and key == "cacert":
                auth["__cacert"] = _value(raw, "str", here)
            elif provider == "openstack" and key in _CREDENTIAL_KEYS:
                auth[_CREDENTIAL_KEYS[key]] = _value(raw, "str", here)
            elif provider == "openstack" and key == "regions":
                region = _value(raw, "first", here)
                assert isinstance(region, str)
                if region:
                    auth["__region"] = region
            else:
                why = _CLOUD_REASONS.get(key, "no equivalent here")
                unmapped.append(f"{here}: not imported: {why}")
        if default_boot_timeout and "boot_timeout_s" not in out:
            out["boot_timeout_s"] = default_boot_timeout
        for ours, mapping in sorted(job_maps.items()):
            value = mapping.get(name, mapping.get("default", ""))
            if value and provider == "openstack":
                out[ours] = value
            elif value:
                why = ("a libvirt cloud's base_image would override the jobs' own VMAMI"
                       if ours == "image" else "a libvirt cloud has no flavors")
                unmapped.append(f"{where}: {ours} {value!r} from v1's job defaults not "
                                f"imported: {why}")
        if provider == "openstack":
            clouds[name] = _clouds_yaml_entry(auth)
        lines.append("[[cloud]]")
        lines += [f"{k} = {_toml(v)}" for k, v in out.items()]
        lines.append("")
        imported += 1
    if not imported:
        raise ConfigError(f"{resources_name}: no cloud could be imported, so nothing was "
                          "written:\n" + "\n".join(skipped))
    return Imported(toml="\n".join(lines), clouds_yaml={"clouds": clouds},
                    unmapped=skipped + unmapped)


def _clouds_yaml_entry(auth: dict[str, object]) -> dict[str, object]:
    """A clouds.yaml entry authenticating as v1 did (openstackcluster.py, dev, 74-88): the
    Keystone version from the auth_url's last part (`/v2.0`: 2, `/v3`: 3), v3's domains
    "Default" unless given, and its `cacert`."""
    region, cacert = auth.pop("__region", ""), auth.pop("__cacert", "")
    url = str(auth.get("auth_url", "")).rstrip("/")
    version = 2 if url.rsplit("/", 1)[-1].startswith("v2") else 3
    if version == 3:
        auth.setdefault("user_domain_name", "Default")
        auth.setdefault("project_domain_name", "Default")
    entry: dict[str, object] = {"auth": auth, "identity_api_version": version}
    if region:
        entry["region_name"] = region
    if cacert:
        entry["cacert"] = cacert
    return entry


def _v1_map(text: str) -> dict[str, str]:
    """v1's `cloud:value,...` map (job_management.py `_attr_list_to_dict`): a bare item is
    "default", cloud names lowercased."""
    out: dict[str, str] = {}
    for item in text.split(","):
        cloud, sep, value = item.partition(":")
        if sep:
            out[cloud.strip().lower()] = value.strip()
        elif item.strip():
            out["default"] = item.strip()
    return out
