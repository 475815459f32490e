"""Issue 15 over real sockets against a real server process: stored DM receipts,
the receipts setting read back, and ``history`` paging forwards (``after``)."""

from __future__ import annotations

from typing import Any

from conftest import Peer, ServerProcess
from support.peers import connect, login

PASSWORD = "correct horse"


async def reply(peer: Peer, ref: str, **frame: Any) -> dict[str, Any]:
    await peer.send(ref=ref, **frame)
    while (got := await peer.recv()).get("ref") != ref:
        pass
    return got


async def account(
    peers: list[Peer], port: int, nick: str, *, device: str = "default"
) -> tuple[Peer, dict[str, Any], dict[str, Any]]:
    """Log in as ``nick`` (registering it first if new): the peer, welcome, caught_up."""
    peer = await connect(peers, port)
    await peer.send(type="hello", proto=1, nick=nick, password=PASSWORD, device=device)
    welcome = await peer.recv()
    if welcome["type"] == "error":  # no such account yet: register it as a guest
        await peer.close()
        peer = await login(peers, port, nick)
        assert (await reply(peer, "reg", type="register", password=PASSWORD))["type"] == "ok"
        return await account(peers, port, nick, device=device)
    assert welcome["type"] == "welcome", welcome
    return peer, welcome, await peer.recv_type("caught_up")


async def dm_delivered_and_read(alice: Peer, bob: Peer) -> int:
    """alice DMs bob; bob's device says it has it, then bob reads it: the DM's id."""
    sent = int((await reply(alice, "dm", type="dm", to="bob", body="are you there?"))["id"])
    assert (await bob.recv_type("message"))["id"] == sent
    await bob.send(type="seen", upto=sent)
    assert (await reply(bob, "rd", type="read", upto=sent, **{"with": "alice"}))["type"] == "ok"
    return sent


