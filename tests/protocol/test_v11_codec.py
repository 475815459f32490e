"""Protocol §8 (version 1.1) in the JSON-lines codec: new commands decoded strictly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chinwag.protocol.events import (
    Command,
    Delete,
    Dm,
    Edit,
    Incoming,
    React,
    Read,
    Receipts,
    Rejected,
    Say,
    Search,
)
from chinwag.protocol.jsonlines import ServerCodec


def one(frame: dict[str, Any]) -> Incoming:
    events = ServerCodec().receive_data(json.dumps(frame).encode() + b"\n")
    assert len(events) == 1, events
    return events[0]


DECODED: list[tuple[dict[str, Any], Command]] = [
    (
        {"type": "edit", "id": 42, "body": "fixed", "cid": "c-19", "ref": "r"},
        Edit(id=42, body="fixed", cid="c-19", ref="r"),
    ),
    ({"type": "edit", "id": 1, "body": ""}, Edit(id=1, body="")),
    ({"type": "delete", "id": 42, "cid": "c-20"}, Delete(id=42, cid="c-20")),
    ({"type": "delete", "id": 2**53}, Delete(id=2**53)),
    ({"type": "react", "id": 42, "emoji": "👍", "on": True}, React(id=42, emoji="👍")),
    ({"type": "react", "id": 42, "emoji": "👍", "on": False}, React(id=42, emoji="👍", on=False)),
    ({"type": "react", "id": 42, "emoji": "👍"}, React(id=42, emoji="👍", on=True)),
    (
        {"type": "say", "room": "lobby", "body": "yes", "reply_to": 42},
        Say(room="lobby", body="yes", reply_to=42),
    ),
    (
        {"type": "dm", "to": "bob", "body": "yes", "reply_to": 7},
        Dm(to="bob", body="yes", reply_to=7),
    ),
    ({"type": "say", "room": "a", "body": "b", "reply_to": None}, Say(room="a", body="b")),
    ({"type": "search", "q": "word"}, Search(q="word")),
    (
        {"type": "search", "q": "a b", "room": "lobby", "from": "alice", "before": 9, "limit": 5},
        Search(q="a b", room="lobby", sender="alice", before=9, limit=5),
    ),
    ({"type": "search", "q": "x", "with": "bob"}, Search(q="x", with_="bob")),
    ({"type": "read", "room": "lobby", "upto": 42}, Read(room="lobby", upto=42)),
    ({"type": "read", "with": "bob", "upto": 1, "ref": "r"}, Read(with_="bob", upto=1, ref="r")),
    ({"type": "receipts", "on": True}, Receipts(on=True)),
    ({"type": "receipts", "on": False}, Receipts(on=False)),
]


@pytest.mark.parametrize(("frame", "expected"), DECODED)
def test_each_new_command_is_decoded(frame: dict[str, Any], expected: Command) -> None:
    assert one(frame) == expected


BAD: list[tuple[dict[str, Any], str]] = [
    ({"type": "edit", "body": "x"}, "id"),
    ({"type": "edit", "id": 0, "body": "x"}, "id"),
    ({"type": "edit", "id": -1, "body": "x"}, "id"),
    ({"type": "edit", "id": True, "body": "x"}, "id"),
    ({"type": "edit", "id": "42", "body": "x"}, "id"),
    ({"type": "edit", "id": 42}, "body"),
    ({"type": "edit", "id": 42, "body": 5}, "body"),
    ({"type": "edit", "id": 42, "body": "x", "cid": "c" * 65}, "cid"),
    ({"type": "delete"}, "id"),
    ({"type": "delete", "id": 1.5}, "id"),
    ({"type": "react", "id": 42}, "emoji"),
    ({"type": "react", "id": 42, "emoji": 1}, "emoji"),
    ({"type": "react", "emoji": "👍"}, "id"),
    ({"type": "react", "id": 42, "emoji": "👍", "on": "yes"}, "on"),
    ({"type": "react", "id": 42, "emoji": "👍", "on": 1}, "on"),
    ({"type": "say", "room": "a", "body": "b", "reply_to": 0}, "reply_to"),
    ({"type": "say", "room": "a", "body": "b", "reply_to": "42"}, "reply_to"),
    ({"type": "dm", "to": "a", "body": "b", "reply_to": False}, "reply_to"),
    ({"type": "search"}, "q"),
    ({"type": "search", "q": 1}, "q"),
    ({"type": "search", "q": "x", "room": "a", "with": "b"}, "with"),
    ({"type": "search", "q": "x", "from": 3}, "from"),
    ({"type": "search", "q": "x", "before": 0}, "before"),
    ({"type": "search", "q": "x", "limit": "9"}, "limit"),
    ({"type": "read", "room": "a"}, "upto"),
    ({"type": "read", "room": "a", "upto": 0}, "upto"),
    ({"type": "read", "room": "a", "upto": True}, "upto"),
    ({"type": "read", "upto": 3}, "with"),
    ({"type": "read", "room": "a", "with": "b", "upto": 3}, "with"),
    ({"type": "receipts"}, "on"),
    ({"type": "receipts", "on": 1}, "on"),
]


@pytest.mark.parametrize(("frame", "field"), BAD)
def test_a_bad_field_of_a_new_command_is_bad_request_naming_it(
    frame: dict[str, Any], field: str
) -> None:
    event = one({**frame, "ref": "q"})
    assert isinstance(event, Rejected)
    assert (event.code, event.ref) == ("bad_request", "q")
    assert f"'{field}'" in event.message
