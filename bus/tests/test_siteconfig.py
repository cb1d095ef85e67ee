"""The site config: the demo file loads; every mistake names the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus import siteconfig
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


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> siteconfig.SiteConfig:
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
    assert _load(tmp_path, GOOD).nats_url == siteconfig.DEFAULT_NATS_URL
    site = _load(tmp_path, GOOD, {"CS_NATS_URL": "nats://10.0.0.1:4333"})
    assert site.nats_url == "nats://10.0.0.1:4333"


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
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert message in str(info.value)
    assert str(tmp_path / "cs.toml") in str(info.value)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found; pass --config"):
        siteconfig.load(tmp_path / "nope.toml", {})
