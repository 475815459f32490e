"""Protocol §8 in-process: edit, delete, react, reply_to and mentions, every rule at its edge.

Each test runs on `support.hub.HubHarness` (a real SQLite file) and asserts on
the frames a client would get.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.hub import PASSWORD, Client, HubHarness

from chinwag.protocol.events import Delete, Dm, Edit, History, Join, Leave, React, Say

Frames = list[dict[str, Any]]

START = 1_800_000_000.0
WINDOW = 600.0


class Clock:
    """The hub's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def harness(tmp_path: Path, clock: Clock) -> AsyncIterator[HubHarness]:
    async with HubHarness.open(tmp_path, clock=clock, edit_window=WINDOW) as h:
        yield h


def of_type(frames: Frames, kind: str) -> Frames:
    return [f for f in frames if f["type"] == kind]


async def said(client: Client, body: str, room: str = "lobby", **extra: Any) -> int:
    """Post ``body`` and return its id (from the ack)."""
    await client.send(Say(room=room, body=body, ref="s", **extra))
    reply = await client.next()
    while reply.get("ref") != "s":
        reply = await client.next()
    assert reply["type"] == "ack", reply
    return int(reply["id"])


async def answer(client: Client, cmd: Any) -> dict[str, Any]:
    """The reply (ack or error) to ``cmd``, which must carry ``ref``."""
    await client.send(cmd)
    while True:
        frame = await client.next()
        if frame.get("ref") == cmd.ref:
            return frame


async def history(client: Client, **where: Any) -> Frames:
    await client.send(History(ref="h", **where))
    return list((await client.next("history"))["messages"])


# -- edit ----------------------------------------------------------------------------------------


async def test_an_edit_reaches_everyone_who_sees_the_message_and_history_shows_it(
    harness: HubHarness, clock: Clock
) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    msg = await said(alice, "helo")
    clock.now += 5
    ack = await answer(alice, Edit(id=msg, body="hello", cid="e1", ref="e"))
    assert ack["type"] == "ack" and ack["id"] > msg and ack["cid"] == "e1"
    [edited] = of_type(await bob.unread(), "edited")
    assert edited == {
        "type": "edited",
        "id": ack["id"],
        "target": msg,
        "from": "alice",
        "room": "lobby",
        "body": "hello",
        "ts": ack["ts"],
    }
    [shown] = await history(bob, room="lobby")
    assert (shown["id"], shown["body"], shown["edited"]) == (msg, "hello", ack["ts"])


