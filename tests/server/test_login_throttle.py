"""Login and registration throttles, the hashing queue and identity rules, over real sockets.

The audit's measure is "attempts that reach the hasher"; what a user sees of it is
the answer: a guess that reached the hasher is answered ``bad_password``, one that
did not is answered ``rate_limited`` with ``retry_after``. So at most ``limit``
parallel guesses may get ``bad_password``. Clients connect from several loopback
addresses (127.0.0.x) to play strangers and owners; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import argon2
import pytest
from conftest import RECV_TIMEOUT, Peer, ServerProcess
from server_checks import CheckedPeer

from chinwag.core.accounts import parse_nick
from chinwag.net.invites import token_hash
from chinwag.server.app import DB_NAME, open_store
from chinwag.storage.base import AccountRow

CHEAP = {"argon2_memory_kib": 8192, "argon2_time_cost": 1, "max_conns_per_address": 1000}
PASSWORD = "correct horse battery"
OWNER = "127.0.0.1"


async def connect(peers: list[Peer], port: int, source: str = OWNER) -> CheckedPeer:
    """A checked peer whose connection comes from ``source`` (any 127.0.0.0/8 address)."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), RECV_TIMEOUT
    )
    peer = CheckedPeer(reader, writer)
    peers.append(peer)
    return peer


async def hello(
    peers: list[Peer], port: int, nick: str, source: str = OWNER, **extra: Any
) -> dict[str, Any]:
    """Send one hello; return welcome or the error."""
    peer = await connect(peers, port, source)
    await peer.send(type="hello", proto=1, nick=nick, **extra)
    return await peer.recv(timeout=30)


async def register(
    peers: list[Peer], port: int, nick: str, source: str = OWNER, password: str = PASSWORD
) -> dict[str, Any]:
    """Log in as guest ``nick`` and send register; return the reply (ok or error)."""
    peer = await connect(peers, port, source)
    await peer.send(type="hello", proto=1, nick=nick)
    assert (await peer.recv())["type"] == "welcome"
    await peer.recv_type("caught_up")
    await peer.send(type="register", password=password, ref="reg")
    return await peer.reply()


