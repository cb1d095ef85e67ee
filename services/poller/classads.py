"""ClassAd text to job ads: `condor_q`/`condor_status` dumps (`-long` and `-json`) read as a
stream, one ad at a time, so a replayed queue of 10 million jobs is never whole in memory.

Most ads of a `-long` dump are read without classad2 (`_Literals`): when every attribute the
caller asked for is a plain literal (an integer, a string without escapes, true/false) or
`Requirements` (kept as text, parsed once per distinct text), the values are taken from the
lines themselves. Any other ad (an expression to evaluate, a real, an escape, a line of
unexpected shape) goes through `classad2.parseOne` whole, as every ad once did, so the result
is the same either way (`tests/test_fuzz.py` compares them). The attributes not asked for are
then only checked to be `Name = value` lines: at ~100 attributes a job in a real queue, parsing
them all was most of the poller's time.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import classad2

from bus.errors import ConfigError
from services.poller.demand import EVAL_ERROR, JobAd
from siteconfig.textfile import Utf8Lines

_EXPR = "Requirements"
_EXPR_ATTRS = frozenset({_EXPR})
_JSON_EXPR_PREFIX, _JSON_EXPR_SUFFIX = "/Expr(", ")/"
_CHUNK = 1 << 20
"""Characters read at a time from a `-json` dump."""
_MAX_INT_DIGITS = 18
"""Longer integers go to classad2 (its integers are 64-bit)."""


def ad_to_job(ad: classad2.ClassAd, only: Sequence[str] | None = None) -> JobAd:
    """Plain values for literal attributes; expression text for expressions.

    With `only`, just those attributes, keyed by the names given there (ClassAd names are
    case-insensitive, so a dump's `vmmem` arrives as `VMMem`).
    """
    # The ad's literals come out in one C++ call (its JSON form) and only expressions are
    # evaluated one by one: at 100,000 jobs, a lookup and an eval per projected attribute
    # cost four times the schedd's own query.
    wanted = None if only is None else {name.lower(): name for name in only}
    out: dict[str, object] = {}
    for key, value in json.loads(ad.printJson()).items():
        attr = key if wanted is None else wanted.get(key.lower())
        if attr is None:
            continue
        expression = _expression_text(value)
        if attr in _EXPR_ATTRS:
            # The JSON form carries the expression's text as ClassAds print it.
            out[attr] = expression if expression is not None else str(ad.lookup(key))
            continue
        if expression is not None:
            if key.lower() in _REQUESTS and not _constant(expression):
                # condor_submit's default for a job that did not ask (derived from the job's
                # own usage: 1 MB for a job that never ran) is no request: the site's
                # default applies, as in v1.
                continue
            try:
                value = ad.eval(key)
            except (ValueError, TypeError, RuntimeError):
                value = classad2.Value.Error
        # classad2's Value is an int: UNDEFINED would pass for 2 and ERROR for 1.
        if value is None or value is classad2.Value.Undefined:
            continue  # as if the job did not have it
        if value is classad2.Value.Error:
            out[attr] = EVAL_ERROR
        elif isinstance(value, bool | int | float | str):
            out[attr] = value
        else:
            out[attr] = str(ad.lookup(key))
    return out


def _expression_text(value: object) -> str | None:
    """The text of an expression in a ClassAd's JSON form (`/Expr(...)/`), None for a
    literal."""
    if (isinstance(value, str) and value.startswith(_JSON_EXPR_PREFIX)
            and value.endswith(_JSON_EXPR_SUFFIX)):
        return value[len(_JSON_EXPR_PREFIX):-len(_JSON_EXPR_SUFFIX)]
    return None


_REQUESTS = frozenset({"requestcpus", "requestmemory", "requestdisk"})


@functools.lru_cache(maxsize=1024)
def _constant(text: str) -> bool:
    """Whether an expression has its value without the ad (`1024 * 2`, or `error`), not
    one taken from other attributes (`ifthenelse(MemoryUsage =!= undefined, ...)`, which
    is UNDEFINED on its own)."""
    try:
        value = classad2.ExprTree(text).eval()
    except (classad2.ClassAdException, ValueError, TypeError, RuntimeError):
        return True  # evaluated in the ad, where it is ERROR
    return value is not classad2.Value.Undefined


def _json_ad(row: dict[str, object], origin: str, index: int) -> classad2.ClassAd:
    """A ClassAd from one condor_q -json object, expressions (`/Expr(...)/`) included, so
    they evaluate exactly as in a -long dump."""
    ad = classad2.ClassAd()
    for key, value in row.items():
        text = _expression_text(value)
        if text is not None:
            try:
                ad[key] = classad2.ExprTree(text)
            except (classad2.ClassAdException, ValueError):
                raise ConfigError(f"{origin}: ad #{index + 1}: {key}: not a ClassAd "
                                  f"expression: {text!r}") from None
        elif isinstance(value, bool | int | float | str) or value is None:
            ad[key] = value
        else:
            ad[key] = json.dumps(value)  # lists and nested ads: kept as text, never used
    return ad


_NOT_LITERAL = object()


def _literal(text: str) -> object:
    """The value of a plain ClassAd literal, or _NOT_LITERAL for anything classad2 must
    read (octal `007`, reals, strings with escapes or outside printable ASCII: their forms
    are classad2's to decide)."""
    first = text[:1]
    if first == '"':
        if len(text) >= 2 and text.endswith('"') and text.count('"') == 2 \
                and "\\" not in text and text.isascii() and text.isprintable():
            return text[1:-1]
        return _NOT_LITERAL
    digits = text[1:] if first == "-" else text
    if digits.isdigit() and digits.isascii() and len(digits) <= _MAX_INT_DIGITS \
            and (digits == "0" or digits[0] != "0"):
        return int(text)
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return _NOT_LITERAL


class _Literals:
    """Job ads straight from `-long` lines where classad2 would find the same (module
    docstring); None where it must read the ad."""

    def __init__(self, only: Sequence[str] | None) -> None:
        self._wanted = None if only is None else {name.lower(): name for name in only}
        self._expressions: dict[str, str | None] = {}  # text -> as classad2 prints it

    def _expression(self, text: str) -> str | None:
        if text not in self._expressions:
            if len(self._expressions) >= 10_000:
                self._expressions.clear()  # a queue of all-different texts: no memory
            # Read as the whole ad would be: old ClassAd syntax, where a backslash is a
            # backslash (`"\n"` is two characters; classad2.ExprTree reads new syntax,
            # where it is a newline), through the same ad_to_job.
            try:
                ad = classad2.parseOne(f"{_EXPR} = {text}", classad2.ParserType.Old)
            except (classad2.ClassAdException, ValueError):
                ad = None
            value = None if ad is None or len(ad) != 1 else ad_to_job(ad, [_EXPR])[_EXPR]
            self._expressions[text] = value if isinstance(value, str) else None
        return self._expressions[text]

    def ad(self, lines: Sequence[str]) -> JobAd | None:
        """The job ad of one `-long` block, or None."""
        out: dict[str, object] = {}
        names: dict[str, str] = {}  # lower -> as written, when nothing was asked for
        for line in lines:
            name, equals, text = line.partition("=")
            name = name.strip()
            if not equals or not name.isidentifier() or not name.isascii():
                return None  # classad2 says what is wrong with it
            lowered = name.lower()
            if self._wanted is None:
                if names.setdefault(lowered, name) != name:
                    return None  # one name in two cases: whichever classad2 keeps
                attr = name
            elif (asked := self._wanted.get(lowered)) is not None:
                attr = asked
            else:
                continue
            text = text.strip()
            if attr in _EXPR_ATTRS:
                expression = self._expression(text)
                if expression is None:
                    return None
                out[attr] = expression
                continue
            value = _literal(text)
            if value is _NOT_LITERAL:
                return None
            out[attr] = value
        return out


def _parse_block(block: Sequence[tuple[int, str]], origin: str) -> classad2.ClassAd:
    """One `-long` block through classad2. It silently stops at the first bad line, which
    would drop attributes unseen, so every line is checked to have made it into the ad."""
    try:
        ad = classad2.parseOne("\n".join(_spaced(text) for _, text in block),
                               classad2.ParserType.Old)
    except (classad2.ClassAdException, ValueError) as exc:
        raise ConfigError(f"{origin}: line {block[0][0]}: {_NOT_LONG}: {exc}") from None
    if len(ad) != len(block):  # fast path: every line became an attribute
        # A name missing from the ad is a dropped line; with a name written twice, the
        # line dropped can be the second one, so each line is then read on its own.
        parsed = {name.lower() for name in ad}
        names = [raw.partition("=")[0].strip().lower() for _, raw in block]
        twice = len(set(names)) != len(names)
        for (at, raw), name in zip(block, names, strict=True):
            if name not in parsed or (twice and not _one_attribute(raw)):
                raise ConfigError(f"{origin}: line {at}: {_NOT_LONG}: {_shown(raw)}")
    return ad


_NOT_LONG = ("not valid condor_q -long output (`Name = value` lines, ads separated by "
             "blank lines; -json and -jsonl are read too)")


def _shown(line: str, most: int = 80) -> str:
    """A line quoted for a message, cut to `most` characters (a dump's line can be 8 KB)."""
    text = line.strip()
    return repr(text) if len(text) <= most else repr(text[:most]) + f" ... ({len(text)} chars)"


def _spaced(line: str) -> str:
    """`Name = value` as classad2 reads it: it keeps a tab (or other whitespace) before `=`
    in the attribute's name (`Name<TAB>=<TAB>value`, as some tools write dumps)."""
    name, equals, value = line.partition("=")
    return f"{name.strip()} = {value.strip()}" if equals else line


def _one_attribute(line: str) -> bool:
    """Whether one `-long` line is an attribute classad2 reads."""
    try:
        return len(classad2.parseOne(_spaced(line), classad2.ParserType.Old)) == 1
    except (classad2.ClassAdException, ValueError):
        return False


def _long_ads(lines: Iterable[str], origin: str, only: Sequence[str] | None
              ) -> Iterator[JobAd]:
    """The job ads of `-long` text (ads separated by blank lines), one at a time. Comments
    and the banners HTCondor's tools print between ads are skipped: `-- Schedd: ...`
    (`condor_q -long`, `-- Submitter: ...` before 8.x) and `** Proc 1.0:` (`condor_submit
    -verbose`), the latter ending an ad as a blank line does."""
    literals = _Literals(only)
    block: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "-- ", "** Proc ")):
            block.append((number, line.rstrip("\r\n")))
            continue
        if (stripped and not stripped.startswith("** Proc ")) or not block:
            continue
        yield _block_ad(block, literals, origin, only)
        block = []
    if block:
        yield _block_ad(block, literals, origin, only)


