"""One JSON-lines connection: bytes in, commands to the hub, frames out.

Built on asyncio's Protocol/Transport API rather than streams: fan-out appends
encoded frames to a per-connection list, and one `Flusher` callback per event
loop turn writes each connection's frames with a single ``write``. Commands of
one connection are carried out one at a time, in order, by its worker task, so
replies keep the order of requests.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from chinwag.core.hub import Frame, Session
from chinwag.errors import ChatError, NotLoggedIn
from chinwag.protocol.events import Bye, Dropped, Fatal, Hello, Incoming, Ping, Rejected
from chinwag.protocol.jsonlines import ServerCodec, encode

if TYPE_CHECKING:
    from chinwag.server.app import Server

log = logging.getLogger("chinwag.conn")

_INBOX_HIGH = 64  # queued commands before we stop reading from the socket
_INBOX_LOW = 16
_PACED_HIGH = 256 * 1024  # transport buffer above which paced sends wait
_LINGER = 2.0  # seconds a closing connection waits for the peer's FIN


def _encode(frame: Frame) -> bytes:
    """Encode a frame (each of its parts once) and remember the bytes on it."""
    if frame.parts:
        wire = b"".join(part.wire or _encode(part) for part in frame.parts)
    else:
        wire = encode(frame.data)
    frame.wire = wire
    return wire


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
    """The transport side of one client connection; the hub's `Outlet`."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._settings = server.settings
        self._loop = server.loop
        self._codec = ServerCodec(self._settings.max_frame_bytes)
        self.address = "?"
        self._peer = "?"
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
        self._last_rx = self._loop.time()
        self._ping_sent_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.close_reason = ""

    # -- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.address, self._peer = str(peer[0]), f"{peer[0]}:{peer[1]}"
        if not self._server.admit(self):
            self._send_data(
                {
                    "type": "error",
                    "code": "rate_limited",
                    "message": "too many connections from your address; close some and retry",
                    "retry_after": 10,
                }
            )
            self.close("too many connections from one address")
            return
        log.debug("%s connected", self._peer)
        self._timer = self._loop.call_later(self._settings.prelogin_timeout, self._prelogin_expired)
        self._task = self._loop.create_task(self._run())

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        events = self._codec.receive_data(data)
        if events:
            # Only whole frames count as activity: dribbled bytes keep nothing alive.
            self._last_rx = self._loop.time()
            self._inbox.extend(events)
            self._wake()
            if len(self._inbox) > _INBOX_HIGH and self._transport is not None:
                self._transport.pause_reading()
                self._reading_paused = True

    def eof_received(self) -> bool:
        # Keep the write side open: requests that came before the FIN get answered.
        # (TLS cannot half-close: there asyncio closes the transport either way.)
        self._eof = True
        self._wake()
        return self._transport is not None and self._transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._closing = True
        if not self.close_reason:
            self.close_reason = "connection lost" if exc is None else f"connection lost: {exc}"
        self._wake()
        self._release_writer()
        if self._timer is not None:
            self._timer.cancel()
        if self._task is None:  # refused at connection_made
            self._server.forget(self)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

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
        wire = frame.wire or _encode(frame)
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
        wire = frame.wire or _encode(frame)
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
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if self._reading_paused:
                self._reading_paused = False
                transport.resume_reading()
            if self._eof:
                transport.close()  # the peer is done sending: nothing to drain
            elif transport.can_write_eof():
                transport.write_eof()
                self._loop.call_later(_LINGER, transport.close)
            else:
                transport.close()
        self._wake()

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
        self._wake()

    def _send_data(self, data: dict[str, Any], ref: str | None = None) -> None:
        if ref is not None:
            data["ref"] = ref
        self.send(Frame(data))

    def _error(self, exc: ChatError, ref: str | None) -> None:
        data: dict[str, Any] = {"type": "error", "code": exc.code, "message": exc.message}
        data.update(exc.extra)
        self._send_data(data, ref)

    # -- timers ---------------------------------------------------------------------
    def _prelogin_expired(self) -> None:
        if self._session is None:
            self._error(NotLoggedIn("you did not log in in time; connection closed"), None)
            self.close("pre-login deadline")

    def _idle_check(self) -> None:
        s = self._settings
        now = self._loop.time()
        if self._ping_sent_at is not None and self._last_rx > self._ping_sent_at:
            self._ping_sent_at = None  # any frame after our ping answers it
        if self._ping_sent_at is not None:
            waited = now - self._ping_sent_at
            if waited >= s.pong_timeout:
                self.close("idle: no answer to ping")
                return
            delay = s.pong_timeout - waited
        elif (quiet := now - self._last_rx) >= s.idle_timeout:
            self._ping_sent_at = now
            self._send_data({"type": "ping"})
            delay = s.pong_timeout
        else:
            delay = s.idle_timeout - quiet
        self._timer = self._loop.call_later(delay, self._idle_check)

    # -- the worker -------------------------------------------------------------------
    async def _run(self) -> None:
        hub = self._server.hub
        try:
            while not self._stopping:
                while not (self._inbox or self._eof or self._closing or self._stopping):
                    self._waiter = self._loop.create_future()
                    await self._waiter
                if not self._inbox or self._closing or self._stopping:
                    break
                item = self._inbox.pop(0)
                if self._reading_paused and len(self._inbox) < _INBOX_LOW and self._transport:
                    self._reading_paused = False
                    self._transport.resume_reading()
                await self._process(item)
        except Exception:
            log.exception("%s: connection failed", self._peer)
            self.close("internal error")
        finally:
            if self._session is not None:
                session, self._session = self._session, None
                try:
                    await hub.logout(session, clean=False)
                except Exception:
                    log.exception("%s: logout failed", self._peer)
            if not self._closing:
                if self._stopping:
                    self._send_data({"type": "bye"})
                self.close("server shutting down" if self._stopping else "client closed")
            self._server.forget(self)
            log.debug("%s closed: %s", self._peer, self.close_reason)

    async def _process(self, item: Incoming) -> None:
        if isinstance(item, Fatal):
            self._send_data({"type": "error", "code": item.code, "message": item.message})
            self.close(item.code)
            return
        if isinstance(item, Dropped):
            return
        if isinstance(item, Rejected):
            self._send_data({"type": "error", "code": item.code, "message": item.message}, item.ref)
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
            self._send_data({"type": "bye"}, item.ref)
            self.close("bye")
            return
        if self._session is None:
            await self._prelogin(item)
            return
        try:
            await self._server.hub.handle(self._session, item)
        except ChatError as exc:
            self._error(exc, item.ref)
        except Exception:
            log.exception("%s: %s failed", self._peer, type(item).__name__)
            self._error(ChatError(), item.ref)

    async def _prelogin(self, item: Incoming) -> None:
        assert not isinstance(item, Fatal | Dropped | Rejected)
        self._prelogin_frames += 1
        if self._prelogin_frames > self._settings.prelogin_max_frames:
            self._error(NotLoggedIn("too many frames before hello; connection closed"), None)
            self.close("too many frames before login")
            return
        if isinstance(item, Ping):
            self._send_data({"type": "pong"}, item.ref)
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
        except Exception:
            log.exception("%s: hello failed", self._peer)
            self._error(ChatError(), item.ref)
            return
        if self._closing:
            await self._server.hub.logout(session, clean=False)
            return
        self._session = session
        p = session.principal
        log.debug(
            "%s logged in as %s (%s, device %s)",
            self._peer,
            p.nick,
            "account" if p.account else "guest",
            session.device,
        )
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(self._settings.idle_timeout, self._idle_check)

    def _hello_failed(self) -> None:
        self._failed_hellos += 1
        if self._failed_hellos >= self._settings.max_failed_hellos:
            self.close("too many failed hellos")

    async def stop(self) -> None:
        """Shutdown: finish the command in progress, say bye, close."""
        self._stopping = True
        if self._transport is not None and not self._closing:
            self._transport.pause_reading()
        self._wake()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=self._settings.shutdown_grace)
