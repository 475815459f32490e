"""The `Store` on PostgreSQL (asyncpg), for several nodes sharing one database.

Shape, as on SQLite (storage/sqlite.py), so the hub sees the same store:

* **One writer task per node** owns one connection. Writes are jobs in a
  queue, queued when the method is called; the writer takes every job
  waiting (up to ``max_batch``) and runs them in ONE transaction (group
  commit). A job that may refuse (``OverQuota``, ``AccountExists``) runs in a
  SAVEPOINT so that its refusal is undone alone; any other failing job makes
  the writer roll the batch back and run it again with every job in a
  SAVEPOINT. Futures are resolved in queue order only after ``COMMIT``
  returned: nothing is acknowledged before it is durable.
* **Ids commit in id order on every node.** Every write transaction first
  takes one transaction-level advisory lock (``pg_advisory_xact_lock``), so
  write transactions of all nodes run one after the other and a message id
  is never committed after a higher one. "I saw id N committed" therefore
  means every lower id is committed or will never exist, which is what
  delivery by position needs (core/delivery.py). The price: the cluster has
  one write transaction at a time; group commit amortises it over a batch.
* **Reads** use a small pool, each read in one REPEATABLE READ, read-only
  transaction (one snapshot).
* The schema comes from numbered files in ``pg_migrations/``, applied at
  :meth:`PostgresStore.open` under an advisory lock (nodes starting together
  migrate once), tracked in the table ``chinwag_schema``.

A lost connection fails the jobs of its batch with `StoreError` (no ack); the
next batch reconnects, so the store recovers when the database is back
without restarting the node.

**Purges** (issue 17): every ``purge_interval`` seconds a purge job goes
through the writer like any write: at most ``purge_batch`` dedupe rows older
than ``cid_ttl`` and ``retention_batch`` messages older than their
``retention`` (with the events about them, their reactions and their search
words, which live in the row), then the next step at once while a step found
a full batch. PostgreSQL keeps the deleted rows' old versions in the table
file until ``VACUUM`` reuses the space (docs/security.md).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import time
import unicodedata
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, TypeVar

import asyncpg

from chinwag.storage.base import (
    AccountExists,
    AccountRow,
    AppendResult,
    AuditEntry,
    BacklogStart,
    Gone,
    Histogram,
    NewMessage,
    OverQuota,
    Page,
    Retention,
    RoomSettings,
    SearchScope,
    Standing,
    StoredMessage,
    StoreError,
    account_export,
    heads,
    read_migrations,
)

if TYPE_CHECKING:
    from chinwag.storage.base import Store

__all__ = ["PostgresStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Conn = Any  # asyncpg.Connection: asyncpg has no type hints

_MAX_ID: Final = 2**63 - 1
_WRITE_LOCK: Final = 0x63687767  # "chwg": the advisory lock every write transaction takes
_MIGRATE_LOCK: Final = 0x63687768
_COLS: Final = (
    "id, ts_ms, sender, sender_nick, room, recipient, recipient_nick, body, cid,"
    " kind, target, reply_to, edited_ms, deleted, mentions, notice, concat"
)
_COLS_M: Final = ", ".join(f"m.{c.strip()}" for c in _COLS.split(","))
_ACCOUNT_COLS: Final = "key, nick, skeleton, password_hash, created_ms, deleted, bot"

# The messages an account may see in (lo, hi]: room messages inside one of
# its membership intervals, DMs it received, DMs it sent.
_BACKLOG_WHERE: Final = """
 WHERE m.id > $2 AND m.id <= $3 AND m.ts_ms >= $4 AND (
       m.recipient = $1
    OR (m.sender = $1 AND m.recipient IS NOT NULL)
    OR (m.room IS NOT NULL AND EXISTS (
            SELECT 1 FROM memberships AS s
             WHERE s.account = $1 AND s.room = m.room
               AND m.id > s.from_id AND (s.to_id IS NULL OR m.id <= s.to_id))))
"""
BACKLOG_IDS_SQL: Final = (
    f"SELECT m.id FROM messages AS m {_BACKLOG_WHERE} ORDER BY m.id DESC LIMIT $5"
)
BACKLOG_ROWS_SQL: Final = (
    f"SELECT {_COLS_M} FROM messages AS m {_BACKLOG_WHERE} ORDER BY m.id ASC LIMIT $5"
)
ROOM_HISTORY_SQL: Final = f"""
SELECT {_COLS} FROM messages WHERE room = $1 AND id < $2 AND kind IS NULL
 ORDER BY id DESC LIMIT $3
"""
DM_HISTORY_SQL: Final = f"""
SELECT {_COLS} FROM (
    (SELECT {_COLS} FROM messages WHERE sender = $1 AND recipient = $2 AND id < $3
       AND kind IS NULL ORDER BY id DESC LIMIT $4)
    UNION ALL
    (SELECT {_COLS} FROM messages WHERE sender = $2 AND recipient = $1 AND id < $3 AND $1 <> $2
       AND kind IS NULL ORDER BY id DESC LIMIT $4)
) AS both_ways ORDER BY id DESC LIMIT $4
"""
# A range of history (IRC CHATHISTORY AFTER/AROUND/BETWEEN), read from its
# oldest or its newest end (ASC or DESC), bounded like the pages above.
ROOM_RANGE_SQL: Final = f"""
SELECT {_COLS} FROM messages WHERE room = $1 AND id > $2 AND id < $3 AND kind IS NULL
   AND ts_ms > $5 AND ts_ms < $6
 ORDER BY id {{order}} LIMIT $4
"""
DM_RANGE_SQL: Final = f"""
SELECT {_COLS} FROM (
    (SELECT {_COLS} FROM messages WHERE sender = $1 AND recipient = $2 AND id > $3 AND id < $4
       AND kind IS NULL AND ts_ms > $6 AND ts_ms < $7 ORDER BY id {{order}} LIMIT $5)
    UNION ALL
    (SELECT {_COLS} FROM messages WHERE sender = $2 AND recipient = $1 AND id > $3 AND id < $4
       AND $1 <> $2 AND kind IS NULL AND ts_ms > $6 AND ts_ms < $7 ORDER BY id {{order}} LIMIT $5)
) AS both_ways ORDER BY id {{order}} LIMIT $5
"""
# The newest message of each room named and of each DM conversation of $1
# (a conversation's two directions are two rows here; the caller keeps one).
HEADS_SQL: Final = f"""
SELECT {_COLS} FROM messages WHERE id IN (
    SELECT (SELECT max(id) FROM messages WHERE room = r AND kind IS NULL)
      FROM unnest($2::text[]) AS r
    UNION ALL
    SELECT max(id) FROM messages
     WHERE sender = $1 AND recipient IS NOT NULL AND kind IS NULL GROUP BY recipient
    UNION ALL
    SELECT max(id) FROM messages WHERE recipient = $1 AND kind IS NULL GROUP BY sender
)
"""
# ``$2`` bounds the count (NULL: no bound) so a quota check reads at most ``quota`` rows.
UNDELIVERED_SQL: Final = """
SELECT count(*) FROM (
    SELECT 1 FROM messages
     WHERE recipient = $1
       AND id > (SELECT coalesce(max(cursor), 0) FROM cursors WHERE account = $1)
       AND sender <> $1
     LIMIT $2
) AS held
"""
_HIGH_WATER_SQL: Final = """
SELECT greatest(
    (SELECT coalesce(max(id), 0) FROM messages),
    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM messages_id_seq))
"""


# PostgreSQL text cannot hold U+0000: a body is stored with U+0000 as "\x01" "0"
# and U+0001 as "\x01" "1" (the protocol forbids both in a body, so this costs a
# membership test per message).
_UNESCAPE: Final = re.compile("\x01(.)", re.DOTALL)


def _escape(body: str) -> str:
    if "\x00" in body or "\x01" in body:
        return body.replace("\x01", "\x011").replace("\x00", "\x010")
    return body


def _unescape(body: str) -> str:
    if "\x01" in body:
        return _UNESCAPE.sub(lambda m: "\x00" if m.group(1) == "0" else "\x01", body)
    return body


def _message(row: Any) -> StoredMessage:
    (id_, ts_ms, sender, sender_nick, room, recipient, recipient_nick, body, cid, kind, target,
     reply_to, edited_ms, deleted, mentions, notice, concat) = tuple(row)[:17]  # fmt: skip
    return StoredMessage(
        id_, ts_ms, sender, sender_nick, room, recipient, recipient_nick, _unescape(body), cid,
        kind, target, reply_to, edited_ms, bool(deleted), tuple(mentions.split()),
        notice=bool(notice), concat=tuple(int(c) for c in concat.split()),
    )  # fmt: skip


# A search: messages holding every word, newest first, kept when the asker may
# see them (a room of $2, or a DM of $3, narrowed to $4 and to sender $5). The
# index finds them by their words and their scope tokens (migration 008): one of
# the places $8 the asker may look, and every token of $9 (the other party of a
# DM, the sender; NULL: no narrowing); the row is checked again. Ids $10 <= id < $6.
SEARCH_SQL: Final = f"""
SELECT {_COLS} FROM messages
 WHERE words @> $1::text[] AND scope && $8::text[]
   AND ($9::text[] IS NULL OR scope @> $9::text[]) AND id < $6 AND id >= $10
   AND (room = ANY($2::text[])
        OR (recipient IS NOT NULL AND $3::text IS NOT NULL AND $3 IN (sender, recipient)
            AND ($4::text IS NULL OR ($4 IN (sender, recipient)
                                      AND ($4 <> $3 OR sender = recipient)))))
   AND ($5::text IS NULL OR sender = $5)
 ORDER BY id DESC
 LIMIT $7
"""
# The reactions on a page of messages in the order they were put on.
REACTIONS_SQL: Final = """
SELECT message_id, emoji, nick FROM reactions
 WHERE message_id = ANY($1::bigint[]) ORDER BY message_id, event_id
