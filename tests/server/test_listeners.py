"""Several listeners (issue 11, step 3): plain and TLS at once, on one hub.

Servers run in this process (``Server.open``) or as ``chinwag serve``
subprocesses, on real loopback sockets bound to port 0; clients are raw
JSON-lines peers, over TLS pinned to the server's certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import RECV_TIMEOUT, ChildProcess
from hypothesis import given
from hypothesis import strategies as st
from server_checks import CheckedPeer

from chinwag.config import ListenSpec, Settings, SettingsError, build
from chinwag.net.tls import ensure_self_signed, parse_fingerprint, pinned_context, server_context
from chinwag.server.app import BoundAddress, ListenError, Server

FAST = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}
PLAIN_AND_TLS = ["tcp://127.0.0.1:0", "tls://127.0.0.1:0"]


def settings(listen: list[str], **extra: object) -> Settings:
    return build(None, [f"{k}={v}" for k, v in {**FAST, **extra}.items()], listen=listen)


def open_sockets() -> int:
    """Sockets this process holds open (Linux: /proc/self/fd)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


async def sockets_back_to(count: int) -> bool:
    """Whether this process is back to ``count`` open sockets within a few seconds.

    A connection closed at shutdown waits up to 2 s for the client's FIN
    (server/connection.py's linger), so its socket may outlive shutdown() a little.
    """
    deadline = asyncio.get_running_loop().time() + RECV_TIMEOUT
    while open_sockets() > count:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@contextlib.asynccontextmanager
async def running(
    data: Path, listen: list[str], **extra: object
) -> AsyncIterator[tuple[Server, bytes]]:
    """A server in this process with the ``listen`` listeners; yields it and its fingerprint."""
    cert = ensure_self_signed(data)
    before = open_sockets()
    server = await Server.open(
        settings(listen, **extra), data, ssl=server_context(cert.cert, cert.key)
    )
    try:
        yield server, cert.fingerprint
    finally:
        await server.shutdown()
        assert await sockets_back_to(before)  # listeners and connections: all closed


async def connect(address: BoundAddress, fingerprint: bytes) -> CheckedPeer:
    """A peer on ``address``: over TLS pinned to ``fingerprint`` if the listener speaks TLS."""
    ssl = pinned_context(fingerprint) if address.tls else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(address.host, address.port, ssl=ssl), RECV_TIMEOUT
    )
    return CheckedPeer(reader, writer)


async def refused(host: str, port: int) -> bool:
    """Whether nothing listens on host:port any more (the connection is refused)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), RECV_TIMEOUT)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def closed_at_accept(address: BoundAddress) -> bool:
    """Whether the server closes a TCP connection to ``address`` before a byte is sent."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(address.host, address.port), RECV_TIMEOUT
    )
    try:
        return await asyncio.wait_for(reader.read(), RECV_TIMEOUT) == b""
    except ConnectionResetError:
        return True
    finally:
        writer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the spec ---------------------------------------------------------------------------


def test_specs_name_kind_host_and_port_with_ipv6_in_brackets() -> None:
    assert ListenSpec.parse("tcp://0.0.0.0:5050") == ListenSpec("chinwag", False, "0.0.0.0", 5050)
    assert ListenSpec.parse("tls://[::]:5051") == ListenSpec("chinwag", True, "::", 5051)
    assert ListenSpec.parse("TLS://chat.example:0") == ListenSpec(
        "chinwag", True, "chat.example", 0
    )
    assert ListenSpec.parse("tcp://:65535") == ListenSpec("chinwag", False, "", 65535)
    assert str(ListenSpec.parse("tls://[::1]:5051")) == "tls://[::1]:5051"
    # TOML gives a list; --set gives commas; both end up as the same specs.
    assert build(None, ["listen=tcp://127.0.0.1:1, tls://[::1]:2"]).listen == (
        "tcp://127.0.0.1:1",
        "tls://[::1]:2",
    )


