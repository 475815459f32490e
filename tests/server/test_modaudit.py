"""An adversarial audit of moderation and blocks (issue 16): hostile clients over real
sockets against a real server process try to read or do what they may not."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import RECV_TIMEOUT, Peer, ServerProcess
from test_irc_listener import FAST, clients, irc
from test_listeners import open_sockets, sockets_back_to
from test_moderation import PASSWORD, account, admin, reply
from test_websocket import WsPeer

from chinwag.config import build
from chinwag.protocol.irc import IrcMessage
from chinwag.server.app import Server


async def join(peer: Peer, room: str) -> dict[str, Any]:
    """Join ``room``: its ``room_info`` (which follows the ``ok``), or the refusal."""
    answer = await reply(peer, "join", type="join", room=room)
    if answer["type"] != "ok":
        return answer
    return await peer.recv_type("room_info")


async def _private_room(olga: Peer, bob: Peer) -> int:
    """#secret, private, owned by olga, with bob invited in; the id of bob's message there."""
    assert (await reply(olga, "j", type="join", room="secret"))["type"] == "ok"
    assert (await reply(olga, "p", type="room", room="secret", private=True))["type"] == "ok"
    assert (await reply(olga, "i", type="invite", room="secret", nick="bob"))["type"] == "ok"
    assert (await reply(bob, "j", type="join", room="secret"))["type"] == "ok"
    said = await reply(bob, "s", type="say", room="secret", body="bob was here", cid="c-1")
    assert said["type"] == "ack", said
    return int(said["id"])


async def test_a_kicked_member_of_a_private_room_reads_and_does_nothing_there_any_more(
    server: ServerProcess, peers: list[Peer]
) -> None:
    olga = await account(peers, server.port, "olga")
    bob = await account(peers, server.port, "bob")
    own = await _private_room(olga, bob)
    kicked = await reply(olga, "k", type="kick", room="secret", nick="bob", reason="bye")
    assert kicked["type"] == "ok"
    await bob.recv_type("presence")  # the kick itself, told to bob
    await reply(olga, "s2", type="say", room="secret", body="after the kick @bob", cid="c-2")
    await reply(olga, "t", type="room", room="secret", topic="now hidden")
    await olga.send(type="typing", room="secret")
    assert "secret" not in str(await bob.quiet(0.4))  # no message, room_info, typing
    kept_out: dict[str, dict[str, Any]] = {
        "h": {"type": "history", "room": "secret"},
        "w": {"type": "who", "room": "secret"},
        "r": {"type": "read", "room": "secret", "upto": own},
        "q": {"type": "search", "q": "kick", "room": "secret"},
        "t": {"type": "room", "room": "secret", "topic": "mine"},
        "i": {"type": "invite", "room": "secret", "nick": "bob"},
    }
    for ref, frame in kept_out.items():
        refused = await reply(bob, ref, **frame)
        assert refused["code"] == "not_member", (frame, refused)
    for ref, frame in {
        "e": {"type": "edit", "id": own, "body": "changed", "cid": "c-3"},
        "x": {"type": "react", "id": own, "emoji": "👍", "cid": "c-4"},
        "d": {"type": "delete", "id": own, "cid": "c-5"},
    }.items():
        refused = await reply(bob, ref, **frame)
        assert refused["code"] == "not_found", (frame, refused)
    everywhere = await reply(bob, "a", type="search", q="kick")
    assert everywhere["messages"] == []
    again = await reply(bob, "j", type="join", room="secret")
    assert (again["code"], again["reason"]) == ("forbidden", "private")
    rooms = await reply(bob, "l", type="rooms")
    assert "secret" not in [r["name"] for r in rooms["rooms"]]
    history = await reply(olga, "h", type="history", room="secret")
    assert [m["body"] for m in history["messages"]] == ["bob was here", "after the kick @bob"]


