"""The embedded default backend: one SQLite file, written off the event loop.

Shape:

* **One writer thread** owns the only write connection. Writes are jobs in a
  queue; the jobs of one event-loop turn are handed over together (while
  writes keep coming, within three ``commit_delay`` of the last hand-over,
  those of the next ``commit_delay`` too), and the
  thread takes every job waiting (up to ``max_batch``) and runs them in ONE
  transaction (group commit: one fsync for the batch). A job that may refuse
  (``OverQuota``, ``AccountExists``) runs inside its own SAVEPOINT, so that a
  refusal is undone alone; any other job that fails (a database error) makes
  the thread roll the batch back and run it again with every job inside a
  SAVEPOINT, so that the failed job alone is undone. Only after
  ``COMMIT`` returned are the jobs' futures resolved, in queue order, by a
  single ``call_soon_threadsafe`` callback per batch. A job is queued when the
  method is called, so message ids are assigned in call order and the futures
  resolve in id order: the hub relies on both.
* **Reader threads** (a small pool) each own a ``query_only`` connection. In WAL
  mode readers never block the writer and always see committed data.
* The schema comes from numbered files in ``migrations/``, applied at
  :meth:`SqliteStore.open` and tracked with ``PRAGMA user_version``.

Durability (``durability``): ``"fsync"``, the default, is ``journal_mode=WAL``
with ``synchronous=FULL``: the WAL is fsynced at every commit, so an acked write
survives a process kill *and* a power loss. ``"os"`` is WAL with
``synchronous=NORMAL``: a commit is written to the operating system but not
synced (the WAL is synced at checkpoints only), so an acked write survives a
kill -9 of the server (the contract's promise) but not a power cut or a kernel
crash; acks no longer wait for the disk. Group commit amortises the fsync over
the batch; what it cannot hide is a slow fsync (docs/performance.md).
* **Checkpoints** (copying the WAL into the database file, with an fsync of
  each) run on a thread of their own, never inside a writer's COMMIT, where
  SQLite's automatic checkpoint would stall the batch that crossed 1,000 WAL
  pages, and every write queued behind it, for two fsyncs. The thread copies
  (``PASSIVE``: it never waits for the writer nor blocks it) when writes
  pause for ``CHECKPOINT_IDLE`` seconds, and while writes flow every time
  ``CHECKPOINT_STEP`` (1 MiB, or ``checkpoint_bytes`` if smaller) is not yet
  copied: each copy's sync of the WAL and of the database then writes
  little. The WAL starts over from its beginning only once everything in it
  was copied, and the first commit after that syncs the WAL (SQLite syncs its
  new header) on the writer's path. After a pause the thread copies again
  what a resumed writer added meanwhile, up to ``CATCH_UP_TRIES`` copies, so
  that the next commit starts the WAL over; while writes flow it does not
  (at 1,000 msg/s that started the WAL over, with a sync on the writer's
  path, about eight times a second). So under steady writes the WAL grows
  to twice ``checkpoint_bytes``; there the writer waits for the thread's
  copy to end and copies the rest itself between two batches (syncs on its
  path, once, of the little the last step left): a hard bound of twice the
  setting and one batch. ``journal_size_limit`` is three times the setting,
  so a WAL within the bound is reused as it is, not truncated (and its
  blocks freed, then allocated again) at each start-over. How much the
  WAL holds is read from the wal-index header in the ``-shm`` file
  (`WalIndex`), by the thread every ``CHECKPOINT_POLL`` seconds and by the
  writer after each batch. A reader holding an old snapshot keeps the WAL
  from starting over until it ends. ``checkpoint_bytes=None`` keeps SQLite's
  own automatic checkpoint.
* **cid dedupe** (migration 012): a message with a ``cid`` holds its sender's
  ``dedupe_key`` too, and one partial index (``messages_dedupe``) finds the
  newest message of a (dedupe_key, cid); it counts as the original only within
  ``cid_ttl``. No table of its own (three b-trees written per message before,
  docs/performance.md "WAL pages per message"), nothing to purge: an entry
  goes with its message.
* **Retention** (``retention``): a purge step deletes the messages older
  than their conversation's retention, ``retention_batch`` of them per step,
  with the events about them (an edit holds its message's text), their
  reactions and their words in the search index; ``secure_delete`` zeroes the
  freed space and the WAL is then checkpointed with TRUNCATE (emptied).

Accounts in rooms and cursors are the hub's principals (``"a:<key>"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import mmap
import operator
import os
import queue
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

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

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_ID: Final = 2**63 - 1  # "no upper bound" for id comparisons

DURABILITY: Final = {"fsync": "FULL", "os": "NORMAL"}  # durability -> PRAGMA synchronous
CHECKPOINT_IDLE: Final = 0.25  # seconds without a commit after which the WAL is copied
CHECKPOINT_POLL: Final = 0.05  # seconds between two looks at how much the WAL holds
_WAL_FRAME_HEADER: Final = 24  # bytes before each page in the WAL
CATCH_UP_TRIES: Final = 8  # copies in a row the thread makes to copy everything by itself
# While writes flow, the thread copies every time this much WAL is not yet copied
# (at most once per CHECKPOINT_POLL): each copy's sync then writes little, and
# the writer's own copy at the bound (``_copy_rest``) finds little left to sync.
CHECKPOINT_STEP: Final = 1024 * 1024
MIGRATION_PROGRESS = 5.0  # seconds between two "still running" lines of a long migration
MIGRATION_PROGRESS_STEPS = 100_000  # SQLite VM steps between two looks at the clock


# Retention (issue 17): the expired DMs, one room's expired messages, and the
# next room after :room that has messages (walking the rooms of the index).
EXPIRED_DMS_SQL: Final = """
SELECT id FROM messages INDEXED BY messages_dm_ts
 WHERE recipient IS NOT NULL AND ts_ms < :cutoff LIMIT :n
"""
EXPIRED_IN_ROOM_SQL: Final = """
SELECT id FROM messages INDEXED BY messages_room_ts
 WHERE room = :room AND ts_ms < :cutoff LIMIT :n
"""
NEXT_ROOM_SQL: Final = """
SELECT room FROM messages INDEXED BY messages_room_ts
 WHERE room IS NOT NULL AND room > :room ORDER BY room LIMIT 1
"""
# Everything about the expired messages :ids goes with them: their reactions,
# the events about them (an edit holds the text), then the rows (the FTS5
# trigger takes their words out of the index; their cid dedupe entries go with the rows).
EXPIRE_SQL: Final = (
    "DELETE FROM reactions WHERE message_id IN (SELECT value FROM json_each(:ids))",
    "DELETE FROM messages INDEXED BY messages_target"
    " WHERE target IS NOT NULL AND target IN (SELECT value FROM json_each(:ids))",
    "DELETE FROM messages WHERE id IN (SELECT value FROM json_each(:ids))",
)


# Rooms' own retention (issue 17): read at each purge step, so a change is
# honoured at the next step, whichever node made it.
ROOM_RETENTION_SQL: Final = (
    "SELECT name, retention_days FROM rooms WHERE retention_days IS NOT NULL"
)


def _expire(conn: sqlite3.Connection, retention: Retention, now_ms: int, limit: int) -> int:
    """Delete at most ``limit`` messages older than their retention at ``now_ms``; how many."""
    own = conn.execute(ROOM_RETENTION_SQL).fetchall()
    retention = retention.with_rooms({str(room): float(days) for room, days in own})
    if not retention.active:
        return 0
    rooms_cut, dms_cut, per_room = retention.cutoffs(now_ms)
    ids: list[int] = []

    def take(sql: str, **args: Any) -> None:
        rows = conn.execute(sql, {**args, "n": limit - len(ids)}).fetchall()
        ids.extend(int(row[0]) for row in rows)

    if dms_cut is not None:
        take(EXPIRED_DMS_SQL, cutoff=dms_cut)
    for room, cut in per_room.items():
        if cut is not None and len(ids) < limit:
            take(EXPIRED_IN_ROOM_SQL, room=room, cutoff=cut)
    if rooms_cut is not None:
        room = ""
        while len(ids) < limit:
            row = conn.execute(NEXT_ROOM_SQL, {"room": room}).fetchone()
            if row is None:
                break
            room = str(row[0])
            if room not in per_room:
                take(EXPIRED_IN_ROOM_SQL, room=room, cutoff=rooms_cut)
    if ids:
        for sql in EXPIRE_SQL:
            conn.execute(sql, {"ids": json.dumps(ids)})
    return len(ids)


_COLS: Final = (
    "id, ts_ms, sender, sender_nick, room, recipient, recipient_nick, body, cid,"
    " kind, target, reply_to, edited_ms, deleted, mentions, notice, concat"
)
_COLS_M: Final = ", ".join(f"m.{c.strip()}" for c in _COLS.split(","))

# The newest message of a sender's (dedupe_key) cid, for the cid dedupe
# (migration 012): the caller checks it is within cid_ttl.
SEEN_CID_SQL: Final = f"""
SELECT {_COLS} FROM messages INDEXED BY messages_dedupe
 WHERE dedupe_key = ? AND cid = ? ORDER BY id DESC LIMIT 1
"""

# Every statement names its index (INDEXED BY): each has one right index, and
# pinning it keeps the plan from depending on statistics (after an ANALYZE of a
# server where one room holds most messages, SQLite would otherwise walk the
# primary key and filter, which is very slow for a small room).
#
# The backlog, in branches that each walk one index in id order from above
# ``:lo`` to ``:hi``: room messages inside one of the account's membership
# intervals (one branch per interval), DMs it received, DMs it sent to others
# (a DM to oneself is found once, by the received branch). ``_merged`` merges
# the branches by id and stops as soon as it has what it needs, so a page reads
# its own rows and a few more, however long the backlog; a room's intervals are
# walked one after the other, each started only when the walk reaches it.
BACKLOG_MEMBERSHIPS_SQL: Final = f"""
SELECT room, max(from_id, :after), min(coalesce(to_id, {_MAX_ID}), :upto)
  FROM memberships
 WHERE account = :account AND coalesce(to_id, {_MAX_ID}) > :after AND from_id < :upto
 ORDER BY room, from_id
