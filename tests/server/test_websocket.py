"""The protocol over WebSocket at /ws, beside a JSON-lines TCP port, on one real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import RECV_TIMEOUT, Peer
from support.web import FAST, WebServer

from chinwag.config import ListenSpec, SettingsError, build
from chinwag.net.tls import ensure_self_signed, pinned_context, server_context
from chinwag.server.app import BoundAddress, Server, web_links


class WsPeer:
    """A protocol client over WebSocket: one frame per text message, every wait bounded."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, **frame: Any) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def recv(self, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        msg = await self.ws.receive(timeout)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise EOFError(f"no frame: {msg.type.name} {msg.data!r}")
        frame: dict[str, Any] = json.loads(msg.data)
        return frame

    async def recv_type(self, kind: str, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            frame = await self.recv(max(deadline - asyncio.get_running_loop().time(), 0.01))
            if frame["type"] == kind:
                return frame

    async def hello(self, nick: str, **extra: Any) -> dict[str, Any]:
        await self.send(type="hello", proto=1, nick=nick, **extra)
        welcome = await self.recv()
        assert welcome["type"] == "welcome", welcome
        return await self.recv_type("caught_up")

    async def expect_closed(self) -> list[dict[str, Any]]:
        """The frames until the server closes the WebSocket."""
        frames: list[dict[str, Any]] = []
        while True:
            msg = await self.ws.receive(RECV_TIMEOUT)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
                return frames
            frames.append(json.loads(msg.data))


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebServer]:
    srv = WebServer(tmp_path / "server").start()
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=RECV_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


async def _ws(http: aiohttp.ClientSession, srv: WebServer, **kw: Any) -> WsPeer:
    return WsPeer(await http.ws_connect(f"{srv.base}/ws", **kw))


async def test_a_websocket_and_a_tcp_client_chat_in_a_room_and_by_dm(
    web: WebServer, http: aiohttp.ClientSession, peers: list[Peer]
) -> None:
    browser = await _ws(http, web, origin=web.base)
    await browser.hello("alice")
    tcp = await Peer.connect(web.port)
    peers.append(tcp)
    await tcp.hello("bob")

    await browser.send(type="say", room="lobby", body="hi from the browser", cid="c1", ref="r1")
    ack = await browser.recv_type("ack")
    assert ack["cid"] == "c1" and ack["ref"] == "r1"
    heard = await tcp.recv_type("message")
    assert (heard["from"], heard["body"]) == ("alice", "hi from the browser")
    assert heard["id"] == ack["id"]

    await tcp.send(type="dm", to="alice", body="<img src=x onerror=alert(1)>")
    dm = await browser.recv_type("message")
    if dm["from"] == "alice":  # its own message comes back first, as on TCP
        assert dm["id"] == ack["id"]
        dm = await browser.recv_type("message")
    assert dm["from"] == "bob" and dm["to"] == "alice"
    assert dm["body"] == "<img src=x onerror=alert(1)>"

    await browser.send(type="bye", ref="b")
    closing = await browser.expect_closed()
    assert closing[-1] == {"type": "bye", "ref": "b"}


async def test_bad_frames_get_the_tcp_ports_errors_and_the_session_goes_on(
    web: WebServer, http: aiohttp.ClientSession
) -> None:
    browser = await _ws(http, web)
    await browser.hello("carol")
    await browser.ws.send_str("{not json")
    assert (await browser.recv())["code"] == "bad_frame"
    await browser.ws.send_str("[1, 2]")
    wrong = await browser.recv()
    assert wrong["code"] == "bad_frame" and "JSON object" in wrong["message"]
    await browser.ws.send_str('{"type":"say"}\n{"type":"say"}')
    two = await browser.recv()
    assert two["code"] == "bad_frame" and "line breaks" in two["message"]
    await browser.ws.send_bytes(b'{"type":"say","room":"lobby","body":"x"}')
    binary = await browser.recv()
    assert binary["code"] == "bad_frame" and "text messages" in binary["message"]
    await browser.send(type="say", room="lobby", body="still here", cid="s")
    assert (await browser.recv_type("ack"))["cid"] == "s"


