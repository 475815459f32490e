"""``chinwag admin``: account management on a server's data directory.

``accounts``, ``stats``, ``export`` and ``backup`` read the SQLite file (WAL
lets them run beside the server). ``backup`` runs here, not in the server:
SQLite gives any reader, in any process, a consistent snapshot without holding
up the writer, so the copy is the same whether a server runs or not, and the
running server spends nothing on it (no reader thread taken from clients, no
work on its event loop, no new control request to guard). ``restore`` replaces
the database file, so it takes the data directory's lock: never under a
running server. On PostgreSQL ``backup`` runs pg_dump, and ``restore``
restores into a scratch database, checks it, and renames it over the store's,
refusing while any connection to the store is open. ``delete`` and
``reset-password`` go through the running server's control socket, so that it
applies them itself and ends the account's live sessions at once; when no
server runs, they take the data directory's lock (no server can start
meanwhile) and change the file directly, with the same checks and words
(`chinwag.core.operator`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import logging
import os
import re
import shutil
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from chinwag import __version__
from chinwag.config import Settings
from chinwag.core.accounts import PasswordHasher, parse_nick
from chinwag.core.moderation import Moderation
from chinwag.core.operator import AccountActions, ActionRefused, ModerationActions
from chinwag.core.rules import parse_room
from chinwag.core.sessions import OnlineRegistry
from chinwag.errors import ChatError
from chinwag.net.pins import KnownHosts
from chinwag.net.tls import (
    CERT_FILE,
    FingerprintMismatch,
    TlsSetupError,
    ca_context,
    cert_fingerprint,
    fingerprint,
    fingerprint_matches,
    format_fingerprint,
    parse_fingerprint,
    pinned_context,
)
from chinwag.server.app import DB_NAME
from chinwag.server.control import NotRunning, ask
from chinwag.server.lock import DataDirError, DataDirLock
from chinwag.storage.base import StoredMessage, StoreError
from chinwag.storage.sqlite import SqliteStore

if TYPE_CHECKING:
    from chinwag.storage.postgres import PgCluster, PostgresStore

log = logging.getLogger("chinwag.upgrade")

# How long to wait for the running server's answer: a new password is hashed
# there first, behind the logins it is hashing.
ASK_TIMEOUT = 60.0
HEALTH_TIMEOUT = 10.0  # seconds for /readyz's answer (the server waits ready_timeout for its store)
HEALTH_READY, HEALTH_NOT_READY, HEALTH_UNREACHABLE = 0, 1, 2
PG_DUMP_TIMEOUT = 3600.0  # seconds pg_dump (and reading its file back) may take


async def save_invite_token(
    data_dir: Path, token_hash: str, uses: int, expires_ms: int | None, created_ms: int
) -> None:
    """Store an invite token's hash in the server's database (`chinwag invite`).

    The server may be running: SQLite's WAL lets both write.

    Raises:
        FileNotFoundError: ``data_dir`` holds no chinwag database.
    """
    db = data_dir / DB_NAME
    if not db.exists():
        raise FileNotFoundError(f"no chinwag database in {data_dir}")
    store = await SqliteStore.open(db)
    try:
        await store.create_invite(
            token_hash, uses=uses, expires_ms=expires_ms, created_ms=created_ms
        )
    finally:
        await store.close()


async def run_admin(
    command: str,
    data_dir: Path,
    args: argparse.Namespace,
    password: str | None,
    settings: Settings,
) -> int:
    """Carry out ``command``; the exit code.

    ``settings`` (the password rules and argon2 costs) apply when no server
    runs; a running server applies its own.
    """
    if command == "health":
        port, scheme = settings.http_port, "https" if settings.tls else "http"
        if port == 0 and settings.metrics_port >= 0:
            port, scheme = settings.metrics_port, "http"  # no web client: the monitoring one
        url = args.url or f"{scheme}://127.0.0.1:{port}/readyz"
        try:
            pin = health_pin(url, args.fingerprint, settings, data_dir)
        except (ValueError, TlsSetupError) as exc:
            print(f"chinwag admin: {exc}", file=sys.stderr)
            return HEALTH_UNREACHABLE
        return await asyncio.to_thread(check_health, url, HEALTH_TIMEOUT, pin=pin)
    if command == "restore":
        if settings.store != "sqlite":
            return await _pg_restore(settings.store, args.file)
        return await asyncio.to_thread(_restore, data_dir, args.file)
    db = data_dir / DB_NAME
    if settings.store != "sqlite":
        if command == "backup":
            return await asyncio.to_thread(_pg_backup, settings.store, args.file)
    elif not db.exists():
        print(
            f"chinwag admin: no chinwag database in {data_dir}; pass the server's --data DIR",
            file=sys.stderr,
        )
        return 1
    if command in ("accounts", "stats"):
        return await _report(command, db, settings)
    if command == "backup":
        return await asyncio.to_thread(_backup, db, args.file)
    if command == "export":
        return await _export(db, args.nick, args.room, args.out, settings)
    if command == "audit":
        return await _audit(db, args.room, args.since, settings)
    request: dict[str, Any] = {"op": command, "nick": args.nick}
    if password is not None:
        request["password"] = password
    if command in MODERATION_OPS:
        try:
            request.update(_moderation_request(command, args, time.time()))
        except ValueError as exc:
            return _fail(str(exc), 2)
    try:
        ok, message, status = await ask(data_dir, request, ASK_TIMEOUT)
    except NotRunning:
        if command in MODERATION_OPS:
            return await _offline_moderation(data_dir, request, settings)
        return await _offline(command, data_dir, args.nick, password, settings)
    except PermissionError:
        print(
            f"chinwag admin: the server running on {data_dir} belongs to another user; "
            "run chinwag admin as that user",
            file=sys.stderr,
        )
        return 1
    except (OSError, TimeoutError) as exc:
        print(
            f"chinwag admin: the server running on {data_dir} did not answer ({exc or 'timeout'}); "
            "nothing may have changed: check with 'chinwag admin accounts' and retry",
            file=sys.stderr,
        )
        return 1
    if not ok:
        print(f"chinwag admin: {message}", file=sys.stderr)
        return status
    print(message)
    return 0


def check_health(url: str, timeout: float, *, pin: bytes | None = None) -> int:
    """Ask ``url`` (a server's ``/readyz``) whether it is ready; print the answer.

    An ``https://`` URL is trusted by ``pin`` (the SHA-256 fingerprint of the
    server's certificate, as the clients pin it) or, without one, by the
    system's certificate authorities and the host name.

    Returns:
        0: ready; 1: the server answered that it is not ready; 2: no answer.
    """
    try:
        status, body = _ask_readyz(url, timeout, pin)
    except FingerprintMismatch as exc:
        print(
            f"chinwag admin: {url} offered a certificate with the fingerprint"
            f" {format_fingerprint(exc.actual)}, not the pinned {format_fingerprint(exc.expected)};"
            " if the server's certificate changed, pass its fingerprint with --fingerprint",
            file=sys.stderr,
        )
        return HEALTH_UNREACHABLE
    except (OSError, ValueError, http.client.HTTPException) as exc:
        print(
            f"chinwag admin: no answer from {url} ({exc}); is the server running with its"
            " HTTP listener (http_port)? Else pass its address with --url",
            file=sys.stderr,
        )
        return HEALTH_UNREACHABLE
    if status == 200:
        print(body)
        return HEALTH_READY
    if status == 503:
        print(f"chinwag admin: {body}", file=sys.stderr)
        return HEALTH_NOT_READY
    print(
        f"chinwag admin: {url} answered {status} ({body[:200]}); is it a chinwag server's /readyz?",
        file=sys.stderr,
    )
    return HEALTH_UNREACHABLE


def _ask_readyz(url: str, timeout: float, pin: bytes | None) -> tuple[int, str]:
    """(status, body) of a GET of ``url``; a pinned certificate is checked before asking.

    Raises:
        FingerprintMismatch: the server's certificate is not the pinned one.
        OSError, ValueError, http.client.HTTPException: no answer.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the URL is not http://HOST:PORT/readyz or https://…")
    conn: http.client.HTTPConnection
    if parts.scheme == "http":
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    else:
        context = pinned_context(None) if pin is not None else ca_context(None)
        conn = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=context
        )
    try:
        conn.connect()
        if pin is not None:
            assert isinstance(conn.sock, ssl.SSLSocket)
            der = conn.sock.getpeercert(binary_form=True)
            actual = fingerprint(der) if der else b""
            if not fingerprint_matches(pin, actual):
                raise FingerprintMismatch(pin, actual)
        conn.request("GET", parts.path or "/", headers={"Connection": "close"})
        reply = conn.getresponse()
        return reply.status, reply.read(4096).decode("utf-8", "replace").strip()
    finally:
        conn.close()


