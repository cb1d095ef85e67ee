"""Typed access to one table of the site config, with errors that name the file, the table
and the key."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from bus.errors import ConfigError


class Section:
    """Typed access to one table of the config file, with errors that point at the key."""

    def __init__(self, path: Path, name: str, data: dict[str, Any]) -> None:
        self.path = path
        self.name = name
        self.data = data

    def where(self, key: str) -> str:
        """Where `key` of this table is, for error messages."""
        return f"{self.path}: [{self.name}] {key}"

    def check_keys(self, known: set[str] | frozenset[str]) -> None:
        """Reject keys this section does not define (typos must not be silently ignored)."""
        for key in self.data:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{self.where(key)}: unknown key{hint}")

    def string(self, key: str, default: str) -> str:
        """A string value."""
        value = self.data.get(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"{self.where(key)}: expected a string, got {value!r}")
        return value

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        """An integer value of at least `minimum`."""
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.where(key)}: expected an integer, got {value!r}")
        if value < minimum:
            raise ConfigError(f"{self.where(key)}: must be at least {minimum}, got {value}")
        return value

    def number(self, key: str, default: float, minimum: float = 0.0) -> float:
        """A number (int or float) of at least `minimum`."""
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self.where(key)}: expected a number, got {value!r}")
        if value < minimum:
            raise ConfigError(f"{self.where(key)}: must be at least {minimum}, got {value}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        """true or false."""
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where(key)}: expected true or false, got {value!r}")
        return value

    def path_value(self, key: str, default: str) -> Path | None:
        """A path, relative to the config file's folder; None when empty."""
        text = self.string(key, default)
        if not text:
            return None
        path = Path(text).expanduser()
        return path if path.is_absolute() else (self.path.parent / path).resolve()

    def choice(self, key: str, default: str, options: tuple[str, ...]) -> str:
        """One of `options`."""
        value = self.string(key, default)
        if value not in options:
            raise ConfigError(f"{self.where(key)}: expected one of {', '.join(options)}, "
                              f"got {value!r}")
        return value

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        """A list of strings."""
        value = self.data.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self.where(key)}: expected a list of strings, got {value!r}")
        return tuple(value)
