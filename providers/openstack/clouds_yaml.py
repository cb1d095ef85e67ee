"""What is wrong with a clouds.yaml, said before openstacksdk hides it (it skips a file it
cannot read or parse and then says only that the cloud "was not found")."""

from __future__ import annotations

from pathlib import Path

import yaml


def clouds_yaml_problem(path: Path, entry: str) -> str:
    """What keeps `entry` of the clouds.yaml at `path` from being used, in one line ("" =
    nothing): a missing or unreadable file, bad YAML (with its line), no such entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{path} does not exist (mount or write the clouds.yaml with entry {entry!r})"
    except (OSError, UnicodeDecodeError) as exc:
        return f"{path} cannot be read: {exc}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        return f"{path} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"
    clouds = data.get("clouds") if isinstance(data, dict) else None
    if not isinstance(clouds, dict):
        return f"{path} has no 'clouds:' mapping"
    if entry not in clouds:
        known = ", ".join(sorted(map(str, clouds))) or "none"
        return f"{path} has no entry {entry!r} under 'clouds:' (it has: {known})"
    return ""
