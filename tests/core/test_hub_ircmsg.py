"""Notices and multiline concat points in-process (ircmsg), on a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.hub import HubHarness

from chinwag.protocol.events import Dm, History, Say


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with HubHarness.open(tmp_path) as h:
        yield h


@pytest.mark.parametrize("concat", [(0,), (3, 2), (7,), (1, 1)])
async def test_concat_points_outside_the_body_or_out_of_order_are_refused(
    harness: HubHarness, concat: tuple[int, ...]
) -> None:
    ann = await harness.login("ann")
    await harness.login("bob")
    for cmd in (
        Say(room="lobby", body="abc\ndef", concat=concat, ref="s"),
        Dm(to="bob", body="abc\ndef", concat=concat, ref="s"),
    ):
        await ann.send(cmd)
        reply = await ann.next()
        while reply.get("ref") != "s":
            reply = await ann.next()
        assert reply["code"] == "bad_request"
    await ann.send(History(room="lobby", ref="h"))
    page = await ann.next()
    while page.get("ref") != "h":
        page = await ann.next()
    assert page["messages"] == []  # nothing was stored
