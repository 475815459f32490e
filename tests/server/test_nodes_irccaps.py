"""Monitored nicks and real names across nodes (irccaps): two ``chinwag serve`` nodes on one
PostgreSQL and one Redis (support/services.py), JSON-lines peers on each."""

from __future__ import annotations

from conftest import Peer, ServerProcess
from support.peers import login
from support.services import pg_server, redis_server
from test_nodes_shared import eventually, register, two_nodes

__all__ = ["pg_server", "redis_server", "two_nodes"]  # the session fixtures, imported for pytest


async def test_a_nick_is_online_while_it_has_a_session_on_any_node(
    two_nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = two_nodes
    bob = await login(peers, b.port, "bob")
    await bob.send(type="monitor", add=["ann"], ref="m")
    assert (await bob.recv_type("monitor"))["offline"] == ["ann"]

    ann = await register(peers, a.port, "ann", device="phone")  # on the other node
    came = await bob.recv_type("monitored")
    assert came == {"type": "monitored", "nick": "ann", "online": True}

    async def bob_sees_ann_online() -> bool:
        await bob.send(type="monitor", ref="s")
        return bool((await bob.recv_type("monitor"))["online"] == ["ann"])

    await eventually(bob_sees_ann_online, "node b counts ann of node a as online")
    laptop = await login(peers, b.port, "ann", password="ann's long password", device="laptop")
    await ann.send(type="bye")
    await ann.recv_type("bye")  # ann is still online, on node b
    assert [f for f in await bob.quiet(0.5) if f["type"] == "monitored"] == []

    await laptop.send(type="bye")
    await laptop.recv_type("bye")
    went = await bob.recv_type("monitored")
    assert went == {"type": "monitored", "nick": "ann", "online": False}


async def test_a_real_name_change_reaches_room_peers_on_the_other_node(
    two_nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = two_nodes
    bob = await login(peers, b.port, "bob")  # in the lobby with ann
    ann = await login(peers, a.port, "ann")

    async def bob_sees_ann() -> bool:
        await bob.send(type="who", room="lobby")
        return "ann" in {u["nick"] for u in (await bob.recv_type("who"))["users"]}

    await eventually(bob_sees_ann, "node b lists ann of node a")
    await ann.send(type="setname", real_name="Ann Example", ref="s")
    await ann.recv_type("ok")
    told = {"type": "setname", "nick": "ann", "real_name": "Ann Example"}
    assert await bob.recv_type("setname") == told


async def test_a_bot_flag_set_on_one_node_shows_on_the_other(
    two_nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = two_nodes
    bob = await login(peers, b.port, "bob")
    ann = await login(peers, a.port, "ann")

    async def bob_sees_ann_as(bot: bool) -> bool:
        await bob.send(type="who", room="lobby")
        rows = {u["nick"]: u.get("bot", False) for u in (await bob.recv_type("who"))["users"]}
        return rows.get("ann") is bot

    await eventually(lambda: bob_sees_ann_as(False), "node b lists ann of node a")
    await ann.send(type="bot", on=True, ref="b")
    await ann.recv_type("ok")
    await eventually(lambda: bob_sees_ann_as(True), "node b shows ann as a bot")


async def test_a_guest_registering_on_one_node_is_told_on_the_other(
    two_nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = two_nodes
    bob = await login(peers, b.port, "bob")
    ann = await login(peers, a.port, "ann")

    async def bob_sees_ann() -> bool:
        await bob.send(type="who", room="lobby")
        return "ann" in {u["nick"] for u in (await bob.recv_type("who"))["users"]}

    await eventually(bob_sees_ann, "node b lists ann of node a")
    await ann.send(type="register", password="ann's long password", ref="r")
    await ann.recv_type("ok")
    assert await bob.recv_type("account") == {"type": "account", "nick": "ann"}


async def test_an_account_s_bot_flag_is_one_state_on_every_node_it_is_online_on(
    two_nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = two_nodes
    phone = await register(peers, a.port, "ann", device="phone")
    await login(peers, b.port, "ann", password="ann's long password", device="laptop")
    bob = await login(peers, b.port, "bob")

    async def bob_sees_ann_as(bot: bool) -> bool:
        await bob.send(type="who", room="lobby")
        rows = {u["nick"]: u.get("bot", False) for u in (await bob.recv_type("who"))["users"]}
        return rows.get("ann") is bot

    await eventually(lambda: bob_sees_ann_as(False), "node b lists ann")
    await phone.send(type="bot", on=True, ref="b")  # on node a; ann is on node b too
    await phone.recv_type("ok")
    await eventually(lambda: bob_sees_ann_as(True), "node b's own ann is a bot too")
