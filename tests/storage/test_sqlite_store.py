"""The `Store` contract, run over every backend, plus SQLite-specific checks.

Add a backend by adding an opener to ``BACKENDS`` (STYLE example 8). An opener
called twice with the same ``tmp_path`` must reach the same database (the
reopen test relies on it).
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.services import PostgresServer, pg_database, pg_server

from chinwag.storage.base import (
    AccountExists,
    AccountRow,
    Gone,
    NewMessage,
    OverQuota,
    SearchScope,
    Store,
    StoredMessage,
    StoreError,
)
from chinwag.storage.sqlite import (
    BACKLOG_IDS_SQL,
    BACKLOG_MEMBERSHIPS_SQL,
    BACKLOG_ROWS_SQL,
    DM_HISTORY_SQL,
    ROOM_HISTORY_SQL,
    UNDELIVERED_SQL,
    SqliteStore,
)

Opener = Callable[[Path], Awaitable[Store]]
__all__ = ["pg_server"]  # the session fixture, imported for pytest

T0 = 1_700_000_000_000
TTL = 86_400_000
DB_NAME = "chinwag.db"


async def open_sqlite(tmp_path: Path) -> Store:
    return await SqliteStore.open(tmp_path / DB_NAME)


async def open_postgres(server: PostgresServer, tmp_path: Path) -> Store:
    """A database of its own per test (named after ``tmp_path``) in the private cluster."""
    from chinwag.storage.postgres import PostgresStore

    return await PostgresStore.open(await pg_database(server, tmp_path))


BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql")]


@pytest.fixture(params=BACKENDS)
def opener(request: pytest.FixtureRequest) -> Opener:
    if request.param == "sqlite":
        return open_sqlite
    server: PostgresServer = request.getfixturevalue("pg_server")
    return functools.partial(open_postgres, server)


@pytest.fixture
async def store(opener: Opener, tmp_path: Path) -> AsyncIterator[Store]:
    s = await opener(tmp_path)
    try:
        yield s
    finally:
        await s.close()


def nick_of(principal: str) -> str:
    return principal.split(":", 1)[1]


def say(
    body: str = "hi",
    *,
    room: str = "lobby",
    sender: str = "a:ann",
    cid: str | None = None,
    ts: int = T0,
    dedupe_key: str | None = None,
) -> NewMessage:
    return NewMessage(
        ts_ms=ts,
        sender=sender,
        sender_nick=nick_of(sender),
        dedupe_key=dedupe_key or nick_of(sender),
        room=room,
        recipient=None,
        recipient_nick=None,
        body=body,
        cid=cid,
    )


def dm(
    sender: str,
    recipient: str,
    body: str = "psst",
    *,
    cid: str | None = None,
    ts: int = T0,
) -> NewMessage:
    return NewMessage(
        ts_ms=ts,
        sender=sender,
        sender_nick=nick_of(sender),
        dedupe_key=nick_of(sender),
        room=None,
        recipient=recipient,
        recipient_nick=nick_of(recipient),
        body=body,
        cid=cid,
    )


def account(key: str, *, skeleton: str | None = None) -> AccountRow:
    return AccountRow(
        key=key,
        nick=key.capitalize(),
        skeleton=skeleton or key,
        password_hash=f"$argon2id$hash-of-{key}",
        created_ms=T0,
        deleted=False,
        bot=False,
    )


async def post(store: Store, msg: NewMessage, quota: int | None = None) -> int:
    result = await store.append(msg, cid_ttl_ms=TTL, quota=quota)
    return result.message.id


async def count(store: Store) -> int:
    return (await store.stats())["messages"]


async def read_backlog(
    store: Store, account: str, after_id: int, *, limit: int, since_ms: int, page: int = 2
) -> tuple[list[StoredMessage], bool]:
    """The whole backlog as the hub reads it: its start, then keyset pages of ``page``."""
    start = await store.backlog_start(account, after_id, limit=limit, since_ms=since_ms, page=page)
    assert len(start.first) <= page
    messages = list(start.first)
    while messages and (
        chunk := await store.backlog_page(
            account, messages[-1].id, start.upto_id, since_ms=since_ms, limit=page
        )
    ):
        assert len(chunk) <= page
        messages += chunk
    assert start.count == len(messages)
    return messages, start.truncated


# -- messages -----------------------------------------------------------------


async def test_ids_are_positive_and_increase(store: Store) -> None:
    assert await store.max_message_id() == 0
    ids = [await post(store, say(f"m{i}")) for i in range(5)]
    assert ids[0] > 0
    assert ids == sorted(set(ids))
    assert await store.max_message_id() == ids[-1]


async def test_append_returns_what_was_stored_and_any_unicode_round_trips(store: Store) -> None:
    body = "héllo 👋🏽 ∑ ‮rtl‬ e\u0301 \x00?\n\tend 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"
    result = await store.append(say(body, cid="c-1"), cid_ttl_ms=TTL)
    assert not result.duplicate
    stored = result.message
    assert (stored.body, stored.cid, stored.room, stored.sender) == (body, "c-1", "lobby", "a:ann")
    page = await store.room_history("lobby", before=None, limit=10)
    assert page.messages == [stored]


async def test_a_notice_is_stored_as_one_in_history_backlog_and_dedupe(store: Store) -> None:
    """ircmsg (migrations 012 / pg 009): a notice is a message with ``notice`` set."""
    said = await store.append(replace(say("heads up", cid="n-1"), notice=True), cid_ttl_ms=TTL)
    assert said.message.notice
    await post(store, say("plain"))
    told = await post(store, replace(dm("a:bob", "a:ann", "psst"), notice=True))
    page = await store.room_history("lobby", before=None, limit=10)
    assert [(m.body, m.notice) for m in page.messages] == [("heads up", True), ("plain", False)]
    [direct] = (await store.dm_history("a:ann", "a:bob", before=None, limit=10)).messages
    assert (direct.id, direct.notice) == (told, True)
    messages, _ = await read_backlog(store, "a:ann", 0, limit=100, since_ms=0)
    assert [(m.id, m.notice) for m in messages] == [(told, True)]  # ann is in no room
    again = await store.append(replace(say("heads up", cid="n-1"), notice=True), cid_ttl_ms=TTL)
    assert again.duplicate and again.message.notice


async def test_multiline_concat_points_are_kept_until_an_edit_replaces_the_body(
    store: Store,
) -> None:
    """ircmsg (migrations 012 / pg 009): where IRC lines were joined without a newline."""
    said = await post(store, replace(say("a\nbc d"), concat=(3, 5)))
    [stored] = (await store.room_history("lobby", before=None, limit=10)).messages
    assert (stored.id, stored.concat) == (said, (3, 5))
    edit = replace(say("new text"), kind="edit", target=said)
    await post(store, edit)
    [edited] = (await store.room_history("lobby", before=None, limit=10)).messages
    assert (edited.body, edited.concat) == ("new text", ())


async def test_append_refuses_a_message_with_both_or_neither_target(store: Store) -> None:
    both = NewMessage(T0, "a:ann", "ann", "ann", "lobby", "a:bob", "bob", "x", None)
    with pytest.raises(ValueError):
        await store.append(both, cid_ttl_ms=TTL)
    assert await count(store) == 0


async def test_same_cid_within_ttl_returns_the_original_and_stores_nothing(store: Store) -> None:
    first = await store.append(say("one", cid="c-1"), cid_ttl_ms=TTL)
    again = await store.append(say("two", cid="c-1", ts=T0 + TTL - 1), cid_ttl_ms=TTL)
    assert again.duplicate
    assert again.message == first.message  # same id, original body
    assert await count(store) == 1


async def test_cid_dedupe_is_per_sender_and_absent_cids_never_dedupe(store: Store) -> None:
    await post(store, say(cid="c-1", sender="a:ann"))
    other = await store.append(say(cid="c-1", sender="a:bob"), cid_ttl_ms=TTL)
    assert not other.duplicate
    await post(store, say("same"))
    await post(store, say("same"))
    assert await count(store) == 4


async def test_same_cid_after_ttl_makes_a_new_message_which_then_dedupes(store: Store) -> None:
    first = await post(store, say("one", cid="c-1"))
    later = await store.append(say("two", cid="c-1", ts=T0 + TTL), cid_ttl_ms=TTL)
    assert not later.duplicate and later.message.id > first
    repeat = await store.append(say("three", cid="c-1", ts=T0 + TTL + 5), cid_ttl_ms=TTL)
    assert repeat.duplicate and repeat.message == later.message
    assert await count(store) == 2


async def test_dm_over_quota_is_refused_and_stores_nothing(store: Store) -> None:
    a = await post(store, dm("a:ann", "a:bob", cid="c-1"), quota=2)
    await post(store, dm("a:ann", "a:bob"), quota=2)
    with pytest.raises(OverQuota):
        await post(store, dm("a:ann", "a:bob", "too many"), quota=2)
    assert await count(store) == 2
    # A repeat of an accepted cid still gets its original ack, quota or not.
    repeat = await store.append(dm("a:ann", "a:bob", cid="c-1"), cid_ttl_ms=TTL, quota=2)
    assert repeat.duplicate and repeat.message.id == a
    # Without a quota (recipient online) it is stored.
    await post(store, dm("a:ann", "a:bob"))
    assert await count(store) == 3


async def test_quota_counts_only_undelivered_dms_from_others(store: Store) -> None:
    first = await post(store, dm("a:ann", "a:bob"), quota=2)
    await post(store, dm("a:bob", "a:bob", "note to self"), quota=2)
    await post(store, say(sender="a:ann"))
    await post(store, dm("a:ann", "a:bob"), quota=2)
    with pytest.raises(OverQuota):
        await post(store, dm("a:ann", "a:bob"), quota=2)
    await store.advance_cursor("a:bob", "phone", first)
    await post(store, dm("a:ann", "a:bob"), quota=2)


async def test_a_refused_job_does_not_poison_the_others_of_its_batch(store: Store) -> None:
    await store.create_account(account("ann"))
    await post(store, dm("a:ann", "a:bob"), quota=1)
    results = await asyncio.gather(
        store.append(say("before"), cid_ttl_ms=TTL),
        store.create_account(account("ann")),
        store.append(dm("a:ann", "a:bob"), cid_ttl_ms=TTL, quota=1),
        store.create_account(account("bob")),
        store.append(say("after"), cid_ttl_ms=TTL),
        return_exceptions=True,
    )
    assert isinstance(results[1], AccountExists)
    assert isinstance(results[2], OverQuota)
    assert not any(isinstance(r, BaseException) for r in (results[0], results[3], results[4]))
    assert await store.get_account("bob") is not None
    page = await store.room_history("lobby", before=None, limit=10)
    assert [m.body for m in page.messages] == ["before", "after"]
    assert await count(store) == 3


def _note(finished: list[int], i: int, _future: object) -> None:
    finished.append(i)


async def test_appends_are_queued_when_called_and_resolve_in_call_order(store: Store) -> None:
    """What lets the hub keep many messages of one connection in flight."""
    finished: list[int] = []
    futures = []
    for i in range(60):
        future = store.append(say(f"m{i}", cid=f"c-{i}"), cid_ttl_ms=TTL)
        future.add_done_callback(functools.partial(_note, finished, i))
        futures.append(future)
    results = [await f for f in reversed(futures)]  # awaited last-first
    ids = [r.message.id for r in reversed(results)]
    assert ids == sorted(ids) and len(set(ids)) == 60, "ids follow call order"
    assert finished == list(range(60)), "futures resolve in call order"
    page = await store.room_history("lobby", before=None, limit=100)
    assert [m.body for m in page.messages] == [f"m{i}" for i in range(60)]


async def committed_with_the_next(store: SqliteStore) -> bool:
    """Append a, then b 50 ms (another loop turn) later: did a's commit carry b too?"""
    later: list[asyncio.Future[Any]] = []
    together: list[bool] = []
    a = store.append(say("a"), cid_ttl_ms=TTL)
    a.add_done_callback(lambda _f: together.append(bool(later) and later[0].done()))
    await asyncio.sleep(0.05)
    later.append(store.append(say("b"), cid_ttl_ms=TTL))
    await asyncio.wait_for(asyncio.gather(a, later[0]), timeout=5)
    assert len(together) == 1
    return together[0]


