"""The site config: the demo file loads; every mistake names the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

import siteconfig
from bus.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
site = "t"
[[cloud]]
name = "c1"
provider = "libvirt"
uri = "test:///default"
enabled = true
"""


def load_text(tmp_path: Path, text: str, env: dict[str, str] | None = None
              ) -> siteconfig.SiteConfig:
    """The site config of `text`, written to a file under `tmp_path`."""
    path = tmp_path / "cs.toml"
    path.write_text(text)
    return siteconfig.load(path, env or {})


def test_demo_config_loads() -> None:
    site = siteconfig.load(ROOT / "examples" / "demo.toml", {})
    assert site.site == "demo"
    assert [(c.name, c.provider, c.enabled) for c in site.clouds] == [
        ("container-cloud", "libvirt", True), ("cc-west", "openstack", False)]
    assert site.section("poller").path_value("queue_file", "") == (
        ROOT / "examples" / "demo-queue.txt")


def test_env_overrides_nats_url(tmp_path: Path) -> None:
    assert load_text(tmp_path, GOOD).nats_url == siteconfig.DEFAULT_NATS_URL
    site = load_text(tmp_path, GOOD, {"CS_NATS_URL": "nats://10.0.0.1:4333"})
    assert site.nats_url == "nats://10.0.0.1:4333"
    site = load_text(tmp_path, GOOD + '[worker]\ncentral_manager = "a"\n',
                 {"CS_CENTRAL_MANAGER": "cm.example.org:9618"})
    assert site.section("worker").string("central_manager", "") == "cm.example.org:9618"
    assert site.launcher_problem == ""
    said = load_text(tmp_path, GOOD, {"CS_LAUNCHER_PROBLEM": "CENTRAL_MANAGER is not set\n"})
    assert said.launcher_problem == "CENTRAL_MANAGER is not set"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("site = ", "not valid TOML"),
        ("[[cloud]]\nname='x'\nprovider='libvirt'\nuri='test:///default'", "'site'"),
        (GOOD + "sitee = 1\n", "unknown key"),
        (GOOD.replace('enabled = true', 'enabled = "yes"'),
         "[cloud c1] enabled: expected true or false"),
        (GOOD.replace('uri = "test:///default"', ''), "[cloud c1] uri: a libvirt cloud needs"),
        (GOOD.replace('provider = "libvirt"', 'provider = "ec2"'),
         "[cloud c1] provider: expected one of libvirt, openstack"),
        (GOOD.replace('name = "c1"', 'name = "c 1"'), "is not a valid name"),
        (GOOD + GOOD.replace('site = "t"', ''), "defined more than once"),
        (GOOD.replace("enabled = true", "max_vmz = 3"), "did you mean 'max_vms'?"),
        (GOOD.replace("enabled = true", "max_vms = -1"), "max_vms: must be at least 0"),
        (GOOD + 'os_cloud = "x"\n', "[cloud c1] os_cloud: not a setting of a libvirt cloud"),
        (GOOD + 'domain_type = "xen"\n', "domain_type: expected one of kvm, qemu, test"),
        (GOOD + 'user_data = "nope.yaml"\n', "[cloud c1] user_data: cannot read"),
        (GOOD + 'network = "default"\nuser_network = true\n',
         "[cloud c1] user_network: network and user_network = true both name the VM's NIC"),
        (GOOD + "[nats]\nreplicas = 7\n", "JetStream keeps at most 5"),
        (GOOD + "[nats]\nreplicas = 0\n", "[nats] replicas: must be at least 1"),
        (GOOD.replace('provider = "libvirt"\nuri = "test:///default"',
                      'provider = "slurm"\nwalltime_min = 5'),
         "[cloud c1] drain_min: must be at least 0 and less than walltime_min (5), got 10"),
        (GOOD.replace('provider = "libvirt"\nuri = "test:///default"',
                      'provider = "slurm"\nlogin_command = "ssh \'x"'),
         "[cloud c1] login_command: No closing quotation"),
        (GOOD.replace('provider = "libvirt"\nuri = "test:///default"',
                      'provider = "slurm"\nwalltime_min = 0'),
         "[cloud c1] walltime_min: must be at least 1, got 0"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert message in str(info.value)
    assert str(tmp_path / "cs.toml") in str(info.value)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found; pass --config"):
        siteconfig.load(tmp_path / "nope.toml", {})


def test_libvirt_settings_and_a_test_host_named_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "host.xml").write_text("<node/>")
    site = load_text(tmp_path, GOOD.replace("test:///default", "test:///host.xml") + (
        'base_image = "w.qcow2"\ndomain_type = "qemu"\nnetwork = "n1"\n'
        "reserved_memory_mb = 2048\ncpu_overcommit = 2.5\n"))
    [c] = site.clouds
    assert c.address == c.options["uri"] == f"test://{tmp_path.resolve()}/host.xml"
    assert c.default_image == "w.qcow2"
    o = c.options
    assert (o["base_image"], o["domain_type"], o["network"], o["storage_pool"],
            o["reserved_memory_mb"], o["cpu_overcommit"]) == (
        "w.qcow2", "qemu", "n1", "default", 2048, 2.5)
    test_host = load_text(tmp_path, GOOD).clouds[0]
    assert (test_host.options["storage_pool"], test_host.options["domain_type"]) == (
        "default-pool", "test")


def test_user_data_templates_are_read_and_checked(tmp_path: Path) -> None:
    (tmp_path / "ud.yaml").write_text("#cloud-config\n# ${CS_VM_ID} on ${CENTRAL_MANAGER} $$5\n")
    site = load_text(tmp_path, GOOD + 'user_data = "ud.yaml"\n')
    assert site.clouds[0].user_data.startswith("#cloud-config")
    assert site.clouds[0].user_data_file == str(tmp_path / "ud.yaml")
    (tmp_path / "ud.yaml").write_text("${CS_VM_ID} ${CS_PASSWORD}")
    with pytest.raises(ConfigError, match=r"unknown placeholder.*CS_PASSWORD"):
        load_text(tmp_path, GOOD + 'user_data = "ud.yaml"\n')
    (tmp_path / "ud.yaml").write_text("cost: $5")
    with pytest.raises(ConfigError, match=r"malformed placeholder.*\$\$"):
        load_text(tmp_path, GOOD + 'user_data = "ud.yaml"\n')


def test_nats_replicas(tmp_path: Path) -> None:
    assert load_text(tmp_path, GOOD).nats_replicas == 1
    assert load_text(tmp_path, GOOD + "[nats]\nreplicas = 3\n").nats_replicas == 3