def health_pin(
    url: str, fingerprint_arg: str | None, settings: Settings, data_dir: Path
) -> bytes | None:
    """The fingerprint ``chinwag admin health`` pins for ``url``; None: verify by CAs.

    In order: ``--fingerprint``; the pin of the URL's HOST:PORT in the user's
    ``known_hosts`` (as the clients keep it); the server's own certificate
    (``tls_cert``, or the self-signed one in the data directory). A plain
    ``http://`` URL needs none.

    Raises:
        ValueError: ``--fingerprint`` is not a fingerprint.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https":
        return None
    if fingerprint_arg:
        return parse_fingerprint(fingerprint_arg)
    pinned = KnownHosts().get(parts.hostname or "", parts.port or 443)
    if pinned is not None:
        return pinned
    cert = Path(settings.tls_cert) if settings.tls_cert else data_dir / CERT_FILE
    if cert.is_file():
        return cert_fingerprint(cert)
    return None


async def _report(command: str, db: Path, settings: Settings) -> int:
    try:
        store = await _open_store(db, settings)
    except StoreError as exc:
        return _fail(str(exc))
    try:
        if command == "accounts":
            rows = await store.list_accounts()
            print(f"{'nick':32} {'created (UTC)':20} state")
            for row in rows:
                created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(row.created_ms / 1000))
                state = "deleted (nick reserved)" if row.deleted else ("bot" if row.bot else "")
                print(f"{row.nick:32} {created:20} {state}")
            print(f"{len(rows)} account(s)")
        else:
            stats = await store.stats()
            names = max(map(len, stats))
            numbers = max(len(str(v)) for v in stats.values())
            for name, value in stats.items():
                print(f"{name:{names}}  {value:>{numbers}}")
        return 0
    finally:
        await store.close()


async def _offline(
    command: str, data_dir: Path, nick: str, password: str | None, settings: Settings
) -> int:
    """No server runs: change the database ourselves, holding the lock meanwhile."""
    if settings.store != "sqlite":
        return await _offline_postgres(command, data_dir, nick, password, settings)
    try:
        lock = DataDirLock.acquire(data_dir, "admin")
    except DataDirError as exc:
        # A server that is starting (its control socket is not there yet), or
        # one that could not make it, or another admin; or no permission.
        print(f"chinwag admin: {exc}; nothing was changed", file=sys.stderr)
        return 1
    try:
        store = await SqliteStore.open(data_dir / DB_NAME)
        hasher = PasswordHasher(settings)
        try:
            actions = AccountActions(settings, store, hasher)
            if command == "delete":
                print(await actions.delete(nick))
            else:
                assert command == "reset-password" and password is not None
                print(await actions.reset_password(nick, password))
        except ActionRefused as exc:
            print(f"chinwag admin: {exc.message}", file=sys.stderr)
            return exc.status
        finally:
            hasher.close()
            await store.close()
        return 0
    finally:
        lock.release()


# -- moderation (issue 16) ------------------------------------------------------------

MODERATION_OPS = ("grant", "ban", "unban", "kick")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_when(text: str, now: float, *, ahead: bool) -> int:
    """A time as ms since the epoch: a UTC date or time, or a length (``30m``, ``2h``, ``7d``)
    from ``now`` (ahead, or ago).

    Raises:
        ValueError: neither; the message says what is accepted.
    """
    text = text.strip()
    if len(text) >= 2 and text[-1] in _UNITS and text[:-1].isdigit():
        seconds = int(text[:-1]) * _UNITS[text[-1]]
        return int((now + seconds if ahead else now - seconds) * 1000)
    try:
        when = datetime.fromisoformat(text.removesuffix("Z"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give a UTC time like 2026-12-02T14:05 or a length"
            " like 30m, 2h, 7d"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _moderation_request(command: str, args: argparse.Namespace, now: float) -> dict[str, Any]:
    """The control request's fields of ``grant``, ``ban``, ``unban`` or ``kick``."""
    fields: dict[str, Any] = {"room": args.room, "reason": getattr(args, "reason", "")}
    if command == "grant":
        fields["role"] = args.role
    if command == "ban" and args.until:
        until = parse_when(args.until, now, ahead=True)
        if until <= now * 1000:
            raise ValueError(f"--until {args.until} is in the past; give a later time")
        fields["until"] = until
    return fields


