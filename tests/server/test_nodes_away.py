"""Away messages across nodes (issue 19): two ``chinwag serve`` nodes on one PostgreSQL
and one Redis (support/services.py), JSON-lines peers on each."""

from __future__ import annotations

from conftest import Peer, ServerProcess
from support.peers import login
from support.services import pg_server, redis_server
from test_nodes_shared import eventually, register, two_nodes

__all__ = ["pg_server", "redis_server", "two_nodes"]  # the session fixtures, imported for pytest


async def away_of(peer: Peer, nick: str) -> str | None:
    await peer.send(type="who", room="lobby")
    rows = (await peer.recv_type("who"))["users"]
    found: dict[str, str | None] = {u["nick"]: u.get("away") for u in rows}
    return found.get(nick, "not listed")


async def test_away_set_on_one_node_is_told_shown_and_acked_on_the_other(
    two_nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = two_nodes
    ann = await register(peers, a.port, "ann", device="phone")
    laptop = await login(peers, b.port, "ann", password="ann's long password", device="laptop")
    bob = await login(peers, b.port, "bob")

    async def bob_sees_ann() -> bool:
        return await away_of(bob, "ann") is None

    await eventually(bob_sees_ann, "node b lists ann of node a")
    await ann.send(type="away", message="on the train", ref="a")
    await ann.recv_type("ok")
    notice = await bob.recv_type("away")
    assert notice == {"type": "away", "nick": "ann", "message": "on the train"}
    assert (await laptop.recv_type("away"))["message"] == "on the train"
    assert await away_of(bob, "ann") == "on the train"
    await bob.send(type="dm", to="ann", body="where are you?", ref="d")
    assert (await bob.recv_type("ack"))["away"] == "on the train"

    await laptop.send(type="away", ref="back")  # back, from the other node
    await laptop.recv_type("ok")
    assert (await bob.recv_type("away"))["message"] is None
    assert (await ann.recv_type("away"))["message"] is None
    assert await away_of(bob, "ann") is None