"""
_WORD: Final = re.compile(r"[^\W_]+")  # a word as SQLite's unicode61 splits text
INDEX_BATCH: Final = 1_000  # messages given their words in one step at start


def fold(text: str) -> str:
    """``text`` without case and accents ("Café" -> "cafe"), as the search compares it."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def index_words(body: str) -> list[str]:
    """The distinct folded words of a message body: what search looks up."""
    return list(dict.fromkeys(_WORD.findall(fold(body))))


# -- search scope tokens (issue 15, pgsearch) --------------------------------------
# Where a message may be seen, as search's index holds it (migration 008): the
# room, or both parties of a DM, and the sender. `scope_tokens` and SCOPE_SQL
# say the same; a folded word never holds ':', so no token is ever a word.
SCOPE_SQL: Final = (
    "CASE WHEN room IS NOT NULL THEN ARRAY['r:' || room, 's:' || sender]"
    " ELSE ARRAY['d:' || sender, 'd:' || recipient, 's:' || sender] END"
)
SCOPE_BACKFILL_BATCH: Final = 10_000  # messages given their scope in one transaction
# A search first reads this many of the newest messages in id order (a frequent
# word fills its page there), then asks the index for the older ones (see search).
SEARCH_RECENT: Final = 5_000
# The two ways a search reads: the newest ids along the primary key only, then the
# index only (never the primary-key walk over the whole table).
RECENT_PLAN: Final = (
    "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL enable_bitmapscan = off"
)
INDEX_PLAN: Final = "SET LOCAL enable_bitmapscan = on; SET LOCAL enable_indexscan = off"


def scope_tokens(room: str | None, sender: str, recipient: str | None) -> list[str]:
    """The scope tokens of a message in ``room``, or of a DM ``sender`` -> ``recipient``."""
    if room is not None:
        return [f"r:{room}", f"s:{sender}"]
    return [f"d:{sender}", f"d:{recipient}", f"s:{sender}"]


def search_places(scope: SearchScope) -> tuple[list[str], list[str] | None]:
    """The tokens of which a match holds one, and those it holds all of (None: none)."""
    places = [f"r:{room}" for room in scope.rooms]
    required = [f"s:{scope.sender}"] if scope.sender is not None else []
    if scope.me is not None:
        places.append(f"d:{scope.me}")
        if scope.with_ is not None:
            required.append(f"d:{scope.with_}")
    return places, required or None


async def _scope_old_messages(conn: Conn) -> None:
    """Give the scope tokens to messages stored before migration 008, in batches.

    Each batch is one transaction that also moves the progress row, so a
    restart resumes, and nodes starting together share the work.
    """
    first = await conn.fetchrow("SELECT done, upto FROM search_scope_backfill")
    if first is None:
        return
    log.info("search: giving %d stored messages their scope tokens", first["upto"] - first["done"])
    batches = 0
    while True:
        async with conn.transaction():
            row = await conn.fetchrow("SELECT done, upto FROM search_scope_backfill FOR UPDATE")
            if row is None:
                return
            done, upto = int(row["done"]), int(row["upto"])
            if done >= upto:
                await conn.execute("DELETE FROM search_scope_backfill")
                log.info("search: every stored message has its scope tokens")
                return
            step = min(done + SCOPE_BACKFILL_BATCH, upto)
            await conn.execute(
                f"UPDATE messages SET scope = {SCOPE_SQL}"
                " WHERE id > $1 AND id <= $2 AND scope IS NULL",
                done,
                step,
            )
            await conn.execute("UPDATE search_scope_backfill SET done = $1", step)
        batches += 1
        if batches % 10 == 0:
            log.info("search: scope tokens given up to message %d of %d", step, upto)


async def _with_reactions(conn: Conn, messages: list[StoredMessage]) -> list[StoredMessage]:
    """``messages`` with their ``reactions`` filled in (one query for the page)."""
    if not messages:
        return messages
    found: dict[int, dict[str, list[str]]] = {}
    for message_id, emoji, nick in await conn.fetch(REACTIONS_SQL, [m.id for m in messages]):
        found.setdefault(message_id, {}).setdefault(emoji, []).append(nick)
    if not found:
        return messages
    return [
        replace(m, reactions=tuple((e, tuple(n)) for e, n in found[m.id].items()))
        if m.id in found
        else m
        for m in messages
    ]


async def _apply_event(conn: Conn, msg: NewMessage, event_id: int) -> None:
    """Apply an event to its target, in the transaction that stores the event.

    Raises:
        Gone: an edit or delete of a message that is deleted.
    """
    if msg.kind == "edit":
        # Mentions only grow: whoever an edit newly mentions was told.
        status = await conn.execute(
            "UPDATE messages SET body = $1, edited_ms = $2, words = $3::text[], concat = '',"
            " mentions = trim(mentions || ' ' || $4) WHERE id = $5 AND NOT deleted",
            _escape(msg.body),
            msg.ts_ms,
            index_words(msg.body),
            " ".join(msg.mentions),
            msg.target,
        )
        if not _changed(status):
            raise Gone(f"message {msg.target} is deleted")
    elif msg.kind == "delete":
        status = await conn.execute(
            "UPDATE messages SET body = '', deleted = TRUE, words = NULL, concat = ''"
            " WHERE id = $1 AND NOT deleted",
            msg.target,
        )
        if not _changed(status):
            raise Gone(f"message {msg.target} is already deleted")
        # Its edits held its text too.
        await conn.execute(
            "UPDATE messages SET body = '', deleted = TRUE WHERE target = $1 AND kind = 'edit'",
            msg.target,
        )
        await conn.execute("DELETE FROM reactions WHERE message_id = $1", msg.target)
    elif msg.kind == "react":
        await conn.execute(
            "INSERT INTO reactions (message_id, who, nick, emoji, event_id)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            msg.target,
            msg.sender,
            msg.sender_nick,
            msg.body,
            event_id,
        )
    elif msg.kind == "unreact":
        await conn.execute(
            "DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND who = $3",
            msg.target,
            msg.body,
            msg.sender,
        )
    else:
        raise ValueError(f"unknown event kind {msg.kind!r}")


async def _index_old_messages(conn: Conn) -> None:
    """Give the words to messages stored before search (schema version 2), in batches."""
    while True:
        rows = await conn.fetch(
            "SELECT id, body FROM messages WHERE words IS NULL AND kind IS NULL AND NOT deleted"
            " ORDER BY id LIMIT $1",
            INDEX_BATCH,
        )
        if not rows:
            return
        await conn.executemany(
            "UPDATE messages SET words = $2::text[] WHERE id = $1 AND words IS NULL",
            [(r[0], index_words(_unescape(r[1]))) for r in rows],
        )


def _account(row: Any) -> AccountRow:
    key, nick, skeleton, password_hash, created_ms, deleted, bot = tuple(row)
    return AccountRow(key, nick, skeleton, password_hash, created_ms, bool(deleted), bool(bot))


async def _migrate(conn: Conn) -> None:
    migrations = read_migrations("pg_migrations")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS chinwag_schema (version INTEGER NOT NULL)")
        current = await conn.fetchval("SELECT max(version) FROM chinwag_schema") or 0
        if current > len(migrations):
            raise StoreError(
                f"the database has schema version {current}, newer than this chinwag knows"
                f" ({len(migrations)}); upgrade chinwag"
            )
        for version, name, sql in migrations[current:]:
            log.info("applying migration %s", name)
            await conn.execute(sql)
            await conn.execute("INSERT INTO chinwag_schema (version) VALUES ($1)", version)


_DB_ERRORS: Final = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. a connection the server ended under a query
    OSError,
    ConnectionError,
)


def _wrap(exc: BaseException) -> BaseException:
    """Domain refusals pass through; database failures become a StoreError."""
    if isinstance(exc, _DB_ERRORS):
        wrapped = StoreError(f"database error: {exc}")
        wrapped.__cause__ = exc
        return wrapped
    return exc


class _Incident:
    """A run of database failures, logged once: the first with its cause, then the recovery."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._failures = 0

    def failed(self, exc: BaseException) -> None:
        self._failures += 1
        if self._failures == 1:
            log.error(
                "database %s fail: %s; clients get server_error until it recovers, and"
                " further failures are not logged until then",
                self._what,
                exc,
            )

    def succeeded(self) -> None:
        if self._failures:
            log.warning(
                "the database accepts %s again (%d failed meanwhile)", self._what, self._failures
            )
            self._failures = 0


# -- purges (issue 17) -----------------------------------------------------------
PURGE_DEDUPE_SQL: Final = """
DELETE FROM dedupe WHERE (dedupe_key, cid) IN (
    SELECT dedupe_key, cid FROM dedupe WHERE ts_ms < $1 LIMIT $2)
