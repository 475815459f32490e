"""A bot's own storage: one SQLite file, owned by one worker thread.

Three tables:

- ``kv``: the bot's data, JSON values under a namespace and a key. The whole
  table is read into memory at start (:class:`Store`), so a handler reads
  without waiting; bots keep small data (games, scores), not archives.
- ``outbox``: replies decided but not yet acknowledged by the server. They are
  written in the same transaction as the data change that caused them, so a
  bot killed between deciding and sending still sends them after a restart.
- ``meta``: the id of the last message handled, so that a message delivered
  again after a crash (delivery is at least once) is not handled twice.

Every call to SQLite runs in the worker thread; the event loop only waits for
it. Writes are short: one transaction per handled message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

__all__ = ["BotDB", "OutboxRow", "Store", "dumps"]

log = logging.getLogger("chinwag.bot")

T = TypeVar("T")
Kind = Literal["say", "dm"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    body TEXT NOT NULL,
    tag TEXT,
    cid TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def dumps(value: Any) -> str:
    """Strict, compact JSON (no NaN): what the store keeps.

    Raises:
        TypeError: the value is not JSON data.
        ValueError: it holds NaN or an infinity.
    """
    return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A reply in the database outbox.

    Attributes:
        seq: its row number (increasing in the order replies were decided).
        kind: ``dm`` or ``say``.
        target: the nick or room.
        body: the text.
        tag: the handler's label, given back if the server refuses it for good.
        cid: the client id it was last sent with, once known.
    """

    seq: int
    kind: Kind
    target: str
    body: str
    tag: str | None = None
    cid: str | None = None


Change = tuple[str, str, str | None]  # (ns, key, JSON text or None to delete)


