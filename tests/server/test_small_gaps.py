"""Small gaps an audit found (issue 10, items 7 and 9), each against a real server.

Guest dedupe keyed by session, the ack cache honouring ``cid_ttl``, every pre-login
frame counted, non-JSON first bytes answered and closed at once, a login whose
first-device cursor cannot be written refused before ``welcome``, and a full disk
logged once per incident.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import Peer, ServerProcess
from server_checks import CheckedPeer
from support.peers import PeerMaker

CHEAP = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}


_maker = PeerMaker(CheckedPeer)
connect, login = _maker.connect, _maker.login


async def register(peers: list[Peer], port: int, nick: str) -> CheckedPeer:
    peer = await login(peers, port, nick)
    await peer.send(type="register", password=f"{nick}-password", ref="reg")
    assert await peer.recv_type("ok") == {"type": "ok", "ref": "reg"}
    return peer


async def answer(peer: CheckedPeer) -> dict[str, object]:
    """The next ack or error (copies of messages, presence and typing are skipped)."""
    while (frame := await peer.reply())["type"] == "message":
        pass
    return frame


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[bytes, float]:
    """Send ``data`` on a fresh connection; what came back until EOF, and how long it took."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        start = time.monotonic()
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received, time.monotonic() - start


@pytest.fixture
def srv(tmp_path: Path) -> ServerProcess:
    return ServerProcess(tmp_path / "server", CHEAP)


# -- item 7: dedupe and the ack cache -------------------------------------------------------


async def test_a_later_guest_with_the_same_nick_and_cid_is_not_taken_for_the_first(
    srv: ServerProcess, peers: list[Peer]
) -> None:
    srv.start()
    try:
        watcher = await login(peers, srv.port, "watcher")
        first = await login(peers, srv.port, "zed")
        await first.send(type="say", room="lobby", body="the first zed", cid="c-1")
        ack1 = await answer(first)
        assert ack1["type"] == "ack", ack1
        await first.send(type="bye")
        await first.expect_closed()
        second = await login(peers, srv.port, "zed")
        await second.send(type="say", room="lobby", body="another zed", cid="c-1")
        ack2 = await answer(second)
        assert ack2["type"] == "ack" and ack2["id"] != ack1["id"], (ack1, ack2)
        bodies: list[str] = []
        while len(bodies) < 2:
            frame = await watcher.recv_type("message")
            bodies.append(frame["body"])
        assert bodies == ["the first zed", "another zed"]
    finally:
        srv.kill()


async def test_a_cid_resent_after_cid_ttl_is_a_new_message(
    srv: ServerProcess, peers: list[Peer]
) -> None:
    srv.settings["cid_ttl"] = 1
    srv.start()
    try:
        alice = await register(peers, srv.port, "alice")
        await alice.send(type="say", room="lobby", body="once", cid="c-9")
        ack1 = await answer(alice)
        await alice.send(type="say", room="lobby", body="once", cid="c-9")
        repeat = await answer(alice)
        assert repeat["id"] == ack1["id"], "within cid_ttl a resend is the same message"
        await asyncio.sleep(1.3)
        await alice.send(type="say", room="lobby", body="later, the same cid", cid="c-9")
        ack2 = await answer(alice)
        assert ack2["type"] == "ack", ack2
        assert isinstance(ack1["id"], int) and isinstance(ack2["id"], int)
        assert ack2["id"] > ack1["id"], (ack1, ack2)
        await alice.send(type="history", room="lobby", ref="h")
        page = await alice.recv_type("history")
        assert [m["body"] for m in page["messages"]] == ["once", "later, the same cid"]
    finally:
        srv.kill()


# -- item 9: pre-login frames, first bytes ----------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        b'{"type":"no_such_command"}\n',  # an unknown type
        b'{"type":"pong","ref":5}\n',  # a malformed pong
        b'{"type":"say","room":"lobby"}\n',  # a malformed command
    ],
    ids=["unknown-type", "malformed-pong", "malformed-say"],
)
async def test_every_frame_before_login_counts_toward_the_limit(
    srv: ServerProcess, peers: list[Peer], frame: bytes
) -> None:
    srv.settings["prelogin_max_frames"] = 5
    srv.start()
    try:
        c = await connect(peers, srv.port)
        for _ in range(5):
            await c.send_raw(frame)
        await c.send(type="ping", ref="sixth")
        frames = await c.expect_closed()
        assert frames[-1]["type"] == "error" and frames[-1]["code"] == "not_logged_in", frames
        assert {"type": "pong", "ref": "sixth"} not in frames
        # Five frames are fine: a new connection sends five and still logs in.
        d = await connect(peers, srv.port)
        for _ in range(4):
            await d.send_raw(frame)
        await d.send(type="hello", proto=1, nick="fine")
        await d.recv_type("welcome")
    finally:
        srv.kill()


