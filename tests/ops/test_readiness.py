"""/readyz beyond the store (issue 17): the fan-out lag and the bus; ``admin health`` over https.

Real servers on loopback; the two-node test uses the private PostgreSQL and
Redis of support/services.py (a Redis of its own, since it is killed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from conftest import Peer
from ops_support import admin
from prometheus_client.parser import text_string_to_metric_families
from support.services import PostgresServer, RedisServer, pg_database, pg_server

from chinwag.config import SettingsError, build
from chinwag.core.counts import Counts
from chinwag.net.pins import KnownHosts
from chinwag.net.tls import (
    CERT_FILE,
    cert_fingerprint,
    ensure_self_signed,
    format_fingerprint,
    server_context,
)
from chinwag.server.app import Server

__all__ = ["pg_server"]  # the session fixture, imported for pytest

TIMEOUT = aiohttp.ClientTimeout(total=20)
FAST = ["argon2_memory_kib=8192", "argon2_time_cost=1"]


def _port(server: Server, protocol: str) -> int:
    return next(a.port for a in server.addresses if a.spec.protocol == protocol)


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session, session.get(url) as reply:
        return reply.status, await reply.text()


async def scrape(server: Server) -> dict[str, float]:
    """Every sample of /metrics: ``name{label="value"}`` (or just ``name``) -> value."""
    status, text = await _get(f"http://127.0.0.1:{_port(server, 'http')}/metrics")
    assert status == 200
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> bool:
    """Poll ``check`` (bounded); whether it came true."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Server]:
    settings = build(
        None,
        ["listen=tcp://127.0.0.1:0,http://127.0.0.1:0", "ready_lag_max=0.5", *FAST],
        announce=False,
    )
    server = await Server.open(settings, tmp_path)
    try:
        yield server
    finally:
        await server.shutdown()


# -- the fan-out lag ---------------------------------------------------------------


def test_the_lag_is_the_age_of_the_oldest_commit_not_yet_fanned_out() -> None:
    counts = Counts()
    assert counts.lag(100.0) == 0.0, "nothing waits"
    counts.committed(7, 10.0)
    counts.committed(8, 10.5)
    assert counts.lag(12.0) == 2.0
    counts.fanned_out(7, 12.0)
    assert counts.lag(12.0) == 1.5, "8 still waits"
    counts.fanned_out(9, 12.25)
    assert counts.lag(13.0) == 0.0
    assert counts.fanout_lag.counts[-1] == 0 and sum(counts.fanout_lag.counts) == 2
    assert counts.fanout_lag.total == pytest.approx(2.0 + 1.75)


async def test_messages_are_counted_into_the_fanout_lag_and_backlog_sizes(
    running: Server,
) -> None:
    port = _port(running, "chinwag")
    bob = await Peer.connect(port)
    alice = await Peer.connect(port)
    try:
        await bob.hello("bob")
        await bob.send(type="register", password="bob-password", ref="r")
        await bob.recv_type("ok")
        await bob.close()
        await alice.hello("alice")
        for i in range(3):
            await alice.send(type="dm", to="bob", body=f"dm {i}", ref=f"d{i}")
            await alice.recv_type("ack")
            await alice.recv_type("message")  # the copy to alice: fanned out
        bob = await Peer.connect(port)
        caught_up = await bob.hello("bob", password="bob-password")
        assert caught_up["missed"] == 3
        now = await scrape(running)
        assert now["chinwag_fanout_lag_seconds_count"] == 3  # the 3 DMs
        assert now["chinwag_fanout_lag_now_seconds"] == 0.0
        # bob's second login (the first was a guest's: no backlog) held the 3 DMs.
        assert now["chinwag_login_backlog_messages_count"] == 1
        assert now['chinwag_login_backlog_messages_bucket{le="1"}'] == 0
        assert now['chinwag_login_backlog_messages_bucket{le="10"}'] == 1
        assert now["chinwag_login_backlog_messages_sum"] == 3
        assert now["chinwag_bus_up"] == 1
        assert now["chinwag_bus_lag_seconds_count"] == 0, "one node: nothing crosses Redis"
    finally:
        await alice.close()
        await bob.close()


async def test_readyz_says_503_while_a_commit_waits_over_ready_lag_max_for_its_fanout(
    running: Server,
) -> None:
    base = f"http://127.0.0.1:{_port(running, 'http')}"
    assert await _get(f"{base}/readyz") == (200, "ready\n")
    # What a stalled delivery leaves behind: a commit acked 0.6 s ago, not fanned out.
    counts = running.hub.counts
    counts.committed(10**9, time.monotonic() - 0.6)
    status, text = await _get(f"{base}/readyz")
    assert status == 503
    assert text.startswith("not ready: a committed message has waited 0.")
    assert "over ready_lag_max, 0.5 s" in text
    assert (await scrape(running))["chinwag_fanout_lag_now_seconds"] >= 0.6
    counts.fanned_out(10**9, time.monotonic())
    assert await _get(f"{base}/readyz") == (200, "ready\n")


