"""Several nodes (issue 13): a burst on SQLite, on PostgreSQL, and on two PostgreSQL nodes.

``python -m bench --only nodes`` starts a throwaway PostgreSQL cluster
(``initdb`` in a temp dir, a free loopback port, never 5432) and a
``redis-server`` (a free port, never 6379), then alternates three set-ups in
rounds, each with fresh chinwag nodes pinned to core 0:

- ``sqlite``: one node on SQLite (the embedded default);
- ``postgres``: one node on PostgreSQL, the local bus;
- ``postgres x2``: two nodes on PostgreSQL and Redis, the receivers split
  between them, the sender on the first (so half the deliveries cross nodes).

In this process (core 1) ``clients`` receivers log in, one sender posts
``messages`` messages to the lobby with ``window`` unacked at a time, and the
phase ends when every receiver has every message. Reported per set-up (medians
of the rounds): the chinwag nodes' CPU µs per delivery (all their threads, from
/proc), PostgreSQL's and Redis's CPU per delivery beside it, and the latency
from sending a message to each receiver's getting it (p50, p99), split by
receivers on the sender's node and on the other one. Everything runs on one
machine: the database and Redis share its cores with the nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procstat
from bench.floor import quantiles
from bench.runner import CHINWAG_SETTINGS, GEN_CPU, REPO, SERVER_CPU, _env, _pinned

_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
TIMEOUT = 120.0
SETUPS = ("sqlite", "postgres", "postgres x2")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError(f"{name} is not installed (apt-get install postgresql)")
    return found


class Services:
    """A private PostgreSQL cluster and redis-server for the run (stopped by `close`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []
        # PostgreSQL refuses to run as root: then as the postgres user.
        self.user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self.user is not None:
            os.chmod(root, 0o755)  # the postgres user makes its cluster inside
        self.pg_port, self.redis_port = _free_port(), _free_port()

    def _as(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def start(self) -> None:
        pg = self.root / "pg"
        pg.mkdir()
        if self.user is not None:
            os.chown(pg, self.user.pw_uid, self.user.pw_gid)
        subprocess.run(
            [_pg_bin("initdb"), "-D", str(pg / "data"), "-U", "chinwag", "--auth=trust"],
            capture_output=True, check=True, timeout=120, **self._as(),
        )  # fmt: skip
        log = (pg / "log").open("ab")
        # fsync stays on: the ack waits for the commit, as on a real server.
        self.procs.append(subprocess.Popen(
            [_pg_bin("postgres"), "-D", str(pg / "data"), "-p", str(self.pg_port), "-k", str(pg),
             "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, **self._as(),
        ))  # fmt: skip
        log.close()
        self.procs.append(self._redis())
        deadline = time.monotonic() + 60
        while not self._pg_ready():
            if time.monotonic() > deadline or self.procs[0].poll() is not None:
                raise RuntimeError("PostgreSQL did not start: " + (pg / "log").read_text()[-2000:])
            time.sleep(0.1)

    def _redis(self) -> subprocess.Popen[bytes]:
        redis = shutil.which("redis-server")
        if redis is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        with (self.root / "pg" / "log").open("ab") as log:
            return subprocess.Popen(
                [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.root)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def kill_redis(self) -> None:
        """An outage: redis-server killed with SIGKILL (it keeps nothing: no persistence)."""
        self.procs[1].kill()
        self.procs[1].wait(timeout=10)

    def restart_redis(self, timeout: float = 30.0) -> float:
        """redis-server again on the same port, empty; when it answered (perf_counter)."""
        self.procs[1] = self._redis()
        deadline = time.monotonic() + timeout
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return time.perf_counter()
            if time.monotonic() > deadline or self.procs[1].poll() is not None:
                raise RuntimeError(f"redis-server did not come back on port {self.redis_port}")
            time.sleep(0.005)

    def _pg_ready(self) -> bool:
        out = subprocess.run(
            [_pg_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.pg_port)],
            capture_output=True, timeout=10, check=False,
        )  # fmt: skip
        return out.returncode == 0

    def database(self, name: str) -> str:
        """A new empty database; its URL."""
        subprocess.run(
            [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "chinwag",
             name],
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        return f"postgresql://chinwag@127.0.0.1:{self.pg_port}/{name}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def flush_redis(self) -> None:
        with socket.create_connection(("127.0.0.1", self.redis_port), timeout=5) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            sock.recv(64)

    def cpu(self) -> dict[int, float]:
        """CPU seconds of PostgreSQL (the postmaster and every backend) and Redis, by pid."""
        pids = [p.pid for p in self.procs]
        postmaster = self.procs[0].pid
        with (
            contextlib.suppress(OSError),
            open(f"/proc/{postmaster}/task/{postmaster}/children") as f,
        ):
            pids += [int(x) for x in f.read().split()]
        out = {}
        for pid in pids:
            with contextlib.suppress(OSError, ValueError):
                out[pid] = procstat.cpu_seconds_precise(pid)
        return out

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def _start_node(
    workdir: Path, store: str, bus: str, pin: bool
) -> tuple[subprocess.Popen[bytes], int]:
    workdir.mkdir(parents=True)
    args = [sys.executable, "-m", "chinwag", "serve", "--data", str(workdir), "--no-announce"]
    args += ["--listen", "tcp://127.0.0.1:0", "--store", store, "--bus", bus]
    for name, value in CHINWAG_SETTINGS.items():
        args += ["--set", f"{name}={value}"]
    log_path = workdir / "server.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO, env=_env(),
            preexec_fn=_pinned(SERVER_CPU if pin else None),
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if m := _LISTENING.search(text):
            return proc, int(m.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"chinwag exited early:\n{text[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("chinwag did not start in 60 s")


class Client(asyncio.Protocol):
    """A logged-in client: counts messages, notes when each arrived, and acks."""

    def __init__(self, nick: str, node: int) -> None:
        self.nick, self.node = nick, node
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.arrived: dict[int, float] = {}  # message number -> when
        self.target = 0
        self.done: asyncio.Future[None] = loop.create_future()
        self.acks: asyncio.Queue[None] = asyncio.Queue()
        self.closing = False  # closed by us: the futures need no error

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.send({"type": "hello", "proto": 1, "nick": self.nick})

    def send(self, frame: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(json.dumps(frame).encode() + b"\n")

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for line in lines:
            if line.startswith(b'{"type":"message"'):
                number = int(json.loads(line)["body"].split(" ", 2)[1])
                self.arrived[number] = now
                if len(self.arrived) >= self.target > 0 and not self.done.done():
                    self.done.set_result(None)
            elif line.startswith(b'{"type":"ack"'):
                self.acks.put_nowait(None)
            elif line.startswith(b'{"type":"caught_up"') and not self.ready.done():
                self.ready.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closing:
            return
        for fut in (self.ready, self.done):
            if not fut.done():
                fut.set_exception(ConnectionError(f"{self.nick}: connection lost"))


@dataclass
class Phase:
    setup: str
    cpu_us: float  # the nodes' CPU per delivery
    per_node_us: list[float]  # each node's CPU per delivery it made (its receivers')
    db_us: float  # PostgreSQL's and Redis's CPU per delivery
    seconds: float
    latency_ms: dict[str, list[float]] = field(default_factory=dict)  # "same"/"other" node


async def _phase(
    setup: str, ports: list[int], pids: list[int], services: Services, params: dict[str, int]
) -> Phase:
    loop = asyncio.get_running_loop()
    clients, messages, window = params["clients"], params["messages"], params["window"]
    receivers = [Client(f"r{i}", i % len(ports)) for i in range(clients)]
    sender = Client("sender", 0)
    for c in [*receivers, sender]:
        await loop.create_connection(lambda c=c: c, "127.0.0.1", ports[c.node])  # type: ignore[misc]
    await asyncio.wait_for(asyncio.gather(*(c.ready for c in [*receivers, sender])), TIMEOUT)
    await asyncio.sleep(1.0)  # the other node hears of everyone (presence settles)
    for c in receivers:
        c.target = messages
    sent: dict[int, float] = {}
    nodes_before = [procstat.cpu_seconds_precise(pid) for pid in pids]
    db_before = services.cpu()
    started = time.perf_counter()
    in_flight = 0
    for i in range(messages):
        if in_flight >= window:
            await sender.acks.get()
            in_flight -= 1
        sent[i] = time.perf_counter()
        sender.send({"type": "say", "room": "lobby", "body": f"m {i} " + "x" * 80})
        in_flight += 1
    await asyncio.wait_for(asyncio.gather(*(c.done for c in receivers)), TIMEOUT)
    seconds = time.perf_counter() - started
    nodes_after = [procstat.cpu_seconds_precise(pid) for pid in pids]
    db_after = services.cpu()
    deliveries = clients * messages
    db = sum(v - db_before.get(pid, 0.0) for pid, v in db_after.items()) if setup != "sqlite" else 0
    latency: dict[str, list[float]] = {"same": [], "other": []}
    for c in receivers:
        where = "same" if c.node == 0 else "other"
        latency[where] += [(t - sent[n]) * 1000 for n, t in c.arrived.items()]
    for c in [*receivers, sender]:
        c.closing = True
        if c.transport is not None:
            c.transport.close()
    spent = [after - before for before, after in zip(nodes_before, nodes_after, strict=True)]
    made = [sum(1 for c in receivers if c.node == i) * messages for i in range(len(ports))]
    return Phase(
        setup,
        sum(spent) / deliveries * 1e6,
        [round(cpu / n * 1e6, 3) for cpu, n in zip(spent, made, strict=True)],
        db / deliveries * 1e6,
        seconds,
        latency,
    )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _one(
    setup: str, n: int, workdir: Path, services: Services, params: dict[str, int], pin: bool
) -> Phase:
    root = workdir / f"{setup.replace(' ', '')}-{n}"
    if setup == "sqlite":
        stores, bus = ["sqlite"], "local"
    else:
        dsn = services.database(f"bench_{setup.replace(' ', '')}_{n}")
        count = 2 if setup == "postgres x2" else 1
        stores, bus = [dsn] * count, services.redis_url if count > 1 else "local"
        services.flush_redis()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = []
        for i, store in enumerate(stores):
            proc, port = _start_node(root / f"node{i}", store, bus, pin)
            procs.append(proc)
            ports.append(port)
        return asyncio.run(_phase(setup, ports, [p.pid for p in procs], services, params))
    finally:
        _stop(procs)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def run(args: argparse.Namespace) -> int:
    """``--only nodes``: the table (and the JSON report with ``--json``); the exit status."""
    params = {
        "clients": args.nodes_clients or (40 if args.quick else 500),
        "messages": args.nodes_messages or (20 if args.quick else 200),
        "window": args.window or 8,
    }
    rounds = args.repeat or (1 if args.quick else 3)
    pin = not args.no_pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    if pin:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {GEN_CPU})
    workdir = Path(tempfile.mkdtemp(prefix="bench-nodes-"))
    services = Services(workdir)
    phases: list[Phase] = []
    error = ""
    try:
        services.start()
        for n in range(rounds):
            for setup in SETUPS:
                phases.append(_one(setup, n, workdir, services, params, pin))
    except (OSError, RuntimeError, TimeoutError, subprocess.SubprocessError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        services.close()
        shutil.rmtree(workdir, ignore_errors=True)
    summary: dict[str, dict[str, Any]] = {}
    for setup in SETUPS:
        mine = [p for p in phases if p.setup == setup]
        times = {w: [x for p in mine for x in p.latency_ms.get(w, [])] for w in ("same", "other")}
        lat = {where: quantiles(t) for where, t in times.items() if t}
        summary[setup] = {
            "node_cpu_us_per_delivery": _median([p.cpu_us for p in mine]),
            "db_and_redis_cpu_us_per_delivery": _median([p.db_us for p in mine]),
            "seconds": _median([p.seconds for p in mine]),
            "runs_node_cpu_us": [round(p.cpu_us, 3) for p in mine],
            "runs_each_node_cpu_us": [p.per_node_us for p in mine],
            "latency_ms": {
                where: {k: round(v, 2) for k, v in q.items()} for where, q in lat.items()
            },
        }
    report: dict[str, Any] = {
        "scenario": "nodes",
        **params,
        "rounds": rounds,
        "pinned": pin,
        "ok": not error,
        "error": error,
        "setups": summary,
    }
    lines = [
        f"nodes: {params['clients']} receivers x {params['messages']} messages"
        f" (window {params['window']}), {rounds} round(s) per set-up"
    ]
    for setup, s in summary.items():
        lat = s["latency_ms"]
        text = ", ".join(
            f"{where} node p50 {q['p50_ms']} ms p99 {q['p99_ms']} ms" for where, q in lat.items()
        )
        lines.append(
            f"  {setup:12} nodes {s['node_cpu_us_per_delivery']} µs/delivery,"
            f" db+redis {s['db_and_redis_cpu_us_per_delivery']} µs/delivery,"
            f" {s['seconds']} s; {text}"
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
    g = p.add_argument_group("several nodes (--only nodes)")
    g.add_argument("--nodes-clients", type=int, help="receivers (default 500; --quick 40)")
    g.add_argument(
        "--nodes-messages", type=int, help="messages per phase (default 200; --quick 20)"
    )
