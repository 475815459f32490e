"""Blocks on several nodes (issue 16): a block made on node A holds on node B at once.

Two real nodes on one PostgreSQL and one Redis (support/services.py).
"""

from __future__ import annotations

from conftest import Peer, ServerProcess
from support.peers import login
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
