"""Invites: links and codes, the invites table, invite-only sign-up, `chinwag chat INVITE`."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from conftest import Peer, ServerProcess
from support.cli import chinwag

from chinwag.net.connect import ConnectError, target_from_arg
from chinwag.net.invites import (
    Invite,
    looks_like_code,
    new_token,
    parse_duration,
    parse_invite,
    token_hash,
)
from chinwag.net.tls import parse_fingerprint
from chinwag.server.app import open_store

FAST = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}
FP = bytes(range(100, 132))
PASSWORD = "correct horse battery"


# --- links and codes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "invite",
    [
        Invite("192.168.1.20", 5050, FP, new_token()),
        Invite("fe80::1", 6000, FP, None),
        Invite("chat.example.org", 443, None, new_token()),
        Invite("10.0.0.7", 5050, None, None),
        Invite("pi.local", 5050, FP[:16], new_token()),
    ],
    ids=["v4-fp-token", "v6-fp", "name-token", "bare", "short-fp"],
)
def test_links_and_codes_round_trip(invite: Invite) -> None:
    link = invite.link()
    assert link.startswith("chinwag://")
    assert parse_invite(link) == invite
    code = invite.code()
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{1,4})+", code), code
    back = parse_invite(code)
    assert back is not None
    assert (back.host, back.port, back.token) == (invite.host, invite.port, invite.token)
    expected_fp = invite.fingerprint[:16] if invite.fingerprint is not None else None
    assert back.fingerprint == expected_fp
    # Case, spaces and dashes do not matter.
    assert parse_invite(code.lower().replace("-", " ")) == back


def test_a_full_invite_is_short_enough_to_read_out() -> None:
    invite = Invite("192.168.1.20", 5050, FP, new_token())
    assert len(invite.code()) <= 70
    assert len(invite.link()) <= 120
    assert invite.link() == (f"chinwag://192.168.1.20:5050?fp={FP.hex()}&t={invite.token}")


def test_the_web_link_opens_the_web_client_ready_to_register() -> None:
    token = new_token()
    assert Invite("192.168.1.20", 5050, FP, token).web_link(8080) == (
        f"https://192.168.1.20:8080/#invite={token}"
    )
    assert Invite("fe80::1", 6000, None, None).web_link(80) == "http://[fe80::1]:80/"


def test_a_mistyped_code_is_caught_not_taken_for_a_host() -> None:
    code = Invite("192.168.1.20", 5050, FP, new_token()).code()
    letters = list(code)
    letters[5] = "A" if letters[5] != "A" else "B"
    typo = "".join(letters)
    assert parse_invite(typo) is None and looks_like_code(typo)
    with pytest.raises(ConnectError, match="mistyped") as info:
        target_from_arg(typo)
    assert info.value.status == 2
    target = target_from_arg(code)
    assert target.source == "invite" and target.tls and target.token is not None
    assert target_from_arg("example.org:7000").port == 7000
    assert target_from_arg("[::1]:7000").host == "::1"


@pytest.mark.parametrize(
    "bad",
    [
        "chinwag://host:99999",
        "chinwag://host:5050?fp=zz",
        "chinwag://host:5050?fp=0011",
        "chinwag://:5050",
        "chinwag://host:5050?t=UPPER_and_wrong!",
    ],
)
def test_malformed_links_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_invite(bad)


def test_durations() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("30m") == 1800
    assert parse_duration("24h") == 86_400
    assert parse_duration("7d") == 7 * 86_400
    assert parse_duration("2w") == 14 * 86_400
    assert parse_duration("45") == 45
    assert parse_duration("never") is None
    for bad in ("soon", "-5m", "3y", ""):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_tokens_are_random_and_stored_only_hashed() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(re.fullmatch(r"[a-z2-7]{16}", t) for t in tokens)
    token = next(iter(tokens))
    assert token_hash(token) == token_hash(f"  {token.upper()} ")
    assert token not in token_hash(token) and len(token_hash(token)) == 64


# --- the invites table ----------------------------------------------------------------


async def test_an_invite_is_used_up_atomically_expires_and_can_be_refunded(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path)
    try:
        now = 1_800_000_000_000
        await store.create_invite("one", uses=1, expires_ms=None, created_ms=now)
        await store.create_invite("two", uses=2, expires_ms=now + 1000, created_ms=now)
        with pytest.raises(ValueError):
            await store.create_invite("one", uses=1, expires_ms=None, created_ms=now)
        with pytest.raises(ValueError):
            await store.create_invite("zero", uses=0, expires_ms=None, created_ms=now)
        results = await asyncio.gather(*(store.use_invite("one", now) for _ in range(20)))
        assert results.count(True) == 1
        await store.refund_invite("one")
        assert await store.use_invite("one", now)
        assert not await store.use_invite("one", now)
        assert not await store.use_invite("two", now + 1000)  # expired at that instant
        assert await store.use_invite("two", now + 999)
        assert not await store.use_invite("nope", now)
    finally:
        await store.close()


# --- registration modes, against a real server ------------------------------------------


async def _register(port: int, nick: str, **extra: str) -> dict[str, object]:
    peer = await Peer.connect(port)
    try:
        await peer.hello(nick)
        await peer.send(type="register", password=extra.pop("password", PASSWORD), **extra)
        while True:
            frame = await peer.recv()
            if frame["type"] in ("ok", "error"):
                return frame
    finally:
        await peer.close()


def _invite(srv: ServerProcess, *args: str) -> Invite:
    out = chinwag(
        "invite", "--data", str(srv.data), "--host", "127.0.0.1", "--port", str(srv.port), *args
    )
    assert out.returncode == 0, out
    link, code, web = out.stdout.split()
    invite = parse_invite(link)
    assert invite is not None and parse_invite(code) is not None
    scheme = "https" if invite.fingerprint is not None else "http"
    assert web == f"{scheme}://127.0.0.1:8080/#invite={invite.token}"
    return invite


async def test_invite_only_registration(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "srv", FAST, args=["--registration", "invite", "--no-announce"])
    srv.start()
    try:
        refused = await _register(srv.port, "ann")
        assert refused["code"] == "forbidden" and refused["reason"] == "invite_required"
        refused = await _register(srv.port, "ann", invite=new_token())
        assert refused["code"] == "forbidden" and refused["reason"] == "bad_invite"

        invite = _invite(srv, "--uses", "1", "--expires", "1h")
        assert invite.token is not None and invite.fingerprint is None  # a plain server
        # A weak password is refused before the invite is touched.
        weak = await _register(srv.port, "ann", invite=invite.token, password="short")
        assert weak["code"] == "weak_password"
        assert (await _register(srv.port, "ann", invite=invite.token))["type"] == "ok"
        used = await _register(srv.port, "bob", invite=invite.token)
        assert used["code"] == "forbidden" and used["reason"] == "bad_invite"
        # ann is an account now; bob is not.
        peer = await Peer.connect(srv.port)
        await peer.send(type="hello", proto=1, nick="ann")
        assert (await peer.recv())["code"] == "password_required"
        await peer.hello("bob")
        await peer.close()
        stored = b"".join(p.read_bytes() for p in srv.data.glob("chinwag.db*"))
        assert token_hash(invite.token).encode() in stored  # the hash, in the DB or its WAL
        assert invite.token.encode() not in stored  # never the token
    finally:
        srv.kill()


async def test_an_expired_invite_is_refused(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "srv", FAST, args=["--registration", "invite", "--no-announce"])
    srv.start()
    try:
        invite = _invite(srv, "--uses", "5", "--expires", "1s")
        assert invite.token is not None
        await asyncio.sleep(1.3)
        refused = await _register(srv.port, "ann", invite=invite.token)
        assert refused["code"] == "forbidden" and refused["reason"] == "bad_invite"
    finally:
        srv.kill()


async def test_closed_and_open_registration(tmp_path: Path) -> None:
    closed = ServerProcess(
        tmp_path / "closed", FAST, args=["--registration", "closed", "--no-announce"]
    )
    closed.start()
    try:
        invite = _invite(closed, "--uses", "1")
        assert invite.token is not None
        refused = await _register(closed.port, "ann", invite=invite.token)
        assert refused["code"] == "forbidden" and refused["reason"] == "registration_closed"
        peer = await Peer.connect(closed.port)  # guests still chat
        await peer.hello("guest")
        await peer.close()
    finally:
        closed.kill()
    opened = ServerProcess(tmp_path / "open", FAST, args=["--no-announce"])
    opened.start()
    try:
        assert (await _register(opened.port, "ann"))["type"] == "ok"
        assert (await _register(opened.port, "bob", invite="whatever"))["type"] == "ok"
    finally:
        opened.kill()


def test_invite_command_needs_the_servers_database_only_for_a_token(tmp_path: Path) -> None:
    out = chinwag("invite", "--data", str(tmp_path), "--host", "127.0.0.1")
    assert out.returncode == 1 and "--data" in out.stderr
    out = chinwag("invite", "--data", str(tmp_path), "--host", "127.0.0.1", "--no-token")
    assert out.returncode == 0, out
    link, code, web = out.stdout.split()
    assert link == "chinwag://127.0.0.1:5050" and parse_invite(code) == Invite("127.0.0.1")
    assert web == "http://127.0.0.1:8080/"  # no token: the plain page
    out = chinwag(
        "invite", "--data", str(tmp_path), "--host", "127.0.0.1", "--no-token", "--http-port", "0"
    )
    assert out.stdout.split() == [link, code]
    for bad in (["--uses", "0"], ["--expires", "soon"]):
        out = chinwag("invite", "--data", str(tmp_path), *bad)
        assert out.returncode == 2, out


def test_chat_with_an_invite_pins_and_registers(tmp_path: Path) -> None:
    srv = ServerProcess(
        tmp_path / "srv", FAST, args=["--tls", "--registration", "invite", "--no-announce"]
    )
    srv.start()
    try:
        invite = _invite(srv, "--uses", "2")
        fp = re.search(r"fingerprint ([0-9A-F:]{95})", srv.log())
        assert fp and invite.fingerprint == parse_fingerprint(fp.group(1))
        code = invite.code()
        started = time.monotonic()
        for n, (nick, spelling) in enumerate([("ann", invite.link()), ("bob", code)]):
            cfg = tmp_path / f"client-{nick}"
            out = chinwag(
                "chat", spelling, "--nick", nick,
                stdin=f"/register\n{PASSWORD}\n{PASSWORD}\n/quit\n", config=cfg,
            )  # fmt: skip
            assert out.returncode == 0, out
            assert "pinned 127.0.0.1" in out.stdout and "not known" not in out.stdout
            assert "over TLS" in out.stdout
            assert f"{nick} is now registered" in out.stdout, out
            pins = (cfg / "known_hosts").read_text()
            assert f"127.0.0.1:{srv.port} {fp.group(1)}" in pins, n
        # Used up: the third holder is refused at /register (the chat itself works).
        out = chinwag(
            "chat", invite.link(), "--nick", "cat",
            stdin=f"/register\n{PASSWORD}\n{PASSWORD}\n/quit\n", config=tmp_path / "client-cat",
        )  # fmt: skip
        assert "used up or expired" in out.stdout and "cat is now registered" not in out.stdout
        assert time.monotonic() - started < 60
    finally:
        srv.kill()


def test_dashed_host_names_are_not_taken_for_codes() -> None:
    for host in ("chat-room-host-name", "my-pi", "abcd-efgh-ijkl-mnop.example"):
        assert not looks_like_code(host)
        assert target_from_arg(host).host == host
