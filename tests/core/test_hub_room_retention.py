"""A room's own retention (issue 17, protocol §12.3): set by its owner or an admin, stored,
told to its members in ``room_info``, bounded by ``room_retention_max_days``.

In-process on `support.hub.HubHarness` (a real SQLite file), asserting on the
frames a client gets; the JSON-lines codec reads and writes the new field.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.hub import PASSWORD, Client, HubHarness

from chinwag.config import SettingsError, build
from chinwag.core.moderation import SERVER
from chinwag.protocol.events import Command, Join, Rejected, RoomInfo, RoomSet
from chinwag.protocol.jsonlines import decode_line, render

MOST = 30  # room_retention_max_days in these tests


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with HubHarness.open(tmp_path, room_retention_max_days=MOST) as h:
        yield h


async def answer(client: Client, cmd: Command) -> dict[str, Any]:
    """The direct reply to ``cmd`` (which has a ``ref``)."""
    await client.send(cmd)
    while True:
        frame = await client.next()
        if frame.get("ref") == cmd.ref:
            return frame


async def next_of(client: Client, kind: str) -> dict[str, Any]:
    while True:
        frame = await client.next()
        if frame["type"] == kind:
            return frame


async def account(harness: HubHarness, nick: str) -> Client:
    await harness.register(nick)
    return await harness.login(nick, password=PASSWORD)


async def stored_days(harness: HubHarness, room: str) -> int | None:
    [row] = [r for r in await harness.store.load_rooms() if r.name == room]
    return row.retention_days


async def test_only_the_owner_or_an_admin_sets_a_rooms_retention(harness: HubHarness) -> None:
    olga = await account(harness, "olga")
    mick = await account(harness, "mick")
    bob = await account(harness, "bob")
    for client in (olga, mick, bob):
        assert (await answer(client, Join(room="games", ref="j")))["type"] == "ok"
    await harness.hub.moderation.set_role("games", "a:mick", "mick", "mod", "olga")
    for who in (bob, mick):  # a member, a mod
        no = await answer(who, RoomSet(room="games", retention_days=7, ref="r"))
        assert (no["type"], no["code"], no["reason"]) == ("error", "forbidden", "not_allowed")
    assert await stored_days(harness, "games") is None, "a refusal changes nothing"

    assert (await answer(olga, RoomSet(room="games", retention_days=7, ref="r")))["type"] == "ok"
    told = await next_of(bob, "room_info")
    assert (told["retention_days"], told["by"]) == (7, "olga")
    assert await stored_days(harness, "games") == 7
    *_, entry = await harness.store.audit_log(room="games", since_ms=None, limit=10)
    assert (entry.actor, entry.action, entry.detail) == ("olga", "room", "retention_days=7")

    # A join shows it; 0 clears it (room_info then has no retention of its own).
    later = await account(harness, "later")
    assert (await answer(later, Join(room="games", ref="j")))["type"] == "ok"
    assert (await next_of(later, "room_info"))["retention_days"] == 7
    assert (await answer(olga, RoomSet(room="games", retention_days=0, ref="c")))["type"] == "ok"
    assert "retention_days" not in await next_of(bob, "room_info")
    assert await stored_days(harness, "games") is None

    # The lobby is the admins'.
    await harness.hub.moderation.set_role(SERVER, "a:bob", "bob", "admin", "operator")
    assert (await answer(bob, RoomSet(room="lobby", retention_days=3, ref="l")))["type"] == "ok"
    assert await stored_days(harness, "lobby") == 3


async def test_a_retention_above_room_retention_max_days_is_refused(harness: HubHarness) -> None:
    olga = await account(harness, "olga")
    assert (await answer(olga, Join(room="games", ref="j")))["type"] == "ok"
    assert (
        await answer(olga, RoomSet(room="games", retention_days=MOST, ref="r"))
    )["type"] == "ok"  # fmt: skip
    assert await stored_days(harness, "games") == MOST
    no = await answer(olga, RoomSet(room="games", retention_days=MOST + 1, topic="x", ref="r"))
    assert (no["type"], no["code"]) == ("error", "bad_request")
    assert f"{MOST} days at most" in no["message"]
    [row] = [r for r in await harness.store.load_rooms() if r.name == "games"]
    assert (row.retention_days, row.topic) == (MOST, ""), "nothing of the request was applied"


def test_the_codec_reads_and_writes_retention_days() -> None:
    assert decode_line(b'{"type":"room","room":"games","retention_days":7}') == RoomSet(
        room="games", retention_days=7
    )
    assert decode_line(b'{"type":"room","room":"games","retention_days":0}') == RoomSet(
        room="games", retention_days=0
    )
    for bad, words in (
        (b'{"type":"room","room":"g","retention_days":-1}', "at least 0"),
        (b'{"type":"room","room":"g","retention_days":"7"}', "must be an integer"),
        (b'{"type":"room","room":"g","retention_days":1.5}', "must be an integer"),
    ):
        got = decode_line(bad)
        assert isinstance(got, Rejected) and got.code == "bad_request", bad
        assert "'retention_days'" in got.message and words in got.message
    shown = json.loads(render(RoomInfo(room="g", topic="", private=False, announce=False,
                                       retention_days=7)))  # fmt: skip
    assert shown["retention_days"] == 7
    plain = json.loads(render(RoomInfo(room="g", topic="", private=False, announce=False)))
    assert "retention_days" not in plain


def test_room_retention_max_days_is_at_least_one_day() -> None:
    assert build(overrides=["room_retention_max_days=1"]).room_retention_max_days == 1
    with pytest.raises(SettingsError, match="room_retention_max_days must be at least 1 day"):
        build(overrides=["room_retention_max_days=0"])
