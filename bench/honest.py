"""The honest user of the abuse scenarios: a child process that chats while the server is attacked.

``python -m bench.honest SPEC`` (SPEC is JSON: host, port, tls, room, interval,
senders, account, password, login_every, max_seconds) connects a receiver and a
ring of senders as guests from 127.0.0.1, joins ``room``, prints
``{"ready": T}`` and then says one message every ``interval`` seconds (the
senders take turns, so each stays under the default flood control of 10 say/s);
the receiver times each message from send to receipt. Meanwhile a prober logs
in as the registered ``account`` every ``login_every`` seconds and times
``hello`` → ``welcome`` (one full argon2id verification each). It stops at a
``stop`` line on stdin or after ``max_seconds``, whichever comes first, and
prints ``{"result": …}``: every message as ``[sent at, latency s or null]`` and
every login as ``[started at, s or null, outcome]``. Times are
``time.monotonic()``, which the parent shares (CLOCK_MONOTONIC).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import sys
import time
from typing import Any

SAY = re.compile(rb'"body":"H(\d+) ')
LINE_LIMIT = 16 * 1024 * 1024  # the protocol's largest server frame a client must accept
GRACE = 1.0  # seconds to wait for messages still in flight after the stop


def client_tls(tls: bool) -> ssl.SSLContext | None:
    """A context that accepts the server's self-signed certificate (loopback only)."""
    if not tls:
        return None
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def frame(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


async def read_until(reader: asyncio.StreamReader, kinds: tuple[bytes, ...]) -> bytes:
    """Lines until one of type ``kinds`` (or an error frame); return that line."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed by the server")
        for kind in (*kinds, b"error"):
            if b'"type":"' + kind + b'"' in line:
                return line


async def login(
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    hello: dict[str, Any],
    *,
    local: str | None = None,
    timeout: float = 10.0,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, say ``hello``, read up to ``caught_up``; raise unless welcomed."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            host, port, ssl=tls, limit=LINE_LIMIT, local_addr=(local, 0) if local else None
        ),
        timeout,
    )
    try:
        writer.write(frame({"type": "hello", "proto": 1, **hello}))
        line = await asyncio.wait_for(read_until(reader, (b"welcome",)), timeout)
        if b'"type":"welcome"' not in line:
            raise ConnectionError(line.decode(errors="replace").strip())
        await asyncio.wait_for(read_until(reader, (b"caught_up",)), timeout)
    except BaseException:
        writer.close()
        raise
    return reader, writer


class Honest:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.host = str(spec["host"])
        self.port = int(spec["port"])
        self.tls = client_tls(bool(spec.get("tls")))
        self.room = str(spec.get("room", "honest"))
        self.interval = float(spec.get("interval", 0.02))
        self.senders = int(spec.get("senders", 6))
        self.account = str(spec["account"])
        self.password = str(spec["password"])
        self.login_every = float(spec.get("login_every", 0.5))
        self.max_seconds = float(spec.get("max_seconds", 300))
        self.sent: list[float] = []
        self.latency: dict[int, float] = {}
        self.logins: list[tuple[float, float | None, str]] = []
        self.errors: list[str] = []
        self.stop = asyncio.Event()

    async def join(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.room == "lobby":
            return
        writer.write(frame({"type": "join", "room": self.room}))
        line = await asyncio.wait_for(read_until(reader, (b"ok",)), 10)
        if b'"type":"ok"' not in line:
            raise ConnectionError(line.decode(errors="replace").strip())

    async def receive(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            if m := SAY.search(line):
                i = int(m.group(1))
                if i < len(self.sent) and i not in self.latency:
                    self.latency[i] = time.monotonic() - self.sent[i]
        self.errors.append("the receiver was disconnected")

    async def drain(self, reader: asyncio.StreamReader, who: str) -> None:
        """Read a sender's acks and echoes; note refusals."""
        while line := await reader.readline():
            if b'"type":"error"' in line and len(self.errors) < 20:
                self.errors.append(f"{who}: {line.decode(errors='replace').strip()[:200]}")
        if not self.stop.is_set():
            self.errors.append(f"{who} was disconnected")

    async def say(self, writers: list[asyncio.StreamWriter]) -> None:
        start = time.monotonic()
        i = 0
        while not self.stop.is_set():
            due = start + i * self.interval
            if (wait := due - time.monotonic()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), wait)
                continue
            self.sent.append(time.monotonic())
            body = f"H{i} honest"
            with contextlib.suppress(ConnectionError, RuntimeError):
                writers[i % len(writers)].write(
                    frame({"type": "say", "room": self.room, "body": body})
                )
            i += 1

    async def probe_logins(self) -> None:
        hello = {"nick": self.account, "password": self.password, "device": "honest-probe"}
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                _, writer = await login(self.host, self.port, self.tls, hello, timeout=10)
            except (OSError, TimeoutError, ConnectionError) as exc:
                outcome = str(exc)[:120] or type(exc).__name__
                self.logins.append((t, None, outcome))
            else:
                self.logins.append((t, time.monotonic() - t, "welcome"))
                with contextlib.suppress(OSError, RuntimeError):
                    writer.write(frame({"type": "bye"}))
                    writer.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.stop.wait(), max(0.0, t + self.login_every - time.monotonic())
                )

    async def watch_stdin(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.readline(), self.max_seconds)
        self.stop.set()

    async def run(self) -> dict[str, Any]:
        guest = {"device": "honest"}
        r_reader, r_writer = await login(
            self.host, self.port, self.tls, {"nick": "honest-rx", **guest}
        )
        await self.join(r_reader, r_writer)
        writers: list[asyncio.StreamWriter] = [r_writer]
        tasks = [asyncio.create_task(self.receive(r_reader))]
        senders = []
        for k in range(self.senders):
            reader, writer = await login(
                self.host, self.port, self.tls, {"nick": f"honest-tx{k}", **guest}
            )
            await self.join(reader, writer)
            writers.append(writer)
            senders.append(writer)
            tasks.append(asyncio.create_task(self.drain(reader, f"honest-tx{k}")))
        ready = time.monotonic()
        sys.stdout.write(json.dumps({"ready": ready}) + "\n")
        sys.stdout.flush()
        watcher = asyncio.create_task(self.watch_stdin())
        await asyncio.gather(self.say(senders), self.probe_logins())
        await asyncio.sleep(GRACE)
        watcher.cancel()
        for task in tasks:
            task.cancel()
        for writer in writers:
            writer.close()
        says = [[t, self.latency.get(i)] for i, t in enumerate(self.sent)]
        return {"ready": ready, "says": says, "logins": self.logins, "errors": self.errors}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    result = asyncio.run(Honest(spec).run())
    sys.stdout.write(json.dumps({"result": result}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