def _block_ad(block: list[tuple[int, str]], literals: _Literals, origin: str,
              only: Sequence[str] | None) -> JobAd:
    ad = literals.ad([text for _, text in block])
    return ad if ad is not None else ad_to_job(_parse_block(block, origin), only)


def _json_rows(read: Callable[[int], str], origin: str) -> Iterator[dict[str, object]]:
    """The objects of a `-json` dump (one JSON list of objects) or of a `-jsonl` one (an
    object a line; a single object alike), one at a time, read a chunk at a time."""
    decoder = json.JSONDecoder()
    buffer, at, dropped, ended = "", 0, 0, False  # dropped: characters before buffer
    # "[" at first; in a list: "first" (an object or "]"), "value" (an object), "next"
    # ("," or "]"); objects one after another (-jsonl): "object".
    expect = "["

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{origin}: not valid condor_q -json (a list of objects) or "
                           f"-jsonl (an object a line) output: {why}")

    while True:
        while at < len(buffer) and buffer[at] in " \t\r\n":
            at += 1
        if at >= len(buffer):
            if ended:
                if expect == "object":
                    return
                raise bad("the list is not closed")
            dropped += len(buffer)
            buffer, at = read(_CHUNK), 0
            ended = not buffer
            continue
        char = buffer[at]
        if expect == "[":
            if char == "{":
                expect = "object"
                continue
            if char != "[":
                raise bad("expected a list of objects")
            expect, at = "first", at + 1
            continue
        if expect == "object" and char != "{":
            raise bad(f"expected an object at character {dropped + at}")
        if char == "]" and expect in ("first", "next"):
            rest = buffer[at + 1:]
            while rest:
                if rest.strip():
                    raise bad(f"text after the list at character {dropped + at + 1}")
                rest = read(_CHUNK)
            return
        if expect == "next":
            if char != ",":
                raise bad(f"expected ',' or ']' at character {dropped + at}")
            expect, at = "value", at + 1
            continue
        try:
            row, end = decoder.raw_decode(buffer, at)
        except json.JSONDecodeError as exc:
            if ended:
                raise bad(f"{exc.msg} at character {dropped + exc.pos}") from None
            more = read(_CHUNK)  # a value cut by the chunk's end: read on
            ended = not more
            dropped += at
            buffer, at = buffer[at:] + more, 0
            continue
        if not isinstance(row, dict):
            raise bad("expected a list of objects")
        yield row
        at, expect = end, ("object" if expect == "object" else "next")