async def test_with_a_commit_delay_writes_in_quick_succession_share_a_commit(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path / DB_NAME, commit_delay=0.5)
    try:
        started = time.monotonic()
        await store.append(say("first"), cid_ttl_ms=TTL)  # after a quiet spell: at once
        assert time.monotonic() - started < 0.4
        # Writes keep coming now: the next one waits for company.
        assert await committed_with_the_next(store), "b was committed with a"
    finally:
        await store.close()


async def test_a_write_further_than_three_commit_delays_from_the_last_does_not_wait(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path / DB_NAME, commit_delay=0.2)
    try:
        await store.append(say("first"), cid_ttl_ms=TTL)
        await asyncio.sleep(0.8)  # more than three delays: no write would share a wait
        assert not await committed_with_the_next(store), "a was committed before b was written"
    finally:
        await store.close()


async def test_without_a_commit_delay_a_write_does_not_wait_for_the_next(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path / DB_NAME)  # commit_delay=0
    try:
        await store.append(say("first"), cid_ttl_ms=TTL)
        assert not await committed_with_the_next(store), "a was committed before b was written"
    finally:
        await store.close()


async def test_a_database_error_in_one_job_reruns_the_batch_and_spares_the_others(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path / DB_NAME)
    try:
        before = store.append(say("before", cid="c-b"), cid_ttl_ms=TTL)
        broken = store._submit(lambda conn: conn.execute("INSERT INTO no_such_table VALUES (1)"))
        after = store.append(say("after", cid="c-a"), cid_ttl_ms=TTL)
        results = await asyncio.wait_for(
            asyncio.gather(before, broken, after, return_exceptions=True), timeout=5
        )
        assert isinstance(results[1], StoreError)
        first, last = results[0], results[2]
        assert not isinstance(first, BaseException) and not isinstance(last, BaseException)
        assert last.message.id == first.message.id + 1, "the re-run kept the ids"
        page = await store.room_history("lobby", before=None, limit=10)
        assert [m.body for m in page.messages] == ["before", "after"]
        again = await store.append(say("dup", cid="c-a"), cid_ttl_ms=TTL)
        assert again.duplicate and again.message.id == last.message.id, "dedupe row kept"
    finally:
        await store.close()


