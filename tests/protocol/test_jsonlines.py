"""The JSON Lines codec: strict decoding, command mapping, framing limits, encoding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chinwag.protocol.events import (
    Away,
    Bye,
    Command,
    Dm,
    Dropped,
    Fatal,
    Hello,
    History,
    Incoming,
    Invisible,
    Join,
    Leave,
    ListenWallops,
    ListRooms,
    Monitor,
    Oper,
    Passwd,
    Ping,
    Pong,
    Register,
    Rejected,
    Say,
    Seen,
    SetBot,
    SetName,
    Stats,
    Typing,
    Wallops,
    Who,
    Whois,
    WhoWas,
)
from chinwag.protocol.jsonlines import (
    ClientCodec,
    ProtocolError,
    ServerCodec,
    decode_line,
    encode,
)


def wire(frame: dict[str, Any]) -> bytes:
    """A frame as a well-behaved client would send it (without the newline)."""
    return json.dumps(frame).encode()


def one(line: bytes | dict[str, Any], codec: ServerCodec | None = None) -> Incoming:
    """Decode exactly one line through a fresh codec and return its single event."""
    data = wire(line) if isinstance(line, dict) else line
    events = (codec or ServerCodec()).receive_data(data + b"\n")
    assert len(events) == 1, events
    return events[0]


def feed(codec: ServerCodec, chunks: list[bytes]) -> list[Incoming]:
    events: list[Incoming] = []
    for chunk in chunks:
        events += codec.receive_data(chunk)
    return events


def nested(depth: int) -> bytes:
    """A ping whose nesting depth (the frame object included) is ``depth``."""
    inner = depth - 1
    return b'{"type":"ping","x":' + b"[" * inner + b"]" * inner + b"}"


# --- every command --------------------------------------------------------------

DECODED: list[tuple[dict[str, Any], Command]] = [
    ({"type": "hello", "proto": 1, "nick": "alice"}, Hello(proto=1, nick="alice")),
    (
        {
            "type": "hello",
            "proto": 1,
            "nick": "alice",
            "password": "hunter22",
            "device": "d-5f2c_X9",
            "client": "name/1.0",
            "ref": "h1",
        },
        Hello(
            proto=1,
            nick="alice",
            password="hunter22",
            device="d-5f2c_X9",
            client="name/1.0",
            ref="h1",
        ),
    ),
    ({"type": "hello", "proto": 2, "nick": "a"}, Hello(proto=2, nick="a")),
    ({"type": "hello", "proto": -7, "nick": ""}, Hello(proto=-7, nick="")),
    (
        {"type": "hello", "proto": 1, "nick": "a", "device": "d" * 64},
        Hello(proto=1, nick="a", device="d" * 64),
    ),
    (
        {"type": "say", "room": "lobby", "body": "hello", "cid": "c-17", "ref": "r"},
        Say(room="lobby", body="hello", cid="c-17", ref="r"),
    ),
    ({"type": "say", "room": "lobby", "body": ""}, Say(room="lobby", body="")),
    (
        {"type": "say", "room": "a", "body": "x", "cid": "c" * 64},
        Say(room="a", body="x", cid="c" * 64),
    ),
    ({"type": "dm", "to": "bob", "body": "hi", "cid": "c-18"}, Dm(to="bob", body="hi", cid="c-18")),
    ({"type": "dm", "to": "bob", "body": "hi"}, Dm(to="bob", body="hi")),
    ({"type": "join", "room": "games", "ref": "j"}, Join(room="games", ref="j")),
    ({"type": "leave", "room": "games"}, Leave(room="games")),
    ({"type": "who", "room": "lobby"}, Who(room="lobby")),
    ({"type": "rooms"}, ListRooms()),
    ({"type": "history", "room": "lobby"}, History(room="lobby")),
    (
        {"type": "history", "room": "lobby", "before": 42, "limit": 50},
        History(room="lobby", before=42, limit=50),
    ),
    ({"type": "history", "with": "bob", "limit": 1}, History(with_="bob", limit=1)),
    ({"type": "history", "with": "bob", "before": 1}, History(with_="bob", before=1)),
    ({"type": "history", "room": "a", "limit": 10_000}, History(room="a", limit=10_000)),
    ({"type": "register", "password": "correct horse"}, Register(password="correct horse")),
    ({"type": "passwd", "old": "a", "new": "b", "ref": "p"}, Passwd(old="a", new="b", ref="p")),
    ({"type": "seen", "upto": 42}, Seen(upto=42)),
    ({"type": "seen", "upto": 0}, Seen(upto=0)),
    ({"type": "typing", "room": "lobby"}, Typing(room="lobby")),
    ({"type": "typing", "to": "bob"}, Typing(to="bob")),
    ({"type": "ping"}, Ping()),
    ({"type": "ping", "ref": "x"}, Ping(ref="x")),
    ({"type": "pong"}, Pong()),
    ({"type": "bye"}, Bye()),
    ({"type": "away", "message": "at lunch", "ref": "a"}, Away(message="at lunch", ref="a")),
    ({"type": "away"}, Away()),
    ({"type": "away", "message": None}, Away()),
    ({"type": "monitor", "ref": "m"}, Monitor(ref="m")),  # irccaps
    (
        {"type": "monitor", "add": ["ann"], "remove": ["bob"], "clear": True},
        Monitor(add=("ann",), remove=("bob",), clear=True),
    ),
    ({"type": "monitor", "add": None}, Monitor()),
    ({"type": "setname", "real_name": "Ann Example"}, SetName(real_name="Ann Example")),
    ({"type": "bot", "on": False}, SetBot(on=False)),
]


@pytest.mark.parametrize(("frame", "expected"), DECODED)
def test_each_command_is_decoded(frame: dict[str, Any], expected: Command) -> None:
    assert one(frame) == expected


def test_unknown_fields_are_ignored() -> None:
    frame = {"type": "say", "room": "a", "body": "b", "x": [1, {"y": None}], "from": "eve"}
    assert one(frame) == Say(room="a", body="b")
    assert one({"type": "rooms", "room": 5}) == ListRooms()
    assert one({"type": "bye", "extra": True}) == Bye()


def test_null_optional_fields_count_as_absent() -> None:
    assert one(
        {
            "type": "hello",
            "proto": 1,
            "nick": "a",
            "password": None,
            "device": None,
            "client": None,
            "ref": None,
        }
    ) == Hello(proto=1, nick="a")
    assert one({"type": "say", "room": "a", "body": "b", "cid": None}) == Say(room="a", body="b")
    assert one({"type": "history", "room": "a", "with": None, "before": None}) == History(room="a")


def test_non_ascii_text_survives_decoding() -> None:
    body = "héllo — 日本語 😀 \n\t\u2028"
    assert one({"type": "say", "room": "a", "body": body}) == Say(room="a", body=body)
    raw = '{"type":"say","room":"a","body":"' + "😀" + '"}'
    assert one(raw.encode()) == Say(room="a", body="😀")


def test_surrogate_pair_escapes_are_one_character() -> None:
    assert one(rb'{"type":"say","room":"a","body":"\ud83d\ude00"}') == Say(room="a", body="😀")
    assert one(rb'{"type":"say","room":"a","body":"\uD83D\uDE00"}') == Say(room="a", body="😀")


def test_an_escaped_backslash_before_u_d800_is_not_a_surrogate() -> None:
    assert one(rb'{"type":"say","room":"a","body":"\\ud800"}') == Say(room="a", body="\\ud800")


# --- bad_request ------------------------------------------------------------------

BAD_REQUESTS: list[tuple[dict[str, Any], str]] = [
    ({"type": "hello", "nick": "a"}, "proto"),
    ({"type": "hello", "proto": "1", "nick": "a"}, "proto"),
    ({"type": "hello", "proto": True, "nick": "a"}, "proto"),
    ({"type": "hello", "proto": 1.0, "nick": "a"}, "proto"),
    ({"type": "hello", "proto": None, "nick": "a"}, "proto"),
    ({"type": "hello", "proto": 1}, "nick"),
    ({"type": "hello", "proto": 1, "nick": 5}, "nick"),
    ({"type": "hello", "proto": 1, "nick": ["a"]}, "nick"),
    ({"type": "hello", "proto": 1, "nick": "a", "password": 12345678}, "password"),
    ({"type": "hello", "proto": 1, "nick": "a", "device": ""}, "device"),
    ({"type": "hello", "proto": 1, "nick": "a", "device": "a b"}, "device"),
    ({"type": "hello", "proto": 1, "nick": "a", "device": "d" * 65}, "device"),
    ({"type": "hello", "proto": 1, "nick": "a", "device": "dé"}, "device"),
    ({"type": "hello", "proto": 1, "nick": "a", "device": "d\n"}, "device"),
    ({"type": "hello", "proto": 1, "nick": "a", "device": 7}, "device"),
    ({"type": "hello", "proto": 1, "nick": "a", "client": 3}, "client"),
    ({"type": "say", "body": "b"}, "room"),
    ({"type": "say", "room": 1, "body": "b"}, "room"),
    ({"type": "say", "room": "a"}, "body"),
    ({"type": "say", "room": "a", "body": None}, "body"),
    ({"type": "say", "room": "a", "body": ["b"]}, "body"),
    ({"type": "say", "room": "a", "body": "b", "cid": 5}, "cid"),
    ({"type": "say", "room": "a", "body": "b", "cid": "c" * 65}, "cid"),
    ({"type": "dm", "body": "b"}, "to"),
    ({"type": "dm", "to": {"nick": "bob"}, "body": "b"}, "to"),
    ({"type": "dm", "to": "bob"}, "body"),
    ({"type": "dm", "to": "bob", "body": "b", "cid": "c" * 65}, "cid"),
    ({"type": "dm", "to": "bob", "body": "b", "cid": False}, "cid"),
    ({"type": "join"}, "room"),
    ({"type": "join", "room": 1}, "room"),
    ({"type": "leave"}, "room"),
    ({"type": "leave", "room": True}, "room"),
    ({"type": "who"}, "room"),
    ({"type": "who", "room": ["lobby"]}, "room"),
    ({"type": "history"}, "room"),
    ({"type": "history", "room": "a", "with": "b"}, "with"),
    ({"type": "history", "room": 1}, "room"),
    ({"type": "history", "with": 1}, "with"),
    ({"type": "history", "room": "a", "before": "1"}, "before"),
    ({"type": "history", "room": "a", "before": True}, "before"),
    ({"type": "history", "room": "a", "before": 1.5}, "before"),
    ({"type": "history", "room": "a", "before": 0}, "before"),
    ({"type": "history", "room": "a", "before": -1}, "before"),
    ({"type": "history", "room": "a", "limit": 0}, "limit"),
    ({"type": "history", "room": "a", "limit": -3}, "limit"),
    ({"type": "history", "room": "a", "limit": True}, "limit"),
    ({"type": "history", "room": "a", "limit": 2.0}, "limit"),
    ({"type": "history", "room": "a", "limit": "50"}, "limit"),
    ({"type": "register"}, "password"),
    ({"type": "register", "password": 12345678}, "password"),
    ({"type": "passwd", "new": "b"}, "old"),
    ({"type": "passwd", "old": "a"}, "new"),
    ({"type": "passwd", "old": "a", "new": 1}, "new"),
    ({"type": "whowas"}, "nick"),
    ({"type": "whowas", "nick": 7}, "nick"),
    ({"type": "whowas", "nick": "bob", "limit": 0}, "limit"),
    ({"type": "whois"}, "mask"),  # ircoper
    ({"type": "whois", "mask": 1}, "mask"),
    ({"type": "oper", "account": "boss"}, "password"),
    ({"type": "oper", "account": 1, "password": "p"}, "account"),
    ({"type": "wallops"}, "text"),
    ({"type": "wallops_listen", "on": "yes"}, "on"),
    ({"type": "invisible"}, "on"),
    ({"type": "monitor", "add": "ann"}, "add"),  # irccaps
    ({"type": "monitor", "remove": [1]}, "remove"),
    ({"type": "monitor", "clear": 1}, "clear"),
    ({"type": "setname"}, "real_name"),
    ({"type": "setname", "real_name": 5}, "real_name"),
    ({"type": "bot"}, "on"),
    ({"type": "bot", "on": "yes"}, "on"),
]


@pytest.mark.parametrize(("frame", "field"), BAD_REQUESTS)
def test_missing_or_ill_typed_field_is_bad_request_naming_it(
    frame: dict[str, Any], field: str
) -> None:
    event = one({**frame, "ref": "q-1"})
    assert isinstance(event, Rejected)
    assert event.code == "bad_request"
    assert f"'{field}'" in event.message
    assert event.ref == "q-1"


@pytest.mark.parametrize(
    "ref", [1, 0, True, [], {}, ["r"], 1.5, "r" * 65], ids=lambda r: type(r).__name__
)
@pytest.mark.parametrize("kind", ["ping", "say", "hello", "bye", "nonsense"])
def test_invalid_ref_is_bad_request_without_ref(ref: object, kind: str) -> None:
    event = one({"type": kind, "room": "a", "body": "b", "proto": 1, "nick": "n", "ref": ref})
    assert isinstance(event, Rejected)
    assert (event.code, event.ref) == ("bad_request", None)
    assert "'ref'" in event.message


def test_ref_of_64_characters_is_echoed() -> None:
    ref = "é" * 64  # characters, not bytes
    assert one({"type": "ping", "ref": ref}) == Ping(ref=ref)
    assert one({"type": "ping", "ref": ""}) == Ping(ref="")


def test_ref_is_echoed_on_rejections_of_that_frame() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "nope", "ref": "a"}, "unknown_type"),
        ({"type": "say", "ref": "a"}, "bad_request"),
        ({"type": 3, "ref": "a"}, "bad_frame"),
        ({"ref": "a"}, "bad_frame"),
    ]
    for frame, code in cases:
        event = one(frame)
        assert isinstance(event, Rejected)
        assert (event.code, event.ref) == (code, "a")


# --- unknown_type and silent drops ------------------------------------------------


@pytest.mark.parametrize("kind", ["nope", "", "SAY", "Hello", "message", "welcome", " say"])
def test_unknown_type(kind: str) -> None:
    event = one({"type": kind, "ref": "u"})
    assert isinstance(event, Rejected)
    assert (event.code, event.ref) == ("unknown_type", "u")


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "seen"},
        {"type": "seen", "upto": "42"},
        {"type": "seen", "upto": True},
        {"type": "seen", "upto": 4.2},
        {"type": "seen", "upto": None},
        {"type": "typing"},
        {"type": "typing", "room": "a", "to": "b"},
        {"type": "typing", "room": 1},
        {"type": "typing", "to": ["b"]},
        {"type": "pong", "ref": 5},
        {"type": "seen", "upto": 1, "ref": "r" * 65},
        {"type": "typing", "room": "a", "ref": False},
    ],
)
def test_malformed_silent_frames_are_dropped(frame: dict[str, Any]) -> None:
    assert isinstance(one(frame), Dropped)


# --- bad_frame: not strict JSON ---------------------------------------------------

BAD_FRAMES: list[bytes] = [
    b"not json",
    b"{",
    b'{"type":"ping"',
    b'{"type":"ping"} {"type":"ping"}',
    b'{"type":"ping",}',
    b"{'type':'ping'}",
    b'{"type":"ping","x":01}',
    b'{"type":"ping","x":"tab\there"}',
    # not UTF-8
    b"\xff",
    b'{"type":"say","room":"a","body":"\xff"}',
    b'{"type":"say","room":"a","body":"\xc0\xaf"}',  # overlong encoding
    b'{"type":"say","room":"a","body":"\xed\xa0\x80"}',  # encoded surrogate
    '{"type":"ping"}'.encode("utf-16"),
    # NaN and infinities
    b'{"type":"ping","x":NaN}',
    b'{"type":"ping","x":Infinity}',
    b'{"type":"ping","x":-Infinity}',
    b'{"type":"ping","x":[1,NaN]}',
    b'{"type":"ping","x":1e400}',
    # duplicate keys
    b'{"type":"ping","type":"ping"}',
    b'{"type":"say","room":"a","room":"b","body":"c"}',
    b'{"type":"ping","x":{"a":1,"a":1}}',
    b'{"type":"ping","x":[{"k":1,"k":2}]}',
    # lone surrogates, in values and keys, any case
    rb'{"type":"say","room":"a","body":"\ud800"}',
    rb'{"type":"say","room":"a","body":"\udfff"}',
    rb'{"type":"say","room":"a","body":"x\uDBFFy"}',
    rb'{"type":"say","room":"a","body":"\ude00\ud83d"}',
    rb'{"type":"ping","\ud800":1}',
    rb'{"type":"ping","\uDFFF":1}',
    rb'{"type":"ping","x":[[["\udc00"]]]}',
    rb'{"type":"ping","x":{"\ud800":"y"}}',
    rb'{"type":"\ud800"}',
    # integers outside +-2**53
    b'{"type":"ping","x":9007199254740993}',
    b'{"type":"ping","x":-9007199254740993}',
    b'{"type":"seen","upto":9007199254740993}',
    b'{"type":"ping","x":[' + b"9" * 5000 + b"]}",
    # nesting
    nested(33),
    b'{"type":"ping","x":' + b'{"a":' * 32 + b"1" + b"}" * 32 + b"}",
]


@pytest.mark.parametrize("line", BAD_FRAMES)
def test_not_strict_json_is_bad_frame(line: bytes) -> None:
    event = one(line)
    assert isinstance(event, Rejected)
    assert event.code == "bad_frame"


@pytest.mark.parametrize(
    "line",
    [b"[]", b'[{"type":"ping"}]', b'"ping"', b"42", b"-1.5", b"null", b"true", b"false"],
)
def test_json_that_is_not_an_object_is_bad_frame(line: bytes) -> None:
    event = one(line)
    assert isinstance(event, Rejected) and event.code == "bad_frame"
    assert "object" in event.message


@pytest.mark.parametrize(
    "frame", [{}, {"typ": "ping"}, {"type": 1}, {"type": None}, {"type": ["ping"]}]
)
def test_object_without_string_type_is_bad_frame(frame: dict[str, Any]) -> None:
    event = one(frame)
    assert isinstance(event, Rejected) and event.code == "bad_frame"


def test_integer_limits_are_inclusive_at_two_to_the_53() -> None:
    assert one(b'{"type":"seen","upto":9007199254740992}') == Seen(upto=2**53)
    assert one(b'{"type":"ping","x":-9007199254740992}') == Ping()
    for value in (2**53 + 1, -(2**53 + 1), 2**64):
        event = one(b'{"type":"ping","x":%d}' % value)
        assert isinstance(event, Rejected) and event.code == "bad_frame"


def test_ordinary_floats_are_accepted() -> None:
    assert one(b'{"type":"ping","x":1.5e300,"y":-0.0,"z":1e-400}') == Ping()


def test_depth_32_is_accepted_and_33_refused() -> None:
    assert one(nested(32)) == Ping()
    deep_objects = b'{"type":"ping","x":' + b'{"a":' * 30 + b"[]" + b"}" * 30 + b"}"
    assert one(deep_objects) == Ping()  # 1 + 30 + 1 = 32
    event = one(nested(33))
    assert isinstance(event, Rejected) and event.code == "bad_frame"
    assert "32" in event.message


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    body = '[{"[\\"' * 200
    assert one({"type": "say", "room": "a", "body": body}) == Say(room="a", body=body)
    assert one({"type": "say", "room": "a", "body": "]" * 500}) == Say(room="a", body="]" * 500)


@pytest.mark.parametrize("opener", [b"[", b'{"a":', b'[{"a":'])
def test_very_deep_nesting_is_rejected_not_raised(opener: bytes) -> None:
    codec = ServerCodec(max_line=2_000_000)
    line = b'{"type":"ping","x":' + opener * 100_000
    event = one(line, codec)
    assert isinstance(event, Rejected) and event.code == "bad_frame"
    assert codec.receive_data(b'{"type":"ping"}\n') == [Ping()]  # still usable


def test_deep_nesting_hidden_after_an_unterminated_string_is_still_safe() -> None:
    codec = ServerCodec(max_line=2_000_000)
    for line in [
        b'"' + b"[" * 100_000,
        b'{"type":"ping","x":"\\' + b"[" * 100_000,
        b'"\\"\\"' * 10_000 + b"[" * 100_000,
        b"[" * 100_000 + b'"',
    ]:
        event = one(line, codec)
        assert isinstance(event, Rejected) and event.code == "bad_frame"


def test_bad_frames_leave_the_codec_open() -> None:
    codec = ServerCodec()
    events = codec.receive_data(b"junk\n[]\n" + nested(40) + b'\n{"type":"ping"}\n')
    assert [type(e) for e in events] == [Rejected, Rejected, Rejected, Ping]
    assert not codec.closed


# --- framing through the codec ----------------------------------------------------


def test_crlf_and_lf_are_both_accepted() -> None:
    codec = ServerCodec()
    assert codec.receive_data(b'{"type":"ping"}\r\n{"type":"bye"}\n') == [Ping(), Bye()]


def test_empty_and_whitespace_only_lines_are_ignored() -> None:
    codec = ServerCodec()
    data = b'\n\r\n   \n\t \r\n{"type":"ping"}\n\n  {"type":"bye"}  \n'
    assert codec.receive_data(data) == [Ping(), Bye()]


def test_partial_frames_wait_for_their_newline() -> None:
    codec = ServerCodec()
    assert codec.receive_data(b'{"type":') == []
    assert codec.receive_data(b'"ping"}') == []
    assert codec.receive_data(b"\n") == [Ping()]


def test_unterminated_final_line_yields_nothing() -> None:
    assert ServerCodec().receive_data(b'{"type":"ping"}') == []


SAY_HEAD, SAY_TAIL = b'{"type":"say","room":"a","body":"', b'"}'


def sized_say(total: int, terminator: bytes = b"\n") -> bytes:
    """A say frame whose line, terminator included, is exactly ``total`` bytes."""
    pad = total - len(SAY_HEAD) - len(SAY_TAIL) - len(terminator)
    return SAY_HEAD + b"x" * pad + SAY_TAIL + terminator


@pytest.mark.parametrize("terminator", [b"\n", b"\r\n"])
def test_frame_of_exactly_65536_bytes_is_accepted(terminator: bytes) -> None:
    line = sized_say(65_536, terminator)
    assert len(line) == 65_536
    [event] = ServerCodec().receive_data(line)
    assert isinstance(event, Say) and len(event.body) == 65_536 - len(
        SAY_HEAD + SAY_TAIL + terminator
    )


@pytest.mark.parametrize("terminator", [b"\n", b"\r\n"])
def test_frame_of_65537_bytes_is_fatal(terminator: bytes) -> None:
    codec = ServerCodec()
    events = codec.receive_data(sized_say(65_537, terminator))
    assert len(events) == 1
    assert isinstance(events[0], Fatal) and events[0].code == "frame_too_large"
    assert codec.closed


@pytest.mark.parametrize("limit", [64, 1000])
def test_boundary_with_a_configured_limit(limit: int) -> None:
    assert isinstance(one(sized_say(limit), ServerCodec(max_line=limit)), Say)
    assert isinstance(one(sized_say(limit, b"\r\n"), ServerCodec(max_line=limit)), Say)
    codec = ServerCodec(max_line=limit)
    assert isinstance(codec.receive_data(sized_say(limit + 1))[0], Fatal)
    assert ServerCodec(max_line=limit).max_line == limit


def test_overlong_line_is_fatal_before_its_newline_arrives() -> None:
    codec = ServerCodec(max_line=100)
    assert codec.receive_data(b"x" * 99) == []  # a newline could still arrive in time
    [event] = codec.receive_data(b"x")
    assert isinstance(event, Fatal) and event.code == "frame_too_large"
    assert codec.closed


def test_default_limit_fires_without_a_newline() -> None:
    codec = ServerCodec()
    assert codec.receive_data(b"{" + b" " * 65_534) == []
    [event] = codec.receive_data(b" ")
    assert isinstance(event, Fatal)


def test_tail_of_an_overlong_line_is_never_parsed() -> None:
    codec = ServerCodec(max_line=100)
    tail = b'\n{"type":"ping"}\n{"type":"say","room":"a","body":"b"}\n'
    events = codec.receive_data(b'{"type":"say","room":"a","body":"' + b"x" * 200 + tail)
    assert [type(e) for e in events] == [Fatal]
    assert codec.receive_data(tail) == []
    assert codec.receive_data(b'{"type":"ping"}\n') == []


def test_tail_arriving_later_is_never_parsed() -> None:
    codec = ServerCodec(max_line=100)
    assert isinstance(codec.receive_data(b"y" * 150)[0], Fatal)
    assert codec.receive_data(b'\n{"type":"ping"}\n') == []
    assert codec.closed


def test_frames_before_the_overlong_line_are_still_decoded() -> None:
    codec = ServerCodec(max_line=100)
    events = codec.receive_data(b'{"type":"ping"}\njunk\n' + b"z" * 101)
    assert events[0] == Ping()
    assert isinstance(events[1], Rejected) and events[1].code == "bad_frame"
    assert isinstance(events[2], Fatal)
    assert len(events) == 3


# --- segmentation ----------------------------------------------------------------

WIRE = (
    b'{"type":"hello","proto":1,"nick":"ann","ref":"1"}\r\n'
    b"\n"
    b'{"type":"join","room":"games"}\n'
    b"not json\n"
    + '{"type":"say","room":"games","body":"h\\u00e9 😀 \\ud83d\\ude00","cid":"c1"}\n'.encode()
    + b'{"type":"seen","upto":true}\n'
    b'{"type":"history","with":"bob","limit":5}\r\n'
    b"   \n"
    b'{"type":"bye"}\n'
)
EXPECTED = [
    Hello(proto=1, nick="ann", ref="1"),
    Join(room="games"),
    decode_line(b"not json"),
    Say(room="games", body="hé 😀 😀", cid="c1"),
    decode_line(b'{"type":"seen","upto":true}'),
    History(with_="bob", limit=5),
    Bye(),
]


def test_segmentation_wire_holds_what_it_should() -> None:
    assert isinstance(EXPECTED[2], Rejected) and EXPECTED[2].code == "bad_frame"
    assert isinstance(EXPECTED[4], Dropped)


@pytest.mark.parametrize("split", ["whole", "bytewise", "lines"])
def test_decodes_regardless_of_segmentation(split: str) -> None:
    if split == "whole":
        chunks = [WIRE]
    elif split == "bytewise":
        chunks = [WIRE[i : i + 1] for i in range(len(WIRE))]
    else:
        chunks = WIRE.splitlines(keepends=True)
    assert feed(ServerCodec(), chunks) == EXPECTED


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    cuts = sorted(cuts)
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@given(st.lists(st.integers(0, len(WIRE)), max_size=30))
def test_random_segmentation_gives_the_same_events(cuts: list[int]) -> None:
    assert feed(ServerCodec(), split_at(WIRE, cuts)) == EXPECTED


OVERLONG_WIRE = b'{"type":"ping"}\nbad\n' + b"q" * 300 + b'\n{"type":"ping"}\n'


@given(st.lists(st.integers(0, len(OVERLONG_WIRE)), max_size=30))
def test_random_segmentation_around_an_overlong_line(cuts: list[int]) -> None:
    codec = ServerCodec(max_line=128)
    events = feed(codec, split_at(OVERLONG_WIRE, cuts))
    assert [type(e) for e in events] == [Ping, Rejected, Fatal]
    assert codec.closed


# --- never raises -------------------------------------------------------------------


@settings(max_examples=300)
@given(chunks=st.lists(st.binary(max_size=200), max_size=10), limit=st.integers(1, 300))
def test_arbitrary_bytes_never_raise(chunks: list[bytes], limit: int) -> None:
    codec = ServerCodec(max_line=limit)
    for chunk in chunks:
        events = codec.receive_data(chunk)
        assert all(isinstance(e, Command | Rejected | Dropped | Fatal) for e in events)
        if any(isinstance(e, Fatal) for e in events):
            assert codec.closed and isinstance(events[-1], Fatal)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_values: st.SearchStrategy[Any] = (
    json_scalars | st.lists(json_scalars, max_size=2) | st.just({})
)
FIELDS = ["proto", "nick", "password", "device", "client", "room", "body", "cid", "to",
          "with", "before", "limit", "old", "new", "upto", "ref"]  # fmt: skip
TYPES = ["hello", "say", "dm", "join", "leave", "who", "rooms", "history", "register",
         "passwd", "seen", "typing", "ping", "pong", "bye", "other"]  # fmt: skip


@settings(max_examples=500)
@given(
    st.fixed_dictionaries(
        {"type": st.sampled_from(TYPES)},
        optional={field: field_values for field in FIELDS},
    )
)
def test_arbitrary_fields_of_known_types_never_raise(frame: dict[str, Any]) -> None:
    event = one(frame)
    if isinstance(event, Rejected):
        assert event.code in {"bad_request", "unknown_type"}
        assert event.ref is None or event.ref == frame.get("ref")
    elif isinstance(event, Dropped):
        assert frame["type"] in {"seen", "typing", "pong"}
    else:
        assert isinstance(event, Command)
        assert event.ref == frame.get("ref")


@given(json_values)
def test_arbitrary_json_never_raises(value: Any) -> None:
    event = one(json.dumps(value).encode())
    assert isinstance(event, Command | Rejected | Dropped)


@given(st.text(alphabet='[]{}"\\:,0123456789eE.-+ abtrufnlsNIy\ud800', max_size=200))
def test_json_like_garbage_never_raises(text: str) -> None:
    line = text.encode("utf-8", "surrogatepass").replace(b"\n", b"")
    assert isinstance(decode_line(line), Command | Rejected | Dropped)


# --- encoding -----------------------------------------------------------------------


def test_encode_is_compact_json_with_one_newline() -> None:
    frame = {"type": "message", "id": 42, "from": "alice", "room": "lobby", "body": "a\nb"}
    data = encode(frame)
    assert data == b'{"type":"message","id":42,"from":"alice","room":"lobby","body":"a\\nb"}\n'
    assert ServerCodec().encode(frame) == data == ClientCodec().encode(frame)


def test_encode_writes_utf8_not_escapes() -> None:
    assert encode({"type": "m", "body": "é😀"}) == '{"type":"m","body":"é😀"}\n'.encode()


def test_encode_escapes_unicode_line_separators() -> None:
    data = encode({"type": "m", "body": "a\u2028b\u2029c\x85d\r\n"})
    assert data == b'{"type":"m","body":"a\\u2028b\\u2029c\\u0085d\\r\\n"}\n'
    assert data.decode().splitlines() == [data.decode().rstrip("\n")]


def test_encode_refuses_what_strict_json_cannot_carry() -> None:
    with pytest.raises(ValueError):
        encode({"type": "m", "x": float("nan")})
    with pytest.raises(ValueError):
        encode({"type": "m", "body": "\ud800"})
    with pytest.raises(TypeError):
        encode({"type": "m", "x": object()})


@given(st.text())
def test_encode_never_emits_a_raw_line_break_inside_a_frame(text: str) -> None:
    data = encode({"type": "message", "body": text, text: text})
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert b"\r" not in data
    assert len(data.decode().splitlines()) == 1
    assert ClientCodec().receive_data(data) == [{"type": "message", "body": text, text: text}]


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6), st.text(max_size=10))
def test_encode_round_trips_through_the_client_codec(extra: dict[str, Any], kind: str) -> None:
    frame = {**extra, "type": kind}
    codec = ClientCodec()
    data = encode(frame) + encode({"type": "second"})
    assert feed_client(codec, [data[i : i + 7] for i in range(0, len(data), 7)]) == [
        frame,
        {"type": "second"},
    ]


@given(body=st.text(max_size=200), cid=st.text(max_size=64), ref=st.text(max_size=64))
def test_encode_round_trips_through_the_server_codec(body: str, cid: str, ref: str) -> None:
    frame = {"type": "say", "room": "lobby", "body": body, "cid": cid, "ref": ref}
    assert ServerCodec().receive_data(encode(frame)) == [
        Say(room="lobby", body=body, cid=cid, ref=ref)
    ]


# --- the client codec -----------------------------------------------------------------


def feed_client(codec: ClientCodec, chunks: list[bytes]) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    for chunk in chunks:
        frames += codec.receive_data(chunk)
    return frames


def test_client_codec_skips_lines_that_are_not_frames() -> None:
    data = (
        b'{"type":"welcome","proto":1}\r\n'
        b"\n"
        b"garbage\n"
        b"[1,2]\n"
        b'{"no":"type"}\n'
        b'{"type":5}\n'
        b"\xff\xfe\n"
        b'{"type":"caught_up","missed":0}\n'
    )
    assert ClientCodec().receive_data(data) == [
        {"type": "welcome", "proto": 1},
        {"type": "caught_up", "missed": 0},
    ]


def test_client_codec_handles_split_frames() -> None:
    data = encode({"type": "message", "body": "日本語"})
    codec = ClientCodec()
    assert feed_client(codec, [data[i : i + 1] for i in range(len(data))]) == [
        {"type": "message", "body": "日本語"}
    ]


def test_client_codec_accepts_large_frames() -> None:
    body = "x" * (16 * 1024 * 1024 - 64)
    data = encode({"type": "history", "body": body})
    assert len(data) <= 16 * 1024 * 1024
    [frame] = ClientCodec().receive_data(data)
    assert frame["body"] == body


def test_client_codec_raises_on_an_overlong_line_before_its_newline() -> None:
    codec = ClientCodec(max_line=64)
    assert codec.receive_data(b'{"type":"ping"}\n' + b"x" * 63) == [{"type": "ping"}]
    with pytest.raises(ProtocolError) as info:
        codec.receive_data(b"x")
    assert info.value.frames == []
    with pytest.raises(ProtocolError):
        codec.receive_data(b'\n{"type":"ping"}\n')


def test_client_codec_keeps_frames_before_an_overlong_line() -> None:
    codec = ClientCodec(max_line=64)
    with pytest.raises(ProtocolError) as info:
        codec.receive_data(b'{"type":"a"}\n{"type":"b"}\n' + b"x" * 100 + b"\n")
    assert info.value.frames == [{"type": "a"}, {"type": "b"}]


def test_register_extensions_bot_and_invite() -> None:
    [cmd] = ServerCodec().receive_data(
        b'{"type":"register","password":"p","bot":true,"invite":"t"}\n'
    )
    assert cmd == Register(password="p", bot=True, invite="t")
    [cmd] = ServerCodec().receive_data(b'{"type":"register","password":"p"}\n')
    assert cmd == Register(password="p", bot=False, invite=None)
    [bad] = ServerCodec().receive_data(b'{"type":"register","password":"p","bot":1}\n')
    assert isinstance(bad, Rejected) and bad.code == "bad_request"


def test_stats_and_whowas_decode_to_their_commands() -> None:
    assert one({"type": "stats", "ref": "s"}) == Stats(ref="s")
    assert one({"type": "whowas", "nick": "Bob"}) == WhoWas(nick="Bob")
    assert one({"type": "whowas", "nick": "bob", "limit": 3}) == WhoWas(nick="bob", limit=3)


def test_whois_oper_and_wallops_decode_to_their_commands() -> None:
    assert one({"type": "whois", "mask": "a*", "ref": "w"}) == Whois(mask="a*", ref="w")
    got = one({"type": "oper", "account": "boss", "password": "pw"})
    assert got == Oper(account="boss", password="pw")
    assert one({"type": "oper"}) == Oper()  # the end of the elevation
    assert one({"type": "wallops", "text": "hi"}) == Wallops(text="hi")
    assert one({"type": "wallops_listen", "on": False}) == ListenWallops(on=False)
    assert one({"type": "invisible", "on": True}) == Invisible(on=True)


def test_an_away_message_that_is_not_a_string_is_a_bad_request() -> None:
    got = decode_line(b'{"type":"away","message":7}')
    assert isinstance(got, Rejected) and got.code == "bad_request"
    assert "'message' must be a string" in got.message
