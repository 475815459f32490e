"""Edits, deletions and reactions share the messages' combined fan-out (issue 15).

A run of messages and events to one room committed together reaches each
member as one write, in id order, each copy checked against the member's
blocks; only a message has the sender's own copy (with its cid).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from support.hub import PASSWORD, Client, FakeOutlet, HubHarness

from chinwag.core.sessions import Frame
from chinwag.protocol.events import Block, Command, Edit, React, Say


class CountingOutlet(FakeOutlet):
    """A `FakeOutlet` that also counts its writes (one `send` is one write)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def send(self, frame: Frame) -> None:
        self.writes += 1
        super().send(frame)


async def acked(client: Client, cmd: Command) -> dict[str, Any]:
    await client.send(cmd)
    while True:
        frame = await client.next()
        if frame.get("ref") == cmd.ref:
            assert frame["type"] == "ack", frame
            return frame


async def test_a_run_of_messages_edits_and_reactions_reaches_each_member_in_one_write(
    tmp_path: Path,
) -> None:
    async with HubHarness.open(tmp_path, rate_burst=100) as h:
        await h.register("erin")
        alice = await h.login("alice")
        bob = await h.login("bob")
        carol = await h.login("carol")
        erin = await h.login("erin", password=PASSWORD)
        watcher = CountingOutlet()
        dave = await h.login("dave", outlet=watcher)
        await erin.send(Block(nick="bob", ref="b"))
        assert await erin.next("ok") == {"type": "ok", "ref": "b"}
        first = (await acked(alice, Say(room="lobby", body="one", ref="s1")))["id"]
        second = (await acked(bob, Say(room="lobby", body="two", ref="s2")))["id"]
        for c in (alice, bob, carol, dave, erin):
            await c.unread()
        writes = watcher.writes

        # Another connection holds the database's write lock while the four are
        # checked, so that the store's writer commits them together (at most the
        # first alone): then they are fanned out in one loop turn.
        lock = sqlite3.connect(tmp_path / "chinwag.db", isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            sent = asyncio.gather(
                alice.send(Edit(id=first, body="one!", cid="e1", ref="e")),
                bob.send(React(id=first, emoji="👍", on=True, cid="r1", ref="r")),
                carol.send(React(id=second, emoji="🎉", on=True, cid="r2", ref="r")),
                carol.send(Say(room="lobby", body="three", cid="c3", ref="s3")),
            )
            await asyncio.sleep(0.5)
            lock.execute("ROLLBACK")
        finally:
            lock.close()
        await asyncio.wait_for(sent, 10)
        seen = [f for f in await carol.unread() if "ref" not in f]
        assert sorted(f["type"] for f in seen) == ["edited", "message", "reacted", "reacted"]
        assert [f["id"] for f in seen] == sorted(f["id"] for f in seen)
        [own] = [f for f in seen if f["type"] == "message"]
        assert (own["body"], own["cid"]) == ("three", "c3")  # the sender's copy, with its cid
        assert all("cid" not in f for f in seen if f["type"] != "message")

        # Erin blocks bob: his reaction stops there, the rest arrive in the same order.
        got = await erin.unread()
        assert [f["id"] for f in got] == [f["id"] for f in seen if f.get("from") != "bob"]
        assert [f["type"] for f in got if f["type"] == "message"] == ["message"]
        assert "cid" not in got[[f["type"] for f in got].index("message")]
        everything = await dave.unread()
        assert [f["id"] for f in everything] == [f["id"] for f in seen]
        assert watcher.writes - writes <= 2, "four events came in one write (or two)"
