"""Issue 15 across nodes (real node processes on the private PostgreSQL and Redis of
support/services.py): the receipts setting reaches the account's sessions on another
node, and receipts stored on one node are handed over at a login on another."""

from __future__ import annotations

from conftest import Peer, ServerProcess
from support.peers import login
from test_nodes_shared import nodes, pg_server, redis_server, register

__all__ = ["nodes", "pg_server", "redis_server"]  # fixtures, imported for pytest


async def reply(peer: Peer, ref: str, **frame: object) -> dict[str, object]:
    await peer.send(ref=ref, **frame)
    while (got := await peer.recv()).get("ref") != ref:
        pass
    return got


async def test_the_setting_and_stored_receipts_reach_every_node(
    nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b, c = nodes
    await register(peers, a.port, "ann", device="phone")
    phone = await login(peers, a.port, "ann", password="ann's long password", device="phone")
    laptop = await login(peers, b.port, "ann", password="ann's long password", device="laptop")
    assert (await reply(phone, "on", type="receipts", on=True))["type"] == "ok"
    assert await laptop.recv_type("settings") == {"type": "settings", "receipts": True}

    bob = await register(peers, b.port, "bob")
    assert (await reply(bob, "on", type="receipts", on=True))["type"] == "ok"
    ack = await reply(phone, "dm", type="dm", to="bob", body="across nodes")
    assert (await bob.recv_type("message"))["id"] == ack["id"]
    await bob.send(type="seen", upto=ack["id"])
    assert (await reply(bob, "rd", type="read", upto=ack["id"], **{"with": "ann"}))["type"] == "ok"
    assert (await phone.recv_type("receipt"))["state"] == "delivered"
    assert (await phone.recv_type("receipt"))["state"] == "read"

    tablet = await Peer.connect(c.port)
    peers.append(tablet)
    caught_up = await tablet.hello("ann", password="ann's long password", device="tablet")
    assert caught_up["receipts"] == {"@bob": {"delivered": ack["id"], "read": ack["id"]}}
