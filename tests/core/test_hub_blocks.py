"""Blocks in the hub (issue 16): the combined fan-out of one room, in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from support.hub import PASSWORD, HubHarness

from chinwag.protocol.events import Block, ListBlocks, Say


async def test_a_run_of_room_messages_fanned_out_together_skips_only_the_blocked_ones(
    tmp_path: Path,
) -> None:
    async with HubHarness.open(tmp_path, rate_burst=100) as h:
        await h.register("alice")
        alice = await h.login("alice", password=PASSWORD)
        erin = await h.login("erin")
        bob = await h.login("bob")
        carol = await h.login("carol")
        await alice.send(Block(nick="bob", ref="b"))
        assert await alice.next("ok") == {"type": "ok", "ref": "b"}
        await alice.unread()
        await erin.unread()
        # Interleaved and queued in one loop turn: one commit, one combined fan-out.
        futures = [
            (bob if n % 2 else carol).pipeline(Say(room="lobby", body=f"m{n}", cid=f"c{n}"))
            for n in range(8)
        ]
        assert all(f is not None for f in futures)
        await asyncio.gather(*(f for f in futures if f is not None))
        got = [f for f in await alice.unread() if f["type"] == "message"]
        assert [(f["from"], f["body"]) for f in got] == [
            ("carol", "m0"),
            ("carol", "m2"),
            ("carol", "m4"),
            ("carol", "m6"),
        ]
        everything = [f["body"] for f in await erin.unread() if f["type"] == "message"]
        assert everything == [f"m{n}" for n in range(8)]
        own = [f for f in await bob.unread() if f["type"] == "message"]
        assert [f.get("cid") for f in own if f["from"] == "bob"] == ["c1", "c3", "c5", "c7"]


async def test_a_guests_blocks_are_capped_and_end_with_its_session(tmp_path: Path) -> None:
    async with HubHarness.open(tmp_path, blocks_max=1) as h:
        gwen = await h.login("gwen")
        await gwen.send(Block(nick="troll", ref="1"))
        assert await gwen.next("ok") == {"type": "ok", "ref": "1"}
        await gwen.send(Block(nick="TROLL", ref="again"))
        assert await gwen.next("ok") == {"type": "ok", "ref": "again"}
        await gwen.send(Block(nick="other", ref="2"))
        full = await gwen.next("error")
        assert (full["code"], full["reason"], full["ref"]) == ("forbidden", "too_many_blocks", "2")
        await gwen.send(ListBlocks(ref="l"))
        assert (await gwen.next("blocks"))["nicks"] == ["troll"]
        await gwen.logout()
        later = await h.login("gwen")  # the same nick, a new guest session
        await later.send(ListBlocks(ref="l"))
        assert (await later.next("blocks"))["nicks"] == []
