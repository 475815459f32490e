"""/healthz, /readyz and ``chinwag admin health`` against a real server on loopback."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from ops_support import admin

from chinwag.config import SettingsError, build
from chinwag.server.app import DB_NAME, Server

TIMEOUT = aiohttp.ClientTimeout(total=20)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Server]:
    settings = build(
        None,
        ["listen=tcp://127.0.0.1:0,http://127.0.0.1:0", "ready_timeout=0.5"],
        announce=False,
    )
    server = await Server.open(settings, tmp_path)
    try:
        yield server
    finally:
        await server.shutdown()


def _base(server: Server) -> str:
    web = next(a for a in server.addresses if a.spec.protocol == "http")
    return f"http://127.0.0.1:{web.port}"


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session, session.get(url) as reply:
        return reply.status, await reply.text()


async def test_alive_and_ready_then_not_ready_while_the_database_is_locked_then_ready(
    running: Server, tmp_path: Path
) -> None:
    base = _base(running)
    assert await _get(f"{base}/healthz") == (200, "alive\n")
    assert await _get(f"{base}/readyz") == (200, "ready\n")
    code, out, _err = await admin(tmp_path, "health", "--url", f"{base}/readyz")
    assert (code, out.strip()) == (0, "ready")

    # Another program holds the database's write lock: the store cannot commit.
    holder = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        status, text = await _get(f"{base}/readyz")
        assert status == 503
        assert text.startswith("not ready: the store did not commit a write within 0.5 s")
        assert await _get(f"{base}/healthz") == (200, "alive\n")  # alive all the same
        code, _out, err = await admin(tmp_path, "health", "--url", f"{base}/readyz")
        assert code == 1
        assert "not ready: the store did not commit" in err
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await _get(f"{base}/readyz") == (200, "ready\n")


async def test_readyz_says_503_once_the_store_is_closed(running: Server) -> None:
    base = _base(running)
    await running.store.close()
    status, text = await _get(f"{base}/readyz")
    assert status == 503
    assert "the store cannot write (the store is closed)" in text


async def test_admin_health_without_an_answer_exits_2(tmp_path: Path) -> None:
    # A port nobody listens on: bound, then closed.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _out, err = await admin(tmp_path, "health", "--url", f"http://127.0.0.1:{port}/readyz")
    assert code == 2
    assert "no answer from" in err
    assert "--url" in err


def test_ready_timeout_must_be_above_zero() -> None:
    assert build(None, ["ready_timeout=0.001"]).ready_timeout == 0.001
    with pytest.raises(SettingsError, match="ready_timeout must be above 0"):
        build(None, ["ready_timeout=0"])


async def test_admin_health_asks_metrics_port_when_there_is_no_web_client(
    tmp_path: Path,
) -> None:
    settings = build(None, ["metrics_port=0"], host="127.0.0.1", port=0, http_port=0)
    server = await Server.open(settings.replace(announce=False), tmp_path)
    try:
        port = next(a.port for a in server.addresses if a.spec.protocol == "http")
        sets = ["--set", "http_port=0", "--set", f"metrics_port={port}"]
        code, out, _err = await admin(tmp_path, *sets, "health")
        assert (code, out.strip()) == (0, "ready")
    finally:
        await server.shutdown()