async def test_an_uninvited_guest_and_a_plain_member_get_nothing_of_a_private_room(
    server: ServerProcess, peers: list[Peer]
) -> None:
    olga = await account(peers, server.port, "olga")
    bob = await account(peers, server.port, "bob")
    msg = await _private_room(olga, bob)
    guest = await Peer.connect(server.port)
    peers.append(guest)
    await guest.hello("gus")
    invite = await reply(bob, "i", type="invite", room="secret", nick="gus")
    assert (invite["code"], invite["reason"]) == ("forbidden", "not_allowed")
    no = await reply(guest, "j", type="join", room="secret")
    assert (no["code"], no["reason"]) == ("forbidden", "private")
    for ref, frame in {
        "h": {"type": "history", "room": "secret"},
        "w": {"type": "who", "room": "secret"},
        "q": {"type": "search", "q": "bob", "room": "secret"},
    }.items():
        assert (await reply(guest, ref, **frame))["code"] == "not_member"
    assert (await reply(guest, "x", type="react", id=msg, emoji="👍"))["code"] == "not_found"
    await reply(bob, "s", type="say", room="secret", body="hi @gus", cid="c-9")
    assert "hi @gus" not in str(await guest.quiet(0.4))


async def test_a_mod_cannot_delete_the_owners_message_nor_an_admins(
    server: ServerProcess, peers: list[Peer]
) -> None:
    olga = await account(peers, server.port, "olga")
    bob = await account(peers, server.port, "bob")
    ada = await account(peers, server.port, "ada")
    assert (await admin(server.data, "grant", "ada", "admin"))[0] == 0
    for peer in (olga, bob, ada):
        assert (await reply(peer, "j", type="join", room="games"))["type"] == "ok"
    granted = await reply(olga, "g", type="grant", room="games", nick="bob", role="mod")
    assert granted["type"] == "ok"
    owners = await reply(olga, "s", type="say", room="games", body="owner's", cid="c-1")
    admins = await reply(ada, "s", type="say", room="games", body="admin's", cid="c-1")
    for target in (owners["id"], admins["id"]):
        refused = await reply(bob, "d", type="delete", id=target, cid=f"d-{target}")
        assert (refused["code"], refused["reason"]) == ("forbidden", "rank"), refused
    history = await reply(olga, "h", type="history", room="games")
    assert [m.get("body") for m in history["messages"]] == ["owner's", "admin's"]
    carol = await account(peers, server.port, "carol")
    await reply(carol, "j", type="join", room="games")
    members = await reply(carol, "s", type="say", room="games", body="carol's", cid="c-1")
    assert (await reply(bob, "d", type="delete", id=members["id"], cid="d"))["type"] == "ack"


async def test_a_kicked_or_banned_mod_is_a_mod_no_more(
    server: ServerProcess, peers: list[Peer]
) -> None:
    olga = await account(peers, server.port, "olga")
    bob = await account(peers, server.port, "bob")
    carol = await account(peers, server.port, "carol")
    for peer in (olga, bob, carol):
        assert (await join(peer, "games"))["type"] == "room_info"
    await reply(olga, "g", type="grant", room="games", nick="bob", role="mod")
    kicked = await reply(bob, "k", type="kick", room="games", nick="carol")
    assert kicked["type"] == "ok"  # a mod, so far
    assert (await join(carol, "games"))["role"] == "member"
    assert (await reply(olga, "k", type="kick", room="games", nick="bob"))["type"] == "ok"
    assert (await join(bob, "games"))["role"] == "member"
    refused = await reply(bob, "k", type="kick", room="games", nick="carol")
    assert (refused["code"], refused["reason"]) == ("forbidden", "not_allowed")
    await reply(olga, "g", type="grant", room="games", nick="bob", role="mod")
    assert (await reply(olga, "b", type="ban", room="games", nick="bob"))["type"] == "ok"
    assert (await reply(olga, "u", type="unban", room="games", nick="bob"))["type"] == "ok"
    assert (await join(bob, "games"))["role"] == "member"
    code, out, _ = await admin(server.data, "audit", "--room", "games")
    assert code == 0
    assert sum("grant" in line and "role member" in line for line in out.splitlines()) == 2


