"""Protocol §8 over real sockets against a real server process: edit, delete, react, mentions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import Peer, ServerProcess
from support.peers import login

PASSWORD = "correct horse"


async def register(peers: list[Peer], port: int, nick: str) -> Peer:
    peer = await login(peers, port, nick)
    await peer.send(type="register", password=PASSWORD, ref="reg")
    assert await peer.recv_type("ok") == {"type": "ok", "ref": "reg"}
    return peer


async def relogin(peers: list[Peer], port: int, nick: str) -> list[dict[str, Any]]:
    """Log in as an account: every frame from welcome to caught_up."""
    peer = await Peer.connect(port)
    peers.append(peer)
    await peer.send(type="hello", proto=1, nick=nick, password=PASSWORD)
    frames = [await peer.recv()]
    while frames[-1]["type"] != "caught_up":
        frames.append(await peer.recv())
    return frames


async def reply(peer: Peer, ref: str, **frame: Any) -> dict[str, Any]:
    await peer.send(ref=ref, **frame)
    while (got := await peer.recv()).get("ref") != ref:
        pass
    return got


async def test_welcome_names_the_features_and_an_edit_of_someone_elses_is_forbidden(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await Peer.connect(server.port)
    peers.append(alice)
    await alice.send(type="hello", proto=1, nick="alice")
    welcome = await alice.recv()
    assert {"edit", "delete", "react"} <= set(welcome["features"])
    assert (await alice.recv())["type"] == "caught_up"
    bob = await login(peers, server.port, "bob")
    ack = await reply(alice, "s", type="say", room="lobby", body="mine")
    refused = await reply(bob, "e", type="edit", id=ack["id"], body="yours")
    assert (refused["type"], refused["code"], refused["reason"]) == (
        "error",
        "forbidden",
        "not_sender",
    )
    edit = await reply(alice, "e", type="edit", id=ack["id"], body="mine, fixed")
    assert edit["type"] == "ack" and edit["id"] > ack["id"]
    edited = await bob.recv_type("edited")
    assert (edited["target"], edited["body"], edited["from"]) == (ack["id"], "mine, fixed", "alice")
    page = await reply(bob, "h", type="history", room="lobby")
    [shown] = page["messages"]
    assert (shown["body"], shown["edited"]) == ("mine, fixed", edited["ts"])


async def test_a_deleted_body_is_gone_from_disk_and_stays_gone_after_kill_9_and_a_resent_cid(
    server: ServerProcess, peers: list[Peer]
) -> None:
    secret = "my password is swordfish-4242"
    alice = await register(peers, server.port, "alice")
    bob = await login(peers, server.port, "bob")
    ack = await reply(alice, "s", type="say", room="lobby", body=secret, cid="c-1")
    await reply(alice, "e", type="edit", id=ack["id"], body=secret + " (edited)")
    deleted = await reply(alice, "d", type="delete", id=ack["id"], cid="d-1")
    assert deleted["type"] == "ack"
    assert (await bob.recv_type("deleted"))["target"] == ack["id"]
    server.kill()  # kill -9 right after the ack
    on_disk = b"".join(p.read_bytes() for p in server.data.rglob("*.db*") if p.is_file())
    assert secret.encode() not in on_disk, "the body is erased from the table, index and WAL"
    server.start()
    for peer in peers:
        await peer.close()
    peers.clear()
    frames = await relogin(peers, server.port, "alice")
    alice = peers[-1]
    again = await reply(alice, "r", type="say", room="lobby", body=secret, cid="c-1")
    assert (again["type"], again["id"]) == ("ack", ack["id"])
    page = await reply(alice, "h", type="history", room="lobby")
    [shown] = page["messages"]
    assert shown["deleted"] is True and "body" not in shown
    assert frames[-1]["type"] == "caught_up"


async def test_a_burst_of_edits_and_reactions_survives_kill_9_and_reaches_a_device_that_was_away(
    tmp_path: Path, peers: list[Peer]
) -> None:
    fast = {"argon2_memory_kib": 8192, "argon2_time_cost": 1, "rate_burst": 100}
    server = ServerProcess(tmp_path / "server", {**fast, "account_budget": 1000})
    server.start()
    try:
        await burst(server, peers)
    finally:
        server.kill()


async def burst(server: ServerProcess, peers: list[Peer]) -> None:
    alice = await register(peers, server.port, "alice")
    bob = await register(peers, server.port, "bob")
    ack = await reply(alice, "s", type="say", room="lobby", body="v0")
    await bob.recv_type("message")
    await bob.send(type="bye")
    await bob.expect_closed()
    for n in range(1, 21):
        await alice.send(type="edit", id=ack["id"], body=f"v{n}", cid=f"e{n}")
        await alice.send(type="react", id=ack["id"], emoji="👍", on=n % 2 == 1, cid=f"r{n}")
    acks = [await alice.recv_type("ack") for _ in range(40)]
    assert len({a["id"] for a in acks}) == 40
    server.kill()
    server.start()
    for peer in peers:
        await peer.close()
    peers.clear()
    frames = await relogin(peers, server.port, "bob")
    stream = frames[1:-1]
    assert [f["id"] for f in stream] == sorted(a["id"] for a in acks)
    assert [f["body"] for f in stream if f["type"] == "edited"] == [f"v{n}" for n in range(1, 21)]
    assert [f["on"] for f in stream if f["type"] == "reacted"] == [n % 2 == 1 for n in range(1, 21)]
    assert frames[-1]["missed"] == 0
    page = await reply(peers[-1], "h", type="history", room="lobby")
    [shown] = page["messages"]
    assert shown["body"] == "v20" and "reactions" not in shown  # the 20th put it off


async def test_a_mention_of_someone_who_cannot_see_the_room_is_no_mention(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await login(peers, server.port, "bob")
    await login(peers, server.port, "cy")
    for peer in (alice, bob):
        await reply(peer, "j", type="join", room="den")
    await reply(alice, "s", type="say", room="den", body="@bob @cy look")
    msg = await bob.recv_type("message")
    assert msg["mentions"] == ["bob"]
