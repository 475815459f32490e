"""Moderation in-process (issue 16, protocol §8): every right both ways, private rooms,
bans, mutes, announce rooms, server bans, a moderator's delete, the audit log.

The refusals come first: nothing here may let anyone read or do what they could
not before. Each test runs on `support.hub.HubHarness` (a real SQLite file, the
hub's clock injected) and asserts on the frames a client would get.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.hub import PASSWORD, Client, HubHarness

from chinwag.bus.base import Moderated, Resync
from chinwag.core.moderation import SERVER
from chinwag.protocol.events import (
    Command,
    Delete,
    Edit,
    Grant,
    History,
    Invite,
    Join,
    ListRooms,
    Moderate,
    Register,
    RoomSet,
    Say,
    Who,
)

Frames = list[dict[str, Any]]

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z
HOUR_MS = 3_600_000


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
    async with HubHarness.open(
        tmp_path, clock=clock, topic_max=20, moderation_reason_max=10, room_standings_max=3
    ) as h:
        yield h


def of_type(frames: Frames, kind: str) -> Frames:
    return [f for f in frames if f["type"] == kind]


async def answer(client: Client, cmd: Command) -> dict[str, Any]:
    """The direct reply (ok, ack, error or the result frame) to ``cmd``, which has ``ref``."""
    await client.send(cmd)
    while True:
        frame = await client.next()
        if frame.get("ref") == cmd.ref:
            return frame


async def account(harness: HubHarness, nick: str, device: str = "default") -> Client:
    """``nick`` as an account (registered on first use), logged in."""
    if await harness.store.get_account(nick) is None:
        await harness.register(nick)
    return await harness.login(nick, password=PASSWORD, device=device)


async def admin(harness: HubHarness, nick: str) -> None:
    """Make ``nick`` (an account) a server admin, as ``chinwag admin grant`` does."""
    await harness.hub.moderation.set_role(SERVER, f"a:{nick}", nick, "admin", "operator")


async def room_of(owner: Client, *members: Client, room: str = "games") -> None:
    """``owner`` makes ``room`` (so owns it), then ``members`` join it."""
    for client in (owner, *members):
        assert (await answer(client, Join(room=room, ref="j")))["type"] == "ok"


async def said(client: Client, body: str, room: str = "games") -> dict[str, Any]:
    return await answer(client, Say(room=room, body=body, ref="s"))


def refused(frame: dict[str, Any], code: str, reason: str | None = None) -> bool:
    return (
        frame["type"] == "error"
        and frame["code"] == code
        and (reason is None or frame.get("reason") == reason)
    )


# -- the refusals first ------------------------------------------------------------------------


async def test_a_member_can_kick_ban_mute_grant_invite_or_set_nothing(harness: HubHarness) -> None:
    owner = await account(harness, "olga")
    mallory = await account(harness, "mallory")
    bob = await account(harness, "bob")
    await room_of(owner, mallory, bob)
    for cmd in (
        Moderate(action="kick", room="games", nick="bob", ref="x"),
        Moderate(action="ban", room="games", nick="bob", ref="x"),
        Moderate(action="mute", room="games", nick="bob", ref="x"),
        Grant(room="games", nick="bob", role="mod", ref="x"),
        Grant(room="games", nick="mallory", role="mod", ref="x"),
        Invite(room="games", nick="carol", ref="x"),
        RoomSet(room="games", topic="mine now", ref="x"),
        RoomSet(room="games", private=True, ref="x"),
    ):
        assert refused(await answer(mallory, cmd), "forbidden", "not_allowed"), cmd
    # Server-wide actions are an admin's.
    for cmd in (
        Moderate(action="ban", nick="bob", ref="x"),
        Moderate(action="kick", nick="bob", ref="x"),
        Grant(nick="mallory", role="admin", ref="x"),
    ):
        assert refused(await answer(mallory, cmd), "forbidden", "not_admin"), cmd
    # Nothing changed: bob is still in the room and speaks, nobody was told anything.
    assert (await said(bob, "still here"))["type"] == "ack"
    frames = await bob.unread()
    assert not [f for f in of_type(frames, "presence") if f["event"] != "join"]
    assert of_type(frames, "room_info") == []
    assert await harness.store.audit_log(room=None, since_ms=None, limit=10) == []


async def test_a_mod_cannot_grant_nor_act_on_the_owner_or_another_mod(harness: HubHarness) -> None:
    owner = await account(harness, "olga")
    mod = await account(harness, "mona")
    mod2 = await account(harness, "mick")
    await room_of(owner, mod, mod2)
    for nick in ("mona", "mick"):
        assert (await answer(owner, Grant(room="games", nick=nick, role="mod", ref="g")))[
            "type"
        ] == "ok"
    bob = await account(harness, "bob")
    await room_of(bob, room="games")
    assert refused(
        await answer(mod, Grant(room="games", nick="bob", role="mod", ref="g")),
        "forbidden",
        "not_allowed",
    )
    assert refused(
        await answer(mod, RoomSet(room="games", announce=True, ref="r")), "forbidden", "not_allowed"
    )
    for target in ("olga", "mick"):
        assert refused(
            await answer(mod, Moderate(action="kick", room="games", nick=target, ref="k")),
            "forbidden",
            "rank",
        )
    # What a mod may do: the topic, and kick a member.
    assert (await answer(mod, RoomSet(room="games", topic="chess", ref="t")))["type"] == "ok"
    assert (await answer(mod, Moderate(action="kick", room="games", nick="bob", ref="k")))[
        "type"
    ] == "ok"


async def test_a_private_room_never_reaches_a_non_member(harness: HubHarness) -> None:
    owner = await account(harness, "olga")
    eve = await account(harness, "eve")
    await room_of(owner, room="secret")
    assert (await answer(owner, RoomSet(room="secret", private=True, ref="p")))["type"] == "ok"
    await said(owner, "the plan", room="secret")
    no = await answer(eve, Join(room="secret", ref="j"))
    assert refused(no, "forbidden", "private")
    assert "invite" in no["message"]
    for cmd in (
        History(room="secret", ref="h"),
        Who(room="secret", ref="w"),
        Say(room="secret", body="let me in", ref="s"),
    ):
        assert refused(await answer(eve, cmd), "not_member"), cmd
    rooms = await answer(eve, ListRooms(ref="l"))
    assert "secret" not in [r["name"] for r in rooms["rooms"]]
    await said(owner, "more plans", room="secret")
    seen = await eve.unread()
    assert not [f for f in seen if f.get("room") == "secret" and f["type"] != "error"], seen
    assert "the plan" not in str(seen) and "more plans" not in str(seen)
    # The owner still lists it; an invite lets eve in once, with room_info.
    assert "secret" in [r["name"] for r in (await answer(owner, ListRooms(ref="l")))["rooms"]]
    assert (await answer(owner, Invite(room="secret", nick="eve", ref="i")))["type"] == "ok"
    assert (await answer(eve, Join(room="secret", ref="j")))["type"] == "ok"
    info = await eve.next("room_info")
    assert info == {
        "type": "room_info",
        "room": "secret",
        "topic": "",
        "private": True,
        "announce": False,
        "by": None,
        "role": "member",
        "created": info["created"],  # issue 19 (ircwho): when the room was made
    }
    assert info["created"].endswith("Z")


async def test_an_invite_is_used_once_and_a_guest_is_invited_by_its_session(
    harness: HubHarness,
) -> None:
    owner = await account(harness, "olga")
    guest = await harness.login("gus")
    await room_of(owner, room="secret")
    await answer(owner, RoomSet(room="secret", private=True, ref="p"))
    assert (await answer(owner, Invite(room="secret", nick="gus", ref="i")))["type"] == "ok"
    invited = await guest.next("presence")
    assert (invited["event"], invited["room"], invited["by"]) == ("invite", "secret", "olga")
    await room_of(guest, room="secret")
    assert (await answer(owner, Moderate(action="kick", room="secret", nick="gus", ref="k")))[
        "type"
    ] == "ok"
    assert refused(await answer(guest, Join(room="secret", ref="j")), "forbidden", "private")


async def test_a_banned_account_cannot_join_until_its_ban_ends_by_itself(
    harness: HubHarness, clock: Clock
) -> None:
    owner = await account(harness, "olga")
    bob = await account(harness, "bob")
    await room_of(owner, bob)
    until = int(clock.now * 1000) + HOUR_MS
    ban = Moderate(action="ban", room="games", nick="bob", until_ms=until, reason="spam", ref="b")
    assert (await answer(owner, ban))["type"] == "ok"
    told = [f for f in of_type(await bob.unread(), "presence") if f["event"] == "ban"]
    assert told == [
        {
            "type": "presence",
            "room": "games",
            "nick": "bob",
            "event": "ban",
            "by": "olga",
            "reason": "spam",
            "until": "2027-01-15T09:00:00.000Z",
        }
    ]
    assert refused(await said(bob, "hello?"), "not_member")
    assert refused(await answer(bob, History(room="games", ref="h")), "not_member")
    no = await answer(bob, Join(room="games", ref="j"))
    assert refused(no, "forbidden", "banned") and no["until"] == "2027-01-15T09:00:00.000Z"
    assert "09:00" in no["message"]
    # Another device of the account is refused too (the ban is the account's).
    phone = await harness.login("bob", password=PASSWORD, device="phone")
    assert refused(await answer(phone, Join(room="games", ref="j")), "forbidden", "banned")
    clock.now += 3600.001
    assert (await answer(bob, Join(room="games", ref="j")))["type"] == "ok"


async def test_a_muted_member_is_forbidden_to_say_with_its_end_in_plain_words(
    harness: HubHarness, clock: Clock
) -> None:
    owner = await account(harness, "olga")
    bob = await account(harness, "bob")
    await room_of(owner, bob)
    until = int(clock.now * 1000) + 2 * HOUR_MS
    mute = Moderate(action="mute", room="games", nick="bob", until_ms=until, ref="m")
    assert (await answer(owner, mute))["type"] == "ok"
    no = await said(bob, "but")
    assert refused(no, "forbidden", "muted")
    assert no["message"] == "you are muted in #games until 2027-01-15 10:00 UTC"
    assert no["until"] == "2027-01-15T10:00:00.000Z"
    with pytest.raises(Exception) as pipelined:
        bob.pipeline(Say(room="games", body="pipelined", ref="p"))
    assert getattr(pipelined.value, "code", None) == "forbidden"
    assert [
        m["body"] for m in (await answer(owner, History(room="games", ref="h")))["messages"]
    ] == []
    # Elsewhere bob still speaks; here again once the mute ends by itself.
    assert (await said(bob, "hi", room="lobby"))["type"] == "ack"
    clock.now += 7200.001
    assert (await said(bob, "back"))["type"] == "ack"


async def test_unmute_lifts_it_and_members_see_who_did_what(harness: HubHarness) -> None:
    owner = await account(harness, "olga")
    bob = await account(harness, "bob")
    carol = await account(harness, "carol")
    await room_of(owner, bob, carol)
    await answer(owner, Moderate(action="mute", room="games", nick="bob", reason="calm", ref="m"))
    assert refused(await said(bob, "x"), "forbidden", "muted")
    assert (await answer(owner, Moderate(action="unmute", room="games", nick="bob", ref="u")))[
        "type"
    ] == "ok"
    assert (await said(bob, "thanks"))["type"] == "ack"
    events = [
        (f["event"], f["nick"], f.get("by"), f.get("reason"))
        for f in of_type(await carol.unread(), "presence")
        if f["event"] not in ("join", "leave")
    ]
    assert events == [("mute", "bob", "olga", "calm"), ("unmute", "bob", "olga", "")]
    assert refused(
        await answer(owner, Moderate(action="unmute", room="games", nick="bob", ref="u")),
        "bad_request",
    )


async def test_only_the_owner_and_mods_speak_in_an_announce_room(harness: HubHarness) -> None:
    owner = await account(harness, "olga")
    mod = await account(harness, "mona")
    bob = await account(harness, "bob")
    await room_of(owner, mod, bob, room="news")
    await answer(owner, Grant(room="news", nick="mona", role="mod", ref="g"))
    assert (await answer(owner, RoomSet(room="news", announce=True, topic="news", ref="a")))[
        "type"
    ] == "ok"
    info = [f for f in of_type(await bob.unread(), "room_info")]
    assert info[-1]["announce"] is True and info[-1]["by"] == "olga"
    assert refused(await said(bob, "me too", room="news"), "forbidden", "announce")
    assert (await said(mod, "update", room="news"))["type"] == "ack"
    assert (await said(owner, "more", room="news"))["type"] == "ack"


async def test_a_kick_tells_the_members_and_ends_the_membership(harness: HubHarness) -> None:
    owner = await account(harness, "olga")
    bob = await account(harness, "bob")
    carol = await account(harness, "carol")
    await room_of(owner, bob, carol)
    kick = Moderate(action="kick", room="games", nick="bob", reason="rude", ref="k")
    assert (await answer(owner, kick))["type"] == "ok"
    for client in (bob, carol):
        [told] = [f for f in of_type(await client.unread(), "presence") if f["event"] == "kick"]
        assert (told["nick"], told["by"], told["reason"]) == ("bob", "olga", "rude")
    assert refused(await said(bob, "hey"), "not_member")
    assert "games" not in await harness.store.rooms_of("a:bob")
    await said(owner, "after the kick")
    assert "after the kick" not in str(await bob.unread())
    # A kicked member may come back (unlike a banned one).
    assert (await answer(bob, Join(room="games", ref="j")))["type"] == "ok"


async def test_an_admin_can_do_all_anywhere(harness: HubHarness) -> None:
    owner = await account(harness, "olga")
    bob = await account(harness, "bob")
    ada = await account(harness, "ada")
    await admin(harness, "ada")
    await room_of(owner, bob)
    assert (await answer(ada, RoomSet(room="games", private=True, ref="r")))["type"] == "ok"
    assert (await answer(ada, Grant(room="games", nick="bob", role="mod", ref="g")))["type"] == "ok"
    assert (await answer(ada, Moderate(action="mute", room="games", nick="olga", ref="m")))[
        "type"
    ] == "ok"
    assert refused(await said(owner, "x"), "forbidden", "muted")
    # Admins join private rooms without an invite, and see them listed.
    assert (await answer(ada, Join(room="games", ref="j")))["type"] == "ok"
    assert (await ada.next("room_info"))["role"] == "admin"
    # The lobby belongs to the admins.
    assert (await answer(ada, RoomSet(room="lobby", topic="welcome", ref="t")))["type"] == "ok"
    assert refused(await answer(owner, RoomSet(room="lobby", topic="mine", ref="t")), "forbidden")
    # Everyone stays in the lobby: no kick or ban there (a server ban instead).
    assert refused(
        await answer(ada, Moderate(action="kick", room="lobby", nick="bob", ref="k")),
        "forbidden",
        "lobby",
    )
    assert (await answer(ada, Grant(nick="bob", role="admin", ref="a")))["type"] == "ok"
    assert harness.hub.moderation.is_admin("a:bob")


async def test_a_server_ban_ends_every_session_at_once_and_refuses_hello_until_it_ends(
    harness: HubHarness, clock: Clock
) -> None:
    ada = await account(harness, "ada")
    await admin(harness, "ada")
    desk = await account(harness, "bob")
    phone = await harness.login("bob", password=PASSWORD, device="phone")
    until = int(clock.now * 1000) + HOUR_MS
    ban = Moderate(action="ban", nick="bob", until_ms=until, reason="abuse", ref="b")
    assert (await answer(ada, ban))["type"] == "ok"
    for client in (desk, phone):
        assert client.frames[-1] == {"type": "bye", "reason": "banned"}
        assert client.outlet.closed is not None
    error = await harness.refused("bob", password=PASSWORD)
    assert (error["code"], error["until"]) == ("banned", "2027-01-15T09:00:00.000Z")
    assert "09:00" in error["message"] and "abuse" in error["message"]
    clock.now += 3600.001
    back = await harness.login("bob", password=PASSWORD)
    assert back.frames[0]["type"] == "welcome"
    assert "moderation" in back.frames[0]["features"]


async def test_a_server_unban_lets_the_account_back(harness: HubHarness) -> None:
    ada = await account(harness, "ada")
    await admin(harness, "ada")
    await account(harness, "bob")
    assert (await answer(ada, Moderate(action="ban", nick="bob", ref="b")))["type"] == "ok"
    assert (await harness.refused("bob", password=PASSWORD))["until"] is None
    assert (await answer(ada, Moderate(action="unban", nick="bob", ref="u")))["type"] == "ok"
    assert (await harness.login("bob", password=PASSWORD)).frames[0]["type"] == "welcome"


async def test_a_mod_deletes_anyones_message_in_the_room_and_a_member_cannot(
    harness: HubHarness,
) -> None:
    owner = await account(harness, "olga")
    mod = await account(harness, "mona")
    bob = await account(harness, "bob")
    await room_of(owner, mod, bob)
    await answer(owner, Grant(room="games", nick="mona", role="mod", ref="g"))
    mine = (await said(owner, "owner's"))["id"]
    spam = (await said(bob, "spam"))["id"]
    assert refused(await answer(bob, Delete(id=mine, ref="d")), "forbidden", "not_sender")
    assert (await answer(mod, Delete(id=spam, ref="d")))["type"] == "ack"
    [deleted] = of_type(await bob.unread(), "deleted")
    assert (deleted["target"], deleted["by"]) == (spam, "mona")
    [entry] = [
        e
        for e in await harness.store.audit_log(room="games", since_ms=None, limit=50)
        if e.action == "delete"
    ]
    assert (entry.actor, entry.target, entry.detail) == ("mona", f"#{spam}", "from bob")
    # A mod of another room, or an outsider, gets the same answer as for no message.
    outsider = await account(harness, "eve")
    assert refused(await answer(outsider, Delete(id=mine, ref="d")), "not_found")


async def test_every_action_is_in_the_audit_log(harness: HubHarness, clock: Clock) -> None:
    owner = await account(harness, "olga")
    bob = await account(harness, "bob")
    await room_of(owner, bob)
    await answer(owner, RoomSet(room="games", topic="chess", ref="t"))
    await answer(owner, Moderate(action="mute", room="games", nick="bob", reason="why", ref="m"))
    clock.now += 60
    await answer(owner, Moderate(action="kick", room="games", nick="bob", ref="k"))
    log = await harness.store.audit_log(room="games", since_ms=None, limit=50)
    assert [(e.actor, e.action, e.target, e.reason) for e in log] == [
        ("olga", "room", None, ""),
        ("olga", "mute", "bob", "why"),
        ("olga", "kick", "bob", ""),
    ]
    assert log[0].detail == "topic=chess"
    later = await harness.store.audit_log(room=None, since_ms=int(clock.now * 1000), limit=50)
    assert [e.action for e in later] == ["kick"]


async def test_standings_survive_a_restart(tmp_path: Path, clock: Clock) -> None:
    async with HubHarness.open(tmp_path, clock=clock) as h:
        owner = await account(h, "olga")
        bob = await account(h, "bob")
        await room_of(owner, bob)
        await answer(owner, RoomSet(room="games", private=True, announce=True, ref="r"))
        await answer(owner, Moderate(action="ban", room="games", nick="bob", ref="b"))
    async with HubHarness.open(tmp_path, clock=clock) as h:
        bob = await h.login("bob", password=PASSWORD)
        assert refused(await answer(bob, Join(room="games", ref="j")), "forbidden", "banned")
        owner = await h.login("olga", password=PASSWORD)
        assert (await answer(owner, Join(room="games", ref="j")))["type"] == "ok"
        info = await owner.next("room_info")
        assert (info["private"], info["announce"], info["role"]) == (True, True, "owner")


# -- limits at their edges ------------------------------------------------------------------------


async def test_reason_and_topic_lengths_at_their_edges(harness: HubHarness) -> None:
    owner = await account(harness, "olga")
    bob = await account(harness, "bob")
    await room_of(owner, bob)
    long = Moderate(action="mute", room="games", nick="bob", reason="x" * 11, ref="m")
    assert refused(await answer(owner, long), "bad_request")
    assert (await said(bob, "not muted"))["type"] == "ack"
    edge = Moderate(action="mute", room="games", nick="bob", reason="x" * 10, ref="m")
    assert (await answer(owner, edge))["type"] == "ok"
    assert refused(
        await answer(owner, RoomSet(room="games", topic="t" * 21, ref="t")), "bad_request"
    )
    assert (await answer(owner, RoomSet(room="games", topic="t" * 20, ref="t")))["type"] == "ok"
    assert refused(
        await answer(owner, RoomSet(room="games", topic="two\nlines", ref="t")), "bad_request"
    )


async def test_a_room_keeps_at_most_room_standings_max(harness: HubHarness) -> None:
    owner = await account(harness, "olga")
    for nick in ("ann", "ben", "cat", "dan"):
        await account(harness, nick)
    await room_of(owner)
    for nick in ("ann", "ben", "cat"):
        assert (await answer(owner, Moderate(action="ban", room="games", nick=nick, ref="b")))[
            "type"
        ] == "ok"
    full = await answer(owner, Moderate(action="ban", room="games", nick="dan", ref="b"))
    assert refused(full, "forbidden", "limit")
    # Changing one that is kept costs nothing; lifting one makes room.
    assert (await answer(owner, Moderate(action="ban", room="games", nick="ann", ref="b")))[
        "type"
    ] == "ok"
    await answer(owner, Moderate(action="unban", room="games", nick="ben", ref="u"))
    assert (await answer(owner, Moderate(action="ban", room="games", nick="dan", ref="b")))[
        "type"
    ] == "ok"


# -- several nodes: two hubs on one store, the bus between them relayed --------------------------


@contextlib.asynccontextmanager
async def relayed(source: HubHarness, dest: HubHarness) -> AsyncIterator[None]:
    """Carry every `Moderated` published on ``source``'s bus to ``dest``'s, as Redis does."""

    async def relay() -> None:
        async for event in source.bus.subscribe():
            if isinstance(event, Moderated):
                dest.bus.publish(event)

    task = asyncio.create_task(relay())
    await asyncio.sleep(0)
    try:
        yield
    finally:
        task.cancel()


async def test_a_ban_and_a_kick_on_one_node_reach_the_sessions_on_another(
    tmp_path: Path, clock: Clock
) -> None:
    async with (
        HubHarness.open(tmp_path, clock=clock) as a,
        HubHarness.open(tmp_path, clock=clock) as b,
        relayed(a, b),
    ):
        owner = await account(a, "olga")
        await admin(a, "olga")
        bob_b = await account(b, "bob")
        carol_b = await account(b, "carol")
        await room_of(owner)
        await room_of(bob_b, carol_b)
        kick = Moderate(action="kick", room="games", nick="bob", reason="rude", ref="k")
        assert (await answer(owner, kick))["type"] == "ok"
        told = await carol_b.next("presence")  # once b has heard of it (bounded wait)
        while told["event"] != "kick":
            told = await carol_b.next("presence")
        assert (told["nick"], told["by"], told["reason"]) == ("bob", "olga", "rude")
        assert refused(await said(bob_b, "still?"), "not_member")
        # A room made private on a reaches b's joiners at once.
        await answer(owner, RoomSet(room="games", private=True, ref="p"))
        info = await carol_b.next("room_info")
        assert (info["private"], info["by"]) == (True, "olga")
        assert refused(await answer(bob_b, Join(room="games", ref="j")), "forbidden", "private")
        # A server ban on a cuts off bob's session on b, and b refuses his hello.
        assert (await answer(owner, Moderate(action="ban", nick="bob", ref="b")))["type"] == "ok"
        assert await bob_b.next("bye") == {"type": "bye", "reason": "banned"}
        assert bob_b.outlet.closed is not None
        assert (await b.refused("bob", password=PASSWORD))["code"] == "banned"


async def test_a_muted_guest_stays_muted_after_registering_and_cannot_edit_either(
    harness: HubHarness,
) -> None:
    owner = await account(harness, "olga")
    gus = await harness.login("gus")
    await room_of(owner, gus)
    old = (await said(gus, "before"))["id"]
    await answer(owner, Moderate(action="mute", room="games", nick="gus", ref="m"))
    assert refused(await answer(gus, Edit(id=old, body="sneaky", ref="e")), "forbidden", "muted")
    assert (await answer(gus, Register(password=PASSWORD, ref="r")))["type"] == "ok"
    assert refused(await said(gus, "free now?"), "forbidden", "muted")
    again = await harness.login("gus", password=PASSWORD, device="phone")
    assert refused(await said(again, "and here?"), "forbidden", "muted")


async def test_a_guests_room_lives_in_memory_until_an_account_joins_or_it_is_set(
    harness: HubHarness,
) -> None:
    gus = await harness.login("gus")
    await room_of(gus, room="den")
    await room_of(gus, room="attic")
    assert [r.name for r in await harness.store.load_rooms()] == ["lobby"]
    assert (await answer(gus, RoomSet(room="den", topic="cosy", ref="t")))["type"] == "ok"
    bob = await account(harness, "bob")
    await room_of(bob, room="attic")
    rows = {r.name: r for r in await harness.store.load_rooms()}
    assert set(rows) == {"lobby", "den", "attic"}
    assert rows["den"].topic == "cosy" and rows["attic"].owner == gus.session.principal.pid  # type: ignore[union-attr]
    assert (await bob.next("room_info"))["role"] == "member"


async def test_a_node_that_missed_a_ban_applies_it_on_resync(tmp_path: Path, clock: Clock) -> None:
    async with (
        HubHarness.open(tmp_path, clock=clock) as a,
        HubHarness.open(tmp_path, clock=clock) as b,  # no relay: b hears nothing of a
    ):
        owner = await account(a, "olga")
        await admin(a, "olga")
        await room_of(owner)
        bob_b = await account(b, "bob")
        carol_b = await account(b, "carol")
        await room_of(bob_b, carol_b)
        await answer(owner, Moderate(action="ban", room="games", nick="carol", ref="r"))
        await answer(owner, Moderate(action="ban", nick="bob", ref="s"))
        await b.settle()
        assert bob_b.outlet.closed is None, "b never heard of it"
        b.bus.publish(Resync())  # as the Redis bus does once Redis is back
        assert await bob_b.next("bye") == {"type": "bye", "reason": "banned"}
        assert refused(await said(carol_b, "here?"), "not_member")


async def test_a_ban_made_while_a_join_waits_on_the_store_keeps_the_account_out(
    harness: HubHarness,
) -> None:
    owner = await account(harness, "olga")
    bob = await account(harness, "bob")
    await room_of(owner)
    # The ban is queued first, so it is written (and finds bob outside) before the
    # join's own write resolves: the join must see the ban when it comes back.
    ban = asyncio.create_task(owner.send(Moderate(action="ban", room="games", nick="bob", ref="b")))
    await asyncio.sleep(0)
    await bob.send(Join(room="games", ref="j"))
    await ban
    joined = next(f for f in bob.frames if f.get("ref") == "j")
    assert refused(joined, "forbidden", "banned"), joined
    assert (await said(bob, "let me in"))["type"] == "error"
    assert bob.session is not None and "games" not in bob.session.principal.rooms
    assert "games" not in await harness.store.rooms_of("a:bob")
