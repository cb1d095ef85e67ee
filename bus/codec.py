"""msgpack codec with validation, and the Cs-* headers every message carries.

`encode` turns a schema instance into bytes plus headers; `decode` checks the headers against
the expected schema, unpacks and validates, and raises `DecodeError` naming the field that was
wrong. KV values are bodies without headers (`encode_body` / `decode_body`).
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

import msgpack
from pydantic import ValidationError

from bus.errors import DecodeError
from bus.schemas import ALL_SCHEMAS, Message

HEADER_TYPE = "Cs-Type"
HEADER_SCHEMA = "Cs-Schema"
HEADER_TRACE = "Cs-Trace"

MAX_MESSAGE_BYTES = 1024 * 1024
"""Largest body we accept (NATS' default max_payload); larger bodies are rejected unread."""

M = TypeVar("M", bound=Message)

_BY_NAME: dict[str, type[Message]] = {cls.__name__: cls for cls in ALL_SCHEMAS}


def new_trace() -> str:
    """A fresh trace id, carried in Cs-Trace from a demand change to the VM it causes."""
    return uuid.uuid4().hex[:16]


def encode_body(msg: Message) -> bytes:
    """msgpack bytes of one schema instance (used directly for KV values)."""
    return msgpack.packb(msg.model_dump(mode="python"), use_bin_type=True)


def encode(msg: Message, trace: str = "") -> tuple[bytes, dict[str, str]]:
    """Bytes and headers for publishing `msg`."""
    headers = {HEADER_TYPE: type(msg).__name__, HEADER_SCHEMA: str(type(msg).SCHEMA)}
    if trace:
        headers[HEADER_TRACE] = trace
    return encode_body(msg), headers


def _unpack(data: bytes, what: str, subject: str) -> Any:
    if len(data) > MAX_MESSAGE_BYTES:
        raise DecodeError(
            f"{what}: body of {len(data)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit",
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


def decode_body(data: bytes, expected: type[M], subject: str = "") -> M:
    """Validate msgpack `data` as `expected`; DecodeError says which field was wrong."""
    what = expected.__name__
    obj = _unpack(data, what, subject)
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
    return decode_body(data, expected, subject)


def decode_any(data: bytes, headers: dict[str, str] | None, subject: str = "") -> Message:
    """Decode a published message of whatever schema its Cs-Type header names."""
    cls = _check_headers(headers, subject)
    return decode_body(data, cls, subject)


def trace_of(headers: dict[str, str] | None) -> str:
    """The trace id carried by a message, or a new one."""
    return (headers or {}).get(HEADER_TRACE) or new_trace()
