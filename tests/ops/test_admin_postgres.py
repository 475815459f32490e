"""``chinwag admin --store postgresql://…`` (issue 13): the admin commands on the nodes' store.

A real node on the private PostgreSQL of support/services.py holds an account
and messages; ``chinwag admin`` runs as a subprocess against the same database.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import Peer, ServerProcess
from support.cli import chinwag
from support.peers import connect, login
from support.services import PostgresServer, pg_database, pg_server

__all__ = ["pg_server"]  # the session fixture, imported for pytest

FAST_HASH = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}
PASSWORD = "ann's long password"


async def _node_with_ann(tmp_path: Path, dsn: str, peers: list[Peer]) -> tuple[ServerProcess, int]:
    """A node on ``dsn`` where ann registered and said one thing; that message's id."""
    node = ServerProcess(tmp_path / "node", FAST_HASH, args=["--store", dsn, "--no-announce"])
    node.start()
    ann = await login(peers, node.port, "ann")
    await ann.send(type="register", password=PASSWORD)
    await ann.recv_type("ok")
    await ann.send(type="say", room="lobby", body="kept in postgres", cid="c-1")
    return node, (await ann.recv_type("ack"))["id"]


def admin(
    dsn: str, *args: str, data: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``chinwag admin [--data DATA] --store DSN ARGS``, to its end."""
    where = ["--data", str(data)] if data is not None else []
    return chinwag("admin", *where, "--store", dsn, *args, stdin=stdin)


async def test_accounts_stats_and_export_read_the_postgresql_store(
    pg_server: PostgresServer, tmp_path: Path, peers: list[Peer]
) -> None:
    dsn = await pg_database(pg_server, tmp_path)
    node, msg_id = await _node_with_ann(tmp_path, dsn, peers)
    try:
        listed = admin(dsn, "accounts")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines()[1].split()[0] == "ann"
        assert "1 account(s)" in listed.stdout

        stats = admin(dsn, "stats")
        assert stats.returncode == 0, stats.stderr
        counts = dict(line.split() for line in stats.stdout.splitlines())
        assert (counts["accounts"], counts["messages"]) == ("1", "1")

        out = tmp_path / "ann.json"
        exported = admin(dsn, "export", "ann", "--out", str(out))
        assert exported.returncode == 0, exported.stderr
        data = json.loads(out.read_text())
        assert data["account"]["nick"] == "ann"
        assert [(m["id"], m["body"]) for m in data["messages"]] == [(msg_id, "kept in postgres")]
        assert "password" not in out.read_text()
    finally:
        node.kill()


async def test_reset_password_and_delete_change_the_postgresql_store(
    pg_server: PostgresServer, tmp_path: Path, peers: list[Peer]
) -> None:
    dsn = await pg_database(pg_server, tmp_path)
    node, _ = await _node_with_ann(tmp_path, dsn, peers)
    try:
        # No node runs on this --data: the store is changed directly, and it says so.
        reset = admin(dsn, "reset-password", "ann", "--password-stdin", data=tmp_path / "admin",
                      stdin="a brand new password\n")  # fmt: skip
        assert reset.returncode == 0, reset.stderr
        assert "end at their next login" in reset.stderr
        again = await connect(peers, node.port)
        await again.send(type="hello", proto=1, nick="ann", password=PASSWORD)
        assert (await again.recv_type("error"))["code"] == "bad_password"
        await login(peers, node.port, "ann", password="a brand new password")

        # The node runs on its --data: through its control socket, sessions end at once.
        deleted = admin(dsn, "delete", "ann", data=node.data)
        assert deleted.returncode == 0, deleted.stderr
        gone = await connect(peers, node.port)
        await gone.send(type="hello", proto=1, nick="ann", password="a brand new password")
        assert (await gone.recv_type("error"))["code"] == "bad_nick"
        listed = admin(dsn, "accounts")
        assert "deleted (nick reserved)" in listed.stdout
    finally:
        node.kill()


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed")
async def test_backup_of_a_postgresql_store_is_a_pg_dump_that_restores(
    pg_server: PostgresServer, tmp_path: Path, peers: list[Peer]
) -> None:
    dsn = await pg_database(pg_server, tmp_path)
    node, msg_id = await _node_with_ann(tmp_path, dsn, peers)
    try:
        dump = tmp_path / "chinwag.pgdump"
        made = admin(dsn, "backup", str(dump))
        assert made.returncode == 0, made.stderr
        assert "pg_restore" in made.stdout and dump.stat().st_mode & 0o077 == 0
        again = admin(dsn, "backup", str(dump))
        assert again.returncode == 1 and "exists" in again.stderr, "never overwritten"
        refused = admin(dsn, "restore", "--verify", str(dump))
        assert refused.returncode == 1 and "stop every node first" in refused.stderr

        # pg_restore alone reads it into an empty database: the data is there.
        copy = await pg_database(pg_server, tmp_path / "copy")
        restored = await asyncio.to_thread(
            subprocess.run,
            ["pg_restore", "--no-owner", "--single-transaction", "-d", copy, str(dump)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        out = tmp_path / "room.json"
        exported = admin(copy, "export", "--room", "lobby", "--out", str(out))
        assert exported.returncode == 0, exported.stderr
        messages = json.loads(out.read_text())["messages"]
        assert [(m["id"], m["body"]) for m in messages] == [(msg_id, "kept in postgres")]
    finally:
        node.kill()


def test_an_unreachable_postgresql_store_is_a_clear_error(tmp_path: Path) -> None:
    from support.services import free_port

    dsn = f"postgresql://chinwag@127.0.0.1:{free_port()}/nothing"
    listed = admin(dsn, "accounts")
    assert listed.returncode == 1
    assert listed.stderr.startswith("chinwag admin: ") and "Traceback" not in listed.stderr
