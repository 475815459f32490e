"""Blocks (issue 16, protocol §8) over real sockets against a real server process.

Negative tests first: after ``block`` nothing sent under the blocked nick
reaches the blocker (messages, DMs, typing, mentions, events, receipts) on any
of its devices, live, in the backlog and after a restart; the blocked one is
told nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import Peer, ServerProcess
from support.peers import login

PASSWORD = "correct horse"
FAST = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}


async def register(peers: list[Peer], port: int, nick: str, device: str = "d1") -> Peer:
    peer = await login(peers, port, nick, device=device)
    await peer.send(type="register", password=PASSWORD, ref="reg")
    assert await peer.recv_type("ok") == {"type": "ok", "ref": "reg"}
    return peer


async def relogin(
    peers: list[Peer], port: int, nick: str, device: str = "d1"
) -> tuple[Peer, list[dict[str, Any]]]:
    """Log in as an account: the peer, and every frame from welcome to caught_up."""
    peer = await Peer.connect(port)
    peers.append(peer)
    await peer.send(type="hello", proto=1, nick=nick, password=PASSWORD, device=device)
    frames = [await peer.recv()]
    assert frames[0]["type"] == "welcome", frames
    while frames[-1]["type"] != "caught_up":
        frames.append(await peer.recv())
    return peer, frames


async def reply(peer: Peer, ref: str, **frame: Any) -> dict[str, Any]:
    """Send a request; its reply (frames before it are skipped)."""
    await peer.send(ref=ref, **frame)
    while (got := await peer.recv()).get("ref") != ref:
        pass
    return got


async def until(peer: Peer, body: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Every frame up to and with the message whose body is ``body``."""
    frames = [await peer.recv(timeout)]
    while frames[-1].get("body") != body:
        frames.append(await peer.recv(timeout))
    return frames


def from_(frames: list[dict[str, Any]], nick: str) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("from") == nick or f.get("by") == nick]


