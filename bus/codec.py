"""msgpack codec with validation, and the Cs-* headers every message carries.

`encode` turns a schema instance into bytes plus headers; `decode` checks the headers against
the expected schema, unpacks and validates, and raises `DecodeError` naming the field that was
wrong. KV values are bodies without headers (`encode_body` / `decode_body`).
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Mapping
from typing import Any, TypeVar

import msgpack
from pydantic import ValidationError

from bus.errors import DecodeError
from bus.schemas import ALL_SCHEMAS, Message

HEADER_TYPE = "Cs-Type"
HEADER_SCHEMA = "Cs-Schema"
HEADER_TRACE = "Cs-Trace"
HEADER_ENCODING = "Cs-Encoding"
HEADER_SUMMARY = "Cs-Summary"
"""A few words for people (`boot cs-x-0 on cloud-a`): what `nats sub` shows; never parsed."""
SUMMARY_CHARS = 200
"""Longest summary header; the body has the whole story."""

MAX_MESSAGE_BYTES = 1024 * 1024
"""Largest body we accept (NATS' default max_payload); larger bodies are rejected unread."""
COMPRESS_ABOVE = 32 * 1024
"""Bodies larger than this travel zlib-compressed (snapshots of big pools compress ~17x:
20,000 startds are 2.7 MB of msgpack, 158 KB compressed)."""
MAX_DECODED_BYTES = 64 * 1024 * 1024
"""Largest body a compressed message may expand to; more is rejected, not allocated."""

M = TypeVar("M", bound=Message)

_BY_NAME: dict[str, type[Message]] = {cls.__name__: cls for cls in ALL_SCHEMAS}


def new_trace() -> str:
    """A fresh trace id, carried in Cs-Trace from a demand change to the VM it causes."""
    return uuid.uuid4().hex[:16]


def encode_body(msg: Message) -> bytes:
    """msgpack bytes of one schema instance (used directly for KV values)."""
    return msgpack.packb(msg.model_dump(mode="python"), use_bin_type=True)


def header_text(text: str) -> str:
    """`text` as a header value every NATS client reads alike: printable ASCII on one line
    (a reason may hold newlines or any character), at most SUMMARY_CHARS long."""
    flat = "".join(c if " " <= c <= "~" else ("?" if c > "~" else " ") for c in text)
    flat = " ".join(flat.split())
    return flat if len(flat) <= SUMMARY_CHARS else flat[:SUMMARY_CHARS - 3] + "..."


def encode(msg: Message, trace: str = "") -> tuple[bytes, dict[str, str]]:
    """Bytes and headers for publishing `msg` (compressed when large)."""
    headers = {HEADER_TYPE: type(msg).__name__, HEADER_SCHEMA: str(type(msg).SCHEMA),
               HEADER_SUMMARY: header_text(msg.summary())}
    if trace:
        headers[HEADER_TRACE] = trace
    body = encode_body(msg)
    if len(body) > COMPRESS_ABOVE:
        body = zlib.compress(body, 6)
        headers[HEADER_ENCODING] = "zlib"
    return body, headers


def _expand(data: bytes, headers: dict[str, str], subject: str) -> bytes:
    encoding = headers.get(HEADER_ENCODING, "")
    if not encoding:
        return data
    if encoding != "zlib":
        raise DecodeError(f"unknown {HEADER_ENCODING} {encoding!r}", subject)
    if len(data) > MAX_MESSAGE_BYTES:
        raise DecodeError(
            f"compressed body of {len(data)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit",
            subject)
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(data, MAX_DECODED_BYTES)
    except zlib.error as exc:
        raise DecodeError(f"not valid zlib data ({exc})", subject) from None
    if inflater.unconsumed_tail:
        raise DecodeError(
            f"compressed body expands past the {MAX_DECODED_BYTES}-byte limit", subject)
    return body


def _unpack(data: bytes, what: str, subject: str, limit: int = MAX_MESSAGE_BYTES) -> Any:
    if len(data) > limit:
        raise DecodeError(
            f"{what}: body of {len(data)} bytes exceeds the {limit}-byte limit",
            subject,
        )
    try:
        return msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError) as exc:
        raise DecodeError(f"{what}: not valid msgpack ({exc})", subject) from exc


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<body>"
        parts.append(f"{loc}: {err['msg']} (got {err.get('input')!r:.60})")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def decode_body(
    data: bytes, expected: type[M], subject: str = "", limit: int = MAX_MESSAGE_BYTES
) -> M:
    """Validate msgpack `data` as `expected`; DecodeError says which field was wrong."""
    what = expected.__name__
    obj = _unpack(data, what, subject, limit)
    if not isinstance(obj, dict):
        raise DecodeError(f"{what}: expected a map, got {type(obj).__name__}", subject)
    try:
        return expected.model_validate(obj)
    except ValidationError as exc:
        raise DecodeError(f"{what}: {_describe(exc)}", subject) from exc


