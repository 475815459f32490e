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
import ssl as ssl_module
import struct
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from chinwag.core.hub import Frame
from chinwag.errors import BadFrame
from chinwag.protocol.events import Error
from chinwag.server.connection import Connection

if TYPE_CHECKING:
    import socket

    from chinwag.server.connection import Host

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

    __slots__ = ("_binary",)

    def __init__(self, server: Host) -> None:
        super().__init__(server)
        # A WebSocket client asked for /ws: it is not a stranger to sniff out.
        self._sniffed = True
        self._binary = 0  # binary messages refused so far

    def message(self, data: bytes) -> None:
        """One text message arrived: it is one frame."""
        if b"\n" in data or b"\r" in data:
            self._refuse("one frame per WebSocket message: send them without line breaks")
            return
        self.data_received(data + b"\n")

    def binary(self) -> None:
        """A binary message arrived: refused, and the connection closed after too many."""
        self._binary += 1
        self._refuse("frames are WebSocket text messages (JSON), not binary ones")
        if self._binary >= self._settings.max_bad_frames:
            self.close("too many binary messages")

    def _refuse(self, why: str) -> None:
        self.send(Frame(Error.of(BadFrame(why))))


class WebApp:
    """The aiohttp application of one server: static files, ``/ws``, headers."""

    def __init__(self, server: Host) -> None:
        self._server = server
        settings = server.settings
        self._origins = {o.strip().rstrip("/").lower() for o in settings.ws_origins.split(",")}
        self._origins.discard("")
        self._root = static_root()
        # One message of up to twice a frame reaches the codec, which refuses what
        # is over max_frame_bytes with the TCP port's error; aiohttp closes the
        # WebSocket (1009, message too big) before anything larger is read whole.
        self._max_msg = 2 * settings.max_frame_bytes
        self.app = web.Application(client_max_size=4096)
        self.app.router.add_get("/ws", self._ws)
        self.app.router.add_get("/{path:.*}", self._static)
        self.app.on_response_prepare.append(self._headers)
        self._runner: web.AppRunner | None = None

    async def start(self, sockets: list[socket.socket], ssl: ssl_module.SSLContext | None) -> None:
        """Serve on ``sockets`` (already bound and listening)."""
        if self._runner is None:
            self._runner = web.AppRunner(
                self.app, handle_signals=False, access_log=None, shutdown_timeout=_CLOSE_WAIT
            )
            await self._runner.setup()
        for sock in sockets:
            site = web.SockSite(self._runner, sock, ssl_context=ssl)
            await site.start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    async def _headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(security_headers(request))

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
