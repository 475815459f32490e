"""The machine's floors: a loopback TCP write's CPU, by size; a durable commit's latency.

    python -m bench.floor [DIR]

On loopback the receiver's half of TCP runs in the writer's system call, so
every ``write`` a server makes costs it several microseconds in the kernel
whatever the language. This writes chunks of several sizes (one chunk = one
write, like one flush of N messages of ~150 bytes to one recipient) to an eager
reader pinned to the other core, and prints the writer's CPU per write and per
150-byte message: the floor under "server CPU per delivery" for that batch size.

Then it appends 4 KiB to a file in DIR (default: the temporary directory, where
the benchmark keeps its servers' data) and calls ``fdatasync`` 5,000 times (or
for 60 s, whichever comes first; ``--syncs`` and ``--sync-seconds`` change
that), printing its progress: an acked chinwag message waits for one such sync
with ``durability = "fsync"`` (SQLite WAL, synchronous=FULL), so its p50/p99
bound the latency of a message from below. 300 syncs (the old count) are too
few to see the tail: a 1-in-1,000 stall of 200 ms is the p99.9.

    python -m bench.floor --syncs-only [DIR]   # the fdatasync floor alone
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time

SIZES = (150, 1_500, 6_000, 12_000, 24_000, 60_000)
MESSAGE = 150  # bytes of a typical message frame
SYNCS = 5_000  # enough to see the p99 and a few of the stalls beyond it
SYNC_SECONDS = 60.0  # a slow disk stops the syncs here, whatever the count


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.floor", description=__doc__.split("\n")[0]
    )
    parser.add_argument("dir", nargs="?", default=tempfile.gettempdir(), help="where to sync")
    parser.add_argument("--syncs", type=int, default=SYNCS, help=f"fdatasyncs (default {SYNCS})")
    parser.add_argument(
        "--sync-seconds", type=float, default=SYNC_SECONDS, help="stop the syncs after this long"
    )
    parser.add_argument("--syncs-only", action="store_true", help="skip the TCP write floor")
    args = parser.parse_args()
    if not args.syncs_only:
        tcp_floor()
    result = sync_latency(args.dir, args.syncs, args.sync_seconds, progress=True)
    print(
        f"\nfdatasync of a 4 KiB append in {args.dir}: p50 {result['p50_ms']:.2f} ms, "
        f"p99 {result['p99_ms']:.2f} ms, p99.9 {result['p999_ms']:.2f} ms, "
        f"max {result['max_ms']:.2f} ms"
        f" ({int(result['syncs']):,} syncs in {result['seconds']:.1f} s)"
    )
    return 0


def tcp_floor() -> None:
    """The writer's CPU per loopback write, by size."""
    cpus = os.cpu_count() or 1
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    pid = os.fork()
    if pid == 0:  # the eager reader
        if cpus >= 2:
            os.sched_setaffinity(0, {1})
        sock = socket.create_connection(("127.0.0.1", port))
        while sock.recv(262_144):
            pass
        os._exit(0)
    if cpus >= 2:
        os.sched_setaffinity(0, {0})
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(f"{'bytes/write':>11}  {'messages':>8}  {'µs CPU/write':>12}  {'µs per message':>14}")
    for size in SIZES:
        data = b"x" * size
        n = max(2_000, 30_000_000 // size // 4)
        t0 = time.process_time()
        for _ in range(n):
            conn.sendall(data)
        per_write = (time.process_time() - t0) / n
        messages = max(1, size // MESSAGE)
        us = per_write * 1e6
        print(f"{size:>11,}  {messages:>8}  {us:>12.2f}  {us / messages:>14.3f}")
    conn.close()
    os.waitpid(pid, 0)


def quantiles(times_ms: list[float]) -> dict[str, float]:
    """p50, p99, p99.9 and max (ms) of sync durations in ms; zeros for none."""
    if not times_ms:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "p999_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(times_ms)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(n * q))]

    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "p999_ms": at(0.999), "max_ms": ordered[-1]}


def sync_latency(
    directory: str, count: int = SYNCS, seconds: float = SYNC_SECONDS, *, progress: bool = False
) -> dict[str, float]:
    """``count`` fdatasyncs of a 4 KiB append (or as many as fit in ``seconds``).

    Returns the quantiles (ms), ``syncs`` done and ``seconds`` taken (20 MiB
    of file at most, deleted after).
    """
    fd, path = tempfile.mkstemp(prefix="bench-floor-", dir=directory)
    times: list[float] = []
    started = time.monotonic()
    deadline = started + seconds
    shown = started
    try:
        block = b"x" * 4096
        for i in range(count):
            os.write(fd, block)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t0) * 1e3)
            now = time.monotonic()
            if now >= deadline:
                break
            if progress and now - shown >= 1.0:
                shown = now
                print(f"\r  fdatasync {i + 1:,}/{count:,}", end="", file=sys.stderr, flush=True)
    finally:
        os.close(fd)
        os.unlink(path)
        if progress:
            print("\r" + " " * 40 + "\r", end="", file=sys.stderr, flush=True)
    return {
        **quantiles(times),
        "syncs": float(len(times)),
        "seconds": round(time.monotonic() - started, 2),
    }


if __name__ == "__main__":
    sys.exit(main())
