"""Hostile and broken clients against a real server process (protocol v1 §1, §3 flood, §6).

Framing limits, strict JSON, the bad-frame limit, flood control, slow readers, the
per-address connection cap, SIGTERM, and the rule that nothing internal (a
traceback) ever reaches a client and one connection's trouble never reaches another.
Every frame any test receives goes through `check_frame`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RECV_TIMEOUT, Peer, ServerProcess
from server_checks import CheckedPeer, check_frame
from support.peers import PeerMaker

LIMIT = 65_536  # default max_frame_bytes, "\r\n" included
CHEAP = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}


class Client(CheckedPeer):
    """A checked peer with the helpers of this module."""

    async def alive(self, ref: str = "alive") -> None:
        """Prove the connection still works: a ping gets its pong (messages may precede it)."""
        await self.send(type="ping", ref=ref)
        while (frame := await self.reply())["type"] == "message":
            pass
        assert frame == {"type": "pong", "ref": ref}

    async def read_to_end(self, timeout: float = RECV_TIMEOUT) -> tuple[list[dict[str, Any]], str]:
        """Frames until the server ends the connection, and how: "eof" or "reset".

        Like any asyncio stream client, it loses what it had buffered but not yet read
        once a reset arrives; `RawClient.read_to_end` does not.
        """
        frames: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                frames.append(await self.recv(max(left, 0.01)))
            except EOFError:
                return frames, "eof"
            except ConnectionResetError:
                return frames, "reset"


_maker = PeerMaker(Client)
connect, login = _maker.connect, _maker.login


_serial = itertools.count(1)


def fresh(nick: str) -> str:
    """A nick no earlier test used: on the shared server a closed peer's guest nick
    stays held until the server notices the close."""
    return f"{nick}{next(_serial)}"


def line(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame, ensure_ascii=False).encode() + b"\n"


def padded_ping(total: int, ref: str, terminator: bytes = b"\n") -> bytes:
    """A ping frame of exactly ``total`` bytes, terminator included (padded by an unknown field)."""
    head = b'{"type":"ping","ref":"' + ref.encode() + b'","pad":"'
    tail = b'"}' + terminator
    return head + b"x" * (total - len(head) - len(tail)) + tail


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the stateless cases; each case uses fresh connections."""
    srv = ServerProcess(tmp_path_factory.mktemp("hostile"), CHEAP).start()
    try:
        yield srv
    finally:
        srv.kill()


def assert_running(srv: ServerProcess) -> None:
    assert srv.proc is not None and srv.proc.poll() is None, srv.log()[-3000:]


