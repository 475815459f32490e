"""``chinwag admin --store URL restore FILE --verify`` (issue 17): a PostgreSQL store restored.

A real node on the private PostgreSQL of support/services.py takes messages
from writers while ``chinwag admin backup`` dumps its store; the dump is then
restored with the node stopped: first into a scratch database, checked and
counted, and only then put in the store's place. Every message acked before
the backup began is in the restored store, seen by the restarted node.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from conftest import Peer, ServerProcess
from ops_support import SETTINGS, ack, history_ids, log_in, register
from support.services import PostgresServer, pg_database, pg_server

__all__ = ["pg_server"]  # the session fixture, imported for pytest

pytestmark = pytest.mark.skipif(
    shutil.which("pg_dump") is None or shutil.which("pg_restore") is None,
    reason="pg_dump and pg_restore are not installed (postgresql-client)",
)

PG_MIGRATIONS = importlib.resources.files("chinwag.storage").joinpath("pg_migrations")
PG_NEWEST = sum(1 for f in PG_MIGRATIONS.iterdir() if f.name.endswith(".sql"))


async def admin_pg(dsn: str, *args: str) -> tuple[int, str, str]:
    """``chinwag admin --store DSN ARGS`` in a subprocess: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chinwag", "admin", "--store", dsn, *args,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _databases(server: PostgresServer) -> set[str]:
    conn = await asyncpg.connect(server.dsn, timeout=10)
    try:
        return {str(r[0]) for r in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()


async def _lobby_ids(dsn: str) -> set[int]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT id FROM messages WHERE room = 'lobby'")
        return {int(r[0]) for r in rows}
    finally:
        await conn.close()


async def _foreign_dump(
    server: PostgresServer, tmp_path: Path, sql: str, *, after: str = ""
) -> Path:
    """A pg_dump (custom format) of a database of its own made by ``sql``; ``after`` runs then."""
    dsn = await pg_database(server, tmp_path / sql)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(sql)
        dump = tmp_path / f"foreign-{dsn.rsplit('/', 1)[1]}.pgdump"
        made = await asyncio.to_thread(
            subprocess.run, ["pg_dump", "--format=custom", "--file", str(dump), dsn],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        if after:
            await conn.execute(after)
    finally:
        await conn.close()
    return dump


def _node(tmp_path: Path, dsn: str) -> ServerProcess:
    return ServerProcess(tmp_path / "node", SETTINGS, args=["--store", dsn, "--no-announce"])


async def test_a_postgresql_backup_under_write_load_restores_every_message_acked_before_it(
    pg_server: PostgresServer, tmp_path: Path, peers: list[Peer]
) -> None:
    dsn = await pg_database(pg_server, tmp_path)
    database = dsn.rsplit("/", 1)[1]
    node = _node(tmp_path, dsn)
    node.start()
    dump = tmp_path / "store.pgdump"
    try:
        await register(peers, node.port, "alice")
        writers = [await log_in(peers, node.port, f"writer{n}") for n in range(3)]
        acked: list[int] = []
        stop = asyncio.Event()

        async def write(peer: Peer, name: str) -> None:
            n = 0
            while not stop.is_set():
                await peer.send(type="say", room="lobby", body=f"{name} {n}", ref=f"r{n}")
                acked.append(await ack(peer))
                n += 1

        tasks = [asyncio.create_task(write(p, f"w{i}")) for i, p in enumerate(writers)]
        try:
            async with asyncio.timeout(60):
                while len(acked) < 100:
                    await asyncio.sleep(0.01)
            before = set(acked)
            code, out, err = await admin_pg(dsn, "backup", str(dump))
            during = len(acked) - len(before)
        finally:
            stop.set()
            async with asyncio.timeout(30):
                await asyncio.gather(*tasks)
        assert code == 0, err
        assert during > 0, "no message was acked while the backup ran: there was no load"
        assert "restore" in out and "--verify" in out

        # While a node uses the store, restore refuses and replaces nothing.
        live = await _lobby_ids(dsn)
        code, _, err = await admin_pg(dsn, "restore", str(dump), "--verify")
        assert code == 1
        assert "stop every node first" in err and "nothing was replaced" in err
        assert node.stop() == 0
        assert await _lobby_ids(dsn) >= live

        code, out, err = await admin_pg(dsn, "restore", str(dump), "--verify")
        assert code == 0, err
        assert "loading table messages" in out  # progress, table by table
        assert f"restored and checked, schema version {PG_NEWEST}" in out
        assert "1 accounts" in out and f"{len(before)} messages" not in out.split("\n")[0]
        names = await _databases(pg_server)
        kept = [n for n in names if n.startswith(database + "_replaced_")]
        assert len(kept) == 1, names  # the replaced database is kept, whole
        assert await _lobby_ids(dsn.rsplit("/", 1)[0] + "/" + kept[0]) >= live
        assert database + "_restoring" not in names  # the scratch copy became the store

        node.start()
        alice = await log_in(peers, node.port, "alice", password="alice-password")
        restored = set(await history_ids(alice, "lobby"))
        assert before <= restored, sorted(before - restored)[:10]
        # One moment: every acked message up to the newest restored one is there.
        assert restored == {i for i in acked if i <= max(restored)}
        # Messages acked after the backup are gone, and so are their ids: never reused.
        await alice.send(type="say", room="lobby", body="after the restore", ref="new")
        assert await ack(alice) > max(acked)
    finally:
        node.kill()


async def test_a_damaged_or_foreign_backup_is_refused_and_nothing_is_replaced(
    pg_server: PostgresServer, tmp_path: Path, peers: list[Peer]
) -> None:
    dsn = await pg_database(pg_server, tmp_path)
    database = dsn.rsplit("/", 1)[1]
    node = _node(tmp_path, dsn)
    node.start()
    try:
        bob = await register(peers, node.port, "bob")
        for n in range(300):  # enough rows that a cut dump loses some of them
            await bob.send(type="say", room="lobby", body=f"message number {n} " * 8, ref="m")
            await ack(bob)
        dump = tmp_path / "store.pgdump"
        code, _, err = await admin_pg(dsn, "backup", str(dump))
        assert code == 0, err
    finally:
        assert node.stop() == 0
    before = await _lobby_ids(dsn)

    whole = dump.read_bytes()
    cut = tmp_path / "cut.pgdump"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    # Dumps that read but do not restore, or restore into something that is no chinwag store.
    foreign = await _foreign_dump(pg_server, tmp_path, "CREATE TABLE notes (body text)")
    newer = await _foreign_dump(
        pg_server, tmp_path,
        "CREATE TABLE chinwag_schema (version INTEGER); INSERT INTO chinwag_schema VALUES (999);"
        " CREATE TABLE accounts (key text); CREATE TABLE messages (id bigint);"
        " CREATE TABLE memberships (room text); CREATE TABLE cursors (device text)",
    )  # fmt: skip
    grants = await _foreign_dump(
        pg_server, tmp_path,
        "CREATE ROLE gone_role; CREATE TABLE notes (body text);"
        " GRANT SELECT ON notes TO gone_role",
        after="REVOKE SELECT ON notes FROM gone_role; DROP ROLE gone_role",
    )  # fmt: skip
    sqlite_file = tmp_path / "node" / "chinwag.db"
    sqlite_file.write_bytes(b"SQLite format 3\0" + b"\0" * 4096)
    for bad, words in [
        (grants, "cannot be restored: pg_restore failed (a damaged file, or a pg_restore older"),
        (foreign, "failed the checks above"),
        (newer, "failed the checks above"),
        (cut, "is not a readable backup of a PostgreSQL store (error: could not read"),
        (sqlite_file, "is not a readable backup of a PostgreSQL store"),
        (tmp_path / "missing.pgdump", "no backup file"),
    ]:
        code, _, err = await admin_pg(dsn, "restore", str(bad), "--verify")
        assert code == 1, bad
        assert words in err and "nothing was replaced" in err, err
        if "checks" in words:
            assert "no chinwag schema" in err or "newer than this chinwag knows" in err
        assert "Traceback" not in err
        assert await _lobby_ids(dsn) == before
        names = await _databases(pg_server)
        assert not [n for n in names if n.startswith(database + "_")], names  # no leftovers

    # The whole dump onto a server that lost the store (no database of that name yet).
    fresh = pg_server.dsn_for(database + "_new")
    code, out, err = await admin_pg(fresh, "restore", str(dump), "--verify")
    assert code == 0, err
    assert "kept as" not in out  # nothing was there to replace
    assert await _lobby_ids(fresh) == before
