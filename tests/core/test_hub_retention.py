"""The backlog's retention (protocol §2): nothing older than ``retention_days`` is replayed.

In-process (`support.hub.HubHarness`) with an injected clock; the deletion of
old messages from the store (``room_retention_days``…) is in
tests/storage/test_retention.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.hub import PASSWORD, HubHarness

from chinwag.protocol.events import Dm, Join, Say

NOW = 1_700_000_000.0
DAY = 86_400.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def replayed(frames: list[dict[str, Any]]) -> list[str]:
    return [f["body"] for f in frames if f["type"] == "message" and f.get("replay")]


async def test_the_backlog_holds_what_is_within_retention_days_to_the_millisecond(
    tmp_path: Path,
) -> None:
    clock = Clock(NOW)
    async with HubHarness.open(tmp_path, clock=clock, retention_days=30.0) as harness:
        await harness.register("bob")
        bob = await harness.login("bob", password=PASSWORD)
        await bob.send(Join(room="den", ref="j"))
        await bob.logout()
        alice = await harness.login("alice")
        await alice.send(Join(room="den", ref="j"))
        for offset, body in ((0.0, "one ms too old"), (0.001, "just in time"), (DAY, "recent")):
            clock.now = NOW + offset
            await alice.send(Dm(to="bob", body=f"dm {body}", ref=body))
            await alice.send(Say(room="den", body=f"den {body}", ref=body))
        await harness.settle()
        clock.now = NOW + 0.001 + 30 * DAY  # "just in time" is exactly 30 days old
        bob = await harness.login("bob", password=PASSWORD)
        frames = await bob.unread()
        assert sorted(replayed(frames)) == [
            "den just in time",
            "den recent",
            "dm just in time",
            "dm recent",
        ]
        [caught_up] = [f for f in frames if f["type"] == "caught_up"]
        assert caught_up["missed"] == 4