async def test_only_the_sender_may_edit(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    msg = await said(alice, "mine")
    refused = await answer(bob, Edit(id=msg, body="yours now", ref="e"))
    assert (refused["code"], refused["reason"]) == ("forbidden", "not_sender")
    assert [m["body"] for m in await history(alice, room="lobby")] == ["mine"]
    assert of_type(await alice.unread(), "edited") == []


async def test_an_edit_at_the_end_of_the_window_passes_and_just_after_is_refused(
    harness: HubHarness, clock: Clock
) -> None:
    alice = await harness.login("alice")
    msg = await said(alice, "v1")
    clock.now += WINDOW
    assert (await answer(alice, Edit(id=msg, body="v2", ref="a")))["type"] == "ack"
    clock.now += 0.002
    refused = await answer(alice, Edit(id=msg, body="v3", ref="b"))
    assert (refused["code"], refused["reason"]) == ("forbidden", "edit_window")
    assert [m["body"] for m in await history(alice, room="lobby")] == ["v2"]


async def test_an_edit_with_a_bad_body_is_refused_and_changes_nothing(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    msg = await said(alice, "keep")
    for body in ["", "x" * 4001, "bell\x07"]:
        assert (await answer(alice, Edit(id=msg, body=body, ref="e")))["code"] == "bad_body"
    assert [m["body"] for m in await history(alice, room="lobby")] == ["keep"]


async def test_an_unknown_id_and_an_id_you_cannot_see_get_the_same_not_found(
    harness: HubHarness,
) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    cy = await harness.login("cy")
    await alice.send(Join(room="secret", ref="j"))
    hidden = await said(alice, "members only", room="secret")
    dm = await answer(alice, Dm(to="bob", body="just us", ref="d"))
    missing = await answer(cy, Edit(id=hidden + 1000, body="x", ref="1"))
    room = await answer(cy, React(id=hidden, emoji="👀", ref="2"))
    private = await answer(cy, Delete(id=dm["id"], ref="3"))
    assert {f["code"] for f in (missing, room, private)} == {"not_found"}
    # The same words, the id asked for aside: nothing tells "hidden" from "absent".
    assert room["message"].replace(str(hidden), "N") == missing["message"].replace(
        str(hidden + 1000), "N"
    )
    assert of_type(await bob.unread(), "reacted") == []


# -- delete --------------------------------------------------------------------------------------


async def test_a_deletion_erases_the_body_and_its_edits_and_a_resent_cid_does_not_bring_it_back(
    harness: HubHarness,
) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    msg = await said(alice, "oops secret", cid="c-1")
    await answer(alice, Edit(id=msg, body="still secret", ref="e"))
    ack = await answer(alice, Delete(id=msg, cid="d-1", ref="d"))
    assert ack["type"] == "ack"
    [deleted] = of_type(await bob.unread(), "deleted")
    assert (deleted["id"], deleted["target"], deleted["by"]) == (ack["id"], msg, "alice")
    [shown] = await history(bob, room="lobby")
    assert shown["deleted"] is True and "body" not in shown
    again = await answer(alice, Say(room="lobby", body="oops secret", cid="c-1", ref="again"))
    assert (again["type"], again["id"]) == ("ack", msg)
    assert of_type(await bob.unread(), "message") == []
    [shown] = await history(bob, room="lobby")
    assert shown["deleted"] is True
    stored = await harness.store.get_message(msg)
    assert stored is not None and stored.body == ""
    refused = await answer(alice, Edit(id=msg, body="back", ref="e2"))
    assert (refused["code"], refused["reason"]) == ("forbidden", "deleted")
    twice = await answer(alice, Delete(id=msg, ref="d2"))
    assert (twice["code"], twice["reason"]) == ("forbidden", "deleted")


async def test_only_the_sender_may_delete_for_now(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    msg = await said(alice, "mine")
    refused = await answer(bob, Delete(id=msg, ref="d"))
    assert (refused["code"], refused["reason"]) == ("forbidden", "not_sender")
    assert [m["body"] for m in await history(bob, room="lobby")] == ["mine"]


# -- react ---------------------------------------------------------------------------------------


async def test_reactions_toggle_one_per_person_and_emoji(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    cy = await harness.login("cy")
    msg = await said(alice, "vote")
    await answer(bob, React(id=msg, emoji="👍", ref="1"))
    await answer(bob, React(id=msg, emoji="👍", ref="2"))  # twice on: still one
    await answer(cy, React(id=msg, emoji="👍", ref="3"))
    await answer(cy, React(id=msg, emoji="🎉", ref="4"))
    got = of_type(await alice.unread(), "reacted")
    [shown] = await history(alice, room="lobby")
    assert shown["reactions"] == [
        {"emoji": "👍", "nicks": ["bob", "cy"]},
        {"emoji": "🎉", "nicks": ["cy"]},
    ]
    await answer(bob, React(id=msg, emoji="👍", on=False, ref="5"))
    got += of_type(await alice.unread(), "reacted")
    assert [(f["from"], f["emoji"], f["on"]) for f in got] == [
        ("bob", "👍", True),
        ("bob", "👍", True),
        ("cy", "👍", True),
        ("cy", "🎉", True),
        ("bob", "👍", False),
    ]
    [shown] = await history(alice, room="lobby")
    assert shown["reactions"] == [
        {"emoji": "👍", "nicks": ["cy"]},
        {"emoji": "🎉", "nicks": ["cy"]},
    ]


@pytest.mark.parametrize(
    "emoji",
    [
        "👍",
        "👍🏽",
        "👩\u200d💻",
        "🇫🇷",
        "❤\ufe0f",
        "e\u0301",
        "★",
        "1\ufe0f\u20e3",
        "x",
        "👍👍",
        "lol",
        "l😃l",
        "+1",
        "👨🏽\u200d👩\u200d👧\u200d👦\ufe0f",
        "x" * 32,  # reaction_max_length (ircmsg: a short text is a reaction too)
    ],
)
async def test_an_emoji_or_a_short_text_is_a_reaction(harness: HubHarness, emoji: str) -> None:
    alice = await harness.login("alice")
    msg = await said(alice, "react")
    assert (await answer(alice, React(id=msg, emoji=emoji, ref="r")))["type"] == "ack"
    [shown] = await history(alice, room="lobby")
    assert shown["reactions"] == [{"emoji": emoji, "nicks": ["alice"]}]


@pytest.mark.parametrize(
    "emoji",
    [
        "",
        " ",
        "a b",
        "ok\n",
        "\u0301",
        "👩\u200d",
        "\u200d👩",
        "\x07",
        "a\u200bb",  # a zero-width space: invisible
        "x" * 33,  # one over reaction_max_length
    ],
)
async def test_anything_else_is_a_bad_request(harness: HubHarness, emoji: str) -> None:
    alice = await harness.login("alice")
    msg = await said(alice, "react")
    assert (await answer(alice, React(id=msg, emoji=emoji, ref="r")))["code"] == "bad_request"
    [shown] = await history(alice, room="lobby")
    assert "reactions" not in shown


# -- reply_to ------------------------------------------------------------------------------------


async def test_a_reply_names_a_message_of_the_same_conversation(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    first = await said(alice, "question")
    await alice.send(Join(room="elsewhere", ref="j"))
    other = await said(alice, "elsewhere", room="elsewhere")
    answer_id = await said(alice, "answer", reply_to=first)
    [msg] = [m for m in of_type(await bob.unread(), "message") if m["id"] == answer_id]
    assert msg["reply_to"] == first
    wrong = await answer(alice, Say(room="lobby", body="x", reply_to=other, ref="w"))
    missing = await answer(alice, Say(room="lobby", body="x", reply_to=10**6, ref="m"))
    dm = await answer(alice, Dm(to="bob", body="x", reply_to=first, ref="d"))
    assert {f["code"] for f in (wrong, missing, dm)} == {"bad_request"}
    assert [m["body"] for m in await history(bob, room="lobby")] == ["question", "answer"]


# -- mentions ------------------------------------------------------------------------------------


async def test_mentions_name_only_people_who_may_see_the_message(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("Bob")
    cy = await harness.login("cy")
    await alice.send(Join(room="den", ref="j1"))
    await bob.send(Join(room="den", ref="j2"))
    await said(alice, "@BOB and @cy and @nobody, mail a@cy.org", room="den")
    [msg] = of_type(await bob.unread(), "message")
    assert msg["mentions"] == ["Bob"]  # cy is not in #den
    assert of_type(await cy.unread(), "message") == []


async def test_an_edit_tells_only_the_newly_mentioned_and_the_backlog_counts_mentions(
    harness: HubHarness,
) -> None:
    await harness.register("bob")
    alice = await harness.login("alice")
    cy = await harness.login("cy")
    await harness.login("dee")
    msg = await said(alice, "hi @cy")
    ack = await answer(alice, Edit(id=msg, body="hi @cy and @bob and @dee", ref="e"))
    [edited] = of_type(await cy.unread(), "edited")
    assert edited["mentions"] == ["bob", "dee"] and edited["id"] == ack["id"]
    bob = await harness.login("bob", password=PASSWORD)
    frames = await bob.unread()
    caught_up = frames[-1]
    assert caught_up["type"] == "caught_up"
    assert caught_up["mentions"] == 1  # the edit that newly mentioned bob
    assert caught_up["missed"] == 1  # one message; its edit follows it
    assert [f["type"] for f in frames[1:-1]] == ["message", "edited"]


# -- the event stream ----------------------------------------------------------------------------


async def test_a_device_away_gets_edits_deletions_and_reactions_of_older_messages_in_order(
    harness: HubHarness,
) -> None:
    await harness.register("bob")
    bob = await harness.login("bob", password=PASSWORD)
    alice = await harness.login("alice")
    old = await said(alice, "old one")
    gone = await said(alice, "to delete")
    await bob.unread()
    await bob.logout()  # clean: its cursor is past both messages
    await answer(alice, Edit(id=old, body="old one, edited", ref="e"))
    await answer(alice, React(id=old, emoji="👍", ref="r"))
    await answer(alice, Delete(id=gone, ref="d"))
    await said(alice, "new")
    bob = await harness.login("bob", password=PASSWORD)
    frames = await bob.unread()
    stream = frames[1:-1]
    assert [(f["type"], f.get("target"), f.get("replay")) for f in stream] == [
        ("edited", old, True),
        ("reacted", old, True),
        ("deleted", gone, True),
        ("message", None, True),
    ]
    assert [f["id"] for f in stream] == sorted(f["id"] for f in stream)
    assert frames[-1]["missed"] == 1


async def test_a_dm_reaction_reaches_both_parties_and_not_a_third(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    cy = await harness.login("cy")
    dm = await answer(alice, Dm(to="bob", body="psst", ref="d"))
    await answer(bob, React(id=dm["id"], emoji="👀", ref="r"))
    [to_alice] = of_type(await alice.unread(), "reacted")
    [to_bob] = of_type(await bob.unread(), "reacted")
    assert to_alice == to_bob
    assert (to_alice["from"], to_alice["to"]) == ("bob", "alice")
    assert of_type(await cy.unread(), "reacted") == []


async def test_a_room_left_takes_its_events_with_it(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    await alice.send(Join(room="den", ref="1"))
    await bob.send(Join(room="den", ref="2"))
    msg = await said(alice, "hello", room="den")
    await bob.send(Leave(room="den", ref="3"))
    await bob.unread()
    await answer(alice, Edit(id=msg, body="hello again", ref="e"))
    assert of_type(await bob.unread(), "edited") == []
    refused = await answer(bob, React(id=msg, emoji="👍", ref="r"))
    assert refused["code"] == "not_found"


async def test_refused_edits_cost_like_accepted_ones_and_a_resent_cid_is_free(
    tmp_path: Path, clock: Clock
) -> None:
    async with HubHarness.open(
        tmp_path, clock=clock, rate_burst=3, rate_per_second=0.001
    ) as harness:
        alice = await harness.login("alice")
        msg = await said(alice, "one")  # 1 of 3
        await answer(alice, Edit(id=msg, body="two", cid="e", ref="a"))  # 2 of 3
        again = await answer(alice, Edit(id=msg, body="two", cid="e", ref="b"))
        assert again["type"] == "ack"  # the resend is free
        missing = await answer(alice, Edit(id=msg + 99, body="x", ref="c"))  # 3 of 3
        assert missing["code"] == "not_found"
        over = await answer(alice, Edit(id=msg + 99, body="x", ref="d"))
        assert over["code"] == "rate_limited"


async def test_a_resent_message_with_a_mention_is_acked_even_over_budget(
    tmp_path: Path, clock: Clock
) -> None:
    async with HubHarness.open(
        tmp_path, clock=clock, rate_burst=1, rate_per_second=0.001
    ) as harness:
        alice = await harness.login("alice")
        first = await answer(alice, Say(room="lobby", body="hi @alice", cid="m", ref="1"))
        over = await answer(alice, Say(room="lobby", body="hi @alice", ref="2"))
        assert over["code"] == "rate_limited"
        again = await answer(alice, Say(room="lobby", body="hi @alice", cid="m", ref="3"))
        assert (again["type"], again["id"]) == ("ack", first["id"])
