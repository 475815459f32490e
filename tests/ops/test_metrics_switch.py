"""The ``metrics`` setting at its edge: on, /metrics counts the traffic; off, nothing is counted."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from conftest import Peer

from chinwag.config import build
from chinwag.server.app import Server

TIMEOUT = aiohttp.ClientTimeout(total=20)
FAST = ["argon2_memory_kib=8192", "argon2_time_cost=1"]


async def _traffic(server: Server) -> None:
    """alice and bob log in, alice says 3 messages, bob receives them."""
    port = next(a.port for a in server.addresses if a.spec.protocol == "chinwag")
    alice, bob = await Peer.connect(port), await Peer.connect(port)
    try:
        await alice.hello("alice")
        await bob.hello("bob")
        for i in range(3):
            await alice.send(type="say", room="lobby", body=f"hi {i}", ref=f"s{i}")
            assert (await alice.recv_type("ack"))["ref"] == f"s{i}"
        assert [(await bob.recv_type("message"))["body"] for _ in range(3)] == [
            "hi 0",
            "hi 1",
            "hi 2",
        ]
    finally:
        await alice.close()
        await bob.close()


async def _get_metrics(server: Server) -> tuple[int, str]:
    port = next(a.port for a in server.addresses if a.spec.protocol == "http")
    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session, session.get(url) as reply:
        return reply.status, await reply.text()


@pytest.mark.parametrize("on", [True, False])
async def test_metrics_count_the_traffic_only_when_on(tmp_path: Path, on: bool) -> None:
    settings = build(
        None,
        ["listen=tcp://127.0.0.1:0,http://127.0.0.1:0", *FAST, f"metrics={str(on).lower()}"],
        announce=False,
    )
    server = await Server.open(settings, tmp_path)
    try:
        await _traffic(server)  # the chat works the same either way
        status, text = await _get_metrics(server)
        counts = server.hub.counts
        if on:
            assert status == 200
            assert "chinwag_messages_total 3.0" in text
            assert "chinwag_deliveries_total 6.0" in text  # each of 3 to alice and to bob
            assert (counts.logins, counts.messages, counts.deliveries) == (2, 3, 6)
            assert sum(counts.ack_seconds.counts) == 3
            assert sum(server.store.commit_seconds.counts) >= 3
        else:
            assert status == 404
            assert "metrics are off on this server (metrics = false)" in text
            assert "set metrics = true and restart" in text
            assert (counts.logins, counts.messages, counts.deliveries) == (0, 0, 0)
            assert sum(counts.ack_seconds.counts) == sum(counts.backlogs.counts) == 0
            assert sum(counts.fanout_lag.counts) == 0 and not counts.published
            assert sum(server.store.commit_seconds.counts) == 0
        health = await _health(server)
        assert health == (200, 200)  # /healthz and /readyz answer either way
    finally:
        await server.shutdown()


async def _health(server: Server) -> tuple[int, int]:
    port = next(a.port for a in server.addresses if a.spec.protocol == "http")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as alive:
            a = alive.status
        async with session.get(f"http://127.0.0.1:{port}/readyz") as ready:
            return a, ready.status


def test_metrics_are_on_unless_set_off() -> None:
    assert build(None, []).metrics is True
    assert build(None, ["metrics=false"]).metrics is False
