"""`cs config check`: every service's settings validated offline, one line either way."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli.main import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("example", ["demo.toml", "pool.toml"])
def test_the_example_configs_check_out(example: str) -> None:
    result = CliRunner().invoke(app, ["config", "check", "--config",
                                      str(ROOT / "examples" / example)])
    assert result.exit_code == 0, result.output
    assert "ok: site demo" in result.stdout
    assert "container-cloud (libvirt, enabled at first start)" in result.stdout


def _check_demo_with(tmp_path: Path, old: str, new: str) -> Result:
    """`cs config check` on a copy of the demo config with one edit."""
    text = (ROOT / "examples" / "demo.toml").read_text()
    assert old in text
    bad = tmp_path / "cs.toml"
    bad.write_text(text.replace(old, new).replace(
        'queue_file = "demo-queue.txt"', f'queue_file = "{ROOT / "examples" / "demo-queue.txt"}"'))
    return CliRunner().invoke(app, ["config", "check", "--config", str(bad)])


def test_a_bad_service_setting_is_one_line_naming_the_key(tmp_path: Path) -> None:
    result = _check_demo_with(tmp_path, "interval_s = 2 ",
                              'cloud_order = ["fastest"]\ninterval_s = 2 ')
    assert result.exit_code == 1
    assert "[planner] cloud_order: unknown policy 'fastest'" in result.output
    assert result.output.count("\n") == 1


def test_a_typo_in_the_worker_table_is_caught(tmp_path: Path) -> None:
    result = _check_demo_with(tmp_path, 'central_manager = "localhost"',
                              'central_manger = "cm"')
    assert result.exit_code == 1
    assert "[worker] central_manger: unknown key; did you mean 'central_manager'?" in \
        result.output