def _check_headers(headers: dict[str, str] | None, subject: str) -> type[Message]:
    if not headers or HEADER_TYPE not in headers:
        raise DecodeError(f"missing {HEADER_TYPE} header", subject)
    name = headers[HEADER_TYPE]
    cls = _BY_NAME.get(name)
    if cls is None:
        raise DecodeError(f"unknown message type {name!r} in {HEADER_TYPE}", subject)
    raw_version = headers.get(HEADER_SCHEMA, "")
    try:
        version = int(raw_version)
    except ValueError:
        raise DecodeError(
            f"{HEADER_SCHEMA} header {raw_version!r} is not an integer", subject
        ) from None
    if version != cls.SCHEMA:
        raise DecodeError(
            f"{name} schema version {version} is not the version this service reads "
            f"({cls.SCHEMA}); upgrade the older side",
            subject,
        )
    return cls


def decode(
    data: bytes, headers: dict[str, str] | None, expected: type[M], subject: str = ""
) -> M:
    """Decode a published message that must be of type `expected`."""
    cls = _check_headers(headers, subject)
    if cls is not expected:
        raise DecodeError(
            f"expected a {expected.__name__} message, got {cls.__name__}", subject
        )
    return _decode_published(data, headers or {}, expected, subject)


def _decode_published(data: bytes, headers: dict[str, str], cls: type[M], subject: str) -> M:
    if headers.get(HEADER_ENCODING):
        return decode_body(_expand(data, headers, subject), cls, subject, MAX_DECODED_BYTES)
    return decode_body(data, cls, subject)


def decode_any(data: bytes, headers: dict[str, str] | None, subject: str = "") -> Message:
    """Decode a published message of whatever schema its Cs-Type header names."""
    cls = _check_headers(headers, subject)
    return _decode_published(data, headers or {}, cls, subject)


def schema_named(name: str) -> type[Message]:
    """The schema called `name` (a Cs-Type value); DecodeError lists the known ones."""
    cls = _BY_NAME.get(name)
    if cls is None:
        raise DecodeError(f"unknown message type {name!r}; known types: "
                          + ", ".join(sorted(_BY_NAME)))
    return cls


def unpack_any(data: bytes, headers: dict[str, str] | None, subject: str = "") -> Any:
    """A body as plain msgpack data, checked against no schema (for people reading it)."""
    expanded = _expand(data, headers or {}, subject)
    return _unpack(expanded, "body", subject,
                   MAX_DECODED_BYTES if expanded is not data else MAX_MESSAGE_BYTES)


def headers_of(raw: Mapping[Any, Any] | None) -> dict[str, str]:
    """A received message's headers as the decoders take them (nats-py's, or none)."""
    return {str(k): str(v) for k, v in (raw or {}).items()}


def trace_of(headers: dict[str, str] | None) -> str:
    """The trace id carried by a message, or a new one."""
    return (headers or {}).get(HEADER_TRACE) or new_trace()