"""


def _backlog_branches(columns: str, order: str) -> tuple[str, str, str]:
    """The (room interval, DMs received, DMs sent) statements of the backlog."""
    where = "id > :lo AND id <= :hi AND ts_ms >= :since"
    return (
        f"SELECT {columns} FROM messages INDEXED BY messages_room"
        f" WHERE room = :room AND {where} ORDER BY id {order}",
        f"SELECT {columns} FROM messages INDEXED BY messages_recipient"
        f" WHERE recipient = :account AND {where} ORDER BY id {order}",
        f"SELECT {columns} FROM messages INDEXED BY messages_sender"
        f" WHERE sender = :account AND recipient IS NOT NULL AND recipient <> :account"
        f" AND {where} ORDER BY id {order}",
    )


BACKLOG_IDS_SQL: Final = _backlog_branches("id", "DESC")  # the bounds: newest first
BACKLOG_ROWS_SQL: Final = _backlog_branches(_COLS, "ASC")  # the pages: oldest first

ROOM_HISTORY_SQL: Final = f"""
SELECT {_COLS} FROM messages INDEXED BY messages_room
 WHERE room = :room AND id < :before AND kind IS NULL
 ORDER BY id DESC
 LIMIT :n
"""

# Each direction is bounded on its own (index (sender, recipient, id), newest
# first) so a long conversation is never read whole.
DM_HISTORY_SQL: Final = f"""
SELECT {_COLS} FROM (
    SELECT * FROM (
        SELECT {_COLS} FROM messages INDEXED BY messages_pair
         WHERE sender = :a AND recipient = :b AND id < :before AND kind IS NULL
         ORDER BY id DESC LIMIT :n)
    UNION ALL
    SELECT * FROM (
        SELECT {_COLS} FROM messages INDEXED BY messages_pair
         WHERE sender = :b AND recipient = :a AND id < :before AND :a <> :b AND kind IS NULL
         ORDER BY id DESC LIMIT :n)
)
ORDER BY id DESC
LIMIT :n
"""

# A range of history (IRC CHATHISTORY AFTER/AROUND/BETWEEN), read from its
# oldest or its newest end (ASC or DESC), bounded like the pages above.
ROOM_RANGE_SQL: Final = f"""
SELECT {_COLS} FROM messages INDEXED BY messages_room
 WHERE room = :room AND id > :after AND id < :before AND kind IS NULL
   AND ts_ms > :after_ms AND ts_ms < :before_ms
 ORDER BY id {{order}}
 LIMIT :n
"""
DM_RANGE_SQL: Final = f"""
SELECT {_COLS} FROM (
    SELECT * FROM (
        SELECT {_COLS} FROM messages INDEXED BY messages_pair
         WHERE sender = :a AND recipient = :b AND id > :after AND id < :before
           AND kind IS NULL AND ts_ms > :after_ms AND ts_ms < :before_ms
         ORDER BY id {{order}} LIMIT :n)
    UNION ALL
    SELECT * FROM (
        SELECT {_COLS} FROM messages INDEXED BY messages_pair
         WHERE sender = :b AND recipient = :a AND id > :after AND id < :before AND :a <> :b
           AND kind IS NULL AND ts_ms > :after_ms AND ts_ms < :before_ms
         ORDER BY id {{order}} LIMIT :n)
)
ORDER BY id {{order}}
LIMIT :n
"""

# The newest message of each room named and of each DM conversation of :me
# (a conversation's two directions are two rows here; the caller keeps one).
HEADS_SQL: Final = f"""
SELECT {_COLS} FROM messages WHERE id IN (
    SELECT (SELECT max(id) FROM messages INDEXED BY messages_room
             WHERE room = j.value AND kind IS NULL)
      FROM json_each(:rooms) AS j
    UNION ALL
    SELECT max(id) FROM messages INDEXED BY messages_pair
     WHERE sender = :me AND recipient IS NOT NULL AND kind IS NULL GROUP BY recipient
    UNION ALL
    SELECT max(id) FROM messages INDEXED BY messages_recipient
     WHERE recipient = :me AND recipient IS NOT NULL AND kind IS NULL GROUP BY sender
)
"""

# DMs to the account from others above its highest cursor; ``:cap`` bounds the
# count (-1: no bound) so the quota check reads at most ``quota`` index entries.
UNDELIVERED_SQL: Final = """
SELECT count(*) FROM (
    SELECT 1 FROM messages INDEXED BY messages_recipient
     WHERE recipient = :account
       AND id > (SELECT coalesce(max(cursor), 0) FROM cursors WHERE account = :account)
       AND sender <> :account
     LIMIT :cap
)
"""

_ACCOUNT_COLS: Final = "key, nick, skeleton, password_hash, created_ms, deleted, bot"


# A search: the index yields matches newest first; each is kept when the asker
# may see it (a room of ``:rooms``, or a DM of ``:me``), until the page is full.
SEARCH_SQL: Final = f"""
SELECT {_COLS_M} FROM messages_fts AS f JOIN messages AS m ON m.id = f.rowid
 WHERE messages_fts MATCH :q AND f.rowid < :before
   AND (m.room IN (SELECT value FROM json_each(:rooms))
        OR (m.recipient IS NOT NULL AND :me IS NOT NULL AND :me IN (m.sender, m.recipient)
            AND (:with IS NULL OR (:with IN (m.sender, m.recipient)
                                   AND (:with <> :me OR m.sender = m.recipient)))))
   AND (:sender IS NULL OR m.sender = :sender)
 ORDER BY f.rowid DESC
 LIMIT :n
"""


def _token(prefix: str, value: str) -> str:
    """A scope token of the index (see migration 004): prefix + upper-case hex of UTF-8."""
    return prefix + value.encode().hex().upper()


def _fts_query(words: list[str], scope: SearchScope) -> str:
    """The FTS5 query: every word (quoted: no query syntax gets through), within ``scope``.

    The scope part lets the index skip matches the asker may not see; the
    SQL checks each row again.
    """
    text = " AND ".join('"' + word.replace('"', '""') + '"' for word in words)
    places = [_token("r", room) for room in scope.rooms]
    if scope.me is not None:
        me = _token("d", scope.me)
        if scope.with_ is None:
            places.append(me)
        elif scope.with_ == scope.me:
            places.append(f'"{me} {me}"')  # a DM to oneself: both parties are me
        else:
            places.append(f"({me} AND {_token('d', scope.with_)})")
    where = " OR ".join(places) if places else _token("r", "")  # nowhere: matches nothing
    query = f"body : ({text}) AND scope : ({where})"
    if scope.sender is not None:
        query += f" AND scope : {_token('s', scope.sender)}"
    return query


# The reactions on a page of messages in the order they were put on: emojis by
# their oldest reaction, and the nicks of each emoji oldest first.
REACTIONS_SQL: Final = """
SELECT message_id, emoji, nick FROM reactions
 WHERE message_id IN (SELECT value FROM json_each(:ids))
 ORDER BY message_id, event_id
