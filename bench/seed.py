"""Accounts for the reconnect storm, written straight into a fresh data directory.

Registering 1,000 accounts through the protocol would cost 1,000 argon2id hashes
(≈20 ms each on one core) before every run; the storm measures logins, not
registrations. So the runner writes the accounts with chinwag's own store before
the server starts: every account gets the same argon2id hash (one password, one
salt), made with the server's default cost, so each login still pays a full
verification. Each account is a member of the lobby from the start; the backlog
itself is then posted through the protocol by the load generator.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from chinwag.config import Settings
from chinwag.core.accounts import PasswordHasher, parse_nick
from chinwag.server.app import DB_NAME
from chinwag.storage.base import AccountRow, Store
from chinwag.storage.sqlite import SqliteStore


async def _seed(data_dir: Path, accounts: int, password: str) -> None:
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    store = await SqliteStore.open(data_dir / DB_NAME)
    try:
        await seed_store(store, accounts, password)
    finally:
        await store.close()


async def seed_store(store: Store, accounts: int, password: str) -> None:
    """Create accounts ``r0`` … in an open ``store`` (SQLite or PostgreSQL), in the lobby."""
    hasher = PasswordHasher(Settings())
    try:
        password_hash = await hasher.hash(password)
    finally:
        hasher.close()
    now_ms = int(time.time() * 1000)

    async def one(i: int) -> None:
        nick = parse_nick(f"r{i}")
        row = AccountRow(nick.key, nick.display, nick.skeleton, password_hash, now_ms, False, False)
        await store.create_account(row)
        await store.join_room("a:" + nick.key, "lobby")

    # Concurrent jobs share the writer's group commits: one fsync per batch.
    for start in range(0, accounts, 256):
        await asyncio.gather(*(one(i) for i in range(start, min(start + 256, accounts))))


def seed_accounts(data_dir: Path, accounts: int, password: str) -> None:
    """Create accounts ``r0`` … ``r<accounts-1>`` with ``password``, members of the lobby."""
    asyncio.run(_seed(data_dir, accounts, password))
