"""Issue 15 (evfanout) over real sockets: ``caught_up.markers``, the account's read
markers at login, only for the conversations it may see now."""

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


async def account(peers: list[Peer], port: int, nick: str, *, device: str = "default") -> Peer:
    """Log in as ``nick`` (registering it first if new), through its caught_up."""
    peer = await connect(peers, port)
    await peer.send(type="hello", proto=1, nick=nick, password=PASSWORD, device=device)
    welcome = await peer.recv()
    if welcome["type"] == "error":  # no such account yet: register it as a guest
        await peer.close()
        peer = await login(peers, port, nick)
        assert (await reply(peer, "reg", type="register", password=PASSWORD))["type"] == "ok"
        return await account(peers, port, nick, device=device)
    assert welcome["type"] == "welcome", welcome
    await peer.recv_type("caught_up")
    return peer


async def caught_up(peers: list[Peer], port: int, nick: str, device: str) -> dict[str, Any]:
    """The caught_up of a new login of ``nick`` on ``device``."""
    peer = await connect(peers, port)
    await peer.send(type="hello", proto=1, nick=nick, password=PASSWORD, device=device)
    assert (await peer.recv())["type"] == "welcome"
    return await peer.recv_type("caught_up")


async def said(peer: Peer, ref: str, **frame: Any) -> int:
    ack = await reply(peer, ref, **frame)
    assert ack["type"] == "ack", ack
    return int(ack["id"])


async def test_a_new_login_learns_where_the_account_read_each_conversation(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await account(peers, server.port, "Alice")
    bob = await account(peers, server.port, "Bob")
    assert (await reply(alice, "j", type="join", room="tea"))["type"] == "ok"
    lobby = await said(bob, "s1", type="say", room="lobby", body="hello")
    tea = await said(alice, "s2", type="say", room="tea", body="brewing")
    dm = await said(bob, "d", type="dm", to="alice", body="psst")
    await alice.recv_type("message")  # lobby
    await alice.recv_type("message")  # the DM (her own tea message is acked only)
    for ref, where in (("r1", {"room": "lobby"}), ("r2", {"room": "tea"}), ("r3", {"with": "bob"})):
        upto = {"r1": lobby, "r2": tea, "r3": dm}[ref]
        assert (await reply(alice, ref, type="read", upto=upto, **where))["type"] == "ok"
    await said(bob, "s3", type="say", room="lobby", body="anyone?")

    # A device that never read anything starts with the account's markers: the
    # unread separator goes after what was read elsewhere, not after the backlog.
    got = await caught_up(peers, server.port, "alice", "phone")
    assert got["markers"] == {"lobby": lobby, "tea": tea, "@Bob": dm}
    assert got["unread"] == {"lobby": 1}  # "anyone?", after the lobby marker

    # A room left is not told any more; a nick she blocks is not either.
    assert (await reply(alice, "l", type="leave", room="tea"))["type"] == "ok"
    assert (await reply(alice, "b", type="block", nick="bob"))["type"] == "ok"
    got = await caught_up(peers, server.port, "alice", "tablet")
    assert got["markers"] == {"lobby": lobby}


async def test_without_markers_caught_up_has_none_and_a_guest_never_does(
    server: ServerProcess, peers: list[Peer]
) -> None:
    await account(peers, server.port, "carol")
    got = await caught_up(peers, server.port, "carol", "second")
    assert "markers" not in got
    guest = await connect(peers, server.port)
    await guest.send(type="hello", proto=1, nick="gus")
    assert (await guest.recv())["type"] == "welcome"
    assert "markers" not in await guest.recv_type("caught_up")
