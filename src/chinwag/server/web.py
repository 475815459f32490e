"""The HTTP listener: the web client's files at ``/`` and the protocol over WebSocket at ``/ws``.

aiohttp runs in the server's own event loop. A WebSocket carries one protocol
frame per text message (the JSON object, without the newline). It is served
by the same `Connection` as a JSON-lines TCP client, through `WsTransport`, an
asyncio transport over the WebSocket: every frame, limit, error and guarantee
of the TCP port (the per-address cap, the login and idle deadlines of the
server's sweep, the output limit) holds on ``/ws`` as well. Outbound frames
are the JSON-lines bytes each `Frame` renders once for every JSON client; a
WebSocket slices off the newline and puts a frame header before each.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from aiohttp import WSMsgType, web

from chinwag.protocol.events import Rejected
from chinwag.server.connection import Connection
from chinwag.server.listener import peer_key
from chinwag.server.metrics import CONTENT_TYPE, metrics_allowed
from chinwag.server.tlswire import TlsTransport
from chinwag.server.webhosts import WebHosts

if TYPE_CHECKING:
    import socket

    from aiohttp.typedefs import Handler

    from chinwag.config import Settings
    from chinwag.server.connection import Host
    from chinwag.server.tlswire import Handshakes

log = logging.getLogger("chinwag.web")

_CLOSE_WAIT = 2.0  # seconds a closing WebSocket waits for the peer's close frame
# Types by suffix, not from the system's mime.types: with nosniff, a module script
# served as application/octet-stream (.mjs on some systems) would not run.
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}


def static_root() -> Path:
    """The directory of the web client's files, inside the installed package."""
    return Path(str(resources.files("chinwag") / "web" / "static"))


def _static_file(root: Path, path: str) -> Path | None:
    """The file under ``root`` that the URL path ``path`` names; None: not served.

    Only plain names are followed: no ``..`` or ``.``, no empty part, no
    backslash or NUL, no absolute path, no symbolic link anywhere on the way.
    """
    if path == "" or path.endswith("/"):
        path += "index.html"
    parts = path.split("/")
    if any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
        return None
    target = root
    for part in parts:
        target = target / part
        if target.is_symlink():
            return None
    return target if target.is_file() else None


