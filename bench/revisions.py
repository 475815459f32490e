"""Edits and reactions against plain messages: server CPU per delivery and latency, one run.

``python -m bench --only revisions`` starts one chinwag server (pinned to core
0) and, in this process (core 1), logs in ``clients`` guests and one sender,
all in the lobby. Then, ``rounds`` times, three phases against the same
server and the same connections (issue 15, "delivery cost of an edit/reaction
vs a message"):

* ``message``: the sender posts ``events`` messages (``say``);
* ``edit``: it edits each of them once (``edit``: a new body of the same size);
* ``react``: it toggles a reaction on them, on then off (``react``).

The sender keeps ``window`` commands unacked at once. With ``--rev-senders N``
there are N senders (each with its own window): message ``i`` is said, edited
and reacted to by sender ``i mod N``, so events of several people commit and
are fanned out together, as in a busy room (issue 15, evfanout). Every session in the
room, the sender's included, must receive each event exactly once, in id
order, with the target and the on/off the sender asked for: each receiver's
list of frames is compared with the acks' ids. A phase ends when every copy
arrived. The server's CPU time (all threads, /proc schedstat) is sampled just
before the first command and just after the last copy; a delivery is one
copy to one session. Latency is from writing a command to the generator
reading the copy (so it errs high: the generator's own queueing counts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procstat
from bench.floor import quantiles
from bench.runner import GEN_CPU, SERVER_CPU, ServerProcess, emit

KINDS = ("message", "edit", "react")
FRAMES = {
    "message": b'{"type":"message"',
    "edit": b'{"type":"edited"',
    "react": b'{"type":"reacted"',
}
EMOJI = "👍"
TIMEOUT = 120.0


@dataclass
class Phase:
    """What one phase expects, and the copies that arrived."""

    kind: str
    expected: int  # copies still to come, over every session
    done: asyncio.Future[None]
    errors: list[str] = field(default_factory=list)

    def arrived(self) -> None:
        self.expected -= 1
        if self.expected <= 0 and not self.done.done():
            self.done.set_result(None)


class Client(asyncio.Protocol):
    """A logged-in guest that records the events of the current phase as they arrive."""

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.phase: Phase | None = None
        # (event id, target, on, time read) of the current phase's frames
        self.got: list[tuple[int, int | None, bool | None, float]] = []
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.send({"type": "hello", "proto": 1, "nick": self.nick})

    def send(self, frame: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(json.dumps(frame).encode() + b"\n")

    def ask(self, frame: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Send ``frame`` (it has a ``ref``); its ack or error, when it comes."""
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[frame["ref"]] = reply
        self.send(frame)
        return reply

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        phase = self.phase
        prefix = FRAMES[phase.kind] if phase is not None else None
        for line in lines:
            if prefix is not None and phase is not None and line.startswith(prefix):
                f = json.loads(line)
                self.got.append((int(f["id"]), f.get("target"), f.get("on"), now))
                phase.arrived()
            elif line.startswith((b'{"type":"ack"', b'{"type":"error"')):
                f = json.loads(line)
                reply = self.replies.pop(str(f.get("ref")), None)
                if reply is not None and not reply.done():
                    reply.set_result(f)
                elif f["type"] == "error" and not self.ready.done():
                    self.ready.set_exception(RuntimeError(f"{self.nick}: {f}"))
            elif line.startswith(b'{"type":"caught_up"') and not self.ready.done():
                self.ready.set_result(None)
            elif line.startswith(b'{"type":"ping"'):
                self.send({"type": "pong", "ref": json.loads(line).get("ref")})

    def connection_lost(self, exc: Exception | None) -> None:
        lost = ConnectionError(f"{self.nick}: connection lost")
        futures: list[asyncio.Future[Any]] = [self.ready, *self.replies.values()]
        if self.phase is not None:
            futures.append(self.phase.done)
        for fut in futures:
            if not fut.done():
                fut.set_exception(lost)