async def test_concurrent_appends_get_distinct_ids_and_resume_in_id_order(store: Store) -> None:
    resumed: list[int] = []

    async def one(i: int) -> int:
        msg_id = await post(store, say(f"m{i}", cid=f"c-{i}"))
        resumed.append(msg_id)
        return msg_id

    ids = await asyncio.gather(*(one(i) for i in range(500)))
    assert len(set(ids)) == 500
    assert ids == sorted(ids)  # submitted in this order, so stored in this order
    assert resumed == sorted(resumed)  # the awaits returned in id order
    assert await count(store) == 500


# -- backlog --------------------------------------------------------------------


async def test_messages_between_reads_a_gap_of_every_kind_by_id(store: Store) -> None:
    ids = [
        await post(store, say("r1")),
        await post(store, dm("a:ann", "a:bob")),
        await post(store, say("r2", room="den")),
        await post(store, say("r3")),
    ]
    got = await store.messages_between(ids[0], ids[2])
    assert [(m.id, m.body) for m in got] == [(ids[1], "psst"), (ids[2], "r2")]
    assert await store.messages_between(ids[3], ids[3] + 10) == []


async def test_backlog_follows_membership_intervals(store: Store) -> None:
    await post(store, say("before join"))
    assert await store.join_room("a:ann", "lobby")
    assert not await store.join_room("a:ann", "lobby")
    await post(store, say("while member", sender="a:bob"))
    await post(store, say("elsewhere", room="games", sender="a:bob"))
    assert await store.leave_room("a:ann", "lobby")
    assert not await store.leave_room("a:ann", "lobby")
    await post(store, say("after leave", sender="a:bob"))
    assert await store.join_room("a:ann", "lobby")
    await post(store, say("after rejoin", sender="a:bob"))
    messages, truncated = await read_backlog(store, "a:ann", 0, limit=100, since_ms=0)
    assert [m.body for m in messages] == ["while member", "after rejoin"]
    assert not truncated


async def test_leaving_and_rejoining_without_messages_between_keeps_membership(
    store: Store,
) -> None:
    await post(store, say("old"))
    assert await store.join_room("a:ann", "lobby")
    assert await store.leave_room("a:ann", "lobby")
    assert await store.join_room("a:ann", "lobby")
    assert await store.leave_room("a:ann", "lobby")
    assert await store.rooms_of("a:ann") == []
    assert await store.join_room("a:ann", "lobby")
    await post(store, say("new"))
    messages, _ = await read_backlog(store, "a:ann", 0, limit=100, since_ms=0)
    assert [m.body for m in messages] == ["new"]
    assert await store.rooms_of("a:ann") == ["lobby"]


async def test_backlog_has_dms_both_ways_once_and_no_one_elses(store: Store) -> None:
    sent = await post(store, dm("a:ann", "a:bob", "to bob"))
    got = await post(store, dm("a:bob", "a:ann", "to ann"))
    own = await post(store, dm("a:ann", "a:ann", "to self"))
    await post(store, dm("a:bob", "a:cat", "not ann's"))
    await post(store, dm("g:7", "a:bob", "guest to bob"))
    messages, _ = await read_backlog(store, "a:ann", 0, limit=100, since_ms=0)
    assert [m.id for m in messages] == [sent, got, own]
    bob, _ = await read_backlog(store, "a:bob", 0, limit=100, since_ms=0)
    assert [m.body for m in bob] == ["to bob", "to ann", "not ann's", "guest to bob"]


async def test_backlog_after_id_since_limit_truncated_oldest_first(store: Store) -> None:
    await store.join_room("a:ann", "lobby")
    ids = [await post(store, say(f"m{i}", sender="a:bob", ts=T0 + i)) for i in range(10)]
    ids.append(await post(store, dm("a:bob", "a:ann", "m10", ts=T0 + 10)))

    messages, truncated = await read_backlog(store, "a:ann", ids[4], limit=100, since_ms=0)
    assert [m.id for m in messages] == ids[5:]
    assert not truncated

    messages, truncated = await read_backlog(store, "a:ann", 0, limit=100, since_ms=T0 + 8)
    assert [m.body for m in messages] == ["m8", "m9", "m10"]
    assert not truncated

    messages, truncated = await read_backlog(store, "a:ann", 0, limit=3, since_ms=0)
    assert [m.body for m in messages] == ["m8", "m9", "m10"]  # the newest 3, oldest first
    assert truncated

    messages, truncated = await read_backlog(store, "a:ann", ids[7], limit=3, since_ms=0)
    assert [m.id for m in messages] == ids[8:]
    assert not truncated  # exactly limit left: nothing left out

    assert await read_backlog(store, "a:ann", ids[-1], limit=100, since_ms=0) == ([], False)


async def test_backlog_of_an_account_in_several_rooms_is_in_id_order(store: Store) -> None:
    for room in ("lobby", "games", "dev"):
        await store.join_room("a:ann", room)
    expected = []
    for i in range(12):
        room = ("lobby", "games", "dev", "other")[i % 4]
        msg_id = await post(store, say(f"m{i}", room=room, sender="a:bob"))
        if room != "other":
            expected.append(msg_id)
    messages, _ = await read_backlog(store, "a:ann", 0, limit=100, since_ms=0)
    assert [m.id for m in messages] == expected


