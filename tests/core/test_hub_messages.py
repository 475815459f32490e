"""The hub in-process: pipelined replies, resent cids, DMs (milliseconds each).

Each test runs on `support.hub.HubHarness` and asserts on the frames a client
would get.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.hub import PASSWORD, Client, HubHarness

from chinwag.errors import ChatError, NotMember
from chinwag.protocol.events import Command, Dm, History, Join, Say, Typing, Who

Frames = list[dict[str, Any]]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with HubHarness.open(tmp_path, offline_quota=2) as h:
        yield h


def messages(frames: Frames) -> Frames:
    return [f for f in frames if f["type"] == "message"]


def replies(frames: Frames) -> Frames:
    """The frames that answer a request (they carry its ref)."""
    return [f for f in frames if "ref" in f]


def backlog(frames: Frames) -> tuple[Frames, dict[str, Any]]:
    """(the replayed messages, caught_up) of a login's frames."""
    [at] = [i for i, f in enumerate(frames) if f["type"] == "caught_up"]
    assert frames[0]["type"] == "welcome"
    return frames[1:at], frames[at]


async def send_in_order(client: Client, commands: list[Command]) -> None:
    """Send as a connection does: says and DMs pipelined while ``pipeline`` takes
    them; anything else (a refusal too) runs once those in flight are acked."""
    in_flight: list[asyncio.Future[Any]] = []
    for cmd in commands:
        try:
            future = client.pipeline(cmd)
        except ChatError:
            future = None
        if future is not None:
            in_flight.append(future)
            continue
        async with asyncio.timeout(2):
            await asyncio.gather(*in_flight)
        in_flight.clear()
        await client.send(cmd)
    async with asyncio.timeout(2):
        await asyncio.gather(*in_flight)


# -- pipelining ------------------------------------------------------------------------------------


async def test_pipelined_says_are_answered_in_request_order_with_the_refusal_in_its_place(
    harness: HubHarness,
) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    await send_in_order(
        alice,
        [
            Say(room="lobby", body="one", ref="1"),
            Say(room="lobby", body="two", ref="2"),
            Say(room="nowhere", body="refused", ref="3"),
            Say(room="lobby", body="three", ref="4"),
            Who(room="lobby", ref="5"),
        ],
    )
    got = replies(await alice.unread())
    assert [(f["type"], f["ref"]) for f in got] == [
        ("ack", "1"),
        ("ack", "2"),
        ("error", "3"),
        ("ack", "4"),
        ("who", "5"),
    ]
    assert got[2]["code"] == "not_member"
    assert got[0]["id"] < got[1]["id"] < got[3]["id"]
    assert [f["body"] for f in messages(await bob.unread())] == ["one", "two", "three"]


async def test_a_refused_pipelined_say_raises_and_nothing_is_stored_or_sent(
    harness: HubHarness,
) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    await bob.unread()
    with pytest.raises(NotMember):
        alice.pipeline(Say(room="games", body="not a member", cid="c-1"))
    await alice.send(History(room="lobby", ref="h"))
    assert (await alice.next("history"))["messages"] == []
    assert await bob.unread() == []


