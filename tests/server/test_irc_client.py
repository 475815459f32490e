"""A real IRC client on chinwag's IRC port: Debian's irssi, driven in tmux (issue 19).

irssi logs in with SASL PLAIN, is joined to ``#lobby``, gets a DM that was sent
while it was away, receives a JSON client's message and sends one back. What it
shows is read from its own log files (irssi's autolog), what it sends is typed
with ``tmux send-keys``. ``scripts/test`` installs irssi with apt-get when it
runs as root; elsewhere the test is skipped, except in CI (``CI=true``), where a
missing client fails it.
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
from test_listeners import free_port

FAST = {"argon2_memory_kib": 8192, "argon2_time_cost": 1, "announce": "false"}
WAIT = 20.0  # seconds irssi may take to show a line (it starts, connects, logs in)

_missing = [tool for tool in ("irssi", "tmux") if shutil.which(tool) is None]
if _missing and os.environ.get("CI") != "true":
    pytestmark = pytest.mark.skip(
        reason=f"{' and '.join(_missing)} not installed (scripts/test installs them as root)"
    )


def irssi_config(port: int, logs: Path) -> str:
    return f"""
servers = (
  {{ address = "127.0.0.1"; chatnet = "cw"; port = "{port}"; use_tls = "no";
     autoconnect = "yes"; }}
);
chatnets = {{
  cw = {{ type = "IRC"; sasl_mechanism = "PLAIN"; sasl_username = "ann";
          sasl_password = "correct horse"; }};
}};
channels = ( {{ name = "#lobby"; chatnet = "cw"; autojoin = "yes"; }} );
settings = {{
  core = {{ real_name = "Ann"; user_name = "ann"; nick = "ann"; }};
  "fe-common/core" = {{ autolog = "yes"; autolog_path = "{logs}/$tag/$0.log"; }};
}};
"""


class Tmux:
    """A tmux server of its own (``-L``), so that nothing else's sessions are touched."""

    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name]

    def run(self, *args: str) -> None:
        subprocess.run([*self.base, *args], check=True, timeout=10, capture_output=True)

    def kill_server(self) -> None:
        subprocess.run([*self.base, "kill-server"], timeout=10, capture_output=True)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if _missing:  # only in CI: elsewhere the module is skipped
        pytest.fail(f"{' and '.join(_missing)} not installed: CI must install them (apt-get)")
    t = Tmux(f"chinwag-irc-{os.getpid()}")
    try:
        yield t
    finally:
        t.kill_server()  # irssi with it


def _read(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


async def shown(
    log: Path, text: str, timeout: float = WAIT, client: str = "irssi", times: int = 1
) -> str:
    """Wait until ``client``'s log ``log`` holds ``text`` (``times`` times); return the log."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        content = await asyncio.to_thread(_read, log)
        if content.count(text) >= times:
            return content
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{client} did not show {text!r} in {log.name}:\n{content}")
        await asyncio.sleep(0.1)


async def register_ann(port: int) -> None:
    """The account ``ann`` (password "correct horse"), registered and logged out again."""
    ann = await Peer.connect(port)
    await ann.hello("ann")
    await ann.send(type="register", password="correct horse")
    await ann.recv_type("ok")
    await ann.send(type="bye")
    await ann.recv_type("bye")
    await ann.close()


def start_irssi(tmux: Tmux, tmp_path: Path, irc_port: int) -> Path:
    """irssi in tmux, logging in as ann with SASL (`irssi_config`); its logs' folder."""
    home, logs = tmp_path / "irssi", tmp_path / "logs"
    home.mkdir()
    (home / "config").write_text(irssi_config(irc_port, logs))
    tmux.run("new-session", "-d", "-x", "200", "-y", "50", f"irssi --home={home}")
    return logs


async def test_irssi_logs_in_with_sasl_gets_its_missed_dm_and_chats(
    tmp_path: Path, tmux: Tmux
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

        logs = start_irssi(tmux, tmp_path, irc_port)

        # Only a SASL login gets the registered nick "ann", and with it her DMs.
        await shown(logs / "cw" / "bob.log", "bob> sent while you were away")
        await shown(logs / "cw" / "#lobby.log", "ann [ann@chinwag] has joined #lobby")
        presence = await bob.recv_type("presence")
        assert (presence["nick"], presence["event"]) == ("ann", "join")

        await bob.send(type="say", room="lobby", body="hello irssi", cid="2")
        await bob.recv_type("ack")
        await shown(logs / "cw" / "#lobby.log", "bob> hello irssi")

        tmux.run("send-keys", "/msg #lobby hello from irssi", "Enter")
        got = await bob.recv_type("message", timeout=WAIT)
        while got["from"] == "bob":  # his own copy of what he said
            got = await bob.recv_type("message", timeout=WAIT)
        assert (got["from"], got["room"], got["body"]) == ("ann", "lobby", "hello from irssi")
    finally:
        if bob is not None:
            await bob.close()
        srv.kill()


async def test_irssi_cycle_leaves_and_joins_the_channel_again(tmp_path: Path, tmux: Tmux) -> None:
    # /cycle sends PART and JOIN without waiting for the PART's answer. Here irssi's two
    # lines may reach the server apart; test_irc_channels sends both in one write.
    irc_port = free_port()
    srv = ServerProcess(tmp_path / "srv", FAST, args=["--irc-port", str(irc_port)])
    srv.start()
    bob: Peer | None = None
    try:
        await register_ann(srv.port)
        bob = await Peer.connect(srv.port)
        await bob.hello("bob")
        await bob.send(type="join", room="den", ref="j")
        await bob.recv_type("room_info")
        logs = start_irssi(tmux, tmp_path, irc_port)
        await shown(logs / "cw" / "#lobby.log", "ann [ann@chinwag] has joined #lobby")
        tmux.run("send-keys", "/join #den", "Enter")
        den = logs / "cw" / "#den.log"
        await shown(den, "ann [ann@chinwag] has joined #den")
        await shown(den, "Total of 2 nicks")  # irssi has the channel's NAMES

        tmux.run("send-keys", "/cycle #den", "Enter")
        # bob's presences in #den: ann's join from /join, then the /cycle
        seen: list[tuple[str, str]] = []
        while len(seen) < 3:
            presence = await bob.recv_type("presence", timeout=WAIT)
            if presence["room"] == "den":
                seen.append((presence["nick"], presence["event"]))
        assert seen == [("ann", "join"), ("ann", "leave"), ("ann", "join")]
        # irssi closes the channel's log at the PART and opens it again at the JOIN.
        log = await shown(den, "--- Log opened", times=2)
        log = await shown(den, "Total of 2 nicks", times=2)
        assert log.count("has joined #den") == 2, log
        await bob.send(type="say", room="den", body="welcome back", cid="1")
        await bob.recv_type("ack")
        await shown(den, "bob> welcome back")  # ann is in #den again
    finally:
        if bob is not None:
            await bob.close()
        srv.kill()
