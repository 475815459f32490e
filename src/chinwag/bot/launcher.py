"""The game bot as a child process of ``chinwag serve --with-gamebot``.

:class:`GamebotProcess` is one of the server's services: the server starts it
once it listens, and it starts ``chinwag bot games`` pointed at the port the
server actually got (``0.0.0.0`` is reached as ``127.0.0.1``, ``::`` as
``::1``). For a TLS server the bot is given a ``chinwag://`` link with the
server's own certificate fingerprint, so it pins that one, and pins the new
one when the server's certificate is replaced. At shutdown
it stops the bot (SIGTERM: the bot flushes its replies and says ``bye``); if
the server dies without that, even by kill -9, the bot sees its stdin end and
stops too. A bot that crashes is started again after a growing pause; one that
cannot run as configured (exit status 1 or 2) is not.

This module only manages a process: it imports neither the server nor the
bot, so the server does not load the bot's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Protocol

__all__ = ["GamebotProcess", "connect_address"]

log = logging.getLogger("chinwag.bot")

_NO_RESTART: Final = frozenset({1, 2})  # EXIT_CANNOT_RUN, bad usage


class Listening(Protocol):
    """What the launcher needs to know of a listening server."""

    @property
    def address(self) -> tuple[str, int]: ...

    tls: bool


def connect_address(host: str, port: int) -> str:
    """``HOST:PORT`` to reach a server listening on ``host`` from the same machine."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GamebotProcess:
    """Runs ``chinwag bot games`` beside a server, restarting it if it crashes.

    A server service: :meth:`start` once the server listens, :meth:`close` at
    shutdown.

    Args:
        data_dir: the bot's data directory.
        fingerprint: the SHA-256 fingerprint of the server's TLS certificate
            (None: ask nobody, pin what the server shows on first contact).
        extra_args: more ``chinwag bot games`` options.
        restart_max: the longest pause before a restart, in seconds.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        fingerprint: bytes | None = None,
        extra_args: Sequence[str] = (),
        restart_max: float = 60.0,
    ) -> None:
        self.data_dir = data_dir
        self.fingerprint = fingerprint
        self.extra_args = list(extra_args)
        self.args: list[str] = []
        self._restart_max = restart_max
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self, server: Listening) -> None:
        """Start the bot (and its supervisor) for ``server``, and return at once."""
        host, port = server.address
        where = connect_address(host, port)
        trust: list[str] = []
        if server.tls and self.fingerprint is not None:
            where = f"chinwag://{where}?fp={self.fingerprint.hex()}"
        elif server.tls:
            trust = ["--tls", "--trust"]
        self.args = [
            sys.executable,
            "-m",
            "chinwag",
            "bot",
            "games",
            where,
            "--data",
            str(self.data_dir),
            "--stop-on-eof",
            *trust,
            *self.extra_args,
        ]
        self._task = asyncio.create_task(self._supervise(), name="chinwag-gamebot")

    async def _supervise(self) -> None:
        delay = 1.0
        while not self._stopping:
            # stdin is a pipe we never write to: if this process dies, even by
            # kill -9, the bot reads end-of-file and stops (--stop-on-eof).
            self._proc = await asyncio.create_subprocess_exec(
                *self.args, stdin=asyncio.subprocess.PIPE
            )
            log.info("game bot started (pid %d)", self._proc.pid)
            code = await self._proc.wait()
            self._close_stdin(self._proc)
            if self._stopping:
                return
            if code in _NO_RESTART:
                log.error("the game bot cannot run (exit status %d); see its log above", code)
                return
            log.warning("the game bot stopped (exit status %s); restarting in %.0f s", code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._restart_max)

    async def close(self, timeout: float = 10.0) -> None:
        """Stop the bot: SIGTERM, then SIGKILL after ``timeout`` seconds. Never raises."""
        self._stopping = True
        try:
            await self._end(self._proc, timeout)
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            await self._end(self._proc, timeout)  # one started while we were stopping
        except Exception:
            log.exception("stopping the game bot failed")

    @staticmethod
    def _close_stdin(proc: asyncio.subprocess.Process) -> None:
        if proc.stdin is not None:
            proc.stdin.close()

    @classmethod
    async def _end(cls, proc: asyncio.subprocess.Process | None, timeout: float) -> None:
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        cls._close_stdin(proc)
