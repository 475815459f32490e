"""Faults under write load, three nodes (issue 13): "acked lost: 0, duplicates: 0".

Redis down for a while (``CHINWAG_TEST_REDIS_OUTAGE`` seconds, 30 by default),
a node killed with kill -9, PostgreSQL restarted: real node processes on
loopback, the private PostgreSQL and Redis of support/services.py, writers
that keep sending while it happens, and readers on other nodes that must end
up with every acknowledged message once, in id order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Peer, ServerProcess
from support.peers import connect, login
from support.services import PostgresServer, RedisServer, pg_database, pg_server, redis_server

__all__ = ["pg_server", "redis_server"]  # the session fixtures, imported for pytest

OUTAGE = float(os.environ.get("CHINWAG_TEST_REDIS_OUTAGE", "30"))
SETTINGS = {
    "argon2_memory_kib": 8192,
    "argon2_time_cost": 1,
    "node_heartbeat": 0.5,
    "rate_per_second": 200,  # the writers' load, not flood control, is under test
    "rate_burst": 400,
    "store_timeout": 5,  # a write PostgreSQL cannot take fails within this
}
PACE = 0.04  # seconds between one writer's messages: ~25 msg/s each
REPLY_TIMEOUT = 20.0  # an ack or an error, never a hang
CATCH_UP = 40.0


class Writer:
    """Sends to the lobby, one message at a time, until stopped; notes acks and refusals."""

    def __init__(self, peer: Peer, tag: str) -> None:
        self.peer, self.tag = peer, tag
        self.acked: list[int] = []
        self.refused: list[tuple[str, str]] = []  # (cid, code)
        self.sent = 0

    async def say(self, cid: str) -> dict[str, Any]:
        ref = "r" + cid
        await self.peer.send(type="say", room="lobby", body=f"body of {cid}", cid=cid, ref=ref)
        async with asyncio.timeout(REPLY_TIMEOUT):
            while True:
                reply = await self.peer.recv(REPLY_TIMEOUT)
                if reply.get("ref") == ref:
                    if reply["type"] == "ack":
                        self.acked.append(reply["id"])
                    else:
                        self.refused.append((cid, reply["code"]))
                    return reply

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sent += 1
            await self.say(f"{self.tag}-{self.sent}")
            await asyncio.sleep(PACE)


class Reader:
    """Collects the ids of the messages a peer is sent (and moves its cursor if asked)."""

    def __init__(self, peer: Peer, *, seen: bool = False) -> None:
        self.peer = peer
        self.ids: list[int] = []
        self._seen = seen
        self.closed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.peer.recv(3600)
                if frame["type"] == "message":
                    self.ids.append(frame["id"])
                    if self._seen:
                        await self.peer.send(type="seen", upto=frame["id"])
        except (EOFError, ConnectionError):
            self.closed.set()

    async def wait_for(self, ids: set[int], timeout: float = CATCH_UP) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not ids <= set(self.ids):
            missing = sorted(ids - set(self.ids))
            assert asyncio.get_running_loop().time() < deadline, f"never delivered: {missing[:20]}"
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def writer(peers: list[Peer], node: ServerProcess, nick: str) -> Writer:
    return Writer(await login(peers, node.port, nick), nick[0])


def start_nodes(tmp_path: Path, dsn: str, bus: str) -> list[ServerProcess]:
    args = ["--store", dsn, "--bus", bus, "--no-announce"]
    nodes = [ServerProcess(tmp_path / n, SETTINGS, args=args) for n in "abc"]
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
    dsn = asyncio.run(pg_database(pg_server, tmp_path))
    redis_server.flush()  # nothing held by an earlier test's nodes
    started = start_nodes(tmp_path, dsn, redis_server.url)
    try:
        yield started
    finally:
        for node in started:
            node.kill()


def assert_once_in_order(ids: list[int], acked: list[int], who: str) -> None:
    assert ids == sorted(set(ids)), f"{who}: duplicates: 0, in id order"
    assert set(acked) <= set(ids), f"{who}: acked lost: 0"


async def warm_up(writers: list[Writer], readers: list[Reader]) -> None:
    """One message from each writer reaches every reader: every node's bus is reading."""
    for w in writers:
        await w.say(f"{w.tag}-0")
    for r in readers:
        await r.wait_for(set(writers[0].acked + writers[1].acked), timeout=15)


