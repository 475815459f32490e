"""Stored DM receipts of the `Store` contract (issue 15), over every backend."""

from __future__ import annotations

import asyncio

from test_sqlite_store import account, opener, pg_server, store

from chinwag.storage.base import Store

__all__ = ["opener", "pg_server", "store"]  # fixtures, imported for pytest

T0 = 1_700_000_000_000


async def accounts(store: Store, *keys: str) -> None:
    for key in keys:
        await store.create_account(account(key))
        await store.set_receipts("a:" + key, True)


async def test_receipts_only_move_forwards_and_are_kept_per_pair(store: Store) -> None:
    await accounts(store, "ann", "bob", "cat")
    assert await store.stored_receipts("a:ann", "ann") == []
    await store.advance_receipt("a:ann", "a:bob", delivered=40)
    await store.advance_receipt("a:ann", "a:bob", read=38)
    await store.advance_receipt("a:ann", "a:bob", delivered=12, read=5)  # never back
    await store.advance_receipt("a:ann", "a:cat", delivered=7)
    await store.advance_receipt("a:bob", "a:ann", read=99)  # the other way: bob's DMs
    assert await store.stored_receipts("a:ann", "ann") == [("Bob", 40, 38), ("Cat", 7, 0)]
    assert await store.stored_receipts("a:ann", "ann", "a:cat") == [("Cat", 7, 0)]
    assert await store.stored_receipts("a:bob", "bob") == [("Ann", 0, 99)]


async def test_concurrent_advances_keep_the_highest(store: Store) -> None:
    await accounts(store, "ann", "bob")
    await asyncio.gather(
        *(store.advance_receipt("a:ann", "a:bob", delivered=n, read=n // 2) for n in range(1, 21))
    )
    assert await store.stored_receipts("a:ann", "ann") == [("Bob", 20, 10)]


async def test_a_reader_with_receipts_off_or_who_blocks_the_sender_is_left_out(
    store: Store,
) -> None:
    await accounts(store, "ann", "bob", "cat")
    await store.advance_receipt("a:ann", "a:bob", delivered=3)
    await store.advance_receipt("a:ann", "a:cat", delivered=4)
    await store.set_receipts("a:bob", False)
    await store.add_block("a:cat", "ann", "Ann", limit=5, created_ms=T0)
    assert await store.stored_receipts("a:ann", "ann") == []
    await store.set_receipts("a:bob", True)
    assert await store.stored_receipts("a:ann", "ann") == [("Bob", 3, 0)]


async def test_deleting_an_account_drops_its_receipts_both_ways(store: Store) -> None:
    await accounts(store, "ann", "bob")
    await store.advance_receipt("a:ann", "a:bob", delivered=3)
    await store.advance_receipt("a:bob", "a:ann", delivered=5)
    assert await store.delete_account("bob")
    assert await store.stored_receipts("a:ann", "ann") == []
    assert await store.stored_receipts("a:bob", "bob") == [], "what ann had of bob's is gone"


async def test_live_nicks_names_the_accounts_that_exist_and_are_not_deleted(store: Store) -> None:
    await accounts(store, "ann", "bob")
    assert await store.delete_account("bob")
    assert await store.live_nicks(["ann", "bob", "nobody"]) == {"ann": "Ann"}
    assert await store.live_nicks([]) == {}
