"""``python -m bench --only search``: search latency over stored messages (protocol §8).

For each size (default 10,000 / 100,000 / 1,000,000 messages) and each backend
(``--search-backends``, default SQLite and PostgreSQL) a fresh store is seeded
with the same messages, bypassing the protocol (the way bench/seed.py writes
accounts: posting them would take the whole run):

* SQLite: a fresh data directory, rows inserted straight through ``sqlite3``
  in batches; the search index is kept by the schema's own triggers;
* PostgreSQL: a private cluster (``initdb`` in a temporary directory, a free
  loopback port, stopped after; bench/nodes.py's ``Services``), a fresh
  database per size migrated by chinwag's own store, the accounts made through
  the store, then the rows loaded with ``COPY`` in batches of 50,000 with
  their folded words and scope tokens (``index_words``, ``scope_tokens``:
  what the store writes), progress on stderr, and ``VACUUM ANALYZE`` (what
  autovacuum does on a live server, so the GIN index's pending list is merged
  and the planner has statistics).

Then the real server starts on that store and one client, a member of the
lobby, asks over the protocol, one request at a time:

* ``rare``: a word in 10 lobby messages;
* ``common``: a word in ~1 % of all messages, lobby and other rooms;
* ``two words``: two words that are each in ~1 %, rarely together;
* ``hidden``: a word in ~1 % of messages, all in rooms the asker is not in
  (the worst case: every match is read and none may be shown);
* ``history``: the baseline, in the same run: a page of lobby history.

Latency is from writing the request to reading its reply (p50/p99, ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.runner import ServerProcess
from bench.seed import seed_accounts, seed_store
from chinwag.server.app import DB_NAME

BACKENDS = ("sqlite", "postgres")
BATCH = 50_000  # messages per transaction (SQLite) or per COPY (PostgreSQL)

SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000,)
REQUESTS = 200  # per kind and size
TARGET_P99_MS = 50.0
PASSWORD = "bench search password"
ROOMS = ("lobby", *(f"room{n}" for n in range(1, 10)))
HIDDEN_ROOMS = ROOMS[5:]

QUERIES: dict[str, dict[str, Any]] = {
    "rare": {"type": "search", "q": "zanzibar"},
    "common": {"type": "search", "q": "marmalade"},
    "two words": {"type": "search", "q": "marmalade quokka"},
    "hidden": {"type": "search", "q": "obsidian"},
    "history": {"type": "history", "room": "lobby", "limit": 20},
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("search scenario (--only search)")
    g.add_argument(
        "--search-sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        help="stored messages per run, e.g. 10000,100000,1000000 (--quick: 10000)",
    )
    g.add_argument(
        "--search-backends",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        help="stores to search, side by side: sqlite,postgres (the default)",
    )
    g.add_argument(
        "--search-requests",
        type=int,
        default=REQUESTS,
        help=f"requests of each kind per size and store (default {REQUESTS})",
    )


def corpus(count: int, rng: random.Random) -> Iterator[list[tuple[int, str, str, str, str]]]:
    """``count`` messages from r1 over ten rooms, in batches: (ts_ms, sender, nick, room, body)."""
    vocabulary = [f"w{n}" for n in range(5_000)]
    rare = set(rng.sample(range(0, count, len(ROOMS)), 10))  # ids ≡ 0 mod 10: lobby
    now_ms = int(time.time() * 1000) - count
    for start in range(0, count, BATCH):
        rows = []
        for i in range(start, min(start + BATCH, count)):
            room = ROOMS[i % len(ROOMS)]
            words = rng.choices(vocabulary, k=8)
            if i in rare:
                words.append("zanzibar")
            if rng.random() < 0.01:
                words.append("marmalade")
            if rng.random() < 0.01:
                words.append("quokka")
            if room in HIDDEN_ROOMS and rng.random() < 0.02:
                words.append("obsidian")
            rows.append((now_ms + i, "a:r1", "r1", room, " ".join(words)))
        yield rows


def seed_messages(db: Path, count: int, rng: random.Random) -> None:
    """``count`` messages from r1 over ten rooms, in batches of one transaction each."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        for rows in corpus(count, rng):
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO messages (ts_ms, sender, sender_nick, room, body) VALUES (?,?,?,?,?)",
                rows,
            )
            conn.execute("COMMIT")
        conn.execute(
            "INSERT INTO memberships (account, room, from_id, to_id)"
            " SELECT 'a:r1', value, 0, NULL FROM json_each(?) WHERE value <> 'lobby'",
            (json.dumps(list(ROOMS)),),
        )
    finally:
        conn.close()


async def seed_postgres(url: str, count: int, rng: random.Random) -> None:
    """The same accounts and messages in the PostgreSQL database ``url`` (empty, it exists)."""
    import asyncpg

    from chinwag.storage.postgres import PostgresStore, index_words, scope_tokens

    store = await PostgresStore.open(url)  # chinwag's own migrations make the schema
    try:
        await seed_store(store, 2, PASSWORD)  # r0 (asker) and r1, in the lobby
    finally:
        await store.close()
    conn = await asyncpg.connect(url)
    try:
        started, loaded = time.monotonic(), 0
        columns = ["ts_ms", "sender", "sender_nick", "room", "body", "words", "scope"]
        for rows in corpus(count, rng):
            records = [
                (*row, index_words(row[4]), scope_tokens(row[3], row[1], None)) for row in rows
            ]
            await conn.copy_records_to_table("messages", records=records, columns=columns)
            loaded += len(rows)
            print(
                f"search postgres {count:>9,}: {loaded:,} loaded"
                f" ({time.monotonic() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        await conn.execute(
            "INSERT INTO memberships (account, room, from_id, to_id)"
            " SELECT 'a:r1', room, 0, NULL FROM unnest($1::text[]) AS room",
            [room for room in ROOMS if room != "lobby"],
        )
        await conn.execute("VACUUM ANALYZE messages")
    finally:
        await conn.close()


