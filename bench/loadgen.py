"""The load generator: protocol v1 over raw sockets, run as its own process.

``python -m bench.loadgen SPEC_JSON`` runs one scenario against a server that
is already listening, and talks to the runner (``bench.runner``) over stdio in
JSON lines: it writes ``{"progress": …}``, ``{"barrier": NAME}`` (then waits for
a line on stdin, so the runner can sample the server's /proc at that point) and,
last, ``{"result": {…}}``. With ``"standalone": true`` in the spec, barriers do
not wait.

It never goes through chinwag's own code: asyncio Protocols on plain TCP
sockets, frames built as bytes, and on the hot path no JSON parsing at all. A
message body carries its sender and sequence number (``B<sender>.<seq>.``) and
is found with one regular expression per read; every delivery is still checked
(see `Reference`). Everything is bounded: a fixed count of messages and a
deadline on every wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import select
import socket
import struct
import sys
import time
from array import array
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

# The wall clock, because the kernel's receive timestamps (SO_TIMESTAMPNS) are in
# it; every use is a difference within this process.
perf = time.time
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # 35 on Linux

# Frames the servers send that the hot path must recognise without parsing.
BURST_TOKEN = re.compile(rb'"body":"B(\d+\.\d+)\.')
DM_TOKEN = re.compile(rb'"body":"D(\d+)\.(\d+)\.')
STORM_TOKEN = re.compile(rb'"body":"(R\d+|M\d+\.\d+)\.')
PAD = b"x" * 48  # bodies of ~60 characters: a typical chat line

_MAX_ERRORS = 20  # error descriptions kept (all are counted)
_TIMESPEC = struct.Struct("@qq")  # struct timespec, as SCM_TIMESTAMPNS gives it


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard one; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentiles(values: Iterable[float], scale: float = 1000.0) -> dict[str, float | None]:
    """p50/p99/max (and count) of ``values`` times ``scale`` (seconds → ms by default)."""
    data = sorted(values)
    n = len(data)
    if not n:
        return {"n": 0, "p50": None, "p99": None, "max": None}

    def at(q: float) -> float:
        return round(data[min(n - 1, int(q * n))] * scale, 3)

    return {"n": n, "p50": at(0.50), "p99": at(0.99), "max": round(data[-1] * scale, 3)}


# --------------------------------------------------------------------------- control


class Control:
    """The stdio channel to the runner."""

    def __init__(self, standalone: bool) -> None:
        self.standalone = standalone
        self._reader: asyncio.StreamReader | None = None
        self._last_progress = 0.0

    async def open(self) -> None:
        if self.standalone:
            return
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(sys.stdin.fileno(), "rb", 0)
        )
        self._reader = reader

    def emit(self, **event: Any) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    def due(self) -> bool:
        """Whether a progress line may be sent now (at most four a second)."""
        return time.monotonic() - self._last_progress >= 0.25

    def progress(self, text: str, force: bool = False) -> None:
        if force or self.due():
            self._last_progress = time.monotonic()
            self.emit(progress=text)

    async def barrier(self, name: str, timeout: float = 120.0) -> None:
        """Tell the runner we reached ``name``; wait until it says go."""
        self.emit(barrier=name, t=time.monotonic())
        if self._reader is None:
            return
        line = await asyncio.wait_for(self._reader.readline(), timeout)
        if not line:
            raise SystemExit("runner went away")


# --------------------------------------------------------------------------- connections


class Failure(Exception):
    """The server refused something it should not have (recorded in the result)."""


class Dispatcher:
    """Reads many raw sockets with one epoll of our own, registered once in the loop.

    asyncio's transports cost ~9 µs of generator CPU per read (one loop callback,
    one handle, one protocol call each); at 100k reads/s that alone saturates the
    generator and its queueing would show up as server latency. Here one loop
    callback drains every ready socket: ~3 µs per read.

    Reads go into one reused buffer (``recvmsg_into``): ``recvmsg(262144)``
    allocates 256 KiB per call, above glibc's mmap threshold, so every read
    cost an mmap, an mremap and a munmap with their page faults (16 µs per
    read instead of 3.2 in a micro-benchmark, ~0.4 of the generator's core at
    1,000 msg/s × 100 clients).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timestamps: bool = True) -> None:
        self.loop = loop
        self.timestamps = timestamps and sys.platform.startswith("linux")
        self.ep = select.epoll()
        self.conns: dict[int, Conn] = {}
        self._view = memoryview(bytearray(262144))  # every read lands here first
        loop.add_reader(self.ep.fileno(), self._ready)

    def add(self, sock: socket.socket, conn: Conn) -> None:
        fd = sock.fileno()
        if self.timestamps:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            except OSError:
                self.timestamps = False
        self.conns[fd] = conn
        self.ep.register(fd, select.EPOLLIN)

    def _ready(self) -> None:
        conns = self.conns
        timestamps = self.timestamps
        unpack = _TIMESPEC.unpack_from
        view = self._view
        buffers = (view,)
        for fd, _ in self.ep.poll(0, 1024):
            conn = conns.get(fd)
            if conn is None or conn.transport is None:
                continue
            sock = conn.transport.sock  # type: ignore[attr-defined]
            try:
                if timestamps:
                    size, anc, _, _ = sock.recvmsg_into(buffers, 64)
                    if anc:
                        sec, nsec = unpack(anc[0][2])
                        conn.rx_time = sec + nsec * 1e-9
                else:
                    size = sock.recv_into(view)
                data = view[:size].tobytes()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                self.drop(fd, conn, exc)
                continue
            if data:
                conn.data_received(data)
            else:
                self.drop(fd, conn, None)

    def pause(self, fd: int) -> None:
        if fd in self.conns:
            self.ep.modify(fd, 0)

    def resume(self, fd: int) -> None:
        if fd in self.conns:
            self.ep.modify(fd, select.EPOLLIN)

    def drop(self, fd: int, conn: Conn, exc: Exception | None) -> None:
        if self.conns.pop(fd, None) is None:
            return
        with contextlib.suppress(OSError):
            self.ep.unregister(fd)
        transport = conn.transport
        if isinstance(transport, RawTransport):
            transport.close_socket()
        conn.connection_lost(exc)

    def close(self) -> None:
        for fd, conn in list(self.conns.items()):
            self.drop(fd, conn, None)
        self.loop.remove_reader(self.ep.fileno())
        self.ep.close()


