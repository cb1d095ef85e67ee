"""Text files an operator gives us (the site config, user-data templates, v1 configs, queue
dumps): read as UTF-8, and a file that is not says where, never a UnicodeDecodeError."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from bus.errors import ConfigError

CONVERT_HINT = "convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8 FILE)"


def not_utf8(origin: str, what: str, byte: int, line: int, column: int, offset: int
             ) -> ConfigError:
    """The error for a `byte` that is not UTF-8, at `line` and `column` (1-based, in
    bytes) and byte `offset` (0-based) of `origin`."""
    return ConfigError(
        f"{origin}: line {line}, column {column} (byte {offset}): 0x{byte:02x} is not "
        f"UTF-8; {what} must be UTF-8 text: {CONVERT_HINT}")


def decode(data: bytes, origin: str, what: str) -> str:
    """`data` as UTF-8 text; ConfigError saying where it is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start
        raise not_utf8(origin, what, data[at], data.count(b"\n", 0, at) + 1,
                       at - data.rfind(b"\n", 0, at), at) from None


class Utf8Lines:
    """The lines of a binary stream as text, one at a time, with where each is: a byte
    that is not UTF-8 is a ConfigError naming its line, column and byte offset."""

    def __init__(self, stream: BinaryIO, origin: str, what: str) -> None:
        self._stream, self._origin, self._what = stream, origin, what
        self.number = 0
        """The line last read (1-based)."""
        self.offset = 0
        """Bytes read so far."""

    def __iter__(self) -> Iterator[str]:
        for raw in self._stream:
            self.number += 1
            start, self.offset = self.offset, self.offset + len(raw)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise not_utf8(self._origin, self._what, raw[exc.start], self.number,
                               exc.start + 1, start + exc.start) from None
            yield text

    def reader(self) -> Callable[[int], str]:
        """A `read(size)` of the rest of the stream as text (for text with long lines,
        such as JSON), decoding across the chunks' ends."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        line, line_start = self.number + 1, self.offset

        def read(size: int) -> str:
            """Up to `size` bytes more as text; "" only at the end (a read that ends inside
            a character reads on)."""
            while True:
                text, more = chunk(size)
                if text or not more:
                    return text

        def chunk(size: int) -> tuple[str, bool]:
            nonlocal line, line_start
            raw = self._stream.read(size)
            held = decoder.getstate()[0]  # the start of a character cut by the last read
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                data, first = held + raw, self.offset - len(held)
                at = exc.start
                newline = data.rfind(b"\n", 0, at)
                start = first + newline + 1 if newline >= 0 else line_start
                raise not_utf8(self._origin, self._what, data[at],
                               line + data.count(b"\n", 0, at), first + at - start + 1,
                               first + at) from None
            newline = raw.rfind(b"\n")
            if newline >= 0:
                line += raw.count(b"\n")
                line_start = self.offset + newline + 1
            self.offset += len(raw)
            return text, bool(raw)

        return read


def read_text(path: Path, what: str, missing: str = "") -> str:
    """The UTF-8 text of the file at `path`, which holds `what` (for messages); ConfigError
    naming the file when it cannot be read (`missing` said when it does not exist) or is
    not UTF-8."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {missing or f'cannot read {what}: no such file'}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not {what}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None
    return decode(data, str(path), what)
