"""openstacksdk says only "Cloud X was not found" for a clouds.yaml it could not read or
parse: the driver says what is wrong with the file itself, in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.openstack.clouds_yaml import clouds_yaml_problem

GOOD = "clouds:\n  cc-west:\n    auth: {auth_url: 'http://127.0.0.1:5000/v3'}\n"


@pytest.mark.parametrize(("text", "said"), [
    (None, "does not exist (mount or write the clouds.yaml with entry 'cc-west')"),
    ("clouds:\n  cc-west: [\n", "is not valid YAML at line 3"),
    ("just text\n", "has no 'clouds:' mapping"),
    ("clouds:\n  other: {}\n  east: {}\n", "has no entry 'cc-west' under 'clouds:' (it has: east, "
                                           "other)"),
    (b"\xff\xfe", "cannot be read"),
    (GOOD, ""),
])
def test_what_is_wrong_with_the_file_is_said(tmp_path: Path, text: str | bytes | None,
                                             said: str) -> None:
    path = tmp_path / "clouds.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    problem = clouds_yaml_problem(path, "cc-west")
    assert said in problem if said else problem == ""
    assert "\n" not in problem


def test_a_folder_mounted_in_its_place_is_said(tmp_path: Path) -> None:
    """What `docker run -v ./clouds.yaml:...` makes when ./clouds.yaml does not exist."""
    (tmp_path / "clouds.yaml").mkdir()
    assert "cannot be read: [Errno 21] Is a directory" in clouds_yaml_problem(
        tmp_path / "clouds.yaml", "cc-west")
