"""The hashing threads yield to the event loop (issue 10: a password flood must not
delay everyone's messages; measured by `python -m bench --only abuse`)."""

from __future__ import annotations

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