"""
EXPIRED_DMS_SQL: Final = (
    "SELECT id FROM messages WHERE recipient IS NOT NULL AND ts_ms < $1 LIMIT $2"
)
EXPIRED_IN_ROOM_SQL: Final = "SELECT id FROM messages WHERE room = $1 AND ts_ms < $2 LIMIT $3"
NEXT_ROOM_SQL: Final = (
    "SELECT room FROM messages WHERE room IS NOT NULL AND room > $1 ORDER BY room LIMIT 1"
)
# Everything about the expired messages goes with them (see storage/sqlite.py);
# their search words are a column of the row.
EXPIRE_SQL: Final = (
    "DELETE FROM reactions WHERE message_id = ANY($1::bigint[])",
    "DELETE FROM messages WHERE target IS NOT NULL AND target = ANY($1::bigint[])",
    "DELETE FROM messages WHERE id = ANY($1::bigint[])",
)


@dataclass(frozen=True, slots=True)
class _Upkeep:
    """What the purge steps delete, and how much at a time (see `PostgresStore.open`)."""

    cid_ttl_ms: int | None = None
    purge_batch: int = 500
    purge_interval: float = 60.0
    retention: Retention = field(default_factory=Retention)
    retention_batch: int = 500
    clock: Callable[[], float] = time.time


# Rooms' own retention (issue 17): read at each purge step, so a change is
# honoured at the next step, whichever node made it.
ROOM_RETENTION_SQL: Final = (
    "SELECT name, retention_days FROM rooms WHERE retention_days IS NOT NULL"
)


async def _expire(conn: Conn, retention: Retention, now_ms: int, limit: int) -> int:
    """Delete at most ``limit`` messages older than their retention at ``now_ms``; how many."""
    own = await conn.fetch(ROOM_RETENTION_SQL)
    retention = retention.with_rooms({str(r[0]): float(r[1]) for r in own})
    if not retention.active:
        return 0
    rooms_cut, dms_cut, per_room = retention.cutoffs(now_ms)
    ids: list[int] = []

    async def take(sql: str, *args: Any) -> None:
        rows = await conn.fetch(sql, *args, limit - len(ids))
        ids.extend(int(row["id"]) for row in rows)

    if dms_cut is not None:
        await take(EXPIRED_DMS_SQL, dms_cut)
    for room, cut in per_room.items():
        if cut is not None and len(ids) < limit:
            await take(EXPIRED_IN_ROOM_SQL, room, cut)
    if rooms_cut is not None:
        room = ""
        while len(ids) < limit:
            found = await conn.fetchval(NEXT_ROOM_SQL, room)
            if found is None:
                break
            room = str(found)
            if room not in per_room:
                await take(EXPIRED_IN_ROOM_SQL, room, rooms_cut)
    if ids:
        for sql in EXPIRE_SQL:
            await conn.execute(sql, ids)
    return len(ids)


@dataclass(slots=True)
class _Job:
    fn: Callable[[Conn], Awaitable[Any]]
    future: asyncio.Future[Any]
    may_refuse: bool


class PostgresStore:
    """The `Store` on PostgreSQL. Open with ``await PostgresStore.open(dsn)``.

    Every method may be called concurrently from the event loop that opened
    it. Writes are committed when the awaited call returns.
    """

    def __init__(
        self,
        dsn: str,
        pool: Any,
        *,
        max_batch: int,
        commit_delay: float,
        connect_timeout: float,
        command_timeout: float,
        upkeep: _Upkeep | None = None,
    ) -> None:
        # Use `open()`: the constructor only wires up a migrated database.
        self._upkeep = upkeep if upkeep is not None else _Upkeep()
        self._dsn = dsn
        self._pool = pool
        self._max_batch = max_batch
        self._commit_delay = commit_delay
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._writer: Conn | None = None
        self.commit_seconds = Histogram()
        self._jobs: collections.deque[_Job] = collections.deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._close_done: asyncio.Future[None] | None = None
        self._handed_at = float("-inf")
        self._write_failures = _Incident("writes")
        self._read_failures = _Incident("reads")
        self._task = asyncio.get_running_loop().create_task(self._write_loop())
        self._purger: asyncio.Task[None] | None = None
        if self._upkeep.cid_ttl_ms is not None or self._upkeep.retention.active:
            self._purger = asyncio.get_running_loop().create_task(self._purge_loop())

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        max_batch: int = 256,
        readers: int = 4,
        commit_delay: float = 0.0,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
        cid_ttl: float | None = None,
        purge_batch: int = 500,
        purge_interval: float = 60.0,
        retention: Retention | None = None,
        retention_batch: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> PostgresStore:
        """Connect to ``dsn`` (``postgresql://user@host:port/db``) and migrate it.

        Args:
            dsn: the database; it must exist.
            max_batch: most write jobs committed in one transaction.
            readers: connections kept for reads.
            commit_delay: as for SQLite: while writes keep coming, a write waits
                this long (seconds) to share its commit with the next ones.
            connect_timeout: seconds to wait for a connection.
            command_timeout: seconds to wait for one statement: a connection
                that went silent fails its batch (no ack) instead of hanging.
            cid_ttl, purge_batch, purge_interval, retention, retention_batch,
                clock: the purges, as for SQLite (the module docstring).

        Raises:
            StoreError: the database cannot be reached or has a newer schema.
        """
        if max_batch < 1 or readers < 1:
            raise ValueError("max_batch and readers must be at least 1")
        if purge_batch < 1 or purge_interval <= 0 or retention_batch < 1:
            raise ValueError(
                "purge_batch and retention_batch must be at least 1 and purge_interval above 0"
            )
        upkeep = _Upkeep(
            None if cid_ttl is None else int(cid_ttl * 1000),
            purge_batch,
            purge_interval,
            retention if retention is not None else Retention(),
            retention_batch,
            clock,
        )
        try:
            conn = await asyncpg.connect(
                dsn, timeout=connect_timeout, command_timeout=command_timeout
            )
            try:
                await _migrate(conn)
                await _index_old_messages(conn)
                await _scope_old_messages(conn)
            finally:
                await conn.close()
            pool = await asyncpg.create_pool(
                dsn,
                min_size=0,
                max_size=readers,
                timeout=connect_timeout,
                command_timeout=command_timeout,
            )
        except _DB_ERRORS as exc:
            raise StoreError(
                f"cannot open the database {_safe(dsn)}: {exc}; check that PostgreSQL runs"
                " there, that the database exists and that this user may connect to it"
            ) from exc
        return cls(
            dsn,
            pool,
            max_batch=max_batch,
            commit_delay=commit_delay,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            upkeep=upkeep,
        )

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Commit the queued writes, then close the connections. Idempotent."""
        if self._close_done is not None:
            await asyncio.shield(self._close_done)
            return
        self._closed = True
        self._close_done = asyncio.get_running_loop().create_future()
        try:
            if self._purger is not None:
                self._purger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._purger
            self._wake.set()
            await self._task
            if self._writer is not None:
                with contextlib.suppress(*_DB_ERRORS):
                    await self._writer.close(timeout=5)
            with contextlib.suppress(*_DB_ERRORS):
                await asyncio.wait_for(self._pool.close(), 10)
        finally:
            self._close_done.set_result(None)

    # -- plumbing --------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def _submit(
        self, fn: Callable[[Conn], Awaitable[T]], *, may_refuse: bool = False
    ) -> asyncio.Future[T]:
        """Queue a write job now; the future is done once its batch committed."""
        self._check_open()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(fn, future, may_refuse))
        self._wake.set()
        return future

    async def _write(self, fn: Callable[[Conn], Awaitable[T]], *, may_refuse: bool = False) -> T:
        return await self._submit(fn, may_refuse=may_refuse)

    async def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        self._check_open()
        try:
            async with (
                self._pool.acquire(timeout=self._connect_timeout) as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                value = await fn(conn)
        except _DB_ERRORS as exc:
            self._read_failures.failed(exc)
            raise StoreError(f"database error: {exc}") from exc
        except TimeoutError as exc:
            self._read_failures.failed(exc)
            raise StoreError("the database did not answer in time") from exc
        self._read_failures.succeeded()
        return value

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                if self._closed:
                    break
                self._wake.clear()
                await self._wake.wait()
                continue
            now = loop.time()
            if self._commit_delay > 0 and now - self._handed_at < 10 * self._commit_delay:
                await asyncio.sleep(self._commit_delay)
            else:
                await asyncio.sleep(0)  # the rest of this loop turn's jobs
            self._handed_at = loop.time()
            batch = [self._jobs.popleft() for _ in range(min(len(self._jobs), self._max_batch))]
            await self._run_batch(batch)

    async def _connection(self) -> Conn:
        if self._writer is None or self._writer.is_closed():
            self._writer = await asyncpg.connect(
                self._dsn, timeout=self._connect_timeout, command_timeout=self._command_timeout
            )
        return self._writer

    async def _run_batch(self, batch: list[_Job]) -> None:
        outcomes: list[tuple[_Job, Any, BaseException | None]] | None
        started = time.perf_counter()
        try:
            conn = await self._connection()
            outcomes = await self._run_jobs(conn, batch, isolate=False)
            if outcomes is None:  # a job failed: run them again, each on its own
                outcomes = await self._run_jobs(conn, batch, isolate=True)
                assert outcomes is not None
            self.commit_seconds.observe(time.perf_counter() - started)
            self._write_failures.succeeded()
        except Exception as exc:  # the transaction failed: the writer must go on
            self._write_failures.failed(exc)  # none of the batch was stored
            if self._writer is not None and not self._writer.is_closed():
                self._writer.terminate()
            self._writer = None
            outcomes = []
            for job in batch:
                failure = StoreError(f"the database could not commit: {exc}")
                failure.__cause__ = exc
                outcomes.append((job, None, failure))
        for job, value, error in outcomes:
            if job.future.done():  # the caller was cancelled; the write happened anyway
                continue
            if error is None:
                job.future.set_result(value)
            else:
                job.future.set_exception(error)

    async def _run_jobs(
        self, conn: Conn, batch: list[_Job], *, isolate: bool
    ) -> list[tuple[_Job, Any, BaseException | None]] | None:
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _WRITE_LOCK)
            for job in batch:
                if not (isolate or job.may_refuse):
                    try:
                        outcomes.append((job, await job.fn(conn), None))
                    except Exception:
                        await tx.rollback()
                        return None
                    continue
                try:
                    async with conn.transaction():  # a SAVEPOINT
                        value = await job.fn(conn)
                except Exception as exc:  # undone alone: its error is its outcome
                    outcomes.append((job, None, _wrap(exc)))
                else:
                    outcomes.append((job, value, None))
        except BaseException:
            if not conn.is_closed():
                with contextlib.suppress(*_DB_ERRORS):
                    await tx.rollback()
            raise
        await tx.commit()
        return outcomes

    # -- messages -----------------------------------------------------------
    def append(
        self, msg: NewMessage, *, cid_ttl_ms: int, quota: int | None = None
    ) -> asyncio.Future[AppendResult]:
        """Store ``msg`` durably, unless it repeats a recent ``cid`` (see `Store.append`)."""
        if (msg.room is None) == (msg.recipient is None):
            raise ValueError("exactly one of room and recipient must be set")

        async def job(conn: Conn) -> AppendResult:
            if msg.cid is not None:
                seen = await conn.fetchrow(
                    f"SELECT {_COLS_M}, d.ts_ms AS seen_ms FROM dedupe AS d"
                    " JOIN messages AS m ON m.id = d.message_id"
                    " WHERE d.dedupe_key = $1 AND d.cid = $2",
                    msg.dedupe_key,
                    msg.cid,
                )
                if seen is not None and msg.ts_ms - seen["seen_ms"] < cid_ttl_ms:
                    return AppendResult(_message(seen), duplicate=True)
            if quota is not None and msg.recipient is not None:
                held = await conn.fetchval(UNDELIVERED_SQL, msg.recipient, quota)
                if held >= quota:
                    raise OverQuota(f"{msg.recipient} holds {held} undelivered messages")
            new_id = await conn.fetchval(
                "INSERT INTO messages"
                " (ts_ms, sender, sender_nick, room, recipient, recipient_nick, body, cid,"
                " kind, target, reply_to, mentions, words, scope, notice, concat)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::text[],"
                " $14::text[], $15, $16)"
                " RETURNING id",
                msg.ts_ms,
                msg.sender,
                msg.sender_nick,
                msg.room,
                msg.recipient,
                msg.recipient_nick,
                _escape(msg.body),
                msg.cid,
                msg.kind,
                msg.target,
                msg.reply_to,
                " ".join(msg.mentions),
                None if msg.kind is not None else index_words(msg.body),
                scope_tokens(msg.room, msg.sender, msg.recipient),
                msg.notice,
                " ".join(map(str, msg.concat)),
            )
            if msg.kind is not None:
                await _apply_event(conn, msg, int(new_id))
            if msg.cid is not None:
                await conn.execute(
                    "INSERT INTO dedupe (dedupe_key, cid, message_id, ts_ms)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT (dedupe_key, cid) DO UPDATE"
                    " SET message_id = excluded.message_id, ts_ms = excluded.ts_ms",
                    msg.dedupe_key,
                    msg.cid,
                    new_id,
                    msg.ts_ms,
                )
            stored = StoredMessage(
                id=int(new_id),
                ts_ms=msg.ts_ms,
                sender=msg.sender,
                sender_nick=msg.sender_nick,
                room=msg.room,
                recipient=msg.recipient,
                recipient_nick=msg.recipient_nick,
                body=msg.body,
                cid=msg.cid,
                kind=msg.kind,
                target=msg.target,
                reply_to=msg.reply_to,
                mentions=msg.mentions,
                notice=msg.notice,
                concat=msg.concat,
            )
            return AppendResult(stored, duplicate=False)

        return self._submit(job, may_refuse=quota is not None or msg.kind is not None)

    async def get_message(self, message_id: int) -> StoredMessage | None:
        """The message (not an event) with this id, or None."""

        async def read(conn: Conn) -> StoredMessage | None:
            row = await conn.fetchrow(
                f"SELECT {_COLS} FROM messages WHERE id = $1 AND kind IS NULL", message_id
            )
            return None if row is None else _message(row)

        return await self._read(read)

    async def search(
        self, words: list[str], scope: SearchScope, *, before: int | None, limit: int
    ) -> Page:
        """Live messages in ``scope`` with every one of ``words``, newest first."""
        limit = max(limit, 0)
        folded = list(dict.fromkeys(w for word in words for w in index_words(word)))
        bound = _MAX_ID if before is None else before

        async def read(conn: Conn) -> Page:
            if not folded:  # nothing that is a word: nothing holds it
                return Page([], more=False)
            # Planned for these words: asyncpg prepares the statement, and after five runs
            # PostgreSQL's generic plan walks the primary key backwards, filtering every
            # row for a rare word (77 ms at 100,000 messages; docs/performance.md).
            # Two steps, because neither way alone is bounded. The primary-key walk
            # finds a frequent word's page at once but reads every row for a word only
            # in rooms the asker is not in (1.4 s at 1,000,000; PostgreSQL cannot know
            # that); the index of words and scope (migration 008) skips those, but reads
            # and sorts every visible match of a frequent word (170 ms for one in 100,000
            # visible messages). So: the newest SEARCH_RECENT messages along the primary
            # key, then, if the page is not full, the index for the older ones.
            places, required = search_places(scope)

            async def step(upper: int, lower: int, want: int) -> list[Any]:
                return list(
                    await conn.fetch(
                        SEARCH_SQL,
                        folded,
                        list(scope.rooms),
                        scope.me,
                        scope.with_,
                        scope.sender,
                        upper,
                        want,
                        places,
                        required,
                        lower,
                    )
                )

            await conn.execute(RECENT_PLAN)
            recent = int(
                await conn.fetchval(
                    "SELECT coalesce(max(id), 0) - $2 FROM messages WHERE id < $1",
                    bound,
                    SEARCH_RECENT,
                )
            )
            rows = await step(bound, recent, limit + 1)
            if len(rows) <= limit and recent > 0:
                await conn.execute(INDEX_PLAN)
                rows += await step(recent, 0, limit + 1 - len(rows))
            messages = [_message(r) for r in rows[:limit]]
            return Page(await _with_reactions(conn, messages), more=len(rows) > limit)

        return await self._read(read)

    async def max_message_id(self) -> int:
        """The highest message id stored, 0 when there are none."""

        async def read(conn: Conn) -> int:
            return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM messages"))

        return await self._read(read)

    async def messages_between(self, after_id: int, upto_id: int) -> list[StoredMessage]:
        """Every message with ``after_id < id <= upto_id``, by id (a node's gap fill)."""

        async def read(conn: Conn) -> list[StoredMessage]:
            rows = await conn.fetch(
                f"SELECT {_COLS} FROM messages WHERE id > $1 AND id <= $2 ORDER BY id",
                after_id,
                upto_id,
            )
            return [_message(r) for r in rows]

        return await self._read(read)

    async def backlog_start(
        self, account: str, after_id: int, *, limit: int, since_ms: int, page: int
    ) -> BacklogStart:
        """Bound the newest ``limit`` messages ``account`` may see; read the first page."""
        limit = max(limit, 0)

        async def read(conn: Conn) -> BacklogStart:
            upto = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM messages"))
            if after_id >= upto:
                return BacklogStart([], upto, 0, False)
            rows = await conn.fetch(BACKLOG_IDS_SQL, account, after_id, upto, since_ms, limit + 1)
            newest = [int(r[0]) for r in rows]
            truncated = len(newest) > limit
            count = min(len(newest), limit)
            if not count:
                return BacklogStart([], upto, 0, truncated)
            after = newest[limit] if truncated else newest[-1] - 1
            first = await conn.fetch(
                BACKLOG_ROWS_SQL, account, after, upto, since_ms, min(page, count)
            )
            return BacklogStart([_message(r) for r in first], upto, count, truncated)

        return await self._read(read)

    async def backlog_page(
        self, account: str, after_id: int, upto_id: int, *, since_ms: int, limit: int
    ) -> list[StoredMessage]:
        """The oldest ``limit`` backlog messages with ``after_id < id <= upto_id``."""

        async def read(conn: Conn) -> list[StoredMessage]:
            if limit <= 0 or after_id >= upto_id:
                return []
            rows = await conn.fetch(BACKLOG_ROWS_SQL, account, after_id, upto_id, since_ms, limit)
            return [_message(r) for r in rows]

        return await self._read(read)

    async def room_history(self, room: str, *, before: int | None, limit: int) -> Page:
        """The newest ``limit`` messages of ``room`` with id < ``before``, oldest first."""
        return await self._page(ROOM_HISTORY_SQL, (room,), before=before, limit=limit)

    async def dm_history(self, a: str, b: str, *, before: int | None, limit: int) -> Page:
        """The newest ``limit`` DMs between principals ``a`` and ``b``, oldest first."""
        return await self._page(DM_HISTORY_SQL, (a, b), before=before, limit=limit)

    async def _page(
        self, sql: str, params: tuple[str, ...], *, before: int | None, limit: int
    ) -> Page:
        limit = max(limit, 0)
        bound = _MAX_ID if before is None else before

        async def read(conn: Conn) -> Page:
            rows = await conn.fetch(sql, *params, bound, limit + 1)
            messages = [_message(r) for r in reversed(rows[:limit])]
            return Page(await _with_reactions(conn, messages), more=len(rows) > limit)

        return await self._read(read)

    async def room_history_range(
        self,
        room: str,
        *,
        after: int,
        before: int | None,
        limit: int,
        newest: bool,
        after_ms: int = 0,
        before_ms: int | None = None,
    ) -> Page:
        """Messages of ``room`` in a range of ids and times: one end of the range."""
        times = (after_ms, _MAX_ID if before_ms is None else before_ms)
        return await self._range(ROOM_RANGE_SQL, (room,), times, after, before, limit, newest)

    async def dm_history_range(
        self,
        a: str,
        b: str,
        *,
        after: int,
        before: int | None,
        limit: int,
        newest: bool,
        after_ms: int = 0,
        before_ms: int | None = None,
    ) -> Page:
        """DMs between ``a`` and ``b`` in a range of ids and times: one end of the range."""
        times = (after_ms, _MAX_ID if before_ms is None else before_ms)
        return await self._range(DM_RANGE_SQL, (a, b), times, after, before, limit, newest)

    async def _range(
        self,
        sql: str,
        params: tuple[str, ...],
        times: tuple[int, int],
        after: int,
        before: int | None,
        limit: int,
        newest: bool,
    ) -> Page:
        limit = max(limit, 0)
        query = sql.format(order="DESC" if newest else "ASC")
        upper = _MAX_ID if before is None else before

        async def read(conn: Conn) -> Page:
            rows = await conn.fetch(query, *params, after, upper, limit + 1, *times)
            page = rows[:limit]
            messages = [_message(r) for r in (reversed(page) if newest else page)]
            return Page(await _with_reactions(conn, messages), more=len(rows) > limit)

        return await self._read(read)

    async def conversation_heads(self, principal: str, rooms: list[str]) -> list[StoredMessage]:
        """The newest message of each room in ``rooms`` and of each DM conversation."""

        async def read(conn: Conn) -> list[StoredMessage]:
            rows = await conn.fetch(HEADS_SQL, principal, rooms)
            return heads(principal, [_message(r) for r in rows])

        return await self._read(read)

    async def undelivered(self, account: str) -> int:
        """DMs to ``account`` from others with id above its highest device cursor."""

        async def read(conn: Conn) -> int:
            return int(await conn.fetchval(UNDELIVERED_SQL, account, None))

        return await self._read(read)

    # -- accounts -----------------------------------------------------------
    async def get_account(self, key: str) -> AccountRow | None:
        """The account (deleted ones included) with this key, or None."""

        async def read(conn: Conn) -> AccountRow | None:
            row = await conn.fetchrow(f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE key = $1", key)
            return None if row is None else _account(row)

        return await self._read(read)

    async def account_by_skeleton(self, skeleton: str) -> AccountRow | None:
        """An account (deleted ones included, live ones first) with this skeleton."""

        async def read(conn: Conn) -> AccountRow | None:
            row = await conn.fetchrow(
                f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE skeleton = $1"
                " ORDER BY deleted, key LIMIT 1",
                skeleton,
            )
            return None if row is None else _account(row)

        return await self._read(read)

    async def create_account(self, row: AccountRow) -> None:
        """Store a new account. Raises: AccountExists: ``row.key`` exists (even deleted)."""

        async def job(conn: Conn) -> None:
            try:
                await conn.execute(
                    f"INSERT INTO accounts ({_ACCOUNT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    row.key,
                    row.nick,
                    row.skeleton,
                    row.password_hash,
                    row.created_ms,
                    row.deleted,
                    row.bot,
                )
            except asyncpg.UniqueViolationError as exc:
                raise AccountExists(row.key) from exc

        await self._write(job, may_refuse=True)

    async def set_password_hash(self, key: str, password_hash: str) -> bool:
        """Replace the hash; False when no live account has this key."""

        async def job(conn: Conn) -> bool:
            status = await conn.execute(
                "UPDATE accounts SET password_hash = $1 WHERE key = $2 AND NOT deleted",
                password_hash,
                key,
            )
            return _changed(status)

        return await self._write(job)

    async def set_bot(self, key: str, bot: bool) -> bool:
        """Mark the account a bot or not; False when no live account has this key."""

        async def job(conn: Conn) -> bool:
            status = await conn.execute(
                "UPDATE accounts SET bot = $1 WHERE key = $2 AND NOT deleted", bot, key
            )
            return _changed(status)

        return await self._write(job)

    async def replace_password_hash(self, key: str, old: str, new: str) -> bool:
        """Replace the hash only if it is still ``old``; False otherwise."""

        async def job(conn: Conn) -> bool:
            status = await conn.execute(
                "UPDATE accounts SET password_hash = $1"
                " WHERE key = $2 AND password_hash = $3 AND NOT deleted",
                new,
                key,
                old,
            )
            return _changed(status)

        return await self._write(job)

    async def delete_account(self, key: str) -> bool:
        """Mark deleted (the nick stays reserved); drop its hash, rooms and cursors."""

        async def job(conn: Conn) -> bool:
            status = await conn.execute(
                "UPDATE accounts SET deleted = TRUE, password_hash = ''"
                " WHERE key = $1 AND NOT deleted",
                key,
            )
            if not _changed(status):
                return False
            owners = [f"a:{key}", key]
            await conn.execute("DELETE FROM memberships WHERE account = ANY($1::text[])", owners)
            await conn.execute("DELETE FROM cursors WHERE account = ANY($1::text[])", owners)
            await conn.execute("DELETE FROM read_markers WHERE account = ANY($1::text[])", owners)
            await conn.execute("DELETE FROM blocks WHERE blocker = ANY($1::text[])", owners)
            await conn.execute(
                "DELETE FROM receipt_state"
                " WHERE sender = ANY($1::text[]) OR reader = ANY($1::text[])",
                owners,
            )
            return True

        return await self._write(job)

    async def list_accounts(self) -> list[AccountRow]:
        """All accounts, deleted ones included, by key."""

        async def read(conn: Conn) -> list[AccountRow]:
            rows = await conn.fetch(f"SELECT {_ACCOUNT_COLS} FROM accounts ORDER BY key")
            return [_account(r) for r in rows]

        return await self._read(read)

    async def account_index(self) -> list[tuple[str, str, str]]:
        """``(key, skeleton, nick)`` of every account, deleted ones included, by key."""

        async def read(conn: Conn) -> list[tuple[str, str, str]]:
            rows = await conn.fetch("SELECT key, skeleton, nick FROM accounts ORDER BY key")
            return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

        return await self._read(read)

    async def adopt(self, guest: str, account: str) -> None:
        """A guest session registered: its DMs (both ways) now belong to ``account``."""

        async def job(conn: Conn) -> None:
            await conn.execute(
                "UPDATE messages SET sender = $1 WHERE sender = $2 AND recipient IS NOT NULL",
                account,
                guest,
            )
            await conn.execute(
                "UPDATE messages SET recipient = $1 WHERE recipient = $2", account, guest
            )
            await conn.execute(  # their search scope names the account now
                f"UPDATE messages SET scope = {SCOPE_SQL}"
                " WHERE recipient IS NOT NULL AND (sender = $1 OR recipient = $1)",
                account,
            )

        await self._write(job)

    # -- rooms -------------------------------------------------------------
    async def join_room(self, account: str, room: str) -> bool:
        """Make ``account`` a member from the current highest message id on."""

        async def job(conn: Conn) -> bool:
            if await conn.fetchval(
                "SELECT 1 FROM memberships WHERE account = $1 AND room = $2 AND to_id IS NULL",
                account,
                room,
            ):
                return False
            high = int(await conn.fetchval(_HIGH_WATER_SQL))
            status = await conn.execute(
                "UPDATE memberships SET to_id = NULL"
                " WHERE account = $1 AND room = $2 AND to_id = $3",
                account,
                room,
                high,
            )
            if not _changed(status):
                await conn.execute(
                    "INSERT INTO memberships (account, room, from_id, to_id)"
                    " VALUES ($1, $2, $3, NULL)",
                    account,
                    room,
                    high,
                )
            return True

        return await self._write(job)

    async def leave_room(self, account: str, room: str) -> bool:
        """End the membership at the current highest message id. False if not a member."""

        async def job(conn: Conn) -> bool:
            from_id = await conn.fetchval(
                "SELECT from_id FROM memberships"
                " WHERE account = $1 AND room = $2 AND to_id IS NULL",
                account,
                room,
            )
            if from_id is None:
                return False
            high = int(await conn.fetchval(_HIGH_WATER_SQL))
            if from_id >= high:  # an empty interval: forget it
                await conn.execute(
                    "DELETE FROM memberships WHERE account = $1 AND room = $2 AND from_id = $3",
                    account,
                    room,
                    from_id,
                )
            else:
                await conn.execute(
                    "UPDATE memberships SET to_id = $1"
                    " WHERE account = $2 AND room = $3 AND from_id = $4",
                    high,
                    account,
                    room,
                    from_id,
                )
            return True

        return await self._write(job)

    async def is_member(self, account: str, room: str) -> bool:
        """Whether ``account`` is a member of ``room`` now."""

        async def read(conn: Conn) -> bool:
            row = await conn.fetchrow(
                "SELECT 1 FROM memberships WHERE account = $1 AND room = $2 AND to_id IS NULL",
                account,
                room,
            )
            return row is not None

        return await self._read(read)

    async def advance_read(self, account: str, conversation: str, upto: int) -> int:
        """Move the read marker to max(marker, upto); return the new value."""

        async def job(conn: Conn) -> int:
            return int(
                await conn.fetchval(
                    "INSERT INTO read_markers (account, conversation, upto) VALUES ($1, $2, $3)"
                    " ON CONFLICT (account, conversation) DO UPDATE"
                    " SET upto = greatest(read_markers.upto, excluded.upto) RETURNING upto",
                    account,
                    conversation,
                    upto,
                )
            )

        return await self._write(job)

    async def read_markers(self, account: str) -> dict[str, int]:
        """Every read marker of ``account``, by conversation."""

        async def read(conn: Conn) -> dict[str, int]:
            rows = await conn.fetch(
                "SELECT conversation, upto FROM read_markers WHERE account = $1", account
            )
            return {r[0]: int(r[1]) for r in rows}

        return await self._read(read)

    async def advance_read_at(
        self, account: str, conversation: str, upto: int, ts_ms: int
    ) -> tuple[int, int]:
        """Move the marker to max(marker, upto), its time to max(time, ts_ms) (ircmsg)."""

        async def job(conn: Conn) -> tuple[int, int]:
            row = await conn.fetchrow(
                "INSERT INTO read_markers (account, conversation, upto, ts_ms)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (account, conversation) DO UPDATE"
                " SET upto = greatest(read_markers.upto, excluded.upto),"
                " ts_ms = greatest(read_markers.ts_ms, excluded.ts_ms) RETURNING upto, ts_ms",
                account,
                conversation,
                upto,
                ts_ms,
            )
            return int(row[0]), int(row[1])

        return await self._write(job)

    async def read_marker(self, account: str, conversation: str) -> tuple[int, int | None]:
        """(marker, time given) of one conversation; (0, None) when there is none."""

        async def read(conn: Conn) -> tuple[int, int | None]:
            row = await conn.fetchrow(
                "SELECT upto, ts_ms FROM read_markers WHERE account = $1 AND conversation = $2",
                account,
                conversation,
            )
            if row is None:
                return 0, None
            return int(row[0]), None if row[1] is None else int(row[1])

        return await self._read(read)

    async def set_receipts(self, account: str, on: bool) -> None:
        """Turn DM receipts on or off for ``account`` (a principal)."""

        async def job(conn: Conn) -> None:
            key = account.removeprefix("a:")
            await conn.execute("UPDATE accounts SET receipts = $1 WHERE key = $2", on, key)

        await self._write(job)

    async def live_nicks(self, keys: list[str]) -> dict[str, str]:
        """The nick of each of the accounts ``keys`` that exists and is not deleted, by key."""

        async def read(conn: Conn) -> dict[str, str]:
            rows = await conn.fetch(
                "SELECT key, nick FROM accounts WHERE NOT deleted AND key = ANY($1::text[])", keys
            )
            return {str(r[0]): str(r[1]) for r in rows}

        return await self._read(read)

    async def receipts_on(self, accounts: list[str]) -> set[str]:
        """Those of ``accounts`` (principals) that have DM receipts on."""

        async def read(conn: Conn) -> set[str]:
            keys = [a[2:] for a in accounts if a.startswith("a:")]
            rows = await conn.fetch(
                "SELECT key FROM accounts WHERE receipts AND NOT deleted AND key = ANY($1::text[])",
                keys,
            )
            return {"a:" + r[0] for r in rows}

        return await self._read(read)

    async def dm_senders(self, account: str, after_id: int, upto_id: int) -> dict[str, int]:
        """The others who sent ``account`` DMs in ``(after_id, upto_id]``, with the highest id."""

        async def read(conn: Conn) -> dict[str, int]:
            rows = await conn.fetch(
                "SELECT sender, max(id) FROM messages"
                " WHERE recipient = $1 AND id > $2 AND id <= $3 AND sender <> $1 AND kind IS NULL"
                " GROUP BY sender",
                account,
                after_id,
                upto_id,
            )
            return {r[0]: int(r[1]) for r in rows}

        return await self._read(read)

    # -- stored DM receipts (issue 15) --------------------------------------------
    async def advance_receipt(
        self, sender: str, reader: str, *, delivered: int = 0, read: int = 0
    ) -> None:
        """Move what ``reader`` has of ``sender``'s DMs to max(stored, given)."""

        async def job(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO receipt_state (sender, reader, delivered, read_upto)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (sender, reader) DO UPDATE"
                " SET delivered = greatest(receipt_state.delivered, excluded.delivered),"
                " read_upto = greatest(receipt_state.read_upto, excluded.read_upto)",
                sender,
                reader,
                delivered,
                read,
            )

        await self._write(job)

    async def stored_receipts(
        self, sender: str, sender_key: str, reader: str | None = None
    ) -> list[tuple[str, int, int]]:
        """``(reader's nick, delivered, read)`` of ``sender``'s DMs (see `Store`)."""

        async def read(conn: Conn) -> list[tuple[str, int, int]]:
            rows = await conn.fetch(
                "SELECT a.nick, r.delivered, r.read_upto FROM receipt_state AS r"
                " JOIN accounts AS a ON a.key = substr(r.reader, 3) AND r.reader = 'a:' || a.key"
                " WHERE r.sender = $1 AND ($2::text IS NULL OR r.reader = $2)"
                " AND a.receipts AND NOT a.deleted AND NOT EXISTS"
                " (SELECT 1 FROM blocks AS b WHERE b.blocker = r.reader AND b.blocked = $3)"
                " ORDER BY a.nick",
                sender,
                reader,
                sender_key,
            )
            return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

        return await self._read(read)

    async def rooms_of(self, account: str) -> list[str]:
        """The rooms ``account`` is a member of, sorted."""

        async def read(conn: Conn) -> list[str]:
            rows = await conn.fetch(
                "SELECT room FROM memberships WHERE account = $1 AND to_id IS NULL ORDER BY room",
                account,
            )
            return [str(r[0]) for r in rows]

        return await self._read(read)

    async def room_member_counts(self) -> dict[str, int]:
        """Every room with at least one account member, with that count."""

        async def read(conn: Conn) -> dict[str, int]:
            rows = await conn.fetch(
                "SELECT room, count(*) FROM memberships WHERE to_id IS NULL GROUP BY room"
            )
            return {str(r[0]): int(r[1]) for r in rows}

        return await self._read(read)

    # -- cursors --------------------------------------------------------------
    async def get_cursor(self, account: str, device: str) -> int | None:
        """The device's cursor, or None for a device the account never used."""

        async def read(conn: Conn) -> int | None:
            value = await conn.fetchval(
                "SELECT cursor FROM cursors WHERE account = $1 AND device = $2", account, device
            )
            return None if value is None else int(value)

        return await self._read(read)

    async def max_cursor(self, account: str) -> int:
        """The highest cursor over the account's devices, 0 when there is none."""

        async def read(conn: Conn) -> int:
            return int(
                await conn.fetchval(
                    "SELECT coalesce(max(cursor), 0) FROM cursors WHERE account = $1", account
                )
            )

        return await self._read(read)

    async def advance_cursor(self, account: str, device: str, upto: int) -> int:
        """Set the cursor to max(cursor, upto) (creating it); return the new value."""

        async def job(conn: Conn) -> int:
            return int(
                await conn.fetchval(
                    "INSERT INTO cursors (account, device, cursor) VALUES ($1, $2, $3)"
                    " ON CONFLICT (account, device) DO UPDATE"
                    " SET cursor = greatest(cursors.cursor, excluded.cursor)"
                    " RETURNING cursor",
                    account,
                    device,
                    upto,
                )
            )

        return await self._write(job)

    async def probe(self) -> None:
        """Commit an empty write through the writer (a round trip to the database)."""

        async def job(conn: Conn) -> None:
            await conn.execute("SELECT 1")

        await self._write(job)

    async def stats(self) -> dict[str, int]:
        """Counts for ``chinwag admin stats`` (the keys of `SqliteStore.stats`)."""

        async def read(conn: Conn) -> dict[str, int]:
            row = await conn.fetchrow(
                "SELECT"
                " (SELECT count(*) FROM accounts WHERE NOT deleted),"
                " (SELECT count(*) FROM accounts WHERE deleted),"
                " (SELECT count(*) FROM messages),"
                " (SELECT count(*) FROM messages WHERE recipient IS NOT NULL),"
                " (SELECT count(*) FROM ("
                "    SELECT room FROM messages WHERE room IS NOT NULL GROUP BY room"
                "    UNION SELECT room FROM memberships WHERE to_id IS NULL) AS r),"
                " (SELECT count(*) FROM cursors)"
            )
            keys = ("accounts", "deleted_accounts", "messages", "dms", "rooms", "devices")
            return {k: int(v) for k, v in zip(keys, tuple(row), strict=True)}

        return await self._read(read)

    # -- invites -----------------------------------------------------------
    async def create_invite(
        self, token_hash: str, *, uses: int, expires_ms: int | None, created_ms: int
    ) -> None:
        """Store an invite (see ``Store.create_invite``)."""
        if uses < 1:
            raise ValueError("an invite needs at least one use")

        async def job(conn: Conn) -> None:
            try:
                await conn.execute(
                    "INSERT INTO invites (token_hash, uses_left, expires_ms, created_ms)"
                    " VALUES ($1, $2, $3, $4)",
                    token_hash,
                    uses,
                    expires_ms,
                    created_ms,
                )
            except asyncpg.UniqueViolationError:
                raise ValueError("that invite exists already") from None

        await self._write(job, may_refuse=True)

    async def use_invite(self, token_hash: str, now_ms: int) -> bool:
        """Take one use, in one UPDATE: two registrations never share the last one."""

        async def job(conn: Conn) -> bool:
            status = await conn.execute(
                "UPDATE invites SET uses_left = uses_left - 1"
                " WHERE token_hash = $1 AND uses_left > 0"
                " AND (expires_ms IS NULL OR expires_ms > $2)",
                token_hash,
                now_ms,
            )
            return _changed(status)

        return await self._write(job)

    async def refund_invite(self, token_hash: str) -> None:
        """Give one use back."""

        async def job(conn: Conn) -> None:
            await conn.execute(
                "UPDATE invites SET uses_left = uses_left + 1 WHERE token_hash = $1", token_hash
            )

        await self._write(job)

    # -- blocks (issue 16) -------------------------------------------------------
    @staticmethod
    async def _blocks(conn: Conn, blocker: str) -> list[tuple[str, str]]:
        rows = await conn.fetch(
            "SELECT blocked, nick FROM blocks WHERE blocker = $1 ORDER BY created_ms, blocked",
            blocker,
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    async def add_block(
        self, blocker: str, key: str, nick: str, *, limit: int, created_ms: int
    ) -> list[tuple[str, str]] | None:
        """Block ``key`` for ``blocker``; None when ``limit`` others are held already."""

        async def job(conn: Conn) -> list[tuple[str, str]] | None:
            # One blocker's blocks change one at a time: the count below holds.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "blocks:" + blocker)
            there = await conn.fetchval(
                "SELECT 1 FROM blocks WHERE blocker = $1 AND blocked = $2", blocker, key
            )
            if there is None:
                held = await conn.fetchval(
                    "SELECT count(*) FROM blocks WHERE blocker = $1", blocker
                )
                if held >= limit:
                    return None
                await conn.execute(
                    "INSERT INTO blocks (blocker, blocked, nick, created_ms)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    blocker,
                    key,
                    nick,
                    created_ms,
                )
            return await self._blocks(conn, blocker)

        return await self._write(job)

    async def remove_block(self, blocker: str, key: str) -> list[tuple[str, str]]:
        """Lift ``blocker``'s block of ``key``; every block left."""

        async def job(conn: Conn) -> list[tuple[str, str]]:
            await conn.execute(
                "DELETE FROM blocks WHERE blocker = $1 AND blocked = $2", blocker, key
            )
            return await self._blocks(conn, blocker)

        return await self._write(job)

    async def blocks_of(self, blocker: str) -> list[tuple[str, str]]:
        """Every block of ``blocker``, oldest first."""

        async def read(conn: Conn) -> list[tuple[str, str]]:
            return await self._blocks(conn, blocker)

        return await self._read(read)

    # -- moderation (issue 16) -------------------------------------------------
    async def load_rooms(self) -> list[RoomSettings]:
        """Every room's row, by name."""

        async def read(conn: Conn) -> list[RoomSettings]:
            rows = await conn.fetch(
                "SELECT name, owner, topic, private, announce, created_ms, retention_days,"
                " room_key, member_limit, topic_locked, secret, guest, topic_by, topic_ms"
                " FROM rooms ORDER BY name"
            )
            return [_room_row(r) for r in rows]

        return await self._read(read)

    async def ensure_room(self, row: RoomSettings) -> RoomSettings:
        """Store ``row`` unless the room has one; the row stored now."""

        async def job(conn: Conn) -> RoomSettings:
            await conn.execute(
                "INSERT INTO rooms (name, owner, topic, private, announce, created_ms,"
                " topic_locked, secret, guest, topic_by, topic_ms)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                " ON CONFLICT (name) DO NOTHING",
                row.name,
                row.owner,
                row.topic,
                row.private,
                row.announce,
                row.created_ms,
                row.topic_locked,
                row.secret,
                row.guest,
                row.topic_by,
                row.topic_ms,
            )
            found = await conn.fetchrow(
                "SELECT name, owner, topic, private, announce, created_ms, retention_days,"
                " room_key, member_limit, topic_locked, secret, guest, topic_by, topic_ms"
                " FROM rooms WHERE name = $1",
                row.name,
            )
            return _room_row(found)

        return await self._write(job)

    async def update_room(self, row: RoomSettings, audit: AuditEntry) -> None:
        """Replace the room's settings, with its audit entry, in one transaction."""

        async def job(conn: Conn) -> None:
            await conn.execute(
                "UPDATE rooms SET owner = $1, topic = $2, private = $3, announce = $4,"
                " retention_days = $6, room_key = $7, member_limit = $8, topic_locked = $9,"
                " secret = $10, guest = $11, topic_by = $12, topic_ms = $13 WHERE name = $5",
                row.owner,
                row.topic,
                row.private,
                row.announce,
                row.name,
                row.retention_days,
                row.key,
                row.limit,
                row.topic_locked,
                row.secret,
                row.guest,
                row.topic_by,
                row.topic_ms,
            )
            await _insert_audit(conn, audit)

        await self._write(job)

    async def load_standings(self) -> list[Standing]:
        """Every standing, expired ones included."""

        async def read(conn: Conn) -> list[Standing]:
            rows = await conn.fetch(
                "SELECT scope, principal, kind, value, until_ms, by_nick, reason, ts_ms, guest"
                " FROM standings ORDER BY scope, principal, kind"
            )
            return [Standing(*r) for r in rows]

        return await self._read(read)

    async def put_standing(self, standing: Standing, audit: AuditEntry | None) -> None:
        """Set the standing (replacing one of the same key), with its audit entry."""
        s = standing

        async def job(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO standings"
                " (scope, principal, kind, value, until_ms, by_nick, reason, ts_ms, guest)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT (scope, principal, kind) DO UPDATE"
                " SET value = excluded.value, until_ms = excluded.until_ms,"
                " by_nick = excluded.by_nick, reason = excluded.reason, ts_ms = excluded.ts_ms,"
                " guest = excluded.guest",
                s.scope,
                s.principal,
                s.kind,
                s.value,
                s.until_ms,
                s.by,
                s.reason,
                s.ts_ms,
                s.guest,
            )
            if audit is not None:
                await _insert_audit(conn, audit)

        await self._write(job)

    async def drop_standing(
        self, scope: str, principal: str, kind: str, audit: AuditEntry | None
    ) -> bool:
        """Lift the standing, with its audit entry; False if there was none."""

        async def job(conn: Conn) -> bool:
            status = await conn.execute(
                "DELETE FROM standings WHERE scope = $1 AND principal = $2 AND kind = $3",
                scope,
                principal,
                kind,
            )
            gone = _changed(status)
            if gone and audit is not None:
                await _insert_audit(conn, audit)
            return gone

        return await self._write(job)

    async def add_audit(self, entry: AuditEntry) -> None:
        """Record an action that changes no standing."""

        async def job(conn: Conn) -> None:
            await _insert_audit(conn, entry)

        await self._write(job)

    async def audit_log(
        self, *, room: str | None, since_ms: int | None, limit: int
    ) -> list[AuditEntry]:
        """The oldest ``limit`` entries at or after ``since_ms`` (of ``room``), oldest first."""

        async def read(conn: Conn) -> list[AuditEntry]:
            rows = await conn.fetch(
                "SELECT ts_ms, actor, action, room, target, reason, detail FROM audit"
                " WHERE ($1::TEXT IS NULL OR room = $1) AND ts_ms >= $2 ORDER BY id LIMIT $3",
                room,
                since_ms or 0,
                limit,
            )
            return [AuditEntry(*r) for r in rows]

        return await self._read(read)

    # -- chinwag admin export (issue 13: admin against PostgreSQL) ---------------
    async def export_account(self, key: str) -> dict[str, Any] | None:
        """What the store holds about the account ``key`` but its messages; None if none.

        The shape of `SqliteStore.export_account` (``account``, ``devices``,
        ``memberships``, ``upto_id``), read in one snapshot.
        """
        principal = "a:" + key

        async def read(conn: Conn) -> dict[str, Any] | None:
            row = await conn.fetchrow(f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE key = $1", key)
            if row is None:
                return None
            account = _account(row)
            devices = await conn.fetch(
                "SELECT device, cursor FROM cursors WHERE account = $1 ORDER BY device", principal
            )
            memberships = await conn.fetch(
                "SELECT room, from_id, to_id FROM memberships WHERE account = $1"
                " ORDER BY room, from_id",
                principal,
            )
            upto = await conn.fetchval("SELECT coalesce(max(id), 0) FROM messages")
            return account_export(account, devices, memberships, upto)

        return await self._read(read)

    async def export_messages(
        self,
        *,
        account: str | None = None,
        room: str | None = None,
        after: int,
        upto: int,
        limit: int,
    ) -> list[StoredMessage]:
        """One page, by id, of one account's or one room's messages (as in SqliteStore)."""
        if (account is None) == (room is None):
            raise ValueError("export_messages takes an account or a room")

        async def read(conn: Conn) -> list[StoredMessage]:
            if room is not None:
                rows = await conn.fetch(
                    f"SELECT {_COLS} FROM messages WHERE room = $1 AND id > $2 AND id <= $3"
                    " AND kind IS NULL ORDER BY id LIMIT $4",
                    room, after, upto, limit,
                )  # fmt: skip
            else:
                rows = await conn.fetch(
                    f"SELECT {_COLS} FROM messages WHERE id > $1 AND id <= $2"
                    " AND (sender = $3 OR recipient = $3) AND kind IS NULL ORDER BY id LIMIT $4",
                    after, upto, account, limit,
                )  # fmt: skip
            return [_message(r) for r in rows]

        return await self._read(read)

    # -- reactions per person (audit4) --
    async def reactions_on(self, message_id: int, who: str) -> tuple[list[str], int]:
        """The emojis ``who`` has on message ``message_id`` now, and its reactions' count."""

        async def read(conn: Conn) -> tuple[list[str], int]:
            rows = await conn.fetch(
                "SELECT emoji FROM reactions WHERE message_id = $1 AND who = $2", message_id, who
            )
            count = await conn.fetchval(
                "SELECT count(*) FROM reactions WHERE message_id = $1", message_id
            )
            return [str(r[0]) for r in rows], int(count)

        return await self._read(read)

    # -- empty rooms forgotten (rooms4) --
    async def forget_room(self, room: str) -> bool:
        """Delete an empty room's row and ended memberships (see `Store.forget_room`)."""

        async def job(conn: Conn) -> bool:
            gone = await conn.fetchval(
                "DELETE FROM rooms WHERE name = $1 AND topic = '' AND NOT private"
                " AND NOT announce AND retention_days IS NULL AND topic_locked AND NOT secret"
                " AND room_key IS NULL AND member_limit IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM memberships WHERE room = $1 AND to_id IS NULL)"
                " AND NOT EXISTS (SELECT 1 FROM messages WHERE room = $1)"
                " AND NOT EXISTS (SELECT 1 FROM standings WHERE scope = $1)"
                " RETURNING 1",
                room,
            )
            if gone is not None:
                await conn.execute("DELETE FROM memberships WHERE room = $1", room)
            return gone is not None

        return await self._write(job)

    # -- purges: expired dedupe rows and messages past their retention (issue 17) --
    async def _purge_loop(self) -> None:
        """A purge step every ``purge_interval``; at once again after a full one."""
        while True:
            await asyncio.sleep(self._upkeep.purge_interval)
            while not self._closed:
                try:
                    full = await self._submit(self._purge_step)
                except StoreError:
                    break  # the writer logged it; the next interval tries again
                if not full:
                    break

    async def _purge_step(self, conn: Conn) -> bool:
        """One step in the writer's transaction; whether a batch was full."""
        upkeep = self._upkeep
        now_ms = int(upkeep.clock() * 1000)
        full = False
        if upkeep.cid_ttl_ms is not None:
            status = await conn.execute(
                PURGE_DEDUPE_SQL, now_ms - upkeep.cid_ttl_ms, upkeep.purge_batch
            )
            full = int(status.split()[-1]) >= upkeep.purge_batch
        expired = await _expire(conn, upkeep.retention, now_ms, upkeep.retention_batch)
        full = full or expired >= upkeep.retention_batch
        return full


def _changed(status: str) -> bool:
    """Did an UPDATE/DELETE status tag (``"UPDATE 1"``) touch a row?"""
    return not status.endswith(" 0")


def _room_row(row: Any) -> RoomSettings:
    name, owner, topic, private, announce, created_ms, retention_days, *rest = tuple(row)
    key, limit, locked, secret, guest, topic_by, topic_ms = rest
    return RoomSettings(
        name,
        owner,
        topic,
        bool(private),
        bool(announce),
        int(created_ms),
        retention_days,
        key,
        limit,
        bool(locked),
        bool(secret),
        guest,
        topic_by,
        None if topic_ms is None else int(topic_ms),
    )


async def _insert_audit(conn: Conn, e: AuditEntry) -> None:
    await conn.execute(
        "INSERT INTO audit (ts_ms, actor, action, room, target, reason, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        e.ts_ms,
        e.actor,
        e.action,
        e.room,
        e.target,
        e.reason,
        e.detail,
    )


# -- restore: checking a restored copy, and swapping it in (issue 17, ops3) ----------
# The tables every chinwag schema has had since version 1.
_CORE_TABLES: Final = ("accounts", "messages", "memberships", "cursors")
_COUNT_SQL: Final = """
SELECT (SELECT count(*) FROM accounts WHERE NOT deleted),
       (SELECT count(*) FROM accounts WHERE deleted),
       (SELECT count(*) FROM messages),
       (SELECT count(*) FROM messages WHERE recipient IS NOT NULL),
       (SELECT count(*) FROM (
            SELECT room FROM messages WHERE room IS NOT NULL GROUP BY room
            UNION SELECT room FROM memberships WHERE to_id IS NULL) AS r),
       (SELECT count(*) FROM cursors)
"""
_COUNT_KEYS: Final = ("accounts", "deleted_accounts", "messages", "dms", "rooms", "devices")


async def check_database(
    dsn: str, *, timeout: float = 30.0
) -> tuple[int, list[str], dict[str, int]]:
    """(schema version, problems, counts) of the database ``dsn``, read only.

    Problems: a schema version this chinwag does not know, tables a chinwag
    database has that are missing, an index PostgreSQL marks invalid, a
    message id sequence behind the messages (new messages would collide);
    none for a sound database. Row-level integrity (keys, checks, references)
    is PostgreSQL's: a restore in one transaction either satisfies every
    constraint or loads nothing. Counts: as `PostgresStore.stats` (empty when
    there are problems).

    Raises:
        StoreError: the database cannot be reached.
    """
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout, command_timeout=timeout)
    except _DB_ERRORS as exc:
        raise StoreError(f"cannot open the database {_safe(dsn)}: {exc}") from exc
    problems: list[str] = []
    counts: dict[str, int] = {}
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            tables = {
                str(r[0])
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            }
            version = 0
            if "chinwag_schema" in tables:
                version = int(await conn.fetchval("SELECT max(version) FROM chinwag_schema") or 0)
            known = len(read_migrations("pg_migrations"))
            if version < 1:
                problems.append("it holds no chinwag schema (schema version 0)")
            elif version > known:
                problems.append(
                    f"its schema version {version} is newer than this chinwag knows"
                    f" ({known}); upgrade chinwag first"
                )
            missing = sorted(set(_CORE_TABLES) - tables)
            if version >= 1 and missing:
                problems.append(f"tables missing: {', '.join(missing)}")
            if not problems:
                invalid = await conn.fetch(
                    "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid"
                )
                if invalid:
                    names = ", ".join(str(r[0]) for r in invalid)
                    problems.append(f"indexes PostgreSQL marks invalid: {names}")
                behind = await conn.fetchval(
                    "SELECT (SELECT coalesce(max(id), 0) FROM messages)"
                    " > (SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
                    "    FROM messages_id_seq)"
                )
                if behind:
                    problems.append("the message id sequence is behind the messages it holds")
            if not problems:
                row = await conn.fetchrow(_COUNT_SQL)
                counts = {k: int(v) for k, v in zip(_COUNT_KEYS, tuple(row), strict=True)}
    except _DB_ERRORS as exc:
        raise StoreError(f"cannot read the database {_safe(dsn)}: {exc}") from exc
    finally:
        await conn.close(timeout=timeout)
    return version, problems, counts


async def high_water(dsn: str, *, timeout: float = 30.0) -> int:
    """The highest message id the database ``dsn`` gave out (0: none, or not a chinwag one).

    Raises:
        StoreError: the database cannot be read.
    """
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout, command_timeout=timeout)
        try:
            if await conn.fetchval("SELECT to_regclass('messages_id_seq') IS NULL"):
                return 0
            return int(await conn.fetchval(_HIGH_WATER_SQL))
        finally:
            await conn.close(timeout=timeout)
    except _DB_ERRORS as exc:
        raise StoreError(f"cannot read the database {_safe(dsn)}: {exc}") from exc


async def raise_high_water(dsn: str, floor: int, *, timeout: float = 30.0) -> None:
    """Make the database ``dsn`` give out message ids above ``floor`` only (a restore's).

    Raises:
        StoreError: the database cannot be written.
    """
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout, command_timeout=timeout)
        try:
            await conn.execute(
                "SELECT setval('messages_id_seq', $1) WHERE $1 > (" + _HIGH_WATER_SQL + ")",
                floor,
            )
        finally:
            await conn.close(timeout=timeout)
    except _DB_ERRORS as exc:
        raise StoreError(f"cannot write the database {_safe(dsn)}: {exc}") from exc


