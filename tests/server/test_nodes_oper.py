"""Operators, whois and wallops across nodes (issue 19, ircoper): two ``chinwag serve``
nodes on one PostgreSQL and one Redis (support/services.py), JSON-lines peers on each."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Peer, ServerProcess
from support.cli import chinwag
from support.peers import login
from support.services import (
    PostgresServer,
    RedisServer,
    free_port,
    pg_database,
    pg_server,
    redis_server,
)
from test_irc_listener import IrcPeer
from test_nodes_shared import SETTINGS, eventually, register

__all__ = ["pg_server", "redis_server"]  # the session fixtures, imported for pytest


@pytest.fixture
def nodes(
    pg_server: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    """Two nodes on one PostgreSQL and one Redis; node b also speaks IRC (no auto-join)."""
    dsn = asyncio.run(pg_database(pg_server, tmp_path))
    redis_server.flush()
    args = ["--store", dsn, "--bus", redis_server.url, "--no-announce"]
    irc = ["--irc-port", str(free_port())]
    settings = {**SETTINGS, "irc_auto_join": "false"}
    started = [
        ServerProcess(tmp_path / "a", settings, args=args),
        ServerProcess(tmp_path / "b", settings, args=[*args, *irc]),
    ]
    try:
        for node in started:
            node.start()
        yield started
    finally:
        for node in started:
            node.kill()


async def test_an_admin_opers_on_one_node_and_its_wallops_and_whois_cover_both(
    nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = nodes
    await register(peers, a.port, "boss")
    dsn = a.args[a.args.index("--store") + 1]
    granted = await asyncio.to_thread(
        chinwag, "admin", "--data", str(a.data), "--store", dsn, "grant", "boss", "admin"
    )
    assert granted.returncode == 0, granted.stderr
    guest = await login(peers, a.port, "helper")
    listener = await login(peers, b.port, "listener")
    quiet = await login(peers, b.port, "quiet")
    await listener.send(type="wallops_listen", on=True, ref="l")
    await listener.recv_type("ok")

    await guest.send(type="oper", account="boss", password="boss's long password", ref="o")
    assert (await guest.recv_type("ok"))["ref"] == "o"  # the store is PostgreSQL's

    async def a_sees_listener() -> bool:
        await guest.send(type="whois", mask="list*")
        return [u["nick"] for u in (await guest.recv_type("whois"))["users"]] == ["listener"]

    await eventually(a_sees_listener, "node a finds node b's listener by a mask")
    await quiet.send(type="whois", mask="helper", ref="w")  # node b finds node a's guest
    assert [u["nick"] for u in (await quiet.recv_type("whois"))["users"]] == ["helper"]

    await guest.send(type="wallops", text="restart at noon", ref="w")
    await guest.recv_type("ok")
    got = await listener.recv_type("wallops")
    assert (got["from"], got["text"]) == ("helper", "restart at noon")
    assert (await guest.recv_type("wallops"))["text"] == "restart at noon"  # opered: gets it
    assert [f for f in await quiet.quiet(0.5) if f["type"] == "wallops"] == []

    # An IRC user of node b (in no room) is invisible: node a's masks leave it out.
    b_irc = int(b.args[b.args.index("--irc-port") + 1])
    evan = await IrcPeer.connect(b_irc)
    try:
        await evan.register("evan")
        await evan.send("MODE evan +i")
        assert (await evan.command("MODE")).params == ("evan", "+i")

        async def a_leaves_evan_out() -> bool:
            await guest.send(type="whois", mask="eva*")
            users: list[object] = (await guest.recv_type("whois"))["users"]
            return users == []

        await eventually(a_leaves_evan_out, "node a leaves node b's invisible evan out")
        await guest.send(type="whois", mask="evan", ref="n")  # by nick: still found
        assert [u["nick"] for u in (await guest.recv_type("whois"))["users"]] == ["evan"]
        await guest.send(type="whois", mask="*", ref="all")
        seen = [u["nick"] for u in (await guest.recv_type("whois"))["users"]]
        assert "evan" not in seen and "quiet" in seen

        # Node a's figures (LUSERS' 251) count node b's invisible evan as invisible.
        async def a_counts_evan_invisible() -> bool:
            await guest.send(type="stats")
            stats = await guest.recv_type("stats")
            return bool(stats["invisible"] == 1 and stats["online"] > stats["here"])

        await eventually(a_counts_evan_invisible, "node a counts node b's invisible evan")
    finally:
        await evan.close()
