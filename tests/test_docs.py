"""The docs cannot drift from the code: docs/configuration.md against the settings classes
(every key, every field, every default), docs/architecture.md against the subjects, streams
and buckets of `bus.subjects`, and the links of README.md and docs/ against the files."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import siteconfig
from bus import calls, subjects, vmstates
from bus.schemas import CloudRecord
from providers.table import PROVIDERS
from provisioning.settings import ProvisionerServiceSettings, ProvisionerSettings
from provisioning.userdata import WorkerSettings
from runtime.observe import ObserveSettings
from services.admin import history
from services.admin.statuspage import ADMIN_KEYS
from services.planner.decisions import Policy
from services.planner.settings import PlannerSettings
from services.poller.demand import JobDefaults
from services.poller.settings import PollerSettings
from siteconfig.file import COMMON_CLOUD_KEYS, NATS_KEYS, TOP_KEYS, SiteConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGES = ("cli", "providers", "bus", "siteconfig", "runtime", "registry", "provisioning",
            "services")

KEYS: dict[str, frozenset[str]] = {
    "top": frozenset({"site"}),
    "nats": NATS_KEYS,
    "poller": PollerSettings.KEYS,
    "planner": PlannerSettings.KEYS,
    "provisioner": ProvisionerServiceSettings.KEYS,
    "worker": WorkerSettings.KEYS,
    "admin": ADMIN_KEYS,
    "metrics": ObserveSettings.METRICS_KEYS,
    "logging": ObserveSettings.LOGGING_KEYS,
    "cloud": COMMON_CLOUD_KEYS,
    **{f"cloud.{p.name}": frozenset(p.options.model_fields) for p in PROVIDERS.values()},
}
"""What each table accepts, as the code checks it."""

FIELDS: dict[type, tuple[str, dict[str, str | None]]] = {
    SiteConfig: ("top", {"path": None, "clouds": None, "tables": None, "nats_url": "nats:url",
                         "nats_replicas": "nats:replicas", "nats_ca_file": "nats:ca_file",
                         "launcher_problem": None}),  # CS_LAUNCHER_PROBLEM, an env variable
    PollerSettings: ("poller", {"nats_url": "nats:url", "defaults": None}),  # JobDefaults
    JobDefaults: ("poller", {"cores": "poller:default_vm_cores",
                             "memory_mb": "poller:default_vm_memory_mb",
                             "disk_gb": "poller:default_vm_disk_gb"}),
    PlannerSettings: ("planner", {"nats_url": "nats:url", "site": "top:site",
                                  "policy": None}),  # Policy's fields, below
    Policy: ("planner", {}),
    ProvisionerServiceSettings: ("provisioner", {"nats_url": "nats:url", "site": "top:site",
                                                 "loops": None}),  # ProvisionerSettings
    ProvisionerSettings: ("provisioner", {}),
    WorkerSettings: ("worker", {}),
    ObserveSettings: ("metrics", {"metrics_host": "metrics:host",
                                  "metrics_port": "metrics:base_port",
                                  "log_format": "logging:format", "log_level": "logging:level"}),
    CloudRecord: ("cloud", {"address": None, "default_image": None, "needs_image": None,
                            "lifetime_s": None,  # those four from the options
                            "options": None,  # each provider's own table, below
                            "user_data_file": None, "updated_at": None, "updated_by": None}),
    **{p.options: (f"cloud.{p.name}", {}) for p in PROVIDERS.values()},
}
"""Each settings class: the table its fields come from, and the fields that are named
otherwise there (None: not a key; set by the code, or the table of its own below)."""

MINIMAL = """
site = "docs"
[[cloud]]
name = "lv"
provider = "libvirt"
uri = "qemu:///system"
[[cloud]]
name = "os"
provider = "openstack"
[[cloud]]
name = "sl"
provider = "slurm"
user_data = "drone.sh"
"""


def documented() -> dict[str, dict[str, str]]:
    """The keys of docs/configuration.md by table, each with its default cell."""
    tables: dict[str, dict[str, str]] = {}
    table = ""
    for line in (DOCS / "configuration.md").read_text().splitlines():
        heading = re.match(r"^#{2,3} (.+)$", line)
        if heading:
            title = heading.group(1)
            provider = re.search(r'provider = "(\w+)"', title)
            table = ("top" if title == "top level" else
                     f"cloud.{provider.group(1)}" if provider else title.strip("[]"))
            tables.setdefault(table, {})
            continue
        row = re.match(r"^\| `(\w+)` \| (.*?) \| .* \|$", line)
        if row and table in KEYS:
            assert row.group(1) not in tables[table], f"[{table}] {row.group(1)} listed twice"
            tables[table][row.group(1)] = row.group(2)
    return tables


def test_every_key_of_every_table_is_documented_and_nothing_else() -> None:
    docs = documented()
    # Every table the file may have is in KEYS, so a new table cannot go undocumented.
    assert TOP_KEYS - {"site", "cloud"} <= set(KEYS)
    for table, keys in KEYS.items():
        assert table in docs, f"docs/configuration.md has no section for [{table}]"
        assert set(docs[table]) == set(keys), (
            f"[{table}]: undocumented {sorted(set(keys) - set(docs[table]))}, "
            f"documented but unknown to the code {sorted(set(docs[table]) - set(keys))}")


def _fields(cls: type) -> list[str]:
    if issubclass(cls, BaseModel):
        return list(cls.model_fields)
    assert dataclasses.is_dataclass(cls), cls
    return [f.name for f in dataclasses.fields(cls)]


def test_every_settings_field_has_an_entry() -> None:
    docs = documented()
    for cls, (table, named) in FIELDS.items():
        for name in _fields(cls):
            where = named.get(name, f"{table}:{name}")
            if where is None:
                continue
            t, key = where.split(":")
            assert key in docs.get(t, {}), (
                f"{cls.__name__}.{name} has no entry in docs/configuration.md (looked for "
                f"[{t}] {key}); document the key, or say in tests/test_docs.py where it is")


def test_every_settings_class_is_accounted_for() -> None:
    """A new settings class (any dataclass named *Settings in our packages) must be listed
    above, so its fields are checked too."""
    found: set[type] = set()
    for package in PACKAGES:
        for info in pkgutil.walk_packages([str(ROOT / package)], f"{package}."):
            if ".tests" in info.name:
                continue
            module = importlib.import_module(info.name)
            for _, obj in inspect.getmembers(module, inspect.isclass):
                if (obj.__module__ == info.name and obj.__name__.endswith("Settings")
                        and dataclasses.is_dataclass(obj)):
                    found.add(obj)
    assert found, "no settings classes found: the walk is broken"
    assert found <= set(FIELDS), f"not checked: {sorted(c.__name__ for c in found - set(FIELDS))}"


def _comparable(value: Any) -> Any:
    """A value as the docs write it: nothing (None, an empty list or command) as ""."""
    if value is None or value == () or value == []:
        return ""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def test_documented_defaults_are_the_code_defaults(tmp_path: Path) -> None:
    path = tmp_path / "cs.toml"
    path.write_text(MINIMAL)
    (tmp_path / "drone.sh").write_text("#!/bin/sh\nexec condor_master -f\n")
    site = siteconfig.load(path, {})
    planner = PlannerSettings.from_site(site)
    provisioner = ProvisionerServiceSettings.from_site(site)
    libvirt = site.clouds[0]
    poller = PollerSettings.from_site(site)
    instances: list[Any] = [
        site, poller, poller.defaults, planner, planner.policy, provisioner,
        provisioner.loops, WorkerSettings.from_site(site),
        ObserveSettings.from_site(site, "cs-admin", {}), libvirt,
        *(PROVIDERS[c.provider].options.read(dict(c.options)) for c in site.clouds)]
    actual: dict[str, Any] = {"admin:status_page": "",  # [admin] is read into an address
                              "admin:history_interval_s": history.DEFAULT_INTERVAL_S,
                              **{f"provisioner:{key}": default for p in PROVIDERS.values()
                                 for key, default in p.provisioner_keys.items()}}
    for obj in instances:
        table, named = FIELDS[type(obj)]
        for name in _fields(type(obj)):
            where = named.get(name, f"{table}:{name}")
            if where is not None:
                actual.setdefault(where, getattr(obj, name))
    checked = 0
    for table, keys in documented().items():
        for key, cell in keys.items():
            literal = re.fullmatch(r"`([^`]*)`", cell)
            if literal is None:
                continue  # prose: "(required)", or a default that depends on other keys
            assert f"{table}:{key}" in actual, f"[{table}] {key}: no code default to check"
            written = tomllib.loads(f"v = {literal.group(1)}")["v"]
            assert _comparable(written) == _comparable(actual[f"{table}:{key}"]), (
                f"[{table}] {key}: docs say {literal.group(1)}, the code's default is "
                f"{actual[f'{table}:{key}']!r}")
            checked += 1
    assert checked >= 50


def test_the_architecture_names_every_subject_stream_and_bucket() -> None:
    text = (DOCS / "architecture.md").read_text()
    # The docs write a subject's variable tokens as <cloud>, <vm>, ...
    plain = re.sub(r"<[a-z]+>", "X", text)
    for name in ("INTENT_STREAM", "CONDOR_STREAM", "SNAPSHOT_STREAM", "HISTORY_STREAM",
                 "CLOUDS_BUCKET",
                 "VMS_BUCKET", "HEALTH_BUCKET", "CAPACITY_BUCKET", "SERVICES_BUCKET"):
        assert getattr(subjects, name) in text, f"{name} missing from docs/architecture.md"
    for name, fn in inspect.getmembers(subjects, inspect.isfunction):
        if fn.__module__ != subjects.__name__ or name in (
                "check_token", "snapshot_subjects", "intent_durable", "service_key", "vm_key",
                "admin_endpoint", "provider_group", "history_point_id"):
            continue
        subject = fn(*["X"] * len(inspect.signature(fn).parameters))
        assert subject in plain, f"subject {subject} ({name}) missing from docs/architecture.md"
    for call in calls.ADMIN:
        assert subjects.admin_endpoint(call.name) in text, call.name


def test_the_state_section_is_the_table_of_states() -> None:
    """docs/architecture.md lists every state with its meaning and every move, as
    `bus.vmstates` has them, in the same order."""
    text = (DOCS / "architecture.md").read_text()
    said = re.findall(r"^- `(\w+)`: (.+)$", text, re.M)
    assert [(k, v) for k, v in said if k in vmstates.MEANING] == list(vmstates.MEANING.items())
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| (\w+) \| (.+?) \|$", text, re.M)
    assert rows == [(m.source, m.target, m.by, m.why) for m in vmstates.MOVES]


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", ["README.md", *sorted(
    str(p.relative_to(ROOT)) for p in DOCS.glob("*.md"))])
def test_links_lead_somewhere(page: str) -> None:
    source = ROOT / page
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", source.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path = (source.parent / target).resolve() if target else source
        assert path.exists(), f"{page}: link to {target}, which does not exist"
        if anchor:
            assert path.suffix == ".md", f"{page}: anchor on a non-page {target}"
            anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", path.read_text(), re.M)}
            assert anchor in anchors, f"{page}: {target}#{anchor}: no such heading"


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) < 10_000, f"README.md is {len(readme.encode())} bytes"
    assert "make run" in readme and "make test" in readme
    for page in ("operating", "configuration", "architecture", "clouds", "container",
                 "scale-out", "security", "performance", "testing"):
        assert f"docs/{page}.md" in readme, f"README.md does not link docs/{page}.md"