async def test_a_frame_over_the_limit_is_refused_as_on_tcp_and_closes(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    srv = WebServer(tmp_path / "s", {"max_frame_bytes": 1024}).start()
    try:
        browser = await _ws(http, srv)
        await browser.hello("dave")
        # 1023 bytes: with the newline a TCP line would have, exactly the limit.
        fits = json.dumps({"type": "say", "room": "lobby", "body": "", "cid": "f"})
        fits = fits.replace('"body": ""', '"body": "' + "x" * (1023 - len(fits)) + '"')
        assert len(fits) == 1023
        await browser.ws.send_str(fits)
        assert (await browser.recv_type("ack"))["cid"] == "f"
        await browser.ws.send_str(fits.replace('"x', '"xx'))  # 1024 + newline: one over
        frames = await browser.expect_closed()
        assert frames[-1]["code"] == "frame_too_large", frames
        assert "1024 bytes" in frames[-1]["message"]
        # Far over (more than twice the limit): closed as "message too big".
        huge = await _ws(http, srv)
        await huge.ws.send_str("x" * 5000)
        msg = await huge.ws.receive(RECV_TIMEOUT)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009
    finally:
        srv.kill()


async def test_a_foreign_origin_is_refused_and_the_servers_own_and_listed_ones_are_not(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    srv = WebServer(tmp_path / "s", {"ws_origins": "https://chat.example.org"}).start()
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{srv.base}/ws", origin="https://evil.example")
        assert refused.value.status == 403
        async with http.get(f"{srv.base}/ws", headers={"Origin": "https://evil.example"}) as r:
            assert r.status == 403 and "ws_origins" in await r.text()
        for origin in (srv.base, "https://chat.example.org"):
            browser = await _ws(http, srv, origin=origin)
            await browser.hello("erin")
            await browser.ws.close()
    finally:
        srv.kill()


async def test_the_per_address_cap_counts_tcp_and_websocket_together(
    tmp_path: Path, http: aiohttp.ClientSession, peers: list[Peer]
) -> None:
    srv = WebServer(tmp_path / "s", {"max_conns_per_address": 3}).start()
    try:
        for _ in range(2):
            peer = await Peer.connect(srv.port)
            peers.append(peer)
            await peer.send(type="ping")
            assert (await peer.recv())["type"] == "pong"
        browser = await _ws(http, srv)  # the third: admitted
        await browser.send(type="ping")
        assert (await browser.recv())["type"] == "pong"
        over = await _ws(http, srv)  # the fourth, over WebSocket: refused
        frames = await over.expect_closed()
        assert frames[0]["code"] == "rate_limited"
        assert "too many connections" in frames[0]["message"]
        tcp_over = await Peer.connect(srv.port)  # and over TCP too
        peers.append(tcp_over)
        assert (await tcp_over.expect_closed())[0]["code"] == "rate_limited"
        await browser.ws.close()  # one gone: room for one more
        deadline = time.monotonic() + RECV_TIMEOUT
        while True:
            again = await _ws(http, srv)
            await again.send(type="ping")
            frame = await again.recv()
            if frame["type"] == "pong" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert frame["type"] == "pong"
    finally:
        srv.kill()


async def test_the_login_deadline_closes_a_silent_websocket_and_a_silent_connection(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    srv = WebServer(tmp_path / "s", {"prelogin_timeout": 0.5}).start()
    try:
        browser = await _ws(http, srv)
        frames = await browser.expect_closed()
        assert frames and frames[-1]["type"] == "error", frames
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", srv.http_port), RECV_TIMEOUT
        )
        try:  # no request at all: closed, not held
            assert await asyncio.wait_for(reader.read(), RECV_TIMEOUT) == b""
        finally:
            writer.close()
    finally:
        srv.kill()


async def test_kill_9_after_an_ack_the_message_is_there_after_restart(
    web: WebServer, http: aiohttp.ClientSession, peers: list[Peer]
) -> None:
    browser = await _ws(http, web)
    await browser.hello("frank")
    await browser.send(type="register", password="frank-password")
    await browser.recv_type("ok")
    await browser.send(type="say", room="lobby", body="kept over a crash", cid="k1")
    ack = await browser.recv_type("ack")
    web.kill()
    web.start()
    again = await _ws(http, web)
    await again.hello("frank", password="frank-password")
    await again.send(type="history", room="lobby")
    page = await again.recv_type("history")
    assert [(m["id"], m["body"]) for m in page["messages"]] == [(ack["id"], "kept over a crash")]


async def test_the_web_client_is_served_with_strict_headers_and_no_cookie(
    web: WebServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{web.base}/") as r:
        assert r.status == 200 and "<title>chinwag</title>" in await r.text()
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "eval" not in csp
        assert f"connect-src 'self' ws://127.0.0.1:{web.http_port};" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert "Set-Cookie" not in r.headers
    async with http.get(f"{web.base}/index.html") as r:
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    async with http.post(f"{web.base}/", data=b"x") as r:
        assert r.status == 405


@pytest.mark.parametrize(
    "path",
    [
        "/../pyproject.toml",
        "/%2e%2e/%2e%2e/config.py",
        "/%2E%2E/__init__.py",
        "/..%2f__init__.py",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/static/../../__init__.py",
        "/.%2e/.%2e/cli.py",
        "/x%5c..%5c..%5ccli.py",
        "/nothing-here.js",
    ],
)
async def test_nothing_outside_the_web_clients_directory_is_served(
    web: WebServer, path: str
) -> None:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", web.http_port), RECV_TIMEOUT
    )
    # Raw, so that no client library normalises the path first.
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), RECV_TIMEOUT)
    writer.close()
    status = answer.split(b"\r\n", 1)[0]
    assert status in (b"HTTP/1.1 404 Not Found", b"HTTP/1.1 400 Bad Request"), answer[:200]
    assert b"chinwag" not in answer.split(b"\r\n\r\n", 1)[1] or b"not found" in answer