@given(
    tls=st.booleans(),
    host=st.one_of(
        st.just(""),
        st.ip_addresses().map(str),
        st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True),
    ),
    port=st.integers(0, 65_535),
)
def test_every_spec_reads_back_as_it_is_written(tls: bool, host: str, port: int) -> None:
    spec = ListenSpec("chinwag", tls, host, port)
    assert ListenSpec.parse(str(spec)) == spec


def test_a_toml_file_lists_the_listeners_and_listen_options_replace_them(tmp_path: Path) -> None:
    config = tmp_path / "chinwag.toml"
    config.write_text('[server]\nlisten = ["tcp://0.0.0.0:5050", "tls://[::]:5051"]\n')
    assert build(config).listeners() == (
        ListenSpec("chinwag", False, "0.0.0.0", 5050),
        ListenSpec("chinwag", True, "::", 5051),
    )
    assert build(config, listen=["tls://127.0.0.1:0"]).listen == ("tls://127.0.0.1:0",)
    config.write_text('[server]\nlisten = "tcp://0.0.0.0:5050"\nport = 5051\n')
    with pytest.raises(SettingsError, match=r"drop port \(--port\)"):
        build(config)


def test_without_listen_host_port_and_tls_make_the_one_listener_as_before() -> None:
    assert Settings().listeners() == (ListenSpec("chinwag", False, "0.0.0.0", 5050),)
    assert build(host="::1", port=7, tls=True).listeners() == (
        ListenSpec("chinwag", True, "::1", 7),
    )
    assert build(tls_cert="c.pem", tls_key="k.pem").listeners()[0].tls  # a cert means TLS


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("0.0.0.0:5050", "does not start with its kind (tcp://, tls://, http:// or https://)"),
        ("udp://0.0.0.0:5050", "unknown kind 'udp'://"),
        ("tcp://::1:5050", "without brackets (write [::1], not ::1)"),
        ("tcp://[1.2.3.4]:5050", "not an IPv6 address"),
        ("tcp://[::1:5050", "does not close"),
        ("tcp://0.0.0.0", "has no :PORT"),
        ("tcp://0.0.0.0:65536", "a port is a number from 0 to 65535"),
        ("tcp://0.0.0.0:-1", "a port is a number from 0 to 65535"),
        ("tcp://a/b:1", "neither an address nor a host name"),
    ],
)
def test_a_bad_spec_is_refused_naming_it_and_showing_what_to_write(spec: str, says: str) -> None:
    with pytest.raises(SettingsError) as info:
        build(None, [f"listen={spec}"])
    message = str(info.value)
    assert f"listener {spec!r}" in message and says in message, message
    assert "write e.g. tcp://0.0.0.0:5050" in message, message


def test_listen_beside_host_port_or_tls_is_refused_not_ignored() -> None:
    with pytest.raises(SettingsError, match=r"drop port \(--port\) and put every listener"):
        build(None, None, listen=["tcp://127.0.0.1:1"], port=6000)
    with pytest.raises(SettingsError, match=r"drop host \(--host\), tls \(--tls\).*tls://\[::1\]"):
        build(None, None, listen=["tcp://127.0.0.1:1"], host="::1", tls=True)
    with pytest.raises(SettingsError, match="no listener speaks TLS"):
        build(None, None, listen=["tcp://127.0.0.1:1"], tls_cert="c.pem", tls_key="k.pem")
    with pytest.raises(SettingsError, match="listed twice"):
        build(None, ["listen=tcp://127.0.0.1:1,tcp://127.0.0.1:1"])
    with pytest.raises(SettingsError, match="is a list of strings"):
        build(None, None, listen=[5050])


# --- a server with a plain and a TLS listener ------------------------------------------


