"""Delivery by stream position: two hubs on one store, each with its own bus.

A hub hears only of what its own bus brings. Here hub B never hears of the
message posted on hub A, then hears of its own, later one first: B must read
the gap from the store and deliver both, in id order, once each, and a late
doorbell for the earlier one must change nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.hub import HubHarness

from chinwag.bus.base import Posted
from chinwag.protocol.events import Delete, Edit, React, Say, Seen


async def test_a_later_id_heard_first_makes_the_hub_deliver_the_gap_first_in_order(
    tmp_path: Path,
) -> None:
    async with (
        HubHarness.open(tmp_path) as a,
        HubHarness.open(tmp_path) as b,  # the same chinwag.db: one store, two buses
    ):
        await b.register("bob")
        bob = await b.login("bob", password="correct horse battery")
        ann = await a.login("ann")
        cat = await b.login("cat")
        await bob.unread()

        await ann.send(Say(room="lobby", body="first, on node a", ref="1"))
        first = await ann.next("ack")
        assert await bob.unread() == [], "node b's bus never said a word of it"

        await cat.send(Say(room="lobby", body="second, on node b", ref="2"))
        second = await cat.next("ack")
        assert second["id"] > first["id"]
        got = [await bob.next("message"), await bob.next("message")]  # a store read: waited
        assert [(f["id"], f["body"]) for f in got] == [
            (first["id"], "first, on node a"),
            (second["id"], "second, on node b"),
        ]

        # The doorbell for the first one comes late: it is not delivered again.
        [stored] = await b.store.messages_between(first["id"] - 1, first["id"])
        b.bus.publish(Posted(stored))
        assert await bob.unread() == []

        # Bob has seen everything up to the second: the first is not skipped on reconnect.
        await bob.send(Seen(upto=second["id"]))
        await bob.logout()
        again = await b.login("bob", password="correct horse battery")
        assert [f for f in await again.unread() if f["type"] == "message"] == []
        assert await b.store.max_cursor("a:bob") == second["id"]


async def test_edits_reactions_and_deletions_in_a_gap_are_delivered_as_events_in_order(
    tmp_path: Path,
) -> None:
    async with (
        HubHarness.open(tmp_path) as a,
        HubHarness.open(tmp_path) as b,  # the same chinwag.db: one store, two buses
    ):
        ann = await a.login("ann")
        bob = await b.login("bob")
        cat = await b.login("cat")
        await bob.unread()

        await ann.send(Say(room="lobby", body="typo hre", ref="1"))
        first = (await ann.next("ack"))["id"]
        await ann.send(Say(room="lobby", body="regret this", ref="2"))
        second = (await ann.next("ack"))["id"]
        await ann.send(Edit(id=first, body="typo here", ref="3"))
        edit = (await ann.next("ack"))["id"]
        await ann.send(React(id=first, emoji="👍", ref="4"))
        react = (await ann.next("ack"))["id"]
        await ann.send(Delete(id=second, ref="5"))
        delete = (await ann.next("ack"))["id"]
        assert await bob.unread() == [], "node b's bus never said a word of it"

        await cat.send(Say(room="lobby", body="on node b", ref="6"))
        last = (await cat.next("ack"))["id"]
        got: list[dict[str, Any]] = []
        while len(got) < 6:  # a store read: waited for
            frame = await bob.next()
            if frame["type"] != "presence":
                got.append(frame)
        assert [(f["type"], f["id"]) for f in got] == [
            ("message", first),
            ("message", second),
            ("edited", edit),
            ("reacted", react),
            ("deleted", delete),
            ("message", last),
        ]
        # Read from the store after the fact: the message as it is now, each event once.
        assert got[0]["body"] == "typo here"
        assert got[1].get("deleted") is True and "regret" not in str(got[1])
        assert (got[2]["target"], got[2]["body"]) == (first, "typo here")
        assert (got[3]["target"], got[3]["emoji"], got[3]["on"]) == (first, "👍", True)
        assert (got[4]["target"], got[4]["by"]) == (second, "ann")