def test_a_symlink_inside_the_directory_is_not_followed(tmp_path: Path) -> None:
    from chinwag.server.web import _static_file

    root = tmp_path / "static"
    root.mkdir()
    (root / "app.js").write_text("ok")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    os.symlink(secret, root / "link.txt")
    os.symlink(tmp_path, root / "up")
    assert _static_file(root, "app.js") == root / "app.js"
    assert _static_file(root, "link.txt") is None
    assert _static_file(root, "up/secret.txt") is None
    assert _static_file(root, "../secret.txt") is None
    assert _static_file(root, "/etc/passwd") is None


def test_http_port_beside_listen_is_refused_saying_what_to_write() -> None:
    with pytest.raises(SettingsError) as info:
        build(None, ["listen=tcp://127.0.0.1:0"], http_port=8081)
    assert "http_port (--http-port)" in str(info.value)
    assert "http://HOST:PORT" in str(info.value)


async def test_http_port_0_serves_no_web_client_and_a_taken_one_only_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    off = build(None, None, host="127.0.0.1", port=0, http_port=0, announce=False)
    server = await Server.open(off, tmp_path / "off")
    try:
        assert [a.spec.protocol for a in server.addresses] == ["chinwag"]
    finally:
        await server.shutdown()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = build(None, None, host="127.0.0.1", port=0, http_port=port, announce=False)
        server = await Server.open(busy, tmp_path / "busy")
        try:
            assert [a.spec.protocol for a in server.addresses] == ["chinwag"]
            assert f"cannot listen on http://127.0.0.1:{port}" in caplog.text
            assert "the web client is off" in caplog.text
        finally:
            await server.shutdown()


async def test_a_browser_that_stops_reading_is_cut_off_and_the_others_go_on(
    tmp_path: Path, http: aiohttp.ClientSession, peers: list[Peer]
) -> None:
    srv = WebServer(
        tmp_path / "s",
        {"out_buffer_limit": 65_536, "rate_per_second": 1e6, "rate_burst": 10**6},
    ).start()
    try:
        sloth = await _ws(http, srv)
        await sloth.hello("sloth")  # from here on it never reads
        sender = await Peer.connect(srv.port)
        peers.append(sender)
        await sender.hello("firehose")
        body = "😀" * 4000  # 16,000 bytes of UTF-8 per message
        sent = acked = 0
        cut_off = False
        deadline = time.monotonic() + 30
        while not cut_off:
            assert time.monotonic() < deadline and sent < 3000, "sloth never cut off"
            for _ in range(20):
                await sender.send(type="say", room="lobby", body=body, cid=f"h{sent}")
                sent += 1
            while acked < sent:
                frame = await sender.recv()
                if frame["type"] == "ack":
                    acked += 1
                elif frame["type"] == "presence":
                    assert (frame["nick"], frame["event"]) == ("sloth", "leave"), frame
                    cut_off = True
                else:
                    assert frame["type"] == "message", frame
        await sender.send(type="ping", ref="alive")
        assert (await sender.recv_type("pong"))["ref"] == "alive"
        # The sloth finally reads: what was buffered, then the end (no close frame).
        while True:
            msg = await sloth.ws.receive(RECV_TIMEOUT)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    finally:
        srv.kill()


