"""The IRC listener (issue 19): IRC and JSON-lines clients on one hub, over real sockets.

A server runs in this process (``Server.open``) with a ``tcp://`` and an
``irc://`` listener on loopback port 0; the IRC side is a raw line client
modelled on what IRC clients send (modern.ircdocs.horse, ircv3.net).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from conftest import RECV_TIMEOUT, Peer, ServerProcess
from test_listeners import free_port, open_sockets, sockets_back_to
from test_listeners import running as running_with_tls

from chinwag.config import ListenSpec, SettingsError, build
from chinwag.net.tls import pinned_context
from chinwag.protocol.irc import IrcMessage, parse_message
from chinwag.server.app import Server

FAST = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}


class IrcPeer:
    """A raw IRC client: send lines, read parsed lines, every wait bounded."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> IrcPeer:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), RECV_TIMEOUT
        )
        return cls(reader, writer)

    async def send(self, *lines: str | bytes) -> None:
        for line in lines:
            raw = line.encode() if isinstance(line, str) else line
            self.writer.write(raw + b"\r\n")
        await self.writer.drain()

    async def recv(self, timeout: float = RECV_TIMEOUT) -> IrcMessage:
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                raise EOFError("server closed the connection")
            msg = parse_message(line.decode().rstrip("\r\n"))
            if msg is not None:
                return msg

    async def until(
        self, accept: Callable[[IrcMessage], bool], timeout: float = RECV_TIMEOUT
    ) -> tuple[IrcMessage, list[IrcMessage]]:
        """Read until a line ``accept`` takes; return it and the lines before it."""
        deadline = asyncio.get_running_loop().time() + timeout
        skipped: list[IrcMessage] = []
        while True:
            left = deadline - asyncio.get_running_loop().time()
            msg = await self.recv(max(left, 0.01))
            if accept(msg):
                return msg, skipped
            skipped.append(msg)

    async def command(self, name: str, timeout: float = RECV_TIMEOUT) -> IrcMessage:
        msg, _ = await self.until(lambda m: m.command == name, timeout)
        return msg

    async def register(self, nick: str, *first: str) -> list[IrcMessage]:
        """Send ``first`` lines, then NICK and USER; return every line up to 001."""
        await self.send(*first, f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        welcome, before = await self.until(lambda m: m.command == "001")
        return [*before, welcome]

    async def lines_to_eof(self, timeout: float = RECV_TIMEOUT) -> list[IrcMessage]:
        """Read until the server closes; return the lines that came before."""
        lines: list[IrcMessage] = []
        while True:
            try:
                lines.append(await self.recv(timeout))
            except EOFError:
                return lines

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


@contextlib.asynccontextmanager
async def running(data: Path, **extra: object) -> AsyncIterator[tuple[int, int]]:
    """A server with a JSON-lines and an IRC listener; yields (json port, irc port)."""
    overrides = [f"{k}={v}" for k, v in {**FAST, **extra}.items()]
    settings = build(None, overrides, listen=["tcp://127.0.0.1:0", "irc://127.0.0.1:0"])
    before = open_sockets()
    server = await Server.open(settings, data)
    try:
        json_addr, irc_addr = server.addresses
        assert (json_addr.spec.protocol, irc_addr.spec.protocol) == ("chinwag", "irc")
        yield json_addr.port, irc_addr.port
    finally:
        await server.shutdown()
        assert await sockets_back_to(before)  # every connection closed, lingering ones too


@contextlib.asynccontextmanager
async def clients() -> AsyncIterator[list[IrcPeer | Peer]]:
    made: list[IrcPeer | Peer] = []
    try:
        yield made
    finally:
        for peer in made:
            await peer.close()


async def irc(made: list[IrcPeer | Peer], port: int) -> IrcPeer:
    peer = await IrcPeer.connect(port)
    made.append(peer)
    return peer


async def json_peer(made: list[IrcPeer | Peer], port: int) -> Peer:
    peer = await Peer.connect(port)
    made.append(peer)
    return peer


async def make_account(port: int, nick: str, password: str) -> None:
    """Register ``nick`` over JSON lines, then log out."""
    peer = await Peer.connect(port)
    try:
        await peer.hello(nick)
        await peer.send(type="register", password=password, ref="r")
        assert (await peer.recv_type("ok"))["ref"] == "r"
        await peer.send(type="bye")
        await peer.recv_type("bye")
    finally:
        await peer.close()


def privmsg(msg: IrcMessage) -> bool:
    return msg.command == "PRIVMSG"


# --- settings -----------------------------------------------------------------------------


def test_irc_and_ircs_are_listener_kinds_and_irc_port_adds_one() -> None:
    assert ListenSpec.parse("irc://127.0.0.1:6667") == ListenSpec("irc", False, "127.0.0.1", 6667)
    assert str(ListenSpec.parse("ircs://[::1]:6697")) == "ircs://[::1]:6697"
    plain = build(None, None, irc_port=6667)
    assert [str(s) for s in plain.listeners()] == ["tcp://0.0.0.0:5050", "irc://0.0.0.0:6667"]
    assert [str(s) for s in build(None, None).listeners()] == ["tcp://0.0.0.0:5050"]
    both = build(None, None, tls=True, irc_port=6667, irc_tls_port=6697)
    assert [str(s) for s in both.listeners()][1:] == ["irc://0.0.0.0:6667", "ircs://0.0.0.0:6697"]


def test_an_irc_tls_port_without_tls_is_refused_saying_what_to_add() -> None:
    with pytest.raises(SettingsError, match="needs TLS: add --tls"):
        build(None, None, irc_tls_port=6697)


def test_the_hard_line_limit_is_at_least_irc_s_own_limits() -> None:
    assert build(None, ["irc_hard_line_limit=4608"]).irc_hard_line_limit == 4608
    with pytest.raises(SettingsError, match="at least 4608"):
        build(None, ["irc_hard_line_limit=4607"])


def test_multiline_limits_are_settings_of_at_least_one() -> None:
    one = build(None, ["irc_multiline_max_lines=1", "irc_multiline_max_bytes=1"])
    assert (one.irc_multiline_max_lines, one.irc_multiline_max_bytes) == (1, 1)
    for name in ("irc_multiline_max_lines", "irc_multiline_max_bytes"):
        with pytest.raises(SettingsError, match=f"{name} must be at least 1"):
            build(None, [f"{name}=0"])


# --- one chat, two protocols --------------------------------------------------------------


async def test_an_irc_and_a_json_client_chat_in_the_lobby_and_by_dm(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        bob = await irc(made, irc_port)
        await bob.send("CAP LS 302", "CAP REQ :message-tags server-time echo-message")
        lines = await bob.register("bob", "CAP END")
        assert any(m.command == "JOIN" and m.params == ("#lobby",) for m in lines) or (
            await bob.command("JOIN")
        ).params == ("#lobby",)
        presence = await ann.recv_type("presence")
        assert (presence["nick"], presence["event"]) == ("bob", "join")

        await ann.send(type="say", room="lobby", body="hi from json", cid="c1")
        ack = await ann.recv_type("ack")
        heard, _ = await bob.until(privmsg)
        assert heard.params == ("#lobby", "hi from json")
        assert heard.source == "ann!ann@chinwag"
        assert heard.tags["msgid"] == str(ack["id"])  # the same id on both protocols
        assert heard.tags["time"].endswith("Z")

        own = await ann.recv_type("message")  # her own copy comes after the ack
        assert (own["from"], own["id"]) == ("ann", ack["id"])
        await bob.send("PRIVMSG #lobby :hi from irc")
        echo, _ = await bob.until(privmsg)  # echo-message: the committed copy
        got = await ann.recv_type("message")
        assert (got["from"], got["room"], got["body"]) == ("bob", "lobby", "hi from irc")
        assert echo.tags["msgid"] == str(got["id"])

        await bob.send("PING :between")  # nothing but the PONG before it: no second echo
        _, between = await bob.until(lambda m: m.command == "PONG")
        assert not any(privmsg(m) for m in between)
        await bob.send("PRIVMSG ann :psst")
        dm = await ann.recv_type("message")
        assert (dm["from"], dm["to"], dm["body"]) == ("bob", "ann", "psst")
        await ann.send(type="dm", to="bob", body="line one\nline two", cid="c2")
        first, _ = await bob.until(lambda m: privmsg(m) and m.params[0] == "bob")
        second, _ = await bob.until(privmsg)
        assert [first.params[1], second.params[1]] == ["line one", "line two"]
        assert "msgid" not in second.tags  # one message: its msgid on its first line (ircmsg)
        assert first.tags["time"] == second.tags["time"]


async def test_a_burst_reaches_irc_clients_of_different_caps_each_in_its_own_form(
    tmp_path: Path,
) -> None:
    # Fan-out renders once per set of tag capabilities: each client must still get
    # exactly its own form, whoever shares it, and its own message only as the echo.
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        plain = await irc(made, irc_port)
        await plain.register("carl")
        tagged: list[IrcPeer] = []
        for nick in ("dave", "erin"):
            peer = await irc(made, irc_port)
            await peer.send("CAP LS 302", "CAP REQ :message-tags server-time echo-message")
            await peer.register(nick, "CAP END")
            tagged.append(peer)
        await ann.send(type="who", room="lobby", ref="w")
        while len((await ann.recv_type("who"))["users"]) < 4:
            await ann.send(type="who", room="lobby", ref="w")
        bodies = [f"burst {i}" for i in range(5)]
        for i, body in enumerate(bodies):
            await ann.send(type="say", room="lobby", body=body, cid=f"b{i}")
        ids = [(await ann.recv_type("ack"))["id"] for _ in bodies]
        await tagged[0].send("PRIVMSG #lobby :from dave")
        for peer in (plain, *tagged):
            got = [(await peer.until(privmsg))[0] for _ in range(6)]
            assert [m.params for m in got] == [
                *(("#lobby", b) for b in bodies),
                ("#lobby", "from dave"),
            ]
            assert got[-1].source == "dave!dave@chinwag"
            if peer is plain:
                assert all(not m.tags for m in got)
            else:
                assert [m.tags["msgid"] for m in got[:5]] == [str(i) for i in ids]
                assert all(m.tags["time"].endswith("Z") for m in got)
        await tagged[0].send("PING :after")  # the echo was the only copy dave got
        _, between = await tagged[0].until(lambda m: m.command == "PONG")
        assert not any(privmsg(m) for m in between)


async def test_chathistory_after_around_between_and_latest_over_a_real_socket(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        await ann.send(type="join", room="secret", ref="j")
        await ann.recv_type("ok")
        ids: list[int] = []
        for i in range(9):
            await ann.send(type="say", room="lobby", body=f"m{i}", cid=f"c{i}")
            ids.append((await ann.recv_type("ack"))["id"])
        await ann.send(type="say", room="secret", body="not for bob", cid="s")
        await ann.recv_type("ack")
        bob = await irc(made, irc_port)
        await bob.send("CAP LS 302", "CAP REQ :batch message-tags draft/chathistory")
        await bob.register("bob", "CAP END")

        async def page(line: str) -> list[str]:
            await bob.send(line)
            await bob.until(lambda m: m.command == "BATCH" and m.params[0].startswith("+"))
            end, inside = await bob.until(lambda m: m.command == "BATCH")
            assert end.params[0].startswith("-")
            return [m.tags["msgid"] for m in inside if privmsg(m)]

        want = [str(i) for i in ids]
        assert await page(f"CHATHISTORY AFTER #lobby msgid={ids[2]} 3") == want[3:6]
        assert await page(f"CHATHISTORY AROUND #lobby msgid={ids[4]} 3") == want[3:6]
        assert (
            await page(f"CHATHISTORY BETWEEN #lobby msgid={ids[1]} msgid={ids[7]} 2") == (want[2:4])
        )
        assert (
            await page(f"CHATHISTORY BETWEEN #lobby msgid={ids[7]} msgid={ids[1]} 2") == (want[5:7])
        )
        assert await page(f"CHATHISTORY LATEST #lobby msgid={ids[5]} 2") == want[7:9]
        assert await page(f"CHATHISTORY LATEST #lobby msgid={ids[8]} 5") == []
        # Timestamps as points: long before all of them, and long after.
        assert (
            await page("CHATHISTORY AFTER #lobby timestamp=2000-01-01T00:00:00.000Z 2")
            == (want[:2])
        )
        assert (
            await page("CHATHISTORY BEFORE #lobby timestamp=2999-01-01T00:00:00.000Z 2")
            == (want[7:])
        )
        # A room bob is not in, like one that does not exist: INVALID_TARGET.
        for target in ("#secret", "#nowhere"):
            await bob.send(f"CHATHISTORY AFTER {target} msgid=1 10")
            fail = await bob.command("FAIL")
            assert fail.params[:4] == ("CHATHISTORY", "INVALID_TARGET", "AFTER", target)
        await bob.send("PRIVMSG ann :one", "PRIVMSG ann :two")
        dms: list[str] = []
        while len(dms) < 2:  # her own copies of her room messages come first
            got = await ann.recv_type("message")
            if got["from"] == "bob":
                dms.append(str(got["id"]))
        assert await page("CHATHISTORY AFTER ann msgid=1 10") == dms
        assert await page("CHATHISTORY AFTER nobody msgid=1 10") == []
        # TARGETS: the lobby (last active before the DMs), then ann; not #secret.
        await bob.send(
            "CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00Z timestamp=2999-01-01T00:00:00Z 10"
        )
        await bob.until(lambda m: m.command == "BATCH")
        _, targets = await bob.until(lambda m: m.command == "BATCH")
        assert [m.params[1] for m in targets] == ["#lobby", "ann"]


async def test_redaction_reactions_and_account_tag_cross_between_irc_and_json(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_account(json_port, "ann", "correct horse")
        caps = "message-tags account-tag draft/message-redaction echo-message"
        ann = await irc(made, irc_port)
        token = base64.b64encode(b"\0ann\0correct horse").decode()
        await ann.send("CAP LS 302", f"CAP REQ :sasl {caps}", "AUTHENTICATE PLAIN")
        await ann.command("AUTHENTICATE")
        await ann.send(f"AUTHENTICATE {token}")
        await ann.register("ann", "CAP END")
        guest = await irc(made, irc_port)
        await guest.send("CAP LS 302", f"CAP REQ :{caps}")
        await guest.register("gus", "CAP END")
        cat = await json_peer(made, json_port)
        await cat.hello("cat")

        await ann.send("PRIVMSG #lobby :typo")
        echo, _ = await ann.until(privmsg)
        heard, _ = await guest.until(privmsg)
        assert heard.tags["account"] == "ann" and echo.tags["account"] == "ann"
        msgid = heard.tags["msgid"]
        await guest.send("PRIVMSG #lobby :from a guest")
        own, _ = await guest.until(privmsg)
        from_guest, _ = await ann.until(privmsg)
        assert "account" not in from_guest.tags and "account" not in own.tags

        await cat.send(type="react", id=int(msgid), emoji="🎉", ref="r")
        reaction = await ann.command("TAGMSG")
        assert reaction.source == "cat!cat@chinwag" and reaction.params == ("#lobby",)
        assert (reaction.tags["+draft/react"], reaction.tags["+draft/reply"]) == ("🎉", msgid)
        await guest.send(f"@+draft/react=👍;+draft/reply={msgid} TAGMSG #lobby")
        while (got := await cat.recv_type("reacted"))["from"] != "gus":
            pass
        assert (got["target"], got["emoji"], got["on"]) == (int(msgid), "👍", True)

        await guest.send(f"REDACT #lobby {msgid}")  # not his: refused, nothing deleted
        refused = await guest.command("FAIL")
        assert refused.params[:4] == ("REDACT", "REDACT_FORBIDDEN", "#lobby", msgid)
        await ann.send(f"REDACT #lobby {msgid} :typo")
        redacted = await guest.command("REDACT")
        assert redacted.source == "ann!ann@chinwag"
        assert redacted.params == ("#lobby", msgid, "typo")  # the reason is told too
        deleted = await cat.recv_type("deleted")
        assert (deleted["target"], deleted["by"], deleted["reason"]) == (int(msgid), "ann", "typo")


async def test_a_multiline_batch_is_one_message_for_json_and_irc_readers(
    tmp_path: Path,
) -> None:
    async with (
        running(tmp_path, irc_multiline_max_lines=3) as (json_port, irc_port),
        clients() as made,
    ):
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        caps = "batch message-tags draft/multiline echo-message labeled-response"
        bob, cat = await irc(made, irc_port), await irc(made, irc_port)
        for peer, nick in ((bob, "bob"), (cat, "cat")):
            await peer.send("CAP LS 302", f"CAP REQ :{caps}")
            await peer.register(nick, "CAP END")
        await bob.send(
            "@label=L1 BATCH +x draft/multiline #lobby",
            "@batch=x PRIVMSG #lobby :roses are red",
            "@batch=x PRIVMSG #lobby :violets ",
            "@batch=x;draft/multiline-concat PRIVMSG #lobby :are blue",
            "BATCH -x",
        )
        got = await ann.recv_type("message")
        assert got["body"] == "roses are red\nviolets are blue"
        start, _ = await cat.until(lambda m: m.command == "BATCH")
        assert start.params[1:] == ("draft/multiline", "#lobby")
        assert start.tags["msgid"] == str(got["id"])
        _, inside = await cat.until(lambda m: m.command == "BATCH")
        # The lines as they came (ircmsg): the joined one still marked as joined.
        assert [m.params[1] for m in inside] == ["roses are red", "violets ", "are blue"]
        assert ["draft/multiline-concat" in m.tags for m in inside] == [False, False, True]
        echo, _ = await bob.until(lambda m: m.command == "BATCH")
        assert echo.tags["label"] == "L1" and echo.tags["msgid"] == str(got["id"])
        await bob.send(
            "BATCH +y draft/multiline #lobby",
            *(f"@batch=y PRIVMSG #lobby :line {i}" for i in range(4)),
            "BATCH -y",
            "PING :after",
        )
        refused = await bob.command("FAIL")
        assert refused.params[:3] == ("BATCH", "MULTILINE_MAX_LINES", "3")
        _, between = await bob.until(lambda m: m.command == "PONG")
        assert not any(privmsg(m) for m in between)  # nothing of it was sent


async def test_a_nick_starting_with_a_digit_crosses_to_irc_with_a_backtick(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        seven = await json_peer(made, json_port)
        await seven.hello("7of9")
        bob = await irc(made, irc_port)
        await bob.register("bob")
        await bob.send("NAMES #lobby")
        names = await bob.command("353")
        assert "`7of9" in names.params[-1].split()
        await seven.send(type="dm", to="bob", body="resistance", cid="c")
        heard, _ = await bob.until(privmsg)
        assert (heard.source, heard.params) == ("`7of9!`7of9@chinwag", ("bob", "resistance"))
        await bob.send("PRIVMSG `7of9 :is futile")
        while (got := await seven.recv_type("message"))["from"] != "bob":
            pass  # her own copy of her DM first
        assert (got["from"], got["to"], got["body"]) == ("bob", "7of9", "is futile")
        eight = await irc(made, irc_port)
        await eight.send("NICK 8ball", "USER e 0 * :e")
        assert "`8ball on IRC" in (await eight.command("432")).params[-1]
        await eight.register("`8ball")
        presence = await seven.recv_type("presence")
        assert (presence["nick"], presence["event"]) == ("8ball", "join")


async def test_whois_tells_who_someone_in_a_shared_channel_is(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_account(json_port, "ann", "correct horse")
        ann = await json_peer(made, json_port)
        await ann.hello("ann", password="correct horse")
        bob = await irc(made, irc_port)
        await bob.register("bob")
        await bob.send("WHOIS ann")
        user = await bob.command("311")
        account = await bob.command("330")
        end = await bob.command("318")
        assert user.params[1:3] == ("ann", "ann")
        assert account.params[1:3] == ("ann", "ann") and end.params[1] == "ann"
        await bob.send("WHOIS nobody")
        assert (await bob.command("401")).params[1] == "nobody"


async def test_names_join_part_and_unknown_nick(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        bob = await irc(made, irc_port)
        await bob.register("bob")
        await bob.send("NAMES #lobby")
        names = await bob.command("353")
        assert set(names.params[-1].split()) == {"ann", "bob"}
        await bob.send("JOIN #den")
        joined = await bob.command("JOIN")
        assert joined.params == ("#den",) and joined.source == "bob!bob@chinwag"
        await bob.send("PRIVMSG nobody_here :hi")
        assert (await bob.command("401")).params[1] == "nobody_here"
        await bob.send("PART #den")
        assert (await bob.command("PART")).params == ("#den",)


async def test_an_ircs_listener_speaks_irc_inside_tls(tmp_path: Path) -> None:
    async with running_with_tls(tmp_path, ["ircs://127.0.0.1:0"]) as (server, fingerprint):
        (address,) = server.addresses
        assert address.tls and address.spec.protocol == "irc"
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address.host, address.port, ssl=pinned_context(fingerprint)),
            RECV_TIMEOUT,
        )
        bob = IrcPeer(reader, writer)
        try:
            lines = await bob.register("bob")
            assert lines[-1].params[0] == "bob"
            assert writer.get_extra_info("ssl_object") is not None
        finally:
            await bob.close()


# --- bad input ------------------------------------------------------------------------------


async def test_an_over_long_line_and_bad_utf8_are_refused_and_the_connection_stays(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        bob = await irc(made, irc_port)
        await bob.register("bob")
        await bob.send("PRIVMSG #lobby :" + "x" * 600)
        assert (await bob.command("417")).params[0] == "bob"
        await bob.send(b"PRIVMSG #lobby :\xff\xfe")
        fail = await bob.command("FAIL")
        assert fail.params[:2] == ("PRIVMSG", "INVALID_UTF8")
        await bob.send("PRIVMSG #lobby :still here")
        got = await ann.recv_type("message")
        assert got["body"] == "still here"  # neither refused line reached the room


async def test_a_line_far_beyond_the_limit_closes_the_connection(tmp_path: Path) -> None:
    async with running(tmp_path, irc_hard_line_limit=8192) as (_, irc_port), clients() as made:
        bob = await irc(made, irc_port)
        await bob.register("bob")
        await bob.send(b"PRIVMSG #lobby :" + b"x" * 9000)
        last = await bob.lines_to_eof()
        assert last[-1].command == "FAIL" and last[-1].params[:2] == ("*", "FRAME_TOO_LARGE")


async def test_the_per_address_cap_counts_irc_and_json_connections_together(
    tmp_path: Path,
) -> None:
    capped = running(tmp_path, max_conns_per_address=2)
    async with capped as (json_port, irc_port), clients() as made:
        await json_peer(made, json_port)
        await irc(made, irc_port)
        third = await irc(made, irc_port)
        lines = await third.lines_to_eof()
        assert [(m.command, m.params[:2]) for m in lines] == [("FAIL", ("*", "RATE_LIMITED"))]


async def test_registration_lines_count_as_frames_before_login(tmp_path: Path) -> None:
    async with running(tmp_path, prelogin_max_frames=3) as (_, irc_port), clients() as made:
        bob = await irc(made, irc_port)
        await bob.send(*["CAP LS 302"] * 4)
        lines = await bob.lines_to_eof()
        assert [m.command for m in lines] == ["CAP", "CAP", "CAP", "FAIL"]
        assert lines[-1].params[:2] == ("*", "NOT_LOGGED_IN")


# --- accounts -------------------------------------------------------------------------------


async def test_sasl_plain_logs_in_and_a_registered_nick_is_refused_without_it(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_account(json_port, "ann", "correct horse")
        guest = await irc(made, irc_port)
        await guest.send("NICK ann", "USER ann 0 * :ann")
        taken = await guest.command("433")
        assert taken.params[1] == "ann"
        ann = await irc(made, irc_port)
        await ann.send("CAP LS 302", "CAP REQ :sasl", "AUTHENTICATE PLAIN")
        assert (await ann.command("AUTHENTICATE")).params == ("+",)
        token = base64.b64encode(b"\0ann\0correct horse").decode()
        await ann.send(f"AUTHENTICATE {token}")
        logged_in = await ann.command("900")
        assert logged_in.params[2] == "ann"
        await ann.command("903")
        lines = await ann.register("ann", "CAP END")
        assert lines[-1].params[0] == "ann"


async def test_nickserv_register_makes_the_nick_an_account(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        bob = await irc(made, irc_port)
        await bob.register("bob")
        await bob.send("PRIVMSG NickServ :REGISTER sesame-open-42")
        notice = await bob.command("NOTICE")
        assert notice.source is not None and notice.source.startswith("NickServ!")
        assert "registered" in notice.params[-1]
        await bob.send("QUIT :bye")
        await bob.command("ERROR")
        peer = await json_peer(made, json_port)
        await peer.send(type="hello", proto=1, nick="bob")
        refused = await peer.recv_type("error")
        assert refused["code"] in ("password_required", "nick_registered")


# --- offline replay -------------------------------------------------------------------------


async def test_dms_missed_while_away_are_replayed_until_a_pong_confirms_them(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_account(json_port, "ann", "correct horse")
        bob = await json_peer(made, json_port)
        await bob.hello("bob")
        await bob.send(type="dm", to="ann", body="while you were out", cid="c1")
        await bob.recv_type("ack")

        # A plain client (no capability): the time is in the text; then a PING.
        first = await irc(made, irc_port)
        await first.register("ann", "PASS :correct horse")
        replay, _ = await first.until(privmsg)
        assert replay.params[0] == "ann" and replay.source == "bob!bob@chinwag"
        assert replay.params[1].endswith("UTC] while you were out")
        ping = await first.command("PING")
        assert ping.params[0].startswith("seen-")
        first.writer.transport.abort()  # gone without answering: nothing confirmed

        again = await irc(made, irc_port)
        await again.send("CAP LS 302", "CAP REQ :server-time")
        await again.register("ann", "PASS :correct horse", "CAP END")
        replay, _ = await again.until(privmsg)
        assert replay.params[1] == "while you were out" and "time" in replay.tags
        ping = await again.command("PING")
        await again.send(f"PONG :{ping.params[0]}")
        await again.send("QUIT")
        await again.command("ERROR")

        last = await irc(made, irc_port)
        await last.register("ann", "PASS :correct horse")
        await last.send("PING :done")
        pong, before = await last.until(lambda m: m.command == "PONG")
        assert pong.params[-1] == "done"
        assert not any(privmsg(m) for m in before)  # confirmed: not replayed again


# --- kill -9 --------------------------------------------------------------------------------


async def test_a_message_echoed_to_an_irc_client_survives_kill_9(tmp_path: Path) -> None:
    irc_port = free_port()
    srv = ServerProcess(tmp_path / "srv", FAST, args=["--irc-port", str(irc_port)])
    srv.start()
    try:
        async with clients() as made:
            bob = await irc(made, irc_port)
            await bob.send("CAP LS 302", "CAP REQ :echo-message message-tags")
            await bob.register("bob", "CAP END")
            await bob.send("PRIVMSG #lobby :committed before the crash")
            echo, _ = await bob.until(privmsg)  # the echo is the ack: stored
            srv.kill()
            await bob.lines_to_eof()
        srv.start()
        async with clients() as made:
            ann = await json_peer(made, srv.port)
            await ann.hello("ann")
            await ann.send(type="history", room="lobby", ref="h")
            page = await ann.recv_type("history")
            kept = [(m["id"], m["from"], m["body"]) for m in page["messages"]]
            assert kept == [(int(echo.tags["msgid"]), "bob", "committed before the crash")]
    finally:
        srv.kill()


async def test_a_mute_reaches_no_irc_reader_as_a_part_but_a_kick_is_a_kick(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        olga = await json_peer(made, json_port)
        await olga.hello("olga")
        await olga.send(type="register", password="correct horse battery", ref="r")
        assert (await olga.recv_type("ok", timeout=30))["ref"] == "r"
        await olga.send(type="join", room="den", ref="j")
        assert (await olga.recv_type("ok"))["ref"] == "j"
        cat = await json_peer(made, json_port)
        await cat.hello("cat")
        await cat.send(type="join", room="den", ref="j")
        assert (await cat.recv_type("ok"))["ref"] == "j"
        bob = await irc(made, irc_port)
        await bob.register("bob")
        await bob.send("JOIN #den")
        await bob.command("JOIN")

        await olga.send(type="mute", room="den", nick="cat", until=None, reason="", ref="m")
        assert (await olga.recv_type("ok"))["ref"] == "m"
        await olga.send(type="say", room="den", body="after the mute", cid="o-1")
        line, before = await bob.until(privmsg)
        assert line.params == ("#den", "after the mute")
        assert [m for m in before if m.command == "PART"] == []  # cat is still in #den

        await olga.send(type="kick", room="den", nick="cat", reason="", ref="k")
        assert (await olga.recv_type("ok"))["ref"] == "k"
        kick = await bob.command("KICK")  # the comment is the kicker's nick when no reason
        assert (kick.source, kick.params) == ("olga!olga@chinwag", ("#den", "cat", "olga"))
