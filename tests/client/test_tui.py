"""`chinwag chat` driven for real: in a pseudo-terminal (pexpect), against real servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pexpect
import pytest
from client_events import is_body, until
from conftest import ServerProcess

from chinwag.client import (
    Changed,
    ChatClient,
    Message,
    Moderated,
    Presence,
    ReadMarker,
    Receipt,
    RoomDetails,
    SendFailed,
    Welcome,
)
from chinwag.errors import BadKey, Forbidden, PasswordRequired, RoomFull

WAIT = 15.0
# A zone with a half-hour offset (POSIX TZ syntax needs no tz database): the
# terminal must print local time, not UTC.
TZ = "IST-5:30"
OFFSET = timedelta(hours=5, minutes=30)

_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    r"|\x1b[()][0-9A-Za-z]"
    r"|\x1b[@-Z\\-_=>78]"
)


PROMPT = r"(?:[#@][^\s>]+>)*"  # prompt redraws that may precede a printed line


def screen_text(raw: str) -> str:
    """What a person would read: escape sequences and carriage returns removed."""
    return _ANSI.sub("", raw).replace("\r", "")


def hhmm(ts: datetime) -> str:
    return (ts + OFFSET).strftime("%H:%M")


def when(ts: datetime) -> str:
    """A time as the terminal shows an end (a mute's): with its date unless it is today there."""
    local, today = ts + OFFSET, (datetime.now(UTC) + OFFSET).date()
    return local.strftime("%H:%M" if local.date() == today else "%Y-%m-%d %H:%M")


class Tty:
    """`python -m chinwag chat` in a pty; every wait is bounded and async."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "chinwag", "chat", *args],
            env=env,
            encoding="utf-8",
            codec_errors="replace",
            dimensions=(50, 200),
            timeout=WAIT,
        )
        self.raw = ""
        self.pos = 0

    def _read_available(self) -> bool:
        """Read what is there; False at EOF."""
        while True:
            try:
                self.raw += self.child.read_nonblocking(65536, timeout=0)
            except pexpect.TIMEOUT:
                return True
            except pexpect.EOF:
                return False

    @property
    def text(self) -> str:
        return screen_text(self.raw)

    async def expect(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        """Wait for ``pattern`` in the screen text after the previous match."""
        regex = re.compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            alive = self._read_available()
            if m := regex.search(self.text, self.pos):
                self.pos = m.end()
                return m
            if not alive or loop.time() > deadline:
                why = "exited" if not alive else f"not seen in {timeout} s"
                raise AssertionError(f"{pattern!r} {why}; screen:\n{self.text[-3000:]}")
            await asyncio.sleep(0.05)

    def sendline(self, text: str) -> None:
        self.child.sendline(text)

    async def wait_exit(self, timeout: float = WAIT) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._read_available():
            if loop.time() > deadline:
                raise AssertionError(f"still running; screen:\n{self.text[-3000:]}")
            await asyncio.sleep(0.05)
        self.child.close()
        assert self.child.exitstatus is not None, self.child.signalstatus
        return int(self.child.exitstatus)

    def stop(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close(force=True)


class Harness:
    """Starts terminal clients and library clients; stops them all at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.ttys: list[Tty] = []
        self.clients: list[ChatClient] = []
        self.scripts: list[asyncio.subprocess.Process] = []

    def env(self, name: str) -> dict[str, str]:
        return {
            **os.environ,
            "TERM": "xterm-256color",
            "PROMPT_TOOLKIT_NO_CPR": "1",  # nobody answers cursor-position requests here
            "CHINWAG_CONFIG_DIR": str(self.tmp_path / "config" / name),
            "TZ": TZ,
        }

    def tty(self, port: int, nick: str, *extra: str) -> Tty:
        term = Tty([f"127.0.0.1:{port}", "--nick", nick, *extra], self.env(nick))
        self.ttys.append(term)
        return term

    async def script(self, port: int, nick: str, *extra: str) -> asyncio.subprocess.Process:
        """``chinwag chat`` with pipes instead of a terminal (plain line mode)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chinwag",
            "chat",
            f"127.0.0.1:{port}",
            "--nick",
            nick,
            *extra,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env(nick),
        )
        self.scripts.append(proc)
        return proc

    async def client(self, port: int, nick: str, **kwargs: Any) -> ChatClient:
        kwargs.setdefault("config_dir", self.tmp_path / "config" / f"lib-{nick}")
        kwargs.setdefault("reconnect_min", 0.1)
        kwargs.setdefault("reconnect_max", 1.0)
        client = ChatClient("127.0.0.1", port, nick=nick, **kwargs)
        self.clients.append(client)
        await asyncio.wait_for(client.connect(), WAIT)
        return client

    async def close(self) -> None:
        for term in self.ttys:
            term.stop()
        for client in self.clients:
            await client.close(timeout=2)
        for proc in self.scripts:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    made = Harness(tmp_path)
    yield made
    await made.close()


async def test_chat_in_a_terminal(server: ServerProcess, harness: Harness) -> None:
    bob = await harness.client(server.port, "bob")
    await bob.wait_sent(bob.say("lobby", "from before"), WAIT)
    alice = harness.tty(server.port, "alice")
    await alice.expect(r"connected to 127\.0\.0\.1:\d+ as alice \(guest\)")
    await alice.expect(r"#lobby>")
    await until(bob, lambda e: isinstance(e, Presence) and e.nick == "alice")

    sent = await bob.wait_sent(bob.say("lobby", "hi alice"), WAIT)
    await alice.expect(rf"{hhmm(sent.ts)} #lobby <bob> hi alice\n")

    alice.sendline("hello bob")
    got = await until(bob, is_body("hello bob"))
    mine = got[-1]
    assert isinstance(mine, Message) and mine.sender == "alice" and mine.room == "lobby"
    await alice.expect(rf"{hhmm(mine.ts)} #lobby <alice> hello bob")

    await bob.join("games")
    alice.sendline("/join games")
    await alice.expect(r"you are in #games")
    await until(bob, lambda e: isinstance(e, Presence) and e.room == "games")
    alice.sendline("in games now")
    got = await until(bob, is_body("in games now"))
    assert isinstance(got[-1], Message) and got[-1].room == "games"

    alice.sendline("/who")
    await alice.expect(r"online in #games: alice \(guest\), bob \(guest\)")
    alice.sendline("/rooms")
    await alice.expect(r"rooms: #games \(2\), #lobby \(2\)")
    bob.say("games", "bob in games")
    await alice.expect(r"\d\d:\d\d #games <bob> bob in games")

    alice.sendline("/dm bob psst, bob")
    got = await until(bob, is_body("psst, bob"))
    dm = got[-1]
    assert isinstance(dm, Message) and dm.to == "bob" and dm.sender == "alice"
    await alice.expect(r"\d\d:\d\d @bob <alice> psst, bob")
    await alice.expect(r"@bob>")
    bob.dm("alice", "psst yourself")
    await alice.expect(r"\d\d:\d\d @bob <bob> psst yourself")
    alice.sendline("and a second line")  # the current conversation is the DM now
    got = await until(bob, is_body("and a second line"))
    assert isinstance(got[-1], Message) and got[-1].to == "bob"

    alice.sendline("/history")
    await alice.expect(r"no earlier messages in @bob")
    alice.sendline("/join lobby")  # back to the lobby, which has older messages
    await alice.expect(r"you are in #lobby")
    alice.sendline("/history")
    await alice.expect(r"--- earlier in #lobby ---\n\d\d:\d\d #lobby <bob> from before\n")
    alice.sendline("/help")
    await alice.expect(r"/join ROOM")
    alice.sendline("/leave games")
    await alice.expect(r"you left #games")
    alice.sendline("/frobnicate")
    await alice.expect(r"unknown command")

    alice.sendline("/quit")
    assert await alice.wait_exit() == 0
    await until(bob, lambda e: isinstance(e, Presence) and e.event == "leave" and e.room == "lobby")


async def test_registered_nick_asks_for_the_password_and_shows_what_was_missed(
    server: ServerProcess, harness: Harness
) -> None:
    setup = await harness.client(server.port, "alice")
    await setup.register("alice-password")
    await setup.close()
    bob = await harness.client(server.port, "bob")
    acks = [await bob.wait_sent(bob.dm("alice", f"dm {i}"), WAIT) for i in range(3)]
    acks.append(await bob.wait_sent(bob.say("lobby", "lobby news"), WAIT))

    alice = harness.tty(server.port, "alice")
    await alice.expect(r"password for alice: ")
    alice.sendline("not the password")
    await alice.expect(r"wrong")
    await alice.expect(r"password for alice: ")
    alice.sendline("alice-password")
    await alice.expect(r"as alice \(account\)")
    summary = await alice.expect(
        rf"while you were away: 3 from bob, 1 in lobby\n{PROMPT}-{{20,}}\n"
    )
    backlog = await alice.expect(
        rf"{hhmm(acks[0].ts)} @bob <bob> dm 0\n.*@bob <bob> dm 1\n.*@bob <bob> dm 2\n"
        rf".*#lobby <bob> lobby news\n",
        timeout=5,
    )
    assert summary.end() <= backlog.start()
    assert "alice-password" not in alice.raw  # never echoed
    assert "not the password" not in alice.raw

    alice.sendline("/passwd")
    await alice.expect(r"current password:")
    alice.sendline("alice-password")
    await alice.expect(r"new password:")
    alice.sendline("better-password")
    await alice.expect(r"once more:")
    alice.sendline("better-password")
    await alice.expect(r"password changed")
    assert "better-password" not in alice.raw
    alice.sendline("/quit")
    assert await alice.wait_exit() == 0
    again = await harness.client(server.port, "alice", password="better-password")
    assert again.account


async def test_register_from_the_terminal(server: ServerProcess, harness: Harness) -> None:
    alice = harness.tty(server.port, "alice")
    await alice.expect(r"as alice \(guest\)")
    alice.sendline("/register")
    await alice.expect(r"new password:")
    alice.sendline("fresh-password")
    await alice.expect(r"once more:")
    alice.sendline("fresh-password")
    await alice.expect(r"alice is now registered")
    probe = ChatClient("127.0.0.1", server.port, nick="alice", config_dir=harness.tmp_path / "p")
    with pytest.raises(PasswordRequired):
        await asyncio.wait_for(probe.connect(), WAIT)
    await probe.close()
    alice.sendline("/quit")
    assert await alice.wait_exit() == 0


async def test_escape_sequences_from_others_are_never_printed_raw(
    server: ServerProcess, harness: Harness
) -> None:
    bob = await harness.client(server.port, "bob")
    alice = harness.tty(server.port, "alice")
    await alice.expect(r"as alice \(guest\)")
    await until(bob, lambda e: isinstance(e, Presence) and e.nick == "alice")

    # The server refuses control characters in bodies...
    bob.say("lobby", "\x1b[31mRED\x1b]0;pwned\x07")
    failed = await until(bob, lambda e: isinstance(e, SendFailed))
    assert isinstance(failed[-1], SendFailed) and failed[-1].error.code == "bad_body"
    # ...but not every invisible character: a right-to-left override gets through,
    # and must not reach the terminal as such.
    bob.say("lobby", "abc\u202egpj.exe and\ttab")
    await alice.expect(r"<bob> abc\\u202egpj\.exe and    tab")
    assert "\u202e" not in alice.raw
    alice.sendline("/quit")
    assert await alice.wait_exit() == 0


async def test_escape_sequences_from_a_hostile_server_are_escaped(harness: Harness) -> None:
    """Not our server: a stub that sends what our server would refuse."""
    evil_body = "\x1b[31mRED\x1b[0m \x1b]0;pwned\x07 \x9b2J\nsecond line \x1b[2J"

    async def stub(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            kind = json.loads(line)["type"]
            if kind == "hello":
                frames: list[dict[str, Any]] = [
                    {
                        "type": "welcome",
                        "proto": 1,
                        "nick": "alice",
                        "account": False,
                        "server": {"name": "stub", "version": "0"},
                        "motd": "motd \x1b[5mblink",
                        "rooms": ["lobby"],
                    },
                    {"type": "caught_up", "missed": 0, "rooms": {}, "dms": {}, "truncated": False},
                    {
                        "type": "message",
                        "id": 1,
                        "ts": "2026-11-24T05:00:00.000Z",
                        "from": "m\x1b[8mallory",
                        "room": "lobby",
                        "body": evil_body,
                    },
                    {"type": "presence", "room": "lobby", "nick": "x\x1b[1Ay", "event": "join"},
                ]
                for frame in frames:
                    writer.write(json.dumps(frame).encode() + b"\n")
            elif kind == "bye":
                writer.write(b'{"type":"bye"}\n')
                break
        writer.close()

    listener = await asyncio.start_server(stub, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        alice = harness.tty(port, "alice")
        await alice.expect(r"motd \\x1b\[5mblink")
        await alice.expect(
            r"10:30 #lobby <m\\x1b\[8mallory> \\x1b\[31mRED\\x1b\[0m \\x1b\]0;pwned\\x07 "
            r"\\x9b2J\n +second line \\x1b\[2J"
        )
        await alice.expect(r"x\\x1b\[1Ay joined #lobby")
        for raw in ("\x1b[31mRED", "\x1b]0;pwned", "\x1b[5mblink", "\x1b[8mallory", "\x9b"):
            assert raw not in alice.raw
        alice.sendline("/quit")
        assert await alice.wait_exit() == 0
    finally:
        listener.close()


async def test_terminal_reconnects_after_the_server_is_killed(
    tmp_path: Path, harness: Harness
) -> None:
    srv = ServerProcess(tmp_path / "srv", {"argon2_memory_kib": 8192}).start()
    try:
        bob = await harness.client(srv.port, "bob")
        alice = harness.tty(srv.port, "alice")
        await alice.expect(r"as alice \(guest\)")
        await alice.expect(r"#lobby>")
        alice.sendline("/join games")
        await alice.expect(r"you are in #games")

        srv.kill()
        await alice.expect(r"connection lost .*; reconnecting in \d+\.\d s")
        alice.sendline("typed while down")
        await alice.expect(r"queued; it will be sent once reconnected")
        srv.start()
        await alice.expect(r"\*\*\* reconnected", timeout=40)
        await until(bob, lambda e: isinstance(e, Welcome) and e.resumed, timeout=40)
        await bob.join("games")
        await alice.expect(r"#games <alice> typed while down")
        alice.sendline("after the restart")
        got = await until(bob, is_body("after the restart"))
        assert isinstance(got[-1], Message) and got[-1].room == "games"  # rejoined by itself
        history = await bob.history("games")
        assert [m.body for m in history.messages] == ["typed while down", "after the restart"]
        alice.sendline("/quit")
        assert await alice.wait_exit() == 0
    finally:
        srv.kill()


async def test_plain_line_mode_with_password_from_stdin(
    server: ServerProcess, harness: Harness
) -> None:
    setup = await harness.client(server.port, "alice")
    await setup.register("alice-password")
    await setup.close()
    bob = await harness.client(server.port, "bob")
    proc = await harness.script(server.port, "alice", "--password-stdin")
    assert proc.stdin is not None
    proc.stdin.write(b"alice-password\nhello from a script\n")
    await proc.stdin.drain()
    await until(bob, is_body("hello from a script"))
    proc.stdin.write(b"/quit\n")
    await proc.stdin.drain()
    out, _ = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 0, out
    text = out.decode()
    assert "as alice (account)" in text and "<alice> hello from a script" in text
    assert "alice-password" not in text


async def test_wrong_password_on_stdin_exits_with_an_error(
    server: ServerProcess, harness: Harness
) -> None:
    setup = await harness.client(server.port, "alice")
    await setup.register("alice-password")
    await setup.close()
    proc = await harness.script(server.port, "alice", "--password-stdin")
    out, _ = await asyncio.wait_for(proc.communicate(b"nope-nope-nope\n"), WAIT)
    assert proc.returncode == 1
    assert b"wrong" in out


async def test_unreachable_server_exits_with_an_error(tmp_path: Path, harness: Harness) -> None:
    srv = ServerProcess(tmp_path / "gone").start()
    port = srv.port
    srv.kill()
    alice = harness.tty(port, "alice")
    await alice.expect(rf"cannot connect to 127\.0\.0\.1:{port}")
    assert await alice.wait_exit() == 1


async def test_quit_with_messages_not_sent_asks_first(tmp_path: Path, harness: Harness) -> None:
    srv = ServerProcess(tmp_path / "srv", {"argon2_memory_kib": 8192}).start()
    try:
        alice = harness.tty(srv.port, "alice")
        await alice.expect(r"as alice \(guest\)")
        await alice.expect(r"#lobby>")
        srv.kill()
        await alice.expect(r"connection lost")
        alice.sendline("typed while down")
        await alice.expect(r"queued; it will be sent once reconnected")
        alice.sendline("/quit")
        await alice.expect(r"1 message is not sent yet.*/quit again")
        assert alice.child.isalive()
        srv.start()
        await alice.expect(r"\*\*\* reconnected", timeout=40)
        await alice.expect(r"#lobby <alice> typed while down")
        alice.sendline("/quit")
        assert await alice.wait_exit() == 0
        assert "bye" in alice.text

        again = harness.tty(srv.port, "alice2")
        await again.expect(r"#lobby>")
        srv.kill()
        await again.expect(r"connection lost")
        again.sendline("lost on purpose")
        await again.expect(r"queued")
        again.sendline("/quit")
        await again.expect(r"/quit again")
        again.sendline("/quit")
        assert await again.wait_exit() == 0
        assert re.search(r"not sent: #lobby: lost on purpose", again.text[again.pos :])
    finally:
        srv.kill()


async def test_a_changed_certificate_is_explained_once_with_the_file_to_fix(
    tmp_path: Path, harness: Harness
) -> None:
    from chinwag.net.tls import CERT_FILE, KEY_FILE

    srv = ServerProcess(tmp_path / "srv", {}, args=["--tls", "--no-announce"]).start()
    try:
        alice = harness.tty(srv.port, "alice", "--tls", "--trust")
        await alice.expect(r"over TLS as alice \(guest\)")
        await alice.expect(r"#lobby>")
        srv.kill()
        (srv.data / CERT_FILE).unlink()
        (srv.data / KEY_FILE).unlink()
        srv.start()
        known = harness.tmp_path / "config" / "alice" / "known_hosts"
        await alice.expect(r"certificate .*CHANGED", timeout=40)
        assert await alice.wait_exit(timeout=10) == 1
        shown = alice.text
        assert str(known) in shown and "known-hosts forget" in shown, shown
        assert shown.count("CHANGED") == 1, shown
        assert "(1, " not in shown and "('" not in shown, shown
    finally:
        srv.kill()


async def test_a_piped_register_reads_both_password_lines_and_never_posts_them(
    server: ServerProcess, harness: Harness
) -> None:
    bob = await harness.client(server.port, "bob")
    proc = await harness.script(server.port, "alice")
    script = b"/register\nscript-password\nscript-password\nafter registering\n/quit\n"
    out, _ = await asyncio.wait_for(proc.communicate(script), WAIT)
    assert proc.returncode == 0, out
    assert b"alice is now registered" in out, out
    got = await until(bob, is_body("after registering"))
    bodies = [e.body for e in got if isinstance(e, Message)]
    assert "script-password" not in bodies
    assert b"script-password" not in out


async def test_a_dm_to_nobody_keeps_the_conversation_and_errors_are_plain_words(
    server: ServerProcess, harness: Harness
) -> None:
    alice = harness.tty(server.port, "alice")
    await alice.expect(r"#lobby>")
    alice.sendline("/dm nobody hello?")
    await alice.expect(r"not sent to @nobody: nobody is neither registered nor online")
    await alice.expect(r"back to #lobby")
    alice.sendline("/leave games")
    await alice.expect(r"you are not in #games")
    alice.sendline("still in the lobby")
    await alice.expect(r"#lobby <alice> still in the lobby")
    text = alice.text
    assert "(no_such_user)" not in text and "(not_member)" not in text, text
    assert "@nobody>" not in text.split("back to #lobby")[-1]
    alice.sendline("/quit")
    assert await alice.wait_exit() == 0


async def test_a_plain_client_to_a_tls_server_is_told_to_add_tls(
    tmp_path: Path, harness: Harness
) -> None:
    srv = ServerProcess(tmp_path / "srv", {}, args=["--tls", "--no-announce"]).start()
    try:
        alice = harness.tty(srv.port, "alice")
        await alice.expect(r"this server speaks TLS: add --tls, or use an invite")
        assert await alice.wait_exit() == 1
    finally:
        srv.kill()


async def test_irc_habits_work(server: ServerProcess, harness: Harness) -> None:
    bob = await harness.client(server.port, "bob")
    alice = harness.tty(server.port, "alice")
    await alice.expect(r"#lobby>")
    await until(bob, lambda e: isinstance(e, Presence) and e.nick == "alice")
    alice.sendline("/join #games")
    await alice.expect(r"you are in #games")
    alice.sendline("/names")
    await alice.expect(r"online in #games: alice \(guest\)")
    alice.sendline("/part")
    await alice.expect(r"you left #games")
    alice.sendline("/jion lobby")
    await alice.expect(r"unknown command /jion: did you mean /join\?")

    bob.dm("alice", "your move")
    await alice.expect(r"@bob <bob> your move")
    await alice.expect(r"/r TEXT replies to bob")
    alice.sendline("/r 5")
    got = await until(bob, is_body("5"))
    assert isinstance(got[-1], Message) and got[-1].to == "bob"
    alice.sendline("/msg bob psst")
    await until(bob, is_body("psst"))
    alice.sendline("in the lobby still")  # /r and /msg did not switch
    got = await until(bob, is_body("in the lobby still"))
    assert isinstance(got[-1], Message) and got[-1].room == "lobby"
    alice.sendline("/query bob")
    await alice.expect(r"talking to @bob")
    await alice.expect(r"@bob>")
    alice.sendline("/me waves")
    await alice.expect(r"/me is not there yet")
    alice.sendline("/quit")
    assert await alice.wait_exit() == 0


async def test_an_outage_is_said_once_and_shown_in_the_prompt(
    tmp_path: Path, harness: Harness
) -> None:
    srv = ServerProcess(tmp_path / "srv", {}).start()
    try:
        alice = harness.tty(srv.port, "alice")
        await alice.expect(r"#lobby>")
        srv.kill()
        await alice.expect(r"connection lost .*; reconnecting in \d+\.\d s")
        await alice.expect(r"\(reconnecting\) #lobby>", timeout=5)
        alice.sendline("while down")
        await alice.expect(r"\(reconnecting, 1 queued\) #lobby>", timeout=5)
        await asyncio.sleep(8)  # several attempts: at most 5 s apart, none printed
        alice._read_available()
        assert "still reconnecting" not in alice.text
        srv.start()
        await alice.expect(r"\*\*\* reconnected", timeout=12)  # the backoff stays short
        await alice.expect(r"#lobby <alice> while down")
        alice.sendline("/quit")
        assert await alice.wait_exit() == 0
    finally:
        srv.kill()


async def test_a_login_with_nothing_missed_says_nothing_about_it(
    server: ServerProcess, harness: Harness
) -> None:
    setup = await harness.client(server.port, "alice")
    await setup.register("alice-password")
    await setup.close()
    proc = await harness.script(server.port, "alice", "--password-stdin")
    out, _ = await asyncio.wait_for(proc.communicate(b"alice-password\n/quit\n"), WAIT)
    assert proc.returncode == 0, out
    assert b"as alice (account)" in out and b"while you were away" not in out, out


async def test_long_and_multi_line_text(server: ServerProcess, harness: Harness) -> None:
    bob = await harness.client(server.port, "bob")
    alice = harness.tty(server.port, "alice")
    await alice.expect(r"#lobby>")
    await until(bob, lambda e: isinstance(e, Presence) and e.nick == "alice")

    alice.child.send("first line\x1b\rsecond line\r")  # Alt+Enter: a new line, not send
    got = await until(bob, is_body("first line\nsecond line"))
    assert isinstance(got[-1], Message) and got[-1].room == "lobby"

    bob.say("lobby", "look:\n```\nx = 1\n```\nneat")
    await alice.expect(r"<bob> look:\n +│ x = 1\n +neat")

    words = " ".join(f"word{i:04}" for i in range(460))  # 4,139 characters
    alice.sendline(words)
    await alice.expect(r"too long for one message: sent in 2 parts")
    first = await until(bob, lambda e: isinstance(e, Message) and e.sender == "alice")
    second = await until(bob, lambda e: isinstance(e, Message) and e.sender == "alice")
    parts = [first[-1], second[-1]]
    assert all(isinstance(p, Message) and len(p.body) <= 4000 for p in parts)
    assert " ".join(p.body.strip() for p in parts if isinstance(p, Message)) == words
    alice.sendline("/quit")
    assert await alice.wait_exit() == 0


async def test_edit_delete_react_reply_and_search_from_the_terminal(
    server: ServerProcess, harness: Harness
) -> None:
    bob = await harness.client(server.port, "bob")
    alice = harness.tty(server.port, "alice")
    await alice.expect(r"#lobby>")
    await until(bob, lambda e: isinstance(e, Presence) and e.nick == "alice")
    alice.sendline("the quokka is out")
    got = await until(bob, is_body("the quokka is out"))
    first = got[-1]
    assert isinstance(first, Message)
    alice.sendline("/edit the quokka is back")  # your last message here, by default
    changed = await until(bob, lambda e: isinstance(e, Changed) and e.kind == "edited")
    edit = changed[-1]
    assert isinstance(edit, Changed) and (edit.target, edit.body) == (
        first.id,
        "the quokka is back",
    )
    await bob.react(first.id, "👍")
    await alice.expect(rf"bob reacted 👍 on \[{first.id}\] in #lobby")
    alice.sendline("/search QUOKKA")
    await alice.expect(rf"\[{first.id}\] \d\d:\d\d #lobby <alice> the quokka is back")
    await alice.expect(r"1 found for 'QUOKKA'")
    await bob.wait_sent(bob.say("lobby", "@ALICE look"), WAIT)
    await alice.expect(r"\(!\) \d\d:\d\d #lobby <bob> @ALICE look")  # it mentions her
    sent = await bob.wait_sent(bob.say("lobby", "a question"), WAIT)
    await alice.expect(r"(?<!\(!\) )\d\d:\d\d #lobby <bob> a question")  # no mention, no (!)
    alice.sendline("/answer yes")  # the last message here from someone else
    got = await until(bob, is_body("yes"))
    alice.sendline("/delete " + str(first.id))
    changed = await until(bob, lambda e: isinstance(e, Changed) and e.kind == "deleted")
    assert changed[-1].target == first.id  # type: ignore[union-attr]
    alice.sendline("/edit")
    await alice.expect(r"usage: /edit \[ID\] TEXT")
    page = await bob.history("lobby")
    assert [(m.body, m.deleted) for m in page.messages] == [
        ("", True),  # the deleted one: its text is gone
        ("@ALICE look", False),
        ("a question", False),
        ("yes", False),
    ]
    assert page.messages[1].mentions == ("alice",)
    answered = await bob.search("yes")
    assert [m.id for m in answered.messages] == [got[-1].id]  # type: ignore[union-attr]
    assert sent.id < got[-1].id  # type: ignore[union-attr]
    alice.sendline("/quit")
    assert await alice.wait_exit() == 0


async def test_a_room_owner_moderates_from_the_terminal(
    server: ServerProcess, harness: Harness
) -> None:
    setup = await harness.client(server.port, "alice")
    await setup.register("alice-password")  # a guest may not make a room private
    await setup.close()
    alice = harness.tty(server.port, "alice")
    await alice.expect(r"password for alice: ")
    alice.sendline("alice-password")
    await alice.expect(r"#lobby>")
    alice.sendline("/join games")
    await alice.expect(r"#games: no topic · you are an owner")
    bob = await harness.client(server.port, "bob")
    await bob.join("games")
    assert bob.state.rooms_info["games"].role == "member"
    with pytest.raises(Forbidden):
        await bob.moderate("kick", "alice", room="games")
    alice.sendline("/topic chess, mostly")
    got = await until(bob, lambda e: isinstance(e, RoomDetails) and e.topic == "chess, mostly")
    # rooms4: every room_info tells its receiver's own role
    assert got[-1] == RoomDetails("games", "chess, mostly", False, False, "alice", "member")
    alice.sendline("/mute bob 2h spamming")
    got = await until(bob, lambda e: isinstance(e, Moderated) and e.action == "mute")
    muted = got[-1]
    assert isinstance(muted, Moderated) and (muted.by, muted.reason) == ("alice", "spamming")
    assert muted.until is not None
    await alice.expect(rf"bob is muted in #games until {when(muted.until)} by alice: spamming")
    cid = bob.say("games", "but why")
    failed = await until(bob, lambda e: isinstance(e, SendFailed) and e.cid == cid)
    assert isinstance(failed[-1], SendFailed)
    assert failed[-1].error.message.startswith("you are muted in #games until ")
    alice.sendline("/mode +p +a")
    got = await until(bob, lambda e: isinstance(e, RoomDetails) and e.private)
    assert got[-1] == RoomDetails("games", "chess, mostly", True, True, "alice", "member")
    alice.sendline("/retention 7")  # the room's own retention (issue 17)
    got = await until(bob, lambda e: isinstance(e, RoomDetails) and e.retention_days == 7)
    await alice.expect(r"#games: .*private.*messages kept 7 days .*\(set by alice\)")
    alice.sendline("/retention 99999")
    await alice.expect(r"3650 days at most")
    alice.sendline("/retention soon")
    await alice.expect(r"usage: /retention \[DAYS\|off\]")
    alice.sendline("/kick bob enough")
    await until(bob, lambda e: isinstance(e, Moderated) and e.action == "kick")
    assert "games" not in bob.state.rooms
    await alice.expect(r"bob is kicked from #games by alice: enough")
    alice.sendline("/grant bob boss")
    await alice.expect(r"usage: /grant NICK mod\|member")
    alice.sendline("/quit")
    assert await alice.wait_exit() == 0


async def test_a_room_owner_sets_a_key_and_a_limit_from_the_terminal(
    server: ServerProcess, harness: Harness
) -> None:
    """ircmodes: /key and /limit set them, the room line shows them; a client joins with
    the key, and is kept out without it or while the room is full."""
    setup = await harness.client(server.port, "alice")
    await setup.register("alice-password")  # a guest may not lock a room
    await setup.close()
    alice = harness.tty(server.port, "alice")
    await alice.expect(r"password for alice: ")
    alice.sendline("alice-password")
    await alice.expect(r"#lobby>")
    alice.sendline("/join den")
    await alice.expect(r"#den: no topic · you are an owner")
    alice.sendline("/key b33r")
    await alice.expect(r"#den: no topic · key: b33r · you are an owner \(set by alice\)")
    alice.sendline("/limit 1")
    await alice.expect(r"key: b33r · at most 1 online · you are an owner \(set by alice\)")
    alice.sendline("/limit lots")
    await alice.expect(r"usage: /limit \[N\|off\]")
    bob = await harness.client(server.port, "bob")
    with pytest.raises(BadKey):
        await bob.join("den")
    with pytest.raises(RoomFull):
        await bob.join("den", "b33r")
    alice.sendline("/limit off")
    await alice.expect(r"#den: no topic · key: b33r · you are an owner \(set by alice\)")
    await bob.join("den", "b33r")
    info = bob.state.rooms_info["den"]
    assert (info.keyed, info.key, info.limit) == (True, None, None), "a member: not the key"
    alice.sendline("/key off")
    got = await until(bob, lambda e: isinstance(e, RoomDetails) and not e.keyed)
    assert got[-1] == RoomDetails("den", "", False, False, "alice", "member")
    alice.sendline("/quit")
    assert await alice.wait_exit() == 0


async def test_unread_per_conversation_read_markers_and_dm_receipts_in_the_terminal(
    server: ServerProcess, harness: Harness
) -> None:
    setup = await harness.client(server.port, "alice")
    await setup.register("alice-password")
    await setup.set_receipts(True)
    await setup.join("games")
    await setup.close()
    bob = await harness.client(server.port, "bob")
    await bob.register("bob-password")
    await bob.set_receipts(True)
    await bob.join("games")
    for i in range(2):
        await bob.wait_sent(bob.dm("alice", f"dm {i}"), WAIT)
    news = await bob.wait_sent(bob.say("games", "games news"), WAIT)
    # alice's phone reads #games: the terminal must not count it as unread.
    phone = await harness.client(server.port, "alice", password="alice-password")
    await phone.mark_read(news.id, room="games")

    alice = harness.tty(server.port, "alice")
    await alice.expect(r"password for alice: ")
    alice.sendline("alice-password")
    await alice.expect(r"as alice \(account\)")
    await alice.expect(r"\*\*\* unread: @bob 2 \(/unread shows this again\)")
    alice.sendline("/rooms")
    await alice.expect(r"rooms: .*#games \(2\)")  # read on the phone: no unread
    assert "#games (2, 1 unread)" not in alice.text
    alice.sendline("/dm bob")
    await alice.expect(r"talking to @bob")
    # The DM in view is read: the marker moves, bob gets a receipt, the phone a marker.
    got = await until(bob, lambda e: isinstance(e, Receipt) and e.state == "read")
    last_dm = max(m.id for m in bob.state.messages(bob.state.open_dm("alice")))
    assert got[-1] == Receipt("alice", last_dm, "read")
    marker = await until(phone, lambda e: isinstance(e, ReadMarker) and e.with_ is not None)
    assert marker[-1] == ReadMarker(last_dm, with_="bob")
    alice.sendline("/unread")
    await alice.expect(r"\*\*\* nothing unread")

    alice.sendline("hi bob")
    sent = await until(bob, is_body("hi bob"))
    await bob.mark_read(sent[-1].id, with_="alice")  # type: ignore[union-attr]
    await alice.expect(r"✓✓ bob read your messages, up to “hi bob”")
    alice.sendline("/receipts off")
    await alice.expect(r"DM receipts off: nobody sees when you read")
    await bob.wait_sent(bob.dm("alice", "still there?"), WAIT)
    await alice.expect(r"@bob <bob> still there\?")
    await bob.wait_sent(bob.dm("alice", "hello?"), WAIT)
    got = await until(phone, lambda e: isinstance(e, ReadMarker) and e.upto > last_dm)
    assert got[-1].with_ == "bob"  # type: ignore[union-attr]
    assert not [e for e in await _drain(bob) if isinstance(e, Receipt) and e.state == "read"]
    alice.sendline("/receipts maybe")
    await alice.expect(r"usage: /receipts on\|off")
    alice.sendline("/quit")
    assert await alice.wait_exit() == 0


async def _drain(client: ChatClient, seconds: float = 0.5) -> list[Any]:
    """The events ``client`` gets within ``seconds``."""
    events: list[Any] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                events.append(await client.next_event())
    return events
