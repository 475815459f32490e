"""PostgreSQL specifics; the contract itself runs in test_sqlite_store.py over both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.services import PostgresServer, pg_database, pg_server

from chinwag.storage.base import NewMessage, StoreError
from chinwag.storage.postgres import PostgresStore

__all__ = ["pg_server"]  # the session fixture, imported for pytest

TTL = 86_400_000


def say(body: str, cid: str) -> NewMessage:
    return NewMessage(1_700_000_000_000, "a:ann", "ann", "ann", "lobby", None, None, body, cid)


async def test_writes_while_postgres_is_down_fail_unacked_and_the_store_recovers_by_itself(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    store = await PostgresStore.open(
        await pg_database(pg_server, tmp_path), connect_timeout=3, command_timeout=5
    )
    try:
        before = (await store.append(say("before", "c-1"), cid_ttl_ms=TTL)).message.id
        pg_server.stop()
        try:
            with pytest.raises(StoreError):
                await store.append(say("while down", "c-2"), cid_ttl_ms=TTL)
            with pytest.raises(StoreError):
                await store.max_message_id()
        finally:
            pg_server.start()
        # The client resends with the same cid: stored once, after "before".
        after = await store.append(say("while down", "c-2"), cid_ttl_ms=TTL)
        again = await store.append(say("while down", "c-2"), cid_ttl_ms=TTL)
        assert after.message.id > before and not after.duplicate
        assert again.duplicate and again.message.id == after.message.id
        page = await store.room_history("lobby", before=None, limit=10)
        assert [m.body for m in page.messages] == ["before", "while down"]
    finally:
        await store.close()


async def test_a_database_that_is_not_there_is_a_clear_error(pg_server: PostgresServer) -> None:
    with pytest.raises(StoreError, match="check that PostgreSQL runs there"):
        await PostgresStore.open(
            pg_server.dsn_for("no_such_database"), connect_timeout=3, command_timeout=5
        )


async def test_a_statement_over_store_timeout_fails_and_the_next_one_goes_through(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    import asyncio
    import time

    import asyncpg

    dsn = await pg_database(pg_server, tmp_path)
    store = await PostgresStore.open(dsn, command_timeout=1)
    blocker = await asyncpg.connect(dsn, timeout=10)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(StoreError):
            await asyncio.wait_for(store.append(say("blocked", "c-1"), cid_ttl_ms=TTL), 20)
        assert time.monotonic() - started < 10, "failed at store_timeout, not later"
        await tx.rollback()
        result = await store.append(say("free again", "c-1"), cid_ttl_ms=TTL)
        assert not result.duplicate
        page = await store.room_history("lobby", before=None, limit=10)
        assert [m.body for m in page.messages] == ["free again"]
    finally:
        await blocker.close()
        await store.close()


async def test_messages_stored_before_search_existed_are_found_after_the_next_open(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    import asyncpg

    from chinwag.storage.base import SearchScope

    dsn = await pg_database(pg_server, tmp_path)
    async with await PostgresStore.open(dsn) as store:
        old = (await store.append(say("Crème brûlée", "c-1"), cid_ttl_ms=TTL)).message.id
    # As a message of schema version 1 is: no words yet.
    raw = await asyncpg.connect(dsn, timeout=10)
    try:
        await raw.execute("UPDATE messages SET words = NULL")
    finally:
        await raw.close()
    scope = SearchScope(rooms=("lobby",), me=None)
    async with await PostgresStore.open(dsn) as store:
        page = await store.search(["creme", "BRULEE"], scope, before=None, limit=5)
        assert [m.id for m in page.messages] == [old]
