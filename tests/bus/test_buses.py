"""The bus between nodes over a real Redis, and the local bus beside it.

Two `RedisBus` instances stand for two nodes. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT
from support.services import RedisServer, free_port, redis_server

from chinwag.bus.base import (
    NODE_EVENTS,
    Alive,
    AwaySet,
    BusError,
    BusEvent,
    InvisibleSet,
    LoginChecked,
    Membership,
    Moderated,
    Offline,
    Online,
    Posted,
    ReadMoved,
    RealNameSet,
    ReceiptNotice,
    ReceiptsSet,
    Registering,
    Renamed,
    Resync,
    Roster,
    RosterWanted,
    SessionsEnded,
    TypingRelay,
    WallopsSent,
)
from chinwag.bus.local import LocalBus
from chinwag.bus.redis import RedisBus
from chinwag.storage.base import StoredMessage

__all__ = ["redis_server"]  # the session fixture, imported for pytest

WAIT = 10.0


def message(i: int) -> StoredMessage:
    return StoredMessage(
        i, 1_700_000_000_000 + i, "a:ann", "ann", "lobby", None, None, f"m{i}", None
    )


class Listener:
    """A subscription drained into a queue by a task of its own."""

    def __init__(self, bus: LocalBus | RedisBus) -> None:
        self.events: asyncio.Queue[BusEvent] = asyncio.Queue()
        self._task = asyncio.create_task(self._drain(bus))

    async def _drain(self, bus: LocalBus | RedisBus) -> None:
        async for event in bus.subscribe():
            self.events.put_nowait(event)

    async def next(self) -> BusEvent:
        return await asyncio.wait_for(self.events.get(), WAIT)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def two_nodes(server: RedisServer) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    server.flush()
    a, b = RedisBus(server.url), RedisBus(server.url)
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def wait_until_reading(sender: RedisBus, probe: Listener) -> None:
    """Publish probes until the other node's subscription is live (XREAD has begun)."""
    for i in range(100):
        sender.publish(Posted(message(-1 - i)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(probe.events.get(), 0.2)
            while not probe.events.empty():
                probe.events.get_nowait()
            return
    raise AssertionError("the subscription never started reading")


async def test_the_local_bus_hands_every_event_to_every_subscriber_in_order() -> None:
    bus = LocalBus()
    first, second = Listener(bus), Listener(bus)
    await asyncio.sleep(0)
    for i in range(1, 6):
        bus.publish(Posted(message(i)))
    for listener in (first, second):
        assert [await listener.next() for _ in range(5)] == [
            Posted(message(i)) for i in range(1, 6)
        ]
    assert await bus.claim("zed", "g:1") and await bus.claim("zed", "g:2")  # one node: no-op
    await bus.close()


async def test_events_reach_the_other_node_in_order_and_this_one_at_once(
    redis_server: RedisServer,
) -> None:
    async with two_nodes(redis_server) as (a, b):
        mine, theirs = Listener(a), Listener(b)
        await wait_until_reading(a, theirs)
        while not mine.events.empty():
            mine.events.get_nowait()
        for i in range(1, 51):
            a.publish(Posted(message(i)))
        sent = [Posted(message(i)) for i in range(1, 51)]
        assert [await mine.next() for _ in sent] == sent
        assert [await theirs.next() for _ in sent] == sent
        assert mine.events.empty(), "a node never hears its own events twice"
        await mine.stop()
        await theirs.stop()


async def test_an_event_row_with_mentions_and_reactions_reaches_the_other_node_unchanged(
    redis_server: RedisServer,
) -> None:
    async with two_nodes(redis_server) as (a, b):
        theirs = Listener(b)
        await wait_until_reading(a, theirs)
        sent = Posted(
            replace(
                message(7),
                kind="edit",
                target=3,
                reply_to=2,
                edited_ms=5,
                mentions=("Bob", "Cat"),
                reactions=(("👍", ("ann", "bob")),),
            )
        )
        a.publish(sent)
        assert await theirs.next() == sent  # tuples again, not JSON's lists
        await theirs.stop()


async def test_a_moderation_action_reaches_the_other_node_unchanged(
    redis_server: RedisServer,
) -> None:
    async with two_nodes(redis_server) as (a, b):
        theirs = Listener(b)
        await wait_until_reading(a, theirs)
        sent = Moderated("node-a", "ban", None, "a:bob", "bob", "ann", "spam", 1_800_000_000_000)
        a.publish(sent)
        assert await theirs.next() == sent
        await theirs.stop()


async def test_a_name_is_held_by_one_owner_across_nodes_until_that_owner_releases_it(
    redis_server: RedisServer,
) -> None:
    async with two_nodes(redis_server) as (a, b):
        assert await a.claim("zed", "g:1")
        assert not await b.claim("zed", "g:2")
        await b.release("zed", "g:2")  # not its claim: changes nothing
        assert not await b.claim("zed", "g:3")
        await a.release("zed", "g:1")
        assert await b.claim("zed", "g:2")


async def test_after_redis_restarts_subscribers_get_resync_and_events_flow_again(
    redis_server: RedisServer,
) -> None:
    async with two_nodes(redis_server) as (a, b):
        theirs = Listener(b)
        await wait_until_reading(a, theirs)
        redis_server.kill()
        a.publish(Posted(message(7)))  # lost with Redis: the resync stands for it
        redis_server.start()
        assert await theirs.next() == Resync()
        a.publish(Posted(message(8)))
        got = [await theirs.next()]
        while got[-1] != Posted(message(8)):
            got.append(await theirs.next())
        # The lost one may come too, once its node's retry gets through: late, never lost.
        assert set(got) <= {Resync(), Posted(message(7)), Posted(message(8))}
        await theirs.stop()


async def test_a_bus_that_cannot_reach_redis_says_so_plainly() -> None:
    bus = RedisBus(f"redis://127.0.0.1:{free_port()}/0", timeout=2)
    with pytest.raises(BusError, match="check that redis-server runs"):
        await bus.start()


async def _last_is(client: Any, stream: str, m: StoredMessage) -> bool:
    entries = await client.xrevrange(stream, count=1)
    return bool(entries) and json.loads(entries[0][1][b"data"])["id"] == m.id


async def test_the_stream_keeps_exactly_bus_stream_max_entries(redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    from chinwag.bus.redis import STREAM

    redis_server.flush()
    bus = RedisBus(redis_server.url, stream_max=10)
    await bus.start()
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    try:
        for i in range(1, 11):
            bus.publish(Posted(message(i)))
        for i in range(11, 26):
            bus.publish(Posted(message(i)))
        deadline = asyncio.get_running_loop().time() + WAIT
        while not await _last_is(client, STREAM, message(25)):
            assert asyncio.get_running_loop().time() < deadline, "the last event never got out"
            await asyncio.sleep(0.05)
        assert await client.xlen(STREAM) == 10
    finally:
        await client.aclose()
        await bus.close()
    with pytest.raises(ValueError, match="at least 1"):
        RedisBus(redis_server.url, stream_max=0)


# -- events between nodes (issue 13) --

_ONLINE = Online("n1", "a:ann", "ann", "Ann", True, False, ("dev", "lobby"))
EVERY_NODE_EVENT = [
    _ONLINE,
    Offline("n1", "g:1"),
    Renamed("n1", "g:1", "zoe", "Zoe", "zed"),
    Membership("n1", "a:ann", "dev", False),
    Alive("n1", 3),
    RosterWanted("n1", ""),
    Roster("n1", (_ONLINE, Online("n1", "g:2", "zed", "Zed", False, False, ("lobby",), "away"))),
    TypingRelay("n1", "a:ann", "Ann", None, "Zed", "g:2"),
    ReadMoved("n1", "a:ann", "lobby", None, 41),
    ReceiptNotice("n1", "a:ann", "bob", 40, "read"),
    ReceiptsSet("n1", "a:ann", True),
    LoginChecked("n1", None, "2001:db8::/64", False),
    Registering("n1", "192.0.2.7"),
    SessionsEnded("n1", "ann", "deleted", "the operator deleted your account"),
    AwaySet("n1", "a:ann", "at lunch"),
    WallopsSent("n1", "ann", "the server restarts at noon"),
    InvisibleSet("n1", "a:ann", True),
    RealNameSet("n1", "a:ann", "Ann Example"),
]


def test_every_event_between_nodes_is_listed_here_once() -> None:
    assert sorted(type(e).kind for e in EVERY_NODE_EVENT) == sorted(NODE_EVENTS)


async def test_announced_events_reach_only_the_other_nodes_unchanged(
    redis_server: RedisServer,
) -> None:
    async with two_nodes(redis_server) as (a, b):
        mine, theirs = Listener(a), Listener(b)
        await wait_until_reading(a, theirs)
        while not mine.events.empty():
            mine.events.get_nowait()
        for event in EVERY_NODE_EVENT:
            a.announce(event)
        assert [await theirs.next() for _ in EVERY_NODE_EVENT] == EVERY_NODE_EVENT
        assert mine.events.empty(), "an announcement is for the other nodes"
        await mine.stop()
        await theirs.stop()


async def test_unknown_or_malformed_events_from_another_node_are_skipped(
    redis_server: RedisServer,
) -> None:
    async with two_nodes(redis_server) as (a, b):
        theirs = Listener(b)
        await wait_until_reading(a, theirs)
        client: aioredis.Redis = aioredis.Redis.from_url(redis_server.url)
        try:
            bad: list[dict[FieldT, EncodableT]] = [
                {"node": "x", "kind": "from_a_newer_chinwag", "data": "{}"},
                {"node": "x", "kind": "offline", "data": json.dumps({"node": "x"})},
                {"node": "x", "kind": "roster", "data": json.dumps({"node": "x", "online": 3})},
                {"node": "x", "kind": "alive", "data": "not json"},
                {"node": "x", "kind": "alive", "data": json.dumps({"node": "x", "online": "3"})},
                {"node": "x", "kind": "read_moved", "data": json.dumps(
                    {"node": "x", "pid": "a:ann", "room": None, "with_": None, "upto": True}
                )},
                {"node": "x", "kind": "online", "data": json.dumps(
                    {"node": "x", "pid": "g:1", "key": "zed", "nick": "Zed", "account": False,
                     "bot": False, "rooms": ["lobby", 7]}
                )},
            ]  # fmt: skip
            for fields in bad:
                await client.xadd("chinwag:events", fields)
        finally:
            await client.aclose()
        a.announce(Alive("n1", 0))
        assert await theirs.next() == Alive("n1", 0), "the bad ones were skipped, not fatal"
        await theirs.stop()


async def test_the_local_bus_announces_to_nobody() -> None:
    bus = LocalBus()
    listener = Listener(bus)
    await asyncio.sleep(0)
    bus.announce(Alive("local", 0))
    bus.publish(Resync())
    assert await listener.next() == Resync(), "nothing announced came first"
    await bus.close()
