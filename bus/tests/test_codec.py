"""The codec: every schema round-trips; malformed input is rejected with a clear error."""

from __future__ import annotations

import zlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus import codec
from bus.errors import DecodeError
from bus.schemas import ALL_SCHEMAS, DemandClass, DemandSnapshot, Intent, Message, VmRecord
from bus.tests.examples import CLASS, DEMAND, EXAMPLES, INTENT, VM

DEMAND_BIG = DEMAND.model_copy(update={"classes": tuple(
    CLASS.model_copy(update={"key": f"{n:010x}", "vm_type": f"type{n}"}) for n in range(2000))})


def test_every_schema_has_an_example() -> None:
    assert {type(e) for e in EXAMPLES} == set(ALL_SCHEMAS)


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: Message) -> None:
    data, headers = codec.encode(msg, trace="tr-1")
    assert headers == {"Cs-Type": type(msg).__name__, "Cs-Schema": str(type(msg).SCHEMA),
                       "Cs-Trace": "tr-1", "Cs-Summary": codec.header_text(msg.summary())}
    assert codec.decode(data, headers, type(msg)) == msg
    assert codec.decode_any(data, headers) == msg
    assert codec.decode_body(codec.encode_body(msg), type(msg)) == msg


@given(
    idle=st.integers(min_value=0, max_value=10**9),
    users=st.dictionaries(st.text(min_size=1, max_size=20), st.integers(0, 10**6), max_size=5),
    image=st.dictionaries(st.text(max_size=10), st.text(min_size=1, max_size=30), max_size=4),
)
def test_demand_class_round_trip_property(
    idle: int, users: dict[str, int], image: dict[str, str]
) -> None:
    msg = CLASS.model_copy(update={"idle": idle, "users": users, "image": image})
    data, headers = codec.encode(msg)
    assert codec.decode(data, headers, DemandClass) == msg


def _headers(name: str = "Intent", version: str = "1") -> dict[str, str]:
    return {"Cs-Type": name, "Cs-Schema": version}


def _packed(**changes: object) -> bytes:
    body = INTENT.model_dump(mode="python")
    body.update(changes)
    return msgpack.packb({k: v for k, v in body.items() if v is not ...})


@pytest.mark.parametrize(
    ("data", "headers", "expected_error"),
    [
        (b"\xc1garbage", _headers(), "not valid msgpack"),
        (msgpack.packb([1, 2, 3]), _headers(), "expected a map, got tuple"),
        (_packed(action="reboot"), _headers(), "action: Input should be 'boot' or 'kill'"),
        (_packed(created_at="yesterday"), _headers(), "created_at"),
        (_packed(vm_id=...), _headers(), "vm_id: Field required"),
        (_packed(cloud=7), _headers(), "cloud: Input should be a valid string"),
        (_packed(), {}, "missing Cs-Type header"),
        (_packed(), _headers("Nope"), "unknown message type 'Nope'"),
        (_packed(), _headers("VmEvent"), "expected a Intent message, got VmEvent"),
        (_packed(), _headers(version="2"), "schema version 2 is not the version"),
        (_packed(), _headers(version="x"), "is not an integer"),
        (b"\x00" * (codec.MAX_MESSAGE_BYTES + 1), _headers(), "exceeds the"),
    ],
)
def test_malformed_input_is_rejected_clearly(
    data: bytes, headers: dict[str, str], expected_error: str
) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(data, headers, Intent, subject="cs.intent.c1")
    assert expected_error in str(info.value)
    assert str(info.value).startswith("cs.intent.c1: ")


def test_strict_validation_does_not_coerce_strings_to_numbers() -> None:
    body = VM.model_dump(mode="python")
    body["spec"]["cores"] = "2"
    with pytest.raises(DecodeError, match=r"spec.cores"):
        codec.decode_body(msgpack.packb(body), VmRecord)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    body = INTENT.model_dump(mode="python")
    body["added_in_a_later_version"] = {"x": 1}
    assert codec.decode(msgpack.packb(body), _headers(), Intent) == INTENT


def test_trace_of_keeps_or_creates() -> None:
    assert codec.trace_of({"Cs-Trace": "abc"}) == "abc"
    fresh = codec.trace_of({})
    assert len(fresh) == 16 and fresh != codec.trace_of({})


def test_large_messages_travel_compressed() -> None:
    big = DEMAND_BIG
    data, headers = codec.encode(big)
    assert headers["Cs-Encoding"] == "zlib"
    assert len(data) < len(codec.encode_body(big)) / 5
    assert codec.decode(data, headers, DemandSnapshot) == big
    assert codec.decode_any(data, headers) == big
    _, small_headers = codec.encode(INTENT)
    assert "Cs-Encoding" not in small_headers


def test_compressed_messages_are_checked_too() -> None:
    headers = {"Cs-Type": "DemandSnapshot", "Cs-Schema": "1", "Cs-Encoding": "zlib"}
    with pytest.raises(DecodeError, match="not valid zlib data"):
        codec.decode(b"not zlib", headers, DemandSnapshot)
    with pytest.raises(DecodeError, match="unknown Cs-Encoding 'br'"):
        codec.decode(b"x", {**headers, "Cs-Encoding": "br"}, DemandSnapshot)
    bomb = zlib.compress(b"\x00" * (codec.MAX_DECODED_BYTES + 1024), 9)
    with pytest.raises(DecodeError, match="expands past the"):
        codec.decode(bomb, headers, DemandSnapshot)
