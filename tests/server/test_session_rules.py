"""Session rules over real sockets against a real server process (protocol v1 §2, §6).

Before login, hello and its refusals, nicks, passwords and the login throttle, and the
pre-login and idle deadlines. Every frame received goes through `check_frame`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Peer, ServerProcess
from server_checks import CheckedPeer
from support.peers import PeerMaker

from chinwag.server.app import open_store

CHEAP = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}
PASSWORD = "correct horse battery"


class Client(CheckedPeer):
    """A checked peer with the helpers of this module."""

    async def alive(self, ref: str = "alive") -> None:
        await self.send(type="ping", ref=ref)
        assert await self.reply() == {"type": "pong", "ref": ref}

    async def try_hello(self, nick: str, **extra: Any) -> dict[str, Any]:
        """Send hello; return welcome (after reading up to caught_up) or the error."""
        await self.send(type="hello", proto=extra.pop("proto", 1), nick=nick, **extra)
        first = await self.recv()
        if first["type"] == "welcome":
            await self.recv_type("caught_up")
        return first


_maker = PeerMaker(Client)
connect, login = _maker.connect, _maker.login


async def register(peers: list[Peer], port: int, nick: str, password: str = PASSWORD) -> None:
    """Make ``nick`` an account, then log that session out cleanly."""
    client = await login(peers, port, nick)
    await client.send(type="register", password=password, ref="reg")
    assert await client.reply() == {"type": "ok", "ref": "reg"}
    await client.send(type="bye")
    assert (await client.expect_closed())[-1] == {"type": "bye"}


_serial = itertools.count(1)


def fresh(nick: str) -> str:
    """A nick no earlier test used on the shared server."""
    return f"{nick}{next(_serial)}"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the cases that leave nothing behind; each uses fresh connections."""
    srv = ServerProcess(tmp_path_factory.mktemp("rules"), CHEAP).start()
    try:
        yield srv
    finally:
        srv.kill()


# --- before login ------------------------------------------------------------------

PRELOGIN_REFUSED = [
    {"type": "say", "room": "lobby", "body": "sneaky", "cid": "s1"},
    {"type": "dm", "to": "someone", "body": "sneaky"},
    {"type": "join", "room": "sneaky"},
    {"type": "leave", "room": "sneaky"},
    {"type": "who", "room": "lobby"},
    {"type": "rooms"},
    {"type": "history", "room": "lobby"},
    {"type": "register", "password": PASSWORD},
    {"type": "passwd", "old": PASSWORD, "new": PASSWORD + "!"},
]


