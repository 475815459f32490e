"""SQLite upkeep (issue 18): durability, checkpoints, and the cid dedupe of migration 012."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from pathlib import Path

import pytest

from chinwag.config import SettingsError, build
from chinwag.storage import sqlite as sqlite_module
from chinwag.storage.base import NewMessage, SearchScope, read_migrations
from chinwag.storage.sqlite import CHECKPOINT_IDLE, CHECKPOINT_POLL, SqliteStore, WalIndex

DB_NAME = "chinwag.db"
TTL_S = 3_600.0
TTL_MS = int(TTL_S * 1000)
NOW_S = 1_700_000_000.0


def say(body: str, *, cid: str | None, ts_ms: int) -> NewMessage:
    return NewMessage(
        ts_ms=ts_ms,
        sender="a:ann",
        sender_nick="ann",
        dedupe_key="ann",
        room="lobby",
        recipient=None,
        recipient_nick=None,
        body=body,
        cid=cid,
    )


def version_11(db: Path, rows: list[tuple[int, str, str, int | None, str | None]]) -> None:
    """A database as chinwag made it before migration 012, with ``rows`` in it.

    Each row: (ts_ms, dedupe_key, cid, its dedupe entry's ts_ms or None when
    the purge had taken it, body or None for the cid). A dedupe entry is
    what the old store wrote.
    """
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        for version, _, sql in read_migrations("migrations")[:11]:
            conn.executescript(f"BEGIN;\n{sql}\n;PRAGMA user_version = {version};\nCOMMIT;")
        for ts_ms, key, cid, entry, body in rows:
            message_id = conn.execute(
                "INSERT INTO messages (ts_ms, sender, sender_nick, room, body, cid)"
                " VALUES (?, 'a:ann', 'ann', 'lobby', ?, ?)",
                (ts_ms, body or cid, cid),
            ).lastrowid
            if entry is not None:
                conn.execute(
                    "INSERT INTO dedupe (dedupe_key, cid, message_id, ts_ms) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (dedupe_key, cid) DO UPDATE"
                    " SET message_id = excluded.message_id, ts_ms = excluded.ts_ms",
                    (key, cid, message_id, entry),
                )
    finally:
        conn.close()


async def test_an_old_database_keeps_deduping_the_cids_it_remembered_after_migration_012(
    tmp_path: Path,
) -> None:
    db = tmp_path / DB_NAME
    now_ms = int(NOW_S * 1000)
    fresh, old = now_ms - 1_000, now_ms - 2 * TTL_MS
    version_11(
        db,
        [
            (fresh, "ann", "c-fresh", fresh, None),  # within cid_ttl: a resend is a duplicate
            (old, "ann", "c-purged", None, None),  # its entry was purged: a new message
            (old, "ann", "c-expired", old, None),  # expired, not purged yet: a new message
            (old, "ann", "c-reused", None, "reused first"),  # replaced by the next row
            (fresh, "ann", "c-reused", fresh, "reused again"),
        ],
    )
    store = await SqliteStore.open(db)
    try:
        results = {
            cid: await store.append(say("resent", cid=cid, ts_ms=now_ms), cid_ttl_ms=TTL_MS)
            for cid in ("c-fresh", "c-purged", "c-expired", "c-reused")
        }
        ids = {
            m.body: m.id
            for m in (await store.room_history("lobby", before=None, limit=20)).messages
        }
        # The search index, built again by the migration, finds the old and the new.
        lobby = SearchScope(rooms=("lobby",), me=None)
        found = await store.search(["reused"], lobby, before=None, limit=20)
        resent = await store.search(["resent"], lobby, before=None, limit=20)
    finally:
        await store.close()
    assert [m.body for m in found.messages] == ["reused again", "reused first"]
    assert len(resent.messages) == 2
    assert results["c-fresh"].duplicate, "a remembered cid still dedupes"
    assert (results["c-fresh"].message.id, results["c-fresh"].message.ts_ms) == (1, fresh)
    assert results["c-reused"].duplicate and results["c-reused"].message.body == "reused again"
    assert results["c-reused"].message.id == ids["reused again"]
    for cid in ("c-purged", "c-expired"):
        assert not results[cid].duplicate and results[cid].message.id > 5, cid
    assert len(ids) == 7 - 1, "five old messages and two new ones (two bodies 'resent')"
    conn = sqlite3.connect(db)
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_schema")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    assert "dedupe" not in tables and "messages_dedupe" in tables
    assert "messages_fts_docsize" not in tables, "the index keeps no row sizes (columnsize=0)"
    assert version == len(read_migrations("migrations"))


async def test_a_long_migration_says_it_is_still_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / DB_NAME
    version_11(db, [(i, "ann", f"c-{i}", i, None) for i in range(200)])
    monkeypatch.setattr(sqlite_module, "MIGRATION_PROGRESS", 0.0)
    monkeypatch.setattr(sqlite_module, "MIGRATION_PROGRESS_STEPS", 100)
    caplog.set_level(logging.INFO, logger="chinwag.storage.sqlite")
    store = await SqliteStore.open(db)
    await store.close()
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("migration 012_walpages.sql still running") for line in lines)
    assert "applying migration 012_walpages.sql" in lines


async def test_a_cid_survives_a_reopen_and_a_reused_one_names_its_newest_message(
    tmp_path: Path,
) -> None:
    db = tmp_path / DB_NAME
    now_ms = int(NOW_S * 1000)
    store = await SqliteStore.open(db)
    try:
        first = await store.append(say("one", cid="c-1", ts_ms=now_ms), cid_ttl_ms=TTL_MS)
        later_ms = now_ms + TTL_MS
        second = await store.append(say("two", cid="c-1", ts_ms=later_ms), cid_ttl_ms=TTL_MS)
        assert not second.duplicate and second.message.id > first.message.id
    finally:
        await store.close()
    store = await SqliteStore.open(db)
    try:
        again = await store.append(say("two", cid="c-1", ts_ms=later_ms + 5), cid_ttl_ms=TTL_MS)
        assert again.duplicate and again.message == second.message
        page = await store.room_history("lobby", before=None, limit=5)
        assert [m.body for m in page.messages] == ["one", "two"]
    finally:
        await store.close()


@pytest.mark.parametrize(("durability", "synchronous"), [("fsync", 2), ("os", 1)])
async def test_durability_sets_how_commits_reach_the_disk_and_writes_survive_reopen(
    tmp_path: Path, durability: str, synchronous: int
) -> None:
    db = tmp_path / DB_NAME
    store = await SqliteStore.open(db, durability=durability)
    try:
        await store.append(say("kept", cid="c-1", ts_ms=0), cid_ttl_ms=TTL_MS)
        # The writer's own connection: 2 = FULL (fsync per commit), 1 = NORMAL.
        level = await asyncio.to_thread(
            lambda: store._writer.execute("PRAGMA synchronous").fetchone()[0]
        )
        assert level == synchronous
    finally:
        await store.close()
    store = await SqliteStore.open(db, durability=durability)
    try:
        page = await store.room_history("lobby", before=None, limit=5)
        assert [m.body for m in page.messages] == ["kept"]
    finally:
        await store.close()


async def test_an_unknown_durability_is_refused_and_creates_no_database(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    with pytest.raises(ValueError, match="durability is one of fsync, os, not 'power'"):
        await SqliteStore.open(db, durability="power")
    assert not db.exists()


def test_settings_check_durability_and_the_purge_limits_at_their_edges() -> None:
    assert build(overrides=["durability=os"]).durability == "os"
    assert build().durability == "fsync"
    with pytest.raises(SettingsError, match="durability is one of fsync, os"):
        build(overrides=["durability=power"])
    assert build(overrides=["dedupe_purge_batch=1"]).dedupe_purge_batch == 1
    with pytest.raises(SettingsError, match="dedupe_purge_batch must be at least 1"):
        build(overrides=["dedupe_purge_batch=0"])
    assert build(overrides=["dedupe_purge_interval=0.001"]).dedupe_purge_interval == 0.001
    with pytest.raises(SettingsError, match="dedupe_purge_interval must be above 0"):
        build(overrides=["dedupe_purge_interval=0"])


@pytest.mark.parametrize("durability", ["fsync", "os"])
async def test_when_writes_pause_the_checkpoint_thread_copies_the_wal_and_it_stops_growing(
    tmp_path: Path, durability: str
) -> None:
    db = tmp_path / DB_NAME
    wal = tmp_path / f"{DB_NAME}-wal"
    store = await SqliteStore.open(db, durability=durability)
    try:

        async def commits(n: int, tag: str) -> None:
            for i in range(n):  # one commit each, a few pages of WAL per commit
                await store.append(say(f"{tag}{i}", cid=f"{tag}{i}", ts_ms=0), cid_ttl_ms=TTL_MS)

        await commits(150, "a")
        first = wal.stat().st_size
        assert first > 150 * 4096, "each commit added pages to the WAL"
        await until_copied(store)
        await commits(150, "b")
        # After a checkpoint the writer starts the WAL over instead of appending.
        assert wal.stat().st_size <= first * 1.2
        page = await store.room_history("lobby", before=None, limit=300)
        assert len(page.messages) == 300
    finally:
        await store.close()


async def until_copied(store: SqliteStore, timeout: float = 10.0) -> None:
    """Wait (bounded) until the WAL holds nothing the database lacks."""
    deadline = time.monotonic() + timeout
    while store.wal_pending() and time.monotonic() < deadline:
        await asyncio.sleep(CHECKPOINT_POLL)
    assert store.wal_pending() == 0, "the WAL was never copied"
    assert store.checkpoints >= 1


IDLE_S = 10.0  # no copy for a pause: a loaded machine's pauses must not count


@pytest.mark.parametrize("durability", ["fsync", "os"])
async def test_while_writes_never_pause_the_wal_is_bounded_by_checkpoint_bytes(
    tmp_path: Path, durability: str
) -> None:
    async def biggest_wal(folder: Path, bound: int) -> tuple[int, int]:
        """(the WAL's largest size, checkpoints) over 600 commits that never pause."""
        await asyncio.to_thread(folder.mkdir)
        db, wal = folder / DB_NAME, folder / f"{DB_NAME}-wal"
        store = await SqliteStore.open(
            db,
            durability=durability,
            checkpoint_bytes=bound,
            checkpoint_idle=IDLE_S,
            checkpoint_step=bound,
        )
        try:
            biggest, gap, last = 0, 0.0, time.monotonic()
            for i in range(600):
                await store.append(say(f"{i} " * 100, cid=None, ts_ms=0), cid_ttl_ms=TTL_MS)
                now = time.monotonic()
                gap, last = max(gap, now - last), now
                size = wal.stat().st_size
                # Started over within the bound, the file is reused, not truncated.
                assert size >= biggest, f"the WAL shrank from {biggest} to {size} bytes"
                biggest = size
            assert gap < IDLE_S, "the writes never paused long enough for an idle copy"
            return biggest, store.checkpoints
        finally:
            await store.close()

    bound = 256 * 1024
    unbounded, copies = await biggest_wal(tmp_path / "unbounded", 2**40)
    assert copies == 0, "without a pause and below the bound, nothing is copied"
    bounded, copies = await biggest_wal(tmp_path / "bounded", bound)
    assert copies >= 1, "the WAL was copied while the writes went on"
    # Twice the bound and a commit (here up to ~20 pages): not everything written.
    assert bounded <= 2 * bound + 128 * 1024 < unbounded / 4, (bounded, unbounded)


async def test_checkpoint_wal_bytes_zero_leaves_checkpoints_to_sqlite_inside_commits(
    tmp_path: Path,
) -> None:
    assert build(overrides=["checkpoint_wal_bytes=1"]).checkpoint_wal_bytes == 1
    assert build(overrides=["checkpoint_wal_bytes=0"]).checkpoint_wal_bytes == 0
    with pytest.raises(SettingsError, match="cannot be negative"):
        build(overrides=["checkpoint_wal_bytes=-1"])
    with pytest.raises(ValueError, match="checkpoint_bytes must be at least 1"):
        await SqliteStore.open(tmp_path / DB_NAME, checkpoint_bytes=0)
    with pytest.raises(ValueError, match="checkpoint_step must be at least 1"):
        await SqliteStore.open(tmp_path / DB_NAME, checkpoint_step=0)
    store = await SqliteStore.open(tmp_path / DB_NAME, checkpoint_bytes=None)
    try:
        for i in range(1200):  # SQLite's own checkpoint runs at 1,000 pages of WAL
            await store.append(say(f"{i}", cid=None, ts_ms=0), cid_ttl_ms=TTL_MS)
        await asyncio.sleep(CHECKPOINT_IDLE * 2)
        assert store.checkpoints == 0, "no checkpoint thread"
        assert store.wal_pending() is None
        # Without SQLite's own checkpoint the WAL would hold every commit's pages;
        # os.stat, not open(): closing a descriptor would drop SQLite's locks.
        wal = await asyncio.to_thread(os.stat, tmp_path / f"{DB_NAME}-wal")
        assert wal.st_size < 1_100 * 4_120, "SQLite checkpointed by itself, at 1,000 pages"
    finally:
        await store.close()


@pytest.mark.parametrize("durability", ["fsync", "os"])
async def test_while_writes_flow_the_thread_copies_in_steps_and_the_wal_never_starts_over(
    tmp_path: Path, durability: str
) -> None:
    # Far below the bound, a copy every step; but no start-over, which would
    # sync the WAL on the writer's path (it waits for the bound or a pause).
    step = 64 * 1024
    db = tmp_path / DB_NAME
    store = await SqliteStore.open(
        db,
        durability=durability,
        checkpoint_bytes=2**40,
        checkpoint_idle=IDLE_S,
        checkpoint_step=step,
    )
    index = WalIndex(tmp_path / f"{DB_NAME}-shm")  # closed after the store: see WalIndex
    try:
        frames, started_over = 0, 0
        for i in range(600):
            await store.append(say(f"{i} " * 100, cid=None, ts_ms=0), cid_ttl_ms=TTL_MS)
            now = index.frames()
            started_over += now < frames
            frames = now
        deadline = time.monotonic() + 10.0
        while (store.wal_pending() or 0) * 4_120 >= step and time.monotonic() < deadline:
            await asyncio.sleep(CHECKPOINT_POLL)
        pending = store.wal_pending()
        assert pending is not None and pending * 4_120 < step, "the thread copied in steps"
        assert store.checkpoints >= 2, store.checkpoints
        assert frames * 4_120 > 4 * step, "the writes filled several steps"
        # A step's one copy that happens to catch up (the writer paused: a loaded
        # machine) starts the WAL over; copying again to catch up after every step
        # would start it over at nearly every step.
        assert started_over * 4 <= store.checkpoints, "the WAL started over while writes flowed"
    finally:
        await store.close()
        index.close()
