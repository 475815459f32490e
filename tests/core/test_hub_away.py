"""Away messages in the hub (issue 19): set, cleared, told to room peers, across nodes.

A real hub, store and hasher (`HubHarness`); another node's events are handed
to the hub as its bus would (`Nodes.receive`).
"""

from __future__ import annotations

from pathlib import Path

from support.hub import PASSWORD, HubHarness

from chinwag.bus.base import AwaySet, Online
from chinwag.protocol.events import Away, Block, Dm, Join, Who


async def test_away_is_told_to_room_peers_shown_in_who_and_on_a_dm_ack(tmp_path: Path) -> None:
    async with HubHarness.open(tmp_path) as h:
        await h.register("ann")
        ann = await h.login("ann", password=PASSWORD)
        ann_phone = await h.login("ann", password=PASSWORD, device="phone")
        bob = await h.login("bob")
        await ann.unread()
        await ann_phone.unread()
        await bob.unread()

        await ann.send(Away(message="at lunch", ref="a1"))
        assert await ann.next() == {"type": "ok", "ref": "a1"}
        assert await bob.next("away") == {"type": "away", "nick": "ann", "message": "at lunch"}
        # Her other session learns it too: the state is the account's.
        assert await ann_phone.next("away") == {
            "type": "away",
            "nick": "ann",
            "message": "at lunch",
        }
        assert await ann.unread() == []  # the one who set it has its ok

        await bob.send(Who(room="lobby", ref="w"))
        who = await bob.next("who")
        assert {u["nick"]: u.get("away") for u in who["users"]} == {"ann": "at lunch", "bob": None}
        await bob.send(Dm(to="ann", body="you there?", ref="d"))
        ack = await bob.next("ack")
        assert ack["away"] == "at lunch"

        await ann_phone.send(Away(message="", ref="back"))  # empty: back
        assert await ann_phone.next() == {"type": "ok", "ref": "back"}
        assert await bob.next("away") == {"type": "away", "nick": "ann", "message": None}
        await bob.send(Dm(to="ann", body="welcome back", ref="d2"))
        assert "away" not in await bob.next("ack")
        await ann.send(Away(ref="again"))  # back already: ok, nobody is told again
        await ann.next("ok")
        assert [f for f in await bob.unread() if f["type"] == "away"] == []


async def test_a_bad_away_message_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    async with HubHarness.open(tmp_path, away_max_length=5) as h:
        ann = await h.login("ann")
        bob = await h.login("bob")
        await bob.unread()
        await ann.send(Away(message="12345", ref="edge"))  # at the limit: accepted
        assert await ann.next("ok") == {"type": "ok", "ref": "edge"}
        assert (await bob.next("away"))["message"] == "12345"
        errors = []
        for bad in ("123456", "a\nb", "b\x07"):
            await ann.send(Away(message=bad, ref="bad"))
            errors.append(await ann.next("error"))
        assert [e["code"] for e in errors] == ["bad_request"] * 3
        assert "the limit is 5" in errors[0]["message"]
        assert "control characters" in errors[1]["message"]
        await bob.send(Who(room="lobby", ref="w"))
        who = await bob.next("who")
        assert {u["nick"]: u.get("away") for u in who["users"]}["ann"] == "12345"
        assert [f for f in await bob.unread() if f["type"] == "away"] == []


async def test_a_blocker_and_someone_in_no_shared_room_are_not_told(tmp_path: Path) -> None:
    async with HubHarness.open(tmp_path) as h:
        await h.register("cy")
        ann = await h.login("ann")
        bob = await h.login("bob")
        cy = await h.login("cy", password=PASSWORD)
        await cy.send(Join(room="dev", ref="j"))
        await cy.send(Block(nick="ann", ref="b"))
        await cy.next("ok")
        await bob.unread()
        await cy.unread()
        await ann.send(Away(message="brb", ref="a"))
        assert (await bob.next("away"))["nick"] == "ann"
        assert [f for f in await cy.unread() if f["type"] == "away"] == []


async def test_away_crosses_nodes_and_a_roster_carries_it(tmp_path: Path) -> None:
    async with HubHarness.open(tmp_path) as h:
        ann = await h.login("ann")
        await ann.unread()
        # Bob is online on node n2, away already when that node says so.
        h.hub._nodes.receive(Online("n2", "g:9", "bob", "bob", False, False, ("lobby",), "gone"))
        await ann.send(Who(room="lobby", ref="w"))
        who = await ann.next("who")
        assert {u["nick"]: u.get("away") for u in who["users"]} == {"ann": None, "bob": "gone"}
        await ann.send(Dm(to="bob", body="hi", ref="d"))
        assert (await ann.next("ack"))["away"] == "gone"

        h.hub._nodes.receive(AwaySet("n2", "g:9", None))
        assert await ann.next("away") == {"type": "away", "nick": "bob", "message": None}
        await ann.send(Dm(to="bob", body="hi again", ref="d2"))
        assert "away" not in await ann.next("ack")


async def test_an_account_away_on_another_node_is_away_here_too(tmp_path: Path) -> None:
    async with HubHarness.open(tmp_path) as h:
        await h.register("ann")
        ann = await h.login("ann", password=PASSWORD)
        bob = await h.login("bob")
        await ann.unread()
        await bob.unread()
        h.hub._nodes.receive(Online("n2", "a:ann", "ann", "ann", True, False, ("lobby",)))
        h.hub._nodes.receive(AwaySet("n2", "a:ann", "on the train"))
        assert (await ann.next("away"))["message"] == "on the train"
        assert (await bob.next("away"))["message"] == "on the train"
        await bob.send(Who(room="lobby", ref="w"))
        who = await bob.next("who")
        assert {u["nick"]: u.get("away") for u in who["users"]}["ann"] == "on the train"


async def test_an_account_logging_in_here_keeps_the_away_it_has_on_another_node(
    tmp_path: Path,
) -> None:
    async with HubHarness.open(tmp_path) as h:
        await h.register("ann")
        h.hub._nodes.receive(Online("n2", "a:ann", "ann", "ann", True, False, ("lobby",), "out"))
        bob = await h.login("bob")
        await h.login("ann", password=PASSWORD)
        await bob.send(Dm(to="ann", body="hi", ref="d"))
        assert (await bob.next("ack"))["away"] == "out"


async def test_someone_away_who_joins_a_room_is_seen_away_there(tmp_path: Path) -> None:
    async with HubHarness.open(tmp_path) as h:
        ann = await h.login("ann")
        bob = await h.login("bob")
        await bob.send(Join(room="den", ref="j"))
        await ann.send(Away(message="in a meeting", ref="a"))
        await ann.next("ok")
        await bob.unread()
        await ann.send(Join(room="den", ref="j2"))
        got = [f for f in await bob.unread() if f["type"] in ("presence", "away")]
        assert [(f["type"], f.get("room")) for f in got] == [("presence", "den"), ("away", None)]
        assert got[1] == {"type": "away", "nick": "ann", "message": "in a meeting"}
        assert [f for f in await ann.unread() if f["type"] == "away"] == []