async def test_before_login_only_hello_ping_and_bye_are_served(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    c = await connect(peers, shared.port)
    for i, frame in enumerate(PRELOGIN_REFUSED):
        await c.send(**frame, ref=f"pre{i}")
        await c.error("not_logged_in", f"pre{i}")
    await c.send(type="ping", ref="p")
    assert await c.recv() == {"type": "pong", "ref": "p"}
    # Nine refusals are not failed hellos: the connection can still log in.
    nick = fresh("late")
    welcome = await c.try_hello(nick)
    assert welcome["type"] == "welcome" and welcome["nick"] == nick, welcome
    # Nothing of what was refused happened.
    await c.send(type="rooms", ref="r")
    rooms = await c.reply()
    assert "sneaky" not in [r["name"] for r in rooms["rooms"]], rooms
    await c.send(type="history", room="lobby", ref="h")
    page = await c.reply()
    assert "sneaky" not in [m["body"] for m in page["messages"]], page


async def test_bye_before_login(shared: ServerProcess, peers: list[Peer]) -> None:
    c = await connect(peers, shared.port)
    await c.send(type="bye")
    assert await c.expect_closed() == [{"type": "bye"}]


async def test_bye_after_login_ends_the_session_and_frees_the_nick(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    nick = fresh("leaver")
    c = await login(peers, shared.port, nick)
    await c.send(type="bye")
    frames = [f for f in await c.expect_closed() if f["type"] != "presence"]
    assert frames == [{"type": "bye"}]
    # The guest nick was released before the bye: it is free at once.
    again = await connect(peers, shared.port)
    assert (await again.try_hello(nick))["type"] == "welcome"


async def test_bye_is_the_last_frame_even_with_requests_behind_it(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    c = await login(peers, shared.port, fresh("hasty"))
    await c.send_raw(b'{"type":"ping","ref":"1"}\n{"type":"bye"}\n{"type":"ping","ref":"2"}\n')
    frames = [f for f in await c.expect_closed() if f["type"] != "presence"]
    assert frames == [{"type": "pong", "ref": "1"}, {"type": "bye"}]


async def test_requests_pipelined_behind_hello_are_served_after_login(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    nick = fresh("eager")
    c = await connect(peers, shared.port)
    await c.send_raw(
        b'{"type":"hello","proto":1,"nick":"%s","ref":"h"}\n'
        b'{"type":"say","room":"lobby","body":"first words","cid":"w1","ref":"s"}\n'
        b'{"type":"ping","ref":"p"}\n' % nick.encode()
    )
    assert (await c.recv())["type"] == "welcome"
    assert (await c.recv())["type"] == "caught_up"
    ack = await c.reply()
    assert ack["type"] == "ack" and ack["ref"] == "s", ack
    # The message copy is not a reply: it may come before or after the pong.
    rest = sorted([await c.reply(), await c.reply()], key=lambda f: str(f["type"]))
    assert rest[0]["type"] == "message" and rest[0]["body"] == "first words", rest
    assert rest[0]["id"] == ack["id"]
    assert rest[1] == {"type": "pong", "ref": "p"}


async def test_requests_sent_before_a_half_close_are_answered(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    # What `printf '...' | nc host 5050` does: send the requests, then shut down writing.
    c = await login(peers, shared.port, fresh("scripted"))
    await c.send_raw(
        b"".join(
            b'{"type":"say","room":"lobby","body":"batch %d","cid":"b%d","ref":"s%d"}\n' % (i, i, i)
            for i in range(10)
        )
        + b'{"type":"ping","ref":"p"}\n'
    )
    c.writer.write_eof()
    frames = await c.expect_closed()
    replies = [f.get("ref") for f in frames if f["type"] in ("ack", "pong", "error")]
    assert replies == [f"s{i}" for i in range(10)] + ["p"], frames


async def test_four_failed_hellos_are_fine(shared: ServerProcess, peers: list[Peer]) -> None:
    c = await connect(peers, shared.port)
    for _ in range(4):
        await c.send(type="hello", proto=1, nick="no spaces", ref="h")
        await c.error("bad_nick", "h")
    assert (await c.try_hello(fresh("fifth")))["type"] == "welcome"
    await c.alive()


async def test_the_fifth_failed_hello_closes_the_connection(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    c = await connect(peers, shared.port)
    for _ in range(5):
        await c.send(type="hello", proto=1, nick="no spaces")
    frames = await c.expect_closed()
    assert [(f["type"], f.get("code")) for f in frames] == [("error", "bad_nick")] * 5


async def test_every_kind_of_refused_hello_counts(shared: ServerProcess, peers: list[Peer]) -> None:
    owner = fresh("owner")
    await register(peers, shared.port, owner)
    holder = fresh("holder")
    await login(peers, shared.port, holder)
    c = await connect(peers, shared.port)
    attempts: list[tuple[dict[str, Any], str]] = [
        ({"nick": ""}, "bad_nick"),
        ({"nick": holder}, "nick_taken"),
        ({"nick": fresh("future"), "proto": 2}, "unsupported_proto"),
        ({"nick": owner}, "password_required"),
        ({"nick": owner, "password": "not the password"}, "bad_password"),
    ]
    for i, (fields, code) in enumerate(attempts):
        fields = {"proto": 1, **fields}
        await c.send(type="hello", ref=f"h{i}", **fields)
        await c.error(code, f"h{i}")
    assert await c.expect_closed() == []


async def test_hellos_refused_as_bad_request_count_as_failed_hellos(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    c = await connect(peers, shared.port)
    for device in ("a b", "d" * 65, "", "é", "a/b"):
        await c.send(type="hello", proto=1, nick=fresh("dev"), device=device)
    frames = await c.expect_closed(timeout=2)
    assert [(f["type"], f.get("code")) for f in frames] == [("error", "bad_request")] * 5


async def test_a_second_hello_is_bad_request_and_changes_nothing(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    first, second = fresh("first"), fresh("second")
    c = await login(peers, shared.port, first)
    await c.send(type="hello", proto=1, nick=second, ref="again")
    await c.error("bad_request", "again")
    await c.send(type="who", room="lobby", ref="w")
    who = await c.reply()
    nicks = [u["nick"] for u in who["users"]]
    assert first in nicks and second not in nicks, who
    # The second nick was never taken.
    other = await connect(peers, shared.port)
    assert (await other.try_hello(second))["type"] == "welcome"


@pytest.mark.parametrize("proto", [2, 0, -1, 10**6])
async def test_unsupported_proto(shared: ServerProcess, peers: list[Peer], proto: int) -> None:
    c = await connect(peers, shared.port)
    await c.send(type="hello", proto=proto, nick=fresh("old"), ref="v")
    error = await c.error("unsupported_proto", "v")
    assert error["supported"] == [1]
    assert (await c.try_hello(fresh("new")))["type"] == "welcome"


@pytest.mark.parametrize(
    "fields",
    [
        {"device": "a b"},
        {"device": "d" * 65},
        {"device": ""},
        {"device": "é"},
        {"device": "a/b"},
        {"device": 5},
        {"proto": "1"},
        {"proto": True},
        {"nick": 7},
        {"password": 12345678},
    ],
    ids=lambda f: repr(f)[:30],
)
async def test_ill_formed_hello_is_bad_request(
    shared: ServerProcess, peers: list[Peer], fields: dict[str, Any]
) -> None:
    c = await connect(peers, shared.port)
    await c.send(**{"type": "hello", "proto": 1, "nick": fresh("dev"), **fields, "ref": "d"})
    await c.error("bad_request", "d")
    device = "Az09_-" + "x" * 58  # 64 characters of the allowed set
    welcome = await c.try_hello(fresh("dev"), device=device)
    assert welcome["type"] == "welcome", welcome


# --- deadlines -------------------------------------------------------------------------


async def test_prelogin_deadline_closes_even_a_chatty_connection(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "pre", {**CHEAP, "prelogin_timeout": 1}).start()
    try:
        started = time.monotonic()
        silent = await connect(peers, srv.port)
        chatty = await connect(peers, srv.port)
        prompt = await connect(peers, srv.port)
        await prompt.hello("prompt")

        async def keep_pinging() -> list[dict[str, Any]]:
            frames: list[dict[str, Any]] = []
            try:
                for i in range(30):
                    await chatty.send(type="ping", ref=f"p{i}")
                    frames.append(await chatty.recv())
                    await asyncio.sleep(0.1)
            except (EOFError, ConnectionError):
                return frames
            raise AssertionError("a connection that never logged in was kept for 3 s")

        silent_frames, chatty_frames = await asyncio.gather(silent.expect_closed(4), keep_pinging())
        elapsed = time.monotonic() - started
        assert 0.8 <= elapsed <= 3.0, elapsed
        assert [(f["type"], f.get("code")) for f in silent_frames] == [("error", "not_logged_in")]
        assert chatty_frames[-1]["type"] == "error", chatty_frames
        assert chatty_frames[-1]["code"] == "not_logged_in"
        assert all(f["type"] == "pong" for f in chatty_frames[:-1]), chatty_frames
        # A connection that logged in in time is not affected by the deadline.
        await prompt.alive()
    finally:
        srv.kill()


async def test_the_login_deadline_never_hits_a_session_that_is_logging_out(
    tmp_path: Path, peers: list[Peer]
) -> None:
    # A clean bye stores the device's cursor; with writes flowing, that commit
    # waits commit_delay, several deadline sweeps long. The connection has no
    # session then, and was opened long before the login deadline: its bye
    # must still be answered with bye, not with "you did not log in in time".
    srv = ServerProcess(
        tmp_path / "bye", {**CHEAP, "prelogin_timeout": 0.2, "commit_delay": 0.1}
    ).start()
    try:
        await register(peers, srv.port, "leaver")
        for i in range(3):
            client = await connect(peers, srv.port)
            await client.send(type="hello", proto=1, nick="leaver", password=PASSWORD)
            await client.recv_type("caught_up")
            await asyncio.sleep(0.3)  # past the login deadline, counted from connect
            await client.send(type="say", room="lobby", body=f"bye {i}", ref="s")
            await client.send(type="bye", ref="b")
            frames = await client.expect_closed()
            assert [f["type"] for f in frames if f["type"] != "message"] == ["ack", "bye"], frames
    finally:
        srv.kill()


async def test_idle_ping_keeps_a_live_client_and_drops_a_silent_one(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "idle", {**CHEAP, "idle_timeout": 1, "pong_timeout": 1}).start()
    try:
        lively = await login(peers, srv.port, "lively")
        silent = await login(peers, srv.port, "silent")
        started = time.monotonic()

        async def answer_pings(seconds: float) -> int:
            pings = 0
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                try:
                    frame = await lively.recv(left)
                except TimeoutError:
                    break
                if frame["type"] == "ping":
                    assert frame == {"type": "ping"}, frame
                    pings += 1
                    await lively.send(type="pong")
            return pings

        pings, silent_frames = await asyncio.gather(answer_pings(3.5), silent.expect_closed(5))
        closed_after = time.monotonic() - started
        # The silent one was pinged once, then closed after idle + pong timeout.
        assert [f for f in silent_frames if f["type"] != "presence"] == [{"type": "ping"}]
        assert 1.7 <= closed_after <= 3.6, closed_after
        # The lively one was pinged in every idle period and is still here.
        assert pings >= 2, pings
        await lively.alive()
    finally:
        srv.kill()


async def test_bytes_that_never_make_a_frame_do_not_keep_a_session_alive(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "drip", {**CHEAP, "idle_timeout": 1, "pong_timeout": 1}).start()
    try:
        c = await login(peers, srv.port, "dripper")
        await c.send_raw(b'{"type":')
        started = time.monotonic()
        frames: list[dict[str, Any]] = []

        async def drip() -> None:
            while time.monotonic() - started < 4:
                await c.send_raw(b" ")  # one byte every 0.2 s, never a newline
                with contextlib.suppress(TimeoutError):
                    frames.append(await c.recv(0.2))

        with pytest.raises((EOFError, ConnectionError)):
            await drip()
        assert {"type": "ping"} in frames, frames
        assert time.monotonic() - started <= 3.5
    finally:
        srv.kill()


async def test_more_than_50_frames_before_login_closes(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    # Extension (docs/protocol.md §2): prelogin_max_frames, default 50.
    c = await connect(peers, shared.port)
    await c.send_raw(b'{"type":"ping"}\n' * 50)
    for _ in range(50):
        assert await c.recv() == {"type": "pong"}
    await c.send(type="ping")
    frames = await c.expect_closed()
    assert [(f["type"], f.get("code")) for f in frames] == [("error", "not_logged_in")]


# --- nicks ------------------------------------------------------------------------------

BAD_NICKS = {
    "empty": "",
    "33-chars": "a" * 33,
    "33-after-nfc": "e\u0301" * 33,
    "very-long": "a" * 5000,
    "space": "a b",
    "leading-space": " alice",
    "trailing-space": "alice ",
    "tab": "a\tb",
    "nbsp": "a\u00a0b",
    "at": "@",
    "at-inside": "alice@home",
    "dot": "a.b",
    "slash": "a/b",
    "bang": "hey!",
    "emoji": "😀",
    "emoji-inside": "alice😀",
    "flag": "🇫🇷",
    "rlo": "\u202eabc",
    "rlo-inside": "ab\u202ec",
    "zero-width-space": "a\u200bb",
    "zero-width-joiner": "a\u200db",
    "soft-hyphen": "a\u00adb",
    "leading-combining-mark": "\u0301a",
    "nul": "a\x00b",
    "ligature": "\ufb01sh",
    "roman-numeral": "\u216b",
    "superscript-digit": "a\u00b2",
    "private-use": "a\ue000",
    "unassigned": "a\U000e0fff",
}


@pytest.mark.parametrize("nick", list(BAD_NICKS.values()), ids=list(BAD_NICKS))
async def test_bad_nick(shared: ServerProcess, peers: list[Peer], nick: str) -> None:
    c = await connect(peers, shared.port)
    await c.send(type="hello", proto=1, nick=nick, ref="n")
    await c.error("bad_nick", "n")
    assert (await c.try_hello(fresh("good")))["type"] == "welcome"


GOOD_NICKS = {  # each distinct from the others after NFC and casefolding
    "32-chars": "b" * 32,
    "32-after-nfc": "e\u0301" * 32,
    "accents": "Zoë1",
    "decomposed": "Zoe\u03082",
    "cjk": "日本語",
    "greek": "Ελένη",
    "cyrillic": "Юля",
    "arabic": "سارة",
    "digits-dash-underscore": "x_y-z9",
    "digits-other-scripts": "a\u0967\u0968",
}


@pytest.mark.parametrize("nick", list(GOOD_NICKS.values()), ids=list(GOOD_NICKS))
async def test_good_nick_is_welcomed_in_nfc(
    shared: ServerProcess, peers: list[Peer], nick: str
) -> None:
    c = await connect(peers, shared.port)
    welcome = await c.try_hello(nick)
    assert welcome["type"] == "welcome", welcome
    assert welcome["nick"] == unicodedata.normalize("NFC", nick)
    assert welcome["account"] is False
    await c.alive()


@pytest.mark.parametrize(
    ("online", "attempt"),
    [
        ("\u00e9", "e\u0301"),
        ("e\u0301", "\u00e9"),
        ("alice", "Alice"),
        ("alice", "ALICE"),
        ("Alice", "aLiCe"),
        ("Straße", "STRASSE"),
        ("ΣΑΣ", "σας"),
    ],
)
async def test_equivalent_nicks_are_the_same_nick(
    tmp_path: Path, peers: list[Peer], online: str, attempt: str
) -> None:
    srv = ServerProcess(tmp_path / "same", CHEAP).start()
    try:
        await login(peers, srv.port, online)
        c = await connect(peers, srv.port)
        await c.send(type="hello", proto=1, nick=attempt, ref="t")
        await c.error("nick_taken", "t")
    finally:
        srv.kill()


async def test_a_nick_confusable_with_an_account_is_bad_nick(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "confusable", CHEAP).start()
    try:
        await register(peers, srv.port, "paypal")
        for lookalike in ("p\u0430yp\u0430l", "\u0440aypal", "P\u0410YP\u0410L"):
            c = await connect(peers, srv.port)
            await c.send(type="hello", proto=1, nick=lookalike, ref="l")
            await c.error("bad_nick", "l")
        # The same nick in another case is the account itself, not a lookalike.
        c = await connect(peers, srv.port)
        await c.send(type="hello", proto=1, nick="PayPal", ref="p")
        await c.error("password_required", "p")
        # A lookalike of a guest is fine: only accounts are protected.
        await login(peers, srv.port, "guestly")
        assert (await (await connect(peers, srv.port)).try_hello("gu\u0435stly"))[
            "type"
        ] == "welcome"
    finally:
        srv.kill()


async def test_accounts_made_before_the_server_started_stay_protected(
    tmp_path: Path, peers: list[Peer]
) -> None:
    """The hub's in-memory index of accounts is loaded at start, deleted ones included."""
    srv = ServerProcess(tmp_path / "before", CHEAP).start()
    try:
        await register(peers, srv.port, "paypal")
        await register(peers, srv.port, "Gone")
        srv.kill()
        store = await open_store(srv.data)
        try:
            assert await store.delete_account("gone")
        finally:
            await store.close()
        srv.start()
        attempts: list[tuple[dict[str, Any], str, str]] = [
            ({"nick": "PayPal"}, "password_required", "paypal is registered; send its password"),
            ({"nick": "p\u0430yp\u0430l"}, "bad_nick", "like the registered nick 'paypal'"),
            ({"nick": "GONE"}, "bad_nick", "is reserved; pick another"),
            ({"nick": "g\u043ene"}, "bad_nick", "like the registered nick 'Gone'"),
            ({"nick": "paypal", "password": "wrong password"}, "bad_password", ""),
            ({"nick": "nobody", "password": PASSWORD}, "bad_password", ""),
        ]
        for fields, code, words in attempts:
            c = await connect(peers, srv.port)
            await c.send(type="hello", proto=1, ref="x", **fields)
            assert words in (await c.error(code, "x"))["message"]
        assert (await (await connect(peers, srv.port)).try_hello("nobody"))["type"] == "welcome"
    finally:
        srv.kill()


# --- passwords ----------------------------------------------------------------------


async def test_registered_nicks_need_their_password(tmp_path: Path, peers: list[Peer]) -> None:
    srv = ServerProcess(tmp_path / "pw", CHEAP).start()
    try:
        await register(peers, srv.port, "Carol")
        attempts: list[tuple[dict[str, Any], str]] = [
            ({"nick": "Carol"}, "password_required"),
            ({"nick": "carol"}, "password_required"),
            ({"nick": "carol", "password": "wrong password"}, "bad_password"),
            ({"nick": "carol", "password": ""}, "bad_password"),
            ({"nick": "dave", "password": PASSWORD}, "bad_password"),  # no such account
        ]
        for fields, code in attempts:
            c = await connect(peers, srv.port)
            await c.send(type="hello", proto=1, ref="x", **fields)
            await c.error(code, "x")
        c = await connect(peers, srv.port)
        welcome = await c.try_hello("CAROL", password=PASSWORD)
        assert welcome["type"] == "welcome", welcome
        assert welcome["nick"] == "Carol" and welcome["account"] is True
        # dave was never registered by the failed attempt: a guest may take it.
        assert (await (await connect(peers, srv.port)).try_hello("dave"))["type"] == "welcome"
    finally:
        srv.kill()


async def test_failed_logins_are_throttled_per_account(tmp_path: Path, peers: list[Peer]) -> None:
    srv = ServerProcess(tmp_path / "throttle", CHEAP).start()
    try:
        await register(peers, srv.port, "erin")
        await register(peers, srv.port, "frank")
        for _ in range(5):  # one connection each: five failed hellos would close one
            c = await connect(peers, srv.port)
            await c.send(type="hello", proto=1, nick="erin", password="guess", ref="g")
            await c.error("bad_password", "g")
        c = await connect(peers, srv.port)
        await c.send(type="hello", proto=1, nick="erin", password=PASSWORD, ref="right")
        limited = await c.error("rate_limited", "right")
        retry_after = limited["retry_after"]
        assert isinstance(retry_after, int | float) and 0 < retry_after <= 10, limited
        # Another account is not locked by erin's failures.
        assert (await c.try_hello("frank", password=PASSWORD))["type"] == "welcome"
        # The lock-out ends by itself.
        await asyncio.sleep(retry_after + 0.1)
        later = await connect(peers, srv.port)
        welcome = await later.try_hello("erin", password=PASSWORD)
        assert welcome["type"] == "welcome", welcome
    finally:
        srv.kill()