async def test_backlog_pages_of_any_size_give_every_message_once_in_id_order(
    store: Store,
) -> None:
    await store.join_room("a:ann", "lobby")
    await store.join_room("a:ann", "games")
    expected: list[int] = []
    for i in range(30):
        kind = i % 6
        if kind == 0:
            expected.append(await post(store, say(f"l{i}", sender="a:bob")))
        elif kind == 1:
            expected.append(await post(store, say(f"g{i}", room="games", sender="a:bob")))
        elif kind == 2:
            expected.append(await post(store, dm("a:bob", "a:ann", f"in{i}")))
        elif kind == 3:
            expected.append(await post(store, dm("a:ann", "a:cat", f"out{i}")))
        elif kind == 4:
            expected.append(await post(store, dm("a:ann", "a:ann", f"self{i}")))
        else:
            await post(store, say(f"x{i}", room="dev", sender="a:bob"))  # not ann's room
        if i in (8, 14, 21):  # gaps in the games membership: what is said then is not ann's
            await store.leave_room("a:ann", "games")
            await post(store, say("while away", room="games", sender="a:bob"))
            await store.join_room("a:ann", "games")
    for page in (1, 2, 3, 7, 100):
        messages, truncated = await read_backlog(
            store, "a:ann", 0, limit=100, since_ms=0, page=page
        )
        assert [m.id for m in messages] == expected, page
        assert not truncated


async def test_backlog_pages_stop_at_the_newest_message_of_the_start(store: Store) -> None:
    await store.join_room("a:ann", "lobby")
    old = [await post(store, say(f"old {i}", sender="a:bob")) for i in range(5)]
    start = await store.backlog_start("a:ann", 0, limit=100, since_ms=0, page=2)
    assert [m.id for m in start.first] == old[:2]
    assert (start.count, start.truncated, start.upto_id) == (5, False, old[-1])
    # Committed after the start was read: live traffic for that login, never backlog.
    await post(store, say("live", sender="a:bob"))
    await post(store, dm("a:bob", "a:ann", "live dm"))
    rest = await store.backlog_page("a:ann", old[1], start.upto_id, since_ms=0, limit=3)
    assert [m.id for m in rest] == old[2:]
    assert await store.backlog_page("a:ann", old[-1], start.upto_id, since_ms=0, limit=3) == []


async def test_backlog_start_keeps_the_newest_limit_within_retention(store: Store) -> None:
    await store.join_room("a:ann", "lobby")
    # The clock stepped back once: ids follow commits, not timestamps.
    stamps = [T0 + 1, T0 + 9, T0 + 2, T0 + 10, T0 + 11, T0 + 12, T0 + 13]
    ids = [await post(store, say(f"m{i}", ts=ts)) for i, ts in enumerate(stamps)]
    start = await store.backlog_start("a:ann", 0, limit=100, since_ms=T0 + 5, page=1)
    assert ([m.id for m in start.first], start.count, start.truncated) == ([ids[1]], 5, False)
    messages, _ = await read_backlog(store, "a:ann", 0, limit=100, since_ms=T0 + 5, page=1)
    assert [m.id for m in messages] == [ids[1], *ids[3:]]  # m2 is too old, though newer
    messages, truncated = await read_backlog(store, "a:ann", 0, limit=3, since_ms=T0 + 5)
    assert [m.id for m in messages] == ids[4:] and truncated
    messages, truncated = await read_backlog(store, "a:ann", 0, limit=0, since_ms=0)
    assert messages == [] and truncated
    empty = await store.backlog_start("a:bob", 0, limit=100, since_ms=0, page=10)
    assert (empty.first, empty.count, empty.truncated) == ([], 0, False)


# -- history --------------------------------------------------------------------


async def test_room_history_pages_back_with_before_and_more(store: Store) -> None:
    ids = [await post(store, say(f"m{i}")) for i in range(7)]
    await post(store, say("elsewhere", room="games"))
    page = await store.room_history("lobby", before=None, limit=3)
    assert [m.id for m in page.messages] == ids[4:] and page.more
    page = await store.room_history("lobby", before=page.messages[0].id, limit=3)
    assert [m.id for m in page.messages] == ids[1:4] and page.more
    page = await store.room_history("lobby", before=page.messages[0].id, limit=3)
    assert [m.id for m in page.messages] == ids[:1] and not page.more
    exact = await store.room_history("lobby", before=None, limit=7)
    assert [m.id for m in exact.messages] == ids and not exact.more
    empty = await store.room_history("nowhere", before=None, limit=3)
    assert empty.messages == [] and not empty.more


async def test_dm_history_has_both_directions_of_one_conversation_only(store: Store) -> None:
    ids = []
    for i in range(6):
        a, b = ("a:ann", "a:bob") if i % 2 == 0 else ("a:bob", "a:ann")
        ids.append(await post(store, dm(a, b, f"m{i}")))
        await post(store, dm("a:ann", "a:cat", "other conversation"))
        await post(store, dm("a:ann", "a:ann", "self"))
    page = await store.dm_history("a:bob", "a:ann", before=None, limit=4)
    assert [m.id for m in page.messages] == ids[2:] and page.more
    page = await store.dm_history("a:ann", "a:bob", before=page.messages[0].id, limit=4)
    assert [m.id for m in page.messages] == ids[:2] and not page.more
    own = await store.dm_history("a:ann", "a:ann", before=None, limit=50)
    assert [m.body for m in own.messages] == ["self"] * 6 and not own.more


async def test_history_ranges_read_either_end_between_two_ids(store: Store) -> None:
    ids = [await post(store, say(f"m{i}")) for i in range(7)]
    await post(store, say("elsewhere", room="games"))

    async def room(
        after: int, before: int | None, limit: int, newest: bool
    ) -> tuple[list[int], bool]:
        page = await store.room_history_range(
            "lobby", after=after, before=before, limit=limit, newest=newest
        )
        return [m.id for m in page.messages], page.more

    assert await room(ids[1], None, 3, False) == (ids[2:5], True)
    assert await room(ids[1], None, 5, False) == (ids[2:], False)  # exactly the rest
    assert await room(ids[1], ids[5], 10, False) == (ids[2:5], False)  # both bounds excluded
    assert await room(ids[0], ids[6], 2, True) == (ids[4:6], True)  # the newest end
    assert await room(ids[6], None, 5, False) == ([], False)
    assert await room(0, None, 0, False) == ([], True)
    dms = []
    for i in range(4):
        a, b = ("a:ann", "a:bob") if i % 2 == 0 else ("a:bob", "a:ann")
        dms.append(await post(store, dm(a, b, f"d{i}")))
        await post(store, dm("a:ann", "a:cat", "other conversation"))
    page = await store.dm_history_range(
        "a:bob", "a:ann", after=dms[0], before=None, limit=2, newest=False
    )
    assert [m.id for m in page.messages] == dms[1:3] and page.more
    page = await store.dm_history_range(
        "a:ann", "a:bob", after=0, before=dms[3], limit=2, newest=True
    )
    assert [m.id for m in page.messages] == dms[1:3] and page.more
    assert [m.body for m in page.messages] == ["d1", "d2"]


