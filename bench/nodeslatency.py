"""Several nodes (issue 13): latency across nodes at a fixed rate; catch-up after a Redis outage.

``python -m bench --only nodes-latency`` starts the throwaway PostgreSQL
cluster and ``redis-server`` of `bench.nodes` and two chinwag nodes on them
(pinned to core 0, this process to core 1). Per round, two phases on the
same two nodes, each with fresh clients: ``clients`` receivers in the lobby,
split between node A and node B, and ``senders`` senders on node A.

1. **Fixed rate**: the senders post ``rate`` messages a second for
   ``seconds`` seconds, open loop (paced by the clock, not by the acks, as
   the ``rate`` scenario's generator does); the latency from a message's send
   to each receiver's getting it, p50/p99, for receivers on node A (same node)
   and on node B (across Redis) in the same phase.
2. **Redis outage**: redis-server is killed (SIGKILL, no persistence: it
   comes back empty, as after a crash) and the senders post
   ``outage_rate`` messages a second for ``outage`` seconds on node A; then
   redis-server starts again on the same port. The catch-up time runs from
   the moment it answers ``PING`` to the moment the last receiver on node B
   has every message. Node A's receivers must have had every message before
   Redis came back.

Each phase checks that every receiver got every message once, in increasing
id order, and that every message was acknowledged; the report says
``lost 0, duplicates 0`` or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procstat
from bench.floor import quantiles
from bench.nodes import TIMEOUT, Services, _median, _start_node, _stop
from bench.runner import GEN_CPU

_ID = re.compile(rb'"id":(\d+)')
_NUMBER = re.compile(rb'"body":"m (\d+) ')


class Receiver(asyncio.Protocol):
    """A guest in the lobby: when each message arrived; whether any came twice or out of order."""

    def __init__(self, nick: str, node: int) -> None:
        self.nick, self.node = nick, node
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.arrived = array("d")  # message number -> when (0: not yet)
        self.count = 0
        self.last_id = 0
        self.duplicates = self.reordered = self.unknown = 0
        self.closing = False

    def expect(self, total: int) -> None:
        self.arrived = array("d", bytes(8 * total))
        self.count = 0
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(
            json.dumps({"type": "hello", "proto": 1, "nick": self.nick}).encode() + b"\n"
        )

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        cut = data.rfind(b"\n")
        if cut < 0:
            self.buffer += data
            return
        lines, self.buffer = (self.buffer + data[:cut]).split(b"\n"), data[cut + 1 :]
        for line in lines:
            if line.startswith(b'{"type":"message"'):
                self._message(line, now)
            elif line.startswith(b'{"type":"caught_up"') and not self.ready.done():
                self.ready.set_result(None)

    def _message(self, line: bytes, now: float) -> None:
        id_match, number_match = _ID.search(line), _NUMBER.search(line)
        if id_match is None or number_match is None:
            self.unknown += 1
            return
        msg_id, number = int(id_match.group(1)), int(number_match.group(1))
        if msg_id <= self.last_id:
            self.reordered += 1
        self.last_id = max(self.last_id, msg_id)
        if number >= len(self.arrived):
            self.unknown += 1  # the warm-up message, or one from an earlier phase
            return
        if self.arrived[number]:
            self.duplicates += 1
            return
        self.arrived[number] = now
        self.count += 1
        if self.count == len(self.arrived) and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closing:
            return
        for fut in (self.ready, self.done):
            if not fut.done():
                fut.set_exception(ConnectionError(f"{self.nick}: connection lost"))


class Sender(Receiver):
    """A guest on node A that posts numbered messages and counts its acks."""

    def __init__(self, nick: str) -> None:
        super().__init__(nick, 0)
        self.acks = 0
        self.acked = array("d")  # when each ack came, in the order of the says
        self.errors: list[str] = []

    def say(self, number: int) -> None:
        assert self.transport is not None
        frame = {"type": "say", "room": "lobby", "body": f"m {number} " + "x" * 80}
        self.transport.write(json.dumps(frame).encode() + b"\n")

    def data_received(self, data: bytes) -> None:
        acks = data.count(b'{"type":"ack"')
        if acks:
            self.acks += acks
            self.acked.extend([time.perf_counter()] * acks)
        if b'{"type":"error"' in data and len(self.errors) < 5:
            self.errors += [x for x in data.decode(errors="replace").split("\n") if '"error"' in x]
        if not self.ready.done() and b'{"type":"caught_up"' in data:
            self.ready.set_result(None)


@dataclass
class Clients:
    receivers: list[Receiver]
    senders: list[Sender]

    def close(self) -> None:
        for c in [*self.receivers, *self.senders]:
            c.closing = True
            if c.transport is not None:
                c.transport.close()


async def _connect(ports: list[int], clients: int, senders: int, tag: str) -> Clients:
    loop = asyncio.get_running_loop()
    group = Clients(
        [Receiver(f"{tag}r{i}", i % 2) for i in range(clients)],
        [Sender(f"{tag}s{i}") for i in range(senders)],
    )
    everyone: list[Receiver] = [*group.receivers, *group.senders]
    for c in everyone:
        await loop.create_connection(lambda c=c: c, "127.0.0.1", ports[c.node])  # type: ignore[misc]
    await asyncio.wait_for(asyncio.gather(*(c.ready for c in everyone)), TIMEOUT)
    # Node B hears of every session, and every node's bus reads: one message reaches all.
    for c in group.receivers:
        c.expect(0)
    group.senders[0].say(1_000_000_000)
    deadline = time.monotonic() + TIMEOUT
    while any(c.last_id == 0 for c in group.receivers):
        if time.monotonic() > deadline:
            raise TimeoutError("the warm-up message did not reach every receiver")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    return group


async def _pace(senders: list[Sender], rate: float, total: int, sent: array[float]) -> float:
    """Send ``total`` messages at ``rate`` a second, round robin; the seconds it took."""
    t0 = time.perf_counter()
    i = 0
    while i < total:
        due = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while i < due:
            sent[i] = time.perf_counter()
            senders[i % len(senders)].say(i)
            i += 1
        await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
    return time.perf_counter() - t0


def _check(group: Clients, total: int) -> dict[str, int]:
    receivers = group.receivers
    return {
        "lost": sum(total - c.count for c in receivers),
        "duplicates": sum(c.duplicates for c in receivers),
        "reordered": sum(c.reordered for c in receivers),
        "unacked": total - sum(s.acks for s in group.senders) + 1,  # + the warm-up's ack
        "errors": sum(len(s.errors) for s in group.senders),
    }


def _verdict(check: dict[str, int], group: Clients) -> str:
    bad = {k: v for k, v in check.items() if v}
    if not bad:
        return ""
    first = next((e for s in group.senders for e in s.errors), "")
    return f"{bad} {first}".strip()


async def _wait_all(group: Clients, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(c.done for c in group.receivers)), timeout)


@dataclass
class RatePhase:
    seconds: float  # how long the sending took (rate x seconds messages)
    node_cpu_us: float
    generator_busy: float  # this process's CPU / wall time: near 1, the figures are ours
    ack_ms: list[float]  # send -> ack (the commit on node A), to tell it from the fan-out
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    check: dict[str, int] = field(default_factory=dict)


async def _rate_phase(ports: list[int], pids: list[int], p: dict[str, Any]) -> RatePhase:
    group = await _connect(ports, p["clients"], p["senders"], "a")
    try:
        total = int(p["rate"] * p["seconds"])
        for c in group.receivers:
            c.expect(total)
        sent = array("d", bytes(8 * total))
        cpu0, gen0 = [procstat.cpu_seconds_precise(x) for x in pids], _own_cpu()
        t0 = time.perf_counter()
        seconds = await _pace(group.senders, p["rate"], total, sent)
        await _wait_all(group, TIMEOUT)
        wall = time.perf_counter() - t0
        cpu1, gen1 = [procstat.cpu_seconds_precise(x) for x in pids], _own_cpu()
        check = _check(group, total)
        if error := _verdict(check, group):
            raise RuntimeError(f"fixed rate: {error}")
        latency: dict[str, list[float]] = {"same": [], "other": []}
        for c in group.receivers:
            where = latency["same" if c.node == 0 else "other"]
            where += [(t - s) * 1000 for t, s in zip(c.arrived, sent, strict=True)]
        deliveries = total * p["clients"]  # as in `bench.nodes`: the senders' copies not counted
        node_us = (sum(cpu1) - sum(cpu0)) / deliveries * 1e6
        acks: list[float] = []
        for n, sender in enumerate(group.senders):
            times = sender.acked[1:] if n == 0 else sender.acked  # sender 0: the warm-up's
            mine = sent[n :: len(group.senders)]
            acks += [(t - s) * 1000 for t, s in zip(times, mine, strict=True)]
        return RatePhase(seconds, node_us, (gen1 - gen0) / wall, acks, latency, check)
    finally:
        group.close()


@dataclass
class OutagePhase:
    outage_s: float  # from the kill to the restart
    catch_up_s: float  # Redis answering again -> the last receiver on node B has everything
    first_s: float  # Redis answering again -> the first of those messages on node B
    during_outage: int  # copies node B's receivers got while Redis was down (0 expected)
    messages: int
    check: dict[str, int] = field(default_factory=dict)


async def _outage_phase(services: Services, ports: list[int], p: dict[str, Any]) -> OutagePhase:
    group = await _connect(ports, p["clients"], p["senders"], "b")
    try:
        total = int(p["outage_rate"] * p["outage"])
        for c in group.receivers:
            c.expect(total)
        sent = array("d", bytes(8 * total))
        killed = time.perf_counter()
        services.kill_redis()
        try:
            await _pace(group.senders, p["outage_rate"], total, sent)
            # What node A's receivers had by now, Redis still down.
            same = [c for c in group.receivers if c.node == 0]
            await asyncio.wait_for(asyncio.gather(*(c.done for c in same)), TIMEOUT)
            await asyncio.sleep(max(0.0, killed + p["outage"] - time.perf_counter()))
            other = [c for c in group.receivers if c.node == 1]
            early = sum(c.count for c in other)
        finally:
            back = await asyncio.to_thread(services.restart_redis)
        outage = back - killed
        await _wait_all(group, TIMEOUT)
        check = _check(group, total)
        if error := _verdict(check, group):
            raise RuntimeError(f"Redis outage: {error}")
        last = max(max(c.arrived) for c in other)
        first = min((t for c in other for t in c.arrived if t >= back), default=back)
        return OutagePhase(outage, last - back, first - back, early, total, check)
    finally:
        group.close()


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _round(
    n: int, workdir: Path, services: Services, p: dict[str, Any], pin: bool
) -> tuple[RatePhase, OutagePhase]:
    dsn = services.database(f"bench_latency_{n}")
    services.flush_redis()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = []
        for i in range(2):
            proc, port = _start_node(
                workdir / f"round{n}" / f"node{i}", dsn, services.redis_url, pin
            )
            procs.append(proc)
            ports.append(port)
        pids = [x.pid for x in procs]
        rate = asyncio.run(_rate_phase(ports, pids, p))
        outage = asyncio.run(_outage_phase(services, ports, p))
        return rate, outage
    finally:
        _stop(procs)


def run(args: argparse.Namespace) -> int:
    """``--only nodes-latency``: the table (the JSON report with ``--json``); the exit status."""
    p: dict[str, Any] = {
        "clients": args.nodes_clients or (20 if args.quick else 100),
        "senders": args.nodes_senders or (2 if args.quick else 10),
        "rate": args.nodes_rate or (200 if args.quick else 1000),
        "seconds": args.nodes_seconds or (2.0 if args.quick else 10.0),
        "outage": args.outage if args.outage is not None else (3.0 if args.quick else 30.0),
        "outage_rate": args.outage_rate or (50 if args.quick else 100),
    }
    for name, value in p.items():
        if value <= 0:
            print(f"--{name.replace('_', '-')} must be above 0 (it is {value})", file=sys.stderr)
            return 2
    rounds = args.repeat or 1
    pin = not args.no_pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    if pin:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {GEN_CPU})
    workdir = Path(tempfile.mkdtemp(prefix="bench-nodeslat-"))
    services = Services(workdir)
    rates: list[RatePhase] = []
    outages: list[OutagePhase] = []
    error = ""
    try:
        services.start()
        for n in range(rounds):
            rate, outage = _round(n, workdir, services, p, pin)
            rates.append(rate)
            outages.append(outage)
    except (OSError, RuntimeError, TimeoutError, subprocess.SubprocessError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        services.close()
        shutil.rmtree(workdir, ignore_errors=True)
    times = {w: [x for r in rates for x in r.latency_ms[w]] for w in ("same", "other")}
    latency = {w: {k: round(v, 2) for k, v in quantiles(t).items()} for w, t in times.items() if t}
    report: dict[str, Any] = {
        "scenario": "nodes-latency",
        **p,
        "rounds": rounds,
        "pinned": pin,
        "ok": not error,
        "error": error,
        "fixed_rate": {
            "latency_ms": latency,
            "ack_ms": {
                k: round(v, 2) for k, v in quantiles([x for r in rates for x in r.ack_ms]).items()
            },
            "node_cpu_us_per_delivery": _median([r.node_cpu_us for r in rates]),
            "generator_busy": _median([r.generator_busy for r in rates]),
            "sending_s": _median([r.seconds for r in rates]),
            "checks": [r.check for r in rates],
        },
        "outage": {
            "outage_s": _median([o.outage_s for o in outages]),
            "catch_up_s": _median([o.catch_up_s for o in outages]),
            "first_after_return_s": _median([o.first_s for o in outages]),
            "node_b_copies_during_outage": [o.during_outage for o in outages],
            "runs_catch_up_s": [round(o.catch_up_s, 3) for o in outages],
            "messages": outages[0].messages if outages else 0,
            "checks": [o.check for o in outages],
        },
    }
    lines = [
        f"nodes-latency: 2 nodes (PostgreSQL + Redis), {p['clients']} receivers (half on each),"
        f" {p['senders']} senders on node A; {rounds} round(s)"
    ]
    r, o = report["fixed_rate"], report["outage"]
    where = {"same": "same node", "other": "across nodes"}
    text = ", ".join(
        f"{where[w]} p50 {q['p50_ms']} ms p99 {q['p99_ms']} ms" for w, q in latency.items()
    )
    lines.append(
        f"  {p['rate']} msg/s for {p['seconds']:g} s: {text}; ack p50"
        f" {r['ack_ms']['p50_ms']} ms p99 {r['ack_ms']['p99_ms']} ms;"
        f" nodes {r['node_cpu_us_per_delivery']} µs/delivery; generator busy {r['generator_busy']}"
    )
    if outages:
        lost = sum(c["lost"] for c in o["checks"])
        dups = sum(c["duplicates"] for c in o["checks"])
        lines.append(
            f"  Redis down {o['outage_s']} s while node A took {o['messages']} messages"
            f" ({p['outage_rate']} msg/s): node B caught up {o['catch_up_s']} s after Redis"
            f" answered (first message after {o['first_after_return_s']} s); lost {lost},"
            f" duplicates {dups}"
        )
    if error:
        lines.append(f"  FAILED: {error}")
    table = "\n".join(lines)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(table)
    return 0 if not error else 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("several nodes, latency and Redis outage (--only nodes-latency)")
    g.add_argument("--nodes-senders", type=int, help="senders on node A (default 10; --quick 2)")
    g.add_argument("--nodes-rate", type=int, help="messages per second (default 1000; --quick 200)")
    g.add_argument(
        "--nodes-seconds",
        type=float,
        help="seconds of sending at that rate (default 10; --quick 2)",
    )
    g.add_argument("--outage", type=float, help="seconds Redis stays down (default 30; --quick 3)")
    g.add_argument(
        "--outage-rate",
        type=int,
        help="messages per second sent on node A while Redis is down (default 100; --quick 50)",
    )