async def test_bad_moderation_input_is_refused_clearly_changes_nothing_and_the_connection_lives(
    server: ServerProcess, peers: list[Peer]
) -> None:
    olga = await account(peers, server.port, "olga")
    bob = await account(peers, server.port, "bob")
    for peer in (olga, bob):
        await reply(peer, "j", type="join", room="games")
    guest = await Peer.connect(server.port)
    peers.append(guest)
    await guest.hello("gus")
    await reply(guest, "j", type="join", room="games")
    bad: list[tuple[dict[str, object], str, str | None]] = [
        ({"type": "kick", "room": 5, "nick": "bob"}, "bad_request", None),
        ({"type": "kick", "room": "games", "nick": None}, "bad_request", None),
        ({"type": "kick", "room": "games", "nick": "bob", "reason": 5}, "bad_request", None),
        ({"type": "ban", "room": "games", "nick": "bob", "until": "soon"}, "bad_request", None),
        ({"type": "ban", "room": "games", "nick": "bob", "until": 17}, "bad_request", None),
        (
            {"type": "mute", "room": "games", "nick": "bob", "until": "2099-01-01T00:00:00+02:00"},
            "bad_request",
            None,
        ),
        (
            {"type": "mute", "room": "games", "nick": "bob", "until": "2001-01-01T00:00:00Z"},
            "bad_request",
            None,
        ),
        (
            {"type": "mute", "room": "games", "nick": "bob", "reason": "x" * 301},
            "bad_request",
            None,
        ),
        (
            {"type": "ban", "room": "games", "nick": "bob", "reason": "spam\n2026 operator ban"},
            "bad_request",
            None,
        ),
        (
            {"type": "kick", "room": "games", "nick": "bob", "reason": "\x1b[2J"},
            "bad_request",
            None,
        ),
        ({"type": "room", "room": "games", "topic": "x" * 301}, "bad_request", None),
        ({"type": "room", "room": "games", "private": "yes"}, "bad_request", None),
        ({"type": "room", "room": "lobby", "private": True}, "forbidden", "not_allowed"),
        ({"type": "grant", "room": "games", "nick": "bob", "role": "owner"}, "bad_request", None),
        ({"type": "grant", "nick": "gus", "role": "admin"}, "forbidden", "not_admin"),
        ({"type": "voice", "nick": "bob"}, "bad_request", None),  # a room's
        ({"type": "grant", "nick": "bob", "role": "admin"}, "forbidden", "not_admin"),
        ({"type": "ban", "nick": "bob"}, "forbidden", "not_admin"),
        ({"type": "kick", "room": "games", "nick": "olga"}, "forbidden", "rank"),
        ({"type": "kick", "room": "games", "nick": "nobody"}, "no_such_user", None),
        ({"type": "kick", "room": "nowhere", "nick": "bob"}, "not_member", "no_room"),
        ({"type": "mute", "room": "lobby", "nick": "bob"}, "forbidden", "not_allowed"),
    ]
    for i, (frame, code, reason) in enumerate(bad):
        refused = await reply(olga, f"r{i}", **frame)
        assert refused["type"] == "error" and refused["code"] == code, (frame, refused)
        assert refused.get("reason") == reason, (frame, refused)
        assert refused["message"], frame
    at_edge = await reply(olga, "edge", type="mute", room="games", nick="bob", reason="x" * 300)
    assert at_edge["type"] == "ok"
    assert (await reply(olga, "um", type="unmute", room="games", nick="bob"))["type"] == "ok"
    assert (await reply(olga, "p", type="ping"))["type"] == "pong"
    said = await reply(bob, "s", type="say", room="games", body="still here", cid="c-1")
    assert said["type"] == "ack"
    status, out, _ = await admin(server.data, "audit")
    assert status == 0
    assert [line.split()[3] for line in out.splitlines()[1:-1]] == ["mute", "unmute"]