async def test_history_ranges_bound_by_time_too(store: Store) -> None:
    ids = [await post(store, say(f"t{i}", ts=T0 + 1000 * i)) for i in range(5)]
    page = await store.room_history_range(
        "lobby", after=0, before=None, limit=10, newest=False, after_ms=T0 + 1000
    )
    assert [m.id for m in page.messages] == ids[2:] and not page.more  # after: exclusive
    page = await store.room_history_range(
        "lobby", after=0, before=None, limit=1, newest=True, before_ms=T0 + 3000
    )
    assert [m.id for m in page.messages] == ids[2:3] and page.more
    page = await store.room_history_range(
        "lobby", after=ids[0], before=None, limit=10, newest=False, before_ms=T0 + 2000
    )
    assert [m.id for m in page.messages] == ids[1:2]  # ids and times together
    dms = [await post(store, dm("a:ann", "a:bob", f"d{i}", ts=T0 + 1000 * i)) for i in range(3)]
    page = await store.dm_history_range(
        "a:bob", "a:ann", after=0, before=None, limit=10, newest=False, after_ms=T0
    )
    assert [m.id for m in page.messages] == dms[1:]


async def test_conversation_heads_are_the_newest_message_of_each_conversation(
    store: Store,
) -> None:
    first = await post(store, say("old", room="lobby"))
    lobby = await post(store, say("new", room="lobby"))
    games = await post(store, say("g", room="games"))
    await post(store, say("not asked", room="other"))
    await post(store, dm("a:ann", "a:bob", "one"))
    bob = await post(store, dm("a:bob", "a:ann", "two"))  # the other way, newer
    cat = await post(store, dm("a:cat", "a:ann", "hi"))
    me = await post(store, dm("a:ann", "a:ann", "note"))
    await post(store, dm("a:bob", "a:cat", "not hers"))
    got = await store.conversation_heads("a:ann", ["lobby", "games", "empty"])
    assert sorted(m.id for m in got) == sorted([lobby, games, bob, cat, me])
    assert first not in {m.id for m in got}
    assert await store.conversation_heads("a:dan", []) == []


# -- cursors --------------------------------------------------------------------


async def test_cursors_only_move_forward_per_device(store: Store) -> None:
    assert await store.get_cursor("a:ann", "desk") is None
    assert await store.max_cursor("a:ann") == 0
    assert await store.advance_cursor("a:ann", "desk", 5) == 5
    assert await store.advance_cursor("a:ann", "desk", 3) == 5
    assert await store.get_cursor("a:ann", "desk") == 5
    assert await store.advance_cursor("a:ann", "phone", 2) == 2
    assert await store.max_cursor("a:ann") == 5
    assert await store.advance_cursor("a:ann", "phone", 9) == 9
    assert await store.max_cursor("a:ann") == 9
    assert await store.get_cursor("a:ann", "desk") == 5
    assert await store.max_cursor("a:bob") == 0


async def test_undelivered_counts_dms_from_others_above_the_highest_cursor(store: Store) -> None:
    first = await post(store, dm("a:ann", "a:bob"))
    await post(store, dm("g:3", "a:bob"))
    await post(store, dm("a:bob", "a:bob"))
    await post(store, dm("a:bob", "a:ann"))
    await post(store, say(sender="a:ann"))
    await post(store, dm("a:ann", "a:bob"))
    assert await store.undelivered("a:bob") == 3
    await store.advance_cursor("a:bob", "phone", first)
    assert await store.undelivered("a:bob") == 2
    await store.advance_cursor("a:bob", "desk", await store.max_message_id())
    assert await store.undelivered("a:bob") == 0
    assert await store.undelivered("a:nobody") == 0


# -- accounts -------------------------------------------------------------------


async def test_accounts_create_get_and_refuse_duplicates(store: Store) -> None:
    assert await store.get_account("ann") is None
    await store.create_account(account("ann", skeleton="ann-skel"))
    assert await store.get_account("ann") == account("ann", skeleton="ann-skel")
    with pytest.raises(AccountExists):
        await store.create_account(account("ann"))
    assert await store.account_by_skeleton("ann-skel") == account("ann", skeleton="ann-skel")
    assert await store.account_by_skeleton("nobody") is None


async def test_set_password_hash_only_for_live_accounts(store: Store) -> None:
    await store.create_account(account("ann"))
    assert await store.set_password_hash("ann", "new-hash")
    row = await store.get_account("ann")
    assert row is not None and row.password_hash == "new-hash"
    assert not await store.set_password_hash("nobody", "x")


async def test_set_bot_marks_a_live_account_a_bot_or_not(store: Store) -> None:
    await store.create_account(account("ann"))
    assert await store.set_bot("ann", True)  # irccaps: IRC MODE +B
    row = await store.get_account("ann")
    assert row is not None and row.bot
    assert await store.set_bot("ann", False)
    row = await store.get_account("ann")
    assert row is not None and not row.bot
    assert not await store.set_bot("nobody", True)
    assert await store.delete_account("ann")
    assert not await store.set_bot("ann", True)


async def test_delete_account_keeps_the_nick_reserved_and_drops_rooms_and_cursors(
    store: Store,
) -> None:
    await store.create_account(account("ann", skeleton="skel"))
    await store.join_room("a:ann", "lobby")
    await store.advance_cursor("a:ann", "desk", 3)
    assert await store.delete_account("ann")
    row = await store.get_account("ann")
    assert row is not None and row.deleted and row.password_hash == ""
    assert await store.account_by_skeleton("skel") == row
    with pytest.raises(AccountExists):
        await store.create_account(account("ann"))
    assert not await store.set_password_hash("ann", "x")
    assert await store.rooms_of("a:ann") == []
    assert await store.get_cursor("a:ann", "desk") is None
    assert await store.room_member_counts() == {}
    assert not await store.delete_account("ann")
    assert not await store.delete_account("nobody")


async def test_list_accounts_by_key_with_deleted_ones(store: Store) -> None:
    for key in ("cat", "ann", "bob"):
        await store.create_account(account(key))
    await store.delete_account("bob")
    rows = await store.list_accounts()
    assert [(r.key, r.deleted) for r in rows] == [("ann", False), ("bob", True), ("cat", False)]
    stats = await store.stats()
    assert stats["accounts"] == 2


async def test_account_index_has_every_key_and_skeleton_with_deleted_ones(store: Store) -> None:
    assert await store.account_index() == []
    await store.create_account(account("cat", skeleton="caT"))
    await store.create_account(account("ann"))
    await store.create_account(account("bob"))
    await store.delete_account("bob")
    assert await store.account_index() == [
        ("ann", "ann", "Ann"),
        ("bob", "bob", "Bob"),
        ("cat", "caT", "Cat"),
    ]


