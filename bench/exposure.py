"""Exposure figures (issue 10): idle TLS connections, silent connects, no descriptors left.

    python -m bench.exposure --idle 2000            # idle logged-in TLS connections
    python -m bench.exposure --idle 2000 --plain    # the same over plain TCP, to compare
    python -m bench.exposure --silent 3000          # silent TCP connects to the TLS port
    python -m bench.exposure --emfile 80            # 80 connects to a server limited to 64 fds

Starts a fresh ``chinwag serve`` (``--tls`` unless ``--plain``) on 127.0.0.1 with
its open-files limit raised to the hard limit, then:

* ``--idle N``: logs in one guest (warm-up), samples the server's RSS, logs in N
  more guests over TLS (blocking sockets, one after the other, each waiting for
  its ``caught_up``), lets them sit ``--hold`` seconds, samples again: the RSS
  growth divided by N is the cost of one idle logged-in connection. Every one
  must then answer a ping.
* ``--silent M``: opens M TCP connections from 127.0.0.2 that never send a byte
  (the server's per-address settings are the defaults), waits a second, and
  reports the server's open descriptors and RSS growth, and whether a TLS user
  from 127.0.0.1 can still log in meanwhile.
* ``--emfile K``: starts the server (plain TCP) with an open-files limit of 64
  instead, opens K connections, and reports the server's CPU time and log
  growth over the next 3 s, then closes half of them and reports whether a new
  user gets in.

Prints one JSON object. Needs only the standard library and chinwag.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procstat
from bench.runner import ServerProcess

_CLIENT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_CLIENT.check_hostname = False
_CLIENT.verify_mode = ssl.CERT_NONE


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss(pid: int) -> int:
    return procstat.memory_kib(pid)[0]


def _connect(port: int, tls: bool, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return _CLIENT.wrap_socket(sock) if tls else sock


def _lines_until(sock: socket.socket, token: bytes) -> None:
    data = b""
    deadline = time.monotonic() + 20
    while token not in data:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {token!r} from the server")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before {token!r}: {data[-300:]!r}")
        data += chunk


def _login(port: int, tls: bool, nick: str) -> socket.socket:
    sock = _connect(port, tls)
    sock.sendall(json.dumps({"type": "hello", "proto": 1, "nick": nick}).encode() + b"\n")
    _lines_until(sock, b'"caught_up"')
    return sock


def idle(srv: ServerProcess, n: int, tls: bool, hold: float) -> dict[str, Any]:
    warm = _login(srv.port, tls, "warmup")
    time.sleep(0.5)
    before = _rss(srv.pid)
    socks = []
    started = time.monotonic()
    for i in range(n):
        socks.append(_login(srv.port, tls, f"idle{i}"))
    logged_in = time.monotonic() - started
    time.sleep(hold)
    after = _rss(srv.pid)
    for sock in socks:  # every one is still alive: it answers a ping
        sock.sendall(b'{"type":"ping","ref":"p"}\n')
    for sock in socks:
        _lines_until(sock, b'"pong"')
    for sock in [warm, *socks]:
        sock.close()
    return {
        "scenario": "idle",
        "tls": tls,
        "connections": n,
        "login_seconds": round(logged_in, 2),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": round((after - before) / n, 2),
    }


def silent(srv: ServerProcess, m: int) -> dict[str, Any]:
    time.sleep(0.5)
    fds, rss = _fds(srv.pid), _rss(srv.pid)
    socks = []
    started = time.monotonic()
    for _ in range(m):
        sock = socket.socket()
        sock.bind(("127.0.0.2", 0))
        sock.settimeout(10)
        sock.connect(("127.0.0.1", srv.port))
        socks.append(sock)
    connect_seconds = time.monotonic() - started
    time.sleep(1.0)
    held_fds, grown = _fds(srv.pid) - fds, _rss(srv.pid) - rss
    try:
        t0 = time.monotonic()
        _login(srv.port, True, "user").close()
        user = f"logged in in {time.monotonic() - t0:.3f} s"
    except (OSError, TimeoutError) as exc:
        user = f"failed: {exc}"
    for sock in socks:
        sock.close()
    return {
        "scenario": "silent",
        "connects": m,
        "connect_seconds": round(connect_seconds, 2),
        "descriptors_held": held_fds,
        "rss_growth_kib": grown,
        "tls_user_meanwhile": user,
    }


def emfile(workdir: Path, k: int) -> dict[str, Any]:
    srv = ServerProcess(
        "chinwag",
        workdir,
        cpu=None,
        wrap=["prlimit", "--nofile=64:64", sys.executable],
        extra=["--no-announce"],
    ).start()
    socks: list[socket.socket] = []
    try:
        user = _login(srv.port, False, "ann")
        for _ in range(k):
            socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=10))
        time.sleep(1.0)
        cpu, size = procstat.cpu_seconds(srv.pid), srv.log_path.stat().st_size
        time.sleep(3.0)
        cpu, size = procstat.cpu_seconds(srv.pid) - cpu, srv.log_path.stat().st_size - size
        user.sendall(b'{"type":"ping","ref":"p"}\n')
        _lines_until(user, b'"pong"')
        for sock in socks[: k // 2]:
            sock.close()
        t0 = time.monotonic()
        try:
            _login(srv.port, False, "late").close()
            late = f"logged in {time.monotonic() - t0:.2f} s after half the connects closed"
        except (OSError, TimeoutError) as exc:
            late = f"failed: {exc}"
        user.close()
        return {
            "scenario": "emfile",
            "connects": k,
            "server_cpu_seconds_in_3s": round(cpu, 2),
            "log_bytes_in_3s": size,
            "tracebacks_in_log": srv.log_path.read_text(errors="replace").count("Traceback"),
            "connected_user": "answers a ping",
            "new_user": late,
        }
    finally:
        for sock in socks:
            sock.close()
        srv.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.exposure", description=__doc__.split("\n")[0])
    p.add_argument("--idle", type=int, default=0, help="idle logged-in connections")
    p.add_argument("--silent", type=int, default=0, help="silent connects from one address")
    p.add_argument("--emfile", type=int, default=0, help="connects to a server with 64 fds")
    p.add_argument("--plain", action="store_true", help="plain TCP instead of TLS (--idle only)")
    p.add_argument("--hold", type=float, default=3.0, help="seconds the idle connections sit")
    args = p.parse_args(argv)
    if [bool(args.idle), bool(args.silent), bool(args.emfile)].count(True) != 1:
        p.error("give one of --idle N, --silent M, --emfile K")
    if args.plain and not args.idle:
        p.error("--plain goes with --idle")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="chinwag-exposure-") as tmp:
        if args.emfile:
            result = emfile(Path(tmp), args.emfile)
            print(json.dumps(result))
            return 0
        extra = ["--no-announce", *([] if args.plain else ["--tls"])]
        # The runner's settings lift the per-address limit; silent connects get the default.
        cap = args.idle + 10 if args.idle else 64
        extra += ["--set", f"max_conns_per_address={cap}"]
        srv = ServerProcess("chinwag", Path(tmp), cpu=None, extra=extra).start()
        try:
            if args.idle:
                result = idle(srv, args.idle, not args.plain, args.hold)
            else:
                result = silent(srv, args.silent)
        finally:
            srv.stop()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
