"""Shared by the bot tests: the real bot as a child process, and players on ChatClient."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import ChildProcess

from chinwag.client import ChatClient, Event, Message

WAIT = 15.0
FAST_ARGON = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}
DEV = ["-X", "dev"] if sys.flags.dev_mode else []  # the bot runs as strictly as the tests
GAMES_CMD = [sys.executable, *DEV, "-m", "chinwag", "bot", "games"]
_READY = re.compile(r"chinwag\.bot: (\S+): ready")


class BotProcess(ChildProcess):
    """``python -m chinwag bot games 127.0.0.1:PORT --data DIR`` (or another command).

    Its log goes to ``data/bot.log``. ``kill()`` is kill -9; ``stop()`` is SIGTERM.
    """

    def __init__(self, port: int, data: Path, *args: str, command: list[str] | None = None) -> None:
        self.port = port
        self.data = data
        self.args = list(args)
        self.command = command or GAMES_CMD
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data.parent / f"{data.name}.log"

    def start(self, timeout: float = WAIT) -> BotProcess:
        """Start it and wait until it has logged in and handled its backlog."""
        self.data.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*self.command, *self.where(), "--data", str(self.data), *self.args],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env={**os.environ},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            if _READY.search(text):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"bot exited early ({self.proc.returncode}):\n{text}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"bot not ready in {timeout} s:\n{self.log()}")

    def where(self) -> list[str]:
        """The server argument, unless the command names it already (an invite link)."""
        if any(arg.startswith("chinwag://") for arg in self.command):
            return []
        return [f"127.0.0.1:{self.port}"]


class Player:
    """A person on a ChatClient who talks to a bot by DM; every wait is bounded."""

    def __init__(self, client: ChatClient, bot: str = "gamebot") -> None:
        self.client = client
        self.bot = bot
        self.inbox: list[Message] = []  # DMs from the bot not yet taken by expect()

    @property
    def nick(self) -> str:
        return self.client.nick

    def send(self, text: str) -> None:
        self.client.dm(self.bot, text)

    async def next_dm(self, timeout: float = WAIT) -> Message:
        """The next DM from the bot."""
        if self.inbox:
            return self.inbox.pop(0)
        async with asyncio.timeout(timeout):
            while True:
                event = await self.client.next_event()
                if is_dm_from(event, self.bot):
                    assert isinstance(event, Message)
                    return event

    async def expect(self, *needles: str, timeout: float = WAIT, skip: bool = False) -> Message:
        """The next DM from the bot; it must contain every needle (or, with ``skip``,
        the first that does)."""
        while True:
            message = await self.next_dm(timeout)
            if all(n in message.body for n in needles):
                return message
            if not skip:
                raise AssertionError(f"{self.nick} expected {needles!r}, got:\n{message.body}")

    async def ask(self, text: str, *needles: str, timeout: float = WAIT) -> str:
        """Send ``text`` and return the bot's next DM (which must contain the needles)."""
        self.send(text)
        return (await self.expect(*needles, timeout=timeout)).body

    async def quiet(self, seconds: float = 0.5) -> list[Message]:
        """DMs from the bot that arrive within ``seconds`` (usually expected to be none)."""
        got: list[Message] = list(self.inbox)
        self.inbox.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        try:
            while (left := deadline - loop.time()) > 0:
                event = await self.client.next_event(timeout=left)
                if is_dm_from(event, self.bot):
                    assert isinstance(event, Message)
                    got.append(event)
        except TimeoutError:
            pass
        return got


def is_dm_from(event: Event, nick: str) -> bool:
    return (
        isinstance(event, Message)
        and event.room is None
        and not event.own
        and event.sender.casefold() == nick.casefold()
    )


def board_of(body: str) -> str:
    """The fenced block of a bot message."""
    match = re.search(r"```\n(.*?)\n```", body, re.S)
    assert match, f"no board in:\n{body}"
    return match.group(1)


def ttt_cells(body: str) -> str:
    """The tic-tac-toe board of a bot message as nine characters (X, O or '.')."""
    cells = re.findall(r"[XO1-9]", board_of(body).replace("---+---+---", ""))
    assert len(cells) == 9, body
    return "".join(c if c in "XO" else "." for c in cells)


async def bounded(coro: Any, timeout: float = WAIT) -> Any:
    async with asyncio.timeout(timeout):
        return await coro


def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)