class PgCluster:
    """The PostgreSQL server behind a store's URL, for ``chinwag admin restore``.

    `database` is the store's database, named by the URL (it may not exist:
    a new server after a lost one). It holds one connection to another
    database (``postgres``, or ``template1`` when the store is that one), from
    which databases are made, renamed and dropped, and a session advisory lock
    there so that two restores never run at once against one server.
    """

    RESTORE_LOCK: Final = 0x63687769

    def __init__(self, dsn: str, conn: Conn, database: str, timeout: float) -> None:
        # Use `connect()`.
        self.dsn = dsn
        self.database = database
        self._conn = conn
        self._timeout = timeout

    @classmethod
    async def connect(cls, dsn: str, *, timeout: float = 30.0) -> PgCluster:
        """Reach the server of the store ``dsn``; its database's name is `database`.

        Raises:
            StoreError: the server cannot be reached, or a restore runs already.
        """
        parts = urllib.parse.urlsplit(dsn)
        database = urllib.parse.unquote(parts.path.lstrip("/")) or (parts.username or "")
        if not database:
            raise StoreError(
                f"the store's URL {_safe(dsn)} names no database: give it as"
                " postgresql://USER@HOST:PORT/DATABASE"
            )
        other = "template1" if database == "postgres" else "postgres"
        try:
            conn = await asyncpg.connect(
                with_database(dsn, other), timeout=timeout, command_timeout=timeout
            )
        except _DB_ERRORS as exc:
            raise StoreError(
                f"cannot reach the PostgreSQL server of {_safe(dsn)} (its {other!r} database):"
                f" {exc}; check that PostgreSQL runs there and that this user may connect"
            ) from exc
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", cls.RESTORE_LOCK):
            await conn.close(timeout=timeout)
            raise StoreError(
                "another chinwag admin restore runs against this PostgreSQL server;"
                " wait for it to end"
            )
        return cls(dsn, conn, database, timeout)

    async def close(self) -> None:
        with contextlib.suppress(*_DB_ERRORS):
            await self._conn.close(timeout=self._timeout)

    async def users(self, database: str) -> int:
        """How many client connections other than ours are open to ``database``."""
        return int(
            await self._conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                database,
            )
        )

    async def exists(self, database: str) -> bool:
        return bool(
            await self._conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        )

    async def create(self, database: str) -> None:
        """Make the empty database ``database`` (UTF-8, from ``template0``).

        Raises:
            StoreError: it cannot be made (this user may not create databases?).
        """
        try:
            await self._conn.execute(
                f"CREATE DATABASE {_ident(database)} TEMPLATE template0 ENCODING 'UTF8'"
            )
        except _DB_ERRORS as exc:
            raise StoreError(
                f"cannot create the scratch database {database!r}: {exc}; the user of the"
                " store's URL needs the CREATEDB privilege (ALTER ROLE … CREATEDB)"
            ) from exc

    async def drop(self, database: str) -> None:
        """Drop ``database`` if it exists (a scratch copy).

        Raises:
            StoreError: it cannot be dropped.
        """
        try:
            await self._conn.execute(f"DROP DATABASE IF EXISTS {_ident(database)}")
        except _DB_ERRORS as exc:
            raise StoreError(f"cannot drop the database {database!r}: {exc}") from exc

    async def swap(self, replacement: str, kept: str | None) -> None:
        """Rename the store's database to ``kept`` and ``replacement`` to its name, at once.

        ``kept`` None: the store's database does not exist, only the second
        rename is done. PostgreSQL refuses to rename a database anyone is
        connected to, so this fails (and changes nothing) when a node
        connected meanwhile.

        Raises:
            StoreError: the renames failed; nothing was renamed.
        """
        try:
            async with self._conn.transaction():
                if kept is not None:
                    await self._conn.execute(
                        f"ALTER DATABASE {_ident(self.database)} RENAME TO {_ident(kept)}"
                    )
                await self._conn.execute(
                    f"ALTER DATABASE {_ident(replacement)} RENAME TO {_ident(self.database)}"
                )
        except _DB_ERRORS as exc:
            raise StoreError(f"{exc}") from exc


def with_database(dsn: str, database: str) -> str:
    """The URL ``dsn`` (``postgresql://USER@HOST:PORT/DB?…``) naming ``database`` instead."""
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(database)))


def _ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _safe(dsn: str) -> str:
    """``dsn`` without a password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)


if TYPE_CHECKING:

    def _implements_store(store: PostgresStore) -> Store:  # mypy checks the Protocol
        return store
