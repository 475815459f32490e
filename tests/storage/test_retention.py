"""Retention (issue 17): messages older than their conversation's limit are deleted for good.

A real SQLite file and an injected clock: exactly what is older goes (rows,
the events about them, their reactions, their search words), nothing else,
and the deleted text is in no database file once the purge step committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from support.services import PostgresServer, pg_database, pg_server

from chinwag.config import SettingsError, build
from chinwag.server.app import retention_of
from chinwag.storage.base import DAY_MS, NewMessage, Retention, SearchScope, Store
from chinwag.storage.sqlite import SqliteStore

DB_NAME = "chinwag.db"
NOW_S = 1_700_000_000.0
NOW_MS = int(NOW_S * 1000)
INTERVAL_S = 600.0  # between purge steps
TTL_MS = 3_600_000
__all__ = ["pg_server"]  # the session fixture, imported for pytest
RETENTION = Retention(rooms=30, dms=7, per_room={"short": 1, "archive": None})


class Clock:
    """Wall-clock seconds that move only when told (the store's ``clock``)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def post(body: str, ts_ms: int, *, room: str | None = None, to: str | None = None) -> NewMessage:
    return NewMessage(
        ts_ms=ts_ms,
        sender="a:ann",
        sender_nick="ann",
        dedupe_key="ann",
        room=room,
        recipient=to,
        recipient_nick=None if to is None else to[2:],
        body=body,
        cid=None,
    )


def event(kind: str, target: int, body: str, ts_ms: int, room: str) -> NewMessage:
    return NewMessage(
        ts_ms=ts_ms,
        sender="a:ann",
        sender_nick="ann",
        dedupe_key="ann",
        room=room,
        recipient=None,
        recipient_nick=None,
        body=body,
        cid=None,
        kind=kind,
        target=target,
    )


def bodies(db: Path) -> set[str]:
    """Every body in the messages table, read over a connection of our own."""
    conn = sqlite3.connect(db)
    try:
        return {str(body) for (body,) in conn.execute("SELECT body FROM messages")}
    finally:
        conn.close()


async def until_bodies(db: Path, expected: set[str], timeout: float = 10.0) -> set[str]:
    """Wait (bounded) until the stored bodies are ``expected``; return the last seen."""
    deadline = time.monotonic() + timeout
    seen = bodies(db)
    while seen != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        seen = bodies(db)
    return seen


def _listing(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


async def database_files(folder: Path) -> dict[str, bytes]:
    """The bytes of the database and of its -wal and -shm files, by name.

    Read by another process (cat): closing a descriptor this process opened on
    them would drop the locks the store's connections hold (POSIX locks).
    """
    found: dict[str, bytes] = {}
    for path in await asyncio.to_thread(_listing, folder):
        if path.name.startswith(DB_NAME):
            cat = await asyncio.create_subprocess_exec(
                "cat", str(path), stdout=asyncio.subprocess.PIPE
            )
            found[path.name], _ = await asyncio.wait_for(cat.communicate(), 30)
    return found


async def open_store(db: Path, clock: Clock, *, batch: int = 500) -> SqliteStore:
    return await SqliteStore.open(
        db,
        purge_interval=INTERVAL_S,
        clock=clock,
        retention=RETENTION,
        retention_batch=batch,
    )


async def wake(store: SqliteStore, clock: Clock, body: str) -> None:
    """Make a purge step due and wake the writer with a fresh message."""
    clock.now += INTERVAL_S
    await store.append(post(body, int(clock.now * 1000), room="lobby"), cid_ttl_ms=TTL_MS)


async def until(
    read: Callable[[], Awaitable[set[str]]], expected: set[str], timeout: float = 10.0
) -> set[str]:
    """Wait (bounded) until ``read()`` gives ``expected``; return the last seen."""
    deadline = time.monotonic() + timeout
    seen = await read()
    while seen != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        seen = await read()
    return seen


async def exactly_what_is_older_goes(
    store: Store,
    clock: Clock,
    raw_bodies: Callable[[], Awaitable[set[str]]],
    step: Callable[[], Awaitable[None]],
    at: int,
) -> None:
    """The retention contract on either backend; ``step()`` makes a purge step run at ``at``.

    ``raw_bodies()`` reads every body stored, events included, past the store.
    """
    room_cut, dm_cut, short_cut = at - 30 * DAY_MS, at - 7 * DAY_MS, at - 1 * DAY_MS
    kept = {
        "lobby at its cutoff": post("lobby at its cutoff", room_cut, room="lobby"),
        "lobby fresh": post("lobby fresh", NOW_MS, room="lobby"),
        "short at its cutoff": post("short at its cutoff", short_cut, room="short"),
        "archive ancient": post("archive ancient", 0, room="archive"),
        "dm at its cutoff": post("dm at its cutoff", dm_cut, to="a:bob"),
        "dm to self fresh": post("dm to self fresh", NOW_MS, to="a:ann"),
    }
    gone = {
        "lobby expired": post("lobby expired", room_cut - 1, room="lobby"),
        "other expired": post("other expired", room_cut - 1, room="other"),
        "short expired": post("short expired", short_cut - 1, room="short"),
        "dm expired": post("dm expired", dm_cut - 1, to="a:bob"),
    }
    ids = {
        body: (await store.append(m, cid_ttl_ms=TTL_MS)).message.id
        for body, m in {**kept, **gone}.items()
    }
    # Recent events about an expired message hold its text (the edit): they go
    # with it; those about a kept message stay.
    for target, tag in ((ids["lobby expired"], "gone"), (ids["lobby fresh"], "kept")):
        await store.append(event("edit", target, f"edited {tag}", NOW_MS, "lobby"), cid_ttl_ms=0)
        await store.append(event("react", target, "👍", NOW_MS, "lobby"), cid_ttl_ms=0)
    # An edit replaces its message's body too.
    edited = {"edited gone", "edited kept", "👍"}
    everything = (set(kept) | set(gone) | edited) - {"lobby expired", "lobby fresh"}
    assert await raw_bodies() == everything, "nothing is deleted before a purge step is due"

    await step()
    expected = (set(kept) - {"lobby fresh"}) | {"wake", "edited kept", "👍"}
    assert await until(raw_bodies, expected) == expected

    lobby = await store.room_history("lobby", before=None, limit=50)
    assert [m.body for m in lobby.messages] == ["lobby at its cutoff", "edited kept", "wake"]
    fresh = next(m for m in lobby.messages if m.id == ids["lobby fresh"])
    assert fresh.body == "edited kept" and fresh.reactions == (("👍", ("ann",)),)
    assert [
        m.body for m in (await store.room_history("other", before=None, limit=9)).messages
    ] == []
    dms = await store.dm_history("a:ann", "a:bob", before=None, limit=9)
    assert [m.body for m in dms.messages] == ["dm at its cutoff"]

    everywhere = SearchScope(rooms=("lobby", "other", "short", "archive"), me="a:ann")
    found = await store.search(["expired"], everywhere, before=None, limit=50)
    assert found.messages == [], "expired messages are gone from the search index"
    found = await store.search(["cutoff"], everywhere, before=None, limit=50)
    assert {m.body for m in found.messages} == {
        "lobby at its cutoff",
        "short at its cutoff",
        "dm at its cutoff",
    }


@pytest.mark.parametrize("batch", [1, 500])
async def test_sqlite_deletes_exactly_the_messages_older_than_their_retention(
    tmp_path: Path, batch: int
) -> None:
    db = tmp_path / DB_NAME
    clock = Clock(NOW_S)
    store = await open_store(db, clock, batch=batch)

    async def raw() -> set[str]:
        return bodies(db)

    try:
        # The step runs at NOW + INTERVAL: the cutoffs are relative to that time.
        at = NOW_MS + int(INTERVAL_S * 1000)
        await exactly_what_is_older_goes(store, clock, raw, lambda: wake(store, clock, "wake"), at)
    finally:
        await store.close()


@pytest.mark.parametrize("batch", [1, 500])
async def test_postgresql_deletes_exactly_the_messages_older_than_their_retention(
    pg_server: PostgresServer, tmp_path: Path, batch: int
) -> None:
    import asyncpg

    from chinwag.storage.postgres import PostgresStore

    dsn = await pg_database(pg_server, tmp_path)
    clock = Clock(NOW_S)
    store = await PostgresStore.open(
        dsn,
        cid_ttl=TTL_MS / 1000,
        purge_interval=0.05,  # real seconds between steps; the clock says what is old
        clock=clock,
        retention=RETENTION,
        retention_batch=batch,
    )
    conn = await asyncpg.connect(dsn, timeout=10)

    async def raw() -> set[str]:
        return {str(row["body"]) for row in await conn.fetch("SELECT body FROM messages")}

    async def step() -> None:
        clock.now += INTERVAL_S
        await store.append(post("wake", int(clock.now * 1000), room="lobby"), cid_ttl_ms=TTL_MS)

    try:
        # Steps run all along; the "gone" messages expire only at NOW + INTERVAL.
        await exactly_what_is_older_goes(store, clock, raw, step, NOW_MS + int(INTERVAL_S * 1000))
        words = await conn.fetchval("SELECT count(*) FROM messages WHERE 'expired' = ANY(words)")
        assert words == 0, "no row keeps the expired messages' search words"
    finally:
        await conn.close()
        await store.close()


async def test_the_deleted_text_is_in_no_database_file_once_the_step_committed(
    tmp_path: Path,
) -> None:
    db = tmp_path / DB_NAME
    clock = Clock(NOW_S)
    store = await open_store(db, clock)
    secret = "zanzibar-expired-0451 the plan"
    edit = "quetzal-edited-9137 the plan"
    kept = "marmot-kept-2202 the plan"
    try:
        old = await store.append(post(secret, 0, room="lobby"), cid_ttl_ms=TTL_MS)
        await store.append(event("edit", old.message.id, edit, NOW_MS, "lobby"), cid_ttl_ms=0)
        await store.append(post(kept, NOW_MS, room="lobby"), cid_ttl_ms=TTL_MS)
        await store.append(post(secret, 0, to="a:bob"), cid_ttl_ms=TTL_MS)
        await wake(store, clock, "wake")
        assert await until_bodies(db, {kept, "wake"}) == {kept, "wake"}
        # Read while the server runs: the purge step emptied the WAL after its commit.
        files = await database_files(tmp_path)
        everything = b"".join(files.values())
        assert kept.encode() in everything, "the kept text is on disk (the check can see text)"
        assert secret.encode() not in everything, f"the expired text is still in {sorted(files)}"
        assert edit.encode() not in everything, "the edit's text went with its message"
    finally:
        await store.close()


async def test_without_retention_nothing_is_deleted_however_old(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    clock = Clock(NOW_S)
    store = await SqliteStore.open(db, purge_interval=INTERVAL_S, clock=clock)
    try:
        await store.append(post("from 1970", 0, room="lobby"), cid_ttl_ms=TTL_MS)
        await store.append(post("dm from 1970", 0, to="a:bob"), cid_ttl_ms=TTL_MS)
        clock.now += 100 * 365 * 86_400
        await wake(store, clock, "wake")
        await asyncio.sleep(0.2)  # a purge step would have run by now
        assert bodies(db) == {"from 1970", "dm from 1970", "wake"}
    finally:
        await store.close()


def test_a_retention_is_a_number_of_days_above_zero() -> None:
    assert Retention().active is False
    assert Retention(per_room={"lobby": None}).active is False
    assert Retention(dms=0.5).active is True
    with pytest.raises(ValueError, match="above 0"):
        Retention(rooms=0)
    with pytest.raises(ValueError, match="above 0"):
        Retention(per_room={"lobby": -1})


def test_the_retention_settings_are_checked_at_their_edges() -> None:
    settings = build(
        overrides=[
            "room_retention_days=30",
            "dm_retention_days=0.5",
            "room_retention=Lobby=7, archive=0,x=0.001",
            "retention_batch=1",
        ]
    )
    assert retention_of(settings) == Retention(
        rooms=30.0, dms=0.5, per_room={"lobby": 7.0, "archive": None, "x": 0.001}
    )
    assert retention_of(build()) == Retention(), "by default nothing is ever deleted"
    assert not retention_of(build()).active
    with pytest.raises(SettingsError, match="retention_batch must be at least 1"):
        build(overrides=["retention_batch=0"])
    with pytest.raises(SettingsError, match="cannot be negative"):
        build(overrides=["dm_retention_days=-1"])
    for bad in ("lobby", "lobby=", "lobby=-1", "lobby=soon", "no room=3", "lobby=inf", "=3"):
        with pytest.raises(SettingsError, match="write ROOM=DAYS entries"):
            build(overrides=[f"room_retention={bad}"])
    with pytest.raises(SettingsError, match="lists the room 'lobby' twice"):
        build(overrides=["room_retention=lobby=1,LOBBY=2"])
