"""Throwaway PostgreSQL and Redis servers that the tests start and stop themselves.

Each runs from a fresh temp directory on 127.0.0.1 and a free port (never the
default 5432/6379, which may belong to someone else), and every wait is bounded.
As root, PostgreSQL runs as the ``postgres`` user (or ``nobody``): it refuses
to run as root. Where a server is not installed the tests that need it are
skipped with the reason, except in CI (``CI=true``), where that is a failure:
``scripts/test`` installs both with apt-get when run as root.

Use the session fixtures ``pg_server`` and ``redis_server`` by importing them
into a test module (``from support.services import pg_server``).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
PG_USER = "chinwag"  # the cluster's superuser


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """Skip (or, in CI, fail) a test that needs a server which is not installed."""
    message = f"{what} is not installed (apt-get install postgresql redis-server)"
    if _in_ci():
        pytest.fail(message + "; CI must run these tests")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _pg_bin(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, or Debian's newest under /usr/lib/postgresql."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def _run_as() -> pwd.struct_passwd | None:
    """The user the PostgreSQL programs run as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _stop_process(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


class PostgresServer:
    """A private PostgreSQL cluster: ``initdb`` in a temp dir, then ``postgres`` on a free port.

    ``stop()``/``start()`` restart it on the same port and data (a restart test);
    ``close()`` stops it and removes its files.
    """

    def __init__(self) -> None:
        initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
        if initdb is None or postgres is None:
            missing("PostgreSQL (initdb, postgres)")
        assert initdb is not None and postgres is not None
        self._postgres = postgres
        self._isready = _pg_bin("pg_isready")
        self._user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="chinwag-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        out = subprocess.run(
            [initdb, "-D", str(self.data), "-U", PG_USER, "--auth=trust", "-E", "UTF8"],
            capture_output=True,
            timeout=120,
            check=False,
            user=self._uid,
            group=self._gid,
            extra_groups=self._groups,
        )
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed: {out.stdout.decode()}{out.stderr.decode()}")

    @property
    def _uid(self) -> int | None:
        return None if self._user is None else self._user.pw_uid

    @property
    def _gid(self) -> int | None:
        return None if self._user is None else self._user.pw_gid

    @property
    def _groups(self) -> list[int] | None:
        return None if self._user is None else []  # as root: drop root's groups

    @property
    def dsn(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                self._postgres,
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
                # A throwaway cluster: a machine crash loses it anyway.
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            user=self._uid,
            group=self._gid,
            extra_groups=self._groups,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited early:\n{self.log()}")
            if self._ready():
                return
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"postgres did not start in {START_TIMEOUT} s:\n{self.log()}")

    def _ready(self) -> bool:
        """Accepting connections (not merely listening while it starts up or recovers)."""
        if self._isready is None:
            return _accepts(self.port) and (self.root / f".s.PGSQL.{self.port}").exists()
        out = subprocess.run(
            [self._isready, "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return out.returncode == 0

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open connections are cut, committed data stays."""
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGINT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A private ``redis-server`` on a free port, no persistence; ``kill()`` then ``start()``."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing("Redis (redis-server)")
        assert binary is not None
        self._binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="chinwag-redis-"))
        self.log_path = self.root / "redis.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited early:\n{self.log()}")
            if _redis_pong(self.port):
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server did not start in {START_TIMEOUT} s:\n{self.log()}")

    def flush(self) -> None:
        """Forget everything (a test's nodes start from an empty Redis, as after a restart)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            assert sock.recv(64).startswith(b"+OK")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        try:
            if self.proc is not None:
                _stop_process(self.proc, signal.SIGTERM)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _redis_pong(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")
    return False


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session; each test makes its own database."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


async def pg_database(server: PostgresServer, key: Path) -> str:
    """The DSN of a database of its own for ``key`` (made on first use; the same one after)."""
    import asyncpg

    name = "t_" + hashlib.sha256(str(key).encode()).hexdigest()[:20]
    conn = await asyncpg.connect(server.dsn, timeout=10)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.dsn_for(name)
