"""WebSocket fan-out against TCP fan-out: the server's CPU per delivery, in one run.

``python -m bench --only ws`` starts one chinwag server (pinned to core 0) with
a JSON-lines and an HTTP listener. In this process (core 1), phases alternate
(TCP, WebSocket, TCP, WebSocket…): each connects ``clients`` receivers over
one transport, logs them in, and a TCP sender posts ``messages`` messages to
the lobby, acked in a window; the phase ends when every receiver has counted
every message. The server's CPU time (all threads, /proc) is sampled just
before the first message and just after the last delivery; deliveries are
receivers × messages. The report gives each transport's median µs per delivery
and their ratio, both measured against the same server in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procstat
from bench.runner import CHINWAG_SETTINGS, GEN_CPU, REPO, SERVER_CPU, _env, _pinned

_CHAT = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
_WEB = re.compile(r"open http://127\.0\.0\.1:(\d+)/ in a browser")
_MESSAGE = b'{"type":"message"'
_CAUGHT_UP = b'{"type":"caught_up"'
TIMEOUT = 120.0


class Receiver(asyncio.Protocol):
    """A logged-in client that counts the messages it receives (JSON lines)."""

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.messages = 0
        self.ready = asyncio.get_running_loop().create_future()
        self.target = 0
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.start()

    def start(self) -> None:
        self.send(json.dumps({"type": "hello", "proto": 1, "nick": self.nick}).encode())

    def send(self, frame: bytes) -> None:
        assert self.transport is not None
        self.transport.write(frame + b"\n")

    def data_received(self, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for line in lines:
            self.frame(line)

    def frame(self, payload: bytes) -> None:
        if payload.startswith(_MESSAGE):
            self.messages += 1
            if self.done is not None and self.messages >= self.target and not self.done.done():
                self.done.set_result(None)
        elif payload.startswith(_CAUGHT_UP) and not self.ready.done():
            self.ready.set_result(None)

    def expect(self, count: int) -> asyncio.Future[None]:
        self.target = self.messages + count
        self.done = asyncio.get_running_loop().create_future()
        return self.done

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.ready, self.done):
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionError(f"{self.nick}: connection lost"))


class WsReceiver(Receiver):
    """The same over WebSocket: a handshake, then one frame per message."""

    def __init__(self, nick: str, port: int) -> None:
        super().__init__(nick)
        self.port = port
        self.upgraded = False

    def start(self) -> None:
        assert self.transport is not None
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def send(self, frame: bytes) -> None:
        # A client frame is masked; a zero mask leaves the payload as it is.
        assert self.transport is not None and len(frame) < 65_536
        size = len(frame)
        head = bytes((0x81, 0x80 | size)) if size < 126 else bytes((0x81, 0xFE)) + size.to_bytes(2)
        self.transport.write(head + bytes(4) + frame)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data
        if not self.upgraded:
            head, sep, buf = buf.partition(b"\r\n\r\n")
            if not sep:
                self.buffer = head
                return
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"no WebSocket: {head[:100]!r}")
            self.upgraded = True
            super().start()
        at = 0
        while len(buf) - at >= 2:
            size = buf[at + 1] & 0x7F
            start = at + 2
            if size == 126:
                size, start = int.from_bytes(buf[at + 2 : at + 4]), at + 4
            elif size == 127:
                size, start = int.from_bytes(buf[at + 2 : at + 10]), at + 10
            if len(buf) < start + size:
                break
            self.frame(buf[start : start + size])
            at = start + size
        self.buffer = buf[at:]


async def _phase(kind: str, n: int, messages: int, ports: dict[str, int], pid: int) -> float:
    """One phase; the server's CPU seconds per delivery."""
    loop = asyncio.get_running_loop()
    receivers: list[Receiver] = []
    for i in range(n):
        nick = f"{kind}{i}"
        proto = WsReceiver(nick, ports["http"]) if kind == "ws" else Receiver(nick)
        port = ports["http"] if kind == "ws" else ports["tcp"]
        await loop.create_connection(lambda p=proto: p, "127.0.0.1", port)  # type: ignore[misc]
        receivers.append(proto)
    sender = Receiver(f"{kind}sender")
    await loop.create_connection(lambda: sender, "127.0.0.1", ports["tcp"])
    await asyncio.wait_for(asyncio.gather(*(r.ready for r in [*receivers, sender])), TIMEOUT)
    done = [r.expect(messages) for r in receivers]
    own = sender.expect(messages)
    before = procstat.cpu_seconds_precise(pid)
    for i in range(messages):
        body = f"fan-out {i} " + "x" * 80
        sender.send(json.dumps({"type": "say", "room": "lobby", "body": body}).encode())
        if i % 8 == 7:
            await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(own, *done), TIMEOUT)
    after = procstat.cpu_seconds_precise(pid)
    for r in [*receivers, sender]:
        if r.transport is not None:
            r.transport.close()
    await asyncio.sleep(1.0)  # the server logs them out before the next phase
    return (after - before) / (n * messages)


