"""The bus for one process: an in-memory queue per subscriber."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from chinwag.bus.base import BusEvent, NodeEvent
from chinwag.storage.base import Histogram


class LocalBus:
    """Delivers each published event to every subscriber of this process, in order."""

    node = "local"
    shared = False

    def __init__(self) -> None:
        # None in a queue ends that subscription.
        self._queues: list[asyncio.Queue[BusEvent | None]] = []
        self.lag_seconds = Histogram()  # one process: nothing crosses a network

    def publish(self, event: BusEvent) -> None:
        for queue in self._queues:
            queue.put_nowait(event)

    def announce(self, event: NodeEvent) -> None:
        """No other node listens."""

    async def subscribe(self) -> AsyncIterator[BusEvent]:
        queue: asyncio.Queue[BusEvent | None] = asyncio.Queue()
        self._queues.append(queue)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self._queues.remove(queue)

    async def claim(self, name: str, owner: str) -> bool:
        """One process: the hub's own registry keeps names unique; nothing to hold here."""
        return True

    async def release(self, name: str, owner: str) -> None:
        """Nothing is held (see `claim`)."""

    async def close(self) -> None:
        for queue in self._queues:
            queue.put_nowait(None)

    def trouble(self) -> str | None:
        """One process: never cut off."""
        return None
