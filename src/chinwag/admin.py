"""``chinwag admin``: account management on a server's data directory.

It opens the same SQLite file as the server (WAL lets both run at once).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from chinwag.config import Settings
from chinwag.core.accounts import PasswordHasher, check_password, parse_nick
from chinwag.errors import ChatError
from chinwag.server.app import DB_NAME
from chinwag.storage.sqlite import SqliteStore


async def run_admin(
    command: str, data_dir: Path, args: argparse.Namespace, password: str | None
) -> int:
    db = data_dir / DB_NAME
    if not db.exists():
        print(
            f"chinwag admin: no chinwag database in {data_dir}; pass the server's --data DIR",
            file=sys.stderr,
        )
        return 1
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
            return 0
        if command == "stats":
            for name, value in (await store.stats()).items():
                print(f"{name:12} {value}")
            return 0
        try:
            key = parse_nick(args.nick).key
        except ChatError as exc:
            print(f"chinwag admin: {exc.message}", file=sys.stderr)
            return 2
        account = await store.get_account(key)
        if account is None or account.deleted:
            print(f"chinwag admin: no account called {args.nick!r}", file=sys.stderr)
            return 1
        if command == "delete":
            await store.delete_account(key)
            print(f"deleted {account.nick}; the nick stays reserved")
            return 0
        assert command == "reset-password" and password is not None
        settings = Settings()
        try:
            check_password(password, settings)
        except ChatError as exc:
            print(f"chinwag admin: {exc.message}", file=sys.stderr)
            return 2
        hasher = PasswordHasher(settings)
        try:
            await store.set_password_hash(key, await hasher.hash(password))
        finally:
            hasher.close()
        print(f"new password set for {account.nick}")
        return 0
    finally:
        await store.close()