async def _offline_moderation(data_dir: Path, request: dict[str, Any], settings: Settings) -> int:
    """No server runs: apply the action to the store, holding the data directory's lock."""
    try:
        lock = DataDirLock.acquire(data_dir, "admin")
    except DataDirError as exc:
        return _fail(f"{exc}; nothing was changed")
    try:
        store = await SqliteStore.open(data_dir / DB_NAME)
        try:
            moderation = Moderation(settings, store, OnlineRegistry(settings), time.time)
            await moderation.load()
            moderation.end_sessions = lambda key, reason, message, farewell: 0  # nobody online
            actions = ModerationActions(moderation)
            try:
                if request["op"] == "grant":
                    print(await actions.grant(request["nick"], request["role"], request["room"]))
                else:
                    print(
                        await actions.moderate(
                            request["op"],
                            request["nick"],
                            request["room"],
                            request.get("until"),
                            request["reason"] or "",
                        )
                    )
            except ActionRefused as exc:
                return _fail(exc.message, exc.status)
        finally:
            await store.close()
        return 0
    finally:
        lock.release()


async def _audit(db: Path, room: str | None, since: str | None, settings: Settings) -> int:
    """Print the audit log (oldest first), of one room or from a time if asked."""
    try:
        since_ms = None if since is None else parse_when(since, time.time(), ahead=False)
        room = None if room is None else parse_room(room)
    except (ValueError, ChatError) as exc:
        return _fail(str(exc), 2)
    store = await SqliteStore.open(db)
    try:
        entries = await store.audit_log(room=room, since_ms=since_ms, limit=settings.audit_page)
    finally:
        await store.close()
    print(f"{'when (UTC)':20} {'who':16} {'action':8} {'where':12} {'whom':16} why / what")
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.ts_ms / 1000))
        where = f"#{e.room}" if e.room else "server"
        words = " ".join(w for w in (e.reason, e.detail) if w)
        print(f"{when:20} {e.actor:16} {e.action:8} {where:12} {e.target or '':16} {words}")
    more = (
        " (the most printed at once: narrow it with --since or --room)"
        if len(entries) >= settings.audit_page
        else ""
    )
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}{more}")
    return 0


