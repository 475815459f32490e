"""Nothing node-local that must be global (issue 13): three ``chinwag serve`` nodes.

Presence, ``who``, typing, DMs to a guest, room joins, the DM quota's
"online?" and read-marker echoes, each across nodes. Real node processes on
loopback, the private PostgreSQL and Redis of support/services.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Peer, ServerProcess
from support.cli import chinwag
from support.peers import connect, login
from support.services import PostgresServer, RedisServer, pg_database, pg_server, redis_server

from chinwag.config import SettingsError, build

__all__ = ["pg_server", "redis_server"]  # the session fixtures, imported for pytest

HEARTBEAT = 0.5  # node_heartbeat: a killed node is forgotten after three of these
SETTINGS = {"argon2_memory_kib": 8192, "argon2_time_cost": 1, "node_heartbeat": HEARTBEAT}
WAIT = 15.0


def start_nodes(
    tmp_path: Path, dsn: str, bus: str, names: str = "abc", **settings: Any
) -> list[ServerProcess]:
    args = ["--store", dsn, "--bus", bus, "--no-announce"]
    nodes = [ServerProcess(tmp_path / n, {**SETTINGS, **settings}, args=args) for n in names]
    try:
        for node in nodes:
            node.start()
    except BaseException:
        for node in nodes:
            node.kill()
        raise
    return nodes


@pytest.fixture
def nodes(
    pg_server: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    """Three nodes on one PostgreSQL and one Redis."""
    dsn = asyncio.run(pg_database(pg_server, tmp_path))
    redis_server.flush()  # nothing held by an earlier test's nodes
    started = start_nodes(tmp_path, dsn, redis_server.url)
    try:
        yield started
    finally:
        for node in started:
            node.kill()


@pytest.fixture
def two_nodes(
    pg_server: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    """Two nodes, a and b, on one PostgreSQL and one Redis (for the modules of one feature
    across nodes: they import this fixture)."""
    dsn = asyncio.run(pg_database(pg_server, tmp_path))
    redis_server.flush()
    started = start_nodes(tmp_path, dsn, redis_server.url, names="ab")
    try:
        yield started
    finally:
        for node in started:
            node.kill()


def test_node_heartbeat_refuses_zero_and_takes_a_little_above() -> None:
    with pytest.raises(SettingsError, match="node_heartbeat must be above 0"):
        build(overrides=["node_heartbeat=0"])
    assert build(overrides=["node_heartbeat=0.01"]).node_heartbeat == 0.01


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (bounded) until ``check()`` holds: the nodes hear of each other within ms."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.1)


async def who(peer: Peer, room: str = "lobby") -> list[str]:
    await peer.send(type="who", room=room)
    return sorted(u["nick"] for u in (await peer.recv_type("who"))["users"])


async def register(peers: list[Peer], port: int, nick: str, **hello: Any) -> Peer:
    peer = await login(peers, port, nick, **hello)
    await peer.send(type="register", password=f"{nick}'s long password")
    await peer.recv_type("ok")
    return peer


async def test_who_and_presence_cover_every_node(
    nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b, c = nodes
    ann = await register(peers, a.port, "ann")
    await register(peers, b.port, "bob")
    await login(peers, c.port, "cat")  # a guest
    everyone = ["ann", "bob", "cat"]

    async def ann_sees_everyone() -> bool:
        return await who(ann) == everyone

    await eventually(ann_sees_everyone, "who on node a lists the users of nodes b and c")
    await ann.quiet(0.3)

    dan = await login(peers, c.port, "dan")
    joined = await ann.recv_type("presence")
    assert (joined["nick"], joined["event"]) == ("dan", "join")
    await dan.send(type="bye")
    await dan.expect_closed()
    left = await ann.recv_type("presence")
    assert (left["nick"], left["event"]) == ("dan", "leave")
    assert await who(ann) == everyone


async def test_an_account_on_two_nodes_is_one_presence(
    nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b, c = nodes
    cat = await login(peers, c.port, "cat")
    phone = await register(peers, a.port, "ann", device="phone")  # a guest, then an account
    joined = await cat.recv_type("presence")
    assert (joined["nick"], joined["event"]) == ("ann", "join")
    laptop = await login(peers, b.port, "ann", password="ann's long password", device="laptop")
    await laptop.send(type="bye")
    await laptop.expect_closed()

    async def ann_listed_once() -> bool:
        return await who(cat) == ["ann", "cat"]

    await eventually(ann_listed_once, "ann is listed once while on nodes a and b")
    frames = await cat.quiet(0.5)
    assert [f for f in frames if f["type"] == "presence"] == [], "no join or leave for node b"
    await phone.send(type="bye")
    await phone.expect_closed()
    left = await cat.recv_type("presence")
    assert (left["nick"], left["event"]) == ("ann", "leave")


async def test_typing_reaches_a_room_and_a_dm_on_other_nodes(
    nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b, _ = nodes
    ann = await login(peers, a.port, "ann")
    bob = await login(peers, b.port, "bob")

    async def bob_is_known_on_a() -> bool:
        return "bob" in await who(ann)

    await eventually(bob_is_known_on_a, "node a hears of bob")
    await bob.send(type="typing", room="lobby")
    notice = await ann.recv_type("typing")
    assert (notice["from"], notice.get("room")) == ("bob", "lobby")
    await ann.send(type="typing", to="bob")
    notice = await bob.recv_type("typing")
    assert (notice["from"], notice.get("to")) == ("ann", "bob")


async def test_a_dm_to_a_guest_on_another_node_is_delivered(
    nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, _, c = nodes
    ann = await register(peers, a.port, "ann")
    cat = await login(peers, c.port, "cat")  # a guest: its DMs live with its session

    async def cat_is_known_on_a() -> bool:
        return "cat" in await who(ann)

    await eventually(cat_is_known_on_a, "node a hears of cat")
    await ann.send(type="dm", to="cat", body="hi cat, from node a", cid="d-1")
    ack = await ann.recv_type("ack")
    got = await cat.recv_type("message")
    assert (got["id"], got["from"], got["body"]) == (ack["id"], "ann", "hi cat, from node a")
    assert (await ann.recv_type("message"))["id"] == ack["id"]  # her own copy
    await cat.send(type="dm", to="ann", body="hi ann", cid="d-2")
    assert (await cat.recv_type("ack"))["type"] == "ack"
    assert (await ann.recv_type("message"))["body"] == "hi ann"


async def test_a_room_joined_on_one_node_reaches_the_accounts_session_on_another(
    nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b, c = nodes
    await register(peers, a.port, "ann", device="phone")
    phone = await login(peers, a.port, "ann", password="ann's long password", device="phone")
    laptop = await login(peers, b.port, "ann", password="ann's long password", device="laptop")
    cat = await login(peers, c.port, "cat")
    await cat.send(type="join", room="dev", ref="j")
    await cat.recv_type("ok")

    await laptop.quiet(0.5)  # cat's presence in the lobby
    await phone.send(type="join", room="dev", ref="j")
    await phone.recv_type("ok")
    joined = await laptop.recv_type("presence")
    assert (joined["room"], joined["nick"], joined["event"]) == ("dev", "ann", "join")
    await cat.send(type="say", room="dev", body="welcome to dev", cid="s-1")
    ack = await cat.recv_type("ack")
    got = await laptop.recv_type("message")
    assert (got["id"], got["room"]) == (ack["id"], "dev"), "the laptop on node b is in #dev"
    await laptop.send(type="say", room="dev", body="thanks", cid="s-2", ref="s")
    assert (await laptop.recv_type("ack"))["ref"] == "s"

    await laptop.send(type="leave", room="dev", ref="l")
    await laptop.recv_type("ok")
    left = await phone.recv_type("presence")
    assert (left["room"], left["event"]) == ("dev", "leave")
    await phone.send(type="say", room="dev", body="gone?", ref="x")
    refused = await phone.recv_type("error")
    assert refused["code"] == "not_member", "the phone on node a left #dev too"


async def test_the_offline_dm_quota_spares_an_account_online_on_another_node(
    pg_server: PostgresServer, redis_server: RedisServer, tmp_path: Path, peers: list[Peer]
) -> None:
    dsn = await pg_database(pg_server, tmp_path)
    redis_server.flush()
    started = start_nodes(tmp_path, dsn, redis_server.url, "ab", offline_quota=2)
    try:
        a, b = started
        ann = await register(peers, a.port, "ann")
        bob = await register(peers, b.port, "bob")

        async def bob_is_known_on_a() -> bool:
            return "bob" in await who(ann)

        await eventually(bob_is_known_on_a, "node a hears of bob")
        for i in range(4):  # twice the offline quota: bob is online, on node b
            await ann.send(type="dm", to="bob", body=f"d{i}", cid=f"d-{i}")
            assert (await ann.recv_type("ack"))["type"] == "ack"
        got = [await bob.recv_type("message") for _ in range(4)]
        assert [m["body"] for m in got] == ["d0", "d1", "d2", "d3"]
        # Delivered: bob's cursor passes them before he leaves (the pong follows the write).
        await bob.send(type="seen", upto=got[-1]["id"])
        await bob.send(type="ping", ref="p")
        assert (await bob.recv_type("pong"))["ref"] == "p"
        await bob.send(type="bye")
        await bob.expect_closed()

        async def bob_is_gone_on_a() -> bool:
            return "bob" not in await who(ann)

        await eventually(bob_is_gone_on_a, "node a hears that bob left")
        replies = []
        for i in range(4, 7):
            await ann.send(type="dm", to="bob", body=f"d{i}", cid=f"d-{i}", ref=f"r{i}")
            reply = await ann.recv()
            while reply["type"] not in ("ack", "error"):
                reply = await ann.recv()
            replies.append(reply.get("code", reply["type"]))
        assert replies == ["ack", "ack", "quota_exceeded"], "offline now: the quota holds"
    finally:
        for node in started:
            node.kill()


async def test_a_read_marker_moved_on_one_node_is_echoed_to_the_account_on_another(
    nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b, _ = nodes
    await register(peers, a.port, "ann", device="phone")
    phone = await login(peers, a.port, "ann", password="ann's long password", device="phone")
    laptop = await login(peers, b.port, "ann", password="ann's long password", device="laptop")
    await laptop.send(type="say", room="lobby", body="note to self", cid="n-1")
    ack = await laptop.recv_type("ack")
    assert (await phone.recv_type("message"))["id"] == ack["id"]

    await phone.send(type="read", room="lobby", upto=ack["id"], ref="r")
    await phone.recv_type("ok")
    echo = await laptop.recv_type("read")
    assert (echo.get("room"), echo["upto"]) == ("lobby", ack["id"])


async def test_a_killed_nodes_users_go_offline_after_three_heartbeats(
    nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b, c = nodes
    ann = await login(peers, a.port, "ann")
    await login(peers, c.port, "cat")

    async def cat_is_known_on_a() -> bool:
        return "cat" in await who(ann)

    await eventually(cat_is_known_on_a, "node a hears of cat")
    await ann.quiet(0.3)
    c.kill()  # kill -9: node c says nothing more
    left = await ann.recv_type("presence", timeout=WAIT)
    assert (left["nick"], left["event"]) == ("cat", "leave")
    assert await who(ann) == ["ann"]
    bob = await login(peers, b.port, "bob")

    async def node_b_forgot_cat() -> bool:
        return await who(bob) == ["ann", "bob"]

    await eventually(node_b_forgot_cat, "node b forgets node c's users too")


async def test_a_node_started_late_learns_who_is_online_already(
    pg_server: PostgresServer, redis_server: RedisServer, tmp_path: Path, peers: list[Peer]
) -> None:
    dsn = await pg_database(pg_server, tmp_path)
    redis_server.flush()
    first = start_nodes(tmp_path, dsn, redis_server.url, "a")
    late: list[ServerProcess] = []
    try:
        await login(peers, first[0].port, "ann")
        late = start_nodes(tmp_path, dsn, redis_server.url, "b")
        bob = await login(peers, late[0].port, "bob")

        async def bob_sees_ann() -> bool:
            return await who(bob) == ["ann", "bob"]

        await eventually(bob_sees_ann, "the late node learns of ann from node a's roster")
    finally:
        for node in first + late:
            node.kill()


async def test_a_guest_on_another_node_is_refused_as_a_dm_partner_once_gone(
    nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, _, c = nodes
    ann = await login(peers, a.port, "ann")
    cat = await connect(peers, c.port)
    await cat.hello("cat")

    async def cat_is_known_on_a() -> bool:
        return "cat" in await who(ann)

    await eventually(cat_is_known_on_a, "node a hears of cat")
    await cat.send(type="bye")
    await cat.expect_closed()

    async def cat_is_gone_on_a() -> bool:
        return "cat" not in await who(ann)

    await eventually(cat_is_gone_on_a, "node a hears that cat left")
    await ann.send(type="dm", to="cat", body="still there?", cid="d-1", ref="d")
    assert (await ann.recv_type("error"))["code"] == "no_such_user"


async def test_failed_logins_on_one_node_lock_the_account_on_another(
    pg_server: PostgresServer, redis_server: RedisServer, tmp_path: Path, peers: list[Peer]
) -> None:
    dsn = await pg_database(pg_server, tmp_path)
    redis_server.flush()
    limits = {"login_fail_account_global_max": 3, "register_address_max": 2}
    started = start_nodes(tmp_path, dsn, redis_server.url, "ab", **limits)
    try:
        a, b = started
        await register(peers, a.port, "ann")
        for _ in range(3):  # the account's limit, all on node a
            guesser = await connect(peers, a.port)
            await guesser.send(type="hello", proto=1, nick="ann", password="a wrong guess")
            assert (await guesser.recv_type("error"))["code"] == "bad_password"

        async def node_b_refuses_ann() -> bool:
            owner = await connect(peers, b.port)
            await owner.send(type="hello", proto=1, nick="ann", password="ann's long password")
            reply = await owner.recv()
            await owner.close()
            return bool(reply["type"] == "error" and reply["code"] == "rate_limited")

        await eventually(node_b_refuses_ann, "node b counts node a's failures")

        # Registrations: one counted on a, one on b; the third, on a, is over the limit.
        await register(peers, b.port, "bob")
        cat = await login(peers, a.port, "cat")

        async def node_a_refuses_cat() -> bool:
            await cat.send(type="register", password="cat's long password", ref="r")
            reply = await cat.recv()
            while reply.get("ref") != "r":
                reply = await cat.recv()
            assert reply["type"] == "error", "a third registration was taken"
            return bool(reply["code"] == "rate_limited")

        await eventually(node_a_refuses_cat, "node a counts node b's registration")
    finally:
        for node in started:
            node.kill()


async def test_an_operator_action_on_one_node_ends_the_accounts_sessions_on_every_node(
    nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b, _ = nodes
    phone = await register(peers, a.port, "ann", device="phone")
    laptop = await login(peers, b.port, "ann", password="ann's long password", device="laptop")
    dsn = a.args[a.args.index("--store") + 1]
    reset = await asyncio.to_thread(
        chinwag,
        "admin", "--data", str(a.data), "--store", dsn, "reset-password", "ann",
        "--password-stdin", stdin="a brand new password\n",
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    for peer in (phone, laptop):  # node a's own, and node b's through the bus
        ended = await peer.recv_type("error")
        assert (ended["code"], ended["reason"]) == ("session_ended", "password_reset")
        await peer.expect_closed()
