"""``python -m bench --only walpages``: WAL pages a commit of messages writes, by b-tree.

A commit's time on the writer is mostly its WAL's sync, and what a sync
writes is the pages the commit changed (docs/performance.md, issue 18). Pages
do not depend on how loaded the machine is, so this figure is exact where a
latency is noise: the same messages, committed in batches of 1, 2, 5 and 10
(what the group commit makes of 200 and 1,000 msg/s), counted three ways:

* ``011``: the schema before migration 012 (the ``dedupe`` table with its two
  indexes), its rows written by the statements the store used then, replayed
  here on a plain ``sqlite3`` connection configured as the store's;
* ``012``: the same replay on the current schema (the cid on the message row,
  one partial index; the search index without row sizes): the two replays
  differ only by the schema;
* ``012 store``: chinwag's own `SqliteStore.append`, each batch queued in one
  event-loop turn (one commit), on the current schema: the replay's figure is
  the real one.

Each database first holds ``--walpages-seed`` messages (default 50,000: the
b-trees have their depth), a realistic mix: 100 accounts, 80 % lobby messages
and 20 % DMs between random pairs, every one with a client's random ``cid``
(``c-`` and 16 hex digits), bodies of ~60 characters, the search index on.
No checkpoint runs while counting, so every commit's frames stay in the WAL:
each frame's page number (its header) is mapped to its b-tree with SQLite's
``dbstat`` at the end of each batch size ("(free now)": pages free by then,
mostly search-index segments that FTS5 merged away, and the free list's
own pages). Prints pages per commit and per message, and the b-trees that
write the most.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import sqlite3
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chinwag.storage.base import NewMessage, read_migrations
from chinwag.storage.sqlite import SqliteStore, WalIndex

BATCHES = (1, 2, 5, 10)
SEED = 50_000
QUICK_SEED = 5_000
MESSAGES = 1_000  # counted per batch size
QUICK_MESSAGES = 200
SENDERS = 100
DM_SHARE = 0.2
TTL_MS = 86_400_000
OLD_VERSION = 11  # the schema before migration 012
WAL_HEADER = 32
FRAME_HEADER = 24
WORDS = (
    *("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "hello", "world"),
    *("chat", "lunch", "coffee", "meeting", "today", "tomorrow", "yes", "no", "maybe"),
    *("great", "idea", "see", "you", "soon", "thanks"),
)

# The old store's append (main before migration 012), for the 011 replay.
OLD_SEEN = (
    "SELECT m.id, d.ts_ms FROM dedupe AS d JOIN messages AS m ON m.id = d.message_id"
    " WHERE d.dedupe_key = ? AND d.cid = ?"
)
OLD_INSERT = (
    "INSERT INTO messages (ts_ms, sender, sender_nick, room, recipient, recipient_nick,"
    " body, cid, kind, target, reply_to, mentions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL,"
    " NULL, NULL, '')"
)
OLD_DEDUPE = (
    "INSERT INTO dedupe (dedupe_key, cid, message_id, ts_ms) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (dedupe_key, cid) DO UPDATE"
    " SET message_id = excluded.message_id, ts_ms = excluded.ts_ms"
)
# The current store's append (sqlite.py), for the 012 replay.
NEW_SEEN = (
    "SELECT id, ts_ms FROM messages INDEXED BY messages_dedupe"
    " WHERE dedupe_key = ? AND cid = ? ORDER BY id DESC LIMIT 1"
)
NEW_INSERT = (
    "INSERT INTO messages (ts_ms, sender, sender_nick, room, recipient, recipient_nick,"
    " body, cid, dedupe_key, kind, target, reply_to, mentions) VALUES (?, ?, ?, ?, ?, ?, ?,"
    " ?, ?, NULL, NULL, NULL, '')"
)


def messages(rng: random.Random, count: int, t0_ms: int) -> Iterator[NewMessage]:
    """``count`` messages of the mix, one millisecond apart from ``t0_ms``."""
    for i in range(count):
        s = rng.randrange(SENDERS)
        body = " ".join(rng.choice(WORDS) for _ in range(8)) + " " + "x" * 16
        cid = f"c-{rng.getrandbits(64):016x}"
        dm = rng.random() < DM_SHARE
        r = (s + 1 + rng.randrange(SENDERS - 1)) % SENDERS
        yield NewMessage(
            ts_ms=t0_ms + i,
            sender=f"a:u{s}",
            sender_nick=f"u{s}",
            dedupe_key=f"u{s}",
            room=None if dm else "lobby",
            recipient=f"a:u{r}" if dm else None,
            recipient_nick=f"u{r}" if dm else None,
            body=body,
            cid=cid,
        )


def _row(m: NewMessage) -> tuple[Any, ...]:
    return (m.ts_ms, m.sender, m.sender_nick, m.room, m.recipient, m.recipient_nick, m.body)


def old_append(conn: sqlite3.Connection, m: NewMessage) -> None:
    seen = conn.execute(OLD_SEEN, (m.dedupe_key, m.cid)).fetchone()
    if seen is not None and m.ts_ms - seen[1] < TTL_MS:
        return
    new_id = conn.execute(OLD_INSERT, (*_row(m), m.cid)).lastrowid
    conn.execute(OLD_DEDUPE, (m.dedupe_key, m.cid, new_id, m.ts_ms))


def new_append(conn: sqlite3.Connection, m: NewMessage) -> None:
    seen = conn.execute(NEW_SEEN, (m.dedupe_key, m.cid)).fetchone()
    if seen is not None and m.ts_ms - seen[1] < TTL_MS:
        return
    conn.execute(NEW_INSERT, (*_row(m), m.cid, m.dedupe_key))


def open_replay(db: Path, version: int) -> sqlite3.Connection:
    """A connection as the store's writer (WAL, FULL, secure_delete), at schema ``version``."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # the counts need every frame in the WAL
    for v, _, sql in read_migrations("migrations")[:version]:
        conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\n;PRAGMA user_version = {v};\nCOMMIT;")
    return conn