async def test_adopt_moves_a_guests_dms_to_the_account(store: Store) -> None:
    out = await post(store, dm("g:17", "a:bob", "from guest"))
    back = await post(store, dm("a:bob", "g:17", "to guest"))
    await post(store, dm("g:18", "a:bob", "another guest"))
    await store.adopt("g:17", "a:ann")
    messages, _ = await read_backlog(store, "a:ann", 0, limit=100, since_ms=0)
    assert [(m.id, m.sender, m.recipient) for m in messages] == [
        (out, "a:ann", "a:bob"),
        (back, "a:bob", "a:ann"),
    ]
    page = await store.dm_history("a:ann", "a:bob", before=None, limit=10)
    assert [m.id for m in page.messages] == [out, back]
    assert (await store.dm_history("g:17", "a:bob", before=None, limit=10)).messages == []
    found = await store.search(["guest"], SearchScope((), "a:ann"), before=None, limit=10)
    assert [m.id for m in found.messages] == [back, out], "search finds them as the account's"
    assert (
        await store.search(["guest"], SearchScope((), "g:17"), before=None, limit=9)
    ).messages == []


# -- rooms ----------------------------------------------------------------------


async def test_rooms_of_and_member_counts(store: Store) -> None:
    for who, rooms in {"a:ann": ["lobby", "games"], "a:bob": ["lobby"], "a:cat": ["dev"]}.items():
        for room in rooms:
            await store.join_room(who, room)
    await store.leave_room("a:cat", "dev")
    assert await store.rooms_of("a:ann") == ["games", "lobby"]
    assert await store.rooms_of("a:cat") == []
    assert await store.room_member_counts() == {"lobby": 2, "games": 1}


# -- lifecycle ------------------------------------------------------------------


# -- protocol 1.1 (docs/protocol.md §10): events, replies, search, markers --


def event(
    kind: str, target: int, body: str = "", *, sender: str = "a:ann", ts: int = T0
) -> NewMessage:
    """An edit, delete, react or unreact of ``target`` in the lobby."""
    return replace(say(body, sender=sender, ts=ts), kind=kind, target=target)


async def test_events_are_applied_to_their_target_and_read_as_rows_of_the_stream(
    store: Store,
) -> None:
    target = await post(store, say("first words"))
    edit = await post(
        store, replace(event("edit", target, "second @Bob", ts=T0 + 5), mentions=("Bob",))
    )
    edited = await store.get_message(target)
    assert edited is not None
    assert (edited.body, edited.edited_ms, edited.mentions) == ("second @Bob", T0 + 5, ("Bob",))
    assert await store.get_message(edit) is None  # an event is not a message
    rows = await store.messages_between(0, edit)  # a node's gap fill reads events too
    assert [(m.id, m.kind, m.target) for m in rows] == [
        (target, None, None),
        (edit, "edit", target),
    ]
    history = await store.room_history("lobby", before=None, limit=10)
    assert [m.id for m in history.messages] == [target]  # history holds messages only
    delete = await post(store, event("delete", target))
    gone = await store.get_message(target)
    assert gone is not None and gone.deleted and gone.body == ""
    rows = await store.messages_between(target, delete)
    assert [(m.kind, m.body, m.deleted) for m in rows] == [
        ("edit", "", True),
        ("delete", "", False),
    ]
    with pytest.raises(Gone):
        await post(store, event("delete", target))
    with pytest.raises(Gone):
        await post(store, event("edit", target, "back again"))
    assert [m.id for m in await store.messages_between(0, 10**9)] == [target, edit, delete]


async def test_reactions_show_on_history_in_order_and_go_with_a_deletion(store: Store) -> None:
    target = await post(store, say("react to me"))
    await post(store, event("react", target, "👍", sender="a:bob"))
    await post(store, event("react", target, "🎉", sender="a:ann"))
    await post(store, event("react", target, "👍", sender="a:ann"))
    await post(store, event("react", target, "👍", sender="a:bob"))  # already on: no change
    page = await store.room_history("lobby", before=None, limit=10)
    assert page.messages[0].reactions == (("👍", ("bob", "ann")), ("🎉", ("ann",)))
    await post(store, event("unreact", target, "👍", sender="a:bob"))
    page = await store.room_history("lobby", before=None, limit=10)
    # Emojis come in the order of their oldest reaction that is still on.
    assert page.messages[0].reactions == (("🎉", ("ann",)), ("👍", ("ann",)))
    await post(store, event("delete", target))
    page = await store.room_history("lobby", before=None, limit=10)
    assert page.messages[0].reactions == ()


async def test_replies_and_mentions_round_trip(store: Store) -> None:
    await store.join_room("a:ann", "lobby")
    first = await post(store, say("question"))
    answer = await post(
        store, replace(say("@Bob yes", sender="a:cat"), reply_to=first, mentions=("Bob",))
    )
    got = await store.get_message(answer)
    assert got is not None and (got.reply_to, got.mentions) == (first, ("Bob",))
    start = await store.backlog_start("a:ann", 0, limit=10, since_ms=0, page=10)
    assert [(m.reply_to, m.mentions) for m in start.first] == [(None, ()), (first, ("Bob",))]


async def test_search_ignores_case_and_accents_and_matches_whole_words(store: Store) -> None:
    cafe = await post(store, say("Un CAFÉ au lait, s'il vous plaît"))
    await post(store, say("cafeteria food"))
    scope = SearchScope(rooms=("lobby",), me=None)
    for words in (["cafe"], ["Café"], ["CAFE", "lait"], ["plait"]):
        page = await store.search(words, scope, before=None, limit=10)
        assert [m.id for m in page.messages] == [cafe], words
    assert (await store.search(["caf"], scope, before=None, limit=10)).messages == []
    assert (await store.search(["cafe", "food"], scope, before=None, limit=10)).messages == []


async def test_search_finds_only_what_the_scope_may_see_newest_first_in_pages(
    store: Store,
) -> None:
    ids = [await post(store, say(f"needle {i}")) for i in range(3)]
    await post(store, say("needle elsewhere", room="attic"))
    to_me = await post(store, dm("a:bob", "a:ann", "needle for ann"))
    await post(store, dm("a:bob", "a:cat", "needle for cat"))
    page = await store.search(["needle"], SearchScope(("lobby",), "a:ann"), before=None, limit=2)
    assert ([m.id for m in page.messages], page.more) == ([to_me, ids[2]], True)
    page = await store.search(["needle"], SearchScope(("lobby",), "a:ann"), before=ids[2], limit=2)
    assert ([m.id for m in page.messages], page.more) == ([ids[1], ids[0]], False)
    with_bob = SearchScope((), "a:ann", with_="a:bob")
    assert [
        m.id for m in (await store.search(["needle"], with_bob, before=None, limit=9)).messages
    ] == [to_me]
    by_bob = SearchScope(("lobby",), "a:ann", sender="a:bob")
    assert [
        m.id for m in (await store.search(["needle"], by_bob, before=None, limit=9)).messages
    ] == [to_me]


