"""Memory of stalled logins: a long backlog, and clients that log in and never read.

    python -m bench.stalled [--messages 10000] [--size 4000] [--logins 6] [--set NAME=VALUE]

Starts ``chinwag serve`` on loopback with a fresh data directory, registers the
account ``bob``, posts ``--messages`` lobby messages of ``--size`` characters
while bob is away, then opens ``--logins`` connections that log in as bob and
never read. It prints the server's resident memory before those logins and
once the server has gone idle after them (every stalled login has done what it
can). Flood control is lifted so that the backlog is posted quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procstat

PASSWORD = "correct horse battery"
_TIMEOUT = 60.0  # seconds any one step may take
_LISTENING = re.compile(r"listening on \S+:(\d+)")


class Peer:
    """A raw JSON-lines client; every wait is bounded."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> Peer:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, limit=1 << 20), _TIMEOUT
        )
        return cls(reader, writer)

    async def send(self, **frame: Any) -> None:
        self.writer.write(json.dumps(frame).encode() + b"\n")
        await asyncio.wait_for(self.writer.drain(), _TIMEOUT)

    async def recv(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), _TIMEOUT)
        if not line:
            raise EOFError("the server closed the connection")
        frame: dict[str, Any] = json.loads(line)
        return frame

    async def until(self, kind: str) -> dict[str, Any]:
        while (frame := await self.recv())["type"] != kind:
            pass
        return frame

    def close(self) -> None:
        self.writer.close()


async def _register(port: int, nick: str) -> None:
    peer = await Peer.connect(port)
    await peer.send(type="hello", proto=1, nick=nick)
    await peer.until("caught_up")
    await peer.send(type="register", password=PASSWORD, ref="r")
    await peer.until("ok")
    await peer.send(type="bye")
    await peer.until("bye")
    peer.close()


async def warm_up(port: int, logins: int = 2) -> None:
    """Register ``carol`` (so: no backlog), log her in ``logins`` times at once, then out.

    Every password check takes argon2id's memory (19 MiB by default) in one of
    the server's hashing threads, and the C library may keep it afterwards: so
    that this does not count as backlog memory, the threads hash before the
    measurement starts. Two logins, one per thread of the default
    ``hash_workers``.
    """

    async def one(i: int) -> None:
        peer = await Peer.connect(port)
        await peer.send(type="hello", proto=1, nick="carol", password=PASSWORD, device=f"w{i}")
        await peer.until("caught_up")
        await peer.send(type="bye")
        await peer.until("bye")
        peer.close()

    await _register(port, "carol")
    await asyncio.gather(*(one(i) for i in range(logins)))


async def post_backlog(port: int, messages: int, size: int) -> None:
    """Register ``bob``, who leaves; then a guest posts his backlog to the lobby."""
    await _register(port, "bob")
    alice = await Peer.connect(port)
    await alice.send(type="hello", proto=1, nick="alice")
    await alice.until("caught_up")
    body = "x" * size
    window = 200  # sends ahead of acks
    sent = acked = 0
    while acked < messages:
        while sent < messages and sent - acked < window:
            alice.writer.write(json.dumps({"type": "say", "room": "lobby", "body": body}).encode())
            alice.writer.write(b"\n")
            sent += 1
        await asyncio.wait_for(alice.writer.drain(), _TIMEOUT)
        frame = await alice.recv()
        if frame["type"] == "error":
            raise RuntimeError(f"posting the backlog failed: {frame}")
        if frame["type"] == "ack":
            acked += 1
    await alice.send(type="bye")
    await alice.until("bye")
    alice.close()


async def stall(port: int, logins: int) -> list[Peer]:
    """``logins`` connections that send bob's hello and then never read."""
    peers = [await Peer.connect(port) for _ in range(logins)]
    for i, peer in enumerate(peers):
        await peer.send(type="hello", proto=1, nick="bob", password=PASSWORD, device=f"d{i}")
    return peers


def rss_kib(pid: int) -> int:
    return procstat.memory_kib(pid)[0]


def wait_idle(pid: int, *, quiet: float = 1.0, timeout: float = _TIMEOUT) -> None:
    """Return once ``pid`` used no CPU for ``quiet`` seconds (raise after ``timeout``)."""
    deadline = time.monotonic() + timeout
    last, since = procstat.cpu_seconds(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = procstat.cpu_seconds(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise TimeoutError(f"the server did not go idle within {timeout} s")


def _start(data: Path, overrides: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    args = [sys.executable, "-m", "chinwag", "serve", "--host", "127.0.0.1", "--port", "0"]
    args += ["--http-port", "0", "--data", str(data), "--set", "announce=false"]
    args += ["--set", "rate_per_second=1000000", "--set", "rate_burst=1000000"]
    for item in overrides:
        args += ["--set", item]
    log_path = data / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + _TIMEOUT
    while time.monotonic() < deadline:
        if m := _LISTENING.search(log_path.read_text(errors="replace")):
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=10)
    raise RuntimeError(f"the server did not start:\n{log_path.read_text(errors='replace')}")


async def _measure(proc: subprocess.Popen[bytes], port: int, args: argparse.Namespace) -> None:
    await post_backlog(port, args.messages, args.size)
    await warm_up(port)
    wait_idle(proc.pid)
    before = rss_kib(proc.pid)
    peers = await stall(port, args.logins)
    try:
        wait_idle(proc.pid)
        after = rss_kib(proc.pid)
    finally:
        for peer in peers:
            peer.close()
    print(
        f"{args.logins} stalled logins, backlog {args.messages} x {args.size} chars: "
        f"server RSS {before / 1024:.0f} MiB before, {after / 1024:.0f} MiB after "
        f"(+{(after - before) / 1024:.0f} MiB)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stalled", description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4000, help="characters (at most 4000)")
    parser.add_argument("--logins", type=int, default=6)
    parser.add_argument("--set", action="append", default=[], help="a server setting")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chinwag-stalled-") as tmp:
        proc, port = _start(Path(tmp), args.set)
        try:
            asyncio.run(_measure(proc, port, args))
        finally:
            proc.kill()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
