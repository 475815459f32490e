"""The blocks of the `Store` contract (issue 16), over every backend."""

from __future__ import annotations

import asyncio

from test_sqlite_store import account, opener, pg_server, store

from chinwag.storage.base import Store

__all__ = ["opener", "pg_server", "store"]  # fixtures, imported for pytest

T0 = 1_700_000_000_000


async def test_a_block_is_kept_once_listed_oldest_first_and_lifted(store: Store) -> None:
    assert await store.blocks_of("a:ann") == []
    assert await store.add_block("a:ann", "bob", "Bob", limit=5, created_ms=T0 + 2) == [
        ("bob", "Bob")
    ]
    held = await store.add_block("a:ann", "cat", "cat", limit=5, created_ms=T0 + 1)
    assert held == [("cat", "cat"), ("bob", "Bob")]
    again = await store.add_block("a:ann", "bob", "BOB", limit=5, created_ms=T0 + 9)
    assert again == [("cat", "cat"), ("bob", "Bob")], "a repeat changes nothing"
    assert await store.blocks_of("a:bob") == [], "blocks belong to the blocker"
    assert await store.remove_block("a:ann", "cat") == [("bob", "Bob")]
    assert await store.remove_block("a:ann", "nobody") == [("bob", "Bob")]
    assert await store.blocks_of("a:ann") == [("bob", "Bob")]


async def test_the_limit_refuses_one_more_and_stores_nothing(store: Store) -> None:
    for n, key in enumerate(("b1", "b2")):
        assert await store.add_block("a:ann", key, key, limit=2, created_ms=T0 + n) is not None
    assert await store.add_block("a:ann", "b3", "b3", limit=2, created_ms=T0 + 5) is None
    assert await store.add_block("a:ann", "b2", "b2", limit=2, created_ms=T0 + 6) is not None
    assert [k for k, _ in await store.blocks_of("a:ann")] == ["b1", "b2"]


async def test_concurrent_blocks_never_pass_the_limit(store: Store) -> None:
    results = await asyncio.gather(
        *(store.add_block("a:ann", f"n{i}", f"n{i}", limit=3, created_ms=T0 + i) for i in range(8))
    )
    assert sum(r is not None for r in results) == 3
    assert len(await store.blocks_of("a:ann")) == 3


async def test_deleting_the_account_drops_its_blocks(store: Store) -> None:
    await store.create_account(account("ann"))
    await store.add_block("a:ann", "bob", "bob", limit=5, created_ms=T0)
    await store.add_block("a:cat", "ann", "ann", limit=5, created_ms=T0)
    assert await store.delete_account("ann")
    assert await store.blocks_of("a:ann") == []
    assert await store.blocks_of("a:cat") == [("ann", "ann")], "a block of its nick stays"