class RawClient:
    """A plain non-blocking socket, read only when asked.

    Unlike a stream reader, it still returns the frames that arrived before a reset:
    the kernel hands out queued data before it reports ECONNRESET.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def connect(cls, port: int, rcvbuf: int | None = None) -> RawClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        client = cls(sock)
        try:
            await asyncio.wait_for(client.loop.sock_connect(sock, ("127.0.0.1", port)), 5)
        except BaseException:
            sock.close()
            raise
        return client

    async def send_raw(self, data: bytes) -> None:
        """Send; a server that closes meanwhile is not an error here."""
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(self.loop.sock_sendall(self.sock, data), 5)

    async def send(self, **frame: Any) -> None:
        await asyncio.wait_for(self.loop.sock_sendall(self.sock, line(frame)), 5)

    async def recv(self) -> dict[str, Any]:
        while b"\n" not in self.buf:
            chunk = await asyncio.wait_for(self.loop.sock_recv(self.sock, 65536), 5)
            if not chunk:
                raise EOFError
            self.buf += chunk
        raw, _, rest = bytes(self.buf).partition(b"\n")
        self.buf = bytearray(rest)
        frame: dict[str, Any] = json.loads(raw)
        check_frame(frame)
        return frame

    async def hello(self, nick: str, **extra: Any) -> None:
        await self.send(type="hello", proto=1, nick=nick, **extra)
        while (frame := await self.recv())["type"] != "caught_up":
            assert frame["type"] in ("welcome", "message"), frame

    async def read_to_end(
        self, timeout: float = RECV_TIMEOUT, *, cut: bool = False
    ) -> tuple[list[dict[str, Any]], str]:
        """Every frame until the server ends the connection, and how: "eof" or "reset".

        With ``cut`` the last frame may be cut short (an abort); it is then left out.
        """
        deadline = self.loop.time() + timeout
        how = ""
        while not how:
            left = deadline - self.loop.time()
            assert left > 0, "the server did not close the connection"
            try:
                chunk = await asyncio.wait_for(self.loop.sock_recv(self.sock, 1 << 20), left)
            except ConnectionResetError:
                how = "reset"
                continue
            if not chunk:
                how = "eof"
            self.buf += chunk
        lines = bytes(self.buf).split(b"\n")
        assert cut or lines[-1] == b"", "the server's last frame was cut short"
        frames = [json.loads(raw) for raw in lines[:-1]]
        for frame in frames:
            check_frame(frame)
        return frames, how

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raws() -> Iterator[list[RawClient]]:
    """A list that tests append their RawClients to; all are closed at the end."""
    made: list[RawClient] = []
    yield made
    for client in made:
        client.close()


async def raw_connect(raws: list[RawClient], port: int, rcvbuf: int | None = None) -> RawClient:
    client = await RawClient.connect(port, rcvbuf)
    raws.append(client)
    return client


# --- framing ---------------------------------------------------------------------


async def test_crlf_accepted_and_empty_lines_ignored(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    c = await connect(peers, shared.port)
    await c.send_raw(b'\n\r\n\n{"type":"ping","ref":"a"}\r\n\r\n\n{"type":"ping","ref":"b"}\n\n')
    assert await c.recv() == {"type": "pong", "ref": "a"}
    assert await c.recv() == {"type": "pong", "ref": "b"}
    assert await c.quiet(0.3) == []  # the empty lines got no reply at all
    await c.alive()


TERMINATORS = pytest.mark.parametrize("terminator", [b"\n", b"\r\n"], ids=["lf", "crlf"])
# Whole: one write. Split: the line's end comes in a later read than its start, so the
# limit must hold across reads, not only within one.
SPLITS = pytest.mark.parametrize("split", [0, 60_000], ids=["whole", "split"])


async def send_split(c: Client | RawClient, data: bytes, split: int) -> None:
    if split:
        await c.send_raw(data[:split])
        await asyncio.sleep(0.05)
        data = data[split:]
    await c.send_raw(data)


@TERMINATORS
@SPLITS
async def test_a_line_of_exactly_the_limit_is_accepted(
    shared: ServerProcess, peers: list[Peer], terminator: bytes, split: int
) -> None:
    c = await login(peers, shared.port, fresh("exact"))
    frame = padded_ping(LIMIT, "exact", terminator)
    assert len(frame) == LIMIT
    await send_split(c, frame, split)
    assert await c.reply() == {"type": "pong", "ref": "exact"}
    await c.alive()


@TERMINATORS
@SPLITS
async def test_one_byte_over_the_limit_is_frame_too_large_then_closed(
    shared: ServerProcess, raws: list[RawClient], terminator: bytes, split: int
) -> None:
    c = await raw_connect(raws, shared.port)
    await c.hello(fresh("over"))
    await send_split(c, padded_ping(LIMIT + 1, "over", terminator), split)
    frames, _ = await c.read_to_end()
    frames = [f for f in frames if f["type"] != "presence"]
    assert [(f["type"], f.get("code")) for f in frames] == [("error", "frame_too_large")]
    assert_running(shared)


async def test_overlong_line_without_newline_is_refused_before_any_newline(
    shared: ServerProcess, raws: list[RawClient]
) -> None:
    # LIMIT bytes and no newline yet: whatever follows, the line is too long.
    c = await raw_connect(raws, shared.port)
    await c.send_raw(padded_ping(LIMIT + 1, "nonl")[:-1])
    frames, _ = await c.read_to_end()
    assert [(f["type"], f.get("code")) for f in frames] == [("error", "frame_too_large")]


async def test_a_line_one_byte_short_of_the_limit_waits_for_its_newline(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    c = await connect(peers, shared.port)
    whole = padded_ping(LIMIT, "patient")
    await c.send_raw(whole[:-1])  # LIMIT - 1 bytes, no newline: may still be fine
    assert await c.quiet(0.5) == []
    await c.send_raw(b"\n")
    assert await c.recv() == {"type": "pong", "ref": "patient"}


async def test_what_follows_an_overlong_line_is_never_parsed(
    shared: ServerProcess, raws: list[RawClient]
) -> None:
    c = await raw_connect(raws, shared.port)
    await c.send_raw(
        b'{"type":"ping","ref":"before"}\n'
        + b"x" * 70_000
        + b'\n{"type":"ping","ref":"tail"}\n{"type":"ping","ref":"tail2"}\n'
    )
    frames, _ = await c.read_to_end()
    assert frames[0] == {"type": "pong", "ref": "before"}
    assert [(f["type"], f.get("code")) for f in frames[1:]] == [("error", "frame_too_large")]


async def test_the_frame_too_large_error_survives_a_client_that_reads_late(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    # A user pastes a 1 MB file; the client reads the server's answer a little later.
    c = await connect(peers, shared.port)
    await c.alive()
    with contextlib.suppress(ConnectionError):
        await c.send_raw(b"x" * 1_000_000 + b"\n")
    await asyncio.sleep(0.2)
    frames, how = await c.read_to_end()
    assert [(f["type"], f.get("code")) for f in frames] == [("error", "frame_too_large")]
    assert how == "eof"


async def test_a_frame_split_byte_by_byte_still_works(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    c = await connect(peers, shared.port)
    c.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = line({"type": "ping", "ref": "é€😀-split"})  # multi-byte UTF-8 split too
    for i in range(len(data)):
        await c.send_raw(data[i : i + 1])
        await asyncio.sleep(0.002)
    assert await c.recv() == {"type": "pong", "ref": "é€😀-split"}


async def test_several_frames_in_one_write_are_answered_in_order(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    c = await login(peers, shared.port, fresh("batcher"))
    await c.send_raw(
        line({"type": "ping", "ref": "1"})
        + line({"type": "join", "room": "batch", "ref": "2"})
        + line({"type": "who", "room": "batch", "ref": "3"})
        + line({"type": "frobnicate", "ref": "4"})
        + line({"type": "ping", "ref": "5"})
    )
    got = [await c.reply() for _ in range(5)]
    assert [(f["type"], f.get("ref")) for f in got] == [
        ("pong", "1"),
        ("ok", "2"),
        ("who", "3"),
        ("error", "4"),
        ("pong", "5"),
    ]


# --- strict JSON -------------------------------------------------------------------

BAD_FRAMES = {
    "invalid-utf8": b'{"type":"ping","x":"\xff"}',
    "overlong-utf8": b'{"type":"ping","x":"\xc0\xaf"}',
    "utf8-encoded-surrogate": b'{"type":"ping","x":"\xed\xa0\x80"}',
    "truncated-utf8": b'{"type":"ping","x":"\xe2\x82"}',
    "not-json": b"hello server",
    "unterminated": b'{"type":"ping"',
    "trailing-comma": b'{"type":"ping",}',
    "single-quotes": b"{'type':'ping'}",
    "two-objects": b'{"type":"ping"} {"type":"ping"}',
    "raw-control-in-string": b'{"type":"ping","x":"a\x01b"}',
    "array": b'["type","ping"]',
    "empty-array": b"[]",
    "string": b'"ping"',
    "number": b"42",
    "null": b"null",
    "true": b"true",
    "no-type": b'{"ref":"r"}',
    "empty-object": b"{}",
    "type-number": b'{"type":1}',
    "type-null": b'{"type":null}',
    "type-array": b'{"type":["ping"]}',
    "type-object": b'{"type":{"ping":1}}',
    "type-bool": b'{"type":true}',
    "nan": b'{"type":"ping","x":NaN}',
    "infinity": b'{"type":"ping","x":Infinity}',
    "minus-infinity": b'{"type":"ping","x":-Infinity}',
    "float-overflow": b'{"type":"ping","x":1e400}',
    "duplicate-type": b'{"type":"ping","type":"ping"}',
    "duplicate-field": b'{"type":"ping","ref":"a","ref":"b"}',
    "duplicate-nested": b'{"type":"ping","x":{"a":1,"a":2}}',
    "surrogate-in-body": b'{"type":"say","room":"lobby","body":"hi \\ud800 there"}',
    "low-surrogate-in-body": b'{"type":"say","room":"lobby","body":"\\udfff"}',
    "reversed-pair-in-body": b'{"type":"say","room":"lobby","body":"\\ude00\\ud83d"}',
    "surrogate-in-key": b'{"type":"ping","\\ud800":1}',
    "surrogate-in-nested-key": b'{"type":"ping","x":[{"\\udc00":1}]}',
    "surrogate-in-type": b'{"type":"ping\\ud800"}',
    "int-2**53+1": b'{"type":"ping","n":9007199254740993}',
    "int-minus-2**53-1": b'{"type":"ping","n":-9007199254740993}',
    "int-huge": b'{"type":"seen","upto":' + b"9" * 400 + b"}",
    "int-5000-digits": b'{"type":"ping","n":' + b"1" * 5000 + b"}",
    "depth-33": b'{"type":"ping","x":' + b"[" * 32 + b"]" * 32 + b"}",
    "depth-33-objects": b'{"type":"ping","x":' + b'{"a":' * 32 + b"1" + b"}" * 32 + b"}",
    "depth-30000": b'{"type":"ping","x":' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    "depth-unclosed": b'{"type":"ping","x":' + b"[" * 60_000,
}


@pytest.mark.parametrize("data", list(BAD_FRAMES.values()), ids=list(BAD_FRAMES))
async def test_bad_frame_keeps_the_connection_open(
    shared: ServerProcess, peers: list[Peer], data: bytes
) -> None:
    nick = fresh("strict")
    c = await login(peers, shared.port, nick)
    await c.send_raw(data + b"\n")
    await c.error("bad_frame")
    await c.alive()
    # Nothing that was refused was stored.
    await c.send(type="history", room="lobby", ref="h")
    page = await c.reply()
    assert page["type"] == "history" and page["ref"] == "h", page
    assert [m["body"] for m in page["messages"] if m["from"] == nick] == []
    assert_running(shared)


async def test_bad_frame_before_login_too(shared: ServerProcess, peers: list[Peer]) -> None:
    c = await connect(peers, shared.port)
    await c.send_raw(b'{"type":"hello","proto":1,"nick":"x","nick":"y"}\n')
    await c.error("bad_frame")
    await c.alive()


ACCEPTED = {
    "depth-32": b'{"type":"ping","ref":"ok","x":' + b"[" * 31 + b"]" * 31 + b"}",
    "int-2**53-1": b'{"type":"ping","ref":"ok","n":9007199254740991}',
    "int-minus-2**53+1": b'{"type":"ping","ref":"ok","n":-9007199254740991}',
    "unknown-fields": b'{"type":"ping","ref":"ok","x":{"y":[1,2.5,null,true,"\\u00e9"]}}',
    "whitespace": b' \t{ "type" : "ping" , "ref" : "ok" } \t',
    "escaped-ascii": b'{"\\u0074ype":"\\u0070ing","ref":"\\u006fk"}',
}


@pytest.mark.parametrize("data", list(ACCEPTED.values()), ids=list(ACCEPTED))
async def test_strict_but_valid_json_is_accepted(
    shared: ServerProcess, peers: list[Peer], data: bytes
) -> None:
    c = await connect(peers, shared.port)
    await c.send_raw(data + b"\n")
    assert await c.recv() == {"type": "pong", "ref": "ok"}


async def test_a_valid_surrogate_pair_is_a_character(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    c = await login(peers, shared.port, fresh("pairs"))
    await c.send_raw(b'{"type":"ping","ref":"\\ud83d\\ude00"}\n')
    assert await c.reply() == {"type": "pong", "ref": "😀"}
    await c.send_raw(b'{"type":"say","room":"lobby","body":"a\\ud83d\\ude00b","ref":"s"}\n')
    ack = await c.reply()
    assert ack["type"] == "ack" and ack["ref"] == "s", ack
    message = await c.recv_type("message")
    assert message["body"] == "a😀b"


async def test_nesting_100000_deep_is_refused_and_others_are_served(
    tmp_path: Path, peers: list[Peer]
) -> None:
    # 100,000 levels need 200 KB; raise the line limit so the parser really sees them.
    srv = ServerProcess(tmp_path / "deep", {**CHEAP, "max_frame_bytes": 1_000_000}).start()
    try:
        bystander = await login(peers, srv.port, "bystander")
        c = await login(peers, srv.port, "deep")
        for data in (
            b'{"type":"ping","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            b'{"type":"ping","x":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}",
            b"[" * 100_000 + b"]" * 100_000,
            b'{"type":"ping","x":' + b"[" * 200_000,
        ):
            await c.send_raw(data + b"\n")
            await c.error("bad_frame")
        await c.alive()
        await bystander.send(type="say", room="lobby", body="still here", ref="s")
        assert (await bystander.reply())["type"] == "ack"
        assert_running(srv)
    finally:
        srv.kill()


@pytest.mark.parametrize(
    "body",
    ["a\x00b", "bell\x07", "\x1b[31mred", "del\x7f", "c1\x85", "c1\x9b", "cr\r", "\x0b", "\x0c"],
    ids=["nul", "bel", "esc", "del", "nel", "csi", "cr", "vt", "ff"],
)
async def test_control_characters_in_a_body_are_bad_body(
    shared: ServerProcess, peers: list[Peer], body: str
) -> None:
    nick = fresh("ctl")
    c = await login(peers, shared.port, nick)
    await c.send(type="say", room="lobby", body=body, ref="b", cid="ctl-1")
    await c.error("bad_body", "b")
    await c.send(type="dm", to=nick, body=body, ref="d", cid="ctl-2")
    await c.error("bad_body", "d")
    # Newline and tab are allowed; nothing of the refused ones was stored.
    await c.send(type="say", room="lobby", body="line\nnext\tcol", ref="ok", cid="ctl-3")
    ack = await c.reply()
    assert ack["type"] == "ack" and ack["ref"] == "ok", ack
    await c.send(type="history", room="lobby", ref="h")
    page = await c.recv_type("history")
    mine = [m["body"] for m in page["messages"] if m["from"] == nick]
    assert mine == ["line\nnext\tcol"]


async def test_unknown_type(shared: ServerProcess, peers: list[Peer]) -> None:
    c = await login(peers, shared.port, fresh("unknown"))
    for kind in ("frobnicate", "", "PING", "Say", "welcome", "error"):
        await c.send(type=kind, ref="u")
        await c.error("unknown_type", "u")
    await c.alive()


BAD_REQUESTS = [
    {"type": "say", "room": "lobby"},
    {"type": "say", "body": "x"},
    {"type": "say", "room": "lobby", "body": 5},
    {"type": "say", "room": None, "body": "x"},
    {"type": "say", "room": ["lobby"], "body": "x"},
    {"type": "say", "room": "lobby", "body": "x", "cid": 7},
    {"type": "say", "room": "lobby", "body": "x", "cid": "c" * 65},
    {"type": "dm", "body": "x"},
    {"type": "dm", "to": 1, "body": "x"},
    {"type": "join"},
    {"type": "join", "room": 3},
    {"type": "leave", "room": {}},
    {"type": "who"},
    {"type": "history"},
    {"type": "history", "room": "lobby", "with": "bob"},
    {"type": "history", "room": "lobby", "before": "10"},
    {"type": "history", "room": "lobby", "limit": "all"},
    {"type": "history", "room": "lobby", "limit": True},
    {"type": "register"},
    {"type": "register", "password": 12345678},
    {"type": "passwd", "old": "x"},
    {"type": "hello", "proto": 1},
    {"type": "ping", "ref": 5},
    {"type": "ping", "ref": "r" * 65},
    {"type": "ping", "ref": ["r"]},
    {"type": "say", "room": "lobby", "body": "x", "ref": 1.5},
]


@pytest.mark.parametrize("frame", BAD_REQUESTS, ids=[json.dumps(f)[:60] for f in BAD_REQUESTS])
async def test_missing_or_ill_typed_fields_are_bad_request(
    shared: ServerProcess, peers: list[Peer], frame: dict[str, Any]
) -> None:
    c = await login(peers, shared.port, fresh("fields"))
    await c.send(**frame)
    error = await c.reply()
    assert error["type"] == "error" and error["code"] == "bad_request", error
    ref = frame.get("ref")
    if isinstance(ref, str) and len(ref) <= 64:
        assert error.get("ref") == ref
    await c.alive()


async def test_ref_of_64_chars_is_fine_and_echoed_on_every_reply(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    c = await login(peers, shared.port, fresh("echo"))
    ref64 = "r" * 64
    await c.send(type="ping", ref=ref64)
    assert await c.reply() == {"type": "pong", "ref": ref64}
    requests: list[tuple[dict[str, Any], str, str | None]] = [
        ({"type": "join", "room": "echoes"}, "ok", None),
        ({"type": "say", "room": "echoes", "body": "hi", "cid": "e1"}, "ack", None),
        ({"type": "say", "room": "nowhere", "body": "hi"}, "error", "not_member"),
        ({"type": "who", "room": "echoes"}, "who", None),
        ({"type": "rooms"}, "rooms", None),
        ({"type": "history", "room": "echoes"}, "history", None),
        ({"type": "join", "room": "NO SPACES"}, "error", "bad_room"),
        ({"type": "leave", "room": "lobby"}, "error", "forbidden"),
        ({"type": "hello", "proto": 1, "nick": "echo"}, "error", "bad_request"),
        ({"type": "frobnicate"}, "error", "unknown_type"),
        ({"type": "say", "room": "lobby"}, "error", "bad_request"),
        ({"type": "ping"}, "pong", None),
    ]
    for i, (request, kind, code) in enumerate(requests):
        ref = f"ref-{i}-é"
        await c.send(**request, ref=ref)
        while (got := await c.reply())["type"] == "message":
            pass
        assert got["type"] == kind and got.get("ref") == ref, (request, got)
        if code is not None:
            assert got["code"] == code, got


# --- the bad-frame limit -------------------------------------------------------------


async def test_nine_bad_frames_are_fine(shared: ServerProcess, peers: list[Peer]) -> None:
    c = await login(peers, shared.port, fresh("nine"))
    await c.send_raw(b"junk\n" * 9)
    for _ in range(9):
        await c.error("bad_frame")
    await c.alive()
    await c.send(type="say", room="lobby", body="still talking", ref="s")
    assert (await c.reply())["type"] == "ack"


async def test_the_tenth_bad_frame_is_answered_then_the_connection_closed(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    c = await login(peers, shared.port, fresh("ten"))
    other = await login(peers, shared.port, fresh("neighbour"))
    # Good frames in between do not reset the count.
    for i in range(10):
        await c.send_raw(b"[]\n" + line({"type": "ping", "ref": f"p{i}"}))
    frames = [f for f in await c.expect_closed() if f["type"] != "presence"]
    errors = [f for f in frames if f["type"] == "error"]
    assert len(errors) == 10 and all(f["code"] == "bad_frame" for f in errors), frames
    assert frames[-1]["type"] == "error", frames  # the tenth error, then EOF
    assert [f["ref"] for f in frames if f["type"] == "pong"] == [f"p{i}" for i in range(9)]
    await other.alive()


async def test_bad_requests_and_unknown_types_never_close_the_connection(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    c = await login(peers, shared.port, fresh("clumsy"))
    await c.send_raw(
        line({"type": "frobnicate"}) * 15
        + line({"type": "say", "room": "lobby"}) * 15
        + line({"type": "say", "room": "lobby", "body": "\x00"}) * 15
        + line({"type": "join", "room": "!!"}) * 15
    )
    codes = [(await c.error(code))["code"] for code in ["unknown_type"] * 15]
    codes += [(await c.error(code))["code"] for code in ["bad_request"] * 15]
    codes += [(await c.error(code))["code"] for code in ["bad_body"] * 15]
    codes += [(await c.error(code))["code"] for code in ["bad_room"] * 15]
    assert len(codes) == 60
    await c.alive()


async def test_garbage_on_some_connections_never_affects_another(
    shared: ServerProcess, peers: list[Peer]
) -> None:
    rng = random.Random(20261124)
    talker = await login(peers, shared.port, fresh("talker"))
    listener = await login(peers, shared.port, fresh("listener"))

    async def spew(seed: int) -> None:
        r = random.Random(seed)
        c = await connect(peers, shared.port)
        if seed % 2:
            await c.hello(fresh("spew"))
        pieces = [
            b"\xff\xfe",
            b"{",
            b"}",
            b"[",
            b'"',
            b"\\u",
            b"\\ud800",
            b"\n",
            b"\r\n",
            b'{"type":',
            b'"say"',
            b"NaN",
            b"\x00",
            b",",
            b":",
            b"9" * 30,
            bytes(r.randrange(256) for _ in range(8)),
        ]
        data = b"".join(r.choice(pieces) for _ in range(400)) + b"\n"
        with contextlib.suppress(ConnectionError):
            await c.send_raw(data)
            await c.send_raw(b"[]\n" * 10)  # make sure it reaches the bad-frame limit
        # Every frame it gets is a well-formed reply, then the server closes it.
        with contextlib.suppress(ConnectionError):
            await c.expect_closed()

    async def chat() -> list[int]:
        ids = []
        for i in range(10):
            await talker.send(type="say", room="lobby", body=f"calm {i}", cid=f"calm-{i}")
            while (frame := await talker.recv())["type"] != "ack":
                pass
            ids.append(frame["id"])
        return ids

    results = await asyncio.gather(chat(), *(spew(rng.randrange(10**6)) for _ in range(6)))
    ids = results[0]
    got: list[int] = []
    while len(got) < 10:
        frame = await listener.recv()
        if frame["type"] == "message":
            got.append(frame["id"])
    assert got == ids
    await listener.alive()
    assert_running(shared)


# --- flood control --------------------------------------------------------------------


async def test_a_burst_of_25_is_limited_near_the_burst_size(
    server: ServerProcess, peers: list[Peer]
) -> None:
    c = await login(peers, server.port, "flood")
    await c.send_raw(
        b"".join(
            line({"type": "say", "room": "lobby", "body": f"m{i}", "cid": f"f{i}", "ref": f"r{i}"})
            for i in range(25)
        )
        # A repeat of an acked cid while limited, with another body: the original ack.
        + line({"type": "say", "room": "lobby", "body": "other", "cid": "f0", "ref": "again"})
    )
    replies: dict[str, dict[str, Any]] = {}
    while len(replies) < 26:
        frame = await c.reply()
        if frame["type"] != "message":
            replies[frame["ref"]] = frame
    acks = [replies[f"r{i}"] for i in range(25) if replies[f"r{i}"]["type"] == "ack"]
    limited = [replies[f"r{i}"] for i in range(25) if replies[f"r{i}"]["type"] != "ack"]
    assert 20 <= len(acks) <= 22, replies
    for error in limited:
        assert error["type"] == "error" and error["code"] == "rate_limited", error
        assert isinstance(error["retry_after"], int | float) and error["retry_after"] > 0, error
    assert replies["again"]["type"] == "ack", replies["again"]
    assert replies["again"]["id"] == replies["r0"]["id"]
    assert replies["again"]["cid"] == "f0"
    # Only the acked messages were stored, once each. (history is paid from the
    # same budget as say: it waits out the limit too.)
    await asyncio.sleep(max(error["retry_after"] for error in limited))
    await c.send(type="history", room="lobby", ref="h")
    page = await c.recv_type("history")
    assert sorted(m["id"] for m in page["messages"]) == sorted(a["id"] for a in acks)
    assert "other" not in [m["body"] for m in page["messages"]]


async def test_repeats_do_not_spend_flood_tokens(tmp_path: Path, peers: list[Peer]) -> None:
    srv = ServerProcess(
        tmp_path / "tokens", {**CHEAP, "rate_per_second": 0.01, "rate_burst": 5}
    ).start()
    try:
        c = await login(peers, srv.port, "thrifty")

        async def say(cid: str) -> dict[str, Any]:
            await c.send(type="say", room="lobby", body=cid, cid=cid, ref=cid)
            while (frame := await c.reply())["type"] == "message":
                pass
            assert frame["ref"] == cid, frame
            return frame

        first = [await say(f"t{i}") for i in range(2)]
        assert all(f["type"] == "ack" for f in first)
        for _ in range(5):  # ten repeats: free
            for i in range(2):
                again = await say(f"t{i}")
                assert again["type"] == "ack" and again["id"] == first[i]["id"], again
        for i in range(2, 5):  # the three tokens left
            assert (await say(f"t{i}"))["type"] == "ack"
        over = await say("t5")
        assert over["type"] == "error" and over["code"] == "rate_limited", over
        assert over["retry_after"] > 0
        # A refused cid was not remembered: its repeat is refused too, not acked.
        again = await say("t5")
        assert again["type"] == "error" and again["code"] == "rate_limited", again
    finally:
        srv.kill()


# --- slow readers -------------------------------------------------------------------


async def test_a_slow_reader_is_cut_off_and_catches_up_from_storage(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(
        tmp_path / "slow",
        {**CHEAP, "out_buffer_limit": 65_536, "rate_per_second": 1e6, "rate_burst": 10**6},
    ).start()
    slow = await RawClient.connect(srv.port, rcvbuf=4096)
    try:
        await slow.hello("sloth", device="phone")
        await slow.send(type="register", password="sloth-password", ref="reg")
        while (frame := await slow.recv())["type"] != "ok":
            assert frame["type"] != "error", frame
        # From here on the sloth never reads.
        sender = await login(peers, srv.port, "firehose")
        body = "😀" * 4000  # 16,000 bytes of UTF-8 per message
        acked: list[int] = []
        cut_off = False
        deadline = time.monotonic() + 30
        while not cut_off:
            assert time.monotonic() < deadline and len(acked) < 3000, "sloth never cut off"
            n = len(acked)
            await sender.send_raw(
                b"".join(
                    line({"type": "say", "room": "lobby", "body": body, "cid": f"h{n + i}"})
                    for i in range(20)
                )
            )
            got = 0
            while got < 20:
                frame = await sender.recv()
                if frame["type"] == "ack":
                    acked.append(frame["id"])
                    got += 1
                elif frame["type"] == "presence" and frame["nick"] == "sloth":
                    assert frame["event"] == "leave", frame
                    cut_off = True
                else:
                    assert frame["type"] == "message", frame
        # The others are still served.
        await sender.alive()
        newcomer = await login(peers, srv.port, "newcomer")
        await newcomer.send(type="say", room="lobby", body="hello?", ref="n")
        assert (await newcomer.reply())["type"] == "ack"
        # The sloth finally reads: what was buffered, then the end.
        _, how = await slow.read_to_end(timeout=10, cut=True)
        assert how in ("eof", "reset")
        # Its messages waited in storage: all of them come in the next backlog.
        back = await connect(peers, srv.port)
        await back.send(
            type="hello", proto=1, nick="sloth", password="sloth-password", device="phone"
        )
        assert (await back.recv())["type"] == "welcome"
        replayed = []
        while (frame := await back.recv())["type"] == "message":
            assert frame["replay"] is True
            replayed.append(frame["id"])
        assert frame["type"] == "caught_up", frame
        assert replayed == sorted(replayed)
        assert set(acked) <= set(replayed)
        assert frame["missed"] == len(replayed)
        assert frame["truncated"] is False
        assert_running(srv)
    finally:
        slow.close()
        srv.kill()


async def test_a_client_that_reads_is_not_cut_off_by_a_big_reply(
    tmp_path: Path, peers: list[Peer]
) -> None:
    # Default out_buffer_limit (1 MiB). 200 messages of 4,000 '"' are 800 KB of text
    # but 1.6 MB as JSON: one history page bigger than the limit, to a reader.
    srv = ServerProcess(
        tmp_path / "bigreply", {**CHEAP, "rate_per_second": 1e6, "rate_burst": 10**6}
    ).start()
    try:
        c = await login(peers, srv.port, "reader")
        for start in range(0, 200, 50):
            await c.send_raw(
                b"".join(
                    line({"type": "say", "room": "lobby", "body": '"' * 4000, "cid": f"q{i}"})
                    for i in range(start, start + 50)
                )
            )
            for _ in range(50):
                await c.recv_type("ack")
        await c.send(type="history", room="lobby", limit=200, ref="big")
        try:
            page = await c.recv_type("history", timeout=10)
        except (EOFError, ConnectionError) as exc:
            pytest.fail(f"a reading client was disconnected: {exc!r}")
        assert page["ref"] == "big"
        assert len(page["messages"]) + page["more"] > 0
        await c.alive()
    finally:
        srv.kill()


# --- connections per address ---------------------------------------------------------


async def test_connections_per_address_are_capped(tmp_path: Path, peers: list[Peer]) -> None:
    srv = ServerProcess(tmp_path / "cap", {**CHEAP, "max_conns_per_address": 3}).start()
    try:
        first = await login(peers, srv.port, "one")
        second = await connect(peers, srv.port)
        third = await connect(peers, srv.port)
        await second.alive()
        await third.alive()
        fourth = await connect(peers, srv.port)
        frames = await fourth.expect_closed()
        assert len(frames) == 1, frames
        assert frames[0]["type"] == "error" and frames[0]["code"] == "rate_limited", frames
        assert frames[0]["retry_after"] > 0
        # The three are unharmed.
        await first.alive()
        await second.alive()
        await third.alive()
        # Close one; a new connection is then accepted (once the server has noticed).
        await second.send(type="bye")
        assert (await second.expect_closed())[-1]["type"] == "bye"
        deadline = time.monotonic() + 3
        while True:
            fifth = await connect(peers, srv.port)
            try:
                frame = await fifth.recv(0.3)  # a refused connection hears at once
            except TimeoutError:
                break
            assert frame["code"] == "rate_limited", frame
            assert time.monotonic() < deadline, "a closed connection was never released"
        await fifth.hello("five")
        await fifth.alive()
    finally:
        srv.kill()


# --- shutdown --------------------------------------------------------------------------


async def test_sigterm_says_bye_to_everyone_and_exits_0(tmp_path: Path, peers: list[Peer]) -> None:
    srv = ServerProcess(tmp_path / "term", CHEAP).start()
    try:
        member = await login(peers, srv.port, "member")
        stranger = await connect(peers, srv.port)  # not logged in
        await stranger.alive()
        assert srv.proc is not None
        started = time.monotonic()
        srv.proc.terminate()
        frames = [f for f in await member.expect_closed() if f["type"] != "presence"]
        assert frames == [{"type": "bye"}]
        assert await stranger.expect_closed() == [{"type": "bye"}]
        code = await asyncio.to_thread(srv.proc.wait, 5)
        assert code == 0
        assert time.monotonic() - started < 5
    finally:
        srv.kill()


async def test_sigterm_with_nothing_in_flight_does_not_wait_out_the_grace_period(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "grace", {**CHEAP, "shutdown_grace": 20}).start()
    try:
        member = await login(peers, srv.port, "idler")
        assert srv.proc is not None
        srv.proc.terminate()
        frames = await member.expect_closed(timeout=3)
        assert frames[-1] == {"type": "bye"}
        assert await asyncio.to_thread(srv.proc.wait, 2) == 0
    finally:
        srv.kill()
