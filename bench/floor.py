"""The machine's floors: a loopback TCP write's CPU, by size; a durable commit's latency.

    python -m bench.floor [DIR]

On loopback the receiver's half of TCP runs in the writer's system call, so
every ``write`` a server makes costs it several microseconds in the kernel
whatever the language. This writes chunks of several sizes (one chunk = one
write, like one flush of N messages of ~150 bytes to one recipient) to an eager
reader pinned to the other core, and prints the writer's CPU per write and per
150-byte message: the floor under "server CPU per delivery" for that batch size.

Then it appends 4 KiB to a file in DIR (default: the temporary directory, where
the benchmark keeps its servers' data) and calls ``fdatasync`` 300 times: an
acked chinwag message waits for one such sync (SQLite WAL, synchronous=FULL),
so its p50/p99 bound the latency of a message from below.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time

SIZES = (150, 1_500, 6_000, 12_000, 24_000, 60_000)
MESSAGE = 150  # bytes of a typical message frame


def main() -> int:
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
    sync_latency(sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir())
    return 0


def sync_latency(directory: str, count: int = 300) -> None:
    fd, path = tempfile.mkstemp(prefix="bench-floor-", dir=directory)
    try:
        times = []
        block = b"x" * 4096
        for _ in range(count):
            os.write(fd, block)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - t0)
        times.sort()
        p50, p99 = times[count // 2], times[int(count * 0.99)]
        print(
            f"\nfdatasync of a 4 KiB append in {directory}: p50 {p50 * 1e3:.2f} ms, "
            f"p99 {p99 * 1e3:.2f} ms, max {times[-1] * 1e3:.2f} ms ({count} syncs)"
        )
    finally:
        os.close(fd)
        os.unlink(path)


if __name__ == "__main__":
    sys.exit(main())
