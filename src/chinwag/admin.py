"""``chinwag admin``: account management on a server's data directory.

``accounts`` and ``stats`` read the SQLite file (WAL lets them run beside the
server). ``delete`` and ``reset-password`` go through the running server's
control socket, so that it applies them itself and ends the account's live
sessions at once; when no server runs, they take the data directory's lock
(no server can start meanwhile) and change the file directly, with the same
checks and words (`chinwag.core.operator`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from chinwag.config import Settings
from chinwag.core.accounts import PasswordHasher
from chinwag.core.operator import AccountActions, ActionRefused
from chinwag.server.app import DB_NAME
from chinwag.server.control import NotRunning, ask
from chinwag.server.lock import DataDirError, DataDirLock
from chinwag.storage.sqlite import SqliteStore

# How long to wait for the running server's answer: a new password is hashed
# there first, behind the logins it is hashing.
ASK_TIMEOUT = 60.0


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
    db = data_dir / DB_NAME
    if not db.exists():
        print(
            f"chinwag admin: no chinwag database in {data_dir}; pass the server's --data DIR",
            file=sys.stderr,
        )
        return 1
    if command in ("accounts", "stats"):
        return await _report(command, db)
    request = {"op": command, "nick": args.nick}
    if password is not None:
        request["password"] = password
    try:
        ok, message, status = await ask(data_dir, request, ASK_TIMEOUT)
    except NotRunning:
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


async def _report(command: str, db: Path) -> int:
    store = await SqliteStore.open(db)
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