async def test_a_muted_member_may_not_speak_edit_react_or_type_in_the_room_but_may_dm(
    server: ServerProcess, peers: list[Peer]
) -> None:
    olga = await account(peers, server.port, "olga")
    bob = await account(peers, server.port, "bob")
    for peer in (olga, bob):
        await reply(peer, "j", type="join", room="games")
    said = await reply(bob, "s", type="say", room="games", body="before", cid="c-1")
    mine = await reply(olga, "s", type="say", room="games", body="olga's", cid="c-1")
    on = await reply(bob, "r0", type="react", id=mine["id"], emoji="🎉", cid="c-0")
    assert on["type"] == "ack"
    until = "2099-01-01T00:00:00Z"
    assert (await reply(olga, "m", type="mute", room="games", nick="bob", until=until))[
        "type"
    ] == "ok"
    await olga.quiet(0.3)
    refused = await reply(bob, "s2", type="say", room="games", body="shh", cid="c-2")
    assert (refused["code"], refused["reason"]) == ("forbidden", "muted")
    assert (
        refused["until"].startswith("2099-01-01T00:00:00")
        and "2099-01-01 00:00 UTC" in (refused["message"])
    )
    edit = await reply(bob, "e", type="edit", id=said["id"], body="changed", cid="c-3")
    assert (edit["code"], edit["reason"]) == ("forbidden", "muted")
    await bob.send(type="typing", room="games")
    assert [f for f in await olga.quiet(0.5) if f["type"] == "typing"] == []
    # rooms4: a mute stops reactions too (toggled, each was stored and fanned out to all),
    # while taking one's own off is never refused.
    await olga.quiet(0.3)
    react = await reply(bob, "r", type="react", id=mine["id"], emoji="👍", cid="c-4")
    assert (react["code"], react["reason"]) == ("forbidden", "muted")
    assert "2099-01-01 00:00 UTC" in react["message"] and "reactions" in react["message"]
    assert [f for f in await olga.quiet(0.4) if f["type"] == "reacted"] == []
    off = await reply(bob, "r2", type="react", id=mine["id"], emoji="🎉", on=False, cid="c-7")
    assert off["type"] == "ack"
    history = await reply(olga, "h", type="history", room="games")
    olgas = [m for m in history["messages"] if m["id"] == mine["id"]]
    assert olgas[0].get("reactions", []) == []
    assert (await reply(bob, "d", type="dm", to="olga", body="sorry", cid="c-5"))["type"] == "ack"
    assert (await reply(bob, "x", type="delete", id=said["id"], cid="c-6"))["type"] == "ack"
    await bob.send(type="typing", room="lobby")
    assert [f["room"] for f in await olga.quiet(0.5) if f["type"] == "typing"] == ["lobby"]


async def test_a_timed_server_ban_ends_by_itself(server: ServerProcess, peers: list[Peer]) -> None:
    ada = await account(peers, server.port, "ada")
    bob = await account(peers, server.port, "bob")
    assert (await admin(server.data, "grant", "ada", "admin"))[0] == 0
    ends = int(time.time()) + 3  # whole seconds, as `until` is written
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ends))
    assert (await reply(ada, "b", type="ban", nick="bob", until=until))["type"] == "ok"
    frames = await bob.expect_closed(timeout=10)
    assert frames[-1] == {"type": "bye", "reason": "banned"}
    again = await Peer.connect(server.port)
    peers.append(again)
    await again.send(type="hello", proto=1, nick="bob", password="correct horse")
    refused = await again.recv()
    assert refused["code"] == "banned" and refused["until"] is not None
    await asyncio.sleep(max(ends - time.time(), 0) + 0.2)  # the server's clock is this one
    back = await account(peers, server.port, "bob")
    assert (await reply(back, "p", type="ping"))["type"] == "pong"


