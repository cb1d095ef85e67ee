"""What `cs trace` and `cs decode` print: readable lines and summaries for every schema, the
JSON form, the filter of unchanged snapshots, and raw bodies decoded with and without a type."""

from __future__ import annotations

import base64
import json
import zlib

import pytest
from typer.testing import CliRunner

from bus import codec
from bus.connection import RawMessage
from bus.errors import DecodeError
from bus.schemas import DemandClass, DemandSnapshot, Intent, VmEvent
from bus.tests.examples import DEMAND, EVENT, EXAMPLES, INTENT, LETTER, REPORT
from cli import tracing
from cli.main import app

# msgpack written out by hand (only bus/ imports msgpack): {"b": b"\x00\xff"} and
# {"intent_id": "x"}.
MAP_OF_BYTES = b"\x81\xa1b\xc4\x02\x00\xff"
ONLY_AN_ID = b"\x81\xa9intent_id\xa1x"


def raw(msg: object, subject: str = "cs.x", trace: str = "t") -> RawMessage:
    data, headers = codec.encode(msg, trace=trace)  # type: ignore[arg-type]
    return RawMessage(subject, headers, data)


def test_json_line_decodes_every_schema() -> None:
    for msg in EXAMPLES:
        line = json.loads(tracing.json_line(raw(msg)))
        assert line["headers"]["Cs-Type"] == type(msg).__name__
        assert line["headers"]["Cs-Summary"] == codec.header_text(msg.summary())
        assert line["body"] == json.loads(json.dumps(msg.model_dump(mode="json")))


def test_json_line_shows_binary_dead_letters_as_base64() -> None:
    line = json.loads(tracing.json_line(raw(LETTER, "cs.deadletter")))
    assert base64.b64decode(line["body"]["data"]) == LETTER.data


def test_undecodable_messages_are_shown_not_hidden() -> None:
    bad = RawMessage("cs.demand", {}, b"\x01\x02")
    assert json.loads(tracing.json_line(bad))["body"] == {
        "undecodable": "missing Cs-Type header", "bytes": 2}
    assert "UNDECODABLE (2 bytes): missing Cs-Type header" in tracing.text_line(bad, 0.0)


def test_summaries_say_what_happened_in_a_few_words() -> None:
    assert INTENT.summary() == f"boot {INTENT.vm_id} on c1 as worker"
    assert EVENT.summary() == f"{EVENT.vm_id} on c1 running"
    assert DEMAND.summary() == "demand 1 classes, 5 idle, 2 running, 1 rejected"
    assert REPORT.summary() == "plan by p1: boot 2"
    kill = Intent(intent_id="k", action="kill", cloud="c1", vm_id="v", created_at=0.0,
                  reason="idle past keep-alive")
    assert kill.summary() == "kill v on c1: idle past keep-alive"
    stale = DemandSnapshot(source="s", taken_at=0.0, stale=True, stale_reason="schedd down",
                           classes=(DemandClass(key="k", vm_type="t", idle=8, running=2),))
    assert stale.summary() == "demand 1 classes, 8 idle, 2 running, STALE: schedd down"


def test_a_summary_header_is_one_printable_line_of_bounded_length() -> None:
    event = VmEvent(vm_id="v", cloud="c", state="error", at=0.0,
                    reason="nova said:\r\n  No valid host\u2014try later\x00" + "x" * 500)
    value = codec.encode(event)[1][codec.HEADER_SUMMARY]
    assert value.startswith("v on c error: nova said: No valid host?try later")
    assert len(value) == codec.SUMMARY_CHARS and value.endswith("...")
    assert all(" " <= c <= "~" for c in value)


def test_text_line_has_time_subject_type_trace_and_summary() -> None:
    line = tracing.text_line(raw(INTENT, "cs.intent.c1", trace="abc123"), 3723.25)
    assert line.split()[1:5] == ["cs.intent.c1", "Intent", "abc123", "boot"]
    assert line.endswith(f"boot {INTENT.vm_id} on c1 as worker")
    assert line.count("\n") == 0


def test_changes_drops_repeats_that_differ_only_in_their_time() -> None:
    keep = tracing.Changes().keep
    later = DEMAND.model_copy(update={"taken_at": DEMAND.taken_at + 2})
    assert keep(raw(DEMAND, "cs.demand"))
    assert not keep(raw(later, "cs.demand"))
    assert keep(raw(REPORT, "cs.plan"))  # another subject, its own last value
    more = DEMAND.model_copy(update={"classes": (DEMAND.classes[0].model_copy(
        update={"idle": 9}),)})
    assert keep(raw(more, "cs.demand"))
    assert keep(raw(more, "cs.demand", trace="another"))  # a new trace is news
    assert keep(raw(EVENT, "cs.vm.c1.v")) and not keep(raw(EVENT, "cs.vm.c1.v"))


@pytest.mark.parametrize("msg", [INTENT, DEMAND, LETTER])
def test_decode_raw_with_a_type_validates_as_that_schema(msg: object) -> None:
    data, _ = codec.encode(msg)  # type: ignore[arg-type]
    doc = tracing.decode_raw(data, {codec.HEADER_TYPE: type(msg).__name__})
    assert doc == json.loads(json.dumps(msg.model_dump(mode="json")))  # type: ignore[attr-defined]


def test_decode_raw_without_a_type_is_plain_msgpack_and_finds_compression() -> None:
    big = DEMAND.model_copy(update={"classes": tuple(
        DEMAND.classes[0].model_copy(update={"key": f"k{i}"}) for i in range(600))})
    data, headers = codec.encode(big)
    assert headers[codec.HEADER_ENCODING] == "zlib"
    doc = tracing.decode_raw(data, {})
    assert len(doc["classes"]) == 600 and doc["classes"][599]["key"] == "k599"
    assert tracing.decode_raw(MAP_OF_BYTES, {}) == {"b": "AP8="}


def test_decode_raw_says_what_is_wrong() -> None:
    with pytest.raises(DecodeError, match=r"unknown message type 'Nope'; known types: .*Intent"):
        tracing.decode_raw(b"\x80", {codec.HEADER_TYPE: "Nope"})
    with pytest.raises(DecodeError, match=r"Intent: action: Field required.*; cloud: Field"):
        tracing.decode_raw(ONLY_AN_ID, {codec.HEADER_TYPE: "Intent"})
    with pytest.raises(DecodeError, match="not valid zlib data"):
        tracing.decode_raw(b"\x78garbage", {})


def test_cs_decode_reads_stdin_with_type_header_or_neither() -> None:
    data, _ = codec.encode(INTENT)
    runner = CliRunner()
    typed = runner.invoke(app, ["decode", "--type", "Intent"], input=data)
    assert typed.exit_code == 0, typed.output
    assert json.loads(typed.stdout)["vm_id"] == INTENT.vm_id
    by_header = runner.invoke(app, ["decode", "-H", "Cs-Type: Intent"], input=data)
    assert json.loads(by_header.stdout) == json.loads(typed.stdout)
    plain = runner.invoke(app, ["decode"], input=zlib.compress(data))
    assert json.loads(plain.stdout)["cloud"] == "c1"
    wrong = runner.invoke(app, ["decode", "--type", "VmEvent"], input=data)
    assert wrong.exit_code == 1
    assert "cannot decode the" in wrong.output and "VmEvent: state: Field required" in \
        wrong.output.replace("\n", " ")
    empty = runner.invoke(app, ["decode"], input=b"")
    assert empty.exit_code == 1 and "nothing on stdin" in empty.output
    assert runner.invoke(app, ["decode", "-H", "Cs-Type"], input=data).exit_code == 1