async def test_nothing_of_a_blocked_nick_reaches_any_device_of_the_blocker_live(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await register(peers, server.port, "alice")
    alice2, _ = await relogin(peers, server.port, "alice", device="phone")
    bob = await register(peers, server.port, "bob")
    carol = await login(peers, server.port, "carol")
    erin = await login(peers, server.port, "erin")  # sends nothing: reads everything
    assert await reply(alice, "b", type="block", nick="Bob") == {"type": "ok", "ref": "b"}

    # Before the block would have mattered: bob's ack looks as it always does.
    said = await reply(bob, "s", type="say", room="lobby", body="hi @alice", cid="c1")
    assert said["type"] == "ack" and said["cid"] == "c1" and said["id"] > 0
    dm = await reply(bob, "d", type="dm", to="alice", body="psst", cid="c2")
    assert dm["type"] == "ack" and dm["id"] > said["id"]
    await bob.send(type="typing", room="lobby")
    await bob.send(type="typing", to="alice")
    edit = await reply(bob, "e", type="edit", id=said["id"], body="hi again @alice")
    react = await reply(bob, "r", type="react", id=said["id"], emoji="👍")
    assert edit["type"] == "ack" and react["type"] == "ack"
    # alice's own message, reacted to by bob: the reaction is bob's, so it is hidden too.
    mine = await reply(alice, "m", type="say", room="lobby", body="mine")
    await reply(bob, "r2", type="react", id=mine["id"], emoji="🎉")
    await reply(carol, "c", type="say", room="lobby", body="marker")

    for device in (alice, alice2):
        seen = await until(device, "marker")
        assert from_(seen, "bob") == [], seen
        assert not [f for f in seen if f["type"] in ("typing", "reacted", "edited")], seen
    # Blocking is the blocker's view alone: erin got everything bob sent.
    erin_saw = await until(erin, "marker")
    kinds = {f["type"] for f in from_(erin_saw, "bob")}
    assert {"message", "typing", "edited", "reacted"} <= kinds
    # The blocked one was told nothing: no error, no notice.
    assert [f for f in await bob.quiet(0.3) if f["type"] == "error"] == []


async def test_the_backlog_after_a_restart_holds_nothing_of_the_blocked_and_counts_nothing(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await register(peers, server.port, "alice")
    bob = await register(peers, server.port, "bob")
    dave = await register(peers, server.port, "dave")
    old = await reply(dave, "o", type="say", room="lobby", body="older, by dave")
    for peer, emoji in ((bob, "👍"), (dave, "👍"), (bob, "🎉")):
        await reply(peer, "r", type="react", id=old["id"], emoji=emoji)
    assert (await reply(alice, "b", type="block", nick="bob"))["type"] == "ok"
    await alice.send(type="bye")
    await alice.expect_closed()
    await reply(bob, "s", type="say", room="lobby", body="@alice look", cid="b1")
    await reply(bob, "d", type="dm", to="alice", body="secret from bob", cid="b2")
    await reply(dave, "s", type="say", room="lobby", body="from dave @alice", cid="d1")
    server.kill()  # kill -9: the block, like the messages, was committed
    server.start()
    for device in ("d1", "new-device"):
        _, frames = await relogin(peers, server.port, "alice", device=device)
        assert "block" in frames[0]["features"]
        replayed = [f for f in frames if f["type"] == "message"]
        assert [f["body"] for f in replayed] == ["from dave @alice"], frames
        caught_up = frames[-1]
        assert (caught_up["missed"], caught_up["mentions"]) == (1, 1)
        assert caught_up["dms"] == {} and caught_up["rooms"] == {"lobby": 1}
        assert caught_up["unread"] == {"lobby": 1}
    alice = peers[-1]
    page = await reply(alice, "h", type="history", room="lobby")
    assert [m["from"] for m in page["messages"]] == ["dave", "dave"]
    # bob's reactions are left out of the others' messages too.
    assert page["messages"][0]["reactions"] == [{"emoji": "👍", "nicks": ["dave"]}]
    dms = await reply(alice, "h2", type="history", **{"with": "bob"})
    assert dms["messages"] == []
    found = await reply(alice, "q", type="search", q="alice")
    assert [m["from"] for m in found["messages"]] == ["dave"]


async def test_a_history_or_search_page_filled_by_the_blocked_is_followed_by_older_ones(
    tmp_path: Path, peers: list[Peer]
) -> None:
    server = ServerProcess(tmp_path / "server", {**FAST, "rate_burst": 100}).start()
    try:
        alice = await register(peers, server.port, "alice")
        bob = await register(peers, server.port, "bob")
        await reply(alice, "a", type="say", room="lobby", body="old zebra")
        for n in range(12):
            await reply(bob, f"s{n}", type="say", room="lobby", body=f"zebra {n}")
        await reply(alice, "b", type="block", nick="bob")
        page = await reply(alice, "h", type="history", room="lobby", limit=5)
        assert [m["body"] for m in page["messages"]] == ["old zebra"]
        found = await reply(alice, "q", type="search", q="zebra", limit=5)
        assert [m["body"] for m in found["messages"]] == ["old zebra"]
    finally:
        server.kill()


async def test_unblock_lets_what_follows_through_and_the_list_shows_blocks(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await register(peers, server.port, "alice")
    alice2, _ = await relogin(peers, server.port, "alice", device="phone")
    bob = await register(peers, server.port, "bob")
    await reply(alice, "b1", type="block", nick="bob")
    await reply(alice, "b2", type="block", nick="nobody_at_all")
    listed = await reply(alice2, "l", type="blocks")
    assert listed == {"type": "blocks", "nicks": ["bob", "nobody_at_all"], "ref": "l"}
    await reply(bob, "s1", type="say", room="lobby", body="while blocked")
    assert await reply(alice2, "u", type="unblock", nick="BOB") == {"type": "ok", "ref": "u"}
    await reply(bob, "s2", type="say", room="lobby", body="after unblock")
    await reply(bob, "d", type="dm", to="alice", body="dm after unblock")
    for device in (alice, alice2):
        got = [f for f in await until(device, "dm after unblock") if f["type"] == "message"]
        assert [f["body"] for f in got] == ["after unblock", "dm after unblock"]
    assert (await reply(alice, "l2", type="blocks"))["nicks"] == ["nobody_at_all"]


async def test_bad_blocks_are_refused_clearly_and_a_missing_nick_is_not_told_apart(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await register(peers, server.port, "alice")
    await register(peers, server.port, "bob")
    myself = await reply(alice, "m", type="block", nick="ALICE")
    assert (myself["type"], myself["code"]) == ("error", "bad_request")
    assert "yourself" in myself["message"]
    bad = await reply(alice, "x", type="block", nick="no spaces!")
    assert (bad["type"], bad["code"]) == ("error", "bad_nick")
    missing = await reply(alice, "n", type="block", nick="ghost")
    real = await reply(alice, "r", type="block", nick="bob")
    assert {k: v for k, v in missing.items() if k != "ref"} == {
        k: v for k, v in real.items() if k != "ref"
    }
    no_field = await reply(alice, "f", type="block")
    assert (no_field["code"], no_field["message"]) == ("bad_request", "block: missing field 'nick'")
    assert (await reply(alice, "l", type="blocks"))["nicks"] == ["ghost", "bob"]


async def test_a_guest_blocks_for_its_session_and_a_blocked_guest_nick_stays_blocked(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await register(peers, server.port, "alice")
    guest = await login(peers, server.port, "gwen")
    troll = await login(peers, server.port, "troll")
    assert (await reply(guest, "b", type="block", nick="troll"))["type"] == "ok"
    assert (await reply(alice, "b", type="block", nick="troll"))["type"] == "ok"
    await reply(troll, "s", type="say", room="lobby", body="boo")
    await troll.close()
    # The same nick, another guest session: blocks name the nick.
    troll = await login(peers, server.port, "troll")
    await reply(troll, "s", type="say", room="lobby", body="boo again")
    await reply(troll, "d", type="dm", to="gwen", body="boo dm")
    await reply(alice, "s", type="say", room="lobby", body="marker")
    for peer in (alice, guest):
        assert from_(await until(peer, "marker"), "troll") == []
    assert (await reply(guest, "l", type="blocks"))["nicks"] == ["troll"]
    # Registering keeps the guest's blocks, now stored with its account.
    await guest.send(type="register", password=PASSWORD, ref="reg")
    assert await guest.recv_type("ok") == {"type": "ok", "ref": "reg"}
    _, _ = await relogin(peers, server.port, "gwen", device="other")
    assert (await reply(peers[-1], "l", type="blocks"))["nicks"] == ["troll"]


async def test_receipts_never_tell_the_blocked_that_the_blocker_got_or_read_a_dm(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await register(peers, server.port, "alice")
    bob = await register(peers, server.port, "bob")
    dave = await register(peers, server.port, "dave")
    for peer in (alice, bob, dave):
        assert (await reply(peer, "rc", type="receipts", on=True))["type"] == "ok"
    await reply(alice, "b", type="block", nick="bob")
    from_bob = await reply(bob, "d", type="dm", to="alice", body="hello?")
    from_dave = await reply(dave, "d", type="dm", to="alice", body="hi alice")
    got = await alice.recv_type("message")
    assert got["body"] == "hi alice"
    await alice.send(type="seen", upto=from_dave["id"])
    await alice.send(type="read", upto=from_bob["id"], **{"with": "bob"})
    await alice.send(type="read", upto=from_dave["id"], **{"with": "dave"})
    # dave, not blocked, gets both receipts: the same would have reached bob.
    assert (await dave.recv_type("receipt"))["state"] == "delivered"
    assert (await dave.recv_type("receipt"))["state"] == "read"
    assert [f for f in await bob.quiet(0.5) if f["type"] == "receipt"] == []


async def test_the_most_blocks_is_a_setting_with_a_clear_refusal(
    tmp_path: Path, peers: list[Peer]
) -> None:
    server = ServerProcess(tmp_path / "server", {**FAST, "blocks_max": 2}).start()
    try:
        alice = await register(peers, server.port, "alice")
        for nick in ("one", "two"):
            assert (await reply(alice, nick, type="block", nick=nick))["type"] == "ok"
        again = await reply(alice, "again", type="block", nick="two")
        assert again["type"] == "ok", "a repeat is not one more"
        full = await reply(alice, "three", type="block", nick="three")
        assert (full["code"], full["reason"]) == ("forbidden", "too_many_blocks")
        assert "unblock" in full["message"]
        assert (await reply(alice, "l", type="blocks"))["nicks"] == ["one", "two"]
        await reply(alice, "u", type="unblock", nick="one")
        assert (await reply(alice, "three2", type="block", nick="three"))["type"] == "ok"
    finally:
        server.kill()
