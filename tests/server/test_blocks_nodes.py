"""Blocks on several nodes (issue 16): a block made on node A holds on node B at once.

Two real nodes on one PostgreSQL and one Redis (support/services.py).
"""

from __future__ import annotations

import asyncio
import itertools

from conftest import Peer, ServerProcess
from support.peers import login
from support.services import RedisServer
from test_blocks import from_, register, relogin, reply, until
from test_nodes import cluster, pg_server, redis_server

__all__ = ["cluster", "pg_server", "redis_server"]  # fixtures, imported for pytest


async def test_a_block_made_on_one_node_holds_for_the_blockers_session_on_the_other(
    cluster: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = cluster
    on_a = await register(peers, a.port, "alice")
    on_b, _ = await relogin(peers, b.port, "alice", device="phone")
    bob = await register(peers, b.port, "bob")
    carol = await login(peers, b.port, "carol")
    await reply(bob, "s0", type="say", room="lobby", body="before")
    assert (await until(on_b, "before"))[-1]["from"] == "bob", "node b delivers bob to alice"
    assert await reply(on_a, "b", type="block", nick="bob") == {"type": "ok", "ref": "b"}
    # The block travels as a bus event; a round trip through node a orders it
    # before what follows (a message of alice's own, delivered to her on node b).
    await reply(on_a, "m", type="say", room="lobby", body="blocked now")
    await until(on_b, "blocked now")
    await reply(bob, "s1", type="say", room="lobby", body="after the block @alice")
    await reply(bob, "d", type="dm", to="alice", body="dm after the block")
    await bob.send(type="typing", to="alice")
    await reply(carol, "c", type="say", room="lobby", body="marker")
    for device in (on_a, on_b):
        assert from_(await until(device, "marker"), "bob") == []
    assert (await reply(on_b, "l", type="blocks"))["nicks"] == ["bob"]


async def test_a_block_made_while_redis_is_down_holds_on_the_other_node_once_it_is_back(
    cluster: list[ServerProcess], redis_server: RedisServer, peers: list[Peer]
) -> None:
    a, b = cluster
    on_a = await register(peers, a.port, "alice")
    on_b, _ = await relogin(peers, b.port, "alice", device="phone")
    bob = await register(peers, b.port, "bob")
    carol = await login(peers, b.port, "carol")
    redis_server.kill()
    try:
        assert (await reply(on_a, "b", type="block", nick="bob"))["type"] == "ok"
    finally:
        redis_server.start()  # empty: what the stream held is gone
    # Node b learns of the block from the bus event or, should that be lost, by
    # reading the blocks again on resync: either way within a few seconds.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    for n in itertools.count():
        assert loop.time() < deadline, "node b never learned of the block"
        await asyncio.sleep(0.25 if n else 0)  # within flood control (10 say/s)
        for peer, body in ((bob, f"probe {n}"), (carol, f"marker {n}")):
            assert (await reply(peer, "s", type="say", room="lobby", body=body))["type"] == "ack"
        if not from_(await until(on_b, f"marker {n}", timeout=30), "bob"):
            break
    await reply(bob, "last", type="say", room="lobby", body="after the outage")
    await reply(carol, "end", type="say", room="lobby", body="the end")
    assert from_(await until(on_b, "the end", timeout=30), "bob") == []