async def _measure(
    clients: int, messages: int, rounds: int, ports: dict[str, int], pid: int
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"tcp": [], "ws": []}
    for _ in range(rounds):
        for kind in ("tcp", "ws"):
            out[kind].append(await _phase(kind, clients, messages, ports, pid))
    return out


def _start(workdir: Path, pin: bool) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    args = [sys.executable, "-m", "chinwag", "serve", "--data", str(workdir / "data")]
    args += ["--no-announce", "--listen", "tcp://127.0.0.1:0", "--listen", "http://127.0.0.1:0"]
    for name, value in CHINWAG_SETTINGS.items():
        args += ["--set", f"{name}={value}"]
    log_path = workdir / "server.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env=_env(),
            preexec_fn=_pinned(SERVER_CPU if pin else None),
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        chat, web = _CHAT.search(text), _WEB.search(text)
        if chat and web:
            return proc, {"tcp": int(chat.group(1)), "http": int(web.group(1))}
        if proc.poll() is not None:
            raise RuntimeError(f"chinwag exited early:\n{text[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("chinwag did not start in 30 s")


def run(args: argparse.Namespace) -> int:
    """``--only ws``: the table (and the JSON report with ``--json``); the exit status."""
    clients = args.ws_clients or (50 if args.quick else 500)
    messages = args.ws_messages or (10 if args.quick else 40)
    rounds = args.repeat or (1 if args.quick else 3)
    pin = not args.no_pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    if pin:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {GEN_CPU})
    workdir = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    proc, ports = _start(workdir, pin)
    error = ""
    per: dict[str, list[float]] = {"tcp": [], "ws": []}
    try:
        per = asyncio.run(_measure(clients, messages, rounds, ports, proc.pid))
    except (OSError, RuntimeError, TimeoutError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    us = {k: round(statistics.median(v) * 1e6, 2) if v else None for k, v in per.items()}
    tcp, ws = us["tcp"], us["ws"]
    report: dict[str, Any] = {
        "scenario": "ws",
        "clients": clients,
        "messages": messages,
        "rounds": rounds,
        "pinned": pin,
        "ok": not error,
        "error": error,
        "server_cpu_us_per_delivery": us,
        "runs_us": {k: [round(x * 1e6, 2) for x in v] for k, v in per.items()},
        "ws_over_tcp": round(ws / tcp, 2) if tcp and ws else None,
    }
    table = (
        f"ws fan-out: {clients} receivers x {messages} messages, {rounds} round(s) each\n"
        f"  server CPU per delivery: TCP {tcp} µs, WebSocket {ws} µs"
        f" (ws/tcp {report['ws_over_tcp']})" + (f"\n  FAILED: {error}" if error else "")
    )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(table)
    return 0 if not error else 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("WebSocket fan-out (--only ws)")
    g.add_argument("--ws-clients", type=int, help="receivers per phase (default 500; --quick 50)")
    g.add_argument("--ws-messages", type=int, help="messages per phase (default 40; --quick 10)")
