"""Search (protocol §8) in-process: words, scope, paging, edits and deletions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.hub import PASSWORD, Client, HubHarness

from chinwag.protocol.events import Delete, Dm, Edit, Join, Leave, Register, Say, Search


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with HubHarness.open(tmp_path, search_max=3, search_max_words=4) as h:
        yield h


async def ask(client: Client, **search: Any) -> dict[str, Any]:
    """The reply (results or error) to a search."""
    await client.send(Search(ref="q", **search))
    while (frame := await client.next()).get("ref") != "q":
        pass
    return frame


async def post(client: Client, cmd: Any) -> int:
    await client.send(cmd)
    while (frame := await client.next()).get("ref") != cmd.ref:
        pass
    assert frame["type"] == "ack", frame
    return int(frame["id"])


def bodies(results: dict[str, Any]) -> list[str]:
    assert results["type"] == "results", results
    return [m["body"] for m in results["messages"]]


async def test_words_match_whatever_their_case_and_accents_newest_first(
    harness: HubHarness,
) -> None:
    alice = await harness.login("alice")
    await post(alice, Say(room="lobby", body="Meet at the CAFÉ", ref="1"))
    await post(alice, Say(room="lobby", body="no match here", ref="2"))
    await post(alice, Say(room="lobby", body="the cafe is closed, Zoë", ref="3"))
    got = await ask(alice, q="café the")
    assert bodies(got) == ["the cafe is closed, Zoë", "Meet at the CAFÉ"]
    assert (got["q"], got["more"]) == ("café the", False)
    assert bodies(await ask(alice, q="zoe")) == ["the cafe is closed, Zoë"]
    assert bodies(await ask(alice, q="caf")) == []  # whole words only


async def test_search_never_returns_another_pairs_dm_or_a_room_the_asker_left(
    harness: HubHarness,
) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    cy = await harness.login("cy")
    await post(alice, Dm(to="bob", body="secret plan", ref="1"))
    await post(cy, Dm(to="cy", body="secret note to self", ref="2"))
    await cy.send(Join(room="den", ref="j"))
    await bob.send(Join(room="den", ref="j"))
    await post(cy, Say(room="den", body="secret den talk", ref="3"))
    await bob.send(Leave(room="den", ref="l"))
    assert bodies(await ask(bob, q="secret")) == ["secret plan"]
    assert bodies(await ask(cy, q="secret")) == ["secret den talk", "secret note to self"]
    assert bodies(await ask(cy, q="secret", with_="cy")) == ["secret note to self"]
    assert bodies(await ask(alice, q="secret", with_="bob")) == ["secret plan"]
    assert bodies(await ask(alice, q="secret", with_="cy")) == []
    refused = await ask(bob, q="secret", room="den")
    assert refused["code"] == "not_member"


async def test_pages_are_cut_at_the_limit_and_continue_with_before(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    ids = [await post(alice, Say(room="lobby", body=f"word {n}", ref=f"{n}")) for n in range(5)]
    first = await ask(alice, q="word", limit=1000)  # clamped to search_max = 3
    assert bodies(first) == ["word 4", "word 3", "word 2"] and first["more"] is True
    rest = await ask(alice, q="word", before=first["messages"][-1]["id"], limit=2)
    assert bodies(rest) == ["word 1", "word 0"] and rest["more"] is False
    assert [m["id"] for m in first["messages"] + rest["messages"]] == ids[::-1]


async def test_an_edit_replaces_the_words_and_a_deletion_removes_them(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    msg = await post(alice, Say(room="lobby", body="apple pie", ref="1"))
    await post(alice, Edit(id=msg, body="cherry pie", ref="2"))
    assert bodies(await ask(alice, q="apple")) == []
    assert bodies(await ask(alice, q="cherry")) == ["cherry pie"]
    await post(alice, Delete(id=msg, ref="3"))
    assert bodies(await ask(alice, q="pie")) == []


async def test_from_narrows_to_one_sender(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    bob = await harness.login("bob")
    await post(alice, Say(room="lobby", body="hello from alice", ref="1"))
    await post(bob, Say(room="lobby", body="hello from bob", ref="2"))
    assert bodies(await ask(alice, q="hello", sender="BOB")) == ["hello from bob"]
    assert (await ask(alice, q="hello", sender="nobody"))["code"] == "no_such_user"


@pytest.mark.parametrize("q", ["", "  ", "?!", "a b c d e", "x" * 1001])
async def test_a_query_with_no_word_or_too_many_is_a_bad_request(
    harness: HubHarness, q: str
) -> None:
    alice = await harness.login("alice")
    assert (await ask(alice, q=q))["code"] == "bad_request"


async def test_quotes_and_operators_are_plain_words(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    await post(alice, Say(room="lobby", body='say "NOT" OR AND near', ref="1"))
    assert bodies(await ask(alice, q='"not" OR')) == ['say "NOT" OR AND near']
    assert bodies(await ask(alice, q="NEAR(say)")) == ['say "NOT" OR AND near']


async def test_a_guest_who_registers_still_finds_its_dms(harness: HubHarness) -> None:
    alice = await harness.login("alice")
    await harness.login("bob")
    await post(alice, Dm(to="bob", body="remember the milk", ref="1"))
    await alice.send(Register(password=PASSWORD, ref="reg"))
    assert (await alice.next("ok"))["ref"] == "reg"
    assert bodies(await ask(alice, q="milk")) == ["remember the milk"]
    assert bodies(await ask(alice, q="milk", with_="bob")) == ["remember the milk"]
