"""rooms4. Rooms do not pile up (audit4's "found, not fixed"): one account or guest makes
at most ``rooms_made_max`` rooms per ``rooms_made_window``, and a room nobody is in that
carries nothing (no message, topic, flag, standing, member) is forgotten when the last one
leaves, in memory and in the store, so that the next to join makes it anew. And roles are
told: ``who`` rows carry each one's role, and every ``room_info`` the receiver's own.

Each test runs on `support.hub.HubHarness` (a real SQLite file, the hub's clock injected)
and asserts on the frames a client gets and the rows the store keeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.hub import Client, HubHarness
from test_hub_moderation import Clock, account, admin, answer, refused, said

from chinwag.config import SettingsError, build
from chinwag.protocol.events import Grant, Join, Leave, ListRooms, Moderate, RoomSet, Who

MOST = 3


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def harness(tmp_path: Path, clock: Clock) -> AsyncIterator[HubHarness]:
    async with HubHarness.open(
        tmp_path, clock=clock, rooms_made_max=MOST, rooms_made_window=3600.0
    ) as h:
        yield h


async def joined(client: Client, room: str) -> dict[str, object]:
    """Join ``room``: the ``room_info`` that follows the ``ok`` (or the refusal)."""
    first = await answer(client, Join(room=room, ref="j"))
    if first["type"] != "ok":
        return first
    return await client.next("room_info")


async def stored(harness: HubHarness) -> list[str]:
    return [r.name for r in await harness.store.load_rooms()]


async def listed(client: Client) -> list[str]:
    return [r["name"] for r in (await answer(client, ListRooms(ref="r")))["rooms"]]


async def test_an_account_makes_rooms_made_max_rooms_an_hour_then_is_told_when_to_try(
    harness: HubHarness, clock: Clock
) -> None:
    ann = await account(harness, "ann")
    for n in range(MOST):  # joined and left at once: each was a row kept for good
        assert (await joined(ann, f"r{n}"))["role"] == "owner"
        assert (await answer(ann, Leave(room=f"r{n}", ref="l")))["type"] == "ok"
    clock.now += 600
    no = await joined(ann, "one-more")
    assert refused(no, "forbidden", "rooms_made")
    assert no["message"] == (
        "you have made 3 rooms in the last 60 minutes, the most allowed; try again in"
        " 50 minutes, or join a room that exists (see rooms)"
    )
    assert no["retry_after"] == 3000.0
    assert "one-more" not in await stored(harness) and "one-more" not in await listed(ann)
    bob = await account(harness, "bob")
    assert (await joined(bob, "bobs"))["role"] == "owner"
    assert (await joined(ann, "bobs"))["role"] == "member", "a room that exists: no limit"
    clock.now += 3000.5  # the three made are over an hour old
    for room in ("one-more", "two-more", "three-more"):
        assert (await joined(ann, room))["role"] == "owner"
    assert refused(await joined(ann, "four-more"), "forbidden", "rooms_made")


async def test_a_guest_is_held_to_rooms_made_max_too(harness: HubHarness) -> None:
    gus = await harness.login("gus")
    for n in range(MOST):
        assert (await joined(gus, f"g{n}"))["role"] == "owner"
        assert (await answer(gus, RoomSet(room=f"g{n}", topic="mine", ref="t")))["type"] == "ok"
    assert refused(await joined(gus, "g9"), "forbidden", "rooms_made")
    assert sorted(await stored(harness)) == ["g0", "g1", "g2", "lobby"]


def test_rooms_made_settings_at_their_edges() -> None:
    assert build(None, ["rooms_made_max=1", "rooms_made_window=0.5"]).rooms_made_max == 1
    with pytest.raises(SettingsError, match="rooms_made_max must be at least 1"):
        build(None, ["rooms_made_max=0"])
    with pytest.raises(SettingsError, match="rooms_made_window must be above 0"):
        build(None, ["rooms_made_window=0"])


async def test_an_empty_room_is_forgotten_when_its_last_member_leaves(
    harness: HubHarness,
) -> None:
    ann = await account(harness, "ann")
    bob = await account(harness, "bob")
    assert (await joined(ann, "den"))["role"] == "owner"
    assert (await joined(bob, "den"))["role"] == "member"
    await answer(bob, Leave(room="den", ref="l"))
    assert "den" in await stored(harness), "ann is still in it"
    await answer(ann, Leave(room="den", ref="l"))
    assert "den" not in await stored(harness) and "den" not in await listed(bob)
    assert (await joined(bob, "den"))["role"] == "owner", "made anew by the next one"


async def test_a_guests_room_is_forgotten_when_it_leaves(harness: HubHarness) -> None:
    gus = await harness.login("gus")
    assert (await joined(gus, "attic"))["role"] == "owner"
    await answer(gus, Leave(room="attic", ref="l"))
    bob = await account(harness, "bob")
    assert (await joined(bob, "attic"))["role"] == "owner"


async def test_a_room_that_carries_something_is_kept(harness: HubHarness) -> None:
    ann = await account(harness, "ann")
    bob = await account(harness, "bob")
    await joined(ann, "talk")
    assert (await said(ann, "hello", room="talk"))["type"] == "ack"
    await joined(ann, "topic")
    await answer(ann, RoomSet(room="topic", topic="chess", ref="t"))
    await joined(ann, "flags")
    await answer(ann, RoomSet(room="flags", announce=True, ref="t"))
    await joined(bob, "muted")
    await joined(ann, "muted")
    assert (await answer(bob, Moderate(action="mute", room="muted", nick="ann", ref="m")))[
        "type"
    ] == "ok"
    await answer(bob, Leave(room="muted", ref="l"))
    await joined(bob, "archive")  # only a retention of its own (§12.3)
    assert (await answer(bob, RoomSet(room="archive", retention_days=30, ref="k")))["type"] == "ok"
    await answer(bob, Leave(room="archive", ref="l"))
    for room in ("talk", "topic", "flags", "muted"):
        assert (await answer(ann, Leave(room=room, ref="l")))["type"] == "ok"
    kept = ["archive", "flags", "lobby", "muted", "talk", "topic"]
    assert sorted(await stored(harness)) == kept
    carol = await account(harness, "carol")
    for room in ("talk", "topic", "flags"):
        assert (await joined(carol, room))["role"] == "member", room


# -- roles told (rooms4): `who` rows and every `room_info` ---------------------------------------


async def test_who_tells_each_ones_role_the_settings_and_the_askers_own_role(
    harness: HubHarness,
) -> None:
    olga = await account(harness, "olga")
    bob = await account(harness, "bob")
    carol = await account(harness, "carol")
    ada = await account(harness, "ada")
    await admin(harness, "ada")
    for client in (olga, bob, carol, ada):
        await joined(client, "games")
    await answer(olga, Grant(room="games", nick="bob", role="mod", ref="g"))
    await answer(olga, RoomSet(room="games", topic="chess", announce=True, ref="t"))
    who = await answer(carol, Who(room="games", ref="w"))
    assert [(u["nick"], u.get("role")) for u in who["users"]] == [
        ("ada", "admin"),
        ("bob", "mod"),
        ("carol", None),
        ("olga", "owner"),
    ]
    assert (who["topic"], who["private"], who["announce"], who["role"]) == (
        "chess",
        False,
        True,
        "member",
    )
    assert (await answer(bob, Who(room="games", ref="w")))["role"] == "mod"


async def test_a_room_info_tells_each_member_its_own_role(harness: HubHarness) -> None:
    olga = await account(harness, "olga")
    bob = await account(harness, "bob")
    carol = await account(harness, "carol")
    for client in (olga, bob, carol):
        await joined(client, "games")
    await answer(olga, Grant(room="games", nick="bob", role="mod", ref="g"))
    await bob.send(RoomSet(room="games", topic="go", ref="t"))  # its room_info comes first
    told = {
        name: await client.next("room_info")
        for name, client in (("olga", olga), ("bob", bob), ("carol", carol))
    }
    assert {name: (f["role"], f["by"], f["topic"]) for name, f in told.items()} == {
        "olga": ("owner", "bob", "go"),
        "bob": ("mod", "bob", "go"),
        "carol": ("member", "bob", "go"),
    }