def _fail(message: str, status: int = 1) -> int:
    print(f"chinwag admin: {message}", file=sys.stderr)
    return status


def _print_counts(counts: dict[str, int]) -> None:
    print(", ".join(f"{value} {name.replace('_', ' ')}" for name, value in counts.items()))


def _new_private_file(path: Path) -> None:
    """Create ``path``, empty and readable by its owner only (it will hold the accounts).

    Raises:
        FileExistsError: it exists.
        OSError: it cannot be made.
    """
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))


def _sync(path: Path) -> None:
    """fsync ``path`` (a file or a directory): what was written or renamed survives power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


class BackupError(Exception):
    """A backup could not be made (and nothing of it was left); the message says why."""


def make_backup(db: Path, dest: Path) -> tuple[int, dict[str, int]]:
    """Copy the database ``db``, as of now, into the new file ``dest`` (mode 600), checked.

    A running server goes on meanwhile. Returns the copy's schema version and counts.

    Raises:
        BackupError: ``dest`` exists, cannot be written, or the copy failed.
    """
    if dest.exists() or dest.is_symlink():
        raise BackupError(f"{dest} exists; a backup never overwrites a file: name a new one")
    partial = _beside(dest, ".partial")
    try:
        _new_private_file(partial)
    except FileExistsError:
        raise BackupError(
            f"{partial} exists: another backup to {dest} is running, or one was interrupted"
            " (then remove it) and retry"
        ) from None
    except OSError as exc:
        raise BackupError(
            f"cannot write {partial}: {exc.strerror}; pick a place you can write to"
        ) from None
    try:
        SqliteStore.copy_database(db, partial)
        version, problems, counts = SqliteStore.check_database(partial)
        if problems:
            raise StoreError(f"the copy failed its integrity check: {'; '.join(problems)}")
        _sync(partial)
        partial.replace(dest)
        _sync(dest.parent)
    except (StoreError, OSError) as exc:
        _remove(partial, _beside(partial, "-journal"))
        raise BackupError(f"the backup failed and was removed: {exc}") from None
    return version, counts


def _backup(db: Path, dest: Path) -> int:
    try:
        version, counts = make_backup(db, dest)
    except BackupError as exc:
        return _fail(str(exc))
    print(f"backed up {db} to {dest} (schema version {version}; integrity checked)")
    _print_counts(counts)
    return 0


def backup_before_upgrade(data_dir: Path) -> Path | None:
    """Before the server migrates the database to a newer schema, copy it: the copy's path.

    The copy is ``DATA/chinwag.db.before-vN`` (N: the schema version to come);
    None when there is nothing to migrate (no database yet, or the schema is
    current). It is made before the server takes the data directory's lock,
    as an online backup: safe even if a server still runs there (the new one
    will then refuse to start).

    Raises:
        BackupError: the copy cannot be made (the database is not migrated then).
    """
    db = data_dir / DB_NAME
    if not db.exists():
        return None
    try:
        version, newest = SqliteStore.schema_versions(db)
    except StoreError:
        return None  # not readable: opening the store says what is wrong
    if version == 0 or version >= newest:
        return None  # a new database, or a current one (a newer one is refused at open)
    dest = _beside(db, f".before-v{newest}")
    if dest.exists():  # an earlier start that failed to migrate: keep that copy too
        dest = _beside(dest, time.strftime("-%Y%m%dT%H%M%S"))
    make_backup(db, dest)
    log.info(
        "the database has schema version %d and this chinwag migrates it to %d:"
        " backed it up to %s first (restore it with chinwag admin restore)",
        version,
        newest,
        dest,
    )
    return dest


def _restore(data_dir: Path, source: Path) -> int:
    """Replace the database with a checked copy of ``source``; only while no server runs."""
    if not source.is_file():
        return _fail(f"no backup file {source}")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = DataDirLock.acquire(data_dir, "admin")
    except (DataDirError, OSError) as exc:
        return _fail(f"{exc}; nothing was replaced")
    try:
        db = data_dir / DB_NAME
        staged = _beside(db, ".restoring")
        leftovers = (staged, _beside(staged, "-journal"))
        _remove(*leftovers)  # an interrupted restore's: we hold the lock
        try:
            _new_private_file(staged)
            SqliteStore.copy_database(source, staged)
            version, problems, counts = SqliteStore.check_database(staged)
        except (StoreError, OSError) as exc:
            _remove(*leftovers)
            return _fail(f"{source} cannot be restored: {exc}; nothing was replaced")
        if problems:
            _remove(*leftovers)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
            return _fail(f"{source} failed the checks above; nothing was replaced")
        print(f"{source}: integrity checked, schema version {version}")
        _print_counts(counts)
        try:
            kept = _set_aside(db)
        except OSError as exc:
            _remove(*leftovers)
            return _fail(f"cannot keep a copy of {db}: {exc}; nothing was replaced")
        if kept is not None:
            try:  # messages newer than the backup: their ids are not given out again
                SqliteStore.carry_high_water(kept, staged)
            except StoreError as exc:
                print(
                    f"chinwag admin: warning: {exc}; ids of messages newer than the backup"
                    " may be given out again",
                    file=sys.stderr,
                )
        try:
            _sync(staged)
            staged.replace(db)
            _sync(data_dir)
        except OSError as exc:
            _remove(*leftovers)
            kept_note = f"; the old one is kept as {kept}" if kept else ""
            return _fail(f"cannot replace {db}: {exc}{kept_note}")
        kept_note = f"; the database it replaced is kept as {kept}" if kept else ""
        print(f"restored {source} into {db}{kept_note}")
        return 0
    finally:
        lock.release()


def _set_aside(db: Path) -> Path | None:
    """Keep ``db`` (with its write-ahead log) under a new name: that name, None if no ``db``.

    Afterwards ``db`` can be replaced by renaming another file over it: no log
    of the old file is left beside it for SQLite to apply to the new one. The
    log is folded in first where the old file allows (a damaged one may not:
    its log is then kept beside the kept file).

    Raises:
        OSError: the old file cannot be kept.
    """
    wal, shm = _beside(db, "-wal"), _beside(db, "-shm")
    if not db.exists():
        _remove(wal, shm)  # a log without its database is nothing SQLite can use
        return None
    with contextlib.suppress(sqlite3.Error):
        conn = sqlite3.connect(db, isolation_level=None, timeout=10)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    kept = _beside(db, time.strftime(".replaced-%Y%m%dT%H%M%S"))
    try:
        os.link(db, kept)
    except OSError:  # no hard links here (or the name is taken): a real copy
        shutil.copy2(db, kept)
    if wal.exists() and wal.stat().st_size > 0:  # not folded in: keep it with its file
        wal.replace(_beside(kept, "-wal"))
    _remove(wal, shm)
    return kept


EXPORT_PAGE = 1000  # messages read from the store at a time by export


def _message_json(msg: StoredMessage, principal: str | None) -> dict[str, Any]:
    """A message as exported; its ``cid`` only when it is the exported account's own."""
    out: dict[str, Any] = {"id": msg.id, "ts_ms": msg.ts_ms, "from": msg.sender_nick}
    if msg.room is not None:
        out["room"] = msg.room
    else:
        out["to"] = msg.recipient_nick
    if msg.deleted:
        out["deleted"] = True  # its text was erased
    else:
        out["body"] = msg.body
    if msg.edited_ms is not None:
        out["edited_ms"] = msg.edited_ms
    if principal is not None:
        out["sent"] = msg.sender == principal
    if msg.cid is not None and (principal is None or msg.sender == principal):
        out["cid"] = msg.cid
    return out