class BotDB:
    """The SQLite file, used only from its own thread. Open with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chinwag-bot-db")
        self._db: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> BotDB:
        """Open (or create) the file and its tables."""
        db = cls(path)
        try:
            await db._call(db._open)
        except BaseException:
            db._pool.shutdown(wait=False)
            raise
        return db

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        self._db = db

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def _submit(self, fn: Callable[[], object], what: str) -> None:
        """Run ``fn`` in the worker without waiting; failures are logged."""
        if self._db is None:
            return

        def done(fut: Future[object]) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                log.error("bot database: %s failed: %r", what, fut.exception())

        self._pool.submit(fn).add_done_callback(done)

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the bot database is closed")
        return self._db

    async def load(self) -> tuple[dict[str, dict[str, str]], list[OutboxRow], int]:
        """Everything at start: the data, the unsent replies, the last handled id."""

        def run() -> tuple[dict[str, dict[str, str]], list[OutboxRow], int]:
            data: dict[str, dict[str, str]] = {}
            for ns, key, value in self._conn.execute("SELECT ns, key, value FROM kv"):
                data.setdefault(ns, {})[key] = value
            rows = [
                OutboxRow(seq, kind, target, body, tag, cid)
                for seq, kind, target, body, tag, cid in self._conn.execute(
                    "SELECT seq, kind, target, body, tag, cid FROM outbox ORDER BY seq"
                )
            ]
            found = self._conn.execute("SELECT value FROM meta WHERE key = 'last_id'").fetchone()
            return data, rows, int(found[0]) if found else 0

        return await self._call(run)

    async def commit(
        self,
        changes: Iterable[Change],
        outgoing: Iterable[tuple[Kind, str, str, str | None]],
        last_id: int | None,
    ) -> list[OutboxRow]:
        """Write one unit of work in one transaction; return the new outbox rows.

        Args:
            changes: data to set (or delete, with None).
            outgoing: replies as (kind, target, body, tag).
            last_id: the handled message's id, if the unit handled one.
        """
        changes, outgoing = list(changes), list(outgoing)

        def run() -> list[OutboxRow]:
            db = self._conn
            rows = []
            db.execute("BEGIN IMMEDIATE")
            try:
                for ns, key, value in changes:
                    if value is None:
                        db.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))
                    else:
                        db.execute(
                            "INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)",
                            (ns, key, value),
                        )
                for kind, target, body, tag in outgoing:
                    cur = db.execute(
                        "INSERT INTO outbox (kind, target, body, tag) VALUES (?, ?, ?, ?)",
                        (kind, target, body, tag),
                    )
                    assert cur.lastrowid is not None
                    rows.append(OutboxRow(cur.lastrowid, kind, target, body, tag))
                if last_id is not None:
                    db.execute(
                        "INSERT INTO meta (key, value) VALUES ('last_id', ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = "
                        "max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                        (str(last_id),),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return rows

        if not changes and not outgoing and last_id is None:
            return []
        return await self._call(run)

    def set_cid_nowait(self, seq: int, cid: str) -> None:
        """Remember the client id a reply was sent with (to spot it after a crash)."""
        self._submit(
            lambda: self._conn.execute("UPDATE outbox SET cid = ? WHERE seq = ?", (cid, seq)),
            "set_cid",
        )

    def done_nowait(self, seq: int) -> None:
        """Forget a reply: the server stored it (or refused it for good)."""
        self._submit(lambda: self._conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,)), "done")

    async def flush(self) -> None:
        """Wait until every write queued so far is done."""
        await self._call(lambda: None)

    async def close(self) -> None:
        """Finish queued writes, close the file and the thread. Idempotent."""
        if self._db is None:
            return

        def run() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        try:
            await self._call(run)
        finally:
            self._pool.shutdown(wait=True)


class Store:
    """The bot's data: JSON values by namespace and key, kept in memory, saved by unit.

    Handlers read and write it freely; the framework saves what changed at the
    end of each handled message, in the same transaction as the replies. If a
    handler raises, its changes are undone. Values are copied in and out (as
    JSON), so changing a value you got does nothing until you :meth:`put` it.

    Args:
        data: the initial contents, as loaded by :meth:`BotDB.load`.
    """

    def __init__(self, data: dict[str, dict[str, str]] | None = None) -> None:
        self._data: dict[str, dict[str, str]] = data if data is not None else {}
        self._changed: dict[tuple[str, str], str | None] = {}
        self._undo: dict[tuple[str, str], str | None] = {}

    def get(self, ns: str, key: str, default: Any = None) -> Any:
        """The value under ``ns``/``key``, or ``default``."""
        text = self._data.get(ns, {}).get(key)
        return default if text is None else json.loads(text)

    def __contains__(self, item: tuple[str, str]) -> bool:
        ns, key = item
        return key in self._data.get(ns, {})

    def put(self, ns: str, key: str, value: Any) -> None:
        """Set ``ns``/``key`` to ``value`` (JSON data).

        Raises:
            TypeError: ``value`` is not JSON data.
            ValueError: it holds NaN or an infinity.
        """
        self._set(ns, key, dumps(value))

    def delete(self, ns: str, key: str) -> None:
        """Remove ``ns``/``key`` (nothing happens if it is not there)."""
        if key in self._data.get(ns, {}):
            self._set(ns, key, None)

    def keys(self, ns: str) -> list[str]:
        """The keys of a namespace, sorted."""
        return sorted(self._data.get(ns, {}))

    def items(self, ns: str) -> list[tuple[str, Any]]:
        """The (key, value) pairs of a namespace, sorted by key."""
        space = self._data.get(ns, {})
        return [(k, json.loads(space[k])) for k in sorted(space)]

    def _set(self, ns: str, key: str, text: str | None) -> None:
        space = self._data.setdefault(ns, {})
        if (ns, key) not in self._undo:
            self._undo[(ns, key)] = space.get(key)
        if text is None:
            space.pop(key, None)
        else:
            space[key] = text
        self._changed[(ns, key)] = text

    def changes(self) -> list[Change]:
        """What changed since the last :meth:`accept` or :meth:`rollback`."""
        return [(ns, key, text) for (ns, key), text in self._changed.items()]

    def accept(self) -> None:
        """The changes are saved: start afresh."""
        self._changed.clear()
        self._undo.clear()

    def rollback(self) -> None:
        """Undo every change since the last :meth:`accept` or :meth:`rollback`."""
        for (ns, key), text in self._undo.items():
            space = self._data.setdefault(ns, {})
            if text is None:
                space.pop(key, None)
            else:
                space[key] = text
        self._changed.clear()
        self._undo.clear()
