"""IRC fan-out against JSON-lines fan-out: the server's CPU per delivery, in one run.

``python -m bench --only ircfanout`` starts one chinwag server (pinned to core
0) with a JSON-lines and an IRC listener. In this process (core 1), phases
alternate (JSON lines, IRC, JSON lines, IRC…): each connects ``clients``
readers over one protocol and logs them in (the IRC ones as guests, having
negotiated ``--irc-caps``, by default ``message-tags server-time`` as modern
clients do), then a JSON-lines sender posts ``messages`` messages to the lobby;
the phase ends when every reader has counted every message. The server's CPU
time (all threads, /proc) is sampled just before the first message and just
after the last delivery; deliveries are readers × messages. The report gives
each protocol's median µs per delivery and their ratio, measured against the
same server in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
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
from bench.wsfanout import TIMEOUT, Receiver

_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+) \((tcp|irc)://")
_PRIVMSG = b" PRIVMSG #lobby "
DEFAULT_CAPS = "message-tags server-time"


class IrcReader(asyncio.Protocol):
    """An IRC guest that counts the lobby PRIVMSGs it receives (and answers PINGs)."""

    def __init__(self, nick: str, caps: str) -> None:
        self.nick = nick
        self.caps = caps
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.messages = 0
        self.ready = asyncio.get_running_loop().create_future()
        self.target = 0
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        lines = [f"NICK {self.nick}", f"USER {self.nick} 0 * :{self.nick}"]
        if self.caps:
            lines = ["CAP LS 302", f"CAP REQ :{self.caps}", *lines, "CAP END"]
        transport.write("".join(line + "\r\n" for line in lines).encode())

    def data_received(self, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\r\n")
        for line in lines:
            if _PRIVMSG in line:
                self.messages += 1
                done = self.done
                if done is not None and self.messages >= self.target and not done.done():
                    done.set_result(None)
            elif line.startswith(b"PING ") or b" PING " in line:
                assert self.transport is not None
                self.transport.write(b"PONG " + line.rpartition(b"PING ")[2] + b"\r\n")
            elif b" 366 " in line and not self.ready.done():  # the lobby's NAMES: joined
                self.ready.set_result(None)
            elif (line.startswith(b"ERROR") or b" 433 " in line) and not self.ready.done():
                self.ready.set_exception(RuntimeError(f"{self.nick}: {line[:200]!r}"))

    def expect(self, count: int) -> asyncio.Future[None]:
        self.target = self.messages + count
        self.done = asyncio.get_running_loop().create_future()
        return self.done

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.ready, self.done):
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionError(f"{self.nick}: connection lost"))


async def _phase(
    kind: str, n: int, messages: int, caps: str, ports: dict[str, int], pid: int
) -> float:
    """One phase; the server's CPU seconds per delivery."""
    loop = asyncio.get_running_loop()
    readers: list[Receiver | IrcReader] = []
    for i in range(n):
        nick = f"{kind}{i}"
        proto: Receiver | IrcReader = IrcReader(nick, caps) if kind == "irc" else Receiver(nick)
        await loop.create_connection(lambda p=proto: p, "127.0.0.1", ports[kind])  # type: ignore[misc]
        readers.append(proto)
    sender = Receiver(f"{kind}sender")
    await loop.create_connection(lambda: sender, "127.0.0.1", ports["tcp"])
    await asyncio.wait_for(asyncio.gather(*(r.ready for r in [*readers, sender])), TIMEOUT)
    done = [r.expect(messages) for r in readers]
    own = sender.expect(messages)
    before = procstat.cpu_seconds_precise(pid)
    for i in range(messages):
        body = f"fan-out {i} " + "x" * 80
        sender.send(json.dumps({"type": "say", "room": "lobby", "body": body}).encode())
        if i % 8 == 7:
            await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(own, *done), TIMEOUT)
    after = procstat.cpu_seconds_precise(pid)
    for r in [*readers, sender]:
        if r.transport is not None:
            r.transport.close()
    await asyncio.sleep(1.0)  # the server logs them out before the next phase
    return (after - before) / (n * messages)


async def _measure(
    clients: int, messages: int, rounds: int, caps: str, ports: dict[str, int], pid: int
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"tcp": [], "irc": []}
    for _ in range(rounds):
        for kind in ("tcp", "irc"):
            out[kind].append(await _phase(kind, clients, messages, caps, ports, pid))
    return out


def _start(workdir: Path, pin: bool) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    args = [sys.executable, "-m", "chinwag", "serve", "--data", str(workdir / "data")]
    args += ["--no-announce", "--listen", "tcp://127.0.0.1:0", "--listen", "irc://127.0.0.1:0"]
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
        ports = {kind: int(port) for port, kind in _LISTENING.findall(text)}
        if len(ports) == 2:
            return proc, ports
        if proc.poll() is not None:
            raise RuntimeError(f"chinwag exited early:\n{text[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("chinwag did not start in 30 s")


def run(args: argparse.Namespace) -> int:
    """``--only ircfanout``: the table (and the JSON report with ``--json``); the exit status."""
    clients = args.irc_clients or (50 if args.quick else 500)
    messages = args.irc_messages or (10 if args.quick else 40)
    rounds = args.repeat or (1 if args.quick else 3)
    caps = DEFAULT_CAPS if args.irc_caps is None else args.irc_caps
    pin = not args.no_pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    if pin:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {GEN_CPU})
    workdir = Path(tempfile.mkdtemp(prefix="bench-irc-"))
    proc, ports = _start(workdir, pin)
    error = ""
    per: dict[str, list[float]] = {"tcp": [], "irc": []}
    try:
        per = asyncio.run(_measure(clients, messages, rounds, caps, ports, proc.pid))
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
    tcp, irc = us["tcp"], us["irc"]
    report: dict[str, Any] = {
        "scenario": "ircfanout",
        "clients": clients,
        "messages": messages,
        "rounds": rounds,
        "irc_caps": caps,
        "pinned": pin,
        "ok": not error,
        "error": error,
        "server_cpu_us_per_delivery": us,
        "runs_us": {k: [round(x * 1e6, 2) for x in v] for k, v in per.items()},
        "irc_over_tcp": round(irc / tcp, 2) if tcp and irc else None,
    }
    table = (
        f"irc fan-out: {clients} readers x {messages} messages, {rounds} round(s) each,"
        f" IRC caps {caps or '(none)'!r}\n"
        f"  server CPU per delivery: JSON lines {tcp} µs, IRC {irc} µs"
        f" (irc/json {report['irc_over_tcp']})" + (f"\n  FAILED: {error}" if error else "")
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
    g = p.add_argument_group("IRC fan-out (--only ircfanout)")
    g.add_argument("--irc-clients", type=int, help="readers per phase (default 500; --quick 50)")
    g.add_argument("--irc-messages", type=int, help="messages per phase (default 40; --quick 10)")
    g.add_argument(
        "--irc-caps",
        help=f"capabilities the IRC readers enable (default {DEFAULT_CAPS!r}; '' for none)",
    )
