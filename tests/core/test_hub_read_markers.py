"""Read markers (protocol §8) in-process: per account, synced, counted in caught_up.unread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.hub import PASSWORD, Client, HubHarness

from chinwag.protocol.events import Dm, Read, Receipts, Say, Seen


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with HubHarness.open(tmp_path) as h:
        yield h


async def answer(client: Client, cmd: Any) -> dict[str, Any]:
    await client.send(cmd)
    while (frame := await client.next()).get("ref") != cmd.ref:
        pass
    return frame


async def test_a_marker_is_echoed_to_the_accounts_other_devices_and_never_goes_back(
    harness: HubHarness,
) -> None:
    await harness.register("bob")
    phone = await harness.login("bob", password=PASSWORD, device="phone")
    desk = await harness.login("bob", password=PASSWORD, device="desk")
    alice = await harness.login("alice")
    ids = [
        (await answer(alice, Say(room="lobby", body=f"m{n}", ref=f"{n}")))["id"] for n in range(3)
    ]
    await desk.unread()
    await phone.unread()
    assert (await answer(desk, Read(room="lobby", upto=ids[1], ref="r")))["type"] == "ok"
    assert [f for f in await phone.unread() if f["type"] == "read"] == [
        {"type": "read", "room": "lobby", "upto": ids[1]}
    ]
    await answer(phone, Read(room="lobby", upto=ids[0], ref="back"))  # never back: no echo
    assert [f for f in await desk.unread() if f["type"] == "read"] == []
    assert await harness.store.read_markers("a:bob") == {"#lobby": ids[1]}


async def test_a_marker_is_clamped_to_what_the_session_was_sent(harness: HubHarness) -> None:
    await harness.register("bob")
    bob = await harness.login("bob", password=PASSWORD)
    alice = await harness.login("alice")
    sent = (await answer(alice, Say(room="lobby", body="hi", ref="1")))["id"]
    await bob.unread()
    await answer(bob, Read(room="lobby", upto=sent + 1000, ref="r"))
    assert await harness.store.read_markers("a:bob") == {"#lobby": sent}


async def test_caught_up_counts_what_lies_after_the_markers(harness: HubHarness) -> None:
    await harness.register("bob")
    bob = await harness.login("bob", password=PASSWORD, device="desk")
    alice = await harness.login("alice")
    first = (await answer(alice, Say(room="lobby", body="read it", ref="1")))["id"]
    await answer(alice, Dm(to="bob", body="psst", ref="2"))
    await bob.unread()
    await answer(bob, Read(room="lobby", upto=first, ref="r"))
    await answer(bob, Dm(to="alice", body="mine do not count", ref="3"))
    await answer(alice, Say(room="lobby", body="not yet read", ref="4"))
    await bob.logout(clean=False)  # no cursor moved: the next login replays all of it
    again = await harness.login("bob", password=PASSWORD, device="desk")
    frames = await again.unread()
    assert [f.get("body") for f in frames[1:-1]] == [
        "read it",
        "psst",
        "mine do not count",
        "not yet read",
    ]
    assert frames[-1]["unread"] == {"lobby": 1, "@alice": 1}


async def test_read_refusals_change_nothing(harness: HubHarness) -> None:
    await harness.register("bob")
    bob = await harness.login("bob", password=PASSWORD)
    assert (await answer(bob, Read(room="games", upto=1, ref="a")))["code"] == "not_member"
    assert (await answer(bob, Read(with_="nobody", upto=1, ref="b")))["code"] == "no_such_user"
    assert (await answer(bob, Read(room="Bad Room", upto=1, ref="c")))["code"] == "bad_room"
    assert await harness.store.read_markers("a:bob") == {}


# -- DM receipts ---------------------------------------------------------------------------------


async def two_accounts(harness: HubHarness) -> tuple[Client, Client]:
    await harness.register("alice")
    await harness.register("bob")
    alice = await harness.login("alice", password=PASSWORD)
    bob = await harness.login("bob", password=PASSWORD)
    return alice, bob


def receipts(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == "receipt"]


async def test_receipts_go_only_when_both_accounts_turned_them_on(harness: HubHarness) -> None:
    alice, bob = await two_accounts(harness)
    assert (await answer(alice, Receipts(on=True, ref="r1")))["type"] == "ok"
    dm = (await answer(alice, Dm(to="bob", body="one", ref="1")))["id"]
    await bob.unread()
    await bob.send(Seen(upto=dm))
    await answer(bob, Read(with_="alice", upto=dm, ref="rd"))
    assert receipts(await alice.unread()) == []  # bob has them off
    await answer(bob, Receipts(on=True, ref="r2"))
    dm2 = (await answer(alice, Dm(to="bob", body="two", ref="2")))["id"]
    await bob.unread()
    await bob.send(Seen(upto=dm2))
    await answer(bob, Read(with_="alice", upto=dm2, ref="rd2"))
    assert receipts(await alice.unread()) == [
        {"type": "receipt", "with": "bob", "upto": dm2, "state": "delivered"},
        {"type": "receipt", "with": "bob", "upto": dm2, "state": "read"},
    ]
    assert receipts(await bob.unread()) == []  # bob sent nothing to be told about
    await answer(alice, Receipts(on=False, ref="r3"))
    dm3 = (await answer(alice, Dm(to="bob", body="three", ref="3")))["id"]
    await bob.unread()
    await bob.send(Seen(upto=dm3))
    assert receipts(await alice.unread()) == []


async def test_a_guest_cannot_turn_receipts_on(harness: HubHarness) -> None:
    guest = await harness.login("guest")
    refused = await answer(guest, Receipts(on=True, ref="r"))
    assert (refused["code"], refused["reason"]) == ("forbidden", "guest")
