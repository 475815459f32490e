"""Blocks (issue 16) in the JSON-lines codec: block, unblock, blocks decoded strictly."""

from __future__ import annotations

from typing import Any

import pytest
from test_v11_codec import one

from chinwag.protocol.events import Block, Command, ListBlocks, Rejected, Unblock

DECODED: list[tuple[dict[str, Any], Command]] = [
    ({"type": "block", "nick": "bob", "ref": "r"}, Block(nick="bob", ref="r")),
    ({"type": "block", "nick": ""}, Block(nick="")),  # the hub says bad_nick
    ({"type": "unblock", "nick": "Zoë"}, Unblock(nick="Zoë")),
    ({"type": "blocks"}, ListBlocks()),
    ({"type": "blocks", "nick": "ignored"}, ListBlocks()),
]


@pytest.mark.parametrize(("frame", "expected"), DECODED)
def test_each_block_command_is_decoded(frame: dict[str, Any], expected: Command) -> None:
    assert one(frame) == expected


@pytest.mark.parametrize(
    "frame",
    [{"type": "block"}, {"type": "block", "nick": 5}, {"type": "unblock", "nick": None}],
)
def test_a_block_without_a_string_nick_is_bad_request_naming_it(frame: dict[str, Any]) -> None:
    event = one({**frame, "ref": "q"})
    assert isinstance(event, Rejected)
    assert (event.code, event.ref) == ("bad_request", "q")
    assert "'nick'" in event.message
