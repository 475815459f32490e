"""A second real IRC client on chinwag's IRC port: Debian's WeeChat, headless (issue 19).

WeeChat logs in with SASL PLAIN and joins ``#lobby``; what it shows is read from
its logger's files, what it types goes in through its FIFO pipe (the ``fifo``
plugin). Beside irssi's test (``test_irc_client.py``) this one checks the offline
replay's confirmation with a client of another family: a DM sent while WeeChat
was away is shown once, and after WeeChat has answered the server's PING and
quit, a new connection does not play it again. ``scripts/test`` installs
``weechat-headless`` with apt-get when it runs as root; elsewhere the test is
skipped, except in CI (``CI=true``), where a missing client fails it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Peer, ServerProcess
from test_irc_client import register_ann
from test_irc_client import shown as shown_in
from test_listeners import free_port

FAST = {"argon2_memory_kib": 8192, "argon2_time_cost": 1, "announce": "false"}
WAIT = 20.0  # seconds WeeChat may take to show a line (it starts, connects, logs in)

_missing = shutil.which("weechat-headless") is None
if _missing and os.environ.get("CI") != "true":
    pytestmark = pytest.mark.skip(
        reason="weechat-headless not installed (scripts/test installs it as root)"
    )


def setup_commands(port: int) -> str:
    """WeeChat's start-up commands: its logger writes every line at once, the FIFO
    pipe is on, and server ``cw`` logs in as ann with SASL PLAIN and joins #lobby."""
    return ";".join(
        [
            "/set logger.file.auto_log on",
            "/set logger.file.flush_delay 0",
            "/set fifo.file.enabled on",
            f"/server add cw 127.0.0.1/{port} -notls",
            "/set irc.server.cw.nicks ann",
            "/set irc.server.cw.username ann",
            "/set irc.server.cw.sasl_mechanism plain",
            "/set irc.server.cw.sasl_username ann",
            '/set irc.server.cw.sasl_password "correct horse"',
            '/set irc.server.cw.autojoin "#lobby"',
            "/connect cw",
        ]
    )


class WeeChat:
    """One headless WeeChat with its own home directory, stopped by ``stop``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, commands: str) -> None:
        if _missing:  # only in CI: elsewhere the module is skipped
            pytest.fail("weechat-headless not installed: CI must install it (apt-get)")
        self.proc = subprocess.Popen(
            ["weechat-headless", "--dir", str(self.home), "-r", commands],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def log(self, buffer: str) -> Path:
        return self.home / "logs" / f"irc.cw.{buffer}.weechatlog"

    async def type(self, buffer: str, text: str) -> None:
        """Type ``text`` in WeeChat's buffer ``buffer`` (e.g. ``irc.cw.#lobby``; ``*``
        keeps WeeChat from reading it as a command's name), through the FIFO pipe,
        once WeeChat has made it."""
        assert self.proc is not None
        pipe = self.home / f"weechat_fifo_{self.proc.pid}"  # this process's own
        deadline = asyncio.get_running_loop().time() + WAIT
        while not pipe.exists():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("WeeChat made no FIFO pipe")
            await asyncio.sleep(0.1)
        # Non-blocking: if WeeChat died and nobody reads the pipe, fail, never hang.
        fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, f"{buffer} *{text}\n".encode())
        finally:
            os.close(fd)

    async def stop(self) -> None:
        """``/quit`` as a user would, then wait for the process (killed if it hangs)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                await self.type("core.weechat", "/quit")
                await asyncio.to_thread(self.proc.wait, WAIT)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture
def weechat(tmp_path: Path) -> Iterator[WeeChat]:
    client = WeeChat(tmp_path / "weechat")
    try:
        yield client
    finally:
        if client.proc is not None:
            client.proc.kill()
            client.proc.wait(10)


async def shown(log: Path, text: str) -> str:
    """Wait until WeeChat's log ``log`` holds ``text``; return the log."""
    return await shown_in(log, text, WAIT, client="WeeChat")


async def test_weechat_gets_its_missed_dm_once_chats_and_sends_a_dm(
    tmp_path: Path, weechat: WeeChat
) -> None:
    irc_port = free_port()
    srv = ServerProcess(tmp_path / "srv", FAST, args=["--irc-port", str(irc_port)])
    srv.start()
    bob: Peer | None = None
    try:
        await register_ann(srv.port)
        bob = await Peer.connect(srv.port)
        await bob.hello("bob")
        await bob.send(type="dm", to="ann", body="sent while you were away", cid="1")
        await bob.recv_type("ack")

        weechat.start(setup_commands(irc_port))
        # Only a SASL login gets the registered nick "ann", and with it her DMs.
        await shown(weechat.log("bob"), "bob\tsent while you were away")
        await shown(weechat.log("#lobby"), "(ann@chinwag) has joined #lobby")
        presence = await bob.recv_type("presence")
        assert (presence["nick"], presence["event"]) == ("ann", "join")

        await bob.send(type="say", room="lobby", body="hello weechat", cid="2")
        await bob.recv_type("ack")
        await shown(weechat.log("#lobby"), "bob\thello weechat")

        await weechat.type("irc.cw.#lobby", "hello from weechat")
        got = await bob.recv_type("message", timeout=WAIT)
        while got["from"] == "bob":  # his own copy of what he said
            got = await bob.recv_type("message", timeout=WAIT)
        assert (got["from"], got["room"], got["body"]) == ("ann", "lobby", "hello from weechat")

        await weechat.type("irc.cw.bob", "a DM from weechat")
        got = await bob.recv_type("message", timeout=WAIT)
        assert (got["from"], got.get("to"), got["body"]) == ("ann", "bob", "a DM from weechat")

        # WeeChat answered the server's PING after the replay (every client does, by
        # itself): the cursor moved, so the next connection replays nothing again.
        await weechat.stop()
        await bob.send(type="dm", to="ann", body="and this one after you left", cid="3")
        await bob.recv_type("ack")
        weechat.start(setup_commands(irc_port))  # its saved server again
        log = await shown(weechat.log("bob"), "bob\tand this one after you left")
        assert log.count("sent while you were away") == 1, log
    finally:
        if bob is not None:
            await bob.close()
        await weechat.stop()
        srv.kill()