async def test_search_follows_edits_and_never_finds_a_deleted_message(store: Store) -> None:
    target = await post(store, say("old secret"))
    scope = SearchScope(rooms=("lobby",), me=None)
    await post(store, event("edit", target, "new words"))
    assert (await store.search(["secret"], scope, before=None, limit=9)).messages == []
    assert [m.id for m in (await store.search(["new"], scope, before=None, limit=9)).messages] == [
        target
    ]
    await post(store, event("delete", target))
    assert (await store.search(["new"], scope, before=None, limit=9)).messages == []


async def test_read_markers_only_move_forward_and_go_with_the_account(store: Store) -> None:
    await store.create_account(account("ann"))
    assert await store.advance_read("a:ann", "lobby", 5) == 5
    assert await store.advance_read("a:ann", "lobby", 3) == 5
    assert await store.advance_read("a:ann", "@a:bob", 7) == 7
    assert await store.read_markers("a:ann") == {"lobby": 5, "@a:bob": 7}
    assert await store.read_markers("a:bob") == {}
    assert await store.delete_account("ann")
    assert await store.read_markers("a:ann") == {}


async def test_a_marker_set_by_time_keeps_the_time_and_neither_ever_goes_back(
    store: Store,
) -> None:
    """ircmsg (migrations 012 / pg 009): the time a client gave, beside the marker."""
    await store.create_account(account("ann"))
    assert await store.read_marker("a:ann", "#lobby") == (0, None)
    assert await store.advance_read_at("a:ann", "#lobby", 0, T0) == (0, T0)  # no message then
    assert await store.advance_read_at("a:ann", "#lobby", 4, T0 - 5) == (4, T0)  # time stays
    assert await store.advance_read_at("a:ann", "#lobby", 2, T0 + 5) == (4, T0 + 5)  # id stays
    assert await store.advance_read("a:ann", "#lobby", 9) == 9  # by id: the time is kept
    assert await store.read_marker("a:ann", "#lobby") == (9, T0 + 5)
    assert await store.advance_read("a:ann", "@a:bob", 3) == 3
    assert await store.read_marker("a:ann", "@a:bob") == (3, None)  # never set by time
    assert await store.read_marker("a:bob", "#lobby") == (0, None)
    assert await store.read_markers("a:ann") == {"#lobby": 9, "@a:bob": 3}
    assert await store.delete_account("ann")
    assert await store.read_marker("a:ann", "#lobby") == (0, None)


async def test_receipts_setting_and_who_sent_dms_in_a_span(store: Store) -> None:
    for key in ("ann", "bob", "cat"):
        await store.create_account(account(key))
    await store.set_receipts("a:ann", True)
    await store.set_receipts("a:bob", True)
    await store.set_receipts("a:bob", False)
    assert await store.receipts_on(["a:ann", "a:bob", "a:cat", "g:x"]) == {"a:ann"}
    one = await post(store, dm("a:bob", "a:ann"))
    two = await post(store, dm("a:bob", "a:ann"))
    three = await post(store, dm("a:cat", "a:ann"))
    await post(store, dm("a:ann", "a:bob"))  # sent by ann: not a sender to ann
    assert await store.dm_senders("a:ann", 0, 10**9) == {"a:bob": two, "a:cat": three}
    assert await store.dm_senders("a:ann", one, two) == {"a:bob": two}


async def test_is_member_follows_join_and_leave(store: Store) -> None:
    assert not await store.is_member("a:ann", "attic")
    await store.join_room("a:ann", "attic")
    assert await store.is_member("a:ann", "attic")
    await store.leave_room("a:ann", "attic")
    assert not await store.is_member("a:ann", "attic")


async def test_everything_survives_close_and_reopen(opener: Opener, tmp_path: Path) -> None:
    store = await opener(tmp_path)
    await store.create_account(account("ann"))
    await store.join_room("a:ann", "lobby")
    first = await post(store, say("kept", cid="c-1"))
    await post(store, dm("a:bob", "a:ann", "kept dm"))
    await store.advance_cursor("a:ann", "desk", first)
    await store.close()

    store = await opener(tmp_path)
    try:
        assert await store.get_account("ann") == account("ann")
        assert await store.rooms_of("a:ann") == ["lobby"]
        assert await store.get_cursor("a:ann", "desk") == first
        messages, _ = await read_backlog(store, "a:ann", 0, limit=10, since_ms=0)
        assert [m.body for m in messages] == ["kept", "kept dm"]
        repeat = await store.append(say("again", cid="c-1"), cid_ttl_ms=TTL)
        assert repeat.duplicate and repeat.message.id == first
        assert await post(store, say("new")) > messages[-1].id
    finally:
        await store.close()


async def test_close_is_idempotent_and_later_calls_raise(opener: Opener, tmp_path: Path) -> None:
    store = await opener(tmp_path)
    pending = [asyncio.ensure_future(post(store, say(f"m{i}"))) for i in range(50)]
    await asyncio.sleep(0)  # let them queue
    await asyncio.gather(store.close(), store.close())
    await store.close()
    assert len(set(await asyncio.gather(*pending))) == 50  # queued writes were committed
    with pytest.raises(StoreError):
        await post(store, say("late"))
    with pytest.raises(StoreError):
        await store.max_message_id()
    reopened = await opener(tmp_path)
    try:
        assert await count(reopened) == 50
    finally:
        await reopened.close()


# -- SQLite specifics -------------------------------------------------------------