async def test_a_sender_away_when_the_receipts_came_gets_them_at_login_and_in_history(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice, _, _ = await account(peers, server.port, "alice")
    bob, _, _ = await account(peers, server.port, "bob")
    for peer in (alice, bob):
        assert (await reply(peer, "on", type="receipts", on=True))["type"] == "ok"
    first = await dm_delivered_and_read(alice, bob)
    await alice.close()
    later = (await reply(bob, "back", type="dm", to="alice", body="yes"))["id"]
    server.kill()  # kill -9: what was stored holds
    server.start()
    _, _, caught_up = await account(peers, server.port, "alice", device="laptop")
    assert caught_up["receipts"] == {"@bob": {"delivered": first, "read": first}}
    alice = peers[-1]
    page = await reply(alice, "h", type="history", **{"with": "bob"})
    assert page["receipts"] == {"delivered": first, "read": first}
    assert [m["id"] for m in page["messages"]] == [first, later]


async def test_receipts_stay_hidden_when_either_turns_them_off_or_blocks(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice, _, _ = await account(peers, server.port, "alice")
    bob, _, _ = await account(peers, server.port, "bob")
    for peer in (alice, bob):
        await reply(peer, "on", type="receipts", on=True)
    await dm_delivered_and_read(alice, bob)
    await reply(bob, "off", type="receipts", on=False)
    _, _, caught_up = await account(peers, server.port, "alice", device="two")
    assert "receipts" not in caught_up
    page = await reply(peers[-1], "h", type="history", **{"with": "bob"})
    assert "receipts" not in page
    await reply(bob, "on", type="receipts", on=True)
    assert (await reply(bob, "b", type="block", nick="alice"))["type"] == "ok"
    _, _, caught_up = await account(peers, server.port, "alice", device="three")
    assert "receipts" not in caught_up, "the blocked one learns nothing from the blocker"
    await reply(bob, "u", type="unblock", nick="alice")
    await reply(alice, "b", type="block", nick="bob")
    _, _, caught_up = await account(peers, server.port, "alice", device="four")
    assert "receipts" not in caught_up, "nothing of a blocked nick"
    page = await reply(peers[-1], "h", type="history", **{"with": "bob"})
    assert "receipts" not in page


async def test_the_receipts_setting_is_read_back_and_synced_to_the_other_sessions(
    server: ServerProcess, peers: list[Peer]
) -> None:
    phone, welcome, _ = await account(peers, server.port, "carol", device="phone")
    assert welcome["settings"] == {"receipts": False}
    desk, _, _ = await account(peers, server.port, "carol", device="desk")
    assert (await reply(phone, "on", type="receipts", on=True))["type"] == "ok"
    assert await desk.recv_type("settings") == {"type": "settings", "receipts": True}
    assert [f for f in await phone.quiet() if f["type"] == "settings"] == []
    asked = await reply(desk, "s", type="settings")
    assert asked == {"type": "settings", "receipts": True, "ref": "s"}
    _, welcome, _ = await account(peers, server.port, "carol", device="tablet")
    assert welcome["settings"] == {"receipts": True}
    guest = await connect(peers, server.port)
    await guest.send(type="hello", proto=1, nick="dave")
    assert "settings" not in await guest.recv()


async def test_history_after_pages_forwards_with_the_same_rules_as_before(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await login(peers, server.port, "bob")
    mallory = await login(peers, server.port, "mallory")
    ids = []
    for n, who in enumerate([alice, mallory, mallory, alice, alice, alice]):
        ids.append((await reply(who, f"s{n}", type="say", room="lobby", body=f"m{n}"))["id"])
    await reply(alice, "e", type="edit", id=ids[3], body="m3, fixed")
    await reply(alice, "d", type="delete", id=ids[4])
    await reply(bob, "r", type="react", id=ids[3], emoji="👍")
    page = await reply(bob, "h1", type="history", room="lobby", after=ids[0], limit=3)
    assert [m["id"] for m in page["messages"]] == ids[1:4] and page["more"] is True
    edited = page["messages"][2]
    assert edited["body"] == "m3, fixed"
    assert edited["reactions"] == [{"emoji": "👍", "nicks": ["bob"]}]
    page = await reply(bob, "h2", type="history", room="lobby", after=ids[3], limit=3)
    assert [m["id"] for m in page["messages"]] == ids[4:] and page["more"] is False
    assert page["messages"][0]["deleted"] is True and "body" not in page["messages"][0]
    whole = await reply(bob, "h0", type="history", room="lobby", after=0, limit=2)
    assert [m["id"] for m in whole["messages"]] == ids[:2]
    # Blocks: a page only mallory filled is followed by newer ones.
    await reply(bob, "b", type="block", nick="mallory")
    page = await reply(bob, "h3", type="history", room="lobby", after=ids[0], limit=2)
    assert [m["id"] for m in page["messages"]] == ids[3:5] and page["more"] is True
    both = await reply(bob, "h4", type="history", room="lobby", after=1, before=9)
    assert (both["type"], both["code"]) == ("error", "bad_request")
    assert "after" in both["message"] and "before" in both["message"]
    await reply(alice, "j", type="join", room="games")
    await reply(alice, "g", type="say", room="games", body="bob never joined")
    elsewhere = await reply(bob, "h5", type="history", room="games", after=0)
    assert (elsewhere["type"], elsewhere["code"]) == ("error", "not_member")


async def test_history_after_in_a_dm_is_only_the_two_parties(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await login(peers, server.port, "bob")
    eve = await login(peers, server.port, "eve")
    first = (await reply(alice, "1", type="dm", to="bob", body="one"))["id"]
    second = (await reply(bob, "2", type="dm", to="alice", body="two"))["id"]
    await reply(eve, "3", type="dm", to="alice", body="not theirs")
    page = await reply(bob, "h", type="history", after=0, **{"with": "alice"})
    assert [m["id"] for m in page["messages"]] == [first, second] and page["more"] is False
    page = await reply(bob, "h", type="history", after=first, **{"with": "alice"})
    assert [m["body"] for m in page["messages"]] == ["two"]
