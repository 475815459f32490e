"""One JSON-lines connection: bytes in, commands to the hub, frames out.

Built on asyncio's Protocol/Transport API rather than streams: fan-out appends
rendered frames to a per-connection list, and one `Flusher` callback per event
loop turn writes each connection's frames with a single ``write``. Commands of
one connection are carried out in order by its worker task, so replies keep the
order of requests. Consecutive messages (``say``, and ``dm`` to someone online)
are pipelined: the worker starts up to `_PIPELINE` of them without waiting for
each commit (`Hub.pipeline`); the store commits them in order and their acks
go out in order; any other command, and any refusal, waits until they are done.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from typing import TYPE_CHECKING, Protocol, cast

from chinwag.core.hub import Frame, Session
from chinwag.errors import BadFrame, ChatError, NotLoggedIn
from chinwag.protocol.events import (
    Bye,
    Dm,
    Dropped,
    Error,
    Fatal,
    Hello,
    Incoming,
    Outgoing,
    Ping,
    Pong,
    Rejected,
    Say,
)
from chinwag.protocol.jsonlines import ServerCodec, render
from chinwag.server.listener import peer_key
from chinwag.storage.base import StoreError

if TYPE_CHECKING:
    from chinwag.config import Settings
    from chinwag.core.hub import Hub


class Host(Protocol):
    """What a connection needs of the server that accepted it (``server.app.Server``).

    A protocol, so that this module does not import the composition root that
    imports it.
    """

    settings: Settings
    loop: asyncio.AbstractEventLoop
    flusher: Flusher
    hub: Hub

    def admit(self, conn: Connection) -> bool:
        """Count the connection against the per-address cap; False: refuse it."""

    def forget(self, conn: Connection) -> None:
        """The connection has ended: uncount it."""


log = logging.getLogger("chinwag.conn")

_INBOX_HIGH = 64  # queued commands before we stop reading from the socket
_INBOX_LOW = 16
_PACED_HIGH = 256 * 1024  # transport buffer above which paced sends wait
_LINGER = 2.0  # seconds a closing connection waits for the peer's FIN
_PIPELINE = 32  # messages of one connection in flight (queued for commit) at once


_NOT_JSON = (
    "this port speaks the chinwag protocol: one JSON object per line, starting with"
    " hello (docs/protocol.md); use a chinwag client, or add --tls if the server speaks TLS"
)
_HTTP_REQUEST = re.compile(rb"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE|PRI) ")
_HTTP_BODY = (
    b"This is a chinwag chat server. Its port speaks the chinwag protocol (JSON lines),"
    b" not HTTP: connect with `chinwag chat HOST:PORT`, or another chinwag client.\n"
)
_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(_HTTP_BODY) + _HTTP_BODY
)


class Flusher:
    """Writes every dirty connection's queued frames once per loop turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[Connection] = []

    def mark(self, conn: Connection) -> None:
        if not self._dirty:
            self._loop.call_soon(self._flush)
        self._dirty.append(conn)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()


