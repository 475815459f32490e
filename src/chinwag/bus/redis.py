"""The bus between nodes: one Redis stream, read by every node from its last position.

Redis is the doorbell, not the truth (DESIGN.md "Several machines"): each
committed message is published to this node's own subscribers at once (as
`bus/local.py` does) and appended to the stream ``chinwag:events`` for the
other nodes, which read it with ``XREAD`` from the last entry they saw. A node
skips its own entries. Whatever Redis loses, the database still has: after
any interruption (Redis down, restarted empty, a publish that failed) the
subscribers get `Resync`, on which the hub reads what it missed from the
store (core/delivery.py). The connection is re-established explicitly, with
backoff; nothing relies on redis-py reconnecting by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from chinwag.bus.base import (
    NODE_EVENTS,
    BlocksChanged,
    BusError,
    BusEvent,
    Moderated,
    NodeEvent,
    Posted,
    Resync,
)
from chinwag.storage.base import Histogram, StoredMessage

__all__ = ["RedisBus"]

log = logging.getLogger(__name__)

STREAM: Final = "chinwag:events"
BLOCK_MS: Final = 1_000  # one XREAD waits at most this long
SEND_BATCH: Final = 512  # most events sent in one pipeline (and read in one XREAD)
RETRY_FIRST: Final = 0.1  # seconds before the first reconnection attempt (then twice as long)
NAME_TTL: Final = 30  # seconds a claim outlives its node (renewed every third of it)
_RELEASE: Final = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_ERRORS: Final = (RedisError, OSError, ConnectionError, TimeoutError)


def _encode(event: BusEvent, node: str) -> dict[FieldT, EncodableT]:
    if isinstance(event, Posted):
        data = json.dumps(dataclasses.asdict(event.message))
        return {"node": node, "kind": "posted", "data": data}
    if isinstance(event, BlocksChanged):
        data = json.dumps({"account": event.account, "keys": list(event.keys)})
        return {"node": node, "kind": "blocks", "data": data}
    if isinstance(event, Moderated):
        return {"node": node, "kind": "moderated", "data": json.dumps(dataclasses.asdict(event))}
    if isinstance(event, NodeEvent):
        return {"node": node, "kind": event.kind, "data": json.dumps(event.encode())}
    return {"node": node, "kind": "resync"}


def _decode(fields: dict[bytes, bytes]) -> BusEvent | None:
    kind = fields.get(b"kind")
    if kind == b"posted":
        data: dict[str, Any] = json.loads(fields[b"data"])
        # JSON has no tuples: the message's own tuples come back as lists.
        data["mentions"] = tuple(data.get("mentions", ()))
        data["concat"] = tuple(data.get("concat", ()))
        data["reactions"] = tuple((e, tuple(n)) for e, n in data.get("reactions", ()))
        return Posted(StoredMessage(**data))
    if kind == b"resync":
        return Resync()
    try:
        if kind == b"blocks":
            blocks: dict[str, Any] = json.loads(fields[b"data"])
            return BlocksChanged(str(blocks["account"]), tuple(str(k) for k in blocks["keys"]))
        if kind == b"moderated":
            return Moderated(**json.loads(fields[b"data"]))
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("skipped a malformed %r event from another node (%s)", kind, exc)
        return None
    cls = NODE_EVENTS.get((kind or b"").decode("ascii", "replace"))
    if cls is None:
        return None  # a newer chinwag's event: not ours to deliver
    try:
        return cls.decode(json.loads(fields[b"data"]))
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("skipped a malformed %r event from another node (%s)", cls.kind, exc)
        return None


class RedisBus:
    """The `Bus` over Redis at ``url`` (``redis://host:port/db``). Call `start` first.

    Args:
        url: the Redis server.
        stream_max: entries the stream keeps (setting ``bus_stream_max``); a
            node further behind than that reads the rest from the database.
        timeout: seconds a connection attempt or a command may take.
        retry_max: most seconds between two reconnection attempts (setting
            ``bus_retry_max``); the first waits `RETRY_FIRST`, each next twice as long.
    """

    shared = True

    def __init__(
        self, url: str, *, stream_max: int = 100_000, timeout: float = 5.0, retry_max: float = 5.0
    ) -> None:
        if stream_max < 1:
            raise ValueError("stream_max must be at least 1")
        if retry_max < RETRY_FIRST:
            raise ValueError(f"retry_max must be at least {RETRY_FIRST} seconds")
        self._stream_max = stream_max
        self._retry_max = retry_max
        self.node = uuid.uuid4().hex  # this process: its own entries are skipped
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout + BLOCK_MS / 1000,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
        )
        self._queues: list[asyncio.Queue[BusEvent | None]] = []
        self._outbox: asyncio.Queue[BusEvent | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._claims: dict[str, str] = {}  # Redis key -> value, renewed while held
        # Health and lag (issue 17): why reading or publishing fails now (None: it works).
        self._read_trouble: str | None = None
        self._send_trouble: str | None = None
        self.lag_seconds = Histogram()  # another node's publish (its entry id) -> read here

    async def start(self) -> None:
        """Check that Redis answers, then start sending this node's events to it.

        Raises:
            BusError: Redis cannot be reached.
        """
        try:
            await self._client.ping()
        except _ERRORS as exc:
            await self._client.aclose()
            raise BusError(
                f"cannot reach Redis for the bus ({exc}); check that redis-server runs at the"
                " address of the bus setting (--bus)"
            ) from exc
        self._tasks.append(asyncio.create_task(self._send_loop(), name="chinwag-redis-send"))
        self._tasks.append(asyncio.create_task(self._renew_loop(), name="chinwag-redis-renew"))

    def publish(self, event: BusEvent) -> None:
        """To this node's subscribers now, and to the other nodes through Redis."""
        for queue in self._queues:
            queue.put_nowait(event)
        if not self._closed:
            self._outbox.put_nowait(event)

    def announce(self, event: NodeEvent) -> None:
        """To the other nodes, through Redis (lost while Redis is down: see `Bus.announce`)."""
        if not self._closed:
            self._outbox.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[BusEvent]:
        """This node's events and the other nodes' (after a `Resync` when some were missed)."""
        queue: asyncio.Queue[BusEvent | None] = asyncio.Queue()
        self._queues.append(queue)
        reader = asyncio.create_task(self._read_loop(queue), name="chinwag-redis-read")
        self._tasks.append(reader)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            reader.cancel()
            self._queues.remove(queue)

    async def claim(self, name: str, owner: str) -> bool:
        """``SET NX`` with an expiry this node renews; while Redis is down, every claim wins."""
        key, value = f"chinwag:name:{name}", f"{self.node}:{owner}"
        try:
            taken = await self._client.set(key, value, nx=True, ex=NAME_TTL)
        except _ERRORS as exc:
            log.warning(
                "cannot reach Redis to hold the name %r (%s): unique on this node only", name, exc
            )
            return True
        if taken:
            self._claims[key] = value
        return bool(taken)

    async def release(self, name: str, owner: str) -> None:
        key, value = f"chinwag:name:{name}", f"{self.node}:{owner}"
        if self._claims.get(key) != value:
            return
        del self._claims[key]
        with contextlib.suppress(*_ERRORS):  # unreachable: it expires by itself
            await self._client.eval(_RELEASE, 1, key, value)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(NAME_TTL / 3)
            for key, value in list(self._claims.items()):
                with contextlib.suppress(*_ERRORS):  # the next round tries again
                    await self._client.set(key, value, ex=NAME_TTL)

    async def close(self) -> None:
        """End every subscription and stop talking to Redis."""
        self._closed = True
        for queue in self._queues:
            queue.put_nowait(None)
        self._outbox.put_nowait(None)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, *_ERRORS):
                await task
        await self._client.aclose()

    def trouble(self) -> str | None:
        """Why this node cannot hear the others now (Redis lost), or they it; None: all well."""
        return self._read_trouble or self._send_trouble

    async def _send_loop(self) -> None:
        """Send this node's events to the stream, every event queued meanwhile in one pipeline.

        One round trip carries a whole group commit's messages, and the other
        nodes read them in one ``XREAD``: they fan them out together, as this
        node does.
        """
        failed = False  # a publish was lost: the other nodes must resync once Redis is back
        delay = RETRY_FIRST
        closing = False
        while not closing and (event := await self._outbox.get()) is not None:
            batch = [event]
            while len(batch) < SEND_BATCH and not self._outbox.empty():
                more = self._outbox.get_nowait()
                if more is None:
                    closing = True
                    break
                batch.append(more)
            while True:
                try:
                    pipe = self._client.pipeline(transaction=False)
                    if failed:
                        pipe.xadd(STREAM, _encode(Resync(), self.node))
                    for item in batch:
                        pipe.xadd(
                            STREAM,
                            _encode(item, self.node),
                            maxlen=self._stream_max,
                            approximate=False,
                        )
                    await pipe.execute()
                    if failed:
                        failed = False
                        log.warning("Redis takes this node's events again")
                    delay = RETRY_FIRST
                    self._send_trouble = None
                    break
                except _ERRORS as exc:
                    self._send_trouble = f"cannot publish to Redis ({exc})"
                    if not failed:
                        log.error(
                            "cannot publish to Redis (%s): other nodes learn of this node's"
                            " messages from the database once it is back",
                            exc,
                        )
                    failed = True
                    if not self._outbox.empty():
                        break  # newer events: the resync will cover these
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max)

    async def _last_id(self) -> str:
        entries: Any = await self._client.xrevrange(STREAM, count=1)
        return str(entries[0][0].decode()) if entries else "0-0"

    async def _read_loop(self, queue: asyncio.Queue[BusEvent | None]) -> None:
        last: str | None = None
        started = False
        delay = RETRY_FIRST
        while True:
            try:
                if last is None:
                    # First read, or after an interruption: from the stream's end, and
                    # (when something may have been missed) a resync from the database.
                    last = await self._last_id()
                    if started:
                        log.warning("Redis is back: catching up from the database")
                        queue.put_nowait(Resync())
                    started = True
                    delay = RETRY_FIRST
                reply: Any = await self._client.xread({STREAM: last}, count=512, block=BLOCK_MS)
            except _ERRORS as exc:
                self._read_trouble = f"lost Redis ({exc})"
                if last is not None:
                    log.error("lost Redis (%s); delivery from other nodes waits for it", exc)
                last = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            self._read_trouble = None
            now_ms = time.time() * 1000
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    if fields.get(b"node", b"").decode() == self.node:
                        continue
                    # The id's first part is Redis's clock (ms) when the entry was added.
                    self.lag_seconds.observe(max(0.0, now_ms - int(last.split("-")[0])) / 1000)
                    event = _decode(fields)
                    if event is not None:
                        queue.put_nowait(event)
