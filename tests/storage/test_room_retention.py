"""A room's own retention, kept in the rooms table (issue 17), on both backends.

The room's owner (or an admin) sets ``retention_days``; the store keeps it
with the room's other settings and its purge honours it: a room keeps its
messages for the shorter of the server's retention for it and its own.
Injected clock, exact edges (a message exactly N days old stays, one a
millisecond older goes).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from support.services import PostgresServer, pg_database, pg_server

from chinwag.storage.base import DAY_MS, AuditEntry, NewMessage, Retention, RoomSettings, Store
from chinwag.storage.sqlite import SqliteStore

__all__ = ["pg_server"]  # the session fixture, imported for pytest

NOW_S = 1_700_000_000.0
NOW_MS = int(NOW_S * 1000)
TTL_MS = 3_600_000
# The server's settings: rooms 30 days, "short" 1 day, "archive" forever; DMs forever.
SERVER = Retention(rooms=30, per_room={"short": 1, "archive": None})
Opened = tuple[Store, Callable[[], Awaitable[None]]]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def post(body: str, ts_ms: int, room: str) -> NewMessage:
    return NewMessage(
        ts_ms=ts_ms, sender="a:ann", sender_nick="ann", dedupe_key="ann", room=room,
        recipient=None, recipient_nick=None, body=body, cid=None,
    )  # fmt: skip


def audit(room: str) -> AuditEntry:
    return AuditEntry(NOW_MS, "ann", "room", room, None, "", "retention_days")


@contextlib.asynccontextmanager
async def open_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, retention: Retention | None
) -> AsyncIterator[Opened]:
    """A store with ``retention`` and a clock; and how to make a purge step run."""
    clock = Clock(NOW_S)
    store: Store
    if kind == "sqlite":
        store = await SqliteStore.open(
            tmp_path / "chinwag.db", purge_interval=600.0, clock=clock, retention=retention,
        )  # fmt: skip
    else:
        from chinwag.storage.postgres import PostgresStore

        server: PostgresServer = request.getfixturevalue("pg_server")
        store = await PostgresStore.open(
            await pg_database(server, tmp_path), cid_ttl=TTL_MS / 1000,
            purge_interval=0.05, clock=clock, retention=retention,
        )  # fmt: skip

    async def step() -> None:
        """A purge step after 600 s of the clock (a message wakes SQLite's writer)."""
        clock.now += 600.0
        await store.append(post("wake", int(clock.now * 1000), "lobby"), cid_ttl_ms=TTL_MS)

    try:
        yield store, step
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def opened(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opened]:
    """A store with the server's retention (`SERVER`)."""
    async with open_store(request.param, request, tmp_path, SERVER) as made:
        yield made


@pytest.fixture(params=["sqlite", "postgresql"])
async def opened_forever(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opened]:
    """A store with the default settings: the server keeps every message forever."""
    async with open_store(request.param, request, tmp_path, None) as made:
        yield made


async def room_bodies(store: Store, rooms: list[str]) -> set[str]:
    found: set[str] = set()
    for room in rooms:
        page = await store.room_history(room, before=None, limit=100)
        found |= {m.body for m in page.messages}
    return found


async def until(read: Callable[[], Awaitable[set[str]]], expected: set[str]) -> set[str]:
    deadline = time.monotonic() + 10
    seen = await read()
    while seen != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        seen = await read()
    return seen


async def test_a_rooms_retention_is_stored_with_its_settings(opened: Opened) -> None:
    store, _ = opened
    row = await store.ensure_room(RoomSettings("games", "a:ann", created_ms=NOW_MS))
    assert row.retention_days is None, "a new room has no retention of its own"
    await store.update_room(RoomSettings("games", "a:ann", "chess", retention_days=7), audit("g"))
    [stored] = [r for r in await store.load_rooms() if r.name == "games"]
    assert (stored.topic, stored.retention_days) == ("chess", 7)
    await store.update_room(RoomSettings("games", "a:ann", "chess"), audit("games"))
    [stored] = [r for r in await store.load_rooms() if r.name == "games"]
    assert stored.retention_days is None, "cleared: the server's settings alone apply"


async def test_the_purge_keeps_the_shorter_of_the_servers_and_the_rooms_retention(
    opened: Opened,
) -> None:
    store, step = opened
    at = NOW_MS + 600_000  # the clock when the purge step runs
    own = {"games": 2, "short": 5, "archive": 3, "long": 90}
    for room, days in own.items():
        await store.ensure_room(RoomSettings(room, "a:ann", created_ms=NOW_MS))
        await store.update_room(
            RoomSettings(room, "a:ann", retention_days=days), audit(room)
        )  # fmt: skip
    # Each room's effective retention, and a message at its edge and one ms past it.
    effective = {
        "games": 2,  # its own 2 days, shorter than the server's 30
        "short": 1,  # the server's 1 day for it, shorter than its own 5
        "archive": 3,  # the server keeps it forever; its own 3 days hold
        "long": 30,  # the server's 30 days, shorter than its own 90
        "plain": 30,  # no setting of its own: the server's
    }
    kept, gone = set(), set()
    for room, days in effective.items():
        cut = at - days * DAY_MS
        await store.append(post(f"{room} at its edge", cut, room), cid_ttl_ms=TTL_MS)
        await store.append(post(f"{room} past it", cut - 1, room), cid_ttl_ms=TTL_MS)
        kept.add(f"{room} at its edge")
        gone.add(f"{room} past it")
    rooms = list(effective)
    assert await room_bodies(store, rooms) == kept | gone, "nothing goes before a step"

    await step()
    assert await until(lambda: room_bodies(store, rooms), kept) == kept


async def test_a_rooms_own_retention_holds_on_a_server_that_keeps_everything(
    opened_forever: Opened,
) -> None:
    store, step = opened_forever  # the default: no server retention at all
    at = NOW_MS + 600_000
    await store.ensure_room(RoomSettings("games", "a:ann", created_ms=NOW_MS))
    await store.update_room(RoomSettings("games", "a:ann", retention_days=2), audit("games"))
    cut = at - 2 * DAY_MS
    await store.append(post("at its edge", cut, "games"), cid_ttl_ms=TTL_MS)
    await store.append(post("past it", cut - 1, "games"), cid_ttl_ms=TTL_MS)
    await store.append(post("old elsewhere", cut - DAY_MS, "plain"), cid_ttl_ms=TTL_MS)
    await step()
    assert await until(lambda: room_bodies(store, ["games"]), {"at its edge"}) == {"at its edge"}
    assert await room_bodies(store, ["plain"]) == {"old elsewhere"}, "the server keeps it"
