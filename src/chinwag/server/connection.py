"""One JSON-lines connection: bytes in, items to its session, frames out.

Built on asyncio's Protocol/Transport API rather than streams: fan-out appends
rendered frames to a per-connection list, and one `Flusher` callback per event
loop turn writes each connection's frames with a single ``write``. This module
only moves bytes: it sniffs the first ones (an HTTP request or anything not
JSON gets a plain answer), decodes frames, stops reading while its session's
inbox is full, coalesces writes, cuts off a peer that stops reading, and closes
gracefully. What the frames mean (the session rules, the order of replies, the
pipelined messages) is the transport-neutral `SessionTask` and `SessionDriver`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, ClassVar, Protocol, cast

from chinwag.core.sessions import Frame
from chinwag.errors import BadFrame, RateLimited
from chinwag.protocol.jsonlines import ServerCodec, render
from chinwag.server.listener import peer_key
from chinwag.server.session_task import SessionTask, reply_frame

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

_PACED_HIGH = 256 * 1024  # transport buffer above which paced sends wait
_LINGER = 2.0  # seconds a closing connection waits for the peer's FIN


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
    """The transport side of one client connection; the hub's `Outlet`, its session's `Link`.

    An idle connection is cheap, since a server holds thousands: it has no task
    and no timer. Its session's worker task runs only while frames wait to be
    carried out; the server's periodic `check_deadlines` sweep enforces the
    login deadline and the idle ping.
    """

    transport_name: ClassVar[str] = "json"  # its label in /metrics

    __slots__ = (
        "_closing",
        "_codec",
        "_eof",
        "_loop",
        "_marked",
        "_out",
        "_out_size",
        "_reading_paused",
        "_server",
        "_session",
        "_settings",
        "_sniffed",
        "_transport",
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
        # The login deadline counts from here: from accept, a TLS handshake
        # included (server/tlswire.py makes the connection before it).
        self._session = SessionTask(self, server.hub, self._settings, self._loop.time())
        self._out: list[bytes] = []
        self._out_size = 0
        self._marked = False
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._eof = False
        self._closing = False
        self._sniffed = False  # the first non-blank byte came, and it was "{"
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
        self.address = peer_key(transport.get_extra_info("peername"))
        if not self._server.admit(self):
            refusal = RateLimited(
                10, "too many connections from your address; close some and retry"
            )
            self.send(reply_frame(refusal, None))
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
            self._session.feed(events, self._loop.time())

    def _refuse_stranger(self, first: bytes) -> None:
        """Answer a peer whose first bytes are not JSON (a browser, curl, TLS), and close."""
        if _HTTP_REQUEST.match(first) and self._transport is not None:
            self._transport.write(_HTTP_ANSWER)
            self.close("not a chinwag client: an HTTP request")
            return
        self.send(reply_frame(BadFrame(_NOT_JSON), None))
        self.close("not a chinwag client: the first bytes are not JSON")

    def eof_received(self) -> bool:
        # Keep the write side open: requests that came before the FIN get answered.
        # (TLS is not half-closed: there the transport closes either way.)
        self._eof = True
        self._session.input_ended()
        return self._transport is not None and self._transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._closing = True
        if not self.close_reason:
            self.close_reason = "connection lost" if exc is None else f"connection lost: {exc}"
        self._session.closed()
        self._release_writer()

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

    # -- Link (what the session task calls) ---------------------------------------------
    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def input_ended(self) -> bool:
        return self._eof or self._closing

    def pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None and not self._closing:
            self._transport.pause_reading()
            self._reading_paused = True

    def resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()

    def ended(self) -> None:
        self._server.forget(self)
        log.debug("%s closed: %s", self, self.close_reason)

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
        self._session.closed()

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
        if self._server.hub.counts.on:
            self._server.hub.counts.cut_offs += 1
        self._out.clear()
        self._out_size = 0
        if self._transport is not None:
            self._transport.abort()
        self._session.closed()

    # -- the session ------------------------------------------------------------------
    def check_deadlines(self, now: float) -> None:
        """Enforce the login deadline, and ping a quiet client or close an unanswering one."""
        if not self._closing:
            self._session.tick(now)

    async def stop(self) -> None:
        """Shutdown: finish the command in progress, say bye, close."""
        if self._transport is not None and not self._closing:
            self._transport.pause_reading()
        await self._session.stop(self._settings.shutdown_grace)