async def _export(
    db: Path, nick: str | None, room: str | None, out: Path | None, settings: Settings
) -> int:
    """Everything held about one account (``nick``), or one room's history, as JSON."""
    if (nick is None) == (room is None):
        return _fail("export takes a NICK or --room ROOM (one of the two)", 2)
    try:
        key = parse_nick(nick).key if nick is not None else None
        room_name = parse_room(room) if room is not None else None
    except ChatError as exc:
        return _fail(exc.message, 2)
    try:
        store = await _open_store(db, settings)
    except StoreError as exc:
        return _fail(str(exc))
    try:
        if key is not None:
            head = await store.export_account(key)
            if head is None:
                return _fail(f"no account called {nick!r}")
            upto = int(head.pop("upto_id"))
            principal: str | None = "a:" + key
        else:
            upto = await store.max_message_id()
            head = {"room": room_name}
            principal = None
        head = {"chinwag": __version__, "exported_ms": int(time.time() * 1000), **head}
        with _output(out) as stream:
            text = json.dumps(head, ensure_ascii=False, indent=1)
            stream.write(text[: text.rindex("}")].rstrip() + ',\n "messages": [')
            after, first = 0, True
            while True:
                page = await store.export_messages(
                    account=principal, room=room_name, after=after, upto=upto, limit=EXPORT_PAGE
                )
                for msg in page:
                    line = json.dumps(_message_json(msg, principal), ensure_ascii=False)
                    stream.write(("\n  " if first else ",\n  ") + line)
                    first = False
                if len(page) < EXPORT_PAGE:
                    break
                after = page[-1].id
            stream.write("\n ]\n}\n")
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc.strerror}; nothing was written")
    finally:
        await store.close()
    if out is not None:
        print(f"exported {nick if key is not None else 'room ' + str(room_name)} to {out}")
    return 0


