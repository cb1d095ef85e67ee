"""The table of providers is the one list of providers: everything that names the providers
follows from it, so a provider added to the table is served, supervised, allowed on the bus,
observed and documented, or a test here says where it is missing."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from bus.permissions import SERVICE_ROLES
from cli.supervisor import COMMANDS
from cli.v1 import CLOUD_TYPES
from providers.table import PROVIDERS, provider
from provisioning.settings import ProvisionerServiceSettings
from runtime.observe import PORT_OFFSETS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_every_provider_is_served_supervised_allowed_and_observed(name: str) -> None:
    entry = PROVIDERS[name]
    assert COMMANDS[entry.program] == ["-m", "services.provisioner", name]
    assert SERVICE_ROLES[entry.program] == "provisioner"
    assert entry.program in PORT_OFFSETS
    assert name in CLOUD_TYPES
    assert set(entry.provisioner_keys) <= ProvisionerServiceSettings.KEYS
    assert entry.driver == f"providers.{name}.driver"
    assert entry.options.__module__ == f"providers.{name}.options"


def test_the_metrics_ports_do_not_collide() -> None:
    assert len(set(PORT_OFFSETS.values())) == len(PORT_OFFSETS)


def test_the_container_runs_a_provisioner_per_provider() -> None:
    conf = configparser.RawConfigParser()
    conf.read(ROOT / "container" / "supervisord.conf")
    for entry in PROVIDERS.values():
        section = f"program:{entry.program}"
        assert conf.has_section(section), f"container/supervisord.conf has no [{section}]"
        assert conf.get(section, "command").endswith(f"cs-provisioner {entry.name}")


def test_an_unknown_provider_is_said_with_those_there_are() -> None:
    with pytest.raises(KeyError, match="unknown provider 'pbs': expected one of libvirt"):
        provider("pbs")
    done = subprocess.run([sys.executable, "-m", "services.provisioner", "pbs"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"unknown provider 'pbs': expected one of {', '.join(PROVIDERS)}" in done.stderr
    done = subprocess.run([sys.executable, "-m", "services.provisioner"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage: cs-provisioner PROVIDER" in done.stderr


def test_a_providers_options_load_no_sdk() -> None:
    """Reading the table (the site config does, in every service) imports no cloud SDK and
    no driver."""
    code = ("import sys, providers.table, siteconfig; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('libvirt', 'openstack', 'keystoneauth1') or m.endswith('.driver')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60, cwd=ROOT)
    assert done.stdout.strip() == "[]"