async def parallel_hellos(
    peers: list[Peer], port: int, jobs: list[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """(nick, password, source) hellos: all connected first, then sent at once."""
    conns = [await connect(peers, port, source) for _, _, source in jobs]
    for peer, (nick, password, _) in zip(conns, jobs, strict=True):
        peer.writer.write(
            b'{"type":"hello","proto":1,"nick":%s,"password":%s}\n'
            % (f'"{nick}"'.encode(), f'"{password}"'.encode())
        )
    await asyncio.gather(*(peer.writer.drain() for peer in conns))
    return list(await asyncio.gather(*(peer.recv(timeout=60) for peer in conns)))


def codes(replies: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r.get("code", r["type"]) for r in replies)


def refused_politely(replies: list[dict[str, Any]]) -> None:
    for r in replies:
        if r.get("code") == "rate_limited":
            assert r["retry_after"] > 0, r
            assert "retry in" in r["message"], r


@pytest.fixture
async def srv(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[ServerProcess]:
    extra = getattr(request, "param", {})
    server = ServerProcess(tmp_path / "srv", {**CHEAP, **extra}).start()
    try:
        yield server
    finally:
        server.kill()


# --- the login throttle ---------------------------------------------------------------


async def test_64_parallel_guesses_from_one_address_reach_the_hasher_at_most_5_times(
    srv: ServerProcess, peers: list[Peer]
) -> None:
    assert (await register(peers, srv.port, "owner"))["type"] == "ok"
    replies = await parallel_hellos(
        peers, srv.port, [("owner", f"guess-{i:03}", "127.0.0.2") for i in range(64)]
    )
    seen = codes(replies)
    assert seen["bad_password"] <= 5, seen
    assert seen["bad_password"] + seen["rate_limited"] == 64, seen
    refused_politely(replies)


@pytest.mark.parametrize("srv", [{"login_fail_address_max": 100}], indirect=True)
async def test_a_strangers_failures_do_not_lock_the_owner_out(
    srv: ServerProcess, peers: list[Peer]
) -> None:
    assert (await register(peers, srv.port, "owner"))["type"] == "ok"
    replies = [
        await hello(peers, srv.port, "owner", "127.0.0.2", password="wrong password")
        for _ in range(8)
    ]
    seen = codes(replies)
    assert seen["bad_password"] == 5 and seen["rate_limited"] >= 1, seen
    limited = [r for r in replies if r.get("code") == "rate_limited"]
    assert all("for this nick from your address" in r["message"] for r in limited), limited
    # The owner, from their own address, gets straight in.
    assert (await hello(peers, srv.port, "owner", OWNER, password=PASSWORD))["type"] == "welcome"


@pytest.mark.parametrize(
    "srv", [{"login_fail_account_global_max": 6, "login_fail_address_max": 100}], indirect=True
)
async def test_failures_from_many_addresses_are_bounded_per_account(
    srv: ServerProcess, peers: list[Peer]
) -> None:
    assert (await register(peers, srv.port, "owner"))["type"] == "ok"
    jobs = [("owner", f"guess-{i:02}", f"127.0.0.{10 + i % 8}") for i in range(32)]
    seen = codes(await parallel_hellos(peers, srv.port, jobs))
    assert seen["bad_password"] <= 6, seen
    assert seen["bad_password"] + seen["rate_limited"] == 32, seen
    # The price of the ceiling: for the rest of the window the owner waits too.
    reply = await hello(peers, srv.port, "owner", OWNER, password=PASSWORD)
    assert reply["code"] == "rate_limited" and "from everywhere" in reply["message"], reply


@pytest.mark.parametrize("srv", [{"login_fail_address_max": 10}], indirect=True)
async def test_guesses_at_many_nicks_from_one_address_are_bounded(
    srv: ServerProcess, peers: list[Peer]
) -> None:
    jobs = [(f"nobody{i}", "some password", "127.0.0.3") for i in range(40)]
    replies = await parallel_hellos(peers, srv.port, jobs)
    seen = codes(replies)
    assert seen["bad_password"] <= 10, seen
    assert seen["bad_password"] + seen["rate_limited"] == 40, seen
    refused_politely(replies)


# --- the hashing queue ----------------------------------------------------------------


@pytest.mark.parametrize(
    "srv",
    [
        {
            "hash_workers": 1,
            "hash_queue_max": 2,
            "argon2_memory_kib": 65536,
            "argon2_time_cost": 12,
            "login_fail_address_max": 0,
        }
    ],
    indirect=True,
)
async def test_a_full_hashing_queue_answers_rate_limited_without_hashing(
    srv: ServerProcess, peers: list[Peer]
) -> None:
    jobs = [(f"nobody{i}", "some password", f"127.0.1.{i}") for i in range(1, 13)]
    started = time.monotonic()
    replies = await parallel_hellos(peers, srv.port, jobs)
    seen = codes(replies)
    assert 1 <= seen["bad_password"] <= 3, seen  # one hashing, two waiting
    assert seen["rate_limited"] == 12 - seen["bad_password"], seen
    busy = [r for r in replies if r.get("code") == "rate_limited"]
    assert all("busy checking passwords" in r["message"] for r in busy), busy
    refused_politely(replies)
    # The server lives on, and guests are not hashed at all.
    assert (await hello(peers, srv.port, "guest"))["type"] == "welcome"
    assert time.monotonic() - started < 60


# --- the registration throttle --------------------------------------------------------


@pytest.mark.parametrize(
    "srv", [{"register_address_max": 2, "register_global_max": 3}], indirect=True
)
async def test_registrations_are_limited_per_address_and_in_all(
    srv: ServerProcess, peers: list[Peer]
) -> None:
    assert (await register(peers, srv.port, "ann", "127.0.0.2"))["type"] == "ok"
    assert (await register(peers, srv.port, "bob", "127.0.0.2"))["type"] == "ok"
    third = await register(peers, srv.port, "cat", "127.0.0.2")
    assert third["code"] == "rate_limited" and "from your address" in third["message"], third
    refused_politely([third])
    assert (await register(peers, srv.port, "cal", "127.0.0.3"))["type"] == "ok"
    fourth = await register(peers, srv.port, "dan", "127.0.0.4")
    assert fourth["code"] == "rate_limited" and "on this server" in fourth["message"], fourth
    # A refused registration made no account.
    with sqlite3.connect(srv.data / DB_NAME) as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM accounts ORDER BY key")]
    assert keys == ["ann", "bob", "cal"]


# --- identity -------------------------------------------------------------------------


async def test_reserved_nicks_and_their_look_alikes_are_refused(
    srv: ServerProcess, peers: list[Peer]
) -> None:
    for nick in ("admin", "ADMIN", "Server", "\u0430dmin", "NickServ"):
        reply = await hello(peers, srv.port, nick)
        assert reply["code"] == "bad_nick", reply
        assert "keeps for its own use" in reply["message"], reply
    assert (await hello(peers, srv.port, "administrator"))["type"] == "welcome"


@pytest.mark.parametrize("srv", [{"reserved_nicks": "boss, Chief"}], indirect=True)
async def test_the_reserved_list_is_a_setting(srv: ServerProcess, peers: list[Peer]) -> None:
    assert (await hello(peers, srv.port, "chief"))["code"] == "bad_nick"
    assert (await hello(peers, srv.port, "admin"))["type"] == "welcome"


async def test_a_capital_i_does_not_pass_as_an_l(srv: ServerProcess, peers: list[Peer]) -> None:
    assert (await register(peers, srv.port, "alice"))["type"] == "ok"
    reply = await hello(peers, srv.port, "aIice")
    assert reply["code"] == "bad_nick" and "'alice'" in reply["message"], reply
    assert (await hello(peers, srv.port, "aIice", password=PASSWORD))["code"] == "bad_nick"


async def test_a_password_typed_as_nfd_or_nfc_is_the_same(
    srv: ServerProcess, peers: list[Peer]
) -> None:
    nfc = unicodedata.normalize("NFC", "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    assert (await register(peers, srv.port, "chef", password=nfc))["type"] == "ok"
    assert (await hello(peers, srv.port, "chef", password=nfd))["type"] == "welcome"
    assert (await hello(peers, srv.port, "chef", password=nfc))["type"] == "welcome"


def stored_hash(data: Path, key: str) -> str:
    with sqlite3.connect(data / DB_NAME) as conn:
        (value,) = conn.execute(
            "SELECT password_hash FROM accounts WHERE key = ?", (key,)
        ).fetchone()
    return str(value)


async def test_an_old_hash_of_the_password_as_typed_still_logs_in_and_is_rehashed(
    tmp_path: Path, peers: list[Peer]
) -> None:
    nfd = unicodedata.normalize("NFD", "\u00e9t\u00e9 \u00e0 la plage")
    old_hash = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(
        nfd.encode()
    )
    data = tmp_path / "legacy"
    data.mkdir()
    store = await open_store(data)
    try:
        nick = parse_nick("mac")
        await store.create_account(
            AccountRow(nick.key, nick.display, nick.skeleton, old_hash, 0, False, False)
        )
    finally:
        await store.close()
    srv = ServerProcess(data, CHEAP).start()
    try:
        # Typed on the Mac that made the old hash, it still works...
        assert (await hello(peers, srv.port, "mac", password=nfd))["type"] == "welcome"
        assert stored_hash(data, "mac") != old_hash
        # ...and from then on, typed as NFC on another machine, too.
        nfc = unicodedata.normalize("NFC", nfd)
        assert (await hello(peers, srv.port, "mac", password=nfc))["type"] == "welcome"
    finally:
        srv.kill()


async def test_hashes_are_upgraded_at_login_when_the_cost_rises(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "cost", CHEAP).start()
    try:
        assert (await register(peers, srv.port, "dora"))["type"] == "ok"
        assert "t=1," in stored_hash(srv.data, "dora")
        srv.stop()
        srv.settings["argon2_time_cost"] = 2
        srv.start()
        assert (await hello(peers, srv.port, "dora", password=PASSWORD))["type"] == "welcome"
        assert "t=2," in stored_hash(srv.data, "dora")
        assert (await hello(peers, srv.port, "dora", password=PASSWORD))["type"] == "welcome"
        wrong = await hello(peers, srv.port, "dora", password="not the password")
        assert wrong["code"] == "bad_password"
    finally:
        srv.kill()


async def test_a_registration_refused_by_the_limit_uses_up_no_invite(
    tmp_path: Path, peers: list[Peer]
) -> None:
    data = tmp_path / "invite"
    data.mkdir()
    store = await open_store(data)
    try:
        await store.create_invite(
            token_hash("two-use-token"), uses=2, expires_ms=None, created_ms=0
        )
    finally:
        await store.close()
    settings = {**CHEAP, "registration": "invite", "register_address_max": 1}
    srv = ServerProcess(data, settings).start()
    try:
        replies = []
        for nick, source, token in (
            ("ann", "127.0.0.2", "no-such-token"),  # refused before hashing: not counted
            ("bob", "127.0.0.2", "two-use-token"),
            ("cat", "127.0.0.2", "two-use-token"),  # over the limit: the use is given back
            ("dan", "127.0.0.3", "two-use-token"),
        ):
            peer = await connect(peers, srv.port, source)
            await peer.hello(nick)
            await peer.send(type="register", password=PASSWORD, invite=token, ref="r")
            replies.append(await peer.reply())
        assert [r.get("reason", r.get("code", r["type"])) for r in replies] == [
            "bad_invite",
            "ok",
            "rate_limited",
            "ok",
        ]
    finally:
        srv.kill()
