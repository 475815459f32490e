"""Search on PostgreSQL (issue 15): scope tokens in the index, and the migration that adds them.

The search contract itself (case, accents, scopes, edits, deletions) runs over
both backends in test_sqlite_store.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
from support.services import PostgresServer, pg_database, pg_server

from chinwag.storage.base import SearchScope, read_migrations
from chinwag.storage.postgres import (
    INDEX_PLAN,
    RECENT_PLAN,
    SCOPE_BACKFILL_BATCH,
    SEARCH_RECENT,
    SEARCH_SQL,
    PostgresStore,
)

__all__ = ["pg_server"]  # the session fixture, imported for pytest

ROOMS = ("lobby", "attic", "den")
MIGRATIONS = read_migrations("pg_migrations")
SCOPE = next(m for m in MIGRATIONS if m[1].endswith("_search_scope.sql"))  # the one tested
OLD = SCOPE_BACKFILL_BATCH * 2 + 500  # room messages from before scope tokens: three batches


async def old_database(dsn: str) -> None:
    """A database as chinwag left it before scope tokens: rooms and DMs with their words."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        async with conn.transaction():
            await conn.execute("CREATE TABLE chinwag_schema (version INTEGER NOT NULL)")
            for version, _, sql in MIGRATIONS[: SCOPE[0] - 1]:
                await conn.execute(sql)
                await conn.execute("INSERT INTO chinwag_schema (version) VALUES ($1)", version)
        # Every message holds "common"; "obsidian" only in the den, "quokka" in the lobby.
        await conn.execute(
            "INSERT INTO messages (ts_ms, sender, sender_nick, room, body, words)"
            " SELECT n, 'a:bob', 'bob', ($1::text[])[n % 3 + 1],"
            "  CASE n % 3 WHEN 0 THEN 'common quokka' WHEN 2 THEN 'common obsidian'"
            "  ELSE 'common' END,"
            "  CASE n % 3 WHEN 0 THEN ARRAY['common', 'quokka'] WHEN 2 THEN"
            "  ARRAY['common', 'obsidian'] ELSE ARRAY['common'] END"
            " FROM generate_series(1, $2) AS n",
            list(ROOMS),
            OLD,
        )
        await conn.execute(
            "INSERT INTO messages (ts_ms, sender, sender_nick, recipient, recipient_nick, body,"
            " words) VALUES (1, 'a:bob', 'bob', 'a:ann', 'ann', 'common secret', $1),"
            " (2, 'a:bob', 'bob', 'a:cat', 'cat', 'common secret', $1)",
            ["common", "secret"],
        )
    finally:
        await conn.close()


async def plan(dsn: str, words: list[str], places: list[str], *, recent: bool) -> dict[str, Any]:
    """``EXPLAIN ANALYZE`` of one step of the store's search, with the store's settings.

    ``recent``: the first step (the newest SEARCH_RECENT ids), else the second (older ids).
    """
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        async with conn.transaction(readonly=True):
            newest = await conn.fetchval("SELECT max(id) + 1 FROM messages")
            await conn.execute(RECENT_PLAN)
            if not recent:
                await conn.execute(INDEX_PLAN)
            lower = newest - 1 - SEARCH_RECENT
            found = await conn.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {SEARCH_SQL}",
                words,
                ["lobby"],
                "a:ann",
                None,
                None,
                newest if recent else lower,
                21,
                places,
                None,
                lower if recent else 0,
            )
            return dict(json.loads(found)[0]["Plan"])
    finally:
        await conn.close()


def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """``node`` and every node under it."""
    return [node, *(n for child in node.get("Plans", []) for n in nodes(child))]


async def test_old_messages_get_their_scope_at_open_and_search_keeps_to_what_the_asker_sees(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    dsn = await pg_database(pg_server, tmp_path)
    await old_database(dsn)
    async with await PostgresStore.open(dsn) as store:
        lobby = SearchScope(rooms=("lobby",), me="a:ann")
        page = await store.search(["quokka"], lobby, before=None, limit=5)
        assert len(page.messages) == 5 and page.more
        assert {m.room for m in page.messages} == {"lobby"}
        assert (await store.search(["obsidian"], lobby, before=None, limit=5)).messages == []
        # A page the newest messages do not fill is filled from the older ones, in order.
        many = await store.search(["quokka"], lobby, before=None, limit=SEARCH_RECENT)
        ids = [m.id for m in many.messages]
        assert len(ids) == SEARCH_RECENT and ids == sorted(set(ids), reverse=True)
        assert {m.room for m in many.messages} == {"lobby"} and many.more
        secret = await store.search(["secret"], lobby, before=None, limit=5)
        assert [(m.sender, m.recipient) for m in secret.messages] == [("a:bob", "a:ann")]
        den = SearchScope(rooms=("den",), me=None)
        assert len((await store.search(["obsidian"], den, before=None, limit=5)).messages) == 5
        # The oldest message too: every batch was done.
        first = await store.search(["common"], den, before=4, limit=5)
        assert [m.id for m in first.messages] == [2]
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        assert await conn.fetchval("SELECT count(*) FROM messages WHERE scope IS NULL") == 0
        assert await conn.fetchval("SELECT count(*) FROM search_scope_backfill") == 0
        await conn.execute("VACUUM ANALYZE messages")
    finally:
        await conn.close()
    # A frequent word: its page comes from the newest ids along the primary key.
    frequent = await plan(dsn, ["common"], ["r:lobby", "d:a:ann"], recent=True)
    scans = [n for n in nodes(frequent) if n.get("Relation Name") == "messages"]
    assert [(n["Node Type"], n["Index Name"]) for n in scans] == [
        ("Index Scan", "messages_pkey")
    ], frequent
    assert scans[0]["Actual Rows"] == 21
    # A word only in rooms the asker is not in: the index says so, no row is read.
    hidden = await plan(dsn, ["obsidian"], ["r:lobby", "d:a:ann"], recent=False)
    scans = [n for n in nodes(hidden) if n.get("Relation Name") == "messages"]
    assert [n["Node Type"] for n in scans] == ["Bitmap Heap Scan"], hidden
    index = [n for n in nodes(hidden) if n.get("Index Name") == "messages_search"]
    assert len(index) == 1 and "scope" in index[0]["Index Cond"], hidden
    assert index[0]["Actual Rows"] == 0 and scans[0]["Actual Rows"] == 0


async def test_an_interrupted_backfill_resumes_where_it_stopped(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    dsn = await pg_database(pg_server, tmp_path)
    await old_database(dsn)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        # As if a first start had done one batch, then stopped: the rest is still to do.
        async with conn.transaction():
            await conn.execute(SCOPE[2])
            await conn.execute("INSERT INTO chinwag_schema (version) VALUES ($1)", SCOPE[0])
            await conn.execute(
                "UPDATE messages SET scope = ARRAY['r:' || room, 's:' || sender] WHERE id <= $1",
                SCOPE_BACKFILL_BATCH,
            )
            await conn.execute("UPDATE search_scope_backfill SET done = $1", SCOPE_BACKFILL_BATCH)
    finally:
        await conn.close()
    async with await PostgresStore.open(dsn) as store:
        everywhere = SearchScope(rooms=ROOMS, me="a:ann")
        page = await store.search(["common"], everywhere, before=None, limit=OLD + 10)
        assert len(page.messages) == OLD + 1  # every room message and ann's DM, not cat's
        ids = [m.id for m in page.messages]
        assert ids == sorted(set(ids), reverse=True)