class RawTransport:
    """The part of asyncio.Transport that `Conn` uses, on a raw non-blocking socket."""

    def __init__(self, sock: socket.socket, dispatcher: Dispatcher) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.dispatcher = dispatcher
        self.pending = b""  # what the kernel did not take yet
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self.pending:
            self.pending += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return
        if sent < len(data):
            self.pending = data[sent:]
            self.dispatcher.loop.add_writer(self.fd, self._drain)

    def _drain(self) -> None:
        try:
            sent = self.sock.send(self.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            sent = len(self.pending)
        self.pending = self.pending[sent:]
        if not self.pending:
            self.dispatcher.loop.remove_writer(self.fd)

    def pause_reading(self) -> None:
        self.dispatcher.pause(self.fd)

    def resume_reading(self) -> None:
        self.dispatcher.resume(self.fd)

    def is_closing(self) -> bool:
        return self.closed

    def close_socket(self) -> None:
        if not self.closed:
            self.closed = True
            if self.pending:
                self.dispatcher.loop.remove_writer(self.fd)
            self.sock.close()

    def abort(self) -> None:
        conn = self.dispatcher.conns.get(self.fd)
        if conn is not None:
            self.dispatcher.drop(self.fd, conn, None)
        else:
            self.close_socket()


class Conn(asyncio.Protocol):
    """One client connection. Subclasses give ``feed`` (complete lines, after login).

    With ``raw = True`` it runs on a `RawTransport` read by the generator's
    `Dispatcher` instead of an asyncio transport (same methods, less overhead).
    """

    relaxed_pause = 0.0  # > 0: "relaxed" reader, pauses this long after each read
    raw = False

    def __init__(self, gen: Generator, idx: int, nick: str) -> None:
        self.gen = gen
        self.idx = idx
        self.nick = nick
        self.transport: asyncio.Transport | None = None
        self.tail = b""
        self.logged_in = False
        self.login_future: asyncio.Future[None] = gen.loop.create_future()
        self.t_hello = 0.0
        self.t_login = 0.0
        self.closed = False
        self.welcome: dict[str, Any] | None = None
        self.caught_up: dict[str, Any] | None = None
        self.pongs = 0
        self.rx_time = 0.0  # kernel receive time of the last read (raw sockets)
        self.read_at = 0.0  # when we read it

    # -- asyncio.Protocol
    def data_received(self, data: bytes) -> None:
        if self.tail:
            data = self.tail + data
        end = data.rfind(b"\n") + 1
        if end != len(data):
            self.tail = data[end:]
            data = data[:end]
        elif self.tail:
            self.tail = b""
        if data:
            now = self.read_at = perf()
            if self.rx_time:
                # When the bytes reached our socket, not when we got round to reading
                # them: our own queueing is not the server's latency.
                now, self.rx_time = min(self.rx_time, now), 0.0
            if self.logged_in:
                self.feed(data, now)
            else:
                self._feed_login(data, now)
        pause = self.relaxed_pause
        if pause and self.transport is not None and not self.closed:
            self.transport.pause_reading()
            self.gen.loop.call_later(pause, self._resume)

    def _resume(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.resume_reading()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.login_future.done():
            self.login_future.set_exception(ConnectionError(f"{self.nick}: closed before login"))
        self.gen.lost(self, exc)

    # -- login
    def hello(self, **extra: Any) -> None:
        if extra:
            frame = {"type": "hello", "proto": 1, "nick": self.nick, **extra}
            line = json.dumps(frame, separators=(",", ":")).encode() + b"\n"
        else:
            line = b'{"type":"hello","proto":1,"nick":"%s"}\n' % self.nick.encode()
        self.t_hello = perf()
        self.write(line)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _feed_login(self, data: bytes, now: float) -> None:
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            if not line:
                continue
            if line.startswith(b'{"type":"welcome"'):
                self.welcome = {"type": "welcome"}  # not needed in full: skip the parse
                continue
            try:
                frame = json.loads(line)
            except ValueError:
                self.gen.error(f"{self.nick}: unreadable line before login: {line[:80]!r}")
                continue
            kind = frame.get("type")
            if kind == "welcome":
                self.welcome = frame
            elif kind == "caught_up":
                self.caught_up = frame
                self.t_login = now
                self.logged_in = True
                if not self.login_future.done():
                    self.login_future.set_result(None)
                rest = b"\n".join(lines[i + 1 :])
                if rest.strip():
                    self.feed(rest if rest.endswith(b"\n") else rest + b"\n", now)
                return
            elif kind == "message":
                self.on_backlog(frame, line)
            elif kind == "error":
                if not self.login_future.done():
                    self.login_future.set_exception(Failure(f"{self.nick}: hello refused: {frame}"))
            elif kind == "ping":
                self.write(b'{"type":"pong"}\n')

    def on_backlog(self, frame: dict[str, Any], line: bytes) -> None:
        self.gen.error(f"{self.nick}: unexpected backlog message {line[:100]!r}")

    # -- after login
    def feed(self, data: bytes, now: float) -> None:
        self.other_lines(data, None)

    def other_lines(self, data: bytes, token: re.Pattern[bytes] | None) -> None:
        """The slow path: every line that is not one of our messages, parsed."""
        for line in data.split(b"\n"):
            if not line or (token is not None and token.search(line)):
                continue
            try:
                frame = json.loads(line)
            except ValueError:
                self.gen.error(f"{self.nick}: unreadable line {line[:80]!r}")
                continue
            self.on_frame(frame)

    def on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind in ("presence", "typing"):
            return
        if kind == "ping":
            self.write(b'{"type":"pong"}\n')
        elif kind == "pong":
            self.pongs += 1
            self.gen.on_pong(self)
        elif kind == "ack":
            self.on_ack(frame)
        elif kind == "error":
            self.gen.error(f"{self.nick}: error {frame}")
        elif kind == "message":
            self.gen.error(f"{self.nick}: unexpected message {str(frame)[:120]}")
        elif kind == "bye":
            pass
        else:
            self.gen.error(f"{self.nick}: unexpected frame {str(frame)[:120]}")

    def on_ack(self, frame: dict[str, Any]) -> None:
        self.gen.error(f"{self.nick}: unexpected ack {frame}")

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Generator:
    """Shared state of one generator process."""

    def __init__(self, spec: dict[str, Any], control: Control) -> None:
        self.spec = spec
        self.loop = asyncio.get_running_loop()
        self.control = control
        self.host: str = spec.get("host", "127.0.0.1")
        self.port: int = int(spec["port"])
        self.errors: list[str] = []
        self.error_count = 0
        self.lost_count = 0
        self.expect_open = False  # after login: a lost connection is an error
        self._dispatcher: Dispatcher | None = None

    @property
    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(self.loop)
        return self._dispatcher

    async def open_raw(self, conn: Conn) -> None:
        """Connect ``conn`` on a raw socket read by the dispatcher."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await self.loop.sock_connect(sock, (self.host, self.port))
        except BaseException:
            sock.close()
            raise
        self.dispatcher.add(sock, conn)
        conn.connection_made(RawTransport(sock, self.dispatcher))  # type: ignore[arg-type]

    def error(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(text)

    def lost(self, conn: Conn, exc: Exception | None) -> None:
        if self.expect_open and conn.logged_in:
            self.lost_count += 1
            self.error(f"{conn.nick}: connection lost ({exc})")

    def on_pong(self, conn: Conn) -> None:
        pass

    async def until(
        self,
        futures: list[asyncio.Future[Any]],
        progress: Callable[[], int],
        timeout: float,
        stall: float,
    ) -> bool:
        """Wait until every future is done; True if they were. Give up after ``timeout``,
        or when ``progress()`` stood still for ``stall`` seconds (a lost copy would
        otherwise keep us waiting to the end)."""
        deadline = perf() + timeout
        last, since = progress(), perf()
        while True:
            pending = [f for f in futures if not f.done()]
            if not pending:
                return True
            now = perf()
            if now >= deadline:
                return False
            await asyncio.wait(pending, timeout=min(0.25, deadline - now))
            current = progress()
            if current != last:
                last, since = current, perf()
            elif perf() - since >= stall and any(not f.done() for f in futures):
                return False

    async def connect(
        self,
        conns: Sequence[Conn],
        window: int,
        timeout: float,
        hello: Callable[[Any], dict[str, Any]] | None = None,
        label: str = "login",
    ) -> float:
        """Connect and log in every conn, ``window`` at a time; return the seconds taken."""
        t0 = perf()
        it = iter(conns)
        done = 0
        failures: list[str] = []
        loop = self.loop
        host, port = self.host, self.port
        progress = self.control

        async def worker() -> None:
            nonlocal done
            for conn in it:
                try:
                    if conn.raw:
                        await self.open_raw(conn)
                    else:
                        await loop.create_connection(lambda c=conn: c, host, port)  # type: ignore[misc]
                    conn.hello(**(hello(conn) if hello else {}))
                    await conn.login_future
                except (OSError, ConnectionError, Failure) as exc:
                    failures.append(f"{conn.nick}: {type(exc).__name__}: {exc}")
                    conn.close()
                done += 1
                if progress.due():
                    progress.progress(f"{label} {done}/{len(conns)}")

        workers = [loop.create_task(worker()) for _ in range(max(1, min(window, len(conns))))]
        try:
            await asyncio.wait_for(asyncio.gather(*workers), timeout)
        except TimeoutError:
            failures.append(f"{len(conns) - done} logins not done within {timeout:g} s")
        for text in failures[:_MAX_ERRORS]:
            self.error(text)
        if failures:
            raise Failure(f"{len(failures)} of {len(conns)} logins failed: {failures[0]}")
        return perf() - t0


# --------------------------------------------------------------------------- burst / rate


class Reference:
    """Checks every delivery of a room scenario at the cost of one list comparison.

    All sessions in the room must receive the same messages in the same (id)
    order. The first receiver to reach a position validates the message there
    (its sender's next sequence number: no gap, no duplicate, order per sender)
    and appends it to ``tokens``; every other receiver compares its tokens with
    that slice. A receiver whose stream differs is checked on its own from then
    on (`Solo`), so a legitimate difference in interleaving is not called an
    error, and a real one is found and classified.
    """

    def __init__(self, senders: int, per_sender: int, receivers: int) -> None:
        self.senders = senders
        self.per_sender = per_sender
        self.total = senders * per_sender
        self.tokens: list[bytes] = []
        self.send_at: array[float] = array("d")  # send time of tokens[i]
        self.next_seq = [0] * senders
        self.send_t = [[0.0] * per_sender for _ in range(senders)]
        self.remaining = receivers
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def validate(self, tok: bytes) -> bool:
        try:
            s_raw, q_raw = tok.split(b".")
            s, q = int(s_raw), int(q_raw)
        except ValueError:
            return False
        if not (0 <= s < self.senders) or self.next_seq[s] != q:
            return False
        self.next_seq[s] = q + 1
        self.tokens.append(tok)
        self.send_at.append(self.send_t[s][q])
        return True


class Solo:
    """One receiver's own check, once it left the shared reference."""

    def __init__(self, ref: Reference, received: list[bytes]) -> None:
        self.ref = ref
        self.seen: set[bytes] = set(received)
        self.high = [-1] * ref.senders
        for tok in received:
            s, q = map(int, tok.split(b"."))
            self.high[s] = max(self.high[s], q)
        self.latencies: array[float] = array("d")
        self.pairs: list[tuple[float, float]] = []  # (sent, received)
        self.duplicates = 0
        self.reordered = 0
        self.unknown = 0

    def take(self, toks: list[bytes], now: float) -> None:
        ref = self.ref
        for tok in toks:
            try:
                s, q = map(int, tok.split(b"."))
                if not (0 <= s < ref.senders and 0 <= q < ref.per_sender):
                    raise ValueError
            except ValueError:
                self.unknown += 1
                continue
            if tok in self.seen:
                self.duplicates += 1
                continue
            self.seen.add(tok)
            if q < self.high[s]:
                self.reordered += 1
            else:
                self.high[s] = q
            self.latencies.append(now - ref.send_t[s][q])
            self.pairs.append((ref.send_t[s][q], now))


class RoomConn(Conn):
    """A member of the burst/rate room: a receiver, and for a few, a sender too."""

    raw = True

    def __init__(self, gen: RoomGenerator, idx: int) -> None:
        super().__init__(gen, idx, f"b{idx}")
        self.room = gen
        self.ref = gen.ref
        self.pos = 0  # tokens received (reference mode)
        self.rec_now: array[float] = array("d")  # per read: arrival time, position after it
        self.rec_end: array[int] = array("q")
        self.rec_read: array[float] = array("d")  # per read: when the generator read it
        self.solo: Solo | None = None
        self.finished = False
        # sender side
        self.sender = -1
        self.next_q = 0
        self.acked = 0
        self.last_ack_id = 0
        self.ack_lat: list[float] = []

    def feed(self, data: bytes, now: float) -> None:
        toks = BURST_TOKEN.findall(data)
        n = len(toks)
        if n:
            if self.solo is None:
                self._check(toks, n, now)
            else:
                self.solo.take(toks, now)
                self._count(len(self.solo.seen))
        if data.count(b"\n") != n:
            self.other_lines(data, BURST_TOKEN)

    def _check(self, toks: list[bytes], n: int, now: float) -> None:
        ref = self.ref
        tokens = ref.tokens
        pos = self.pos
        end = pos + n
        have = len(tokens) - pos
        if have >= n:
            ok = tokens[pos:end] == toks
        else:
            ok = have <= 0 or tokens[pos:] == toks[:have]
            if ok:
                validate = ref.validate
                for tok in toks[max(have, 0) :]:
                    if not validate(tok):
                        ok = False
                        break
        if not ok:
            self._go_solo(toks, now)
            return
        self.pos = end
        self.rec_now.append(now)
        self.rec_end.append(end)
        self.rec_read.append(self.read_at)
        self._count(end)

    def _go_solo(self, toks: list[bytes], now: float) -> None:
        self.solo = Solo(self.ref, self.ref.tokens[: self.pos])
        self.solo.take(toks, now)
        self._count(len(self.solo.seen))

    def _count(self, received: int) -> None:
        if received >= self.ref.total and not self.finished:
            self.finished = True
            ref = self.ref
            ref.remaining -= 1
            if ref.remaining == 0 and not ref.done.done():
                ref.done.set_result(perf())

    # -- sending
    def say(self) -> None:
        s, q = self.sender, self.next_q
        self.next_q = q + 1
        line = b'{"type":"say","room":"lobby","cid":"c%d","body":"B%d.%d.%s"}\n' % (q, s, q, PAD)
        self.ref.send_t[s][q] = perf()
        self.write(line)

    def on_ack(self, frame: dict[str, Any]) -> None:
        cid = frame.get("cid", "")
        msg_id = frame.get("id", 0)
        if cid != f"c{self.acked}" or not isinstance(msg_id, int) or msg_id <= self.last_ack_id:
            self.gen.error(f"{self.nick}: ack out of order: {frame} after id {self.last_ack_id}")
        self.last_ack_id = msg_id if isinstance(msg_id, int) else self.last_ack_id
        if self.sender >= 0 and self.acked < self.ref.per_sender:
            self.ack_lat.append(perf() - self.ref.send_t[self.sender][self.acked])
        self.acked += 1
        self.room.on_ack(self)

    def latencies(self) -> Iterable[float]:
        if self.solo is not None:
            # Reference-mode reads before the switch, then the solo ones.
            yield from self._ref_latencies()
            yield from self.solo.latencies
        else:
            yield from self._ref_latencies()

    def deliveries(self) -> Iterable[tuple[float, float]]:
        """(sent, received) wall-clock times of every copy this member got."""
        send_at = self.ref.send_at
        prev = 0
        for now, end in zip(self.rec_now, self.rec_end, strict=True):
            for t in send_at[prev:end]:
                yield t, now
            prev = end
        if self.solo is not None:
            yield from self.solo.pairs

    def _ref_latencies(self, read: bool = False) -> Iterable[float]:
        send_at = self.ref.send_at
        prev = 0
        times = self.rec_read if read else self.rec_now
        for now, end in zip(times, self.rec_end, strict=True):
            for t in send_at[prev:end]:
                yield now - t
            prev = end

    def read_latencies(self) -> Iterable[float]:
        """Send → the generator read it (reference-mode reads only)."""
        return self._ref_latencies(read=True)


class RoomGenerator(Generator):
    """Scenario 1 (burst: as fast as acks allow) and 2 (rate: paced, open loop)."""

    def __init__(self, spec: dict[str, Any], control: Control) -> None:
        super().__init__(spec, control)
        p = spec["params"]
        self.n = int(p["clients"])
        self.senders = min(int(p["senders"]), self.n)
        self.per_sender = int(p["messages"])
        self.window = int(p.get("window", 8))
        self.rate = float(p.get("rate", 0))  # msg/s in; 0: burst
        self.ref = Reference(self.senders, self.per_sender, self.n)
        self.acks_left = self.senders * self.per_sender
        self.acks_done: asyncio.Future[float] = self.loop.create_future()
        self.conns: list[RoomConn] = []

    def on_ack(self, conn: RoomConn) -> None:
        self.acks_left -= 1
        if self.acks_left == 0 and not self.acks_done.done():
            self.acks_done.set_result(perf())
        if not self.rate and conn.next_q < self.per_sender:
            conn.say()

    async def run(self) -> dict[str, Any]:
        p = self.spec["params"]
        relaxed = p.get("readers", "eager") == "relaxed"
        self.conns = [RoomConn(self, i) for i in range(self.n)]
        await self.connect(self.conns, int(p.get("connect_window", 200)), float(p["timeout"]))
        self.expect_open = True
        if relaxed:
            for c in self.conns:
                c.relaxed_pause = float(p.get("relaxed_pause", 0.002))
        # Senders are spread over the room (every n/S-th member).
        step = self.n // self.senders
        senders = [self.conns[i * step] for i in range(self.senders)]
        for s, conn in enumerate(senders):
            conn.sender = s
        await asyncio.sleep(0.2)  # let presence traffic of the logins settle
        await self.control.barrier("start")
        cpu0 = _self_cpu()
        t0 = perf()
        if self.rate:
            pacer = self.loop.create_task(self._pace(senders, t0))
        else:
            for conn in senders:
                for _ in range(min(self.window, self.per_sender)):
                    conn.say()
        timeout = float(p["timeout"])
        watch = self.loop.create_task(self._watch(t0))
        complete = await self.until(
            [self.ref.done, self.acks_done], self._progress, timeout, float(p.get("stall", 5.0))
        )
        watch.cancel()
        if self.rate:
            pacer.cancel()
        t_end = self.ref.done.result() if self.ref.done.done() else perf()
        cpu1 = _self_cpu()
        await self.control.barrier("end")
        self.expect_open = False
        for c in self.conns:
            c.close()
        if self._dispatcher is not None:
            self._dispatcher.close()
        return self._report(t0, t_end, cpu1 - cpu0, complete, senders)

    async def _pace(self, senders: list[RoomConn], t0: float) -> None:
        total = self.senders * self.per_sender
        i = 0
        s_count = self.senders
        while i < total:
            due = min(total, int((perf() - t0) * self.rate) + 1)
            while i < due:
                senders[i % s_count].say()
                i += 1
            await asyncio.sleep(max(0.0, t0 + i / self.rate - perf()))

    def _progress(self) -> int:
        got = sum(c.pos if c.solo is None else len(c.solo.seen) for c in self.conns)
        return got + self.ref.total - self.acks_left

    async def _watch(self, t0: float) -> None:
        total = self.ref.total * self.n
        while True:
            await asyncio.sleep(0.25)
            got = sum(c.pos if c.solo is None else len(c.solo.seen) for c in self.conns)
            self.control.progress(f"delivered {got:,}/{total:,} ({perf() - t0:.1f} s)")

    def _report(
        self, t0: float, t_end: float, gen_cpu: float, complete: bool, senders: list[RoomConn]
    ) -> dict[str, Any]:
        ref = self.ref
        expected = ref.total * self.n
        delivered = duplicates = reordered = unknown = solo = 0
        missing = 0
        lat = array("d")
        read_lat = array("d")
        for c in self.conns:
            read_lat.extend(c.read_latencies())
            if c.solo is None:
                got = c.pos
            else:
                solo += 1
                got = len(c.solo.seen)
                duplicates += c.solo.duplicates
                reordered += c.solo.reordered
                unknown += c.solo.unknown
            delivered += got
            missing += ref.total - got
            lat.extend(c.latencies())
        ack_lat = [x for c in senders for x in c.ack_lat]
        acks = sum(c.acked for c in senders)
        # The slowest copies (above the p99), with their times, so that the
        # runner can line them up with the server's fsyncs of the same run.
        lat_ms = percentiles(lat)
        p99 = lat_ms["p99"]
        slow: list[tuple[float, float]] = []
        if self.rate and p99 is not None:
            slow = [
                (t, now) for c in self.conns for t, now in c.deliveries() if (now - t) * 1000 > p99
            ]
        elapsed = max(t_end - t0, 1e-9)
        verified = (
            complete
            and delivered == expected
            and missing == 0
            and duplicates == 0
            and reordered == 0
            and unknown == 0
            and self.error_count == 0
            and acks == ref.total
        )
        return {
            "clients": self.n,
            "senders": self.senders,
            "messages": ref.total,
            "expected_deliveries": expected,
            "deliveries": delivered,
            "acks": acks,
            "elapsed_s": round(elapsed, 4),
            "deliveries_per_s": round(delivered / elapsed, 1),
            "messages_per_s": round(acks / elapsed, 1),
            "latency_ms": lat_ms,
            "latency_clock": "kernel receive timestamp"
            if self._dispatcher is not None and self._dispatcher.timestamps
            else "generator read",
            "read_latency_ms": percentiles(read_lat),
            "ack_latency_ms": percentiles(ack_lat),
            "generator_cpu_s": round(gen_cpu, 3),
            "generator_busy": round(gen_cpu / elapsed, 3),
            "window": self.window,
            "t0_wall": t0,
            "t_end_wall": t_end,
            "slow_deliveries": slow,
            "check": {
                "verified": verified,
                "complete": complete,
                "missing": missing,
                "duplicates": duplicates,
                "reordered": reordered,
                "unknown": unknown,
                "receivers_checked_alone": solo,
                "errors": self.error_count,
                "lost_connections": self.lost_count,
                "first_errors": self.errors,
            },
        }


# --------------------------------------------------------------------------- idle


class IdleGenerator(Generator):
    """Scenario 3: N logged-in idle connections; connect time, memory, all alive after a hold."""

    def __init__(self, spec: dict[str, Any], control: Control) -> None:
        super().__init__(spec, control)
        self.pong_left = 0
        self.pongs_done: asyncio.Future[None] = self.loop.create_future()

    def on_pong(self, conn: Conn) -> None:
        if conn.pongs == 1:
            self.pong_left -= 1
            if self.pong_left == 0 and not self.pongs_done.done():
                self.pongs_done.set_result(None)

    async def run(self) -> dict[str, Any]:
        p = self.spec["params"]
        part = int(self.spec.get("part", 0))
        n = int(p["clients"])
        conns = [Conn(self, i, f"i{part}x{i}") for i in range(n)]
        await self.control.barrier("connect")
        t0 = time.monotonic()
        cpu0 = _self_cpu()
        failed = ""
        try:
            took = await self.connect(conns, int(p.get("connect_window", 500)), float(p["timeout"]))
        except Failure as exc:
            failed = str(exc)
            took = -1.0
        t_connected = time.monotonic()
        gen_cpu = _self_cpu() - cpu0
        self.expect_open = True
        logins = [c.t_login - c.t_hello for c in conns if c.logged_in]
        await self.control.barrier("connected")
        await asyncio.sleep(float(p["hold"]))
        await self.control.barrier("held")
        live = [c for c in conns if c.logged_in and not c.closed]
        self.pong_left = len(live)
        for c in live:
            c.write(b'{"type":"ping","ref":"alive"}\n')
        if live:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.pongs_done, float(p.get("ping_timeout", 20)))
        alive = sum(1 for c in conns if c.pongs > 0 and not c.closed)
        await self.control.barrier("checked")
        self.expect_open = False
        for c in conns:
            c.close()
        verified = not failed and alive == n and self.error_count == 0
        return {
            "clients": n,
            "logged_in": len(logins),
            "alive_after_hold": alive,
            "connect_s": round(took, 3) if took >= 0 else None,
            "t_start": t0,
            "t_connected": t_connected,
            "login_ms": percentiles(logins),
            "generator_cpu_s": round(gen_cpu, 3),
            "generator_busy": round(gen_cpu / max(t_connected - t0, 1e-9), 3),
            "check": {
                "verified": verified,
                "errors": self.error_count,
                "lost_connections": self.lost_count,
                "first_errors": self.errors or ([failed] if failed else []),
            },
        }


# --------------------------------------------------------------------------- DM storm


class DmConn(Conn):
    def __init__(self, gen: DmGenerator, idx: int) -> None:
        super().__init__(gen, idx, f"d{idx}")
        self.dm = gen
        self.partner = idx ^ 1
        self.partner_nick = f"d{self.partner}"
        self.next_q = 0
        self.acked = 0
        self.last_ack_id = 0
        self.exp_own = 0
        self.exp_partner = 0
        self.bad = 0
        self.send_t = [0.0] * gen.per_sender
        self.ack_lat: list[float] = []
        self.lat: array[float] = array("d")
        self.finished = False

    def send(self) -> None:
        q = self.next_q
        self.next_q = q + 1
        line = b'{"type":"dm","to":"%s","cid":"c%d","body":"D%d.%d.%s"}\n' % (
            self.partner_nick.encode(),
            q,
            self.idx,
            q,
            PAD,
        )
        self.send_t[q] = perf()
        self.write(line)

    def feed(self, data: bytes, now: float) -> None:
        found = DM_TOKEN.findall(data)
        conns = self.dm.conns
        for s_raw, q_raw in found:
            s, q = int(s_raw), int(q_raw)
            if s == self.idx:
                if q != self.exp_own:
                    self.bad += 1
                    self.gen.error(f"{self.nick}: own copy {q}, expected {self.exp_own}")
                self.exp_own = max(self.exp_own, q + 1)
            elif s == self.partner:
                if q != self.exp_partner:
                    self.bad += 1
                    self.gen.error(f"{self.nick}: from partner {q}, expected {self.exp_partner}")
                self.exp_partner = max(self.exp_partner, q + 1)
            else:
                self.bad += 1
                self.gen.error(f"{self.nick}: got a DM of d{s}, not meant for it")
                continue
            if 0 <= q < self.dm.per_sender:
                self.lat.append(now - conns[s].send_t[q])
        if data.count(b"\n") != len(found):
            self.other_lines(data, DM_TOKEN)
        self._maybe_done()

    def on_ack(self, frame: dict[str, Any]) -> None:
        msg_id = frame.get("id", 0)
        if frame.get("cid") != f"c{self.acked}" or not isinstance(msg_id, int):
            self.gen.error(f"{self.nick}: ack out of order: {frame}")
        elif msg_id <= self.last_ack_id:
            self.gen.error(f"{self.nick}: ack ids not increasing: {frame}")
        else:
            self.last_ack_id = msg_id
        if self.acked < self.dm.per_sender:
            self.ack_lat.append(perf() - self.send_t[self.acked])
        self.acked += 1
        self.dm.on_ack()
        if self.next_q < self.dm.per_sender:
            self.send()
        self._maybe_done()

    def _maybe_done(self) -> None:
        m = self.dm.per_sender
        if not self.finished and self.exp_own >= m and self.exp_partner >= m and self.acked >= m:
            self.finished = True
            self.dm.conn_done()


class DmGenerator(Generator):
    """Scenario 4: pairs of clients exchanging DMs; durable acks per second."""

    def __init__(self, spec: dict[str, Any], control: Control) -> None:
        super().__init__(spec, control)
        p = spec["params"]
        self.pairs = int(p["pairs"])
        self.per_sender = int(p["messages"])
        self.window = int(p.get("window", 4))
        self.conns: list[DmConn] = []
        self.acks = 0
        self.t_last_ack = 0.0
        self.left = 0
        self.done: asyncio.Future[float] = self.loop.create_future()

    def on_ack(self) -> None:
        self.acks += 1
        self.t_last_ack = perf()

    def conn_done(self) -> None:
        self.left -= 1
        if self.left == 0 and not self.done.done():
            self.done.set_result(perf())

    async def run(self) -> dict[str, Any]:
        p = self.spec["params"]
        self.conns = [DmConn(self, i) for i in range(2 * self.pairs)]
        self.left = len(self.conns)
        await self.connect(self.conns, int(p.get("connect_window", 200)), float(p["timeout"]))
        self.expect_open = True
        await asyncio.sleep(0.2)
        await self.control.barrier("start")
        cpu0 = _self_cpu()
        t0 = perf()
        for c in self.conns:
            for _ in range(min(self.window, self.per_sender)):
                c.send()
        total = len(self.conns) * self.per_sender

        async def watch() -> None:
            while True:
                await asyncio.sleep(0.25)
                self.control.progress(f"acks {self.acks:,}/{total:,}")

        def progress() -> int:
            return self.acks + sum(c.exp_own + c.exp_partner for c in self.conns)

        watcher = self.loop.create_task(watch())
        complete = await self.until(
            [self.done], progress, float(p["timeout"]), float(p.get("stall", 5.0))
        )
        watcher.cancel()
        t_end = self.done.result() if self.done.done() else perf()
        cpu1 = _self_cpu()
        await self.control.barrier("end")
        self.expect_open = False
        for c in self.conns:
            c.close()
        m = self.per_sender
        delivered = sum(min(c.exp_own, m) + min(c.exp_partner, m) for c in self.conns)
        missing = sum(2 * m - min(c.exp_own, m) - min(c.exp_partner, m) for c in self.conns)
        bad = sum(c.bad for c in self.conns)
        ack_elapsed = max(self.t_last_ack - t0, 1e-9)
        lat = array("d")
        for c in self.conns:
            lat.extend(c.lat)
        verified = complete and missing == 0 and bad == 0 and self.error_count == 0
        return {
            "pairs": self.pairs,
            "clients": len(self.conns),
            "dms": total,
            "acks": self.acks,
            "deliveries": delivered,
            "elapsed_s": round(t_end - t0, 4),
            "acks_per_s": round(self.acks / ack_elapsed, 1),
            "ack_latency_ms": percentiles(x for c in self.conns for x in c.ack_lat),
            "latency_ms": percentiles(lat),
            "generator_cpu_s": round(cpu1 - cpu0, 3),
            "generator_busy": round((cpu1 - cpu0) / max(t_end - t0, 1e-9), 3),
            "check": {
                "verified": verified,
                "complete": complete,
                "missing": missing,
                "bad": bad,
                "errors": self.error_count,
                "lost_connections": self.lost_count,
                "first_errors": self.errors,
            },
        }


# --------------------------------------------------------------------------- reconnect storm


class StormConn(Conn):
    """An account logging in with a backlog waiting: checks the replay, in order."""

    def __init__(self, gen: StormGenerator, idx: int) -> None:
        super().__init__(gen, idx, f"r{idx}")
        self.storm = gen
        self.got: list[bytes] = []
        self.last_id = 0
        self.bad = 0

    def on_backlog(self, frame: dict[str, Any], line: bytes) -> None:
        m = STORM_TOKEN.search(line)
        msg_id = frame.get("id")
        if m is None or frame.get("replay") is not True or not isinstance(msg_id, int):
            self.bad += 1
            self.gen.error(f"{self.nick}: bad backlog frame {line[:120]!r}")
            return
        if msg_id <= self.last_id:
            self.bad += 1
            self.gen.error(
                f"{self.nick}: backlog ids not increasing ({msg_id} after {self.last_id})"
            )
        self.last_id = msg_id
        self.got.append(m.group(1))


class PosterConn(Conn):
    """The guest that fills the backlogs before the storm (not measured)."""

    def __init__(self, gen: Generator) -> None:
        super().__init__(gen, -1, "poster")
        self.queue: list[bytes] = []
        self.next = 0
        self.acked = 0
        self.window = 16
        self.done: asyncio.Future[None] = gen.loop.create_future()

    def start(self) -> None:
        for _ in range(min(self.window, len(self.queue))):
            self._send()

    def _send(self) -> None:
        self.write(self.queue[self.next])
        self.next += 1

    def feed(self, data: bytes, now: float) -> None:
        self.other_lines(data, STORM_TOKEN)

    def on_ack(self, frame: dict[str, Any]) -> None:
        self.acked += 1
        if self.next < len(self.queue):
            self._send()
        if self.acked == len(self.queue) and not self.done.done():
            self.done.set_result(None)
        if self.acked % 200 == 0:
            self.gen.control.progress(f"backlog posted {self.acked}/{len(self.queue)}")


class StormGenerator(Generator):
    """Scenario 5: accounts log in at once, each with a backlog waiting."""

    async def run(self) -> dict[str, Any]:
        p = self.spec["params"]
        n = int(p["accounts"])
        room_msgs = int(p["room_backlog"])
        dms = int(p["dm_backlog"])
        password = str(p["password"])
        timeout = float(p["timeout"])
        # Fill the backlogs through the protocol, as a guest.
        poster = PosterConn(self)
        await self.connect([poster], 1, timeout, label="poster")
        for q in range(room_msgs):
            poster.queue.append(
                b'{"type":"say","room":"lobby","cid":"r%d","body":"R%d.%s"}\n' % (q, q, PAD)
            )
        for q in range(dms):
            for a in range(n):
                poster.queue.append(
                    b'{"type":"dm","to":"r%d","cid":"m%d.%d","body":"M%d.%d.%s"}\n'
                    % (a, a, q, a, q, PAD)
                )
        poster.start()
        await asyncio.wait_for(poster.done, timeout)
        poster.close()
        await asyncio.sleep(0.3)
        expected_room = [b"R%d" % q for q in range(room_msgs)]
        conns = [StormConn(self, i) for i in range(n)]
        await self.control.barrier("start")
        cpu0 = _self_cpu()
        t0 = perf()
        failed = ""
        try:
            await self.connect(
                conns,
                int(p.get("connect_window", n)),
                timeout,
                hello=lambda c: {"password": password, "device": "bench"},
            )
        except Failure as exc:
            failed = str(exc)
        t_end = max((c.t_login for c in conns if c.logged_in), default=perf())
        cpu1 = _self_cpu()
        await self.control.barrier("end")
        for c in conns:
            c.close()
        replayed = wrong = 0
        for c in conns:
            expected = expected_room + [b"M%d.%d" % (c.idx, q) for q in range(dms)]
            replayed += len(c.got)
            missed = (c.caught_up or {}).get("missed")
            if c.logged_in and (c.got != expected or missed != len(expected)):
                wrong += 1
                self.error(
                    f"{c.nick}: backlog of {len(c.got)} (missed={missed}), expected {len(expected)}"
                )
        logged_in = sum(1 for c in conns if c.logged_in)
        elapsed = max(t_end - t0, 1e-9)
        verified = not failed and logged_in == n and wrong == 0 and self.error_count == 0
        return {
            "accounts": n,
            "logged_in": logged_in,
            "backlog_per_account": room_msgs + dms,
            "replayed": replayed,
            "elapsed_s": round(elapsed, 3),
            "logins_per_s": round(logged_in / elapsed, 1),
            "replayed_per_s": round(replayed / elapsed, 1),
            "login_ms": percentiles(c.t_login - c.t_hello for c in conns if c.logged_in),
            "generator_cpu_s": round(cpu1 - cpu0, 3),
            "check": {
                "verified": verified,
                "wrong_backlogs": wrong,
                "errors": self.error_count,
                "first_errors": self.errors or ([failed] if failed else []),
            },
        }


# --------------------------------------------------------------------------- main


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


SCENARIOS: dict[str, Callable[[dict[str, Any], Control], Generator]] = {
    "burst": RoomGenerator,
    "rate": RoomGenerator,
    "idle": IdleGenerator,
    "dm": DmGenerator,
    "reconnect": StormGenerator,
}


async def amain(spec: dict[str, Any]) -> dict[str, Any]:
    control = Control(bool(spec.get("standalone")))
    await control.open()
    gen = SCENARIOS[spec["scenario"]](spec, control)
    runner: Callable[[], Awaitable[dict[str, Any]]] = gen.run  # type: ignore[attr-defined]
    try:
        result = await runner()
    except Failure as exc:
        gen.error(str(exc))
        result = {
            "check": {"verified": False, "errors": gen.error_count, "first_errors": gen.errors}
        }
    result["loop"] = type(asyncio.get_running_loop()).__module__.split(".")[0]
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0] if args else sys.stdin.readline())
    raise_nofile()
    cpu = spec.get("cpu")
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu)})
    try:
        import uvloop  # type: ignore[import-not-found]

        run: Callable[..., Any] = uvloop.run
    except ImportError:
        run = asyncio.run
    result = run(amain(spec))
    sys.stdout.write(json.dumps({"result": result}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
