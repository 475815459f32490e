"""TLS done by the server itself, over a plain TCP transport, with ``ssl.MemoryBIO``.

Why not ``create_server(ssl=...)``: asyncio's SSL transport (CPython 3.11
``sslproto.SSLProtocol``) gives every connection a 256 KiB read buffer, so an
idle logged-in TLS connection cost ~270 KiB against ~1 KiB in plain TCP; and it
makes the chat protocol (and so the per-address count) only after the
handshake, so silent connects escaped every cap (issue 10).

Here a `TlsTransport` is the protocol of the TCP transport and the transport of
the chat `Connection`. It is made at accept, so the connection is counted at
once; the handshake is admitted only within `Handshakes` (in flight, per server
and per address) and must end within ``tls_handshake_timeout``. Every TLS
connection of a server shares one pair of memory BIOs and one plaintext buffer:
after each call into OpenSSL the incoming BIO is empty (OpenSSL asks for more
only when it has read everything) and the outgoing one is drained to that
connection's socket, so nothing stays in them between calls. An idle connection
then holds only OpenSSL's own state (CPython sets ``SSL_MODE_RELEASE_BUFFERS``,
so OpenSSL frees its record buffers while a connection is idle).

A failed handshake (plaintext, an old TLS version) is closed without a reply,
as asyncio did. Closing sends close_notify and a FIN, then waits for the peer's
FIN for at most `_LINGER` seconds, so that the last frames are not destroyed by
a reset. TLS is not half-closed: when the peer ends its side, the chat protocol
is told (``eof_received``) and the connection closes.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, cast

from chinwag.server.listener import peer_key

_LINGER = 2.0  # seconds a closing connection waits for the peer's FIN
_PLAINTEXT = 16 * 1024 + 1024  # a TLS record's plaintext is at most 16 KiB

# States of a TlsTransport.
_HANDSHAKE, _OPEN, _CLOSING, _CLOSED = range(4)


class Handshakes:
    """What the TLS connections of one server share: the context, the BIOs, the counts."""

    def __init__(
        self, context: ssl.SSLContext, *, total: int, per_address: int, timeout: float
    ) -> None:
        self.context = context
        self.total = total
        self.per_address = per_address
        self.timeout = timeout
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.buffer = bytearray(_PLAINTEXT)
        self.view = memoryview(self.buffer)
        self.in_flight = 0
        self._by_address: dict[str, int] = {}

    def enter(self, address: str) -> bool:
        """Admit one more handshake from ``address``, if the caps allow."""
        count = self._by_address.get(address, 0)
        if self.in_flight >= self.total or count >= self.per_address:
            return False
        self.in_flight += 1
        self._by_address[address] = count + 1
        return True

    def leave(self, address: str) -> None:
        self.in_flight -= 1
        left = self._by_address[address] - 1
        if left:
            self._by_address[address] = left
        else:
            del self._by_address[address]


class TlsTransport(asyncio.Protocol, asyncio.Transport):
    """One TLS connection: protocol of the TCP transport, transport of the chat protocol."""

    __slots__ = (
        "_address",
        "_app",
        "_hs",
        "_pending",
        "_raw",
        "_sslobj",
        "_started",
        "_state",
        "_timer",
    )

    def __init__(self, handshakes: Handshakes, app: asyncio.Protocol) -> None:
        self._hs = handshakes
        self._app = app
        self._raw: asyncio.Transport | None = None
        self._sslobj: ssl.SSLObject | None = None  # made when the first bytes come
        self._state = _HANDSHAKE
        self._address = ""  # set while the handshake counts in `Handshakes`
        self._pending: list[bytes] = []  # written by the chat protocol before the handshake ended
        self._timer: asyncio.TimerHandle | None = None
        self._started = False  # the chat protocol was told of the connection

    # -- the TCP side (asyncio.Protocol) --------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: no isinstance check.
        self._raw = cast(asyncio.Transport, transport)
        address = peer_key(transport.get_extra_info("peername"))
        if not self._hs.enter(address):
            self._state = _CLOSED
            self._raw.abort()
            return
        self._address = address
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._hs.timeout, self._handshake_timed_out)
        # The chat protocol starts now, so the connection counts (and may be refused) at once.
        self._started = True
        self._app.connection_made(self)

    def data_received(self, data: bytes) -> None:
        if self._state >= _CLOSING:
            return  # closing: input is read and dropped until the peer's FIN
        hs = self._hs
        if self._sslobj is None:
            self._sslobj = hs.context.wrap_bio(hs.incoming, hs.outgoing, server_side=True)
        sslobj = self._sslobj
        hs.incoming.write(data)
        pieces: list[bytes] = []
        peer_done = False
        try:
            if self._state == _HANDSHAKE:
                try:
                    sslobj.do_handshake()
                except ssl.SSLWantReadError:
                    return
                except (ssl.SSLError, OSError):
                    hs.outgoing.read()  # no alert: a plaintext client gets a bare close
                    self._end_handshake()
                    self._state = _CLOSED
                    self._close_raw()
                    return
                self._handshake_done()
            view, size = hs.view, len(hs.buffer)
            while True:
                try:
                    # With a buffer, read() returns the count (typeshed says bytes).
                    n = cast(int, sslobj.read(size, hs.buffer))
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    peer_done = True
                    break
                except (ssl.SSLError, OSError):
                    self.abort()  # a broken or forged record
                    return
                if not n:  # the peer's close_notify
                    peer_done = True
                    break
                pieces.append(bytes(view[:n]))
        finally:
            if hs.incoming.pending:
                hs.incoming.read()  # after an error or close_notify: not for anyone else
            self._drain()
        if pieces:
            self._app.data_received(b"".join(pieces) if len(pieces) > 1 else pieces[0])
        if peer_done:
            self._peer_ended()

    def eof_received(self) -> bool:
        if self._state == _HANDSHAKE:
            self.abort()
        elif self._state == _OPEN:
            self._peer_ended()
        else:
            self._close_raw()  # closing, and the peer has finished too
        return True  # we close the TCP transport ourselves

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = _CLOSED
        self._end_handshake()
        self._sslobj = None  # free OpenSSL's state now, not when the app cycle is collected
        if self._started:
            self._app.connection_lost(exc)

    def pause_writing(self) -> None:
        self._app.pause_writing()

    def resume_writing(self) -> None:
        self._app.resume_writing()

    # -- the chat side (asyncio.Transport) ------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._state == _HANDSHAKE:
            self._pending.append(bytes(data))
        elif self._state == _OPEN and self._sslobj is not None:
            self._encrypt(data)

    def close(self) -> None:
        if self._state == _HANDSHAKE:
            self._state = _CLOSED
            self._close_raw()
        elif self._state == _OPEN:
            self._state = _CLOSING
            assert self._sslobj is not None and self._raw is not None
            try:
                self._sslobj.unwrap()  # our close_notify; we do not wait for theirs
            except (ssl.SSLError, OSError):
                pass
            finally:
                if self._hs.incoming.pending:
                    self._hs.incoming.read()
                self._drain()
            raw = self._raw
            if raw.can_write_eof() and not raw.is_closing():
                raw.write_eof()
                asyncio.get_running_loop().call_later(_LINGER, raw.close)
            else:
                raw.close()

    def can_write_eof(self) -> bool:
        return False  # close_notify ends both directions for the chat protocol

    def abort(self) -> None:
        self._state = _CLOSED
        if self._raw is not None:
            self._raw.abort()

    def is_closing(self) -> bool:
        return self._state >= _CLOSING or self._raw is None or self._raw.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        sslobj = self._sslobj
        if name == "sslcontext":
            return self._hs.context
        if name == "ssl_object":
            return sslobj
        if name in ("peercert", "cipher", "compression"):
            if sslobj is None or self._state == _HANDSHAKE:
                return default
            if name == "peercert":
                return sslobj.getpeercert()
            return sslobj.cipher() if name == "cipher" else sslobj.compression()
        return self._raw.get_extra_info(name, default) if self._raw is not None else default

    def pause_reading(self) -> None:
        if self._raw is not None:
            self._raw.pause_reading()

    def resume_reading(self) -> None:
        if self._raw is not None:
            self._raw.resume_reading()

    def is_reading(self) -> bool:
        return self._raw is not None and self._raw.is_reading()

    def get_write_buffer_size(self) -> int:
        raw = self._raw.get_write_buffer_size() if self._raw is not None else 0
        return raw + sum(len(p) for p in self._pending)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self._raw is not None:
            self._raw.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._raw.get_write_buffer_limits() if self._raw is not None else (0, 0)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._app = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._app

    # -- inside ---------------------------------------------------------------------------
    def _handshake_done(self) -> None:
        self._state = _OPEN
        self._end_handshake()
        pending, self._pending = self._pending, []
        for data in pending:
            self._encrypt(data)

    def _end_handshake(self) -> None:
        """The handshake no longer counts (done, failed, or the connection ended)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._address:
            self._hs.leave(self._address)
            self._address = ""

    def _handshake_timed_out(self) -> None:
        self._timer = None
        if self._state == _HANDSHAKE:
            self.abort()

    def _encrypt(self, data: bytes | bytearray | memoryview) -> None:
        assert self._sslobj is not None
        try:
            view = memoryview(data)
            while view:
                view = view[self._sslobj.write(view) :]
        except (ssl.SSLError, OSError):
            self._hs.outgoing.read()
            self.abort()
            return
        self._drain()

    def _drain(self) -> None:
        """Hand what OpenSSL wrote to this connection's socket (the BIO is shared)."""
        out = self._hs.outgoing
        if out.pending:
            data = out.read()
            if self._raw is not None and not self._raw.is_closing():
                self._raw.write(data)

    def _peer_ended(self) -> None:
        if not self._app.eof_received():
            self.close()

    def _close_raw(self) -> None:
        if self._raw is not None:
            self._raw.close()