"""


def _message(row: Iterable[Any]) -> StoredMessage:
    (i, ts, sender, snick, room, recipient, rnick, body, cid, kind, target, reply_to, edited,
     deleted, mentions, notice, concat) = row  # fmt: skip
    return StoredMessage(
        i, ts, sender, snick, room, recipient, rnick, body, cid,
        kind, target, reply_to, edited, bool(deleted), tuple(mentions.split()), notice=bool(notice),
        concat=tuple(int(c) for c in concat.split()),
    )  # fmt: skip


def _with_reactions(conn: sqlite3.Connection, messages: list[StoredMessage]) -> list[StoredMessage]:
    """``messages`` with their ``reactions`` filled in (one query for the page)."""
    if not messages:
        return messages
    ids = json.dumps([m.id for m in messages])
    found: dict[int, dict[str, list[str]]] = {}
    for message_id, emoji, nick in conn.execute(REACTIONS_SQL, {"ids": ids}):
        found.setdefault(message_id, {}).setdefault(emoji, []).append(nick)
    if not found:
        return messages
    return [
        replace(m, reactions=tuple((e, tuple(n)) for e, n in found[m.id].items()))
        if m.id in found
        else m
        for m in messages
    ]


def _apply_event(conn: sqlite3.Connection, msg: NewMessage, event_id: int) -> None:
    """Apply an event to its target, in the transaction that stores the event.

    Raises:
        Gone: an edit or delete of a message that is deleted.
    """
    if msg.kind == "edit":
        # Mentions only grow: whoever an edit newly mentions was told.
        changed = conn.execute(
            "UPDATE messages SET body = ?, edited_ms = ?, concat = '',"
            " mentions = trim(mentions || ' ' || ?) WHERE id = ? AND deleted = 0",
            (msg.body, msg.ts_ms, " ".join(msg.mentions), msg.target),
        ).rowcount
        if not changed:
            raise Gone(f"message {msg.target} is deleted")
    elif msg.kind == "delete":
        changed = conn.execute(
            "UPDATE messages SET body = '', deleted = 1, concat = '' WHERE id = ? AND deleted = 0",
            (msg.target,),
        ).rowcount
        if not changed:
            raise Gone(f"message {msg.target} is already deleted")
        # Its edits held its text too.
        conn.execute(
            "UPDATE messages SET body = '', deleted = 1 WHERE target = ? AND kind = 'edit'",
            (msg.target,),
        )
        conn.execute("DELETE FROM reactions WHERE message_id = ?", (msg.target,))
    elif msg.kind == "react":
        conn.execute(
            "INSERT INTO reactions (message_id, who, nick, emoji, event_id) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (msg.target, msg.sender, msg.sender_nick, msg.body, event_id),
        )
    elif msg.kind == "unreact":
        conn.execute(
            "DELETE FROM reactions WHERE message_id = ? AND emoji = ? AND who = ?",
            (msg.target, msg.body, msg.sender),
        )
    else:
        raise ValueError(f"unknown event kind {msg.kind!r}")


def _account(row: tuple[Any, ...]) -> AccountRow:
    key, nick, skeleton, password_hash, created_ms, deleted, bot = row
    return AccountRow(key, nick, skeleton, password_hash, created_ms, bool(deleted), bool(bot))


def _merged(
    conn: sqlite3.Connection,
    branches: tuple[str, str, str],
    account: str,
    lo: int,
    hi: int,
    since_ms: int,
    limit: int,
) -> list[tuple[Any, ...]]:
    """The first ``limit`` rows of the backlog branches, merged by id (their order).

    Every branch is stepped only as far as the merge needs, so at most
    ``limit`` rows and one more per room and DM direction are read.
    """
    if limit <= 0 or lo >= hi:
        return []
    room_sql, received_sql, sent_sql = branches
    descending = room_sql.endswith("DESC")
    params: dict[str, Any] = {"account": account, "lo": lo, "hi": hi, "since": since_ms}
    spans: dict[str, list[dict[str, Any]]] = {}
    for room, start, end in conn.execute(
        BACKLOG_MEMBERSHIPS_SQL, {"account": account, "after": lo, "upto": hi}
    ):
        spans.setdefault(room, []).append({**params, "room": room, "lo": start, "hi": end})
    cursors: list[sqlite3.Cursor] = []

    def walk(sql: str, runs: list[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
        for args in reversed(runs) if descending else runs:
            cursor = conn.execute(sql, args)
            cursors.append(cursor)
            yield from cursor

    walks = [walk(room_sql, runs) for runs in spans.values()]
    walks += [walk(received_sql, [params]), walk(sent_sql, [params])]
    try:
        merged = heapq.merge(*walks, key=operator.itemgetter(0), reverse=descending)
        return list(itertools.islice(merged, limit))
    finally:
        for cursor in cursors:
            cursor.close()


def _room_row(row: Iterable[Any]) -> RoomSettings:
    name, owner, topic, private, announce, created_ms, retention_days, *rest = row
    key, limit, locked, secret, guest, topic_by, topic_ms = rest
    return RoomSettings(
        name,
        owner,
        topic,
        bool(private),
        bool(announce),
        created_ms,
        retention_days,
        key,
        limit,
        bool(locked),
        bool(secret),
        guest,
        topic_by,
        topic_ms,
    )


def _insert_audit(conn: sqlite3.Connection, e: AuditEntry) -> None:
    conn.execute(
        "INSERT INTO audit (ts_ms, actor, action, room, target, reason, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (e.ts_ms, e.actor, e.action, e.room, e.target, e.reason, e.detail),
    )


def _high_water(conn: sqlite3.Connection) -> int:
    """The highest message id ever assigned (never goes down, even after deletes)."""
    row = conn.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),"
        " coalesce((SELECT max(id) FROM messages), 0))"
    ).fetchone()
    return int(row[0])


def _configure(conn: sqlite3.Connection, *, busy_timeout_ms: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")


def _progress(name: str) -> Callable[[], int]:
    """SQLite's progress handler for migration ``name``: logs it is still running."""
    started = time.monotonic()
    said = started

    def progress() -> int:
        nonlocal said
        now = time.monotonic()
        if now - said >= MIGRATION_PROGRESS:
            said = now
            log.info("migration %s still running (%.0f s)", name, now - started)
        return 0  # go on

    return progress


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations the database lacks, each in one transaction.

    A long one (012 carries over a day of cid entries) says every
    `MIGRATION_PROGRESS` seconds that it is still running.
    """
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    migrations = read_migrations("migrations")
    if current > len(migrations):
        raise StoreError(
            f"the database has schema version {current}, newer than this chinwag knows"
            f" ({len(migrations)}); upgrade chinwag"
        )
    for version, name, sql in migrations[current:]:
        log.info("applying migration %s", name)
        conn.set_progress_handler(_progress(name), MIGRATION_PROGRESS_STEPS)
        # executescript commits any open transaction first, so the BEGIN/COMMIT
        # live in the script: the migration and its version bump are atomic.
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\n;PRAGMA user_version = {version};\nCOMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.set_progress_handler(None, 0)


class WalIndex:
    """How many WAL frames are not copied into the database yet, read from the ``-shm`` file.

    The wal-index header (sqlite.org/walformat.html) holds ``mxFrame`` (offset
    16: the last valid frame) and ``nBackfill`` (offset 96: the frames copied so
    far), native byte order. The file is mapped once, read-only: a look costs
    two small reads of memory. A header being rewritten may read
    inconsistently; the next look corrects it.

    Its descriptor stays open until `close`, which must come after every
    connection of this process to the database is closed: closing any
    descriptor of a file drops every POSIX lock the process holds on it,
    SQLite's locks on ``-shm`` included (another process could then think
    the database unused and reset the file under the server).
    """

    def __init__(self, shm: Path) -> None:
        # Never closed before `close`, not even on failure here: that would drop
        # the locks the store's connections hold already.
        self._fd = os.open(shm, os.O_RDONLY)
        self._map = mmap.mmap(self._fd, 100, access=mmap.ACCESS_READ)

    def frames(self) -> int:
        """Frames in the WAL since it last started over, copied or not."""
        return int(struct.unpack_from("=I", self._map, 16)[0])

    def pending(self) -> int:
        """Frames in the WAL not copied into the database yet."""
        (top,) = struct.unpack_from("=I", self._map, 16)
        (copied,) = struct.unpack_from("=I", self._map, 96)
        return max(0, int(top) - int(copied))

    def close(self) -> None:
        """Unmap and close; only once no connection of this process has the database open."""
        self._map.close()
        os.close(self._fd)


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    may_refuse: bool  # may raise a refusal (OverQuota, AccountExists): run in a SAVEPOINT


_STOP: Final = object()


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """Resolve a batch's futures in order (runs on the event loop)."""
    for future, value, error in outcomes:
        if future.done():  # the caller was cancelled; the write happened anyway
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


def _wrap(exc: BaseException) -> BaseException:
    """Domain refusals pass through; database failures become a StoreError."""
    if isinstance(exc, sqlite3.Error):
        wrapped = StoreError(f"database error: {exc}")
        wrapped.__cause__ = exc
        return wrapped
    return exc


class _Incident:
    """A run of database failures, logged once: the first with its cause, then the recovery.

    A full disk fails every write until space is freed; a line (and a traceback)
    per failed write would fill the log, and the disk, faster.
    """

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._failures = 0

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self._failures += 1
            first = self._failures == 1
        if first:
            log.error(
                "database %s fail: %s; clients get server_error until it recovers, and"
                " further failures are not logged until then",
                self._what,
                exc,
                exc_info=exc,
            )

    @property
    def ongoing(self) -> bool:
        """Whether the last attempt failed (the incident is not over)."""
        return self._failures > 0

    def succeeded(self) -> None:
        if not self._failures:  # the usual case: no lock
            return
        with self._lock:
            failures, self._failures = self._failures, 0
        if failures:
            log.warning("the database accepts %s again (%d failed meanwhile)", self._what, failures)


