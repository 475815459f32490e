"""A room's key and member limit (branch ircmodes; protocol §12.6), over real sockets.

The JSON-lines ``room`` request's ``key`` and ``limit``, ``join``'s ``key``, the
errors ``bad_key`` and ``room_full``; on IRC ``MODE +k/-k/+l/-l``, ``JOIN #c key``,
``475``, ``471``, ``696`` and ``324``; and two nodes sharing one PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Peer, ServerProcess
from support.peers import login
from support.services import PostgresServer, RedisServer, pg_database, pg_server, redis_server
from test_irc_listener import IrcPeer, clients, irc, json_peer, make_account, running

from chinwag.config import SettingsError, build
from chinwag.protocol.irc import IrcMessage

__all__ = ["pg_server", "redis_server"]  # the session fixtures, imported for pytest

PASSWORD = "correct horse"


async def ask(peer: Peer, ref: str, **frame: Any) -> dict[str, Any]:
    """Send ``frame`` with ``ref``; its answer (``ok`` or ``error``)."""
    await peer.send(ref=ref, **frame)
    while (got := await peer.recv()).get("ref") != ref:
        pass
    return got


async def account(made: list[IrcPeer | Peer], port: int, nick: str) -> Peer:
    """A JSON-lines session of the newly registered account ``nick``."""
    peer = await json_peer(made, port)
    await peer.hello(nick)
    assert (await ask(peer, "reg", type="register", password=PASSWORD))["type"] == "ok"
    return peer


async def guest(made: list[IrcPeer | Peer], port: int, nick: str) -> Peer:
    peer = await json_peer(made, port)
    await peer.hello(nick)
    return peer


async def room_set(peer: Peer, **fields: Any) -> dict[str, Any]:
    """A ``room`` request that must be done: the ``room_info`` told before its ``ok``."""
    await peer.send(type="room", ref="set", **fields)
    info: dict[str, Any] = {}
    while (got := await peer.recv()).get("ref") != "set":
        if got["type"] == "room_info":
            info = got
    assert got["type"] == "ok", got
    return info


def numeric(code: str) -> Callable[[IrcMessage], bool]:
    return lambda m: m.command == code


def test_room_key_max_and_room_limit_max_are_settings_refused_out_of_bounds() -> None:
    assert (build(None, None).room_key_max, build(None, None).room_limit_max) == (23, 100_000)
    assert build(None, ["room_key_max=300", "room_limit_max=1"]).room_key_max == 300
    for bad in ("room_key_max=0", "room_key_max=301", "room_limit_max=0"):
        with pytest.raises(SettingsError, match=bad.split("=")[0]):
            build(None, [bad])


async def test_a_key_keeps_out_who_lacks_it_and_members_invited_and_mods_need_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(tmp_path) as (port, _), clients() as made:
        olga = await account(made, port, "olga")
        assert (await ask(olga, "j", type="join", room="den"))["type"] == "ok"
        await olga.recv_type("room_info")
        ann = await guest(made, port, "ann")
        assert (await ask(ann, "j", type="join", room="den"))["type"] == "ok"  # before the key
        assert "keyed" not in await ann.recv_type("room_info")

        mine = await room_set(olga, room="den", key="b33r!")
        assert (mine["keyed"], mine["key"], mine["by"]) == (True, "b33r!", "olga")
        told = await ann.recv_type("room_info")
        assert told["keyed"] is True and "key" not in told, "a member is not told the key"

        bob = await guest(made, port, "bob")
        for given in ({}, {"key": "b33r"}, {"key": ""}):
            no = await ask(bob, "j", type="join", room="den", **given)
            assert no["code"] == "bad_key", no
            assert "key" in no["message"] and "b33r!" not in no["message"]
        who = await ask(olga, "w", type="who", room="den")
        assert sorted(u["nick"] for u in who["users"]) == ["ann", "olga"], "bob is not in"
        assert (await ask(bob, "j", type="join", room="den", key="b33r!"))["type"] == "ok"
        info = await bob.recv_type("room_info")
        assert info["keyed"] is True and "key" not in info

        cat = await guest(made, port, "cat")
        assert (await ask(olga, "i", type="invite", room="den", nick="cat"))["type"] == "ok"
        assert (await ask(cat, "j", type="join", room="den"))["type"] == "ok", "invited"

        assert "keyed" not in await room_set(olga, room="den", key="")
        dan = await guest(made, port, "dan")
        assert (await ask(dan, "j", type="join", room="den"))["type"] == "ok", "cleared"
    assert "b33r!" not in caplog.text, "the key is never logged"


async def test_a_bad_key_and_the_lobbys_change_nothing_and_a_guests_key_ends_with_it(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (port, _), clients() as made:
        olga = await account(made, port, "olga")
        assert (await ask(olga, "j", type="join", room="den"))["type"] == "ok"
        longest = "k" * 23  # room_key_max, in bytes: "é" is two
        assert (await room_set(olga, room="den", key=longest))["keyed"] is True
        for bad in ("k" * 24, "é" * 12, "two words", "a,b", "tab\there"):
            no = await ask(olga, "b", type="room", room="den", key=bad, topic="never")
            assert (no["code"], no["reason"]) == ("bad_request", "key"), bad
        who = await ask(olga, "w", type="who", room="den")
        assert who["topic"] == "", "nothing of a refused request is applied"
        bob = await guest(made, port, "bob")
        assert (await ask(bob, "j", type="join", room="den", key=longest))["type"] == "ok"

        # ircroles: a guest owner may set a key and a limit; they end with its session.
        gus = await guest(made, port, "gus")
        assert (await ask(gus, "j", type="join", room="pit"))["type"] == "ok"
        assert (await room_set(gus, room="pit", key="mine", limit=2))["keyed"] is True
        no = await ask(bob, "p", type="join", room="pit")
        assert no["code"] == "bad_key", no
        assert (await ask(bob, "p", type="join", room="pit", key="mine"))["type"] == "ok"
        await gus.send(type="bye")
        await gus.recv_type("bye")
        while (info := await bob.recv_type("room_info"))["room"] != "pit" or "keyed" in info:
            pass  # the room_info of bob's own join first; then the one of gus's end
        assert "limit" not in info, info
        cat = await guest(made, port, "cat")
        assert (await ask(cat, "p", type="join", room="pit"))["type"] == "ok", "unlocked"


async def test_a_limit_stops_joins_at_the_count_online_and_keeps_those_in(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, room_limit_max=5) as (port, _), clients() as made:
        olga = await account(made, port, "olga")
        assert (await ask(olga, "j", type="join", room="den"))["type"] == "ok"
        no = await ask(olga, "l", type="room", room="den", limit=6)  # room_limit_max + 1
        assert (no["code"], no["reason"]) == ("bad_request", "limit")
        assert (await room_set(olga, room="den", limit=5))["limit"] == 5
        assert (await room_set(olga, room="den", limit=2))["limit"] == 2

        ann, bob, cat = [await guest(made, port, n) for n in ("ann", "bob", "cat")]
        assert (await ask(ann, "j", type="join", room="den"))["type"] == "ok"
        full = await ask(bob, "j", type="join", room="den")
        assert full["code"] == "room_full" and "2" in full["message"], full

        assert (await room_set(olga, room="den", limit=1))["limit"] == 1
        await ann.send(type="say", room="den", body="still here", cid="s")
        assert (await ann.recv_type("ack"))["type"] == "ack", "lowered: nobody is put out"
        assert (await olga.recv_type("message"))["body"] == "still here"

        assert (await ask(olga, "i", type="invite", room="den", nick="bob"))["type"] == "ok"
        assert (await ask(bob, "j", type="join", room="den"))["type"] == "ok", "invited"
        assert (await ask(cat, "j", type="join", room="den"))["code"] == "room_full"
        for leaver in (ann, bob):
            assert (await ask(leaver, "x", type="leave", room="den"))["type"] == "ok"
        assert (await ask(cat, "j", type="join", room="den"))["code"] == "room_full"  # 1 of 1
        assert "limit" not in await room_set(olga, room="den", limit=0)
        assert (await ask(cat, "j", type="join", room="den"))["type"] == "ok"


async def test_irc_keys_and_limits_are_modes_and_the_numerics_clients_know(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        await make_account(json_port, "olga", PASSWORD)
        olga = await irc(made, irc_port)
        await olga.register("olga", f"PASS :{PASSWORD}")
        isupport, before = await olga.until(numeric("005"))
        assert "CHANMODES=b,k,l,imnst" in isupport.params
        [myinfo] = [m for m in before if m.command == "004"]
        assert {"k", "l"} <= set(myinfo.params[4]), "004 lists the channel modes"
        await olga.send("JOIN #den", "JOIN #pub")
        await olga.until(lambda m: m.command == "JOIN" and m.params == ("#pub",))

        await olga.send("MODE #den +k beer")
        assert (await olga.command("MODE")).params == ("#den", "+k", "beer")
        await olga.send("MODE #den +l 2")
        assert (await olga.command("MODE")).params == ("#den", "+l", "2")
        await olga.send("MODE #pub +k pint")
        assert (await olga.command("MODE")).params == ("#pub", "+k", "pint")
        await olga.send("MODE #den")
        assert (await olga.until(numeric("324")))[0].params[1:] == ("#den", "+ntkl", "beer", "2")

        for bad, char in (("MODE #den +k :two words", "k"), ("MODE #den +k :", "k")):
            await olga.send(bad)
            refused = (await olga.until(numeric("696")))[0]
            assert refused.params[1:4] == ("#den", char, "*"), bad
        for bad in ("0", "-1", "abc", "100001"):
            await olga.send(f"MODE #den +l :{bad}")
            refused = (await olga.until(numeric("696")))[0]
            assert refused.params[1:4] == ("#den", "l", bad), bad

        bob = await irc(made, irc_port)
        await bob.register("bob")
        await bob.send("JOIN #den")
        assert (await bob.until(numeric("475")))[0].params[1] == "#den"
        await bob.send("JOIN #den bees")
        assert (await bob.until(numeric("475")))[0].params[1] == "#den"
        await bob.send("JOIN #den,#pub beer,pint")
        assert (await bob.command("JOIN")).params == ("#den",)
        assert (await bob.command("JOIN")).params == ("#pub",)
        await bob.send("MODE #den")
        assert (await bob.until(numeric("324")))[0].params[1:] == ("#den", "+ntkl", "*", "2")
        await bob.send("MODE #den -k *")
        assert (await bob.until(numeric("482")))[0].params[1] == "#den", "bob is no mod"

        cat = await irc(made, irc_port)
        await cat.register("cat")
        await cat.send("JOIN #den beer")
        assert (await cat.until(numeric("471")))[0].params[1] == "#den"
        await olga.send("MODE #den -l", "MODE #den -k *")
        assert (await olga.command("MODE")).params == ("#den", "-l")
        assert (await olga.command("MODE")).params == ("#den", "-k", "*")
        heard = (await bob.until(lambda m: m.command == "MODE" and m.params[1] == "-k"))[0]
        assert heard.params == ("#den", "-k", "*")
        await cat.send("JOIN #den")
        assert (await cat.command("JOIN")).params == ("#den",)

        gus = await irc(made, irc_port)
        await gus.register("gus")
        await gus.send("JOIN #pit")
        await gus.command("JOIN")
        await gus.send("MODE #pit +k mine")  # a guest's key: until its session ends (ircroles)
        assert (await gus.command("MODE")).params == ("#pit", "+k", "mine")


# -- two nodes -------------------------------------------------------------------------------

NODE_SETTINGS = {"argon2_memory_kib": 8192, "argon2_time_cost": 1, "node_heartbeat": 0.5}


@pytest.fixture
def two_nodes(
    pg_server: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    """Two nodes on one PostgreSQL and one Redis."""
    dsn = asyncio.run(pg_database(pg_server, tmp_path))
    redis_server.flush()
    args = ["--store", dsn, "--bus", redis_server.url, "--no-announce"]
    started = [ServerProcess(tmp_path / n, NODE_SETTINGS, args=args) for n in "ab"]
    try:
        for node in started:
            node.start()
        yield started
    finally:
        for node in started:
            node.kill()


async def test_a_key_and_a_limit_set_on_one_node_hold_on_the_other(
    two_nodes: list[ServerProcess], peers: list[Peer]
) -> None:
    a, b = two_nodes
    olga = await login(peers, a.port, "olga")
    assert (await ask(olga, "r", type="register", password=PASSWORD))["type"] == "ok"
    assert (await ask(olga, "j", type="join", room="den"))["type"] == "ok"
    await olga.recv_type("room_info")
    ann = await login(peers, b.port, "ann")
    assert (await ask(ann, "j", type="join", room="den"))["type"] == "ok"  # 2 online
    await ann.recv_type("room_info")
    assert (await room_set(olga, room="den", key="beer", limit=2))["key"] == "beer"
    told = await ann.recv_type("room_info", timeout=15)
    assert (told["keyed"], told["limit"], told["by"]) == (True, 2, "olga")

    bob = await login(peers, b.port, "bob")
    assert (await ask(bob, "j", type="join", room="den"))["code"] == "bad_key"
    full = await ask(bob, "j", type="join", room="den", key="beer")
    assert full["code"] == "room_full", "olga on node a counts on node b"
    assert (await ask(ann, "x", type="leave", room="den"))["type"] == "ok"
    assert (await ask(bob, "j", type="join", room="den", key="beer"))["type"] == "ok"
