"""`cs config import-v1`: v1's files in, a config that loads and a clouds.yaml out, and every
key left behind reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import siteconfig
from bus.errors import ConfigError
from services.admin.cli import app
from services.admin.importv1 import convert
from services.admin.offline import check_config

RESOURCES = """\
[my-openstack]
cloud_type = OpenStackNative
auth_url = https://keystone.example.org:5000/v3
username = svc-user
password = CHANGE_ME
tenant_name = myproject
user_domain_name = Default
project_domain_name = Default
regions = RegionOne
security_group = default,condor
key_name = mykey
networks = private-net
vm_slots = 20
cpu_cores = 8
memory = 160000
storage = 2000
priority = 1
vm_keep_alive = 30

[container-cloud]
cloud_type = localhost
vm_slots = 10
cpu_cores = 1
memory = 8000
networks = default

[old-ec2]
cloud_type = AmazonEC2
vm_slots = 5
"""

SCHEDULER = """\
[global]
condor_host = cm.example.org
condor_register_time_limit = 900
scheduler_interval = 5
vm_start_running_timeout = 1200
info_server_port = 8111
log_level = DEBUG
default_VMMem = 2048
default_VMCPUCores = 2
default_VMAMI = centos7.qcow2
"""


def test_import_makes_a_config_that_loads_with_credentials_kept_apart(tmp_path: Path) -> None:
    imported = convert(RESOURCES, "cloud_resources.conf", SCHEDULER, "cloud_scheduler.conf",
                       site="uvic")
    path = tmp_path / "cs.toml"
    path.write_text(imported.toml)
    site = siteconfig.load(path, {})
    assert site.site == "uvic"
    clouds = {c.name: c for c in site.clouds}
    assert set(clouds) == {"my-openstack", "container-cloud"}
    os_cloud = clouds["my-openstack"]
    assert (os_cloud.provider, os_cloud.max_vms, os_cloud.max_vm_cores, os_cloud.max_memory_mb,
            os_cloud.priority, os_cloud.boot_timeout_s) == ("openstack", 20, 8, 160000, 1, 1200)
    assert os_cloud.openstack is not None
    assert os_cloud.openstack.security_groups == ("default", "condor")
    assert (os_cloud.openstack.key_name, os_cloud.openstack.network) == ("mykey", "private-net")
    assert "CHANGE_ME" not in imported.toml  # credentials never in the site config
    auth = imported.clouds_yaml["clouds"]["my-openstack"]  # type: ignore[index]
    assert auth["auth"]["password"] == "CHANGE_ME" and auth["region_name"] == "RegionOne"
    assert auth["auth"]["project_name"] == "myproject"
    assert clouds["container-cloud"].uri == "qemu:///system"
    assert site.section("worker").string("central_manager", "") == "cm.example.org"
    assert site.section("planner").integer("register_timeout_s", 0) == 900
    poller = site.section("poller")
    assert (poller.integer("default_vm_memory_mb", 0), poller.integer("default_vm_cores", 0),
            poller.integer("default_vm_disk_gb", 0)) == (2048, 2, 0)
    check_config(site)  # every service takes it
    reported = "\n".join(imported.unmapped)
    for part in ("[my-openstack] storage: not imported", "[my-openstack] vm_keep_alive",
                 "[old-ec2]: cloud not imported: cloud_type 'amazonec2'",
                 "[container-cloud] networks", "[global] info_server_port: not imported: cs "
                 "talks to the services over NATS", "[global] log_level",
                 "[global] default_vmami: not imported: this default of a job attribute"):
        assert part in reported, part


def test_cli_writes_both_files_and_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "cloud_resources.conf").write_text(RESOURCES)
    (tmp_path / "cloud_scheduler.conf").write_text(SCHEDULER)
    out, yaml = tmp_path / "cs.toml", tmp_path / "clouds.yaml"
    args = ["config", "import-v1", str(tmp_path / "cloud_resources.conf"),
            str(tmp_path / "cloud_scheduler.conf"), "--site", "uvic", "--out", str(out),
            "--clouds-yaml", str(yaml)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "not imported" in result.output and "2 cloud(s)" in result.output
    assert json.loads(yaml.read_text())["clouds"]["my-openstack"]["auth"]["username"] == \
        "svc-user"
    assert yaml.stat().st_mode & 0o077 == 0  # the passwords' file is the owner's alone
    assert siteconfig.load(out, {}).site == "uvic"
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "exists; pass --force" in again.output


@pytest.mark.parametrize(("minutes", "seconds"), [(15, 900), (900, 900), (30, 1800)])
def test_the_register_time_limit_is_minutes_as_v1_read_it(minutes: int, seconds: int) -> None:
    """v1 dev, cloudscheduler/config.py 131-134: minutes, times 60, unless it is 900."""
    imported = convert("[c]\ncloud_type = localhost\n", "cloud_resources.conf",
                       f"[global]\ncondor_register_time_limit = {minutes}\n",
                       "cloud_scheduler.conf")
    assert f"register_timeout_s = {seconds}\n" in imported.toml


def test_a_file_that_is_not_v1_ini_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"cloud_resources\.conf: not a v1 config file"):
        convert("just words", "cloud_resources.conf")
    with pytest.raises(ConfigError, match="vm_slots: expected a number"):
        convert("[c]\ncloud_type = localhost\nvm_slots = many\n", "cloud_resources.conf")