async def test_pipelined_copies_reach_others_in_id_order(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    await send_in_order(alice, [Say(room="lobby", body=f"m{n}") for n in range(10)])
    got = messages(await bob.unread())
    assert [f["body"] for f in got] == [f"m{n}" for n in range(10)]
    assert [f["id"] for f in got] == sorted(f["id"] for f in got)
    assert all("cid" not in f for f in got)


# -- resending a cid -----------------------------------------------------------------------------


async def test_a_resent_cid_gets_the_same_ack_and_no_second_message(
    harness: HubHarness,
) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    await alice.send(Say(room="lobby", body="hello", cid="c-1", ref="a"))
    first = await alice.next("ack")
    # A resend is not pipelined: the hub answers it from what it remembers.
    assert alice.pipeline(Say(room="lobby", body="hello again", cid="c-1", ref="b")) is None
    await alice.send(Say(room="lobby", body="hello again", cid="c-1", ref="b"))
    second = await alice.next("ack")
    assert first == {**second, "ref": "a"}
    assert first["cid"] == "c-1"
    assert [f["body"] for f in messages(await bob.unread())] == ["hello"]
    own = messages(await alice.unread())
    assert [(f["body"], f["cid"]) for f in own] == [("hello", "c-1")]


async def test_an_account_resending_from_another_device_is_deduplicated(
    harness: HubHarness,
) -> None:
    await harness.register("alice")
    phone = await harness.login("alice", password=PASSWORD, device="phone")
    await phone.send(Dm(to="alice", body="note to self", cid="c-9", ref="p"))
    first = await phone.next("ack")
    desktop = await harness.login("alice", password=PASSWORD, device="desktop")
    await desktop.send(Dm(to="alice", body="note to self", cid="c-9", ref="d"))
    assert await desktop.next("ack") == {**first, "ref": "d"}
    await desktop.send(History(with_="alice", ref="h"))
    assert [m["body"] for m in (await desktop.next("history"))["messages"]] == ["note to self"]


async def test_a_later_guest_with_the_same_nick_and_cid_posts_a_new_message(
    harness: HubHarness,
) -> None:
    bob = await harness.login("bob")
    alice = await harness.login("alice")
    await alice.send(Say(room="lobby", body="first holder", cid="c-1"))
    first = await alice.next("ack")
    await alice.logout()
    again = await harness.login("alice")
    await again.send(Say(room="lobby", body="second holder", cid="c-1"))
    assert (await again.next("ack"))["id"] > first["id"]
    assert [f["body"] for f in messages(await bob.unread())] == ["first holder", "second holder"]


# -- direct messages -----------------------------------------------------------------------------


async def test_dms_to_an_offline_account_are_stored_and_replayed_at_its_login(
    harness: HubHarness,
) -> None:
    await harness.register("bob")
    alice = await harness.login("alice")
    await alice.send(Dm(to="BOB", body="are you there?", cid="d-1", ref="1"))
    await alice.send(Dm(to="bob", body="call me", ref="2"))
    acks = replies(await alice.unread())
    assert [(f["type"], f["ref"]) for f in acks] == [("ack", "1"), ("ack", "2")]
    own = messages(alice.frames)
    assert [(f["to"], f["body"], f.get("cid")) for f in own] == [
        ("bob", "are you there?", "d-1"),
        ("bob", "call me", None),
    ]

    bob = await harness.login("bob", password=PASSWORD)
    replayed, caught_up = backlog(await bob.unread())
    assert [(f["from"], f["to"], f["body"], f["replay"]) for f in replayed] == [
        ("alice", "bob", "are you there?", True),
        ("alice", "bob", "call me", True),
    ]
    assert [f["id"] for f in replayed] == [f["id"] for f in acks]
    assert all("cid" not in f for f in replayed)  # the cid is the sender's
    assert (caught_up["missed"], caught_up["dms"]) == (2, {"alice": 2})


async def test_an_offline_accounts_quota_refuses_the_next_dm_and_stores_nothing(
    harness: HubHarness,
) -> None:
    await harness.register("bob")
    alice = await harness.login("alice")
    for n in range(3):
        await alice.send(Dm(to="bob", body=f"dm {n}", ref=str(n)))
    got = replies(await alice.unread())
    assert [f["type"] for f in got] == ["ack", "ack", "error"]
    assert got[2]["code"] == "quota_exceeded"

    bob = await harness.login("bob", password=PASSWORD)
    replayed, _ = backlog(await bob.unread())
    assert [f["body"] for f in replayed] == ["dm 0", "dm 1"]


async def test_a_dm_to_nobody_is_refused(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    await alice.send(Dm(to="ghost", body="hello?", ref="x"))
    error = await alice.next("error")
    assert (error["code"], error["ref"]) == ("no_such_user", "x")
    assert messages(await alice.unread()) == []


async def test_a_live_dm_reaches_both_parties_and_nobody_else(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    carol = await harness.login("carol")
    await alice.send(Join(room="games"))
    await alice.send(Dm(to="Bob", body="psst", cid="c-2"))
    [to_bob] = messages(await bob.unread())
    [own] = messages(await alice.unread())
    assert (to_bob["from"], to_bob["to"], to_bob["body"]) == ("alice", "bob", "psst")
    assert "cid" not in to_bob and own["cid"] == "c-2"
    assert messages(await carol.unread()) == []


async def test_typing_reaches_the_other_members_only_and_is_never_stored(
    harness: HubHarness,
) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    carol = await harness.login("carol")
    await carol.send(Join(room="games"))
    await alice.unread()
    await bob.unread()
    await alice.send(Typing(room="lobby"))
    await alice.send(Typing(to="carol"))
    assert [f for f in await bob.unread() if f["type"] == "typing"] == [
        {"type": "typing", "from": "alice", "room": "lobby"}
    ]
    assert [f for f in await carol.unread() if f["type"] == "typing"] == [
        {"type": "typing", "from": "alice", "room": "lobby"},
        {"type": "typing", "from": "alice", "to": "carol"},
    ]
    assert await alice.unread() == []  # no reply, no echo
    await bob.send(History(room="lobby", ref="h"))
    assert (await bob.next("history"))["messages"] == []
