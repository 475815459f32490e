"""/metrics over real HTTP: the counts move with traffic; only loopback is answered."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from conftest import Peer
from prometheus_client.parser import text_string_to_metric_families

from chinwag.config import SettingsError, build
from chinwag.server.app import Server
from chinwag.server.metrics import metrics_allowed

TIMEOUT = aiohttp.ClientTimeout(total=20)
FAST = ["argon2_memory_kib=8192", "argon2_time_cost=1"]


async def _open(tmp_path: Path, *extra: str) -> Server:
    settings = build(
        None,
        ["listen=tcp://127.0.0.1:0,http://127.0.0.1:0", *FAST, *extra],
        announce=False,
    )
    return await Server.open(settings, tmp_path)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Server]:
    server = await _open(tmp_path, "rate_per_second=0.001", "rate_burst=6")
    try:
        yield server
    finally:
        await server.shutdown()


def _port(server: Server, protocol: str) -> int:
    return next(a.port for a in server.addresses if a.spec.protocol == protocol)


async def scrape(server: Server) -> dict[str, float]:
    """Every sample of /metrics: ``name{label="value"}`` (or just ``name``) -> value."""
    url = f"http://127.0.0.1:{_port(server, 'http')}/metrics"
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session, session.get(url) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await reply.text()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


async def test_counts_move_with_logins_messages_and_refusals(running: Server) -> None:
    before = await scrape(running)
    assert before["chinwag_logins_total"] == 0
    assert before['chinwag_connections{transport="json"}'] == 0
    assert before["chinwag_ack_seconds_count"] == 0
    port = _port(running, "chinwag")
    peers: list[Peer] = []
    try:
        alice = await Peer.connect(port)
        peers.append(alice)
        await alice.hello("alice")
        await alice.send(type="register", password="alice-password", ref="reg")
        assert (await alice.recv_type("ok"))["ref"] == "reg"
        bob = await Peer.connect(port)
        peers.append(bob)
        await bob.hello("bob")
        intruder = await Peer.connect(port)
        peers.append(intruder)
        await intruder.send(type="hello", proto=1, nick="alice", password="wrong guess")
        refused = await intruder.recv()
        assert refused["type"] == "error", refused

        for i in range(3):
            await alice.send(type="say", room="lobby", body=f"hi {i}", ref=f"s{i}")
            assert (await alice.recv_type("ack"))["ref"] == f"s{i}"
        for _ in range(3):
            await bob.recv_type("message")

        now = await scrape(running)
        assert now["chinwag_logins_total"] == 2
        assert now["chinwag_login_failures_total"] == 1
        assert now['chinwag_connections{transport="json"}'] == 3
        assert now["chinwag_messages_total"] == 3
        assert now["chinwag_deliveries_total"] == 6  # each of 3 to alice and to bob
        assert now["chinwag_ack_seconds_count"] == 3
        assert now['chinwag_ack_seconds_bucket{le="+Inf"}'] == 3
        assert now["chinwag_ack_seconds_sum"] > 0
        assert now["chinwag_store_commit_seconds_count"] >= 3  # the register, the messages
        assert now["chinwag_rate_limited_total"] == 0

        # Flood control: bob's budget is 6 messages; each refusal is counted.
        refusals = 0
        for i in range(10):
            await bob.send(type="say", room="lobby", body=f"flood {i}", ref=f"f{i}")
        for _ in range(10):
            frame = await bob.recv()
            while frame["type"] not in ("ack", "error"):
                frame = await bob.recv()
            refusals += frame["type"] == "error" and frame["code"] == "rate_limited"
        assert refusals >= 4
        after = await scrape(running)
        assert after["chinwag_rate_limited_total"] == refusals
        assert after["chinwag_messages_total"] == 3 + 10 - refusals
    finally:
        for peer in peers:
            await peer.close()


async def test_websocket_connections_are_counted_by_transport(running: Server) -> None:
    url = f"ws://127.0.0.1:{_port(running, 'http')}/ws"
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session, session.ws_connect(url) as ws:
        await ws.send_str(json.dumps({"type": "hello", "proto": 1, "nick": "webby"}))
        welcome = json.loads((await ws.receive(20)).data)
        assert welcome["type"] == "welcome"
        now = await scrape(running)
        assert now['chinwag_connections{transport="ws"}'] == 1
        assert now['chinwag_connections{transport="json"}'] == 0
        assert now["chinwag_logins_total"] == 1


async def test_a_slow_reader_cut_off_is_counted(tmp_path: Path) -> None:
    server = await _open(
        tmp_path, "out_buffer_limit=65536", "rate_per_second=1000000", "rate_burst=1000000"
    )
    port = _port(server, "chinwag")
    sloth = socket.socket()
    sloth.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sloth.setblocking(False)
    loop = asyncio.get_running_loop()
    sender = None
    try:
        await asyncio.wait_for(loop.sock_connect(sloth, ("127.0.0.1", port)), 10)
        await loop.sock_sendall(sloth, b'{"type":"hello","proto":1,"nick":"sloth"}\n')
        sender = await Peer.connect(port)
        await sender.hello("firehose")  # the sloth logged in before: it is in the lobby
        body = "\N{GRINNING FACE}" * 4000  # the longest body: 16,000 bytes of UTF-8
        deadline = time.monotonic() + 30
        while (await scrape(server))["chinwag_slow_reader_cutoffs_total"] == 0:
            assert time.monotonic() < deadline, "the sloth was never cut off"
            for i in range(10):
                await sender.send(type="say", room="lobby", body=body, ref=str(i))
            for _ in range(10):
                await sender.recv_type("ack")
        assert (await scrape(server))["chinwag_slow_reader_cutoffs_total"] == 1
    finally:
        sloth.close()
        if sender is not None:
            await sender.close()
        await server.shutdown()


def test_only_loopback_reads_metrics_unless_public() -> None:
    for here in ("127.0.0.1", "127.8.9.10", "::1"):
        assert metrics_allowed(here, public=False)
    for there in ("192.168.1.20", "10.0.0.1", "2001:db8::1", "::ffff:192.0.2.1", None, "x"):
        assert not metrics_allowed(there, public=False)
    assert metrics_allowed("192.168.1.20", public=True)


async def test_metrics_from_a_non_loopback_address_gets_403(tmp_path: Path) -> None:
    # This machine's own non-loopback address, if it has one, reaches a wildcard listener.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: it picks the outgoing address
        own = probe.getsockname()[0]
    except OSError:
        own = "127.0.0.1"
    finally:
        probe.close()
    if own.startswith("127."):
        pytest.skip("this machine has no non-loopback address to come from")
    settings = build(None, ["listen=tcp://127.0.0.1:0,http://0.0.0.0:0", *FAST], announce=False)
    server = await Server.open(settings, tmp_path)
    try:
        url = f"http://{own}:{_port(server, 'http')}/metrics"
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session, session.get(url) as reply:
            assert reply.status == 403
            assert "metrics_public" in await reply.text()
    finally:
        await server.shutdown()


async def test_metrics_port_serves_monitoring_only_on_loopback(tmp_path: Path) -> None:
    settings = build(
        None, [*FAST, "metrics_port=0"], host="127.0.0.1", port=0, http_port=0, announce=False
    )
    server = await Server.open(settings, tmp_path)
    try:
        (web,) = [a for a in server.addresses if a.spec.protocol == "http"]
        assert web.host == "127.0.0.1"
        base = f"http://127.0.0.1:{web.port}"
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.get(f"{base}/metrics") as reply:
                assert reply.status == 200
                assert "chinwag_logins_total 0.0" in await reply.text()
            async with session.get(f"{base}/readyz") as reply:
                assert (reply.status, await reply.text()) == (200, "ready\n")
            for path in ("/", "/index.html", "/ws"):  # no web client here
                async with session.get(f"{base}{path}") as reply:
                    assert reply.status == 404, path
    finally:
        await server.shutdown()


def test_metrics_port_is_a_port_or_off() -> None:
    assert build(None, []).metrics_port == -1  # off unless set
    assert build(None, ["metrics_port=65535"]).metrics_port == 65_535
    with pytest.raises(SettingsError, match="metrics_port must be a port from 0 to 65535"):
        build(None, ["metrics_port=65536"])
    with pytest.raises(SettingsError, match="metrics_port cannot be negative"):
        build(None, ["metrics_port=-1"])