async def test_clients_on_a_plain_and_a_tls_listener_chat_in_one_room(tmp_path: Path) -> None:
    async with running(tmp_path, PLAIN_AND_TLS) as (server, fingerprint):
        plain, tls = server.addresses
        assert (plain.tls, tls.tls) == (False, True) and plain.port != tls.port
        assert server.address == (plain.host, plain.port) and server.tls is False
        ann = await connect(plain, fingerprint)
        bob = await connect(tls, fingerprint)
        try:
            await ann.hello("ann")
            await bob.hello("bob")
            assert bob.writer.get_extra_info("ssl_object") is not None
            for peer in (ann, bob):
                await peer.send(type="join", room="den")
                await peer.recv_type("ok")
            await ann.send(type="say", room="den", body="hi from plain", cid="1")
            await ann.recv_type("ack")
            got = await bob.recv_type("message")
            assert (got["from"], got["room"], got["body"]) == ("ann", "den", "hi from plain")
            await bob.send(type="say", room="den", body="hi from TLS", cid="1")
            heard = [await ann.recv_type("message") for _ in range(2)]  # her own echo, then his
            assert [(m["from"], m["body"]) for m in heard] == [
                ("ann", "hi from plain"),
                ("bob", "hi from TLS"),
            ]
        finally:
            await ann.close()
            await bob.close()


async def test_the_per_address_cap_counts_connections_on_every_listener(tmp_path: Path) -> None:
    async with running(tmp_path, PLAIN_AND_TLS, max_conns_per_address=2) as (server, fp):
        plain, tls = server.addresses
        first = await connect(plain, fp)
        second = await connect(tls, fp)
        extra = []
        try:
            await first.hello("ann")
            await second.hello("bob")  # both counted: two connections from 127.0.0.1
            # A third is refused on either listener: on the plain one with an error...
            peer = await connect(plain, fp)
            extra.append(peer)
            frames = await peer.expect_closed()
            assert [f.get("message") for f in frames] == [
                "too many connections from your address; close some and retry"
            ], frames
            # ...on the TLS one at accept, before any handshake: closed at once.
            assert await closed_at_accept(tls)
            await second.close()  # one closes: a place frees up, whichever its listener
            for _ in range(50):
                third = await connect(plain, fp)
                extra.append(third)
                try:
                    await third.hello("cyd")
                    break
                except (AssertionError, EOFError, ConnectionError):  # the close not seen yet
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the cap did not free up when a TLS connection closed")
        finally:
            for peer in (first, second, *extra):
                await peer.close()


async def test_a_port_in_use_names_the_listener_and_leaves_none_bound(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    first = free_port()
    listen = [f"tcp://127.0.0.1:{first}", "tls://127.0.0.1:0", f"tcp://{taken.getsockname()[0]}"]
    listen[2] += f":{taken.getsockname()[1]}"
    try:
        with pytest.raises(ListenError) as info:
            async with running(tmp_path, listen):
                pass
        message = str(info.value)
        assert message.startswith(f"cannot listen on {listen[2]}: "), message
        assert "pick another port" in message, message
        assert await refused("127.0.0.1", first)  # the listener bound before it is closed
        # Nothing else was left held either: the same data directory starts at once.
        async with running(tmp_path, [f"tcp://127.0.0.1:{first}"]) as (server, _):
            assert server.address == ("127.0.0.1", first)
    finally:
        taken.close()


async def test_shutdown_closes_every_listener_and_every_connection(tmp_path: Path) -> None:
    cert = ensure_self_signed(tmp_path)
    context = server_context(cert.cert, cert.key)
    before = open_sockets()
    server = await Server.open(settings(PLAIN_AND_TLS), tmp_path, ssl=context)
    peers: list[CheckedPeer] = []
    try:
        for address, nick in zip(server.addresses, ("ann", "bob"), strict=True):
            peers.append(await connect(address, cert.fingerprint))
            await peers[-1].hello(nick)
    finally:
        await server.shutdown()
    for address in server.addresses:  # no listener accepts any more...
        assert await refused(address.host, address.port), address
    for peer in peers:  # ...and every client, on either listener, was told bye
        frames = await peer.expect_closed()
        assert frames[-1]["type"] == "bye", frames
        await peer.close()
    assert await sockets_back_to(before)


@pytest.mark.skipif(not socket.has_ipv6, reason="needs IPv6")
async def test_an_ipv6_listener_beside_an_ipv4_one(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 on this machine")
    async with running(tmp_path, ["tcp://127.0.0.1:0", "tls://[::1]:0"]) as (server, fp):
        v4, v6 = server.addresses
        assert v6.host == "::1" and str(v6) == f"[::1]:{v6.port}"
        ann, bob = await connect(v4, fp), await connect(v6, fp)
        try:
            await ann.hello("ann")
            await bob.hello("bob")
            await ann.send(type="say", room="lobby", body="over v4", cid="1")
            assert (await bob.recv_type("message"))["body"] == "over v4"
        finally:
            await ann.close()
            await bob.close()


# --- chinwag serve --listen -------------------------------------------------------------

_LISTENING = re.compile(r"listening on (\S+):(\d+)( with TLS)?")
_FP = re.compile(r"fingerprint ([0-9A-F:]{95})")


class Serve(ChildProcess):
    """``chinwag serve ARGS`` with its log in ``data/server.log``."""

    def __init__(self, data: Path, *args: str) -> None:
        data.mkdir(parents=True, exist_ok=True)
        self.data = data
        self.log_path = data / "server.log"
        cmd = [sys.executable, "-m", "chinwag", "serve", "--data", str(data), "--no-announce"]
        cmd += [arg for name, value in FAST.items() for arg in ("--set", f"{name}={value}")]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*cmd, *args], stdout=log, stderr=log, stdin=subprocess.DEVNULL, env={**os.environ}
            )

    def wait_listening(self, count: int, timeout: float = 20.0) -> list[BoundAddress]:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _LISTENING.findall(self.log())
            if len(found) == count:
                return [
                    BoundAddress(ListenSpec("chinwag", bool(tls), host, 0), host, int(port))
                    for host, port, tls in found
                ]
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"server did not start in {timeout} s:\n{self.log()}")


