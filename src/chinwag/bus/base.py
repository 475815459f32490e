"""The bus: how "message N was committed" reaches the hub on every node.

The hub delivers only what ``subscribe()`` yields, on the node that published
too, so one node and many share one code path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from chinwag.storage.base import StoredMessage


@dataclass(frozen=True, slots=True)
class Posted:
    """A message was committed and may now be delivered."""

    message: StoredMessage


@dataclass(frozen=True, slots=True)
class Resync:
    """Events may have been missed (the bus between nodes was down): catch up from the store."""


@dataclass(frozen=True, slots=True)
class BlocksChanged:
    """An account's blocks changed (issue 16): ``keys`` is its whole list now."""

    account: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Moderated:
    """A moderation action was committed (issue 16): every node re-reads the rooms and
    standings, and carries out its effect on its own sessions (the node that did it,
    ``origin``, already has).

    ``action`` is a §8 command (``kick``, ``ban``, ``unban``, ``mute``, ``unmute``,
    ``invite``, ``grant``, ``room``); ``room`` None is server-wide; ``principal`` and
    ``nick`` are whom it is about ('' for ``room``).
    """

    origin: str
    action: str
    room: str | None
    principal: str
    nick: str
    by: str
    reason: str = ""
    until_ms: int | None = None
    role: str | None = None


BusEvent = Posted | Resync | BlocksChanged | Moderated


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