def _commands(kind: str, ids: list[int], round_: int) -> list[dict[str, Any]]:
    """The sender's commands of one phase (``ids``: the messages of its ``message`` phase)."""
    pad = "x" * 60
    if kind == "message":
        return [
            {"type": "say", "room": "lobby", "body": f"round {round_} message {i} {pad}"}
            for i in range(len(ids))
        ]
    if kind == "edit":
        return [
            {"type": "edit", "id": mid, "body": f"round {round_} edited {i} {pad}"}
            for i, mid in enumerate(ids)
        ]
    # Toggled: on for the first half of the messages, then off again in the same order.
    half = ids[: (len(ids) + 1) // 2]
    on = [{"type": "react", "id": mid, "emoji": EMOJI, "on": True} for mid in half]
    off = [{"type": "react", "id": mid, "emoji": EMOJI, "on": False} for mid in half]
    return (on + off)[: len(ids)]


async def _phase(
    kind: str,
    commands: list[dict[str, Any]],
    ids: list[int],
    senders: list[Client],
    sessions: list[Client],
    window: int,
    pid: int,
) -> dict[str, Any]:
    """Run one phase; its CPU per delivery, latencies and the acked ids.

    Command ``i`` goes from the sender of its message (``ids``: the messages of the
    ``message`` phase), each sender keeping ``window`` of its commands unacked.
    """
    loop = asyncio.get_running_loop()
    phase = Phase(kind, len(commands) * len(sessions), loop.create_future())
    for s in sessions:
        s.got = []
        s.phase = phase
    position = {mid: i for i, mid in enumerate(ids)}
    owners = [
        i if kind == "message" else position[int(command["id"])]
        for i, command in enumerate(commands)
    ]
    sent: dict[int, float] = {}  # command index -> when it was written
    replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
    before = procstat.cpu_seconds_precise(pid)
    started = time.perf_counter()

    async def send_all(k: int, sender: Client) -> None:
        slots = asyncio.Semaphore(window)
        for i, command in enumerate(commands):
            if owners[i] % len(senders) != k:
                continue
            await asyncio.wait_for(slots.acquire(), TIMEOUT)
            sent[i] = time.perf_counter()
            reply = sender.ask({**command, "ref": f"{kind}-{i}", "cid": f"{kind}-{started}-{i}"})
            reply.add_done_callback(lambda _: slots.release())
            replies[i] = reply

    await asyncio.gather(*(send_all(k, sender) for k, sender in enumerate(senders)))
    answers = await asyncio.wait_for(
        asyncio.gather(*(replies[i] for i in range(len(commands)))), TIMEOUT
    )
    await asyncio.wait_for(phase.done, TIMEOUT)
    after = procstat.cpu_seconds_precise(pid)
    elapsed = time.perf_counter() - started
    for s in sessions:
        s.phase = None
    refused = [a for a in answers if a["type"] != "ack"]
    if refused:
        raise RuntimeError(f"{kind}: the server refused {len(refused)}: {refused[0]}")
    acked = [int(a["id"]) for a in answers]
    order = sorted(range(len(acked)), key=acked.__getitem__)  # copies come in id order
    want = [(acked[i], commands[i].get("id"), commands[i].get("on")) for i in order]
    latencies: list[float] = []
    for s in sessions:
        got = [(mid, target, on) for mid, target, on, _ in s.got]
        if got != want:
            phase.errors.append(f"{s.nick}: {len(got)} {kind} frames differ from the acks")
            continue
        latencies += [(t - sent[i]) * 1e3 for i, (*_, t) in zip(order, s.got, strict=True)]
    if phase.errors:
        raise RuntimeError(f"{kind}: {len(phase.errors)} sessions: {phase.errors[0]}")
    deliveries = len(commands) * len(sessions)
    return {
        "kind": kind,
        "ids": acked,
        "cpu_us_per_delivery": (after - before) * 1e6 / deliveries,
        "cpu_us_per_event": (after - before) * 1e6 / len(commands),
        "seconds": elapsed,
        "latency_ms": latencies,
    }


async def _measure(
    port: int, clients: int, events: int, rounds: int, window: int, pid: int, senders: int = 1
) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    readers = [Client(f"rev{i}") for i in range(clients)]
    talkers = [Client(f"revsender{k}" if k else "revsender") for k in range(senders)]
    for c in [*readers, *talkers]:
        await loop.create_connection(lambda c=c: c, "127.0.0.1", port)  # type: ignore[misc]
    await asyncio.wait_for(asyncio.gather(*(c.ready for c in [*readers, *talkers])), TIMEOUT)
    sessions = [*readers, *talkers]
    out: list[dict[str, Any]] = []
    try:
        for r in range(rounds):
            ids = list(range(events))
            for kind in KINDS:
                commands = _commands(kind, ids, r)
                result = await _phase(kind, commands, ids, talkers, sessions, window, pid)
                if kind == "message":
                    ids = result["ids"]
                out.append({**result, "round": r})
                print(
                    f"revisions round {r + 1}/{rounds} {kind}:"
                    f" {result['cpu_us_per_delivery']:.3f} µs/delivery",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for c in sessions:
            if c.transport is not None:
                c.transport.close()
    return out


def _summary(phases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        mine = [p for p in phases if p["kind"] == kind]
        if not mine:
            continue
        lat = quantiles([x for p in mine for x in p["latency_ms"]])
        out[kind] = {
            "cpu_us_per_delivery": round(
                statistics.median(p["cpu_us_per_delivery"] for p in mine), 3
            ),
            "cpu_us_per_event": round(statistics.median(p["cpu_us_per_event"] for p in mine), 1),
            "runs_cpu_us_per_delivery": [round(p["cpu_us_per_delivery"], 3) for p in mine],
            "latency_ms": {k: round(v, 2) for k, v in lat.items()},
        }
    base = out.get("message", {}).get("cpu_us_per_delivery")
    for entry in out.values():
        entry["over_message"] = round(entry["cpu_us_per_delivery"] / base, 2) if base else None
    return out


def run(args: argparse.Namespace) -> int:
    """``--only revisions``: the table (and the JSON report with ``--json``); the exit status."""
    clients = args.rev_clients or (20 if args.quick else 500)
    events = args.rev_events or (10 if args.quick else 100)
    rounds = args.repeat or (1 if args.quick else 3)
    window = args.window or 8
    senders = max(args.rev_senders or 1, 1)
    pin = not args.no_pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    if pin:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {GEN_CPU})
    workdir = Path(tempfile.mkdtemp(prefix="bench-revisions-"))
    extra = [x for item in args.set for x in ("--set", item)]
    server = ServerProcess("chinwag", workdir, SERVER_CPU if pin else None, extra=extra)
    error = ""
    phases: list[dict[str, Any]] = []
    try:
        server.start()
        phases = asyncio.run(
            _measure(server.port, clients, events, rounds, window, server.pid, senders)
        )
    except (OSError, RuntimeError, TimeoutError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        server.stop()
    summary = _summary(phases)
    report: dict[str, Any] = {
        "scenario": "revisions",
        "clients": clients,
        "sessions": clients + senders,
        "senders": senders,
        "events": events,
        "rounds": rounds,
        "window": window,
        "pinned": pin,
        "ok": not error and len(phases) == rounds * len(KINDS),
        "error": error,
        "kinds": summary,
    }
    lines = [
        f"revisions: {clients} readers + {senders} sender(s), {events} events per phase"
        f" (window {window} each), {rounds} round(s)",
        f"  {'event':8} {'µs/delivery':>12} {'x message':>10} {'µs/event':>9}"
        f" {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
    ]
    for kind, s in summary.items():
        q = s["latency_ms"]
        lines.append(
            f"  {kind:8} {s['cpu_us_per_delivery']:>12.3f} {s['over_message']:>10}"
            f" {s['cpu_us_per_event']:>9.1f} {q['p50_ms']:>8.2f} {q['p99_ms']:>8.2f}"
            f" {q['max_ms']:>8.2f}"
        )
    if error:
        lines.append(f"  FAILED: {error} (server log: {server.log_path})")
    emit(report, "\n".join(lines), args)
    return 0 if report["ok"] else 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("edits and reactions against messages (--only revisions)")
    g.add_argument("--rev-clients", type=int, help="readers in the lobby (default 500; --quick 20)")
    g.add_argument(
        "--rev-events", type=int, help="commands per phase and round (default 100; --quick 10)"
    )
    g.add_argument(
        "--rev-senders",
        type=int,
        help="senders sharing the commands, each with its own window (default 1)",
    )
