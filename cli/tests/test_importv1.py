"""`cs config import-v1`: v1's files in, a config that loads and a clouds.yaml out, and every
key left behind reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import siteconfig
from bus.errors import ConfigError
from cli.importv1 import convert
from cli.main import app
from cli.offline import check_config

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
    assert os_cloud.options["security_groups"] == ("default", "condor")
    assert (os_cloud.options["key_name"], os_cloud.options["network"]) == ("mykey", "private-net")
    assert "CHANGE_ME" not in imported.toml  # credentials never in the site config
    auth = imported.clouds_yaml["clouds"]["my-openstack"]  # type: ignore[index]
    assert auth["auth"]["password"] == "CHANGE_ME" and auth["region_name"] == "RegionOne"
    assert auth["auth"]["project_name"] == "myproject"
    libvirt = clouds["container-cloud"].options
    assert libvirt["uri"] == "qemu:///system"
    assert libvirt["network"] == "default"  # v1's `networks = default`
    assert site.section("worker").string("central_manager", "") == "cm.example.org"
    assert site.section("planner").integer("register_timeout_s", 0) == 900
    poller = site.section("poller")
    assert (poller.integer("default_vm_memory_mb", 0), poller.integer("default_vm_cores", 0),
            poller.integer("default_vm_disk_gb", 0)) == (2048, 2, 0)
    check_config(site)  # every service takes it
    reported = "\n".join(imported.unmapped)
    for part in ("[my-openstack] storage: not imported", "[my-openstack] vm_keep_alive",
                 "[old-ec2]: cloud not imported: cloud_type 'amazonec2'",
                 "[global] info_server_port: not imported: cs "
                 "talks to the services over NATS", "[global] log_level",
                 "[container-cloud]: image 'centos7.qcow2' from v1's job defaults not "
                 "imported"):
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


SEED = Path(__file__).resolve().parents[2] / "tests" / "data" / "v1-single-container"


def test_the_seeds_own_v1_files_import_as_v1_read_them(tmp_path: Path) -> None:
    """The single container's real cloud_resources.conf and cloud_scheduler.conf (source in
    tests/data/v1-single-container/README.md); each expectation from v1's code (dev)."""
    imported = convert((SEED / "cloud_resources.conf").read_text(), "cloud_resources.conf",
                       (SEED / "cloud_scheduler.conf").read_text(), "cloud_scheduler.conf",
                       site="seed")
    path = tmp_path / "cs.toml"
    path.write_text(imported.toml)
    site = siteconfig.load(path, {})
    check_config(site)
    clouds = {c.name: c for c in site.clouds}
    assert set(clouds) == {"cc-west-a", "otter-container", "container-cloud"}
    west, otter, local = clouds["cc-west-a"], clouds["otter-container"], clouds["container-cloud"]
    assert (west.provider, otter.provider, local.provider) == ("openstack", "openstack",
                                                                "libvirt")
    # [job] default_VMInstanceTypeList = cc-west-a:c1-7.5gb-30,otter-container:t1 and
    # default_VMAMI = default:cernvm3-micro-3.0-6.hdd (job_management.py
    # _attr_list_to_dict: "default" for clouds not named): each OpenStack cloud's own.
    assert (west.options["flavor"], west.options["image"]) == ("c1-7.5gb-30",
                                                             "cernvm3-micro-3.0-6.hdd")
    assert (otter.options["flavor"], otter.options["image"]) == ("t1", "cernvm3-micro-3.0-6.hdd")
    assert otter.options["network"] == "44d37a0d-7ad3-4f14-8b01-2db56ba8b267"
    assert west.options["security_groups"] == ("HTCondorWorker",)
    assert (otter.options["key_name"], otter.max_vm_cores) == ("common_key-20171006", 8)
    # container-cloud: `networks = default`, the libvirt network its VMs' NIC is on.
    assert (local.options["network"], local.max_vms, local.max_memory_mb) == ("default", 10, 8000)
    # Keystone as v1 authenticated (openstackcluster.py 74-88): the version from the
    # auth_url's last part; v3's domains as given, "Default" when not.
    auth = imported.clouds_yaml["clouds"]
    assert isinstance(auth, dict)
    assert auth["cc-west-a"]["identity_api_version"] == 2
    assert "user_domain_name" not in auth["cc-west-a"]["auth"]
    assert auth["cc-west-a"]["auth"]["project_name"] == "HEP"
    assert auth["otter-container"]["identity_api_version"] == 3
    assert auth["otter-container"]["auth"]["project_domain_name"] == "default"
    assert auth["otter-container"]["region_name"] == "Victoria"
    assert "REDACTED" not in imported.toml
    assert site.section("poller").integer("default_vm_cores", 0) == 1
    reported = "\n".join(imported.unmapped)
    assert "[job] default_vminjectca: not imported" in reported
    assert "[container-cloud]: image 'cernvm3-micro-3.0-6.hdd' from v1's job defaults not " \
           "imported" in reported


def test_keystone_v3_without_domains_gets_v1s_default_and_the_ca_is_kept() -> None:
    imported = convert("[c1]\ncloud_type = OpenStackNative\nauth_url = https://k:5000/v3/\n"
                       "username = u\npassword = p\ntenant_name = t\ncacert = /etc/ca.pem\n",
                       "cloud_resources.conf")
    entry = imported.clouds_yaml["clouds"]["c1"]  # type: ignore[index]
    assert entry["identity_api_version"] == 3 and entry["cacert"] == "/etc/ca.pem"
    assert (entry["auth"]["user_domain_name"], entry["auth"]["project_domain_name"]) == (
        "Default", "Default")


def test_v1s_openstack_type_was_ec2s_api_and_is_not_imported_as_openstacks() -> None:
    """cloud_management.py (dev) 306-307: `OpenStack` is spoken to through EC2's API."""
    imported = convert("[ec2ish]\ncloud_type = OpenStack\nvm_slots = 3\n\n[local]\n"
                       "cloud_type = localhost\nvm_slots = 2\n", "cloud_resources.conf")
    assert 'name = "ec2ish"' not in imported.toml and 'name = "local"' in imported.toml
    assert "[ec2ish]: cloud not imported: cloud_type 'openstack' is v1's access through " \
           "EC2's API" in "\n".join(imported.unmapped)
    with pytest.raises(ConfigError, match=r"no cloud could be imported, so nothing was "
                                          r"written:\n.*\[only-ec2\]: cloud not imported"):
        convert("[only-ec2]\ncloud_type = AmazonEC2\n", "cloud_resources.conf")
