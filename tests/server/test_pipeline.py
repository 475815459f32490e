"""Pipelined messages: many in flight per connection, replies still in request order.

A connection's consecutive `say`s (and `dm`s to someone online) are queued for
commit without waiting for each other; everything a client can observe must be
as if they were carried out one by one: replies in request order, ids
increasing in request order, refusals in their place, nothing acked lost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Peer, ServerProcess
from support.peers import login


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose flood control lets a run of 120 messages through."""
    srv = ServerProcess(
        tmp_path / "server",
        {"argon2_memory_kib": 8192, "argon2_time_cost": 1, "rate_burst": 500},
    ).start()
    try:
        yield srv
    finally:
        srv.kill()


def line(**frame: Any) -> bytes:
    return json.dumps(frame).encode() + b"\n"


def says(count: int, ref: str = "r", cid: str | None = None) -> bytes:
    """``count`` says to the lobby in one write: bodies "0".."n", refs ref0.., cids cid0.."""
    return b"".join(
        line(type="say", room="lobby", body=f"{i}", ref=f"{ref}{i}")
        if cid is None
        else line(type="say", room="lobby", body=f"{i}", ref=f"{ref}{i}", cid=f"{cid}{i}")
        for i in range(count)
    )


async def replies(peer: Peer, count: int) -> list[dict[str, Any]]:
    """The next ``count`` frames that answer a request (they carry a ref)."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        frame = await peer.recv()
        if "ref" in frame:
            got.append(frame)
    return got


async def test_replies_to_a_pipelined_run_keep_request_order_with_refusals_in_place(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await login(peers, server.port, "bob")
    batch = b""
    expected: list[tuple[str, str]] = []  # (ref, reply type)
    for i in range(120):
        ref = f"r{i}"
        if i == 30:
            batch += line(type="say", room="nowhere", body="x", ref=ref)  # not a member
            expected.append((ref, "error"))
        elif i == 60:
            batch += line(type="ping", ref=ref)
            expected.append((ref, "pong"))
        elif i == 90:
            batch += line(type="say", room="lobby", body="", ref=ref)  # empty body
            expected.append((ref, "error"))
        elif i % 7 == 0:
            batch += line(type="dm", to="Bob", body=f"dm {i}", cid=f"c{i}", ref=ref)
            expected.append((ref, "ack"))
        else:
            batch += line(type="say", room="lobby", body=f"say {i}", cid=f"c{i}", ref=ref)
            expected.append((ref, "ack"))
    await alice.send_raw(batch)  # one write: the server reads the whole run at once

    got = await replies(alice, len(expected))
    assert [(f["ref"], f["type"]) for f in got] == expected
    assert got[30]["code"] == "not_member" and got[90]["code"] == "bad_body"
    ids = [f["id"] for f in got if f["type"] == "ack"]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "ids follow request order"

    # Bob sees every accepted message once, in request order (room and DM alike).
    bodies = [f"dm {i}" if i % 7 == 0 else f"say {i}" for i in range(120) if i not in (30, 60, 90)]
    seen: list[str] = []
    while len(seen) < len(bodies):
        frame = await bob.recv_type("message")
        seen.append(frame["body"])
    assert seen == bodies


async def test_a_dm_to_someone_offline_waits_its_turn_between_pipelined_messages(
    server: ServerProcess, peers: list[Peer]
) -> None:
    carol = await login(peers, server.port, "carol")
    await carol.send(type="register", password="correct horse", ref="reg")
    assert (await carol.recv_type("ok"))["ref"] == "reg"
    await carol.close()
    alice = await login(peers, server.port, "alice")
    batch = b"".join(
        line(type="dm", to="carol", body=f"{i}", ref=f"r{i}")
        if i in (5, 6, 20)
        else line(type="dm", to="nobody-here", body="?", ref=f"r{i}")
        if i == 12
        else line(type="say", room="lobby", body=f"{i}", ref=f"r{i}")
        for i in range(40)
    )
    await alice.send_raw(batch)
    got = await replies(alice, 40)
    assert [f["ref"] for f in got] == [f"r{i}" for i in range(40)]
    assert got[12]["type"] == "error" and got[12]["code"] == "no_such_user"
    ids = [f["id"] for f in got if f["type"] == "ack"]
    assert len(ids) == 39 and ids == sorted(ids)

    back = await Peer.connect(server.port)
    peers.append(back)
    await back.send(type="hello", proto=1, nick="carol", password="correct horse")
    assert (await back.recv())["type"] == "welcome"
    replayed = []
    while (frame := await back.recv())["type"] == "message":
        replayed.append(frame)
    assert frame["type"] == "caught_up" and frame["missed"] == 39
    assert [f["body"] for f in replayed if "to" in f] == ["5", "6", "20"]
    assert [f["id"] for f in replayed] == sorted(f["id"] for f in replayed)


async def test_a_resent_cid_in_the_same_run_is_stored_once(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await login(peers, server.port, "bob")
    batch = b"".join(
        line(type="say", room="lobby", body="once", cid="same", ref=f"r{i}") for i in range(5)
    )
    await alice.send_raw(batch + line(type="say", room="lobby", body="after", ref="last"))
    got = await replies(alice, 6)
    assert [f["ref"] for f in got] == ["r0", "r1", "r2", "r3", "r4", "last"]
    assert len({f["id"] for f in got[:5]}) == 1, "every resend is acked with the first id"
    assert got[5]["id"] > got[0]["id"]
    assert [(await bob.recv_type("message"))["body"] for _ in range(2)] == ["once", "after"]
    assert await bob.quiet(0.3) == []


async def test_flood_control_refuses_the_rest_of_a_run_in_order(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(
        tmp_path / "srv",
        {"rate_per_second": 0.01, "rate_burst": 5, "argon2_memory_kib": 8192},
    ).start()
    try:
        alice = await login(peers, srv.port, "alice")
        await alice.send_raw(says(12))
        got = await replies(alice, 12)
        assert [f["ref"] for f in got] == [f"r{i}" for i in range(12)]
        assert [f["type"] for f in got] == ["ack"] * 5 + ["error"] * 7
        assert all(f["code"] == "rate_limited" for f in got[5:])
    finally:
        srv.kill()


async def test_acks_of_a_pipelined_run_precede_bye_and_the_close_after_a_half_close(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await login(peers, server.port, "alice")
    await alice.send_raw(says(50) + line(type="bye", ref="bye"))
    frames = await alice.expect_closed()
    answered = [f for f in frames if "ref" in f]
    assert [f["ref"] for f in answered] == [f"r{i}" for i in range(50)] + ["bye"]
    assert answered[-1]["type"] == "bye"

    bob = await login(peers, server.port, "bob")
    await bob.send_raw(says(50, ref="b"))
    bob.writer.write_eof()  # no more requests: the server answers all 50, then closes
    frames = await bob.expect_closed()
    assert [f["ref"] for f in frames if f.get("type") == "ack"] == [f"b{i}" for i in range(50)]


async def test_sigterm_with_a_pipelined_run_in_flight_acks_what_it_stored_then_says_bye(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await login(peers, server.port, "alice", device="phone")
    await alice.send_raw(says(300, cid="t"))
    first = await alice.recv_type("ack")  # the run is being carried out
    stopping = asyncio.get_running_loop().run_in_executor(None, server.stop)
    frames = await alice.expect_closed(timeout=15)
    assert await stopping == 0
    assert frames[-1] == {"type": "bye"}, frames[-3:]
    acks = [first] + [f for f in frames if f["type"] == "ack"]
    assert [f["ref"] for f in acks] == [f"r{i}" for i in range(len(acks))]

    # Every acked message was stored: after a restart, its cid is recognised.
    server.start()
    back = await login(peers, server.port, "alice", device="phone")  # the same guest
    last = acks[-1]
    await back.send(type="say", room="lobby", body="again", cid=last["cid"], ref="again")
    assert (await back.recv_type("ack"))["id"] == last["id"], "the acked message was kept"