def _fill(db: Path, *, messages: int) -> None:
    """Insert many messages quickly (bypassing the store) for plan and speed checks."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO messages (ts_ms, sender, sender_nick, room, recipient,"
                " recipient_nick, body, cid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (T0 + i, f"a:u{i % 50}", f"u{i % 50}")
                    + (
                        ("lobby", None, None)
                        if i % 5
                        else (None, f"a:u{(i + 1) % 50}", f"u{(i + 1) % 50}")
                    )
                    + (f"body {i}", f"c-{i}")
                    for i in range(messages)
                ),
            )
    finally:
        conn.close()


async def test_queries_use_indexes_not_table_scans(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / DB_NAME)
    await store.close()
    _fill(tmp_path / DB_NAME, messages=2_000)
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        # Statistics of a lobby-dominated server must not change the plans.
        conn.execute("ANALYZE")
        cases = {
            ROOM_HISTORY_SQL: {"room": "lobby", "before": 100, "n": 11},
            DM_HISTORY_SQL: {"a": "a:u1", "b": "a:u2", "before": 100, "n": 11},
            UNDELIVERED_SQL: {"account": "a:u1", "cap": -1},
        }
        for sql, params in cases.items():
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
            scans = [step for step in plan if step.startswith("SCAN") and "messages" in step]
            assert not scans, (sql, plan)
            assert any("INDEX" in step for step in plan), (sql, plan)
        # Each backlog branch walks its index in id order: no sort, so reading
        # stops after the rows it needs.
        branch = {"account": "a:u1", "room": "lobby", "lo": 0, "hi": 100, "since": 0}
        for sql in (*BACKLOG_IDS_SQL, *BACKLOG_ROWS_SQL):
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, branch)]
            assert len(plan) == 1 and plan[0].startswith("SEARCH messages USING"), (sql, plan)
        bounds = {"account": "a:u1", "after": 0, "upto": 100}
        plan = [
            row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + BACKLOG_MEMBERSHIPS_SQL, bounds)
        ]
        assert plan == ["SEARCH memberships USING PRIMARY KEY (account=?)"], plan
    finally:
        conn.close()


async def test_backlog_is_fast_with_many_messages(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / DB_NAME)
    await store.join_room("a:u1", "lobby")
    await store.close()
    _fill(tmp_path / DB_NAME, messages=150_000)
    store = await SqliteStore.open(tmp_path / DB_NAME)
    try:
        high = await store.max_message_id()
        start = time.perf_counter()
        recent, truncated = await read_backlog(
            store, "a:u1", high - 500, limit=10_000, since_ms=0, page=100
        )
        recent_s = time.perf_counter() - start
        assert len(recent) == 400 + 10 and not truncated  # lobby + DMs to u1
        start = time.perf_counter()
        everything, truncated = await read_backlog(
            store, "a:u1", 0, limit=10_000, since_ms=0, page=100
        )
        everything_s = time.perf_counter() - start
        assert len(everything) == 10_000 and truncated
        assert [m.id for m in everything] == sorted(m.id for m in everything)
        assert recent_s < 0.5 and everything_s < 5.0, (recent_s, everything_s)
    finally:
        await store.close()


async def test_ids_are_never_reused_after_the_newest_is_deleted(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / DB_NAME)
    newest = await post(store, say("doomed"))
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    with conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM messages WHERE id = ?", (newest,))
    conn.close()
    store = await SqliteStore.open(tmp_path / DB_NAME)
    try:
        assert await post(store, say("next")) > newest
    finally:
        await store.close()


async def test_database_is_wal_and_migrated(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / DB_NAME)
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
        conn.execute("PRAGMA user_version = 999")
    finally:
        conn.close()
    with pytest.raises(StoreError, match="newer"):
        await SqliteStore.open(tmp_path / DB_NAME)


CHILD = """
import asyncio, sys
from pathlib import Path
from chinwag.storage.base import NewMessage
from chinwag.storage.sqlite import SqliteStore

async def main():
    store = await SqliteStore.open(Path(sys.argv[1]))
    async def one(i):
        msg = NewMessage(i, "a:ann", "ann", "ann", "lobby", None, None, f"body {i}", f"c-{i}")
        result = await store.append(msg, cid_ttl_ms=86_400_000)
        print(result.message.id, i, flush=True)
    i = 0
    while True:  # until killed
        await asyncio.gather(*(one(i + k) for k in range(16)))
        i += 16

asyncio.run(main())
"""


async def test_every_acked_message_survives_sigkill(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    await (await SqliteStore.open(db)).close()  # create and migrate first
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(db), stdout=asyncio.subprocess.PIPE
    )
    acked: dict[int, int] = {}
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            while len(acked) < 400:
                line = await proc.stdout.readline()
                assert line, "the child exited early"
                msg_id, i = map(int, line.split())
                acked[msg_id] = i
        os.kill(proc.pid, signal.SIGKILL)
        async with asyncio.timeout(30):
            rest = await proc.stdout.read()
            await proc.wait()
        for line in rest.splitlines(keepends=True):
            if line.endswith(b"\n"):
                msg_id, i = map(int, line.split())
                acked[msg_id] = i
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    store = await SqliteStore.open(db)
    try:
        page = await store.room_history("lobby", before=None, limit=10**7)
        stored = {m.id: m.body for m in page.messages}
        missing = set(acked) - set(stored)
        assert not missing, f"{len(missing)} acked messages lost"
        assert all(stored[msg_id] == f"body {i}" for msg_id, i in acked.items())
    finally:
        await store.close()


async def test_a_failed_commit_fails_every_job_of_the_batch_and_the_store_goes_on(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(tmp_path / DB_NAME)
    started, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        started.set()
        release.wait(10)

    def break_commit(conn: sqlite3.Connection) -> None:
        # A deferred foreign-key violation passes here and fails at COMMIT
        # (on tables of its own: the schema has no foreign key left to break).
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TEMP TABLE child (parent_id INTEGER REFERENCES parent (id))")
        conn.execute("INSERT INTO child VALUES (999999)")

    try:
        holding = asyncio.ensure_future(store._write(hold))
        async with asyncio.timeout(10):
            await asyncio.to_thread(started.wait, 10)
        batch = [
            asyncio.ensure_future(post(store, say("a"))),
            asyncio.ensure_future(store._write(break_commit)),
            asyncio.ensure_future(post(store, say("b"))),
        ]
        await asyncio.sleep(0)  # all three are queued behind `hold`
        release.set()
        await holding
        results = await asyncio.gather(*batch, return_exceptions=True)
        assert all(isinstance(r, StoreError) for r in results), results
        assert await count(store) == 0
        assert await post(store, say("c")) > 0
        assert await count(store) == 1
    finally:
        release.set()
        await store.close()


# -- reactions per person and per message (audit4) --


async def test_reactions_on_names_ones_own_emojis_and_counts_everyones(store: Store) -> None:
    target = await post(store, say("react to me"))
    assert await store.reactions_on(target, "a:bob") == ([], 0)
    await post(store, event("react", target, "👍", sender="a:bob"))
    await post(store, event("react", target, "🎉", sender="a:bob"))
    await post(store, event("react", target, "👍", sender="a:ann"))
    mine, count = await store.reactions_on(target, "a:bob")
    assert (sorted(mine), count) == (sorted(["👍", "🎉"]), 3)
    await post(store, event("unreact", target, "👍", sender="a:bob"))
    assert await store.reactions_on(target, "a:bob") == (["🎉"], 2)
