"""The moderation part of the `Store` contract (issue 16), over every backend, and the
SQLite migration that gives rooms older than moderation a row of their own."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from support.services import PostgresServer, pg_database, pg_server

from chinwag.storage.base import (
    AuditEntry,
    NewMessage,
    RoomSettings,
    Standing,
    Store,
    read_migrations,
)
from chinwag.storage.sqlite import SqliteStore

Opener = Callable[[Path], Awaitable[Store]]
__all__ = ["pg_server"]  # the session fixture, imported for pytest

T0 = 1_700_000_000_000


async def open_sqlite(tmp_path: Path) -> Store:
    return await SqliteStore.open(tmp_path / "chinwag.db")


async def open_postgres(server: PostgresServer, tmp_path: Path) -> Store:
    from chinwag.storage.postgres import PostgresStore

    return await PostgresStore.open(await pg_database(server, tmp_path))


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest) -> Opener:
    if request.param == "sqlite":
        return open_sqlite
    server: PostgresServer = request.getfixturevalue("pg_server")
    return functools.partial(open_postgres, server)


@pytest.fixture
async def store(opener: Opener, tmp_path: Path) -> AsyncIterator[Store]:
    s = await opener(tmp_path)
    try:
        yield s
    finally:
        await s.close()


def entry(action: str, room: str | None = "games", ts: int = T0) -> AuditEntry:
    return AuditEntry(ts, "olga", action, room, "bob", "why", "")


async def test_a_room_row_is_made_once_and_the_first_owner_stays(store: Store) -> None:
    first = await store.ensure_room(RoomSettings("games", "a:olga", created_ms=T0))
    assert first == RoomSettings("games", "a:olga", "", False, False, T0)
    again = await store.ensure_room(RoomSettings("games", "a:mallory", created_ms=T0 + 1))
    assert again == first
    await store.update_room(RoomSettings("games", "a:olga", "chess", True, True, T0), entry("room"))
    assert await store.load_rooms() == [RoomSettings("games", "a:olga", "chess", True, True, T0)]
    assert [e.action for e in await store.audit_log(room="games", since_ms=None, limit=9)] == [
        "room"
    ]


async def test_standings_are_set_replaced_and_lifted_with_their_audit(store: Store) -> None:
    ban = Standing("games", "a:bob", "ban", "", T0 + 60_000, "olga", "spam", T0)
    await store.put_standing(ban, entry("ban"))
    longer = Standing("games", "a:bob", "ban", "", None, "olga", "again", T0 + 1)
    await store.put_standing(longer, entry("ban", ts=T0 + 1))
    admin = Standing("", "a:ada", "role", "admin", None, "operator", "", T0)
    await store.put_standing(admin, None)
    assert await store.load_standings() == [admin, longer]
    assert await store.drop_standing("games", "a:bob", "ban", entry("unban", ts=T0 + 2))
    assert not await store.drop_standing("games", "a:bob", "ban", entry("unban", ts=T0 + 3))
    assert await store.load_standings() == [admin]
    log = await store.audit_log(room="games", since_ms=None, limit=9)
    assert [(e.action, e.ts_ms) for e in log] == [("ban", T0), ("ban", T0 + 1), ("unban", T0 + 2)]


async def test_the_audit_log_filters_by_room_and_time_oldest_first(store: Store) -> None:
    await store.add_audit(entry("kick", "games", T0))
    await store.add_audit(entry("ban", None, T0 + 10))
    await store.add_audit(entry("mute", "chess", T0 + 20))
    await store.add_audit(entry("kick", "games", T0 + 30))
    every = await store.audit_log(room=None, since_ms=None, limit=9)
    assert [e.action for e in every] == ["kick", "ban", "mute", "kick"]
    assert every[1] == AuditEntry(T0 + 10, "olga", "ban", None, "bob", "why", "")
    games = await store.audit_log(room="games", since_ms=T0 + 1, limit=9)
    assert [e.ts_ms for e in games] == [T0 + 30]
    assert len(await store.audit_log(room=None, since_ms=None, limit=2)) == 2


async def test_rooms_from_before_moderation_get_a_row_the_admins_govern(tmp_path: Path) -> None:
    db = tmp_path / "chinwag.db"
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for version, _, sql in read_migrations("migrations")[:6]:
            conn.executescript(f"BEGIN;\n{sql}\n;PRAGMA user_version = {version};\nCOMMIT;")
        conn.execute(
            "INSERT INTO memberships (account, room, from_id, to_id)"
            " VALUES ('a:ann', 'games', 0, NULL)"
        )
        conn.execute(
            "INSERT INTO messages (ts_ms, sender, sender_nick, room, body)"
            " VALUES (1, 'g:x', 'x', 'oldroom', 'hi')"
        )
    finally:
        conn.close()
    store = await SqliteStore.open(db)
    try:
        rows = {r.name: r for r in await store.load_rooms()}
        assert set(rows) == {"games", "oldroom"}
        assert all(r.owner is None and not r.private and not r.announce for r in rows.values())
    finally:
        await store.close()


async def test_a_room_is_forgotten_only_when_it_carries_nothing(store: Store) -> None:
    """rooms4: `forget_room` deletes a room's row only with no member, message, standing,
    topic or flag, all checked in its own transaction."""
    for name in ("empty", "member", "said", "topic", "muted"):
        await store.ensure_room(RoomSettings(name, "a:olga", created_ms=T0))
    await store.update_room(RoomSettings("topic", "a:olga", "chess", created_ms=T0), entry("room"))
    await store.join_room("a:olga", "member")
    await store.join_room("a:olga", "empty")
    await store.leave_room("a:olga", "empty")
    said = NewMessage(T0, "a:olga", "olga", "olga", "said", None, None, "hi", "c1")
    await store.append(said, cid_ttl_ms=60_000)
    await store.put_standing(Standing("muted", "a:bob", "mute", "", None, "olga", "", T0), None)
    assert [await store.forget_room(n) for n in ("empty", "member", "said", "topic", "muted")] == [
        True,
        False,
        False,
        False,
        False,
    ]
    assert [r.name for r in await store.load_rooms()] == ["member", "muted", "said", "topic"]
    assert not await store.forget_room("empty"), "gone already"


async def test_topic_lock_secret_and_a_guests_marks_are_kept_and_keep_a_room(store: Store) -> None:
    """ircroles: a room's topic lock and secrecy, who set its topic and when, the guest whose
    session its locks end with, and the guest that made a standing are stored and read back
    as written; a room unlocked or secret is not forgotten (it carries a setting)."""
    made = await store.ensure_room(RoomSettings("den", "g:1", created_ms=T0, secret=True))
    assert (made.topic_locked, made.secret, made.guest) == (True, True, None)
    new = RoomSettings(
        "den", "g:1", "hi", True, True, T0, None, None, None, False, True, "g:1", "gus", T0 + 5
    )
    await store.update_room(new, entry("room", "den"))
    await store.ensure_room(RoomSettings("open", "a:olga", created_ms=T0))
    await store.update_room(
        RoomSettings("open", "a:olga", created_ms=T0, topic_locked=False), entry("room", "open")
    )
    rows = {r.name: r for r in await store.load_rooms()}
    assert rows["den"] == new
    assert (rows["open"].topic_locked, rows["open"].secret, rows["open"].guest) == (
        False,
        False,
        None,
    )
    voice = Standing("den", "g:2", "voice", "", None, "gus", "", T0, guest="g:1")
    nick_ban = Standing("den", "n:bar", "ban", "bar", None, "olga", "", T0)
    await store.put_standing(voice, entry("voice", "den"))
    await store.put_standing(nick_ban, None)
    assert await store.load_standings() == [voice, nick_ban]
    await store.put_standing(Standing("den", "g:2", "voice", "", None, "olga", "", T0 + 1), None)
    assert (await store.load_standings())[0].guest is None  # an account took it over
    await store.drop_standing("den", "g:2", "voice", None)
    await store.drop_standing("den", "n:bar", "ban", None)
    assert not await store.forget_room("open")  # unlocked: a setting of its own
    await store.update_room(RoomSettings("den", None, created_ms=T0, secret=True), entry("room"))
    assert not await store.forget_room("den")  # secret
    await store.update_room(RoomSettings("den", None, created_ms=T0), entry("room"))
    assert await store.forget_room("den")
