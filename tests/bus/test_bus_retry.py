"""``bus_retry_max`` (issue 17): how long a node waits, at most, between two attempts to
reach Redis again. A real Redis, killed; a real listener on its port counts the attempts.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from support.services import RedisServer, redis_server

from chinwag.bus.redis import RETRY_FIRST, RedisBus
from chinwag.config import SettingsError, build

__all__ = ["redis_server"]  # the session fixture, imported for pytest

AWAY = 3.0  # seconds Redis is away while the attempts are counted


async def attempts_while_redis_is_away(server: RedisServer, retry_max: float) -> int:
    """Connections a subscribed node opens to Redis's port in `AWAY` seconds without Redis."""
    bus = RedisBus(server.url, retry_max=retry_max, timeout=2)
    await bus.start()
    stream = bus.subscribe()
    reading = asyncio.create_task(anext(stream, None))  # the read loop runs
    count = 0

    def accepted(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        writer.close()  # not Redis: the attempt fails, as against a Redis that is down

    try:
        await asyncio.sleep(0.3)  # the first XREAD is under way
        server.kill()
        away = await asyncio.start_server(accepted, "127.0.0.1", server.port)
        try:
            await asyncio.sleep(AWAY)
        finally:
            away.close()
            await asyncio.wait_for(away.wait_closed(), 10)
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        await asyncio.wait_for(bus.close(), 10)
        server.start()
    return count


async def test_a_lower_bus_retry_max_brings_more_attempts_while_redis_is_away(
    redis_server: RedisServer,
) -> None:
    slow = await attempts_while_redis_is_away(redis_server, 5.0)  # 0.1, 0.2, 0.4, 0.8 s…
    fast = await attempts_while_redis_is_away(redis_server, RETRY_FIRST)  # every 0.1 s
    assert slow >= 1, "the node tried again at all"
    assert fast >= 3 * slow, (fast, slow)


def test_bus_retry_max_is_at_least_the_first_wait() -> None:
    assert build(overrides=["bus_retry_max=0.1"]).bus_retry_max == RETRY_FIRST
    with pytest.raises(SettingsError, match=r"bus_retry_max must be at least 0\.1 seconds"):
        build(overrides=["bus_retry_max=0.09"])
    with pytest.raises(ValueError, match="retry_max must be at least"):
        RedisBus("redis://127.0.0.1:1/0", retry_max=0.09)