class SqliteStore:
    """The `Store` on one SQLite file. Open with ``await SqliteStore.open(path)``.

    Every method may be called concurrently from the event loop that opened the
    store. Writes are committed when the awaited call returns. If the caller is
    cancelled while a write is queued, the write may still be committed.
    """

    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection,
        *,
        max_batch: int,
        readers: int,
        busy_timeout_ms: int,
        commit_delay: float = 0.0,
        purge_interval: float | None = None,
        clock: Callable[[], float] = time.time,
        checkpoint_bytes: int | None = None,
        checkpoint_idle: float = CHECKPOINT_IDLE,
        checkpoint_step: int = CHECKPOINT_STEP,
        checkpointer: sqlite3.Connection | None = None,
        retention: Retention | None = None,
        retention_batch: int = 500,
    ) -> None:
        # Use `open()`: the constructor only wires up an already migrated connection.
        self._path = path
        self._purge_interval = purge_interval
        self._retention = retention if retention is not None else Retention()
        self._retention_batch = retention_batch
        self._clock = clock
        # Clock time of the next purge step.
        self._next_purge = clock() + (purge_interval or 0.0)
        self._writer = writer
        self._max_batch = max_batch
        self._busy_timeout_ms = busy_timeout_ms
        self._closed = False
        self._close_done: asyncio.Future[None] | None = None
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()  # list[_Job] or _STOP
        self._turn: list[_Job] = []  # queued, not handed over to the writer yet
        self._erased = False  # writer thread: a deletion committed, empty the WAL
        self._commit_delay = commit_delay
        self._handed_at = float("-inf")  # loop time of the last hand-over
        self._thread = threading.Thread(
            target=self._write_loop, name=f"chinwag-sqlite-writer:{path.name}", daemon=True
        )
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._readers = ThreadPoolExecutor(
            max_workers=readers, thread_name_prefix=f"chinwag-sqlite-reader:{path.name}"
        )
        self.commit_seconds = Histogram()  # written by the writer thread only
        self._write_failures = _Incident("writes")
        self._read_failures = _Incident("reads")
        self._purge_failures = _Incident("purges (expired messages)")
        self._checkpoint_failures = _Incident("checkpoints")
        self._last_commit = time.monotonic()  # set by the writer after each commit
        self._checkpoint_bytes = checkpoint_bytes
        self._checkpoint_idle = checkpoint_idle
        self._checkpoint_step = checkpoint_step
        self.checkpoints = 0  # copies of the WAL by the checkpoint thread or the writer
        # Held by whoever copies (one checkpoint at a time: SQLite refuses a second).
        self._copying = threading.Lock()
        self._wal: WalIndex | None = None
        self._wal_most = 0  # frames: the writer copies at once beyond this
        if checkpoint_bytes is not None:
            self._wal = WalIndex(path.with_name(path.name + "-shm"))
            self._wal_most = 2 * checkpoint_bytes // (self._page_size(writer) + _WAL_FRAME_HEADER)
        self._checkpoint_stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if checkpoint_bytes is not None:  # the writer's connection has wal_autocheckpoint=0
            if checkpointer is None:
                raise ValueError("checkpoint_bytes needs the checkpoint thread's connection")
            self._checkpoint_conn = checkpointer
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop,
                name=f"chinwag-sqlite-checkpoint:{path.name}",
                daemon=True,
            )
            self._checkpointer.start()
        self._thread.start()

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        max_batch: int = 256,
        readers: int = 2,
        busy_timeout_ms: int = 10_000,
        commit_delay: float = 0.0,
        durability: str = "fsync",
        purge_interval: float | None = None,
        clock: Callable[[], float] = time.time,
        retention: Retention | None = None,
        retention_batch: int = 500,
        checkpoint_bytes: int | None = 64 * 1024 * 1024,
        checkpoint_idle: float = CHECKPOINT_IDLE,
        checkpoint_step: int = CHECKPOINT_STEP,
    ) -> SqliteStore:
        """Open (creating if needed) and migrate the database at ``path``.

        Args:
            path: the database file; its directory must exist.
            max_batch: most write jobs committed in one transaction (the jobs
                queued in one event-loop turn are never split).
            readers: reader threads (each with its own connection).
            busy_timeout_ms: how long a connection waits for a lock held by
                another process (e.g. the admin CLI) before failing.
            commit_delay: while writes keep coming (the last batch was handed
                to the writer less than three delays ago), a write waits this
                long (seconds) so that the writes of the next moments share its
                commit: fewer fsyncs, and a fan-out carrying several messages
                per write. A write further apart goes at once: no other would
                join it. 0: every write goes at the end of its event-loop turn.
            durability: ``"fsync"`` (synchronous=FULL: an ack survives a power
                loss) or ``"os"`` (synchronous=NORMAL: an ack survives a kill
                of the server, not a power loss or kernel crash).
            purge_interval: seconds between purge steps (a step that found a
                full batch is followed by the next as soon as the writer is
                idle); the server's store has them, for its retention and the
                rooms' own. None: no purge step (the admin CLI's store).
            clock: wall-clock seconds, as the ``ts_ms`` of the messages (tests).
            retention: how long messages are kept; older ones are deleted by
                the purge step. None: kept forever.
            retention_batch: most expired messages deleted in one purge step.
            checkpoint_bytes: bounds the WAL: should it reach twice this
                many bytes, the writer copies what the checkpoint thread has
                not; None: SQLite's automatic checkpoint inside the writer's
                commits instead.
            checkpoint_idle: seconds without a commit after which the WAL is
                copied (tests).
            checkpoint_step: bytes of WAL not yet copied at which the thread
                copies while writes flow (``checkpoint_bytes`` if smaller; tests).

        Raises:
            StoreError: the file cannot be opened or has a newer schema.
        """
        if max_batch < 1 or readers < 1:
            raise ValueError("max_batch and readers must be at least 1")
        if durability not in DURABILITY:
            raise ValueError(f"durability is one of {', '.join(DURABILITY)}, not {durability!r}")
        if checkpoint_bytes is not None and checkpoint_bytes < 1:
            raise ValueError("checkpoint_bytes must be at least 1 (None: SQLite's own)")
        if checkpoint_step < 1:
            raise ValueError("checkpoint_step must be at least 1")
        if (purge_interval is not None and purge_interval <= 0) or retention_batch < 1:
            raise ValueError("retention_batch must be at least 1 and purge_interval above 0")
        synchronous = DURABILITY[durability]

        def setup() -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                _configure(conn, busy_timeout_ms=busy_timeout_ms)
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"cannot put {path} in WAL mode (got {mode!r})")
                # See the module docstring: FULL fsyncs the WAL at every commit.
                conn.execute(f"PRAGMA synchronous = {synchronous}")
                if checkpoint_bytes is not None:  # the checkpoint thread's job
                    conn.execute("PRAGMA wal_autocheckpoint = 0")
                    # A WAL that grew beyond its bound (a long reader) shrinks back
                    # once reset; one within it (twice the setting and a batch) is
                    # reused as it is: truncating it would free and reallocate its
                    # blocks, on the writer's path, at every restart.
                    conn.execute(f"PRAGMA journal_size_limit = {3 * int(checkpoint_bytes)}")
                # A deleted message's text is overwritten in the file, not just unlinked.
                conn.execute("PRAGMA secure_delete = ON")
                _migrate(conn)
                if sqlite3.sqlite_version_info >= (3, 44, 0):
                    # A deletion removes its words from the search index at once;
                    # older SQLite leaves them until FTS5 merges those segments.
                    conn.execute(
                        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1)"
                    )
            except BaseException:
                conn.close()
                raise
            return conn

        def open_checkpointer() -> sqlite3.Connection:
            """The checkpoint thread's connection, its files (WAL, -shm) open now.

            Opened here, not when the first copy is due: a server out of file
            descriptors by then (an attack, docs/security.md) still copies.
            """
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                _configure(conn, busy_timeout_ms=busy_timeout_ms)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except BaseException:
                conn.close()
                raise
            return conn

        try:
            writer = await asyncio.to_thread(setup)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        checkpointer: sqlite3.Connection | None = None
        if checkpoint_bytes is not None:
            try:
                checkpointer = await asyncio.to_thread(open_checkpointer)
            except sqlite3.Error as exc:
                writer.close()
                raise StoreError(f"cannot open the database {path}: {exc}") from exc
        return cls(
            path,
            writer,
            checkpointer=checkpointer,
            max_batch=max_batch,
            readers=readers,
            busy_timeout_ms=busy_timeout_ms,
            commit_delay=commit_delay,
            purge_interval=purge_interval,
            clock=clock,
            checkpoint_bytes=checkpoint_bytes,
            checkpoint_idle=checkpoint_idle,
            checkpoint_step=checkpoint_step,
            retention=retention,
            retention_batch=retention_batch,
        )

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Commit the queued writes, stop the threads, close the connections.

        Idempotent; concurrent calls all wait for the same shutdown. Any call
        made after ``close`` raises `StoreError`.
        """
        if self._close_done is not None:
            await asyncio.shield(self._close_done)
            return
        self._closed = True
        self._close_done = asyncio.get_running_loop().create_future()
        try:
            self._hand_over()  # this turn's jobs go before the stop marker
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._checkpoint_stop.set()
            if self._checkpointer is not None:
                await asyncio.to_thread(self._checkpointer.join)
            await asyncio.to_thread(self._readers.shutdown, True)
            with self._reader_lock:
                for conn in self._reader_conns:
                    conn.close()
                self._reader_conns.clear()
            if self._wal is not None:  # last: every connection is closed (see WalIndex)
                self._wal.close()
        finally:
            self._close_done.set_result(None)

    # -- plumbing --------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, may_refuse: bool = False) -> T:
        return await self._submit(fn, may_refuse=may_refuse)

    def _submit(
        self, fn: Callable[[sqlite3.Connection], T], *, may_refuse: bool = False
    ) -> asyncio.Future[T]:
        """Queue a write job now; the future is done once its batch committed."""
        self._check_open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        # The jobs of one loop turn (or, while writes flow, of the next
        # commit_delay) reach the writer together: one commit for all of them.
        # Writes further apart than that would wait for nobody (at 200 msg/s
        # a 1 ms wait joined no other write); in a burst, the next writes
        # follow the acks of the last commit within a delay or two.
        if not self._turn:
            now = loop.time()
            if self._commit_delay > 0 and now - self._handed_at < 3 * self._commit_delay:
                loop.call_at(now + self._commit_delay, self._hand_over)
            else:
                loop.call_soon(self._hand_over)
        self._turn.append(_Job(fn, future, loop, may_refuse))
        return future

    def _hand_over(self) -> None:
        jobs, self._turn = self._turn, []
        if jobs:
            self._handed_at = jobs[0].loop.time()
            self._queue.put(jobs)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()
        loop = asyncio.get_running_loop()
        try:
            value = await loop.run_in_executor(self._readers, self._run_read, fn)
        except sqlite3.Error as exc:
            self._read_failures.failed(exc)
            raise StoreError(f"database error: {exc}") from exc
        self._read_failures.succeeded()
        return value

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            _configure(conn, busy_timeout_ms=self._busy_timeout_ms)
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._reader()
        # One read transaction: a multi-statement read sees one snapshot.
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def _write_loop(self) -> None:
        """The writer thread: group commit until the stop marker, purges between."""
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._until_purge())
            except queue.Empty:
                self._purge_step()
                continue
            if not isinstance(first, list):  # the stop marker
                break
            batch: list[_Job] = first
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(item, list):
                    stopping = True
                    break
                batch.extend(item)
            self._run_batch(batch)
            wal = self._wal
            if wal is None or self._write_failures.ongoing:
                pass  # no thread, or writes fail (see _checkpoint_loop): no copy
            elif wal.frames() > self._wal_most and wal.pending():
                self._copy_rest()  # the WAL never started over: wait for the thread, copy
            if not stopping and self._until_purge() == 0.0:
                self._purge_step()
        # Nothing can be queued after the stop marker (close() refuses new calls
        # first), but never leave a caller hanging.
        leftovers: list[_Job] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, list):
                leftovers.extend(item)
        self._deliver([(job, None, StoreError("the store is closed")) for job in leftovers])
        self._writer.close()

    def _checkpoint_loop(self) -> None:
        """The checkpoint thread: a PASSIVE checkpoint when writes pause or a step is due.

        PASSIVE never waits for the writer nor blocks it; what readers still
        need stays in the WAL until a later checkpoint.
        """
        assert self._checkpoint_bytes is not None and self._wal is not None
        wal = self._wal
        conn = self._checkpoint_conn
        try:
            frame = self._page_size(conn) + _WAL_FRAME_HEADER
            # Frames not yet copied that make a copy due while writes flow.
            step = max(1, min(self._checkpoint_bytes, self._checkpoint_step) // frame)
            while not self._checkpoint_stop.wait(CHECKPOINT_POLL):
                pending = wal.pending()
                if pending == 0 or self._write_failures.ongoing:
                    # While writes fail (a full disk), a copy would fail too, or
                    # free WAL space that writes then fill and fail again.
                    continue
                idle = time.monotonic() - self._last_commit >= self._checkpoint_idle
                if not idle and pending < step:
                    continue
                try:
                    # After a pause, each copy takes what a resumed writer added
                    # during the one before: one that leaves nothing lets the next
                    # commit start the WAL over. Not while writes flow: every
                    # start-over syncs the WAL on the writer's path (SQLite syncs
                    # its new header), so there the WAL starts over at the bound.
                    for _ in range(CATCH_UP_TRIES if idle else 1):
                        with self._copying:
                            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        self.checkpoints += 1
                        if not wal.pending():  # all copied: the next write starts over
                            break
                except sqlite3.Error as exc:
                    self._checkpoint_failures.failed(exc)
                    continue
                self._checkpoint_failures.succeeded()
        finally:
            conn.close()

    @staticmethod
    def _page_size(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])

    def _copy_rest(self) -> None:
        """On the writer, between batches: copy what the checkpoint thread could not.

        Nothing is written meanwhile, so this copies the whole WAL (unless a
        reader still needs old frames), and the next write transaction starts
        the WAL over from its beginning. A copy of the thread is waited for.
        """
        with self._copying:
            try:
                self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.checkpoints += 1
            except sqlite3.Error as exc:
                self._checkpoint_failures.failed(exc)

    def _until_purge(self) -> float | None:
        """Seconds until the next purge step is due (None: no purging)."""
        if self._purge_interval is None:
            return None
        return max(0.0, self._next_purge - self._clock())

    def _purge_step(self) -> None:
        """One purge step in its own transaction: at most ``retention_batch`` expired messages.

        (The cid dedupe has nothing to purge: its entries are the messages' own.)

        Runs on the writer thread between batches: a write queued meanwhile
        waits for one small DELETE at most, never for the whole purge.
        """
        assert self._purge_interval is not None  # see _until_purge
        now = self._clock()
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            expired = _expire(conn, self._retention, int(now * 1000), self._retention_batch)
            conn.execute("COMMIT")
            if expired:
                self._last_commit = time.monotonic()
        except sqlite3.Error as exc:
            self._purge_failures.failed(exc)
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._next_purge = now + self._purge_interval
            return
        self._purge_failures.succeeded()
        if expired:
            self._erase_wal()  # the old pages, with the deleted text, leave the WAL
        # A full batch: more may be waiting, go on as soon as the writer is idle.
        full = expired >= self._retention_batch
        self._next_purge = now if full else now + self._purge_interval

    def _run_batch(self, batch: list[_Job]) -> None:
        conn = self._writer
        started = time.perf_counter()
        try:
            outcomes = self._run_jobs(batch, isolate=False)
            if outcomes is None:  # a job failed: run them again, each on its own
                outcomes = self._run_jobs(batch, isolate=True)
                assert outcomes is not None
            self._last_commit = time.monotonic()
            self.commit_seconds.observe(time.perf_counter() - started)
            self._write_failures.succeeded()
            if self._erased:
                self._erased = False
                self._erase_wal()
        except Exception as exc:
            self._write_failures.failed(exc)  # none of the batch was stored
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            outcomes = []
            for job in batch:
                error = StoreError(f"the database could not commit: {exc}")
                error.__cause__ = exc
                outcomes.append((job, None, error))
        self._deliver(outcomes)

    def _run_jobs(
        self, batch: list[_Job], *, isolate: bool
    ) -> list[tuple[_Job, Any, BaseException | None]] | None:
        """Run ``batch`` in one transaction and commit it.

        A job that may refuse always runs in a SAVEPOINT, so its refusal is
        undone alone (its error is its outcome). Without ``isolate`` the others
        run bare, and if one of them fails the whole batch is rolled back and
        the result is None; with it, every job runs in a SAVEPOINT.
        """
        conn = self._writer
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        conn.execute("BEGIN IMMEDIATE")
        for job in batch:
            if not (isolate or job.may_refuse):
                try:
                    outcomes.append((job, job.fn(conn), None))
                except Exception:
                    conn.execute("ROLLBACK")
                    return None
                continue
            conn.execute("SAVEPOINT job")
            try:
                value = job.fn(conn)
            except Exception as exc:
                # Undo this job only; if even that fails the batch fails.
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((job, None, _wrap(exc)))
            else:
                conn.execute("RELEASE job")
                outcomes.append((job, value, None))
        conn.execute("COMMIT")
        return outcomes

    def _erase_wal(self) -> None:
        """After a deletion: copy the WAL into the database and empty it.

        The WAL still holds the pages as they were before the deletion (the
        deleted text with them) until a checkpoint; TRUNCATE resets it to zero
        bytes. A reader in the middle of a long read can keep it from
        finishing; then the next deletion's (or SQLite's own) checkpoint does.
        """
        # The checkpoint thread's copy would make SQLite refuse this one: wait for it.
        with self._copying, contextlib.suppress(sqlite3.Error):
            busy, _, _ = self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                log.info("a reader kept the WAL from being emptied after a deletion")

    @staticmethod
    def _deliver(outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
        """One callback per event loop, keeping the batch (= id) order."""
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]
        ] = {}
        for job, value, error in outcomes:
            by_loop.setdefault(job.loop, []).append((job.future, value, error))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, items)

    # -- messages -----------------------------------------------------------
    def append(
        self, msg: NewMessage, *, cid_ttl_ms: int, quota: int | None = None
    ) -> asyncio.Future[AppendResult]:
        """Store ``msg`` durably, unless it repeats a recent ``cid``.

        Queued at the call; the future is done once the message is committed.

        Args:
            msg: the message; exactly one of ``room`` and ``recipient`` is set.
            cid_ttl_ms: how long a ``(dedupe_key, cid)`` is remembered.
            quota: most undelivered DMs the recipient may hold; None: no limit.

        Returns:
            A future of the stored message, or of the original one with
            ``duplicate=True``. Its exceptions: `OverQuota` (the recipient is at
            its quota) and `StoreError` (the database failed); either way
            nothing was stored.
        """
        if (msg.room is None) == (msg.recipient is None):
            raise ValueError("exactly one of room and recipient must be set")

        def job(conn: sqlite3.Connection) -> AppendResult:
            if msg.cid is not None:
                seen = conn.execute(SEEN_CID_SQL, (msg.dedupe_key, msg.cid)).fetchone()
                if seen is not None and msg.ts_ms - seen[1] < cid_ttl_ms:
                    return AppendResult(_message(seen), duplicate=True)
            if quota is not None and msg.recipient is not None:
                (held,) = conn.execute(
                    UNDELIVERED_SQL, {"account": msg.recipient, "cap": quota}
                ).fetchone()
                if held >= quota:
                    raise OverQuota(f"{msg.recipient} holds {held} undelivered messages")
            cursor = conn.execute(
                "INSERT INTO messages"
                " (ts_ms, sender, sender_nick, room, recipient, recipient_nick, body, cid,"
                " dedupe_key, kind, target, reply_to, mentions, notice, concat)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    msg.ts_ms,
                    msg.sender,
                    msg.sender_nick,
                    msg.room,
                    msg.recipient,
                    msg.recipient_nick,
                    msg.body,
                    msg.cid,
                    # The entry of index messages_dedupe: only a message with a cid has one.
                    None if msg.cid is None else msg.dedupe_key,
                    msg.kind,
                    msg.target,
                    msg.reply_to,
                    " ".join(msg.mentions),
                    int(msg.notice),
                    " ".join(map(str, msg.concat)),
                ),
            )
            new_id = cursor.lastrowid
            assert new_id is not None
            if msg.kind is not None:
                _apply_event(conn, msg, new_id)
                if msg.kind == "delete":
                    self._erased = True  # writer thread only: checkpoint after the commit
            stored = StoredMessage(
                id=new_id,
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

        def read(conn: sqlite3.Connection) -> StoredMessage | None:
            row = conn.execute(
                f"SELECT {_COLS} FROM messages WHERE id = ? AND kind IS NULL", (message_id,)
            ).fetchone()
            return None if row is None else _message(row)

        return await self._read(read)

    async def max_message_id(self) -> int:
        """The highest message id stored, 0 when there are none."""

        def read(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0])

        return await self._read(read)

    async def messages_between(self, after_id: int, upto_id: int) -> list[StoredMessage]:
        """Every message with ``after_id < id <= upto_id``, by id (a node's gap fill)."""

        def read(conn: sqlite3.Connection) -> list[StoredMessage]:
            rows = conn.execute(
                f"SELECT {_COLS} FROM messages WHERE id > ? AND id <= ? ORDER BY id",
                (after_id, upto_id),
            ).fetchall()
            return [_message(r) for r in rows]

        return await self._read(read)

    async def backlog_start(
        self, account: str, after_id: int, *, limit: int, since_ms: int, page: int
    ) -> BacklogStart:
        """Bound the newest ``limit`` messages ``account`` may see; read the first page.

        One snapshot. The bounds read the ids of at most ``limit + 1`` messages
        (and of those older than ``since_ms`` on the way), never a body.
        """
        limit = max(limit, 0)

        def read(conn: sqlite3.Connection) -> BacklogStart:
            upto = int(conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0])
            rows = _merged(conn, BACKLOG_IDS_SQL, account, after_id, upto, since_ms, limit + 1)
            newest = [row[0] for row in rows]
            truncated = len(newest) > limit
            count = min(len(newest), limit)
            if not count:
                return BacklogStart([], upto, 0, truncated)
            after = newest[limit] if truncated else newest[-1] - 1
            rows = _merged(conn, BACKLOG_ROWS_SQL, account, after, upto, since_ms, min(page, count))
            return BacklogStart([_message(row) for row in rows], upto, count, truncated)

        return await self._read(read)

    async def backlog_page(
        self, account: str, after_id: int, upto_id: int, *, since_ms: int, limit: int
    ) -> list[StoredMessage]:
        """The oldest ``limit`` backlog messages with ``after_id < id <= upto_id``."""

        def read(conn: sqlite3.Connection) -> list[StoredMessage]:
            rows = _merged(conn, BACKLOG_ROWS_SQL, account, after_id, upto_id, since_ms, limit)
            return [_message(row) for row in rows]

        return await self._read(read)

    async def room_history(self, room: str, *, before: int | None, limit: int) -> Page:
        """The newest ``limit`` messages of ``room`` with id < ``before``, oldest first."""
        return await self._page(ROOM_HISTORY_SQL, {"room": room}, before=before, limit=limit)

    async def dm_history(self, a: str, b: str, *, before: int | None, limit: int) -> Page:
        """The newest ``limit`` DMs between principals ``a`` and ``b``, oldest first."""
        return await self._page(DM_HISTORY_SQL, {"a": a, "b": b}, before=before, limit=limit)

    async def _page(
        self, sql: str, params: dict[str, Any], *, before: int | None, limit: int
    ) -> Page:
        limit = max(limit, 0)
        args = {**params, "before": _MAX_ID if before is None else before, "n": limit + 1}

        def read(conn: sqlite3.Connection) -> Page:
            rows = conn.execute(sql, args).fetchall()
            messages = [_message(r) for r in reversed(rows[:limit])]
            return Page(_with_reactions(conn, messages), more=len(rows) > limit)

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
        params: dict[str, Any] = {"room": room, "after_ms": after_ms}
        params["before_ms"] = _MAX_ID if before_ms is None else before_ms
        return await self._range(ROOM_RANGE_SQL, params, after, before, limit, newest)

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
        params: dict[str, Any] = {"a": a, "b": b, "after_ms": after_ms}
        params["before_ms"] = _MAX_ID if before_ms is None else before_ms
        return await self._range(DM_RANGE_SQL, params, after, before, limit, newest)

    async def _range(
        self,
        sql: str,
        params: dict[str, Any],
        after: int,
        before: int | None,
        limit: int,
        newest: bool,
    ) -> Page:
        limit = max(limit, 0)
        query = sql.format(order="DESC" if newest else "ASC")
        upper = _MAX_ID if before is None else before
        args = {**params, "after": after, "before": upper, "n": limit + 1}

        def read(conn: sqlite3.Connection) -> Page:
            rows = conn.execute(query, args).fetchall()
            page = rows[:limit]
            messages = [_message(r) for r in (reversed(page) if newest else page)]
            return Page(_with_reactions(conn, messages), more=len(rows) > limit)

        return await self._read(read)

    async def conversation_heads(self, principal: str, rooms: list[str]) -> list[StoredMessage]:
        """The newest message of each room in ``rooms`` and of each DM conversation."""
        args = {"me": principal, "rooms": json.dumps(rooms)}

        def read(conn: sqlite3.Connection) -> list[StoredMessage]:
            rows = conn.execute(HEADS_SQL, args).fetchall()
            return heads(principal, [_message(r) for r in rows])

        return await self._read(read)

    async def search(
        self, words: list[str], scope: SearchScope, *, before: int | None, limit: int
    ) -> Page:
        """Live messages in ``scope`` with every one of ``words``, newest first."""
        limit = max(limit, 0)
        args = {
            "q": _fts_query(words, scope),
            "before": _MAX_ID if before is None else before,
            "rooms": json.dumps(list(scope.rooms)),
            "me": scope.me,
            "with": scope.with_,
            "sender": scope.sender,
            "n": limit + 1,
        }

        def read(conn: sqlite3.Connection) -> Page:
            rows = conn.execute(SEARCH_SQL, args).fetchall()
            messages = [_message(r) for r in rows[:limit]]
            return Page(_with_reactions(conn, messages), more=len(rows) > limit)

        return await self._read(read)

    async def undelivered(self, account: str) -> int:
        """DMs to ``account`` from others with id above its highest device cursor."""

        def read(conn: sqlite3.Connection) -> int:
            return int(conn.execute(UNDELIVERED_SQL, {"account": account, "cap": -1}).fetchone()[0])

        return await self._read(read)

    # -- accounts -----------------------------------------------------------
    async def get_account(self, key: str) -> AccountRow | None:
        """The account (deleted ones included) with this key, or None."""

        def read(conn: sqlite3.Connection) -> AccountRow | None:
            row = conn.execute(
                f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE key = ?", (key,)
            ).fetchone()
            return None if row is None else _account(row)

        return await self._read(read)

    async def account_by_skeleton(self, skeleton: str) -> AccountRow | None:
        """An account (deleted ones included, live ones first) with this skeleton."""

        def read(conn: sqlite3.Connection) -> AccountRow | None:
            row = conn.execute(
                f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE skeleton = ?"
                " ORDER BY deleted, key LIMIT 1",
                (skeleton,),
            ).fetchone()
            return None if row is None else _account(row)

        return await self._read(read)

    async def create_account(self, row: AccountRow) -> None:
        """Store a new account.

        Raises:
            AccountExists: ``row.key`` exists (even deleted).
        """

        def job(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO accounts ({_ACCOUNT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.key,
                        row.nick,
                        row.skeleton,
                        row.password_hash,
                        row.created_ms,
                        int(row.deleted),
                        int(row.bot),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise AccountExists(row.key) from exc

        await self._write(job, may_refuse=True)

    async def set_password_hash(self, key: str, password_hash: str) -> bool:
        """Replace the hash; False when no live account has this key."""

        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE accounts SET password_hash = ? WHERE key = ? AND deleted = 0",
                (password_hash, key),
            )
            return cursor.rowcount > 0

        return await self._write(job)

    async def set_bot(self, key: str, bot: bool) -> bool:
        """Mark the account a bot or not; False when no live account has this key."""

        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE accounts SET bot = ? WHERE key = ? AND deleted = 0", (int(bot), key)
            )
            return cursor.rowcount > 0

        return await self._write(job)

    async def replace_password_hash(self, key: str, old: str, new: str) -> bool:
        """Replace the hash only if it is still ``old``; False otherwise."""

        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE accounts SET password_hash = ? "
                "WHERE key = ? AND password_hash = ? AND deleted = 0",
                (new, key, old),
            )
            return cursor.rowcount > 0

        return await self._write(job)

    async def delete_account(self, key: str) -> bool:
        """Mark deleted (the nick stays reserved); drop its hash, rooms and cursors.

        Returns False when no live account has this key.
        """

        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE accounts SET deleted = 1, password_hash = '' WHERE key = ? AND deleted = 0",
                (key,),
            )
            if cursor.rowcount == 0:
                return False
            # Rooms and cursors are keyed by the principal "a:<key>"; a bare key
            # (no ':' can occur in one) is cleared too, whichever the caller used.
            owners = (f"a:{key}", key)
            conn.execute("DELETE FROM memberships WHERE account IN (?, ?)", owners)
            conn.execute("DELETE FROM cursors WHERE account IN (?, ?)", owners)
            conn.execute("DELETE FROM read_markers WHERE account IN (?, ?)", owners)
            conn.execute("DELETE FROM blocks WHERE blocker IN (?, ?)", owners)
            conn.execute(
                "DELETE FROM receipt_state WHERE sender IN (?, ?) OR reader IN (?, ?)", owners * 2
            )
            return True

        return await self._write(job)

    async def list_accounts(self) -> list[AccountRow]:
        """All accounts, deleted ones included, by key."""

        def read(conn: sqlite3.Connection) -> list[AccountRow]:
            rows = conn.execute(f"SELECT {_ACCOUNT_COLS} FROM accounts ORDER BY key").fetchall()
            return [_account(r) for r in rows]

        return await self._read(read)

    async def account_index(self) -> list[tuple[str, str, str]]:
        """``(key, skeleton, nick)`` of every account, deleted ones included, by key."""

        def read(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
            rows = conn.execute("SELECT key, skeleton, nick FROM accounts ORDER BY key").fetchall()
            return [(str(key), str(skel), str(nick)) for key, skel, nick in rows]

        return await self._read(read)

    async def adopt(self, guest: str, account: str) -> None:
        """A guest session registered: its DMs (both ways) now belong to ``account``."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE messages SET sender = ? WHERE sender = ? AND recipient IS NOT NULL",
                (account, guest),
            )
            conn.execute("UPDATE messages SET recipient = ? WHERE recipient = ?", (account, guest))

        await self._write(job)

    # -- rooms -------------------------------------------------------------
    async def join_room(self, account: str, room: str) -> bool:
        """Make ``account`` a member from the current highest message id on.

        Returns False (and changes nothing) when it already is a member.
        """

        def job(conn: sqlite3.Connection) -> bool:
            if conn.execute(
                "SELECT 1 FROM memberships WHERE account = ? AND room = ? AND to_id IS NULL",
                (account, room),
            ).fetchone():
                return False
            high = _high_water(conn)
            # Left and rejoined with no message between: reopen that interval.
            reopened = conn.execute(
                "UPDATE memberships SET to_id = NULL WHERE account = ? AND room = ? AND to_id = ?",
                (account, room, high),
            )
            if reopened.rowcount == 0:
                conn.execute(
                    "INSERT INTO memberships (account, room, from_id, to_id)"
                    " VALUES (?, ?, ?, NULL)",
                    (account, room, high),
                )
            return True

        return await self._write(job)

    async def leave_room(self, account: str, room: str) -> bool:
        """End the membership at the current highest message id. False if not a member."""

        def job(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT from_id FROM memberships WHERE account = ? AND room = ? AND to_id IS NULL",
                (account, room),
            ).fetchone()
            if row is None:
                return False
            high = _high_water(conn)
            if row[0] >= high:  # an empty interval: forget it
                conn.execute(
                    "DELETE FROM memberships WHERE account = ? AND room = ? AND from_id = ?",
                    (account, room, row[0]),
                )
            else:
                conn.execute(
                    "UPDATE memberships SET to_id = ?"
                    " WHERE account = ? AND room = ? AND from_id = ?",
                    (high, account, room, row[0]),
                )
            return True

        return await self._write(job)

    async def is_member(self, account: str, room: str) -> bool:
        """Whether ``account`` is a member of ``room`` now."""

        def read(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM memberships WHERE account = ? AND room = ? AND to_id IS NULL",
                (account, room),
            ).fetchone()
            return row is not None

        return await self._read(read)

    async def rooms_of(self, account: str) -> list[str]:
        """The rooms ``account`` is a member of, sorted."""

        def read(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT room FROM memberships WHERE account = ? AND to_id IS NULL ORDER BY room",
                (account,),
            ).fetchall()
            return [r[0] for r in rows]

        return await self._read(read)

    async def room_member_counts(self) -> dict[str, int]:
        """Every room with at least one account member, with that count."""

        def read(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT room, count(*) FROM memberships WHERE to_id IS NULL GROUP BY room"
            ).fetchall()
            return {room: int(n) for room, n in rows}

        return await self._read(read)

    # -- cursors --------------------------------------------------------------
    async def get_cursor(self, account: str, device: str) -> int | None:
        """The device's cursor, or None for a device the account never used."""

        def read(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT cursor FROM cursors WHERE account = ? AND device = ?", (account, device)
            ).fetchone()
            return None if row is None else int(row[0])

        return await self._read(read)

    async def max_cursor(self, account: str) -> int:
        """The highest cursor over the account's devices, 0 when there is none."""

        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT coalesce(max(cursor), 0) FROM cursors WHERE account = ?", (account,)
            ).fetchone()
            return int(row[0])

        return await self._read(read)

    async def advance_cursor(self, account: str, device: str, upto: int) -> int:
        """Set the cursor to max(cursor, upto) (creating it); return the new value."""

        def job(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "INSERT INTO cursors (account, device, cursor) VALUES (?, ?, ?)"
                " ON CONFLICT (account, device) DO UPDATE"
                " SET cursor = max(cursor, excluded.cursor)"
                " RETURNING cursor",
                (account, device, upto),
            ).fetchone()
            return int(row[0])

        return await self._write(job)

    async def advance_read(self, account: str, conversation: str, upto: int) -> int:
        """Move the read marker to max(marker, upto); return the new value."""

        def job(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "INSERT INTO read_markers (account, conversation, upto) VALUES (?, ?, ?)"
                " ON CONFLICT (account, conversation) DO UPDATE"
                " SET upto = max(upto, excluded.upto) RETURNING upto",
                (account, conversation, upto),
            ).fetchone()
            return int(row[0])

        return await self._write(job)

    async def read_markers(self, account: str) -> dict[str, int]:
        """Every read marker of ``account``, by conversation."""

        def read(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT conversation, upto FROM read_markers WHERE account = ?", (account,)
            ).fetchall()
            return {conversation: int(upto) for conversation, upto in rows}

        return await self._read(read)

    async def advance_read_at(
        self, account: str, conversation: str, upto: int, ts_ms: int
    ) -> tuple[int, int]:
        """Move the marker to max(marker, upto), its time to max(time, ts_ms) (ircmsg)."""

        def job(conn: sqlite3.Connection) -> tuple[int, int]:
            row = conn.execute(
                "INSERT INTO read_markers (account, conversation, upto, ts_ms) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (account, conversation) DO UPDATE"
                " SET upto = max(upto, excluded.upto),"
                " ts_ms = max(coalesce(ts_ms, 0), excluded.ts_ms) RETURNING upto, ts_ms",
                (account, conversation, upto, ts_ms),
            ).fetchone()
            return int(row[0]), int(row[1])

        return await self._write(job)

    async def read_marker(self, account: str, conversation: str) -> tuple[int, int | None]:
        """(marker, time given) of one conversation; (0, None) when there is none."""

        def read(conn: sqlite3.Connection) -> tuple[int, int | None]:
            row = conn.execute(
                "SELECT upto, ts_ms FROM read_markers WHERE account = ? AND conversation = ?",
                (account, conversation),
            ).fetchone()
            return (0, None) if row is None else (int(row[0]), row[1])

        return await self._read(read)

    async def set_receipts(self, account: str, on: bool) -> None:
        """Turn DM receipts on or off for ``account`` (a principal)."""

        def job(conn: sqlite3.Connection) -> None:
            key = account.removeprefix("a:")
            conn.execute("UPDATE accounts SET receipts = ? WHERE key = ?", (int(on), key))

        await self._write(job)

    async def live_nicks(self, keys: list[str]) -> dict[str, str]:
        """The nick of each of the accounts ``keys`` that exists and is not deleted, by key."""

        def read(conn: sqlite3.Connection) -> dict[str, str]:
            rows = conn.execute(
                "SELECT key, nick FROM accounts WHERE deleted = 0"
                " AND key IN (SELECT value FROM json_each(?))",
                (json.dumps(keys),),
            ).fetchall()
            return {str(key): str(nick) for key, nick in rows}

        return await self._read(read)

    async def receipts_on(self, accounts: list[str]) -> set[str]:
        """Those of ``accounts`` (principals) that have DM receipts on."""

        def read(conn: sqlite3.Connection) -> set[str]:
            keys = [a[2:] for a in accounts if a.startswith("a:")]
            rows = conn.execute(
                "SELECT key FROM accounts WHERE receipts = 1 AND deleted = 0"
                " AND key IN (SELECT value FROM json_each(?))",
                (json.dumps(keys),),
            ).fetchall()
            return {"a:" + key for (key,) in rows}

        return await self._read(read)

    async def dm_senders(self, account: str, after_id: int, upto_id: int) -> dict[str, int]:
        """The others who sent ``account`` DMs in ``(after_id, upto_id]``, with the highest id."""

        def read(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT sender, max(id) FROM messages INDEXED BY messages_recipient"
                " WHERE recipient = ? AND id > ? AND id <= ? AND sender <> ? AND kind IS NULL"
                " GROUP BY sender",
                (account, after_id, upto_id, account),
            ).fetchall()
            return {sender: int(top) for sender, top in rows}

        return await self._read(read)

    # -- stored DM receipts (issue 15) --------------------------------------------
    async def advance_receipt(
        self, sender: str, reader: str, *, delivered: int = 0, read: int = 0
    ) -> None:
        """Move what ``reader`` has of ``sender``'s DMs to max(stored, given)."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO receipt_state (sender, reader, delivered, read_upto)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (sender, reader) DO UPDATE"
                " SET delivered = max(delivered, excluded.delivered),"
                " read_upto = max(read_upto, excluded.read_upto)",
                (sender, reader, delivered, read),
            )

        await self._write(job)

    async def stored_receipts(
        self, sender: str, sender_key: str, reader: str | None = None
    ) -> list[tuple[str, int, int]]:
        """``(reader's nick, delivered, read)`` of ``sender``'s DMs (see `Store`)."""

        def read(conn: sqlite3.Connection) -> list[tuple[str, int, int]]:
            rows = conn.execute(
                "SELECT a.nick, r.delivered, r.read_upto FROM receipt_state AS r"
                " JOIN accounts AS a ON a.key = substr(r.reader, 3) AND r.reader = 'a:' || a.key"
                " WHERE r.sender = ? AND (? IS NULL OR r.reader = ?)"
                " AND a.receipts = 1 AND a.deleted = 0 AND NOT EXISTS"
                " (SELECT 1 FROM blocks AS b WHERE b.blocker = r.reader AND b.blocked = ?)"
                " ORDER BY a.nick",
                (sender, reader, reader, sender_key),
            ).fetchall()
            return [(str(nick), int(d), int(r)) for nick, d, r in rows]

        return await self._read(read)

    def wal_pending(self) -> int | None:
        """WAL frames not copied into the database yet; None without a checkpoint thread."""
        return None if self._wal is None else self._wal.pending()

    async def probe(self) -> None:
        """Commit an empty write: the writer takes the write lock (BEGIN IMMEDIATE) and commits."""

        def job(conn: sqlite3.Connection) -> None:
            return None

        await self._write(job)

    async def stats(self) -> dict[str, int]:
        """Counts for ``chinwag admin stats``.

        Keys: ``accounts`` (live), ``deleted_accounts``, ``messages``, ``dms``,
        ``rooms`` (rooms with messages or account members), ``devices``.
        """

        return await self._read(SqliteStore._count_rows)

    # -- invites -----------------------------------------------------------
    async def create_invite(
        self, token_hash: str, *, uses: int, expires_ms: int | None, created_ms: int
    ) -> None:
        """Store an invite (see ``Store.create_invite``)."""
        if uses < 1:
            raise ValueError("an invite needs at least one use")

        def job(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO invites (token_hash, uses_left, expires_ms, created_ms)"
                    " VALUES (?, ?, ?, ?)",
                    (token_hash, uses, expires_ms, created_ms),
                )
            except sqlite3.IntegrityError:
                raise ValueError("that invite exists already") from None

        await self._write(job)

    async def use_invite(self, token_hash: str, now_ms: int) -> bool:
        """Take one use, in one UPDATE: two registrations never share the last one."""

        def job(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE invites SET uses_left = uses_left - 1"
                " WHERE token_hash = ? AND uses_left > 0"
                " AND (expires_ms IS NULL OR expires_ms > ?)",
                (token_hash, now_ms),
            )
            return cursor.rowcount > 0

        return await self._write(job)

    async def refund_invite(self, token_hash: str) -> None:
        """Give one use back."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE invites SET uses_left = uses_left + 1 WHERE token_hash = ?", (token_hash,)
            )

        await self._write(job)

    # -- blocks (issue 16) -------------------------------------------------------
    @staticmethod
    def _blocks(conn: sqlite3.Connection, blocker: str) -> list[tuple[str, str]]:
        rows = conn.execute(
            "SELECT blocked, nick FROM blocks WHERE blocker = ? ORDER BY created_ms, blocked",
            (blocker,),
        ).fetchall()
        return [(str(key), str(nick)) for key, nick in rows]

    async def add_block(
        self, blocker: str, key: str, nick: str, *, limit: int, created_ms: int
    ) -> list[tuple[str, str]] | None:
        """Block ``key`` for ``blocker``; None when ``limit`` others are held already."""

        def job(conn: sqlite3.Connection) -> list[tuple[str, str]] | None:
            there = conn.execute(
                "SELECT 1 FROM blocks WHERE blocker = ? AND blocked = ?", (blocker, key)
            ).fetchone()
            if there is None:
                (held,) = conn.execute(
                    "SELECT count(*) FROM blocks WHERE blocker = ?", (blocker,)
                ).fetchone()
                if held >= limit:
                    return None
                conn.execute(
                    "INSERT INTO blocks (blocker, blocked, nick, created_ms) VALUES (?, ?, ?, ?)",
                    (blocker, key, nick, created_ms),
                )
            return self._blocks(conn, blocker)

        return await self._write(job)

    async def remove_block(self, blocker: str, key: str) -> list[tuple[str, str]]:
        """Lift ``blocker``'s block of ``key``; every block left."""

        def job(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            conn.execute("DELETE FROM blocks WHERE blocker = ? AND blocked = ?", (blocker, key))
            return self._blocks(conn, blocker)

        return await self._write(job)

    async def blocks_of(self, blocker: str) -> list[tuple[str, str]]:
        """Every block of ``blocker``, oldest first."""
        return await self._read(lambda conn: self._blocks(conn, blocker))

    # -- moderation (issue 16) -------------------------------------------------
    async def load_rooms(self) -> list[RoomSettings]:
        """Every room's row, by name."""

        def read(conn: sqlite3.Connection) -> list[RoomSettings]:
            rows = conn.execute(
                "SELECT name, owner, topic, private, announce, created_ms, retention_days,"
                " room_key, member_limit, topic_locked, secret, guest, topic_by, topic_ms"
                " FROM rooms ORDER BY name"
            ).fetchall()
            return [_room_row(r) for r in rows]

        return await self._read(read)

    async def ensure_room(self, row: RoomSettings) -> RoomSettings:
        """Store ``row`` unless the room has one; the row stored now."""

        def job(conn: sqlite3.Connection) -> RoomSettings:
            conn.execute(
                "INSERT INTO rooms (name, owner, topic, private, announce, created_ms,"
                " topic_locked, secret, guest, topic_by, topic_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (
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
                ),
            )
            found = conn.execute(
                "SELECT name, owner, topic, private, announce, created_ms, retention_days,"
                " room_key, member_limit, topic_locked, secret, guest, topic_by, topic_ms"
                " FROM rooms WHERE name = ?",
                (row.name,),
            ).fetchone()
            return _room_row(found)

        return await self._write(job)

    async def update_room(self, row: RoomSettings, audit: AuditEntry) -> None:
        """Replace the room's settings, with its audit entry, in one transaction."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE rooms SET owner = ?, topic = ?, private = ?, announce = ?,"
                " retention_days = ?, room_key = ?, member_limit = ?, topic_locked = ?,"
                " secret = ?, guest = ?, topic_by = ?, topic_ms = ? WHERE name = ?",
                (
                    row.owner,
                    row.topic,
                    row.private,
                    row.announce,
                    row.retention_days,
                    row.key,
                    row.limit,
                    row.topic_locked,
                    row.secret,
                    row.guest,
                    row.topic_by,
                    row.topic_ms,
                    row.name,
                ),
            )
            _insert_audit(conn, audit)

        await self._write(job)

    async def load_standings(self) -> list[Standing]:
        """Every standing, expired ones included."""

        def read(conn: sqlite3.Connection) -> list[Standing]:
            rows = conn.execute(
                "SELECT scope, principal, kind, value, until_ms, by_nick, reason, ts_ms, guest"
                " FROM standings ORDER BY scope, principal, kind"
            ).fetchall()
            return [Standing(*r) for r in rows]

        return await self._read(read)

    async def put_standing(self, standing: Standing, audit: AuditEntry | None) -> None:
        """Set the standing (replacing one of the same key), with its audit entry."""
        s = standing

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO standings"
                " (scope, principal, kind, value, until_ms, by_nick, reason, ts_ms, guest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, principal, kind) DO UPDATE"
                " SET value = excluded.value, until_ms = excluded.until_ms,"
                " by_nick = excluded.by_nick, reason = excluded.reason, ts_ms = excluded.ts_ms,"
                " guest = excluded.guest",
                (
                    *(s.scope, s.principal, s.kind, s.value, s.until_ms),
                    *(s.by, s.reason, s.ts_ms, s.guest),
                ),
            )
            if audit is not None:
                _insert_audit(conn, audit)

        await self._write(job)

    async def drop_standing(
        self, scope: str, principal: str, kind: str, audit: AuditEntry | None
    ) -> bool:
        """Lift the standing, with its audit entry; False if there was none."""

        def job(conn: sqlite3.Connection) -> bool:
            gone = conn.execute(
                "DELETE FROM standings WHERE scope = ? AND principal = ? AND kind = ?",
                (scope, principal, kind),
            ).rowcount
            if gone and audit is not None:
                _insert_audit(conn, audit)
            return gone > 0

        return await self._write(job)

    async def add_audit(self, entry: AuditEntry) -> None:
        """Record an action that changes no standing."""

        def job(conn: sqlite3.Connection) -> None:
            _insert_audit(conn, entry)

        await self._write(job)

    async def audit_log(
        self, *, room: str | None, since_ms: int | None, limit: int
    ) -> list[AuditEntry]:
        """The oldest ``limit`` entries at or after ``since_ms`` (of ``room``), oldest first."""

        def read(conn: sqlite3.Connection) -> list[AuditEntry]:
            rows = conn.execute(
                "SELECT ts_ms, actor, action, room, target, reason, detail FROM audit"
                " WHERE (?1 IS NULL OR room = ?1) AND ts_ms >= ?2 ORDER BY id LIMIT ?3",
                (room, since_ms or 0, limit),
            ).fetchall()
            return [AuditEntry(*r) for r in rows]

        return await self._read(read)

    # -- backups, restores and exports (issue 17) ------------------------------
    @staticmethod
    def _open_read_only(path: Path) -> sqlite3.Connection:
        """A connection that cannot change ``path`` (nor create it)."""
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)

    @staticmethod
    def _count_rows(conn: sqlite3.Connection) -> dict[str, int]:
        """The counts of `stats` (and of ``chinwag admin backup`` and ``restore``)."""
        row = conn.execute(
            "SELECT"
            " (SELECT count(*) FROM accounts WHERE deleted = 0),"
            " (SELECT count(*) FROM accounts WHERE deleted = 1),"
            " (SELECT count(*) FROM messages),"
            " (SELECT count(*) FROM messages WHERE recipient IS NOT NULL),"
            " (SELECT count(*) FROM ("
            "    SELECT room FROM messages WHERE room IS NOT NULL GROUP BY room"
            "    UNION SELECT room FROM memberships WHERE to_id IS NULL)),"
            " (SELECT count(*) FROM cursors)"
        ).fetchone()
        keys = ("accounts", "deleted_accounts", "messages", "dms", "rooms", "devices")
        return {k: int(v) for k, v in zip(keys, row, strict=True)}

    @staticmethod
    def copy_database(source: Path, dest: Path) -> None:
        """Copy the database ``source`` into ``dest`` (an empty file) as one consistent snapshot.

        ``source`` is opened read-only and may be in use: the copy runs in one
        read transaction, so it holds every commit made before it began and
        none after, while a server keeps writing (in WAL mode readers never
        block the writer). The copy is left in rollback-journal mode: one
        self-contained file.

        Raises:
            StoreError: ``source`` cannot be read as a database (missing,
                not SQLite, damaged) or ``dest`` cannot be written.
        """
        try:
            src = SqliteStore._open_read_only(source)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {source}: {exc}") from exc
        try:
            dst = sqlite3.connect(dest, isolation_level=None)
            try:
                src.execute("BEGIN")
                src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot
                src.backup(dst)
                dst.execute("PRAGMA journal_mode = DELETE")
            finally:
                dst.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot copy {source}: {exc}") from exc
        finally:
            src.close()

    @staticmethod
    def check_database(path: Path) -> tuple[int, list[str], dict[str, int]]:
        """(schema version, problems, counts) of the database file ``path``, read-only.

        Problems: what ``PRAGMA integrity_check`` finds, a schema version this
        chinwag does not know, or tables a chinwag database has that are
        missing; none for a sound database. Counts: as `stats` (empty when
        there are problems).

        Raises:
            StoreError: ``path`` cannot be read as a database at all.
        """
        counts: dict[str, int] = {}
        try:
            conn = SqliteStore._open_read_only(path)
            try:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                problems = [
                    str(row[0])
                    for row in conn.execute("PRAGMA integrity_check(20)")
                    if row[0] != "ok"
                ]
                tables = {
                    str(row[0])
                    for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                }
                known = len(read_migrations("migrations"))
                if version < 1:
                    problems.append("it holds no chinwag schema (schema version 0)")
                elif version > known:
                    problems.append(
                        f"its schema version {version} is newer than this chinwag knows"
                        f" ({known}); upgrade chinwag first"
                    )
                missing = sorted({"accounts", "messages", "memberships", "cursors"} - tables)
                if version >= 1 and missing:
                    problems.append(f"tables missing: {', '.join(missing)}")
                if not problems:
                    counts = SqliteStore._count_rows(conn)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"{path} is not a readable SQLite database: {exc}") from exc
        return version, problems, counts

    @staticmethod
    def schema_versions(path: Path) -> tuple[int, int]:
        """(the schema version of the database ``path``, the newest this chinwag knows).

        Raises:
            StoreError: ``path`` cannot be read as a database.
        """
        try:
            conn = SqliteStore._open_read_only(path)
            try:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        return version, len(read_migrations("migrations"))

    @staticmethod
    def carry_high_water(source: Path, dest: Path) -> int:
        """Make ``dest`` never give out a message id ``source`` gave out; that id.

        For a restore: the database being replaced may hold messages newer
        than the backup; their ids must not come back for other messages.

        Raises:
            StoreError: either file cannot be read or ``dest`` written.
        """
        try:
            # Not read-only: closing a connection that may write removes the
            # -wal and -shm files a WAL database gets when opened.
            old = sqlite3.connect(source, isolation_level=None)
            try:
                old.execute("PRAGMA query_only = ON")
                high = _high_water(old)
            finally:
                old.close()
            new = sqlite3.connect(dest, isolation_level=None)
            try:
                new.execute("BEGIN IMMEDIATE")
                if _high_water(new) < high:
                    new.execute("DELETE FROM sqlite_sequence WHERE name = 'messages'")
                    new.execute(
                        "INSERT INTO sqlite_sequence (name, seq) VALUES ('messages', ?)", (high,)
                    )
                new.execute("COMMIT")
            finally:
                new.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot carry the message ids over: {exc}") from exc
        return high

    async def export_account(self, key: str) -> dict[str, Any] | None:
        """What the store holds about the account ``key`` but its messages; None if none.

        Keys: ``account`` (its row without the password hash), ``devices``
        (each device's offline cursor), ``memberships`` (every interval:
        ``from_id``, ``to_id`` or None while a member) and ``upto_id``, the
        highest message id when this was read (export messages up to it).
        """
        principal = "a:" + key

        def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            account = _account(row)
            devices = conn.execute(
                "SELECT device, cursor FROM cursors WHERE account = ? ORDER BY device",
                (principal,),
            ).fetchall()
            memberships = conn.execute(
                "SELECT room, from_id, to_id FROM memberships WHERE account = ?"
                " ORDER BY room, from_id",
                (principal,),
            ).fetchall()
            return account_export(account, devices, memberships, _high_water(conn))

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
        """One page, by id, of the messages in ``after < id <= upto`` of one account or one room.

        ``account`` (a principal): the messages it sent (to rooms and in DMs)
        and the DMs it received. ``room``: the room's messages. Exactly one of
        the two. Messages only (edits are in their latest body, deletions in
        ``deleted``), never event rows.
        """
        if (account is None) == (room is None):
            raise ValueError("export_messages takes an account or a room")

        def read(conn: sqlite3.Connection) -> list[StoredMessage]:
            if room is not None:
                rows = conn.execute(
                    f"SELECT {_COLS} FROM messages INDEXED BY messages_room"
                    " WHERE room = ? AND id > ? AND id <= ? AND kind IS NULL ORDER BY id LIMIT ?",
                    (room, after, upto, limit),
                ).fetchall()
            else:
                # No index holds an account's room messages: a walk of the
                # primary key, once over the whole export (pages go on by id).
                rows = conn.execute(
                    f"SELECT {_COLS} FROM messages"
                    " WHERE id > ? AND id <= ? AND (sender = ? OR recipient = ?) AND kind IS NULL"
                    " ORDER BY id LIMIT ?",
                    (after, upto, account, account, limit),
                ).fetchall()
            return [_message(r) for r in rows]

        return await self._read(read)

    # -- reactions per person (audit4) --
    async def reactions_on(self, message_id: int, who: str) -> tuple[list[str], int]:
        """The emojis ``who`` has on message ``message_id`` now, and its reactions' count."""

        def read(conn: sqlite3.Connection) -> tuple[list[str], int]:
            rows = conn.execute(
                "SELECT emoji FROM reactions WHERE message_id = ? AND who = ?", (message_id, who)
            ).fetchall()
            count = conn.execute(
                "SELECT count(*) FROM reactions WHERE message_id = ?", (message_id,)
            ).fetchone()[0]
            return [str(r[0]) for r in rows], int(count)

        return await self._read(read)

    # -- empty rooms forgotten (rooms4) --
    async def forget_room(self, room: str) -> bool:
        """Delete an empty room's row and ended memberships (see `Store.forget_room`)."""

        def job(conn: sqlite3.Connection) -> bool:
            gone = conn.execute(
                "DELETE FROM rooms WHERE name = ? AND topic = '' AND NOT private"
                " AND NOT announce AND retention_days IS NULL AND topic_locked AND NOT secret"
                " AND room_key IS NULL AND member_limit IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM memberships WHERE room = ? AND to_id IS NULL)"
                " AND NOT EXISTS (SELECT 1 FROM messages WHERE room = ?)"
                " AND NOT EXISTS (SELECT 1 FROM standings WHERE scope = ?)",
                (room, room, room, room),
            ).rowcount
            if gone:
                conn.execute("DELETE FROM memberships WHERE room = ?", (room,))
            return bool(gone)

        return await self._write(job)


if TYPE_CHECKING:

    def _implements_store(store: SqliteStore) -> Store:  # mypy checks the Protocol
        return store
