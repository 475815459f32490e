"""Upgrades (issue 17, item 5): migrations run at start, after an automatic backup."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import Peer, ServerProcess
from ops_support import MIGRATIONS, NEWEST, SETTINGS, history_ids, log_in

V1 = MIGRATIONS.joinpath("001_initial.sql")


def make_v1_database(data: Path) -> None:
    """A database left by a chinwag whose schema was version 1, with one lobby message."""
    data.mkdir(parents=True)
    conn = sqlite3.connect(data / "chinwag.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(f"BEGIN;\n{V1.read_text()}\n;PRAGMA user_version = 1;\nCOMMIT;")
        conn.execute(
            "INSERT INTO messages (id, ts_ms, sender, sender_nick, room, body)"
            " VALUES (7, 1, 'g:old', 'oldtimer', 'lobby', 'from before the upgrade')"
        )
    finally:
        conn.close()


def read(db: Path, sql: str) -> object:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


async def test_a_pending_migration_is_preceded_by_a_backup_said_in_the_log(
    tmp_path: Path, peers: list[Peer]
) -> None:
    data = tmp_path / "server"
    make_v1_database(data)
    srv = ServerProcess(data, SETTINGS)
    srv.start()
    try:
        before = data / f"chinwag.db.before-v{NEWEST}"
        assert read(before, "PRAGMA user_version") == 1
        assert read(before, "SELECT body FROM messages WHERE id = 7") == "from before the upgrade"
        assert read(data / "chinwag.db", "PRAGMA user_version") == NEWEST
        log = srv.log()
        assert f"schema version 1 and this chinwag migrates it to {NEWEST}" in log
        assert str(before) in log
        assert log.index(str(before)) < log.index("applying migration 002_invites.sql")
        peer = await log_in(peers, srv.port, "reader")
        assert await history_ids(peer, "lobby") == [7]

        srv.restart()  # current now: no second backup
        assert sorted(p.name for p in data.glob("chinwag.db.before*")) == [before.name]
        assert srv.log().count("migrates it to") == 1
    finally:
        srv.kill()


def test_a_new_database_gets_no_backup(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "server", SETTINGS)
    srv.start()
    try:
        assert srv.stop() == 0
    finally:
        srv.kill()
    assert not list((tmp_path / "server").glob("chinwag.db.before*"))


def test_when_the_backup_cannot_be_made_the_server_does_not_start_nor_migrate(
    tmp_path: Path,
) -> None:
    data = tmp_path / "server"
    make_v1_database(data)
    (data / f"chinwag.db.before-v{NEWEST}.partial").write_text("an interrupted backup")
    srv = ServerProcess(data, SETTINGS)
    with pytest.raises(RuntimeError, match="server exited early"):
        srv.start()
    assert srv.proc is not None and srv.proc.wait(10) == 1
    log = srv.log()
    assert "cannot back up the database before upgrading its schema" in log
    assert "Nothing was changed" in log and "remove it" in log
    assert read(data / "chinwag.db", "PRAGMA user_version") == 1
