"""A room's key and member limit (branch ircmodes), kept in the rooms table on both
backends: written with the room's other settings, read back at load and by another
store opened on the same database (another node, or the next start), cleared, and a
room that has either is not forgotten when it empties."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from support.services import PostgresServer, pg_database, pg_server

from chinwag.storage.base import AuditEntry, RoomSettings, Store
from chinwag.storage.sqlite import SqliteStore

__all__ = ["pg_server"]  # the session fixture, imported for pytest

T0 = 1_700_000_000_000
Opener = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens a store on one database, as often as asked (each a node, or a restart)."""
    if request.param == "sqlite":
        yield functools.partial(SqliteStore.open, tmp_path / "chinwag.db")
        return
    from chinwag.storage.postgres import PostgresStore

    server: PostgresServer = request.getfixturevalue("pg_server")
    dsn = await pg_database(server, tmp_path)
    yield functools.partial(PostgresStore.open, dsn)


def entry(detail: str) -> AuditEntry:
    return AuditEntry(T0, "olga", "room", "games", None, "", detail)


async def test_a_rooms_key_and_limit_are_stored_read_back_elsewhere_and_cleared(
    opener: Opener,
) -> None:
    store, other = await opener(), await opener()
    try:
        row = await store.ensure_room(RoomSettings("games", "a:olga", created_ms=T0))
        assert (row.key, row.limit) == (None, None), "a new room has neither"
        keyed = RoomSettings("games", "a:olga", "chess", created_ms=T0, key="b33r!", limit=5)
        await store.update_room(keyed, entry("limit=5 key=set"))
        [read] = [r for r in await other.load_rooms() if r.name == "games"]
        assert (read.topic, read.key, read.limit) == ("chess", "b33r!", 5)
        again = await other.ensure_room(RoomSettings("games", "a:mallory", created_ms=T0 + 1))
        assert (again.owner, again.key, again.limit) == ("a:olga", "b33r!", 5)
        await store.update_room(
            RoomSettings("games", "a:olga", "chess", created_ms=T0), entry("limit=None key=cleared")
        )
        [read] = [r for r in await other.load_rooms() if r.name == "games"]
        assert (read.topic, read.key, read.limit) == ("chess", None, None)
        audit = await store.audit_log(room="games", since_ms=None, limit=10)
        assert [e.detail for e in audit] == ["limit=5 key=set", "limit=None key=cleared"]
    finally:
        await store.close()
        await other.close()


async def test_a_room_with_a_key_or_a_limit_is_not_forgotten_when_it_empties(
    opener: Opener,
) -> None:
    store = await opener()
    try:
        for name, key, limit in (("plain", None, None), ("keyed", "k", None), ("full", None, 3)):
            await store.ensure_room(RoomSettings(name, "a:olga", created_ms=T0))
            settings = RoomSettings(name, "a:olga", created_ms=T0, key=key, limit=limit)
            await store.update_room(settings, entry(""))
        gone = [await store.forget_room(n) for n in ("plain", "keyed", "full")]
        assert gone == [True, False, False]
        assert sorted(r.name for r in await store.load_rooms()) == ["full", "keyed"]
    finally:
        await store.close()