async def test_an_http_request_on_the_chat_port_is_answered_and_closed_at_once(
    srv: ServerProcess,
) -> None:
    srv.start()
    try:
        request = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\n\r\n"
        answer, took = await asyncio.to_thread(raw_exchange, srv.port, request)
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        assert b"chinwag" in answer and b"chinwag chat" in answer, answer
        assert took < 3, f"held {took:.1f} s"
    finally:
        srv.kill()


@pytest.mark.parametrize(
    "first", [b"hello there\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"\x00\xff"]
)
async def test_other_non_json_first_bytes_get_one_error_and_a_close(
    srv: ServerProcess, first: bytes
) -> None:
    srv.start()
    try:
        answer, took = await asyncio.to_thread(raw_exchange, srv.port, first)
        assert answer.startswith(b'{"type":"error","code":"bad_frame"'), answer
        assert answer.count(b"\n") == 1 and b"JSON" in answer, answer
        assert took < 3, f"held {took:.1f} s"
    finally:
        srv.kill()


async def test_leading_blank_lines_are_not_taken_for_garbage(
    srv: ServerProcess, peers: list[Peer]
) -> None:
    srv.start()
    try:
        c = await connect(peers, srv.port)
        await c.send_raw(b"\r\n")
        await c.send_raw(b"  \n")
        await c.hello("blank")
    finally:
        srv.kill()


# -- item 9: the first-device cursor, a full disk ----------------------------------------------


async def test_a_login_whose_cursor_cannot_be_written_gets_an_error_and_no_welcome(
    srv: ServerProcess, peers: list[Peer]
) -> None:
    srv.start()
    try:
        bob = await register(peers, srv.port, "bob")
        await bob.send(type="bye")
        await bob.expect_closed()
        # Another program holds the database's write lock: the server's writes wait
        # out their busy timeout, then fail.
        db = sqlite3.connect(srv.data / "chinwag.db", timeout=1)
        try:
            db.execute("BEGIN IMMEDIATE")
            c = await connect(peers, srv.port)
            await c.send(
                type="hello", proto=1, nick="bob", password="bob-password", device="new-device"
            )
            reply = await c.recv(timeout=30)
            assert reply["type"] == "error" and reply["code"] == "server_error", reply
            assert "welcome" not in str(await c.quiet(0.5))
        finally:
            db.rollback()
            db.close()
        # Once the lock is gone the same device logs in.
        d = await connect(peers, srv.port)
        await d.hello("bob", password="bob-password", device="new-device")
    finally:
        srv.kill()


async def test_a_full_disk_is_logged_once_per_incident(
    srv: ServerProcess, peers: list[Peer]
) -> None:
    srv.start()
    try:
        assert srv.proc is not None
        alice = await login(peers, srv.port, "alice")
        await alice.send(type="say", room="lobby", body="before", ref="r0")
        assert (await answer(alice))["type"] == "ack"
        # The process may not grow any file past its current size: to SQLite, a
        # full disk (SQLITE_FULL), for every write that needs a new page.
        wal = srv.data / "chinwag.db-wal"
        limit = max(p.stat().st_size for p in (wal, srv.data / "chinwag.db", srv.log_path))
        unlimited = resource.RLIM_INFINITY
        resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (limit, unlimited))
        body = "x" * 3_900
        errors = 0
        for i in range(400):
            await alice.send(type="say", room="lobby", body=body, ref=f"r{i + 1}")
            reply = await answer(alice)
            if reply["type"] == "error":
                assert reply["code"] == "server_error", reply
                errors += 1
        assert errors >= 50, f"only {errors} of 400 writes failed: the limit did not bite"
        resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))
        await alice.send(type="say", room="lobby", body="after", ref="after")
        reply = await answer(alice)
        assert reply["type"] == "ack", reply
        log = srv.log()
        assert log.count("Traceback") == 1, log[-4000:]
        assert log.count("database or disk is full") <= 2, log[-4000:]
        assert "accepts writes again" in log, log[-2000:]
    finally:
        with contextlib.suppress(OSError):  # gone already; the server is killed anyway
            if srv.proc is not None:
                inf = resource.RLIM_INFINITY
                resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (inf, inf))
        srv.kill()
