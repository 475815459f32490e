"""A guest's new nick across nodes (ircmsg): two ``chinwag serve`` nodes on one
PostgreSQL and one Redis (support/services.py), JSON-lines peers on each."""

from __future__ import annotations

import asyncio

from conftest import Peer, ServerProcess
from support.peers import connect, login
from support.services import pg_server, redis_server
from test_nodes_shared import two_nodes

__all__ = ["pg_server", "redis_server", "two_nodes"]  # the session fixtures, imported for pytest


async def hello(peer: Peer, nick: str) -> dict[str, object]:
    await peer.send(type="hello", proto=1, nick=nick)
    return await peer.recv()


async def test_a_rename_on_one_node_is_seen_and_held_on_the_other(
    two_nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = two_nodes
    zed = await login(peers, a.port, "zed")
    bob = await login(peers, b.port, "bob")
    deadline = asyncio.get_running_loop().time() + 20
    while True:  # bob's node hears of zed (and the other way) a moment after the logins
        await bob.send(type="who", room="lobby")
        users = {u["nick"] for u in (await bob.recv_type("who"))["users"]}
        if users == {"bob", "zed"}:
            break
        assert asyncio.get_running_loop().time() < deadline, users
        await asyncio.sleep(0.1)
    await bob.send(type="nick", nick="zed", ref="t")  # held on the other node
    assert (await bob.recv_type("error"))["code"] == "nick_taken"

    await zed.send(type="nick", nick="zoe", ref="n")
    while (answer := await zed.recv_type("presence"))["event"] != "nick":
        pass  # bob's join
    assert answer["ref"] == "n"
    told = await bob.recv_type("presence")
    assert told == {"type": "presence", "event": "nick", "nick": "zed", "new": "zoe"}
    await bob.send(type="who", room="lobby")
    assert {u["nick"] for u in (await bob.recv_type("who"))["users"]} == {"bob", "zoe"}

    other = await connect(peers, b.port)  # zed is free at once; zoe is taken
    while (reply := await hello(other, "zoe"))["type"] != "error":
        assert asyncio.get_running_loop().time() < deadline, "zoe was never held"
        await asyncio.sleep(0.1)
    assert reply["code"] == "nick_taken"
    assert (await hello(other, "zed"))["type"] == "welcome"


async def test_an_invisible_guest_stays_invisible_on_the_other_node_once_renamed(
    two_nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = two_nodes
    zed = await login(peers, a.port, "zed")
    await zed.send(type="invisible", on=True, ref="i")
    await zed.recv_type("ok")
    bob = await login(peers, b.port, "bob")

    async def invisible_on_b() -> int:
        await bob.send(type="stats")
        return int((await bob.recv_type("stats"))["invisible"])

    deadline = asyncio.get_running_loop().time() + 20
    while await invisible_on_b() != 1:  # node b hears that zed is +i a moment later
        assert asyncio.get_running_loop().time() < deadline, "node b never counted zed"
        await asyncio.sleep(0.1)
    await zed.send(type="nick", nick="zoe", ref="n")
    told = await bob.recv_type("presence")
    assert (told["event"], told["new"]) == ("nick", "zoe")
    assert await invisible_on_b() == 1, "the new nick is the same invisible person"
