"""Shared test harness: real server processes on loopback, raw JSON-lines peers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Property tests judge correctness, not speed: on a loaded 2-core machine input
# generation can be slow, and that must not fail a run.
settings.register_profile("chinwag", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("chinwag")

_LISTENING = re.compile(r"listening on (\S+):(\d+)")
RECV_TIMEOUT = 5.0


class ChildProcess:
    """A child process of a test with its log in ``log_path``; always stopped by the test."""

    proc: subprocess.Popen[bytes] | None
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """kill -9, and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM; returns the exit code (kills after ``timeout``)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        return self.proc.returncode


class ServerProcess(ChildProcess):
    """``chinwag serve`` as a child process on 127.0.0.1 and a free port.

    Its log goes to ``data/server.log``. ``kill()`` is kill -9; ``stop()`` is SIGTERM.
    Restarting reuses the same port, so clients can reconnect.
    """

    def __init__(
        self,
        data: Path,
        settings: dict[str, Any] | None = None,
        args: list[str] | None = None,
        wrapper: list[str] | None = None,
    ) -> None:
        self.data = data
        self.settings = dict(settings or {})
        self.args = list(args or [])  # more `chinwag serve` arguments (a later --host wins)
        self.wrapper = list(wrapper or [])  # run under this, e.g. ["ip", "netns", "exec", NS]
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data / "server.log"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.data.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable,
            "-m",
            "chinwag",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data",
            str(self.data),
        ]
        for name, value in self.settings.items():
            args += ["--set", f"{name}={value}"]
        if not {"--http-port", "--listen"} & set(self.args) and "http_port" not in self.settings:
            args += ["--http-port", "0"]  # no web listener on a fixed port unless a test asks
        args = [*self.wrapper, *args, *self.args]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env={**os.environ}
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            if m := _LISTENING.search(text):
                self.port = int(m.group(2))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{text}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not start in {timeout} s:\n{self.log()}")

    def restart(self) -> ServerProcess:
        self.kill()
        return self.start()


class Peer:
    """A raw protocol v1 client: send dicts, receive dicts, every wait bounded."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> Peer:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=32 * 1024 * 1024), RECV_TIMEOUT
        )
        return cls(reader, writer)

    async def send(self, **frame: Any) -> None:
        await self.send_raw(json.dumps(frame).encode() + b"\n")

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise EOFError("server closed the connection")
        frame: dict[str, Any] = json.loads(line)
        return frame

    async def recv_type(self, kind: str, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        """Skip frames until one of type ``kind`` (presence, typing... are skipped)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            frame = await self.recv(max(left, 0.01))
            if frame["type"] == kind:
                return frame

    async def expect_closed(self, timeout: float = RECV_TIMEOUT) -> list[dict[str, Any]]:
        """Read until EOF; return the frames that came before it."""
        frames: list[dict[str, Any]] = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                return frames
            frames.append(json.loads(line))

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Frames that arrive within ``seconds`` (usually expected to be none)."""
        frames = []
        try:
            while True:
                frames.append(await self.recv(seconds))
        except TimeoutError:
            return frames

    async def hello(self, nick: str, **extra: Any) -> dict[str, Any]:
        """Log in; return the caught_up frame. Fails on an error reply."""
        await self.send(type="hello", proto=1, nick=nick, **extra)
        welcome = await self.recv()
        assert welcome["type"] == "welcome", welcome
        return await self.recv_type("caught_up")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "server", {"argon2_memory_kib": 8192, "argon2_time_cost": 1})
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture
async def peers() -> AsyncIterator[list[Peer]]:
    """A list that tests append their Peers to; all are closed at the end."""
    made: list[Peer] = []
    yield made
    for peer in made:
        await peer.close()