async def test_serve_with_two_listen_options_serves_both(tmp_path: Path) -> None:
    srv = Serve(tmp_path / "srv", *(arg for spec in PLAIN_AND_TLS for arg in ("--listen", spec)))
    try:
        plain, tls = await asyncio.to_thread(srv.wait_listening, 2)
        assert (plain.tls, tls.tls) == (False, True), srv.log()
        match = _FP.search(srv.log())
        assert match, srv.log()
        fingerprint = parse_fingerprint(match.group(1))
        ann, bob = await connect(plain, fingerprint), await connect(tls, fingerprint)
        try:
            await ann.hello("ann")
            await bob.hello("bob")
            await bob.send(type="say", room="lobby", body="both ways", cid="1")
            assert (await ann.recv_type("message"))["body"] == "both ways"
        finally:
            await ann.close()
            await bob.close()
        assert await asyncio.to_thread(srv.stop) == 0
        for address in (plain, tls):
            assert await refused(address.host, address.port)
    finally:
        srv.kill()


async def test_serve_refuses_a_bad_spec_and_a_taken_port_in_plain_words(tmp_path: Path) -> None:
    bad = Serve(tmp_path / "bad", "--listen", "tcp://127.0.0.1:0", "--listen", "tcp://[::1]")
    both = Serve(tmp_path / "both", "--listen", "tls://127.0.0.1:0", "--tls")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    busy_spec = f"tcp://127.0.0.1:{port}"
    busy = Serve(tmp_path / "busy", "--listen", "tls://127.0.0.1:0", "--listen", busy_spec)
    try:
        assert bad.proc is not None and busy.proc is not None
        assert await asyncio.to_thread(bad.proc.wait, 60) == 2
        assert "listener 'tcp://[::1]' has no :PORT after the address; write e.g." in bad.log()
        assert "listening on" not in bad.log()  # refused before anything is bound
        assert both.proc is not None and await asyncio.to_thread(both.proc.wait, 60) == 2
        assert "drop tls (--tls) and put every listener in listen" in both.log(), both.log()
        assert await asyncio.to_thread(busy.proc.wait, 60) == 1
        assert f"chinwag serve: cannot listen on {busy_spec}: " in busy.log(), busy.log()
        assert "pick another port" in busy.log() and "listening on" not in busy.log()
    finally:
        taken.close()
        for srv in (bad, both, busy):
            srv.kill()
