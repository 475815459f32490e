"""``python -m bench --only search``: search latency over stored messages (protocol §8).

For each size (default 10,000 / 100,000 / 1,000,000 messages) a fresh data
directory is seeded straight through SQLite (the way bench/seed.py writes
accounts: the protocol would spend the whole run posting), with the search
index kept by the schema's own triggers. Then the real server starts and one
client, a member of the lobby, asks over the protocol, one request at a time:

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
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.runner import ServerProcess
from bench.seed import seed_accounts
from chinwag.server.app import DB_NAME

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


def seed_messages(db: Path, count: int, rng: random.Random) -> None:
    """``count`` messages from r1 over ten rooms, in batches of one transaction each."""
    vocabulary = [f"w{n}" for n in range(5_000)]
    rare = set(rng.sample(range(0, count, len(ROOMS)), 10))  # ids ≡ 0 mod 10: lobby
    now_ms = int(time.time() * 1000) - count
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        for start in range(0, count, 50_000):
            rows = []
            for i in range(start, min(start + 50_000, count)):
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


async def measure(port: int) -> dict[str, list[float]]:
    """Log in as r0 and time REQUESTS requests of each kind, interleaved."""
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
        for n in range(REQUESTS):
            for kind, frame in QUERIES.items():
                started = time.perf_counter()
                reply = await request({**frame, "ref": f"{kind}-{n}"})
                times[kind].append((time.perf_counter() - started) * 1000)
                if reply["type"] == "error":
                    raise RuntimeError(f"{kind}: {reply}")
        return times
    finally:
        writer.close()
        await writer.wait_closed()


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def run(args: argparse.Namespace) -> int:
    sizes = args.search_sizes or (QUICK_SIZES if args.quick else SIZES)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-search-{size}-"))
        server = ServerProcess("chinwag", workdir, cpu=None)
        seed_accounts(server.data, 2, PASSWORD)  # r0 (asker) and r1, in the lobby
        started = time.monotonic()
        seed_messages(server.data / DB_NAME, size, random.Random(size))
        seeded = time.monotonic() - started
        server.start(timeout=120)
        try:
            times = asyncio.run(measure(server.port))
        finally:
            server.stop()
        for kind, samples in times.items():
            rows.append(
                {
                    "messages": size,
                    "query": kind,
                    "p50_ms": round(statistics.median(samples), 2),
                    "p99_ms": round(p99(samples), 2),
                    "seed_s": round(seeded, 1),
                }
            )
        print(f"search {size:>9,}: seeded in {seeded:.1f} s", flush=True)
    print(f"{'messages':>10} {'query':<10} {'p50 ms':>8} {'p99 ms':>8}")
    for row in rows:
        flag = "" if row["query"] == "history" or row["p99_ms"] < TARGET_P99_MS else "  over 50"
        print(
            f"{row['messages']:>10,} {row['query']:<10} {row['p50_ms']:>8.2f}"
            f" {row['p99_ms']:>8.2f}{flag}"
        )
    if args.json:
        print(json.dumps({"search": rows}))
    if args.out:
        args.out.write_text(json.dumps({"search": rows}, indent=2))
    return 0
