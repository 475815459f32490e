"""The private PostgreSQL and Redis the several-nodes tests run against."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from support.services import PostgresServer, RedisServer, pg_server, redis_server

__all__ = ["pg_server", "redis_server"]  # the fixtures, imported for pytest


async def test_postgres_is_private_and_keeps_commits_across_a_restart(
    pg_server: PostgresServer,
) -> None:
    assert pg_server.port != 5432
    conn = await asyncpg.connect(pg_server.dsn, timeout=10)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS probe (n int)")
        await conn.execute("INSERT INTO probe VALUES (7)")
    finally:
        await conn.close()
    pg_server.stop()
    pg_server.start()
    conn = await asyncpg.connect(pg_server.dsn, timeout=10)
    try:
        assert await conn.fetchval("SELECT sum(n) FROM probe") >= 7
        await conn.execute("DROP TABLE probe")
    finally:
        await conn.close()


async def test_redis_is_private_and_answers(redis_server: RedisServer) -> None:
    assert redis_server.port != 6379
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    try:
        await client.set("chinwag-probe", "1")
        assert await client.get("chinwag-probe") == b"1"
        await client.delete("chinwag-probe")
    finally:
        await client.aclose()
