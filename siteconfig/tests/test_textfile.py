"""Operator files read as UTF-8: the text, or one error saying where it is not UTF-8, the
same whether the file is read whole, line by line, or a few bytes at a time (a character
cut by a chunk's end included)."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bus.errors import ConfigError
from siteconfig.textfile import Utf8Lines, decode

data = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.tuples(st.text(max_size=40), st.binary(max_size=3), st.text(max_size=10)).map(
        lambda p: p[0].encode() + p[1] + p[2].encode()))


def _where(error: str) -> tuple[int, int, int]:
    found = re.search(r"line (\d+), column (\d+) \(byte (\d+)\)", error)
    assert found, error
    line, column, offset = found.groups()
    return int(line), int(column), int(offset)


def _whole(raw: bytes) -> str | tuple[int, int, int]:
    try:
        return decode(raw, "f", "a file")
    except ConfigError as exc:
        return _where(str(exc))


def _by_lines(raw: bytes) -> str | tuple[int, int, int]:
    try:
        return "".join(Utf8Lines(io.BytesIO(raw), "f", "a file"))
    except ConfigError as exc:
        return _where(str(exc))


def _by_chunks(raw: bytes, size: int, head_lines: int) -> str | tuple[int, int, int]:
    lines = Utf8Lines(io.BytesIO(raw), "f", "a file")
    out = []
    try:
        for line in lines:  # some lines first, as a dump's head is read
            out.append(line)
            if len(out) == head_lines:
                break
        read = lines.reader()
        while chunk := read(size):
            out.append(chunk)
        out.append(read(size))
    except ConfigError as exc:
        return _where(str(exc))
    return "".join(out)


@example(raw="é\n€ x".encode() + b"\xff", size=1, head_lines=1)
@example(raw=b"ab\ncd\xe9", size=2, head_lines=0)
@given(raw=data, size=st.sampled_from([1, 2, 3, 7, 64]), head_lines=st.integers(0, 3))
def test_read_whole_by_lines_or_in_chunks_alike(raw: bytes, size: int, head_lines: int) -> None:
    whole = _whole(raw)
    assert _by_lines(raw) == whole
    assert _by_chunks(raw, size, head_lines) == whole
    if isinstance(whole, str):
        assert whole == raw.decode()
    else:
        try:
            raw.decode()
        except UnicodeDecodeError as exc:
            assert whole[2] == exc.start
            assert whole[0] == raw.count(b"\n", 0, exc.start) + 1


def test_the_error_names_the_file_byte_and_fix() -> None:
    with pytest.raises(ConfigError, match=r"^cs\.toml: line 2, column 9 \(byte 14\): 0xe9 is "
                       r"not UTF-8; the site config must be UTF-8 text: convert it to UTF-8 "
                       r"\(e\.g\. iconv -f latin1 -t utf-8 FILE\)$"):
        decode(b'a = 1\nb = "caf\xe9"\n', "cs.toml", "the site config")
