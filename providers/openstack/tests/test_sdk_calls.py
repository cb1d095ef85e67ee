"""openstacksdk calls we must not make: its find_* with ignore_missing=True (the default)
is deprecated, and the default flips to False in SDK 6.0, which would turn "not found" into
an exception where our code expects None. openstacksdk's own Image.find makes that call
internally whatever we pass, so pytest silences the warning by its text; this test keeps
our calls from hiding behind that filter."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def find_calls_without_false(path: Path) -> list[str]:
    """`find_*(...)` calls in `path` that do not pass `ignore_missing=False`."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr.startswith("find_")):
            passed = {k.arg: k.value for k in node.keywords}
            value = passed.get("ignore_missing")
            if not (isinstance(value, ast.Constant) and value.value is False):
                bad.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return bad


def test_every_sdk_find_passes_ignore_missing_false() -> None:
    sources = [p for d in ("providers", "services", "provisioning", "tests", "bench")
               for p in sorted((ROOT / d).rglob("*.py"))]
    assert any(p.name == "driver.py" and "openstack" in str(p) for p in sources)
    bad = [line for p in sources for line in find_calls_without_false(p)]
    assert not bad, "\n".join(bad)


def test_the_check_finds_a_default_call(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("c.compute.find_server('x')\nc.image.find_image('y', ignore_missing=True)\n"
                     "c.image.find_image('z', ignore_missing=False)\n")
    assert [b.split(": ", 1)[1] for b in find_calls_without_false(probe)] == [
        "c.compute.find_server('x')", "c.image.find_image('y', ignore_missing=True)"]
