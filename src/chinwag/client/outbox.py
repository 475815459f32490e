"""The outbox: messages sent but not yet acknowledged.

Every ``say`` and ``dm`` gets a fresh ``cid`` and waits here until the server's
``ack`` for that ``cid`` arrives. The server stores a ``cid`` once per sender
for 24 hours (protocol v1 §3), so resending an item after a lost connection —
with the same ``cid`` — can never store it twice; and since only an ``ack``
takes an item out, a dropped connection can never lose one.

This module holds the bookkeeping only (no I/O): which items are queued, which
are in flight on the current connection, and their frames. The connection
decides when to send.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Outbox", "OutboxItem", "new_cid_prefix"]

Kind = Literal["say", "dm"]


def new_cid_prefix() -> str:
    """A random prefix for the ``cid`` s of one client instance.

    The server deduplicates by (sender, cid) for 24 h, and one account may run
    several clients at once, so cids must be unique across instances, not just
    within one: 64 random bits make a collision negligible.
    """
    return "c" + secrets.token_hex(8)


@dataclass(slots=True)
class OutboxItem:
    """One unacknowledged message.

    Attributes:
        cid: the client id, sent with every attempt.
        kind: ``say`` (to a room) or ``dm``.
        target: the room or the recipient's nick.
        body: the text.
        in_flight: sent on the current connection, reply not yet received.
        attempts: how many times it was sent.
        reply_to: the id of the message it answers (protocol version 1.1).
    """

    cid: str
    kind: Kind
    target: str
    body: str
    in_flight: bool = False
    attempts: int = 0
    reply_to: int | None = None

    def frame(self) -> dict[str, Any]:
        """The wire frame; ``ref`` is the cid, so an ``error`` reply names the item."""
        key = "room" if self.kind == "say" else "to"
        frame: dict[str, Any] = {
            "type": self.kind,
            key: self.target,
            "body": self.body,
            "cid": self.cid,
            "ref": self.cid,
        }
        if self.reply_to is not None:
            frame["reply_to"] = self.reply_to
        return frame


class Outbox:
    """Unacknowledged messages, in the order they were queued.

    Args:
        prefix: the cid prefix (see :func:`new_cid_prefix`); random by default.
    """

    def __init__(self, prefix: str | None = None) -> None:
        self._prefix = prefix if prefix is not None else new_cid_prefix()
        self._counter = 0
        self._items: dict[str, OutboxItem] = {}  # insertion-ordered

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[OutboxItem]:
        return iter(list(self._items.values()))

    def __contains__(self, cid: object) -> bool:
        return cid in self._items

    @property
    def in_flight(self) -> int:
        """Items sent on the current connection and not yet answered."""
        return sum(1 for item in self._items.values() if item.in_flight)

    def add(self, kind: Kind, target: str, body: str, *, reply_to: int | None = None) -> OutboxItem:
        """Queue a message under a fresh cid; returns its item."""
        self._counter += 1
        item = OutboxItem(f"{self._prefix}-{self._counter}", kind, target, body, reply_to=reply_to)
        self._items[item.cid] = item
        return item

    def get(self, cid: str) -> OutboxItem | None:
        """The item with this cid, if it is still waiting."""
        return self._items.get(cid)

    def next_to_send(self) -> OutboxItem | None:
        """The oldest item that is not in flight, or None."""
        for item in self._items.values():
            if not item.in_flight:
                return item
        return None

    def mark_sent(self, cid: str) -> None:
        """Record that an item was written to the current connection."""
        item = self._items[cid]
        item.in_flight = True
        item.attempts += 1

    def retry(self, cid: str) -> OutboxItem | None:
        """Put an in-flight item back in the queue (e.g. after ``rate_limited``)."""
        item = self._items.get(cid)
        if item is not None:
            item.in_flight = False
        return item

    def retry_all(self) -> None:
        """Requeue everything in flight: the connection that carried it was lost."""
        for item in self._items.values():
            item.in_flight = False

    def remove(self, cid: str) -> OutboxItem | None:
        """Take an item out (acknowledged, or refused for good); None if unknown."""
        return self._items.pop(cid, None)