ADMIN = (sys.executable, "-m", "chinwag", "admin")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to listen as another user")
def test_chinwag_admin_sends_no_password_to_a_control_socket_of_another_user() -> None:
    # A data directory another user may write to: that user listens where the server would.
    top = Path(tempfile.mkdtemp(prefix="chinwag-audit-", dir="/tmp"))
    try:
        srv = ServerProcess(top / "data", {"argon2_memory_kib": 8192, "argon2_time_cost": 1})
        srv.start()
        assert srv.stop() == 0  # a real data directory, with no server running on it
        top.chmod(0o755)
        srv.data.chmod(0o777)
        fake = (
            "import os, socket, sys\n"
            "os.setuid(65534)\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.bind(sys.argv[1])\n"
            "s.listen(1)\n"
            "print('listening', flush=True)\n"
            "s.settimeout(30)\n"
            "conn, _ = s.accept()\n"
            "conn.settimeout(30)\n"
            "data = b''\n"
            "while chunk := conn.recv(4096):\n"
            "    data += chunk\n"
            "print(repr(data), flush=True)\n"
        )
        listener = subprocess.Popen(
            [sys.executable, "-c", fake, str(srv.data / "control.sock")], stdout=subprocess.PIPE
        )
        try:
            assert listener.stdout is not None
            assert listener.stdout.readline() == b"listening\n"
            admin_run = subprocess.run(
                [*ADMIN, "--data", str(srv.data), "reset-password", "bob", "--password-stdin"],
                input=b"the new secret\n",
                capture_output=True,
                timeout=60,
            )
            assert admin_run.returncode == 1
            err = admin_run.stderr
            assert b"served by uid 65534" in err and b"nothing was sent" in err
            got, _ = listener.communicate(timeout=30)
            assert got == b"b''\n"  # the connection closed with nothing sent on it
        finally:
            if listener.poll() is None:
                listener.kill()
                listener.wait(10)
            if listener.stdout is not None:
                listener.stdout.close()
    finally:
        shutil.rmtree(top)


@contextlib.asynccontextmanager
async def three_listeners(data: Path) -> AsyncIterator[dict[str, int]]:
    """A server in this process with JSON-lines, IRC and web (WebSocket) listeners."""
    overrides = [f"{k}={v}" for k, v in FAST.items()]
    listen = ["tcp://127.0.0.1:0", "irc://127.0.0.1:0", "http://127.0.0.1:0"]
    before = open_sockets()
    server = await Server.open(build(None, overrides, listen=listen), data)
    try:
        yield {a.spec.protocol: a.port for a in server.addresses}
    finally:
        await server.shutdown()
        # A connection the server closed lingers up to 2 s for the client's FIN
        # (server/connection.py): wait for it, or the loop ends with it unclosed.
        assert await sockets_back_to(before)


async def _ws_login(http: aiohttp.ClientSession, port: int, nick: str) -> WsPeer:
    ws = WsPeer(await http.ws_connect(f"http://127.0.0.1:{port}/ws"))
    await ws.hello(nick, password=PASSWORD)
    return ws


def _privmsg_with(text: str) -> Callable[[IrcMessage], bool]:
    return lambda m: m.command == "PRIVMSG" and text in m.params[-1]


