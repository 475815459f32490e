"""The bus: how "message N was committed" reaches the hub on every node.

The hub delivers only what ``subscribe()`` yields, on the node that published
too, so one node and many share one code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from chinwag.storage.base import Histogram, StoredMessage


@dataclass(frozen=True, slots=True)
class Posted:
    """A message was committed and may now be delivered."""

    message: StoredMessage


@dataclass(frozen=True, slots=True)
class Resync:
    """Events may have been missed (the bus between nodes was down): catch up from the store."""


BusEvent = Posted | Resync


class BusError(Exception):
    """The bus cannot be reached at start-up (the message says where and what to do)."""


class Bus(Protocol):
    def publish(self, event: BusEvent) -> None:
        """Hand ``event`` to every subscriber, in publish order. Never blocks."""

    def subscribe(self) -> AsyncIterator[BusEvent]:
        """Every event published from now on, in order, until ``close()``."""
        ...

    async def claim(self, name: str, owner: str) -> bool:
        """Hold ``name`` for ``owner`` across every node; False when another owner holds it.

        How a guest nick stays unique on all nodes. The claim lasts until
        `release` (or, should its node die, a short while after).
        """
        ...

    async def release(self, name: str, owner: str) -> None:
        """Give up ``owner``'s claim on ``name`` (nothing if another owner holds it)."""

    async def close(self) -> None:
        """End every subscription."""

    # -- health and lag (issue 17) --
    lag_seconds: Histogram
    """Seconds from another node's publish to this node's read (empty for one node)."""

    def trouble(self) -> str | None:
        """Why events from other nodes cannot arrive now, in plain words; None: they can."""
        ...