class WalFrames:
    """The frames of a database's WAL: how many, and which pages they hold."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.wal = db.with_name(db.name + "-wal")
        conn = sqlite3.connect(db)
        try:
            self.page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        finally:
            conn.close()

    def pages(self, first: int) -> list[int]:
        """The page numbers of the frames from index ``first`` on."""
        data = self.wal.read_bytes()
        size = FRAME_HEADER + self.page_size
        count = max(0, (len(data) - WAL_HEADER) // size)
        return [
            struct.unpack_from(">I", data, WAL_HEADER + i * size)[0] for i in range(first, count)
        ]

    def owners(self) -> dict[int, str]:
        """Page number -> the table or index it belongs to (SQLite's dbstat)."""
        conn = sqlite3.connect(self.db)
        try:
            return {int(p): str(n) for n, p in conn.execute("SELECT name, pageno FROM dbstat")}
        finally:
            conn.close()


def tally(frames: WalFrames, first: int, commits: int, count: int) -> dict[str, Any]:
    """Pages per commit and per message of the frames from ``first`` on, and by b-tree."""
    pages = frames.pages(first)
    owners = frames.owners()
    by = collections.Counter(owners.get(p, "(free now)") for p in pages)
    return {
        "commits": commits,
        "messages": count,
        "pages_per_commit": round(len(pages) / commits, 2),
        "pages_per_message": round(len(pages) / count, 2),
        "by_btree": {name: round(n / commits, 2) for name, n in by.most_common()},
    }


def replay(
    workdir: Path, version: int, append: Callable[[sqlite3.Connection, NewMessage], None], seed: int
) -> dict[int, dict[str, Any]]:
    """The replay of schema ``version``: {batch size: its tally}."""
    db = workdir / f"replay-{version}.db"
    conn = open_replay(db, version)
    try:
        rng = random.Random(18)
        conn.execute("BEGIN IMMEDIATE")
        for m in messages(rng, seed, 1_700_000_000_000):
            append(conn, m)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        frames = WalFrames(db)
        out: dict[int, dict[str, Any]] = {}
        for batch in BATCHES:
            todo = list(messages(rng, _count(seed), 1_700_000_000_000 + seed + batch * 10**6))
            commits = 0
            for i in range(0, len(todo), batch):
                conn.execute("BEGIN IMMEDIATE")
                for m in todo[i : i + batch]:
                    append(conn, m)
                conn.execute("COMMIT")
                commits += 1
            out[batch] = tally(frames, 0, commits, len(todo))
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return out
    finally:
        conn.close()


async def through_store(workdir: Path, seed: int) -> dict[int, dict[str, Any]]:
    """chinwag's own appends, each batch one commit, no checkpoint while counting."""
    db = workdir / "store.db"
    never = 2**50  # no checkpoint: not by the thread, not by the writer, not by SQLite
    store = await SqliteStore.open(
        db, checkpoint_bytes=never, checkpoint_step=never, checkpoint_idle=1e9
    )
    wal = WalIndex(db.with_name(db.name + "-shm"))
    try:
        rng = random.Random(18)
        pending = [
            store.append(m, cid_ttl_ms=TTL_MS) for m in messages(rng, seed, 1_700_000_000_000)
        ]
        await asyncio.gather(*pending)
        frames = WalFrames(db)
        out: dict[int, dict[str, Any]] = {}
        for batch in BATCHES:
            first = wal.frames()
            todo = list(messages(rng, _count(seed), 1_700_000_000_000 + seed + batch * 10**6))
            commits = 0
            for i in range(0, len(todo), batch):
                # Queued in one loop turn: one hand-over, one commit (commit_delay 0).
                results = await asyncio.gather(
                    *(store.append(m, cid_ttl_ms=TTL_MS) for m in todo[i : i + batch])
                )
                assert not any(r.duplicate for r in results)
                commits += 1
            out[batch] = tally(frames, first, commits, len(todo))
        return out
    finally:
        await store.close()
        wal.close()


def _count(seed: int) -> int:
    return QUICK_MESSAGES if seed <= QUICK_SEED else MESSAGES


def measure(seed: int) -> dict[str, dict[int, dict[str, Any]]]:
    with tempfile.TemporaryDirectory(prefix="bench-walpages-") as tmp:
        workdir = Path(tmp)
        print(f"walpages: {seed:,} messages seeded per database, then batches of"
              f" {', '.join(map(str, BATCHES))}", file=sys.stderr)  # fmt: skip
        result = {"011": replay(workdir, OLD_VERSION, old_append, seed)}
        print("walpages: 011 replay done", file=sys.stderr)
        result["012"] = replay(workdir, len(read_migrations("migrations")), new_append, seed)
        print("walpages: 012 replay done", file=sys.stderr)
        result["012 store"] = asyncio.run(through_store(workdir, seed))
        print("walpages: 012 store done", file=sys.stderr)
        return result


def render(result: dict[str, dict[int, dict[str, Any]]]) -> str:
    lines = [
        "WAL pages per commit (per message), by group-commit batch size",
        f"{'batch':>5} | {'011 (dedupe table)':>19} | {'012 (cid on the row)':>20} |"
        f" {'012 store':>13} | cut",
    ]
    for batch in BATCHES:
        old, new, real = (result[k][batch] for k in ("011", "012", "012 store"))
        cut = 1 - new["pages_per_commit"] / old["pages_per_commit"]

        def cell(t: dict[str, Any], width: int) -> str:
            text = f"{t['pages_per_commit']:.2f} ({t['pages_per_message']:.2f})"
            return f"{text:>{width}}"

        lines.append(
            f"{batch:>5} | {cell(old, 19)} | {cell(new, 20)} | {cell(real, 13)} | {cut:.0%}"
        )
    for key in ("011", "012"):
        for batch in (1, 10):
            top = result[key][batch]["by_btree"]
            parts = ", ".join(f"{n} {v:.2f}" for n, v in list(top.items())[:8])
            lines.append(f"{key}, batch {batch}, pages per commit by b-tree: {parts}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """``--only walpages``: the table (JSON with ``--json``); the exit status."""
    seed = args.walpages_seed or (QUICK_SEED if args.quick else SEED)
    result = measure(seed)
    text = render(result)
    report = {
        "ok": True,
        "error": "",
        "seed": seed,
        "walpages": {k: {str(b): t for b, t in v.items()} for k, v in result.items()},
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(text)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("WAL pages per message (--only walpages)")
    g.add_argument(
        "--walpages-seed",
        type=int,
        help=f"messages in each database before counting (default {SEED:,}; --quick"
        f" {QUICK_SEED:,})",
    )