@contextlib.contextmanager
def _output(out: Path | None) -> Iterator[IO[str]]:
    """Where to write: stdout, or ``out``, which appears only once all was written.

    Raises:
        OSError: ``out`` exists or cannot be written.
    """
    if out is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    if out.exists() or out.is_symlink():
        raise FileExistsError(17, "it exists; name a new file", str(out))
    partial = _beside(out, ".partial")
    _new_private_file(partial)
    try:
        with partial.open("w", encoding="utf-8") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        partial.replace(out)
    finally:
        _remove(partial)


# -- chinwag admin against a PostgreSQL store (issue 13) --


async def _open_store(db: Path, settings: Settings) -> SqliteStore | PostgresStore:
    """The store ``chinwag admin`` works on: ``db`` (SQLite), or PostgreSQL at ``store``.

    Raises:
        StoreError: it cannot be opened (the message says what to check).
    """
    if settings.store == "sqlite":
        return await SqliteStore.open(db)
    from chinwag.storage.postgres import PostgresStore  # only then: asyncpg

    return await PostgresStore.open(settings.store, command_timeout=settings.store_timeout)


async def _offline_postgres(
    command: str, data_dir: Path, nick: str, password: str | None, settings: Settings
) -> int:
    """No node runs on ``data_dir``: change the PostgreSQL store directly.

    Other nodes may be running: the account's sessions on them are not ended
    (their next login sees the change); say so.
    """
    try:
        store = await _open_store(data_dir / DB_NAME, settings)
    except StoreError as exc:
        return _fail(f"{exc}; nothing was changed")
    hasher = PasswordHasher(settings)
    try:
        actions = AccountActions(settings, store, hasher)
        if command == "delete":
            print(await actions.delete(nick))
        else:
            assert command == "reset-password" and password is not None
            print(await actions.reset_password(nick, password))
    except ActionRefused as exc:
        return _fail(exc.message, exc.status)
    finally:
        hasher.close()
        await store.close()
    print(
        f"chinwag admin: no node runs on {data_dir}, so the store was changed directly:"
        " sessions of that account still open on running nodes end at their next login"
        " (ending them at once needs --data of a running node)",
        file=sys.stderr,
    )
    return 0


