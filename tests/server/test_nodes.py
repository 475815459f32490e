"""Several ``chinwag serve`` nodes on one PostgreSQL (issue 13), and the one-node default.

Real servers: node processes on loopback, the private PostgreSQL cluster of
support/services.py (a database of its own per test).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Peer, ServerProcess
from support.peers import connect, login
from support.services import PostgresServer, RedisServer, pg_database, pg_server, redis_server

from chinwag.config import SettingsError, build

__all__ = ["pg_server", "redis_server"]  # the session fixtures, imported for pytest

FAST_HASH = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}

_DEFAULT_SERVER = """
import asyncio, sys
from pathlib import Path
from chinwag.config import build
from chinwag.server.app import Server

async def main() -> None:
    server = await Server.open(build(host="127.0.0.1", port=0, announce=False), Path(sys.argv[1]))
    await server.shutdown()

asyncio.run(main())
print(sorted({m.split(".")[0] for m in sys.modules} & {"asyncpg", "redis"}))
"""


def test_a_one_node_server_loads_neither_asyncpg_nor_redis(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _DEFAULT_SERVER, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("mysql://db/chat", "is sqlite or a postgresql://"),
        ("postgresql://chat:s3cret@db:5432/chat", "PGPASSWORD"),
    ],
)
def test_a_store_other_than_sqlite_or_postgresql_or_with_a_password_is_refused(
    value: str, says: str
) -> None:
    with pytest.raises(SettingsError, match=says) as caught:
        build(overrides=[f"store={value}"])
    assert "s3cret" not in str(caught.value)


def test_a_bus_other_than_local_or_redis_or_with_a_password_is_refused() -> None:
    with pytest.raises(SettingsError, match="is local or a redis://"):
        build(bus="amqp://mq/chat")
    with pytest.raises(SettingsError, match="private network") as caught:
        build(bus="redis://:s3cret@cache:6380/0")
    assert "s3cret" not in str(caught.value)


def test_bus_stream_max_and_store_timeout_refuse_zero_and_take_one() -> None:
    with pytest.raises(SettingsError, match="bus_stream_max must be at least 1"):
        build(overrides=["bus_stream_max=0"])
    with pytest.raises(SettingsError, match="store_timeout must be above 0"):
        build(overrides=["store_timeout=0"])
    settings = build(overrides=["bus_stream_max=1", "store_timeout=0.5"])
    assert (settings.bus_stream_max, settings.store_timeout) == (1, 0.5)


def test_a_postgresql_store_without_a_password_is_taken() -> None:
    assert build(store="postgresql://chat@db:5433/chat").store == "postgresql://chat@db:5433/chat"


def _nodes(tmp_path: Path, dsn: str, *more: str) -> list[ServerProcess]:
    args = ["--store", dsn, "--no-announce", *more]
    return [ServerProcess(tmp_path / name, FAST_HASH, args=args) for name in ("a", "b")]


@pytest.fixture
def two_nodes(pg_server: PostgresServer, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    import asyncio

    nodes = _nodes(tmp_path, asyncio.run(pg_database(pg_server, tmp_path)))
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.kill()


async def test_an_account_registered_on_one_node_logs_in_on_another_and_reads_its_room(
    two_nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = two_nodes
    ann = await login(peers, a.port, "ann")
    await ann.send(type="register", password="correct horse battery")
    assert (await ann.recv_type("ok"))["type"] == "ok"
    await ann.send(type="say", room="lobby", body="hello from node a", cid="c-1")
    ack = await ann.recv_type("ack")

    guest = await connect(peers, b.port)
    await guest.send(type="hello", proto=1, nick="ann")
    refused = await guest.recv_type("error")
    assert refused["code"] == "password_required", "node b knows the account made on node a"

    again = await login(peers, b.port, "ann", password="correct horse battery")
    await again.send(type="history", room="lobby", limit=10)
    history = await again.recv_type("history")
    assert [(m["id"], m["body"]) for m in history["messages"]] == [(ack["id"], "hello from node a")]


@pytest.fixture
def cluster(
    pg_server: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    """Two nodes on one PostgreSQL and one Redis."""
    import asyncio

    dsn = asyncio.run(pg_database(pg_server, tmp_path))
    redis_server.flush()  # no names held by an earlier test's nodes
    nodes = _nodes(tmp_path, dsn, "--bus", redis_server.url)
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.kill()


async def test_clients_on_two_nodes_chat_in_a_room_and_in_dms(
    cluster: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = cluster
    ann = await login(peers, a.port, "ann")
    await ann.send(type="register", password="ann's long password")
    await ann.recv_type("ok")
    bob = await login(peers, b.port, "bob")
    await bob.send(type="register", password="bob's long password")
    await bob.recv_type("ok")

    await ann.send(type="say", room="lobby", body="hello from a", cid="c-1")
    ack = await ann.recv_type("ack")
    got = await bob.recv_type("message")
    assert (got["id"], got["from"], got["body"]) == (ack["id"], "ann", "hello from a")
    assert (await ann.recv_type("message"))["id"] == ack["id"]  # her own copy

    await bob.send(type="dm", to="ann", body="hi ann, from b", cid="c-2")
    ack = await bob.recv_type("ack")
    got = await ann.recv_type("message")
    assert (got["id"], got["from"], got["body"]) == (ack["id"], "bob", "hi ann, from b")


async def test_with_redis_killed_messages_posted_meanwhile_arrive_once_it_is_back(
    cluster: list[ServerProcess], redis_server: RedisServer, peers: list[Peer]
) -> None:
    a, b = cluster
    ann = await login(peers, a.port, "ann")
    bob = await login(peers, b.port, "bob")
    await ann.send(type="say", room="lobby", body="before", cid="c-0")
    before = await ann.recv_type("ack")
    assert (await bob.recv_type("message"))["id"] == before["id"]

    redis_server.kill()
    acked = []
    try:
        for i in range(1, 11):  # within the flood-control burst (rate_burst 20)
            await ann.send(type="say", room="lobby", body=f"m{i}", cid=f"c-{i}")
            acked.append((await ann.recv_type("ack"))["id"])
    finally:
        redis_server.start()  # the same port, empty: a restart without persistence
    got = [(await bob.recv_type("message", timeout=30))["id"] for _ in acked]
    assert got == acked, "acked lost: 0, duplicates: 0, in order"
    assert [f for f in await bob.quiet(1.0) if f["type"] == "message"] == []


async def _cursor(dsn: str, account: str, device: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        value = await conn.fetchval(
            "SELECT cursor FROM cursors WHERE account = $1 AND device = $2", account, device
        )
    finally:
        await conn.close()
    return int(value or 0)


async def test_a_node_killed_9_loses_nothing_acked_its_client_resumes_on_another_node(
    pg_server: PostgresServer, redis_server: RedisServer, tmp_path: Path, peers: list[Peer]
) -> None:
    import asyncio

    dsn = await pg_database(pg_server, tmp_path)
    redis_server.flush()  # no names held by an earlier test's nodes
    a, b = _nodes(tmp_path, dsn, "--bus", redis_server.url)
    try:
        a.start()
        b.start()
        ann = await login(peers, a.port, "ann", device="phone")
        await ann.send(type="register", password="ann's long password")
        await ann.recv_type("ok")
        bob = await login(peers, b.port, "bob")
        acked = []
        for i in range(10):
            await bob.send(type="say", room="lobby", body=f"m{i}", cid=f"c-{i}")
            acked.append((await bob.recv_type("ack"))["id"])
        received = [(await ann.recv_type("message"))["id"] for _ in acked]
        assert received == acked
        await ann.send(type="seen", upto=received[-1])
        deadline = asyncio.get_running_loop().time() + 10
        while await _cursor(dsn, "a:ann", "phone") < received[-1]:
            assert asyncio.get_running_loop().time() < deadline, "seen never reached the store"
            await asyncio.sleep(0.05)

        a.kill()  # kill -9, ann's node is gone
        for i in range(10, 20):
            await bob.send(type="say", room="lobby", body=f"m{i}", cid=f"c-{i}")
            acked.append((await bob.recv_type("ack"))["id"])

        again = await connect(peers, b.port)
        await again.send(
            type="hello", proto=1, nick="ann", password="ann's long password", device="phone"
        )
        assert (await again.recv())["type"] == "welcome"
        backlog = []
        while (frame := await again.recv())["type"] != "caught_up":
            if frame["type"] == "message":
                backlog.append(frame["id"])
        assert received + backlog == acked, "acked lost: 0, duplicates: 0"
    finally:
        a.kill()
        b.kill()


async def test_postgresql_restarted_mid_burst_refuses_unacked_then_takes_the_resend_once(
    cluster: list[ServerProcess], pg_server: PostgresServer, peers: list[Peer]
) -> None:
    a, b = cluster
    ann = await login(peers, a.port, "ann")
    bob = await login(peers, b.port, "bob")
    await ann.send(type="say", room="lobby", body="before", cid="c-0")
    acked = [(await ann.recv_type("ack"))["id"]]

    pg_server.stop()
    try:
        await ann.send(type="say", room="lobby", body="during", cid="c-1", ref="r1")
        refused = await ann.recv_type("error", timeout=40)
        assert refused["code"] == "server_error"
    finally:
        pg_server.start()
    # The node recovers by itself; the client resends with the same cid.
    for _ in range(3):
        await ann.send(type="say", room="lobby", body="during", cid="c-1")
        reply = await ann.recv(timeout=40)
        while reply["type"] not in ("ack", "error"):
            reply = await ann.recv(timeout=40)
        if reply["type"] == "ack":
            acked.append(reply["id"])
            break
    assert len(acked) == 2, "the resend was taken once PostgreSQL was back"
    got = [(await bob.recv_type("message", timeout=30))["id"] for _ in acked]
    assert got == acked
    assert [f for f in await bob.quiet(1.0) if f["type"] == "message"] == []


async def test_a_guest_nick_online_on_one_node_is_taken_on_the_other_until_it_leaves(
    cluster: list[ServerProcess], peers: list[Peer]
) -> None:
    import asyncio

    a, b = cluster
    zed = await login(peers, a.port, "Zed")
    other = await connect(peers, b.port)
    await other.send(type="hello", proto=1, nick="zed")
    refused = await other.recv_type("error")
    assert refused["code"] == "nick_taken"

    await zed.send(type="bye")
    await zed.expect_closed()
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # the logout reaches Redis a moment after the connection closes
        await other.send(type="hello", proto=1, nick="zed")
        reply = await other.recv()
        if reply["type"] == "welcome":
            break
        assert reply["code"] == "nick_taken"
        assert asyncio.get_running_loop().time() < deadline, "the nick was never given back"
        await asyncio.sleep(0.1)
