"""The hashing threads yield to the event loop (issue 10: a password flood must not
delay everyone's messages; measured by `python -m bench --only abuse`)."""

from __future__ import annotations

import asyncio
import os
import threading

from chinwag.config import Settings
from chinwag.core.accounts import HASH_NICE, PasswordHasher


async def test_password_hashing_runs_at_a_lower_priority_than_the_event_loop() -> None:
    hasher = PasswordHasher(Settings(argon2_memory_kib=8192, argon2_time_cost=1))
    digest = await hasher.hash("correct horse battery")
    assert await hasher.verify(digest, "correct horse battery")
    workers = [t for t in threading.enumerate() if t.name.startswith("chinwag-hash")]
    assert workers, "no hashing thread ran"
    for thread in workers:
        assert thread.native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == HASH_NICE
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 0


async def test_the_hashing_queue_serves_addresses_in_turn() -> None:
    # One worker: a flood of 6 checks from one address queued first, then one
    # from another. The other address goes next, not after the whole flood.
    hasher = PasswordHasher(
        Settings(argon2_memory_kib=8192, argon2_time_cost=1, hash_workers=1, hash_queue_max=64)
    )
    digest = await hasher.hash("correct horse battery", "setup")
    done: list[str] = []

    async def check(who: str) -> None:
        await hasher.verify(digest, "wrong horse battery", who)
        done.append(who)

    flood = [asyncio.create_task(check("attacker")) for _ in range(6)]
    await asyncio.sleep(0)  # the flood is queued (one running) before the honest check
    honest = asyncio.create_task(check("honest"))
    await asyncio.wait_for(asyncio.gather(*flood, honest), 30)
    assert done.index("honest") <= 2, done
    assert hasher.pending == 0


async def test_a_cancelled_wait_gives_its_place_up() -> None:
    hasher = PasswordHasher(
        Settings(argon2_memory_kib=8192, argon2_time_cost=1, hash_workers=1, hash_queue_max=64)
    )
    digest = await hasher.hash("correct horse battery", "setup")
    running = asyncio.create_task(hasher.verify(digest, "one", "a"))
    waiting = [asyncio.create_task(hasher.verify(digest, "two", w)) for w in ("b", "c")]
    await asyncio.sleep(0)
    assert hasher.pending == 3
    waiting[0].cancel()
    await asyncio.wait_for(asyncio.gather(running, waiting[1]), 30)
    assert waiting[0].cancelled()
    assert hasher.pending == 0
    assert await asyncio.wait_for(hasher.verify(digest, "correct horse battery", "d"), 30)