def _pg_backup(dsn: str, dest: Path) -> int:
    """``pg_dump`` of the PostgreSQL store into the new file ``dest`` (custom format), checked.

    The nodes go on meanwhile: pg_dump reads one consistent snapshot.
    """
    pg_dump, pg_restore = shutil.which("pg_dump"), shutil.which("pg_restore")
    if pg_dump is None or pg_restore is None:
        return _fail(
            "backing up a PostgreSQL store needs pg_dump and pg_restore"
            " (apt-get install postgresql-client); nothing was written"
        )
    if dest.exists() or dest.is_symlink():
        return _fail(f"{dest} exists; a backup never overwrites a file: name a new one")
    partial = _beside(dest, ".partial")
    try:
        _new_private_file(partial)
    except FileExistsError:
        return _fail(
            f"{partial} exists: another backup to {dest} is running, or one was interrupted"
            " (then remove it) and retry"
        )
    except OSError as exc:
        return _fail(f"cannot write {partial}: {exc.strerror}; pick a place you can write to")
    try:
        dump = subprocess.run(
            [pg_dump, "--format=custom", "--no-owner", "--file", str(partial), dsn],
            capture_output=True,
            text=True,
            timeout=PG_DUMP_TIMEOUT,
            check=False,
        )
        if dump.returncode != 0:
            raise BackupError(f"pg_dump failed: {dump.stderr.strip()}")
        listed = subprocess.run(
            [pg_restore, "--list", str(partial)],
            capture_output=True,
            text=True,
            timeout=PG_DUMP_TIMEOUT,
            check=False,
        )
        if listed.returncode != 0 or " TABLE DATA " not in listed.stdout:
            raise BackupError(f"the dump does not read back: {listed.stderr.strip()}")
        _sync(partial)
        partial.replace(dest)
        _sync(dest.parent)
    except (BackupError, OSError, subprocess.TimeoutExpired) as exc:
        _remove(partial)
        return _fail(f"the backup failed and was removed: {exc}")
    tables = listed.stdout.count(" TABLE DATA ")
    print(
        f"backed up the PostgreSQL store to {dest} (pg_dump custom format, {tables} tables;"
        " read back with pg_restore --list). Restore: stop every node, then"
        f" chinwag admin --store URL restore {dest} --verify"
    )
    return 0


# -- chinwag admin restore of a PostgreSQL store (issue 17, ops3) --
_PG_NAME_MAX = 63  # bytes of a PostgreSQL identifier; longer ones are cut
_PG_LOADING = re.compile(r'processing data for table "(?:[^"]*\.)?([^".]+)"')


def _pg_name(base: str, suffix: str) -> str:
    """``base`` + ``suffix``, ``base`` shortened so that the name fits PostgreSQL's limit."""
    room = _PG_NAME_MAX - len(suffix.encode())
    while len(base.encode()) > room:
        base = base[:-1]
    return base + suffix


async def _pg_restore(dsn: str, source: Path) -> int:
    """Replace the PostgreSQL store by a checked copy of the dump ``source``; nodes stopped.

    The dump is restored into a scratch database first, in one transaction;
    that copy is checked and counted, and only then renamed to the store's
    name, the store's database being kept under a ``_replaced_…`` name.
    """
    from chinwag.storage import postgres as pg  # only then: asyncpg

    pg_restore = shutil.which("pg_restore")
    if pg_restore is None:
        return _fail(
            "restoring a PostgreSQL store needs pg_restore (apt-get install postgresql-client,"
            " of the server's major version or newer); nothing was replaced"
        )
    tables = await asyncio.to_thread(_dump_tables, pg_restore, source)
    if isinstance(tables, str):
        return _fail(f"{tables}; nothing was replaced")
    try:
        cluster = await pg.PgCluster.connect(dsn)
    except StoreError as exc:
        return _fail(f"{exc}; nothing was replaced")
    try:
        return await _pg_restore_checked(cluster, pg_restore, source, tables)
    finally:
        await cluster.close()