async def measure(
    port: int, requests: int = REQUESTS
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Log in as r0 and time ``requests`` requests of each kind, interleaved.

    Returns the times (ms) and how many messages the first reply of each kind held.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
    try:

        async def request(frame: dict[str, Any]) -> dict[str, Any]:
            writer.write(json.dumps(frame).encode() + b"\n")
            await writer.drain()
            while True:
                reply = json.loads(await asyncio.wait_for(reader.readline(), 30))
                if reply.get("ref") == frame.get("ref"):
                    return dict(reply)

        hello = {"type": "hello", "proto": 1, "nick": "r0", "password": PASSWORD, "ref": "h"}
        await request(hello)
        while json.loads(await asyncio.wait_for(reader.readline(), 60))["type"] != "caught_up":
            pass
        times: dict[str, list[float]] = {kind: [] for kind in QUERIES}
        found: dict[str, int] = {}
        for n in range(requests):
            for kind, frame in QUERIES.items():
                started = time.perf_counter()
                reply = await request({**frame, "ref": f"{kind}-{n}"})
                times[kind].append((time.perf_counter() - started) * 1000)
                if reply["type"] == "error":
                    raise RuntimeError(f"{kind}: {reply}")
                found.setdefault(kind, len(reply.get("messages", [])))
        return times, found
    finally:
        writer.close()
        await writer.wait_closed()


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def _one(
    backend: str, size: int, services: Any | None, root: Path, requests: int
) -> tuple[tuple[dict[str, list[float]], dict[str, int]], float]:
    """Seed one store of ``size`` messages and time the queries: (measured, seconds seeding)."""
    workdir = root / f"{backend}-{size}"
    workdir.mkdir()
    server = ServerProcess("chinwag", workdir, cpu=None)
    started = time.monotonic()
    if services is None:
        seed_accounts(server.data, 2, PASSWORD)  # r0 (asker) and r1, in the lobby
        seed_messages(server.data / DB_NAME, size, random.Random(size))
    else:
        url = services.database(f"search{size}")
        asyncio.run(seed_postgres(url, size, random.Random(size)))
        server.extra += ["--store", url]
    seeded = time.monotonic() - started
    print(f"search {backend} {size:>9,}: seeded in {seeded:.1f} s", file=sys.stderr, flush=True)
    server.start(timeout=120)
    try:
        return asyncio.run(measure(server.port, requests)), seeded
    except (OSError, ValueError, TimeoutError) as exc:
        log = server.log_path.read_text(errors="replace")[-1500:]
        raise RuntimeError(
            f"{backend} {size}: {type(exc).__name__}: {exc}; server log:\n{log}"
        ) from exc
    finally:
        server.stop()
        shutil.rmtree(server.data, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    sizes = args.search_sizes or (QUICK_SIZES if args.quick else SIZES)
    backends = args.search_backends or list(BACKENDS)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        print(f"unknown --search-backends {unknown}: choose from {BACKENDS}", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="bench-search-"))
    services = None
    rows: list[dict[str, Any]] = []
    error = ""
    try:
        if "postgres" in backends:
            from bench.nodes import Services

            services = Services(root)
            services.start()
        for size in sizes:
            for backend in backends:
                (times, found), seeded = _one(
                    backend,
                    size,
                    services if backend == "postgres" else None,
                    root,
                    args.search_requests,
                )
                for kind, samples in times.items():
                    rows.append(
                        {
                            "backend": backend,
                            "messages": size,
                            "query": kind,
                            "p50_ms": round(statistics.median(samples), 2),
                            "p99_ms": round(p99(samples), 2),
                            "seed_s": round(seeded, 1),
                            "found": found[kind],
                        }
                    )
    except (OSError, RuntimeError, TimeoutError, subprocess.SubprocessError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if services is not None:
            services.close()
        shutil.rmtree(root, ignore_errors=True)
    head = f"{'messages':>10} {'query':<10}"
    for backend in backends:
        head += f" {backend + ' p50':>14} {backend + ' p99':>14}"
    lines = [head + "   (ms)"]
    cells = {(r["messages"], r["query"], r["backend"]): r for r in rows}
    for size in sizes:
        for kind in QUERIES:
            line = f"{size:>10,} {kind:<10}"
            over = []
            for backend in backends:
                r = cells.get((size, kind, backend))
                line += (
                    f" {r['p50_ms']:>14.2f} {r['p99_ms']:>14.2f}" if r else f" {'-':>14} {'-':>14}"
                )
                if r and kind != "history" and r["p99_ms"] >= TARGET_P99_MS:
                    over.append(backend)
            lines.append(line + (f"  over 50 ms: {', '.join(over)}" if over else ""))
    if error:
        lines.append(f"FAILED: {error}")
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    report = {"search": rows, "ok": not error, "error": error}
    if args.json:
        print(json.dumps(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0 if not error else 1