def security_headers(request: web.Request) -> dict[str, str]:
    """The headers of every response: a strict CSP, no sniffing, no referrer, no framing."""
    host = request.host
    sockets = f"wss://{host}" if request.secure else f"ws://{host}"
    return {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
            f" font-src 'self'; manifest-src 'self'; connect-src 'self' {sockets};"
            " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def _header(size: int) -> bytes:
    """The header of an unmasked, final WebSocket text frame of ``size`` payload bytes."""
    if size < 126:
        return bytes((0x81, size))
    if size < 65_536:
        return struct.pack("!BBH", 0x81, 126, size)
    return struct.pack("!BBQ", 0x81, 127, size)


# The last bytes framed and their frames. A fan-out writes the same bytes object
# (the Frame's JSON-lines bytes) to every connection that has nothing else queued,
# one after another in one loop turn: they are framed once, not once per receiver.
# Holding the input keeps its identity from being reused while it is remembered.
_last: list[bytes] = [b"", b""]


def ws_frames(data: bytes) -> bytes:
    """JSON lines (each ending with a newline) as WebSocket text frames, one per line."""
    last = _last
    if data is last[0]:
        return last[1]
    if data.count(b"\n") == 1:
        out = _header(len(data) - 1) + data[:-1]
    else:
        parts: list[bytes] = []
        for line in data.split(b"\n")[:-1]:
            parts.append(_header(len(line)))
            parts.append(line)
        out = b"".join(parts)
    last[0], last[1] = data, out
    return out


class WsTransport(asyncio.Transport):
    """An asyncio transport over one WebSocket, for a `Connection`.

    ``write`` takes JSON lines and writes each as a text frame straight to the
    socket (the server's frames are not masked, and not compressed); reading
    is paused by not asking aiohttp for the next message; closing sends the
    WebSocket close frame.
    """

    def __init__(self, ws: web.WebSocketResponse, raw: asyncio.Transport) -> None:
        super().__init__()
        self._ws = ws
        self._raw = raw
        self._closing = False
        self._closer: asyncio.Task[bool] | None = None
        self.readable = asyncio.Event()  # set while the connection wants input
        self.readable.set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._raw.get_extra_info(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing and not self._raw.is_closing():
            self._raw.write(ws_frames(data if type(data) is bytes else bytes(data)))

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size()

    def pause_reading(self) -> None:
        self.readable.clear()

    def resume_reading(self) -> None:
        self.readable.set()

    def is_reading(self) -> bool:
        return self.readable.is_set()

    def is_closing(self) -> bool:
        return self._closing or self._raw.is_closing()

    def can_write_eof(self) -> bool:
        return False  # a WebSocket has no half-close: closing is the close frame

    def close(self) -> None:
        """Send the close frame (after what is written) and wait for the peer's."""
        if self._closing:
            return
        self._closing = True
        self.readable.set()  # the reader stops reading: the close reads the peer's answer
        self._closer = asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> bool:
        try:
            return await self._ws.close()
        except (ConnectionError, RuntimeError):  # the socket went away meanwhile
            self._raw.abort()
            return False

    def abort(self) -> None:
        self._closing = True
        self.readable.set()
        self._raw.abort()

    async def closed(self) -> None:
        """Wait for the close that `close` started (bounded by the WebSocket's timeout)."""
        if self._closer is not None:
            await asyncio.wait([self._closer], timeout=_CLOSE_WAIT * 2)


class WsConnection(Connection):
    """A `Connection` whose frames come one per WebSocket text message."""

    transport_name: ClassVar[str] = "ws"

    __slots__ = ()

    def __init__(self, server: Host) -> None:
        super().__init__(server)
        # A WebSocket client asked for /ws: it is not a stranger to sniff out.
        self._sniffed = True

    def message(self, data: bytes) -> None:
        """One text message arrived: it is one frame."""
        if b"\n" in data or b"\r" in data:
            self._refuse("one frame per WebSocket message: send them without line breaks")
            return
        self.data_received(data + b"\n")

    def binary(self) -> None:
        """A binary message arrived: a bad frame, counted with the others by the driver."""
        self._refuse("frames are WebSocket text messages (JSON), not binary ones")

    def _refuse(self, why: str) -> None:
        """A message that is no frame: ``bad_frame``, in order with the frames before it.

        It goes through the session's driver as the codec's own refusals do, so
        it counts towards ``max_bad_frames`` with them (one count, one rule).
        """
        if not self._closing:
            self._session.feed([Rejected("bad_frame", why)], self._loop.time())


def _unavailable(body: bytes) -> bytes:
    """A whole 503 answer with ``body``, for a connection refused before aiohttp sees it."""
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Retry-After: 10\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    )


_TOO_MANY = _unavailable(
    b"too many connections from your address to this chinwag server's web port;"
    b" close some (other tabs?) and retry\n"
)
_FULL = _unavailable(
    b"this chinwag server's web port has as many connections as it takes (http_conns_max);"
    b" retry in a little while\n"
)


class _Door:
    """What the web connections of one server share: the counts, the caps, the deadlines.

    A connection is counted from accept (per address and in all) until it is
    lost. Until its request is read (from accept, and again from the first byte
    of each next request) it is in ``waiting``, oldest deadline first: every
    deadline is "now + ``http_request_timeout``", so the order of arming is the
    order of expiry, and one timer (for the oldest) serves them all.
    """

    def __init__(self, settings: Settings) -> None:
        self.per_address = settings.http_conns_per_address
        self.most = settings.http_conns_max
        self.timeout = settings.http_request_timeout
        self.by_address: dict[str, int] = {}
        self.total = 0
        self.by_transport: dict[asyncio.BaseTransport, _Counted] = {}
        self.waiting: OrderedDict[_Counted, float] = OrderedDict()
        self._timer: asyncio.TimerHandle | None = None

    def refusal(self, key: str) -> bytes | None:
        """The answer for one more connection from ``key`` over a cap; None: admitted."""
        if self.total >= self.most:
            return _FULL
        if self.by_address.get(key, 0) >= self.per_address:
            return _TOO_MANY
        return None

    def admit(self, conn: _Counted, key: str, transport: asyncio.BaseTransport) -> None:
        self.total += 1
        self.by_address[key] = self.by_address.get(key, 0) + 1
        self.by_transport[transport] = conn

    def release(self, conn: _Counted, key: str, transport: asyncio.BaseTransport) -> None:
        self.total -= 1
        left = self.by_address[key] - 1
        if left:
            self.by_address[key] = left
        else:
            del self.by_address[key]
        self.by_transport.pop(transport, None)
        self.waiting.pop(conn, None)

    def arm(self, conn: _Counted) -> None:
        """``conn`` must have its request read within the timeout from now."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        self.waiting[conn] = deadline
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        """Close every connection past its deadline; wake again for the next one."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiting = self.waiting
        while waiting:
            conn = next(iter(waiting))
            deadline = waiting[conn]
            if deadline > now:
                self._timer = loop.call_at(deadline, self._expire)
                return
            del waiting[conn]
            conn.timed_out()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one HTTP connection, counted from accept, its request timed.

    Over ``http_conns_max`` connections in all, or ``http_conns_per_address``
    from one address, the connection gets 503 and is closed before aiohttp
    sees it. An admitted one is closed if its request is not read within
    ``http_request_timeout`` (`_Door`).
    """

    __slots__ = ("_busy", "_door", "_inner", "_key", "_refused", "_transport")

    def __init__(self, inner: asyncio.Protocol, door: _Door) -> None:
        self._inner = inner
        self._door = door
        self._key: str | None = None  # the address it is counted under, once admitted
        self._transport: asyncio.Transport | None = None
        self._refused: asyncio.Transport | None = None  # over a cap: closing
        self._busy = False  # a request was read and is being answered

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's and tlswire's transports: no isinstance check.
        raw = cast(asyncio.Transport, transport)
        key = peer_key(transport.get_extra_info("peername"))
        refusal = self._door.refusal(key)
        if refusal is not None:
            # Answer, then read and drop the request until the peer closes (for
            # at most _CLOSE_WAIT s): closing with its request unread would reset
            # the connection and lose the answer.
            raw.write(refusal)
            if raw.can_write_eof():
                raw.write_eof()
                asyncio.get_running_loop().call_later(_CLOSE_WAIT, raw.close)
            else:
                raw.close()
            self._refused = raw
            return
        self._key = key
        self._transport = raw
        self._door.admit(self, key, transport)
        self._door.arm(self)  # from accept (a TLS handshake included)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._key is None:
            return
        if not self._busy and self not in self._door.waiting:
            self._door.arm(self)  # the first byte of the next request
        self._inner.data_received(data)

    def request_read(self) -> None:
        """aiohttp has read a request's headers: no deadline while it is answered."""
        self._busy = True
        self._door.waiting.pop(self, None)

    def answered(self) -> None:
        """The handler is done: the next request's first byte starts a new deadline."""
        self._busy = False

    def timed_out(self) -> None:
        """The request was not read in time: close the connection."""
        if self._transport is not None:
            log.debug("an HTTP request took over %s s to arrive; closed", self._door.timeout)
            self._transport.close()

    def eof_received(self) -> bool | None:
        if self._refused is not None:
            self._refused.close()
            return None
        return self._inner.eof_received() if self._key is not None else None

    def pause_writing(self) -> None:
        if self._key is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._key is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        key, self._key = self._key, None
        if key is None:
            return
        assert self._transport is not None  # set with the key
        self._door.release(self, key, self._transport)
        self._inner.connection_lost(exc)


class _CountedSite(web.SockSite):
    """A site whose connections are counted and timed (`_Counted`) from accept.

    With TLS, the handshake is done by tlswire's `TlsTransport` in front of the
    connection, within the server's `Handshakes` (``tls_handshakes_max``,
    ``tls_handshakes_per_address``, ``tls_handshake_timeout``), as on the chat
    TLS listeners.
    """

    def __init__(
        self,
        runner: web.AppRunner,
        sock: socket.socket,
        handshakes: Handshakes | None,
        door: _Door,
    ) -> None:
        super().__init__(runner, sock)
        self._door = door
        self._handshakes = handshakes
        self._handlers = runner

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site; the server is made here
        handlers = self._handlers.server
        assert handlers is not None  # the runner is set up
        door, handshakes = self._door, self._handshakes

        def counted() -> asyncio.Protocol:
            conn = _Counted(handlers(), door)
            return conn if handshakes is None else TlsTransport(handshakes, conn)

        self._server = await asyncio.get_running_loop().create_server(
            counted, sock=self._sock, backlog=self._backlog
        )


class WebApp:
    """The aiohttp application of one server: static files, ``/ws``, health, metrics, headers.

    ``not_ready`` says why the server cannot take writes (None: it can), for
    ``/readyz``; ``metrics`` renders ``/metrics``. With ``monitoring_only`` (the
    ``metrics_port`` listener) only ``/healthz``, ``/readyz`` and ``/metrics`` are served.
    """

    def __init__(
        self,
        server: Host,
        not_ready: Callable[[], Awaitable[str | None]],
        metrics: Callable[[], bytes],
        *,
        monitoring_only: bool = False,
    ) -> None:
        self._server = server
        self._not_ready = not_ready
        self._metrics = metrics
        settings = server.settings
        self._origins = {o.strip().rstrip("/").lower() for o in settings.ws_origins.split(",")}
        self._origins.discard("")
        self._root = static_root()
        # One message of up to twice a frame reaches the codec, which refuses what
        # is over max_frame_bytes with the TCP port's error; aiohttp closes the
        # WebSocket (1009, message too big) before anything larger is read whole.
        self._max_msg = 2 * settings.max_frame_bytes
        self._door = _Door(settings)
        self._hosts = WebHosts(settings)
        self.app = web.Application(
            client_max_size=4096, middlewares=[self._timed, self._host_guard]
        )
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics_page)
        if not monitoring_only:
            self.app.router.add_get("/ws", self._ws)
            self.app.router.add_get("/{path:.*}", self._static)
        self.app.on_response_prepare.append(self._headers)
        self._runner: web.AppRunner | None = None

    async def start(self, sockets: list[socket.socket], handshakes: Handshakes | None) -> None:
        """Serve on ``sockets`` (already bound and listening), with TLS if ``handshakes``."""
        if self._runner is None:
            settings = self._server.settings
            # A connection idle between two requests is closed after prelogin_timeout,
            # as a chat connection that does not log in; a body left unread after
            # the answer is read for at most http_request_timeout, then closed.
            self._runner = web.AppRunner(
                self.app,
                handle_signals=False,
                access_log=None,
                shutdown_timeout=_CLOSE_WAIT,
                keepalive_timeout=settings.prelogin_timeout,
                lingering_time=settings.http_request_timeout,
            )
            await self._runner.setup()
        for sock in sockets:
            await _CountedSite(self._runner, sock, handshakes, self._door).start()

    async def close(self) -> None:
        self._door.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _timed(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """A request was read: its connection's deadline ends while it is answered."""
        transport = request.transport
        conn = self._door.by_transport.get(transport) if transport is not None else None
        if conn is None:
            return await handler(request)
        conn.request_read()
        try:
            return await handler(request)
        finally:
            conn.answered()

    @web.middleware
    async def _host_guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every path answers only to this server's host names (`WebHosts`); else 421."""
        name = self._hosts.refused(request.headers.get("Host"))
        if name is not None:
            raise web.HTTPMisdirectedRequest(
                text=f"this chinwag server does not answer to the name {name!r}: a web page"
                " could point a name of its own at the server to use it through a visitor's"
                " browser (DNS rebinding). If it is this server's name, its operator adds it"
                f" to the web_hosts setting (e.g. --set web_hosts={name}) and restarts the"
                " server; until then open the server by its IP address, or as localhost on"
                " its own machine\n"
            )
        return await handler(request)

    @staticmethod
    async def _headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(security_headers(request))

    @staticmethod
    async def _healthz(request: web.Request) -> web.StreamResponse:
        """Alive: the event loop answers."""
        return web.Response(text="alive\n")

    async def _readyz(self, request: web.Request) -> web.StreamResponse:
        """Ready: the store commits a write; else 503 and the reason in plain words."""
        reason = await self._not_ready()
        if reason is not None:
            return web.Response(status=503, text=f"not ready: {reason}\n")
        return web.Response(text="ready\n")

    async def _metrics_page(self, request: web.Request) -> web.StreamResponse:
        """The metrics, to loopback clients (or to any with metrics_public); else 403.

        With ``metrics = false`` nothing is counted: 404, saying so.
        """
        if not self._server.settings.metrics:
            raise web.HTTPNotFound(
                text="metrics are off on this server (metrics = false): nothing is counted;"
                " set metrics = true and restart it to serve /metrics\n"
            )
        if not metrics_allowed(request.remote, self._server.settings.metrics_public):
            raise web.HTTPForbidden(
                text="/metrics answers only on this machine (loopback); to let Prometheus"
                " scrape it from elsewhere, set metrics_public = true on the server\n"
            )
        return web.Response(body=self._metrics(), headers={"Content-Type": CONTENT_TYPE})

    async def _static(self, request: web.Request) -> web.StreamResponse:
        target = _static_file(self._root, request.match_info["path"])
        if target is None:
            raise web.HTTPNotFound(text="not found: this server serves the chinwag web client\n")
        kind = _TYPES.get(target.suffix.lower(), "application/octet-stream")
        return web.FileResponse(target, headers={"Content-Type": kind})

    def _origin_allowed(self, request: web.Request) -> bool:
        """A browser's page may use /ws if it is this server's own, or listed in ws_origins."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser: Origin guards browsers' pages, not programs
        origin = origin.rstrip("/").lower()
        own = f"{request.scheme}://{request.host}".lower()
        return origin == own or origin in self._origins

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if not self._origin_allowed(request):
            raise web.HTTPForbidden(
                text="this page's origin may not use this chinwag server: open the server's"
                " own web client, or ask its operator to list the origin in ws_origins\n"
            )
        ws = web.WebSocketResponse(
            max_msg_size=self._max_msg, compress=False, timeout=_CLOSE_WAIT, decode_text=False
        )
        await ws.prepare(request)
        raw = request.transport
        assert raw is not None  # prepare() succeeded on it
        transport = WsTransport(ws, raw)
        conn = WsConnection(self._server)
        conn.connection_made(transport)
        try:
            await self._read(ws, transport, conn)
        finally:
            conn.connection_lost(None)
            await transport.closed()
        return ws

    @staticmethod
    async def _read(ws: web.WebSocketResponse, transport: WsTransport, conn: WsConnection) -> None:
        while True:
            await transport.readable.wait()
            if transport.is_closing():
                return
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                data = msg.data
                conn.message(data if isinstance(data, bytes) else data.encode())
            elif msg.type is WSMsgType.BINARY:
                conn.binary()
            else:  # the peer's close, an error, or the socket is gone
                return