def _dump_tables(pg_restore: str, source: Path) -> int | str:
    """How many tables' data the dump ``source`` holds, or why it is not a dump of a store."""
    if not source.is_file():
        return f"no backup file {source}"
    listed = subprocess.run(
        [pg_restore, "--list", str(source)],
        capture_output=True,
        text=True,
        timeout=PG_DUMP_TIMEOUT,
        check=False,
    )
    tables = listed.stdout.count(" TABLE DATA ")
    if listed.returncode == 0 and tables:
        return tables
    why = listed.stderr.strip().removeprefix("pg_restore: ") or "it holds no table data"
    return (
        f"{source} is not a readable backup of a PostgreSQL store ({why}): give a file that"
        " chinwag admin --store URL backup made, whole (a SQLite backup is restored with"
        " --data DIR and no --store)"
    )


async def _pg_restore_checked(
    cluster: PgCluster, pg_restore: str, source: Path, tables: int
) -> int:
    from chinwag.storage import postgres as pg

    target = cluster.database
    users = await cluster.users(target)
    if users:
        return _fail(
            f"{users} connection(s) are open to the database {target!r}: chinwag nodes"
            " (or other programs) use it; stop every node first, then retry; nothing was replaced"
        )
    scratch = _pg_name(target, "_restoring")
    scratch_dsn = pg.with_database(cluster.dsn, scratch)
    try:
        await cluster.drop(scratch)  # an interrupted restore's: we hold the restore lock
        await cluster.create(scratch)
    except StoreError as exc:
        return _fail(f"{exc}; nothing was replaced")
    swapped = False
    try:
        print(f"restoring {source} into the scratch database {scratch!r}", flush=True)
        failed = await _run_pg_restore(pg_restore, source, scratch_dsn, tables)
        if failed:
            return _fail(f"{source} cannot be restored: {failed}; nothing was replaced")
        version, problems, counts = await pg.check_database(scratch_dsn)
        if problems:
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
            return _fail(f"{source} failed the checks above; nothing was replaced")
        print(f"{source}: restored and checked, schema version {version}")
        _print_counts(counts)
        kept: str | None = None
        if await cluster.exists(target):
            kept = _pg_name(target, time.strftime("_replaced_%Y%m%dT%H%M%S"))
            try:  # messages newer than the backup: their ids are not given out again
                floor = await pg.high_water(cluster.dsn)
                await pg.raise_high_water(scratch_dsn, floor)
            except StoreError as exc:
                print(
                    f"chinwag admin: warning: {exc}; ids of messages newer than the backup"
                    " may be given out again",
                    file=sys.stderr,
                )
        try:
            await cluster.swap(scratch, kept)
        except StoreError as exc:
            return _fail(
                f"cannot put the restored copy in place of {target!r} ({exc}): a node"
                " connected meanwhile? Stop every node and retry; nothing was replaced"
            )
        swapped = True
    except StoreError as exc:
        return _fail(f"{source} cannot be restored: {exc}; nothing was replaced")
    finally:
        if not swapped:
            with contextlib.suppress(StoreError):
                await cluster.drop(scratch)
    kept_note = f"; the database it replaced is kept as {kept!r}" if kept else ""
    print(f"restored {source} into the database {target!r}{kept_note}")
    return 0


async def _run_pg_restore(pg_restore: str, source: Path, dsn: str, tables: int) -> str | None:
    """Restore ``source`` into the empty database ``dsn`` in one transaction, telling progress.

    None when it worked, else what went wrong (nothing of it stays then).
    """
    proc = await asyncio.create_subprocess_exec(
        pg_restore,
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        "--verbose",
        "--dbname",
        dsn,
        str(source),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    errors: list[str] = []
    loaded = 0
    try:
        async with asyncio.timeout(PG_DUMP_TIMEOUT):
            async for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                if found := _PG_LOADING.search(line):
                    loaded += 1
                    print(f"  loading table {found[1]} ({loaded} of {tables})", flush=True)
                elif "error" in line.lower() or "fatal" in line.lower():
                    errors.append(line.removeprefix("pg_restore: "))
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"pg_restore took over {PG_DUMP_TIMEOUT:.0f} s and was stopped"
    if proc.returncode != 0:
        said = "; ".join(errors[-3:]) or f"exit status {proc.returncode}"
        return f"pg_restore failed (a damaged file, or a pg_restore older than the dump?): {said}"
    return None
