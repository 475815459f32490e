"""A room's key and member limit (branch ircmodes, protocol §12.6): who sets them, who
is told the key, who passes them, what the audit log keeps, the lobby.

In-process on `support.hub.HubHarness` (a real SQLite file), asserting on the frames
a client gets.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.hub import PASSWORD, Client, HubHarness

from chinwag.core.moderation import SERVER
from chinwag.protocol.events import Command, Join, Leave, Rejected, RoomInfo, RoomSet
from chinwag.protocol.jsonlines import decode_line, render


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with HubHarness.open(tmp_path) as h:
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


async def test_mods_set_a_key_members_may_not_and_only_roles_are_told_it(
    harness: HubHarness,
) -> None:
    olga, mick, bob = [await account(harness, n) for n in ("olga", "mick", "bob")]
    for client in (olga, mick, bob):
        assert (await answer(client, Join(room="games", ref="j")))["type"] == "ok"
    await harness.hub.moderation.set_role("games", "a:mick", "mick", "mod", "olga")
    no = await answer(bob, RoomSet(room="games", key="mine", limit=3, ref="k"))
    assert (no["code"], no["reason"]) == ("forbidden", "not_allowed")
    assert (await answer(mick, RoomSet(room="games", key="s3cret", ref="k")))["type"] == "ok"
    for client, key in ((olga, "s3cret"), (bob, None)):  # the owner, a member
        while (told := await next_of(client, "room_info"))["by"] is None:
            pass  # the answer to its join
        assert (told["keyed"], told.get("key"), told["by"]) == (True, key, "mick")
    *_, entry = await harness.store.audit_log(room="games", since_ms=None, limit=10)
    assert (entry.actor, entry.detail) == ("mick", "key=set"), "the key is not in the log"

    # Who holds a role passes the key; a member that left needs it again.
    assert (await answer(bob, Leave(room="games", ref="l")))["type"] == "ok"
    assert (await answer(bob, Join(room="games", ref="j")))["code"] == "bad_key"
    assert (await answer(mick, Leave(room="games", ref="l")))["type"] == "ok"
    assert (await answer(mick, Join(room="games", ref="j")))["type"] == "ok", "a mod"
    await harness.hub.moderation.set_role(SERVER, "a:bob", "bob", "admin", "operator")
    assert (await answer(bob, Join(room="games", ref="j")))["type"] == "ok", "an admin"


async def test_the_lobby_takes_neither_a_key_nor_a_limit_even_from_an_admin(
    harness: HubHarness,
) -> None:
    ada = await account(harness, "ada")
    await harness.hub.moderation.set_role(SERVER, "a:ada", "ada", "admin", "operator")
    changes: list[dict[str, Any]] = [{"key": "k"}, {"limit": 5}]
    for change in changes:
        no = await answer(ada, RoomSet(room="lobby", ref="l", **change))
        assert (no["code"], no["reason"]) == ("forbidden", "lobby"), change
    [row] = [r for r in await harness.store.load_rooms() if r.name == "lobby"]
    assert (row.key, row.limit) == (None, None)


def test_the_codec_reads_keys_and_limits_and_writes_what_each_may_know() -> None:
    assert decode_line(b'{"type":"room","room":"g","key":"b33r","limit":5}') == RoomSet(
        room="g", key="b33r", limit=5
    )
    assert decode_line(b'{"type":"room","room":"g","key":"","limit":0}') == RoomSet(
        room="g", key="", limit=0
    )
    assert decode_line(b'{"type":"join","room":"g","key":"b33r"}') == Join(room="g", key="b33r")
    assert decode_line(b'{"type":"join","room":"g"}') == Join(room="g")
    for bad, words in (
        (b'{"type":"room","room":"g","key":5}', "'key' must be a string"),
        (b'{"type":"room","room":"g","limit":-1}', "'limit' must be at least 0"),
        (b'{"type":"room","room":"g","limit":"5"}', "'limit' must be an integer"),
        (b'{"type":"join","room":"g","key":true}', "'key' must be a string"),
    ):
        got = decode_line(bad)
        assert isinstance(got, Rejected) and got.code == "bad_request", bad
        assert words in got.message, got.message
    base = RoomInfo(room="g", topic="", private=False, announce=False)
    mod = json.loads(render(replace(base, keyed=True, key="b33r", limit=5)))
    member = json.loads(render(replace(base, keyed=True, limit=5)))
    plain = json.loads(render(base))
    assert (mod["keyed"], mod["key"], mod["limit"]) == (True, "b33r", 5)
    assert (member["keyed"], member["limit"], "key" in member) == (True, 5, False)
    assert {"keyed", "key", "limit"} & set(plain) == set()
