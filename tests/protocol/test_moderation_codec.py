"""The moderation frames of protocol §8 as the JSON-lines codec reads them (issue 16)."""

from __future__ import annotations

import pytest

from chinwag.protocol.events import Grant, Invite, Moderate, Rejected, RoomSet
from chinwag.protocol.jsonlines import decode_line

UNTIL = b'"2026-12-02T14:05:00.000Z"'
UNTIL_MS = 1796220300000


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (
            b'{"type":"room","room":"games","topic":"chess","ref":"r"}',
            RoomSet(room="games", topic="chess", ref="r"),
        ),
        (
            b'{"type":"room","room":"games","private":true,"announce":false}',
            RoomSet(room="games", private=True, announce=False),
        ),
        (b'{"type":"invite","room":"games","nick":"bob"}', Invite(room="games", nick="bob")),
        (
            b'{"type":"kick","room":"games","nick":"bob","reason":"rude"}',
            Moderate(action="kick", room="games", nick="bob", reason="rude"),
        ),
        (
            b'{"type":"ban","room":"games","nick":"bob","until":' + UNTIL + b"}",
            Moderate(action="ban", room="games", nick="bob", until_ms=UNTIL_MS),
        ),
        (
            b'{"type":"ban","nick":"bob","until":null}',
            Moderate(action="ban", nick="bob"),
        ),
        (
            b'{"type":"mute","room":"games","nick":"bob","until":"2026-12-02T14:05:00Z"}',
            Moderate(action="mute", room="games", nick="bob", until_ms=UNTIL_MS),
        ),
        (
            b'{"type":"unmute","room":"games","nick":"bob"}',
            Moderate(action="unmute", room="games", nick="bob"),
        ),
        (b'{"type":"unban","nick":"bob"}', Moderate(action="unban", nick="bob")),
        (
            b'{"type":"grant","room":"games","nick":"bob","role":"mod"}',
            Grant(room="games", nick="bob", role="mod"),
        ),
        (b'{"type":"grant","nick":"bob","role":"admin"}', Grant(nick="bob", role="admin")),
        (  # ircroles
            b'{"type":"room","room":"games","topic_locked":false,"secret":true}',
            RoomSet(room="games", topic_locked=False, secret=True),
        ),
        (
            b'{"type":"voice","room":"games","nick":"bob","until":null}',
            Moderate(action="voice", room="games", nick="bob"),
        ),
        (
            b'{"type":"unvoice","room":"games","nick":"bob"}',
            Moderate(action="unvoice", room="games", nick="bob"),
        ),
    ],
)
def test_each_moderation_frame_decodes_to_its_command(line: bytes, command: object) -> None:
    assert decode_line(line) == command


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b'{"type":"room","room":"games"}', "at least one of"),
        (b'{"type":"room","room":"games","private":"yes"}', "'private' must be true or false"),
        (b'{"type":"invite","room":"games"}', "missing field 'nick'"),
        (b'{"type":"mute","nick":"bob"}', "missing field 'room'"),
        (b'{"type":"ban","room":"g","nick":"bob","until":"tomorrow"}', "UTC time"),
        (b'{"type":"ban","room":"g","nick":"bob","until":"2026-12-02T14:05:00+01:00"}', "UTC"),
        (b'{"type":"ban","room":"g","nick":"bob","until":5}', "'until' must be a string"),
        (b'{"type":"kick","room":"g","nick":"bob","reason":7}', "'reason' must be a string"),
        (b'{"type":"grant","room":"g","nick":"bob"}', "missing field 'role'"),
        (b'{"type":"voice","nick":"bob"}', "missing field 'room'"),
        (b'{"type":"room","room":"g","secret":1}', "'secret' must be true or false"),
    ],
)
def test_a_malformed_moderation_frame_is_a_bad_request_that_names_the_field(
    line: bytes, words: str
) -> None:
    got = decode_line(line)
    assert isinstance(got, Rejected) and got.code == "bad_request"
    assert words in got.message
