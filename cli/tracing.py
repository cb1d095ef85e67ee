"""What `cs trace` and `cs decode` print: one readable line per message, the JSON form, the
filter that drops unchanged snapshots, and a raw body decoded on its own (pure: no bus)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from bus import codec
from bus.connection import RawMessage
from bus.errors import DecodeError
from bus.schemas import Message

_VOLATILE = frozenset({"taken_at", "at", "reported_at", "seen_at"})
"""Fields that change on every publication of an unchanged snapshot or report."""


Decoded = Message | DecodeError
"""A message's body as its schema, or why it could not be read."""


def decoded(msg: RawMessage) -> Decoded:
    """The message's body as its schema, or why it could not be read."""
    try:
        return codec.decode_any(msg.data, msg.headers, msg.subject)
    except DecodeError as exc:
        return exc


def json_line(msg: RawMessage, value: Decoded | None = None) -> str:
    """`cs trace --json`: subject, headers and the decoded body as one JSON object; an
    undecodable body is shown as its error and size, not hidden."""
    body: Any
    value = decoded(msg) if value is None else value
    if isinstance(value, DecodeError):
        body = {"undecodable": value.detail, "bytes": len(msg.data)}
    else:
        body = value.model_dump(mode="json")
    return json.dumps({"subject": msg.subject, "headers": msg.headers, "body": body},
                      sort_keys=True)


def text_line(msg: RawMessage, at: float, value: Decoded | None = None) -> str:
    """`cs trace`: time, subject, type, trace id and the summary, on one line."""
    value = decoded(msg) if value is None else value
    if isinstance(value, DecodeError):
        summary = f"UNDECODABLE ({len(msg.data)} bytes): {value.detail}"
    else:
        summary = value.summary()
    stamp = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"
    kind = msg.headers.get(codec.HEADER_TYPE, "?")
    trace = msg.headers.get(codec.HEADER_TRACE, "-")
    return f"{stamp} {msg.subject:<28} {kind:<16} {trace:<16} {codec.header_text(summary)}"


def _essence(value: Message) -> Any:
    """The body without the fields that change when nothing else does."""
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in _VOLATILE}
        if isinstance(node, list | tuple):
            return [strip(v) for v in node]
        return node

    return strip(value.model_dump(mode="json"))


class Changes:
    """Keeps a message unless it repeats the last one on its subject (snapshots and the
    planner's report are republished every cycle; only their changes tell a story)."""

    def __init__(self) -> None:
        self._last: dict[str, Any] = {}

    def keep(self, msg: RawMessage, value: Decoded | None = None) -> bool:
        """Whether `msg` says something its subject's previous message did not (`value`: its
        body decoded already, so a followed message is decoded once)."""
        value = decoded(msg) if value is None else value
        if isinstance(value, DecodeError):
            return True
        essence = (msg.headers.get(codec.HEADER_TRACE, ""), _essence(value))
        if self._last.get(msg.subject) == essence:
            return False
        self._last[msg.subject] = essence
        return True


def _plain(node: Any) -> Any:
    """msgpack data as JSON can hold it: bytes as base64, tuples as lists."""
    if isinstance(node, bytes):
        return base64.b64encode(node).decode()
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    return node


def decode_raw(data: bytes, headers: dict[str, str]) -> Any:
    """`cs decode`: one raw body as JSON-ready data. With a Cs-Type header (or --type) it is
    validated as that schema; without, it is read as plain msgpack. A compressed body is
    recognised by its header or by its zlib signature (a msgpack map never starts so)."""
    headers = dict(headers)
    if codec.HEADER_ENCODING not in headers and data[:1] == b"\x78":
        headers[codec.HEADER_ENCODING] = "zlib"
    kind = headers.get(codec.HEADER_TYPE, "")
    if kind:
        cls = codec.schema_named(kind)
        headers.setdefault(codec.HEADER_SCHEMA, str(cls.SCHEMA))
        return codec.decode_any(data, headers).model_dump(mode="json")
    return _plain(codec.unpack_any(data, headers))