async def test_a_block_holds_on_websocket_and_irc_and_a_server_ban_ends_all_three(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    timeout = aiohttp.ClientTimeout(total=RECV_TIMEOUT)
    async with (
        three_listeners(data) as ports,
        clients() as made,
        aiohttp.ClientSession(timeout=timeout) as http,
    ):
        peers: list[Peer] = []
        try:
            carol = await account(peers, ports["chinwag"], "carol")
            bob = await account(peers, ports["chinwag"], "bob")
            dave = await account(peers, ports["chinwag"], "dave")
            assert (await reply(carol, "b", type="block", nick="bob"))["type"] == "ok"
            carol_ws = await _ws_login(http, ports["http"], "carol")
            carol_irc = await irc(made, ports["irc"])
            await carol_irc.register("carol", f"PASS :{PASSWORD}")
            bob_ws = await _ws_login(http, ports["http"], "bob")
            bob_irc = await irc(made, ports["irc"])
            await bob_irc.register("bob", f"PASS :{PASSWORD}")
            await reply(bob, "s", type="say", room="lobby", body="from bob @carol", cid="c-1")
            await reply(bob, "d", type="dm", to="carol", body="bob in private", cid="c-2")
            await bob.send(type="typing", to="carol")
            await reply(dave, "f", type="say", room="lobby", body="fence", cid="c-1")
            _, before = await carol_irc.until(_privmsg_with("fence"))
            # (NAMES still lists bob: `who` and presence are not filtered, protocol §11.)
            assert not [m for m in before if (m.source or "").startswith("bob!")]
            seen = []
            while (frame := await carol_ws.recv())["type"] != "message" or (
                frame["body"] != "fence"
            ):
                seen.append(frame)
            assert "bob" not in str(seen)

            status, _, err = await admin(data, "ban", "bob", "--reason", "abuse")
            assert status == 0, err
            assert (await bob.expect_closed(timeout=10))[-1] == {"type": "bye", "reason": "banned"}
            assert (await bob_ws.expect_closed())[-1] == {"type": "bye", "reason": "banned"}
            last = (await bob_irc.lines_to_eof(timeout=10))[-1]
            assert (last.command, last.params[-1]) == (
                "ERROR",
                "Closing link: you are banned from this server",
            )
        finally:
            for peer in peers:
                await peer.close()


async def test_the_audit_log_says_who_did_what_to_whom_where_when_and_why(
    server: ServerProcess, peers: list[Peer]
) -> None:
    olga = await account(peers, server.port, "olga")
    bob = await account(peers, server.port, "bob")
    ada = await account(peers, server.port, "ada")
    assert (await admin(server.data, "grant", "ada", "admin"))[0] == 0
    await join(olga, "games")
    await join(bob, "games")
    said = await reply(bob, "s", type="say", room="games", body="spam spam", cid="c-1")
    until = "2099-01-01T00:00:00Z"
    steps: list[dict[str, Any]] = [
        {"type": "room", "room": "games", "topic": "chess"},
        {"type": "mute", "room": "games", "nick": "bob", "until": until, "reason": "r-mute"},
        {"type": "unmute", "room": "games", "nick": "bob", "reason": "r-unmute"},
        {"type": "grant", "room": "games", "nick": "bob", "role": "mod"},
        {"type": "grant", "room": "games", "nick": "bob", "role": "member"},
        {"type": "delete", "id": said["id"], "cid": "d-1"},
        {"type": "kick", "room": "games", "nick": "bob", "reason": "r-kick"},
        {"type": "ban", "room": "games", "nick": "bob", "reason": "r-ban"},
        {"type": "unban", "room": "games", "nick": "bob", "reason": "r-unban"},
        {"type": "invite", "room": "games", "nick": "bob"},
    ]
    for i, step in enumerate(steps):
        answer = await reply(olga, f"a{i}", **step)
        assert answer["type"] in ("ok", "ack"), (step, answer)
    for i, step in enumerate(
        [
            {"type": "kick", "nick": "bob", "reason": "r-skick"},
            {"type": "ban", "nick": "bob", "until": until, "reason": "r-sban"},
            {"type": "unban", "nick": "bob", "reason": "r-sunban"},
        ]
    ):
        assert (await reply(ada, f"s{i}", **step))["type"] == "ok", step
    status, out, _ = await admin(server.data, "audit")
    assert status == 0
    rows = [line.split() for line in out.splitlines()[1:-1]]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert all(row[0] == today for row in rows)  # when (UTC)
    assert [row[2:] for row in rows] == [
        ["operator", "grant", "server", "ada", "role", "admin"],
        ["olga", "room", "#games", "topic=chess"],
        ["olga", "mute", "#games", "bob", "r-mute", "until", "2099-01-01T00:00:00.000Z"],
        ["olga", "unmute", "#games", "bob", "r-unmute"],
        ["olga", "grant", "#games", "bob", "role", "mod"],
        ["olga", "grant", "#games", "bob", "role", "member"],
        ["olga", "delete", "#games", f"#{said['id']}", "from", "bob"],
        ["olga", "kick", "#games", "bob", "r-kick"],
        ["olga", "ban", "#games", "bob", "r-ban"],
        ["olga", "unban", "#games", "bob", "r-unban"],
        ["olga", "invite", "#games", "bob"],
        ["ada", "kick", "server", "bob", "r-skick"],
        ["ada", "ban", "server", "bob", "r-sban", "until", "2099-01-01T00:00:00.000Z"],
        ["ada", "unban", "server", "bob", "r-sunban"],
    ]
    assert PASSWORD not in out


async def test_the_standings_of_guests_that_left_end_with_them_and_free_the_room(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "data", {**FAST, "room_standings_max": 2}).start()
    try:
        olga = await account(peers, srv.port, "olga")
        await join(olga, "games")
        for nick in ("troll1", "troll2", "troll3"):
            guest = await Peer.connect(srv.port)
            peers.append(guest)
            await guest.hello(nick)
            assert (await join(guest, "games"))["type"] == "room_info"
            muted = await reply(olga, nick, type="mute", room="games", nick=nick)
            assert muted["type"] == "ok", muted  # the third too: the others' mutes ended
            refused = await reply(guest, "s", type="say", room="games", body="hi", cid="c-1")
            assert refused["reason"] == "muted"
            await guest.send(type="bye")
            await guest.expect_closed()
        again = await Peer.connect(srv.port)
        peers.append(again)
        await again.hello("troll1")  # someone else as far as the server knows
        await join(again, "games")
        said = await reply(again, "s", type="say", room="games", body="hello", cid="c-1")
        assert said["type"] == "ack"
    finally:
        srv.kill()


async def test_every_rank_mutes_only_those_below_it_and_never_itself(
    server: ServerProcess, peers: list[Peer]
) -> None:
    ranks = {"gus": 0, "mem": 0, "mo": 1, "olga": 2, "ada": 3}
    olga = await account(peers, server.port, "olga")
    await join(olga, "games")
    who = {"olga": olga}
    for nick in ("ada", "mo", "mem"):
        who[nick] = await account(peers, server.port, nick)
        await join(who[nick], "games")
    gus = await Peer.connect(server.port)
    peers.append(gus)
    await gus.hello("gus")
    await join(gus, "games")
    who["gus"] = gus
    assert (await admin(server.data, "grant", "ada", "admin"))[0] == 0
    await reply(olga, "g", type="grant", room="games", nick="mo", role="mod")
    for actor, peer in who.items():
        for target in who:
            got = await reply(peer, f"{actor}-{target}", type="mute", room="games", nick=target)
            if ranks[actor] >= 1 and ranks[actor] > ranks[target]:
                assert got["type"] == "ok", (actor, target, got)
                lifted = await reply(peer, "u", type="unmute", room="games", nick=target)
                assert lifted["type"] == "ok"
            else:
                expected = "not_allowed" if ranks[actor] < 1 else "rank"
                assert (got["code"], got["reason"]) == ("forbidden", expected), (actor, target)
    for peer in who.values():  # nobody is left muted by any of it
        assert (await reply(peer, "s", type="say", room="games", body="hi", cid="c-1"))[
            "type"
        ] == "ack"


async def test_an_invite_is_of_one_guest_session_and_an_invited_guest_registers_as_a_member(
    server: ServerProcess, peers: list[Peer]
) -> None:
    olga = await account(peers, server.port, "olga")
    bob = await account(peers, server.port, "bob")
    await _private_room(olga, bob)
    first = await Peer.connect(server.port)
    await first.hello("gus")
    assert (await reply(olga, "i", type="invite", room="secret", nick="gus"))["type"] == "ok"
    await first.send(type="bye")
    await first.expect_closed()
    await first.close()
    other = await Peer.connect(server.port)
    peers.append(other)
    await other.hello("gus")  # another guest with the nick: not invited
    refused = await join(other, "secret")
    assert (refused["code"], refused["reason"]) == ("forbidden", "private")
    assert (await reply(olga, "i", type="invite", room="secret", nick="gus"))["type"] == "ok"
    assert (await join(other, "secret"))["role"] == "member"
    await other.send(type="register", password=PASSWORD, ref="reg")
    assert (await other.recv_type("ok", timeout=30))["ref"] == "reg"
    assert (await join(other, "secret"))["role"] == "member"  # still in; no more than that
    no = await reply(other, "i", type="invite", room="secret", nick="bob")
    assert (no["code"], no["reason"]) == ("forbidden", "not_allowed")


async def test_an_account_kicked_while_offline_gets_nothing_of_the_room_at_its_next_login(
    server: ServerProcess, peers: list[Peer]
) -> None:
    olga = await account(peers, server.port, "olga")
    bob = await account(peers, server.port, "bob")
    await _private_room(olga, bob)
    await bob.send(type="bye")
    await bob.expect_closed()
    assert (await reply(olga, "k", type="kick", room="secret", nick="bob"))["type"] == "ok"
    await reply(olga, "s", type="say", room="secret", body="after bob left", cid="c-2")
    back = await Peer.connect(server.port)
    peers.append(back)
    await back.send(type="hello", proto=1, nick="bob", password=PASSWORD)
    frames = [await back.recv()]
    while frames[-1]["type"] != "caught_up":
        frames.append(await back.recv())
    assert frames[0]["type"] == "welcome" and frames[0]["rooms"] == ["lobby"]
    assert "after bob left" not in str(frames)
    assert frames[-1]["missed"] == 0
    assert (await reply(back, "h", type="history", room="secret"))["code"] == "not_member"


async def test_a_server_banned_guest_may_come_back_as_a_new_guest_its_ban_was_of_a_session(
    server: ServerProcess, peers: list[Peer]
) -> None:
    ada = await account(peers, server.port, "ada")
    assert (await admin(server.data, "grant", "ada", "admin"))[0] == 0
    troll = await Peer.connect(server.port)
    peers.append(troll)
    await troll.hello("troll")
    assert (await reply(ada, "b", type="ban", nick="troll", reason="spam"))["type"] == "ok"
    assert (await troll.expect_closed(timeout=10))[-1] == {"type": "bye", "reason": "banned"}
    # What holds: the session. What does not: the person (docs/security.md).
    again = await Peer.connect(server.port)
    peers.append(again)
    assert (await again.hello("troll"))["type"] == "caught_up"


async def test_a_mention_in_a_private_room_names_and_notifies_no_outsider(
    server: ServerProcess, peers: list[Peer]
) -> None:
    olga = await account(peers, server.port, "olga")
    bob = await account(peers, server.port, "bob")
    mallory = await account(peers, server.port, "mallory")
    await mallory.send(type="bye")
    await mallory.expect_closed()
    await _private_room(olga, bob)
    said = await reply(olga, "s", type="say", room="secret", body="@mallory @bob see", cid="c-2")
    assert said["type"] == "ack"
    while (got := await bob.recv_type("message"))["id"] != said["id"]:
        pass
    assert (got["body"], got.get("mentions")) == ("@mallory @bob see", ["bob"])
    back = await Peer.connect(server.port)
    peers.append(back)
    await back.send(type="hello", proto=1, nick="mallory", password=PASSWORD)
    frames = [await back.recv()]
    while frames[-1]["type"] != "caught_up":
        frames.append(await back.recv())
    assert frames[-1]["mentions"] == 0 and "see" not in str(frames)
    found = await reply(back, "q", type="search", q="mallory see")
    assert found["messages"] == []
