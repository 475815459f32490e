"""The hub in-process: the login seam, accounts and cursors, presence.

Each test runs in milliseconds on `support.hub.HubHarness` and asserts on the
frames a client would get.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from support.hub import PASSWORD, Client, FakeOutlet, HubHarness

from chinwag.protocol.events import Dm, Join, Leave, Register, Say, Seen

Frames = list[dict[str, Any]]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[HubHarness]:
    # Two messages a page, so that a backlog of a few is read in several pages.
    async with HubHarness.open(tmp_path, backlog_page=2) as h:
        yield h


async def post(client: Client, body: str, room: str = "lobby") -> int:
    """Say ``body`` (it is also the ref); the id of its ack."""
    await client.send(Say(room=room, body=body, ref=body))
    ack = await client.next("ack")
    assert ack["ref"] == body, ack
    return int(ack["id"])


def bodies(frames: Frames) -> list[str]:
    return [f["body"] for f in frames if f["type"] == "message"]


def split_at_caught_up(frames: Frames) -> tuple[Frames, dict[str, Any], Frames]:
    """(frames before caught_up, caught_up, frames after it); exactly one caught_up."""
    [at] = [i for i, f in enumerate(frames) if f["type"] == "caught_up"]
    return frames[:at], frames[at], frames[at + 1 :]


def presence(frames: Frames) -> list[tuple[str, str, str]]:
    return [(f["room"], f["nick"], f["event"]) for f in frames if f["type"] == "presence"]


# -- the seam between backlog and live traffic ----------------------------------------------


def _at_welcome(frame: dict[str, Any]) -> bool:
    return bool(frame["type"] == "welcome")


def _at_second_page(frame: dict[str, Any]) -> bool:
    return frame.get("body") == "m3"


@pytest.mark.parametrize(
    ("held_at", "in_backlog"),
    [
        pytest.param(_at_welcome, True, id="before-the-backlog-is-read"),
        pytest.param(_at_second_page, False, id="between-backlog-pages"),
    ],
)
async def test_a_message_posted_during_the_backlog_arrives_once_in_id_order(
    harness: HubHarness, held_at: Callable[[dict[str, Any]], bool], in_backlog: bool
) -> None:
    """Posted while bob's login is paused: in the backlog if it was read after the
    post, else right after caught_up; never twice, never out of order."""
    await harness.register("bob")
    alice = await harness.login("alice")
    for n in range(1, 6):
        await post(alice, f"m{n}")
    outlet = FakeOutlet()
    outlet.hold(held_at)
    login = asyncio.create_task(harness.login("bob", password=PASSWORD, outlet=outlet))
    await outlet.wait_held()
    await post(alice, "during")
    await harness.settle()  # fanned out while bob is still catching up
    outlet.release()
    bob = await login
    await post(alice, "later")
    await bob.unread()

    backlog, caught_up, live = split_at_caught_up(bob.frames)
    assert backlog[0]["type"] == "welcome"
    assert all(f["type"] == "message" and f["replay"] for f in backlog[1:])
    ids = [f["id"] for f in bob.frames if f["type"] == "message"]
    assert ids == sorted(set(ids))
    if in_backlog:
        assert bodies(backlog) == ["m1", "m2", "m3", "m4", "m5", "during"]
        assert bodies(live) == ["later"]
    else:
        assert bodies(backlog) == ["m1", "m2", "m3", "m4", "m5"]
        assert bodies(live) == ["during", "later"]
        assert "replay" not in live[0]
    assert caught_up["missed"] == len(backlog) - 1
    assert caught_up["rooms"] == {"lobby": len(backlog) - 1}


async def test_a_guest_gets_welcome_then_caught_up_with_nothing_missed(
    harness: HubHarness,
) -> None:
    alice = await harness.login("Alice")
    welcome, caught_up = await alice.unread()
    assert welcome["type"] == "welcome"
    assert (welcome["nick"], welcome["account"], welcome["rooms"]) == ("Alice", False, ["lobby"])
    assert caught_up == {
        "type": "caught_up",
        "missed": 0,
        "rooms": {},
        "dms": {},
        "truncated": False,
        "mentions": 0,
        "unread": {},
    }


# -- registration and the offline cursor -------------------------------------------------------


async def test_registering_keeps_what_the_guest_saw_out_of_its_next_backlog(
    harness: HubHarness,
) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    await post(bob, "seen as a guest 1")
    await bob.send(Dm(to="alice", body="seen as a guest 2", ref="dm"))
    assert (await bob.next("ack"))["ref"] == "dm"
    await alice.send(Register(password=PASSWORD, ref="reg"))
    assert await alice.next("ok") == {"type": "ok", "ref": "reg"}
    await alice.logout(clean=False)  # no bye: only the cursor set at register counts
    await post(bob, "while away")
    await bob.send(Dm(to="alice", body="while away too", ref="dm2"))
    assert (await bob.next("ack"))["ref"] == "dm2"

    again = await harness.login("alice", password=PASSWORD)
    backlog, caught_up, _ = split_at_caught_up(await again.unread())
    assert backlog[0]["account"] is True
    assert bodies(backlog) == ["while away", "while away too"]
    assert (caught_up["missed"], caught_up["dms"]) == (2, {"bob": 1})


async def test_after_registering_the_nick_is_refused_to_guests_and_wrong_passwords(
    harness: HubHarness,
) -> None:
    await harness.register("alice")
    for nick in ("alice", "ALICE"):
        refused = await harness.refused(nick)
        assert (refused["type"], refused["code"]) == ("error", "password_required")
    assert (await harness.refused("alice", password="not the password"))["code"] == "bad_password"
    welcome = await (await harness.login("alice", password=PASSWORD)).next()
    assert welcome["type"] == "welcome" and welcome["account"] is True


async def test_a_registered_guest_keeps_its_rooms(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    await alice.send(Join(room="games", ref="j"))
    await alice.send(Register(password=PASSWORD, ref="reg"))
    await alice.logout()
    bob = await harness.login("bob")
    await bob.send(Join(room="games"))
    await post(bob, "for the games room", room="games")

    again = await harness.login("alice", password=PASSWORD)
    backlog, _, _ = split_at_caught_up(await again.unread())
    assert backlog[0]["rooms"] == ["games", "lobby"]
    assert [(f["room"], f["body"]) for f in backlog[1:]] == [("games", "for the games room")]


async def test_seen_moves_the_cursor_and_an_unclean_end_replays_the_rest(
    harness: HubHarness,
) -> None:
    """Delivery is at least once: what a device did not confirm comes again."""
    await harness.register("alice")
    bob = await harness.login("bob")
    alice = await harness.login("alice", password=PASSWORD)
    first = await post(bob, "confirmed")
    await post(bob, "not confirmed")
    await alice.unread()
    await alice.send(Seen(upto=first))
    await alice.logout(clean=False)

    again = await harness.login("alice", password=PASSWORD)
    backlog, _, _ = split_at_caught_up(await again.unread())
    assert bodies(backlog) == ["not confirmed"]


async def test_a_clean_logout_moves_the_cursor_to_what_was_delivered(
    harness: HubHarness,
) -> None:
    await harness.register("alice")
    bob = await harness.login("bob")
    alice = await harness.login("alice", password=PASSWORD)
    await post(bob, "delivered")
    await alice.unread()
    await alice.logout(clean=True)
    await post(bob, "after the bye")

    again = await harness.login("alice", password=PASSWORD)
    backlog, _, _ = split_at_caught_up(await again.unread())
    assert bodies(backlog) == ["after the bye"]


async def test_each_device_catches_up_on_its_own(harness: HubHarness) -> None:
    await harness.register("alice")
    bob = await harness.login("bob")
    phone = await harness.login("alice", password=PASSWORD, device="phone")
    await phone.logout()
    await post(bob, "while both were off")
    desktop = await harness.login("alice", password=PASSWORD, device="desktop")
    await desktop.unread()
    await desktop.logout()

    phone = await harness.login("alice", password=PASSWORD, device="phone")
    backlog, _, _ = split_at_caught_up(await phone.unread())
    assert bodies(backlog) == ["while both were off"]
    # A device never used before starts where the account's others are.
    tablet = await harness.login("alice", password=PASSWORD, device="tablet")
    backlog, _, _ = split_at_caught_up(await tablet.unread())
    assert bodies(backlog) == []


# -- presence ------------------------------------------------------------------------------------


async def test_others_see_a_guest_arrive_and_leave_the_lobby(harness: HubHarness) -> None:
    bob = await harness.login("bob")
    await bob.unread()
    alice = await harness.login("alice")
    assert presence(await bob.unread()) == [("lobby", "alice", "join")]
    assert presence(await alice.unread()) == []  # not told of its own arrival
    await alice.logout()
    assert presence(await bob.unread()) == [("lobby", "alice", "leave")]


async def test_joining_and_leaving_a_room_is_announced_to_its_members(
    harness: HubHarness,
) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    await bob.send(Join(room="Games", ref="j1"))
    await alice.send(Join(room="games", ref="j2"))
    await alice.send(Join(room="games", ref="j3"))  # already in: ok, no presence
    await alice.send(Leave(room="games", ref="l"))
    await alice.send(Leave(room="lobby", ref="lobby"))

    alice_got = await alice.unread()
    assert presence(alice_got) == [("lobby", "bob", "join")]  # never its own
    replies = [f for f in alice_got if "ref" in f]
    assert replies[:3] == [
        {"type": "ok", "ref": "j2"},
        {"type": "ok", "ref": "j3"},
        {"type": "ok", "ref": "l"},
    ]
    assert (replies[3]["code"], replies[3]["ref"]) == ("forbidden", "lobby")
    seen_by_bob = presence(await bob.unread())
    assert seen_by_bob[-2:] == [("games", "alice", "join"), ("games", "alice", "leave")]


async def test_an_accounts_second_device_is_no_news_and_its_last_logout_is(
    harness: HubHarness,
) -> None:
    await harness.register("alice")
    bob = await harness.login("bob")
    phone = await harness.login("alice", password=PASSWORD, device="phone")
    desktop = await harness.login("alice", password=PASSWORD, device="desktop")
    assert presence(await bob.unread()) == [("lobby", "alice", "join")]
    await phone.logout()
    assert presence(await bob.unread()) == []
    await desktop.logout()
    assert presence(await bob.unread()) == [("lobby", "alice", "leave")]


async def test_a_guest_nick_is_held_only_while_its_session_is_online(
    harness: HubHarness,
) -> None:
    alice = await harness.login("alice")
    assert (await harness.refused("Alice"))["code"] == "nick_taken"
    await alice.logout()
    welcome = await (await harness.login("Alice")).next()
    assert (welcome["type"], welcome["nick"]) == ("welcome", "Alice")


async def test_the_operator_ending_an_account_closes_each_of_its_sessions(
    harness: HubHarness,
) -> None:
    await harness.register("alice")
    phone = await harness.login("alice", password=PASSWORD, device="phone")
    desktop = await harness.login("alice", password=PASSWORD, device="desktop")
    bob = await harness.login("bob")
    assert harness.hub.end_sessions("alice", "deleted", "your account was deleted") == 2
    for client in (phone, desktop):
        ended = await client.next("error")
        assert (ended["code"], ended["reason"]) == ("session_ended", "deleted")
        assert ended["message"] == "your account was deleted"
        assert client.outlet.closed is not None
    assert bob.outlet.closed is None
    assert [f for f in await bob.unread() if f["type"] == "error"] == []