@pytest.mark.parametrize("outage", [OUTAGE])
async def test_redis_down_under_write_load_every_acked_message_arrives_once_it_is_back(
    outage: float, nodes: list[ServerProcess], redis_server: RedisServer, peers: list[Peer]
) -> None:
    a, b, c = nodes
    writers = [await writer(peers, a, "ann"), await writer(peers, b, "bob")]
    readers = [Reader(await login(peers, c.port, "cat")), Reader(await login(peers, a.port, "dan"))]
    try:
        await warm_up(writers, readers)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(w.run(stop)) for w in writers]
        try:
            await asyncio.sleep(1.0)
            redis_server.kill()
            try:
                await asyncio.sleep(outage)  # the outage itself: writes go on
            finally:
                redis_server.start()  # the same port, empty: a restart without persistence
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        acked = sorted(writers[0].acked + writers[1].acked)
        assert [w.refused for w in writers] == [[], []], "Redis down refuses no write"
        assert len(acked) > 2 * outage, "the writers kept writing during the outage"
        for reader, who in zip(readers, ("cat on node c", "dan on node a"), strict=True):
            await reader.wait_for(set(acked))
            assert_once_in_order(reader.ids, acked, who)
        await readers[0].stop()
        late = await readers[0].peer.quiet(1.0)
        assert [f for f in late if f["type"] == "message"] == [], "nothing twice, even late"
    finally:
        for reader in readers:
            await reader.stop()


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


async def test_one_node_of_three_killed_9_under_load_its_client_resumes_on_another(
    pg_server: PostgresServer, redis_server: RedisServer, tmp_path: Path, peers: list[Peer]
) -> None:
    dsn = await pg_database(pg_server, tmp_path)
    redis_server.flush()
    a, b, c = start_nodes(tmp_path, dsn, redis_server.url)
    try:
        phone = await login(peers, a.port, "ann", device="phone")
        await phone.send(type="register", password="ann's long password", ref="reg")
        await phone.recv_type("ok")
        writers = [await writer(peers, b, "bob"), await writer(peers, c, "cat")]
        before = Reader(phone, seen=True)
        await warm_up(writers, [before])
        stop = asyncio.Event()
        tasks = [asyncio.create_task(w.run(stop)) for w in writers]
        try:
            deadline = asyncio.get_running_loop().time() + 20
            while len(before.ids) < 30:
                assert asyncio.get_running_loop().time() < deadline, "the load never arrived"
                await asyncio.sleep(0.05)
            a.kill()  # kill -9: ann's node is gone mid-burst
            await asyncio.wait_for(before.closed.wait(), 10)
            cursor = await _cursor(dsn, "a:ann", "phone")
            assert cursor > 0, "ann's seen reached the store before the kill"

            again = await connect(peers, c.port)
            await again.send(
                type="hello", proto=1, nick="ann", password="ann's long password", device="phone"
            )
            assert (await again.recv())["type"] == "welcome"
            after = Reader(again)
            await asyncio.sleep(1.0)  # more load after the reconnection
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        acked = sorted(writers[0].acked + writers[1].acked)
        await after.wait_for({i for i in acked if i > cursor})
        assert after.ids == sorted(set(after.ids)), "duplicates: 0 after the reconnection"
        assert after.ids[0] > cursor, "the backlog starts after the device's cursor"
        assert set(acked) <= set(before.ids) | set(after.ids), "acked lost: 0"
        assert [w.refused for w in writers] == [[], []]
        await before.stop()
        await after.stop()
    finally:
        for node in (a, b, c):
            node.kill()


async def test_postgresql_restarted_under_load_writers_get_errors_then_acks_again(
    nodes: list[ServerProcess], pg_server: PostgresServer, peers: list[Peer]
) -> None:
    a, b, c = nodes
    writers = [await writer(peers, a, "ann"), await writer(peers, b, "bob")]
    reader = Reader(await login(peers, c.port, "cat"))
    try:
        await warm_up(writers, [reader])
        stop = asyncio.Event()
        tasks = [asyncio.create_task(w.run(stop)) for w in writers]
        try:
            await asyncio.sleep(1.0)
            pg_server.stop()
            try:
                # Every request gets its reply within REPLY_TIMEOUT (Writer.say fails
                # otherwise): no hang, however long PostgreSQL is away.
                deadline = asyncio.get_running_loop().time() + 30
                while not all(w.refused for w in writers):
                    assert asyncio.get_running_loop().time() < deadline, "no write was refused"
                    await asyncio.sleep(0.1)
            finally:
                pg_server.start()
            acked_before = [len(w.acked) for w in writers]
            deadline = asyncio.get_running_loop().time() + 40
            while not all(len(w.acked) > n for w, n in zip(writers, acked_before, strict=True)):
                assert asyncio.get_running_loop().time() < deadline, "acks never resumed"
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        for w in writers:
            assert {code for _, code in w.refused} == {"server_error"}
            for cid, _ in list(w.refused):  # the client resends each with its cid
                reply = await w.say(cid)
                assert reply["type"] == "ack", reply
        acked = sorted(writers[0].acked + writers[1].acked)
        await reader.wait_for(set(acked))
        assert_once_in_order(reader.ids, acked, "cat on node c")
    finally:
        await reader.stop()
