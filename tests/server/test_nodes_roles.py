"""A guest's room powers across nodes (issue 19, ircroles): two ``chinwag serve`` nodes on
one PostgreSQL and one Redis, JSON-lines peers on each."""

from __future__ import annotations

from typing import Any

from conftest import Peer, ServerProcess
from support.peers import login
from support.services import pg_server, redis_server
from test_nodes_shared import eventually, register, two_nodes

__all__ = ["pg_server", "redis_server", "two_nodes"]  # the session fixtures, imported for pytest


async def answer(peer: Peer, ref: str, **frame: Any) -> dict[str, Any]:
    await peer.send(ref=ref, **frame)
    while (got := await peer.recv()).get("ref") != ref:
        pass
    return got


async def test_a_guests_voice_and_locks_hold_on_every_node_and_end_with_it(
    two_nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = two_nodes
    gus = await login(peers, a.port, "gus")  # a guest on node a
    assert (await answer(gus, "j", type="join", room="den"))["type"] == "ok"
    ann = await register(peers, b.port, "ann")  # an account on node b
    assert (await answer(ann, "j", type="join", room="den"))["type"] == "ok"
    assert (await answer(gus, "m", type="room", room="den", announce=True))["type"] == "ok"

    async def ann_is_refused() -> bool:
        said = await answer(ann, "s", type="say", room="den", body="hello?")
        return said.get("reason") == "announce"

    await eventually(ann_is_refused, "node b holds gus's announce room")
    assert (await answer(gus, "v", type="voice", room="den", nick="ann"))["type"] == "ok"
    voiced = await ann.recv_type("presence")
    assert (voiced["event"], voiced["by"]) == ("voice", "gus")
    assert (await answer(ann, "s2", type="say", room="den", body="voiced"))["type"] == "ack"
    assert (await answer(gus, "p", type="room", room="den", private=True))["type"] == "ok"
    while not (await ann.recv_type("room_info"))["private"]:  # node b heard it
        pass
    eve = await login(peers, b.port, "eve")
    refused = await answer(eve, "j", type="join", room="den")
    assert (refused["code"], refused["reason"]) == ("forbidden", "private")

    await gus.send(type="bye")  # node a undoes what gus made; node b hears of each
    await gus.recv_type("bye")
    seen: dict[str, Any] = {}
    while "unvoice" not in seen or "room_info" not in seen:
        frame = await ann.recv()
        if frame["type"] == "presence":
            seen[frame["event"]] = frame
        elif frame["type"] == "room_info" and not frame["private"] and not frame["announce"]:
            seen["room_info"] = frame
    assert seen["unvoice"]["by"] == "gus"
    assert (await answer(eve, "j2", type="join", room="den"))["type"] == "ok"
    assert (await answer(eve, "s", type="say", room="den", body="open"))["type"] == "ack"