async def test_https_serves_the_client_and_wss_with_the_servers_certificate(
    tmp_path: Path,
) -> None:
    cert = ensure_self_signed(tmp_path)
    settings = build(
        None,
        [f"{k}={v}" for k, v in FAST.items()],
        listen=["https://127.0.0.1:0", "tls://127.0.0.1:0"],
        announce=False,
    )
    server = await Server.open(settings, tmp_path, ssl=server_context(cert.cert, cert.key))
    try:
        web, chat = server.addresses
        assert (web.spec.scheme, chat.spec.scheme) == ("https", "tls")
        # The chat listener is the one announced, though the web one is listed first.
        assert server.address == (chat.host, chat.port) and server.tls
        pinned = pinned_context(cert.fingerprint)
        base = f"https://127.0.0.1:{web.port}"
        timeout = aiohttp.ClientTimeout(total=RECV_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.get(f"{base}/", ssl=pinned) as r:
                assert r.status == 200
                assert f"wss://127.0.0.1:{web.port};" in r.headers["Content-Security-Policy"]
            async with http.ws_connect(f"wss://127.0.0.1:{web.port}/ws", ssl=pinned) as ws:
                browser = WsPeer(ws)
                await browser.hello("grace")
                await browser.send(type="say", room="lobby", body="over wss", cid="w")
                assert (await browser.recv_type("ack"))["cid"] == "w"
    finally:
        await server.shutdown()


async def test_a_quiet_websocket_is_pinged_and_closed_when_it_does_not_answer(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    srv = WebServer(tmp_path / "s", {"idle_timeout": 0.3, "pong_timeout": 0.3}).start()
    try:
        browser = await _ws(http, srv)
        await browser.hello("heidi")
        ping = await browser.recv_type("ping")
        await browser.send(type="pong", ref=ping.get("ref"))  # answered: still here
        await browser.send(type="ping", ref="p")
        assert (await browser.recv_type("pong"))["ref"] == "p"
        assert (await browser.recv_type("ping"))["type"] == "ping"  # quiet again
        frames = await browser.expect_closed()  # and this time it does not answer
        assert all(f["type"] != "message" for f in frames)
    finally:
        srv.kill()


async def test_frames_of_every_length_class_reach_a_websocket_whole(
    web: WebServer, http: aiohttp.ClientSession
) -> None:
    browser = await _ws(http, web)
    await browser.hello("ivan")
    await browser.send(type="ping")  # a reply under 126 bytes: the one-byte length
    assert await browser.recv() == {"type": "pong"}
    body = "😀" * 4000  # 16,000 bytes of UTF-8: a two-byte length
    for i in range(5):
        await browser.send(type="say", room="lobby", body=body, cid=f"len{i}")
        assert (await browser.recv_type("ack"))["cid"] == f"len{i}"
    await browser.send(type="history", room="lobby", ref="h")
    page = await browser.recv_type("history")  # 80 KB in one frame: an eight-byte length
    assert [m["body"] for m in page["messages"]] == [body] * 5 and page["ref"] == "h"


def test_the_start_up_link_names_this_machine_on_a_wildcard_address() -> None:
    every = BoundAddress(ListenSpec("http", True, "", 8443), "0.0.0.0", 8443)
    assert web_links(every) == (
        f"https://{socket.gethostname()}:8443/ (on this machine: https://127.0.0.1:8443/)"
    )
    v6 = BoundAddress(ListenSpec("http", False, "::1", 8080), "::1", 8080)
    assert web_links(v6) == "http://[::1]:8080/"


async def _get(port: int) -> bytes:
    """A raw GET / on its own connection: the whole answer."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), RECV_TIMEOUT
    )
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    try:
        return await asyncio.wait_for(reader.read(), RECV_TIMEOUT)
    finally:
        writer.close()


async def test_http_connections_per_address_are_capped_from_accept(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    srv = WebServer(tmp_path / "s", {"http_conns_per_address": 2}).start()
    held: list[asyncio.StreamWriter] = []
    try:
        browser = await _ws(http, srv)  # a WebSocket holds one of the two
        await browser.hello("judy")
        _, idle = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", srv.http_port), RECV_TIMEOUT
        )
        held.append(idle)  # silent: it holds the other
        refused = await _get(srv.http_port)
        assert refused.startswith(b"HTTP/1.1 503 "), refused[:100]
        assert b"too many connections from your address" in refused
        idle.close()  # one gone: the next is served
        deadline = time.monotonic() + RECV_TIMEOUT
        while (answer := await _get(srv.http_port)).startswith(b"HTTP/1.1 503 "):
            assert time.monotonic() < deadline, "the closed connection was never uncounted"
            await asyncio.sleep(0.05)
        assert answer.startswith(b"HTTP/1.1 200 ")
        await browser.send(type="ping", ref="still")  # the WebSocket was not disturbed
        assert (await browser.recv_type("pong"))["ref"] == "still"
    finally:
        for writer in held:
            writer.close()
        srv.kill()


async def _dribble(
    port: int, every: float, limit: float, first: bytes = b""
) -> tuple[float, bytes]:
    """A request's headers one byte every ``every`` s for up to ``limit`` s: when it is cut, how.

    ``first``: a whole request answered first on the same connection (kept alive).
    """
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), RECV_TIMEOUT
    )
    if first:
        writer.write(first)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), RECV_TIMEOUT)
        assert head.startswith(b"HTTP/1.1 200 "), head
    start = time.monotonic()
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
    try:
        for byte in request:
            assert time.monotonic() - start < limit, "the dribbled request was never cut"
            writer.write(bytes((byte,)))
            try:
                answer = await asyncio.wait_for(reader.read(100), every)
            except TimeoutError:
                continue  # still open: the next byte
            except ConnectionError:
                answer = b""
            return time.monotonic() - start, answer
        raise AssertionError("the dribbled request ended before it was cut")
    finally:
        writer.close()


async def test_a_request_dribbled_slower_than_http_request_timeout_is_cut_at_it(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    srv = WebServer(tmp_path / "s", {"http_request_timeout": 1.5}).start()
    try:
        browser = await _ws(http, srv)  # a WebSocket lives longer than the request deadline
        await browser.hello("kim")
        # One byte a quarter second (a byte a second, faster): cut at the deadline, unanswered.
        took, answer = await _dribble(srv.http_port, 0.25, 1.5 + RECV_TIMEOUT)
        assert answer == b"" and 1.4 <= took < 1.5 + RECV_TIMEOUT, (took, answer)
        # The next request on a kept-alive connection: its deadline runs from its first byte.
        head = b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        took, answer = await _dribble(srv.http_port, 0.25, 1.5 + RECV_TIMEOUT, head)
        assert answer == b"" and 1.2 <= took < 1.5 + RECV_TIMEOUT, (took, answer)
        # A body the server does not read, dribbled after the answer: closed as long after.
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", srv.http_port), RECV_TIMEOUT
        )
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), RECV_TIMEOUT)
            assert head.startswith(b"HTTP/1.1 200 "), head
            start = time.monotonic()

            async def body() -> None:
                while True:
                    writer.write(b"b")
                    await asyncio.sleep(0.25)

            dribbling = asyncio.ensure_future(body())
            try:
                with contextlib.suppress(ConnectionError):
                    await asyncio.wait_for(reader.read(), 1.5 + RECV_TIMEOUT)
            finally:
                dribbling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dribbling
            assert 1.2 <= time.monotonic() - start < 1.5 + RECV_TIMEOUT
        finally:
            writer.close()
        # A request that takes a while but less than the deadline is served.
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", srv.http_port), RECV_TIMEOUT
        )
        try:
            for piece in (
                b"GET / HT",
                b"TP/1.1\r\nHost: 127.0.0.1\r\n",
                b"Connection: close\r\n\r\n",
            ):
                writer.write(piece)
                await asyncio.sleep(0.2)
            answer = await asyncio.wait_for(reader.read(), RECV_TIMEOUT)
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
        finally:
            writer.close()
        await browser.send(type="ping", ref="alive")  # the WebSocket was not cut
        assert (await browser.recv_type("pong"))["ref"] == "alive"
    finally:
        srv.kill()


async def test_web_connections_of_the_whole_server_are_capped_from_accept(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    srv = WebServer(tmp_path / "s", {"http_conns_max": 2}).start()
    held: list[asyncio.StreamWriter] = []
    try:
        browser = await _ws(http, srv)  # one of the two
        await browser.hello("leo")
        _, idle = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", srv.http_port), RECV_TIMEOUT
        )
        held.append(idle)  # the other (the per-address cap, 64, is far)
        refused = await _get(srv.http_port)
        assert refused.startswith(b"HTTP/1.1 503 "), refused[:100]
        assert b"Retry-After: 10" in refused and b"http_conns_max" in refused
        idle.close()  # one gone: the next is served
        deadline = time.monotonic() + RECV_TIMEOUT
        while (answer := await _get(srv.http_port)).startswith(b"HTTP/1.1 503 "):
            assert time.monotonic() < deadline, "the closed connection was never uncounted"
            await asyncio.sleep(0.05)
        assert answer.startswith(b"HTTP/1.1 200 ")
        await browser.send(type="ping", ref="still")
        assert (await browser.recv_type("pong"))["ref"] == "still"
    finally:
        for writer in held:
            writer.close()
        srv.kill()


async def test_binary_and_text_bad_frames_share_one_max_bad_frames_count(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    srv = WebServer(tmp_path / "s", {"max_bad_frames": 3}).start()
    try:
        browser = await _ws(http, srv)
        await browser.hello("mia")
        await browser.ws.send_str("{not json")
        await browser.ws.send_bytes(b'{"type":"ping"}')
        assert [(await browser.recv())["code"] for _ in range(2)] == ["bad_frame"] * 2
        await browser.send(type="ping", ref="two")  # two bad frames: still open
        assert (await browser.recv_type("pong"))["ref"] == "two"
        await browser.ws.send_str('{"type":"ping"}\n{"type":"ping"}')  # the third closes
        frames = await browser.expect_closed()
        assert [f.get("code") for f in frames] == ["bad_frame"], frames
    finally:
        srv.kill()


async def test_https_handshakes_count_in_the_servers_tls_handshake_caps(
    tmp_path: Path,
) -> None:
    cert = ensure_self_signed(tmp_path)
    settings = build(
        None,
        [f"{k}={v}" for k, v in FAST.items()] + ["tls_handshakes_per_address=1"],
        listen=["https://127.0.0.1:0", "tls://127.0.0.1:0"],
        announce=False,
    )
    server = await Server.open(settings, tmp_path, ssl=server_context(cert.cert, cert.key))
    try:
        web, chat = server.addresses
        pinned = pinned_context(cert.fingerprint)
        url = f"https://127.0.0.1:{web.port}/"
        # A connection to the chat TLS port that never says hello holds the one handshake.
        _, silent = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", chat.port), RECV_TIMEOUT
        )
        timeout = aiohttp.ClientTimeout(total=RECV_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.get(url, ssl=pinned) as r:
                    await r.read()
            silent.close()  # the handshake is no longer in flight: HTTPS is served
            deadline = time.monotonic() + RECV_TIMEOUT
            while True:
                try:
                    async with http.get(url, ssl=pinned) as r:
                        assert r.status == 200
                        break
                except aiohttp.ClientError:
                    assert time.monotonic() < deadline, "the handshake was never uncounted"
                    await asyncio.sleep(0.05)
    finally:
        await server.shutdown()


def test_http_request_timeout_and_http_conns_max_refuse_zero_and_take_their_least() -> None:
    with pytest.raises(SettingsError, match="http_request_timeout must be above 0"):
        build(None, ["http_request_timeout=0"])
    with pytest.raises(SettingsError, match="http_conns_max must be at least 1"):
        build(None, ["http_conns_max=0"])
    settings = build(None, ["http_request_timeout=0.01", "http_conns_max=1"])
    assert (settings.http_request_timeout, settings.http_conns_max) == (0.01, 1)