class Connection(asyncio.Protocol):
    """The transport side of one client connection; the hub's `Outlet`.

    An idle connection is cheap, since a server holds thousands: it has no task
    and no timer. Its worker task is started when frames arrive (or when the
    connection ends) and ends when the inbox is empty; the server's periodic
    `check_deadlines` sweep enforces the login deadline and the idle ping.
    """

    __slots__ = (
        "_bad_frames",
        "_born",
        "_closing",
        "_codec",
        "_eof",
        "_failed_hellos",
        "_finished",
        "_in_flight",
        "_in_flight_bytes",
        "_inbox",
        "_last_rx",
        "_logged_in",
        "_loop",
        "_marked",
        "_out",
        "_out_size",
        "_ping_sent_at",
        "_prelogin_frames",
        "_reading_paused",
        "_server",
        "_session",
        "_settings",
        "_settling",
        "_sniffed",
        "_stopping",
        "_task",
        "_transport",
        "_waiter",
        "_writable",
        "address",
        "close_reason",
    )

    def __init__(self, server: Host) -> None:
        self._server = server
        self._settings = server.settings
        self._loop = server.loop
        self._codec = ServerCodec(self._settings.max_frame_bytes)
        self.address = "?"
        self._transport: asyncio.Transport | None = None
        # A plain list and a future made only while the worker waits: an idle
        # connection is thousands of these, and a deque or an Event costs ~0.7 KiB.
        self._inbox: list[Incoming] = []
        self._waiter: asyncio.Future[None] | None = None
        self._out: list[bytes] = []
        self._out_size = 0
        self._marked = False
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._eof = False
        self._closing = False
        self._stopping = False
        self._session: Session | None = None
        self._bad_frames = 0
        self._failed_hellos = 0
        self._prelogin_frames = 0
        self._sniffed = False  # the first non-blank byte came, and it was "{"
        self._born = self._last_rx = 0.0  # loop times, set at connection_made
        self._logged_in = False
        self._ping_sent_at: float | None = None
        self._task: asyncio.Task[None] | None = None  # the worker, while there is work
        self._finished = False
        self._in_flight = 0  # pipelined messages not committed yet
        self._in_flight_bytes = 0  # a bound on the size of their copies to this client
        self._settling = False  # the worker waits for pipelined messages to commit
        self.close_reason = ""

    def __str__(self) -> str:
        """The peer's address and port, as logs name the connection (made only if logged)."""
        peer = self._transport.get_extra_info("peername") if self._transport else None
        if isinstance(peer, tuple) and len(peer) >= 2:
            return f"{peer[0]}:{peer[1]}"
        return "?"

    # -- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: no isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        # The login deadline counts from here: from accept, a TLS handshake
        # included (server/tlswire.py starts the protocol before it).
        self._born = self._last_rx = self._loop.time()
        self.address = peer_key(transport.get_extra_info("peername"))
        if not self._server.admit(self):
            self._send_event(
                Error(
                    code="rate_limited",
                    message="too many connections from your address; close some and retry",
                    extra={"retry_after": 10},
                )
            )
            self.close("too many connections from one address")
            return
        log.debug("%s connected", self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if not self._sniffed:
            first = data.lstrip(b" \t\r\n")
            if first and first[0] != 0x7B:  # not "{": not a chinwag client at all
                self._refuse_stranger(first)
                return
            self._sniffed = bool(first)
        events = self._codec.receive_data(data)
        if events:
            # Only whole frames count as activity: dribbled bytes keep nothing alive.
            self._last_rx = self._loop.time()
            self._inbox.extend(events)
            self._kick()
            if len(self._inbox) > _INBOX_HIGH and self._transport is not None:
                self._transport.pause_reading()
                self._reading_paused = True

    def _refuse_stranger(self, first: bytes) -> None:
        """Answer a peer whose first bytes are not JSON (a browser, curl, TLS), and close."""
        if _HTTP_REQUEST.match(first) and self._transport is not None:
            self._transport.write(_HTTP_ANSWER)
            self.close("not a chinwag client: an HTTP request")
            return
        self._error(BadFrame(_NOT_JSON), None)
        self.close("not a chinwag client: the first bytes are not JSON")

    def eof_received(self) -> bool:
        # Keep the write side open: requests that came before the FIN get answered.
        # (TLS is not half-closed: there the transport closes either way.)
        self._eof = True
        self._kick()
        return self._transport is not None and self._transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._closing = True
        if not self.close_reason:
            self.close_reason = "connection lost" if exc is None else f"connection lost: {exc}"
        self._kick()
        self._release_writer()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _kick(self) -> None:
        """Wake the worker, or start one: frames came, or the connection is ending."""
        if self._waiter is not None:
            self._wake()
        elif self._task is None and not self._finished:
            self._task = self._loop.create_task(self._run())

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        self._release_writer()

    def _release_writer(self) -> None:
        if self._writable is not None:
            if not self._writable.done():
                self._writable.set_result(None)
            self._writable = None

    # -- Outlet (what the hub calls) ------------------------------------------------
    def send(self, frame: Frame) -> None:
        if self._closing:
            return
        # _queue inlined: this is the per-copy hot path of fan-out.
        wire = frame.wire if frame.renderer is render else frame.render(render)
        self._out.append(wire)
        self._out_size += len(wire)
        transport = self._transport
        assert transport is not None
        # What was queued before this frame decides: a client that reads is never
        # cut off for one large reply (a history page), one that stopped reading is.
        queued = self._out_size - len(wire) + transport.get_write_buffer_size()
        if queued > self._settings.out_buffer_limit:
            self._cut_off()
            return
        if not self._marked:
            self._marked = True
            self._server.flusher.mark(self)

    def _queue(self, frame: Frame) -> bytes:
        wire = frame.render(render)
        self._out.append(wire)
        self._out_size += len(wire)
        return wire

    async def send_paced(self, frame: Frame) -> None:
        if self._closing:
            raise ConnectionError("connection closed")
        self._queue(frame)
        self.flush()
        transport = self._transport
        assert transport is not None
        while not self._closing and transport.get_write_buffer_size() > _PACED_HIGH:
            if self._writable is None:
                self._writable = self._loop.create_future()
            await self._writable
        if self._closing:
            raise ConnectionError("connection closed")

    def close(self, reason: str) -> None:
        """Flush, send FIN, and close once the peer closes too (or after a linger).

        Closing a socket with unread input makes the kernel send RST, which can
        destroy the last frames (an error, or bye) before the peer reads them; so
        input is read and discarded until the peer's FIN, for at most _LINGER s.
        """
        if self._closing:
            return
        self._closing = True
        self.close_reason = reason
        self.flush()
        self._release_writer()  # a backlog waiting for the peer to read gives up now
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if self._reading_paused:
                self._reading_paused = False
                transport.resume_reading()
            if self._eof:
                transport.close()  # the peer is done sending: nothing to drain
            elif transport.can_write_eof():
                try:
                    transport.write_eof()
                except OSError:  # the peer reset the connection meanwhile
                    transport.close()
            else:
                transport.close()
            self._loop.call_later(_LINGER, self._end_linger, transport)
        self._kick()

    @staticmethod
    def _end_linger(transport: asyncio.Transport) -> None:
        """The linger is over: a peer that has not read what it was sent is cut off.

        A close waits for the unsent output; from a peer that stopped reading,
        that would be forever, holding the descriptor and the session.
        """
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    # -- writing --------------------------------------------------------------------
    def flush(self) -> None:
        self._marked = False
        if not self._out or self._transport is None:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def _cut_off(self) -> None:
        # Drop what is queued at once: memory stays bounded, and an account's
        # messages wait in storage for its next login.
        self._closing = True
        self.close_reason = "cut off: not reading (output buffer over the limit)"
        self._out.clear()
        self._out_size = 0
        if self._transport is not None:
            self._transport.abort()
        self._kick()

    def _send_event(self, event: Outgoing) -> None:
        self.send(Frame(event))

    def _error(self, exc: ChatError, ref: str | None) -> None:
        self.send(Frame(Error.of(exc, ref)))

    # -- deadlines (the server's sweep calls this) -------------------------------------
    def check_deadlines(self, now: float) -> None:
        """Enforce the login deadline, and ping a quiet client or close an unanswering one."""
        if self._closing:
            return
        s = self._settings
        if self._session is None:  # not logged in yet, or logging out (bye)
            if not self._logged_in and now - self._born >= s.prelogin_timeout:
                self._error(NotLoggedIn("you did not log in in time; connection closed"), None)
                self.close("pre-login deadline")
            return
        if self._ping_sent_at is not None and self._last_rx > self._ping_sent_at:
            self._ping_sent_at = None  # any frame after our ping answers it
        if self._ping_sent_at is not None:
            if now - self._ping_sent_at >= s.pong_timeout:
                self.close("idle: no answer to ping")
        elif now - self._last_rx >= s.idle_timeout:
            self._ping_sent_at = now
            self._send_event(Ping())

    # -- the worker -------------------------------------------------------------------
    async def _run(self) -> None:
        """Carry out the inbox; end when it is empty, or finish the connection."""
        try:
            while self._inbox and not (self._closing or self._stopping):
                item = self._inbox.pop(0)
                if self._reading_paused and len(self._inbox) < _INBOX_LOW and self._transport:
                    self._reading_paused = False
                    self._transport.resume_reading()
                session = self._session
                if (
                    isinstance(item, Say | Dm)
                    and session is not None
                    and self._start(session, item)
                ):
                    if self._pipeline_full():
                        await self._settle(until_room=True)
                    continue
                if self._in_flight:
                    await self._settle()
                    if self._closing:
                        break
                await self._process(item)
        except Exception:
            log.exception("%s: connection failed", self)
            self.close("internal error")
        if not (self._eof or self._closing or self._stopping):
            self._task = None  # idle: the next frames start a new worker
            return
        await self._finish()

    async def _finish(self) -> None:
        """The connection ends: acks still due, logout, bye, close, forget (once)."""
        if self._finished:
            return
        self._finished = True
        if self._in_flight and not self._closing:
            # Their acks go out before bye, or before the close after the peer's FIN.
            await self._settle()
        if self._session is not None:
            session, self._session = self._session, None
            try:
                await self._server.hub.logout(session, clean=False)
            except Exception:
                log.exception("%s: logout failed", self)
        if not self._closing:
            if self._stopping:
                self._send_event(Bye())
            self.close("server shutting down" if self._stopping else "client closed")
        self._server.forget(self)
        log.debug("%s closed: %s", self, self.close_reason)

    def _start(self, session: Session, item: Say | Dm) -> bool:
        """Pipeline a message; False when it must wait its turn in `_process`."""
        try:
            future = self._server.hub.pipeline(session, item)
        except Exception:
            return False  # refused (or failed): reported in order by _process
        if future is None:
            return False
        # Each message comes back to this client (its own copy): bound what can
        # arrive at once, so a client that reads is not cut off for sending fast.
        size = 4 * len(item.body) + 256
        self._in_flight += 1
        self._in_flight_bytes += size
        future.add_done_callback(functools.partial(self._committed, size))
        return True

    def _committed(self, size: int, _future: object) -> None:
        self._in_flight -= 1
        self._in_flight_bytes -= size
        if self._settling:
            self._wake()

    def _pipeline_full(self) -> bool:
        return (
            self._in_flight >= _PIPELINE
            or self._in_flight_bytes > self._settings.out_buffer_limit // 4
        )

    async def _settle(self, *, until_room: bool = False) -> None:
        """Wait until no pipelined message is in flight (or, ``until_room``, one more fits)."""
        self._settling = True
        try:
            while self._in_flight and not self._closing:
                if until_room and not self._pipeline_full():
                    break
                self._waiter = self._loop.create_future()
                await self._waiter
        finally:
            self._settling = False
            self._waiter = None

    async def _process(self, item: Incoming) -> None:
        if self._session is None and not self._logged_in and not isinstance(item, Fatal):
            # Every frame before login counts: refused, unknown and ignored ones too.
            self._prelogin_frames += 1
            if self._prelogin_frames > self._settings.prelogin_max_frames:
                self._error(NotLoggedIn("too many frames before hello; connection closed"), None)
                self.close("too many frames before login")
                return
        if isinstance(item, Fatal):
            self._send_event(Error(code=item.code, message=item.message))
            self.close(item.code)
            return
        if isinstance(item, Dropped):
            return
        if isinstance(item, Rejected):
            self._send_event(Error(code=item.code, message=item.message, ref=item.ref))
            if self._session is None and item.kind == "hello":
                self._hello_failed()
            elif item.code == "bad_frame":
                self._bad_frames += 1
                if self._bad_frames >= self._settings.max_bad_frames:
                    self.close("too many bad frames")
            return
        if isinstance(item, Bye):
            if self._session is not None:
                session, self._session = self._session, None
                await self._server.hub.logout(session, clean=True)
            self._send_event(Bye(ref=item.ref))
            self.close("bye")
            return
        if self._session is None:
            await self._prelogin(item)
            return
        try:
            await self._server.hub.handle(self._session, item)
        except ChatError as exc:
            self._error(exc, item.ref)
        except StoreError:  # the store logs it, once per incident
            self._error(ChatError(), item.ref)
        except Exception:
            log.exception("%s: %s failed", self, type(item).__name__)
            self._error(ChatError(), item.ref)

    async def _prelogin(self, item: Incoming) -> None:
        assert not isinstance(item, Fatal | Dropped | Rejected)
        if isinstance(item, Ping):
            self._send_event(Pong(ref=item.ref))
            return
        if not isinstance(item, Hello):
            self._error(NotLoggedIn(), item.ref)
            return
        try:
            session = await self._server.hub.login(item, self)
        except ChatError as exc:
            self._error(exc, item.ref)
            self._hello_failed()
            return
        except ConnectionError:
            return
        except StoreError:  # the store logs it, once per incident
            self._error(ChatError(), item.ref)
            return
        except Exception:
            log.exception("%s: hello failed", self)
            self._error(ChatError(), item.ref)
            return
        if self._closing:
            await self._server.hub.logout(session, clean=False)
            return
        self._session = session
        self._logged_in = True
        p = session.principal
        log.debug(
            "%s logged in as %s (%s, device %s)",
            self,
            p.nick,
            "account" if p.account else "guest",
            session.device,
        )

    def _hello_failed(self) -> None:
        self._failed_hellos += 1
        if self._failed_hellos >= self._settings.max_failed_hellos:
            self.close("too many failed hellos")

    async def stop(self) -> None:
        """Shutdown: finish the command in progress, say bye, close."""
        self._stopping = True
        if self._transport is not None and not self._closing:
            self._transport.pause_reading()
        self._kick()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=self._settings.shutdown_grace)
