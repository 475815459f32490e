"""Issue 15 in the JSON-lines codec: ``history`` with ``after`` and the ``settings``
request, decoded strictly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chinwag.protocol.events import GetSettings, History, Incoming, Rejected
from chinwag.protocol.jsonlines import ServerCodec


def one(frame: dict[str, Any]) -> Incoming:
    events = ServerCodec().receive_data(json.dumps(frame).encode() + b"\n")
    assert len(events) == 1, events
    return events[0]


@pytest.mark.parametrize(
    ("frame", "command"),
    [
        (
            {"type": "history", "room": "lobby", "after": 41, "limit": 5, "ref": "h"},
            History(room="lobby", after=41, limit=5, ref="h"),
        ),
        ({"type": "history", "with": "bob", "after": 0}, History(with_="bob", after=0)),
        ({"type": "history", "room": "lobby", "after": None}, History(room="lobby")),
        ({"type": "settings", "ref": "s"}, GetSettings(ref="s")),
    ],
)
def test_decoded(frame: dict[str, Any], command: Incoming) -> None:
    assert one(frame) == command


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        ({"type": "history", "room": "lobby", "after": -1}, "'after' must be at least 0"),
        ({"type": "history", "room": "lobby", "after": "9"}, "'after' must be an integer"),
        ({"type": "history", "room": "lobby", "after": 1.5}, "'after' must be an integer"),
        ({"type": "history", "room": "lobby", "after": True}, "'after' must be an integer"),
        (
            {"type": "history", "room": "lobby", "after": 3, "before": 9},
            "give 'before' (older messages) or 'after' (newer ones), not both",
        ),
    ],
)
def test_refused_with_words_that_say_what_to_do(frame: dict[str, Any], words: str) -> None:
    got = one(frame)
    assert isinstance(got, Rejected) and got.code == "bad_request", got
    assert words in got.message