def _json_ads(read: Callable[[int], str], origin: str, only: Sequence[str] | None
              ) -> Iterator[JobAd]:
    for index, row in enumerate(_json_rows(read, origin)):
        yield ad_to_job(_json_ad(row, origin, index), only)


def parse_dump(text: str, origin: str, only: Sequence[str] | None = None) -> list[JobAd]:
    """Ads from `condor_q`/`condor_status` `-long` (old ClassAd syntax) or `-json` text;
    `only` keeps just the attributes that matter (see `ad_to_job`)."""
    if text.lstrip().startswith(("[", "{")):
        return list(_json_ads(io.StringIO(text).read, origin, only))
    return list(_long_ads(text.splitlines(), origin, only))


def iter_dump(path: Path, only: Sequence[str] | None = None) -> Iterator[JobAd]:
    """The ads of a dump file, read as they are used (a 10-million-job queue is never whole
    in memory); ConfigError names the file, and the line for `-long` text, when it cannot
    be read or is not a dump."""
    try:
        with path.open("rb") as stream:
            lines = Utf8Lines(stream, str(path), "a queue dump")
            head = ""
            for line in lines:  # the first line with anything on it tells the format
                head += line
                if line.strip():
                    break
            if head.lstrip().startswith(("[", "{")):
                unread, rest = [head], lines.reader()

                def read(size: int) -> str:
                    return unread.pop() if unread else rest(size)

                yield from _json_ads(read, str(path), only)
            else:
                yield from _long_ads(itertools.chain(head.splitlines(keepends=True), lines),
                                     str(path), only)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read queue dump: {exc.strerror}") from None


def read_dump(path: Path, only: Sequence[str] | None = None) -> list[JobAd]:
    """Ads from a dump file, all of them (a pool's slots, `cs plan`'s queue)."""
    return list(iter_dump(path, only))