def test_ready_lag_max_must_be_above_zero() -> None:
    assert build(None, ["ready_lag_max=0.001"]).ready_lag_max == 0.001
    with pytest.raises(SettingsError, match="ready_lag_max must be above 0"):
        build(None, ["ready_lag_max=0"])


# -- the bus between nodes ---------------------------------------------------------


async def test_two_nodes_report_bus_lag_and_readyz_follows_redis_down_and_back(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    redis = RedisServer()
    redis.start()
    dsn = await pg_database(pg_server, tmp_path)
    nodes: list[Server] = []
    peers: list[Peer] = []
    try:
        for name in ("a", "b"):
            settings = build(
                None,
                [
                    "listen=tcp://127.0.0.1:0,http://127.0.0.1:0",
                    f"store={dsn}",
                    f"bus={redis.url}",
                    *FAST,
                ],
                announce=False,
            )
            nodes.append(await Server.open(settings, tmp_path / name))
        a, b = nodes
        alice = await Peer.connect(_port(a, "chinwag"))
        peers.append(alice)
        bob = await Peer.connect(_port(b, "chinwag"))
        peers.append(bob)
        await alice.hello("alice")
        await bob.hello("bob")
        await alice.send(type="say", room="lobby", body="across", ref="s")
        await alice.recv_type("ack")
        assert (await bob.recv_type("message"))["body"] == "across"
        on_b = await scrape(b)
        assert on_b["chinwag_bus_lag_seconds_count"] >= 1, "b read a's message from Redis"
        assert on_b["chinwag_bus_lag_seconds_sum"] < 5
        assert on_b["chinwag_bus_up"] == 1
        assert (await scrape(a))["chinwag_fanout_lag_seconds_count"] >= 1

        base = f"http://127.0.0.1:{_port(b, 'http')}"
        assert await _get(f"{base}/readyz") == (200, "ready\n")
        redis.kill()

        async def bus_down() -> bool:
            status, text = await _get(f"{base}/readyz")
            return status == 503 and "the bus between nodes is down (lost Redis" in text

        assert await until(bus_down), "readyz never said the bus is down"
        assert (await scrape(b))["chinwag_bus_up"] == 0
        redis.start()

        async def ready() -> bool:
            return await _get(f"{base}/readyz") == (200, "ready\n")

        assert await until(ready), "readyz never came back once Redis was back"
    finally:
        for peer in peers:
            await peer.close()
        for node in nodes:
            await node.shutdown()
        redis.close()


# -- chinwag admin health over https -----------------------------------------------


async def test_admin_health_pins_a_self_signed_https_listener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHINWAG_CONFIG_DIR", str(tmp_path / "config"))
    data = tmp_path / "data"
    data.mkdir()
    cert = ensure_self_signed(data)  # what `chinwag serve --tls` makes in its data directory
    settings = build(None, ["listen=tcp://127.0.0.1:0,https://127.0.0.1:0", *FAST], announce=False)
    server = await Server.open(settings, data, ssl=server_context(cert.cert, cert.key))
    try:
        url = f"https://127.0.0.1:{_port(server, 'http')}/readyz"
        real = cert_fingerprint(data / CERT_FILE)
        assert real == cert.fingerprint
        # The certificate of the data directory (the server's own) is pinned.
        code, out, err = await admin(data, "health", "--url", url)
        assert (code, out.strip()) == (0, "ready"), err
        # An explicit fingerprint wins; a wrong one is refused before asking anything.
        code, out, _ = await admin(
            data, "health", "--url", url, "--fingerprint", format_fingerprint(real)
        )
        assert (code, out.strip()) == (0, "ready")
        wrong = format_fingerprint(bytes(32))
        code, out, err = await admin(data, "health", "--url", url, "--fingerprint", wrong)
        assert code == 2 and out == ""
        assert "not the pinned" in err and "--fingerprint" in err
        # Elsewhere (no certificate in that data directory): the user's known_hosts pin.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        code, _, err = await admin(elsewhere, "health", "--url", url)
        assert code == 2 and "no answer" in err, "no pin: the system CAs do not know it"
        KnownHosts(tmp_path / "config" / "known_hosts").add(
            "127.0.0.1", _port(server, "http"), real
        )
        code, out, err = await admin(elsewhere, "health", "--url", url)
        assert (code, out.strip()) == (0, "ready"), err
        code, _, err = await admin(elsewhere, "health", "--url", url, "--fingerprint", "zz")
        assert code == 2 and "fingerprint" in err
    finally:
        await server.shutdown()
