"""Waiting on a library client's events, for the client tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chinwag.client import ChatClient, Event, Message

WAIT = 15.0  # the longest any client test waits for one event


async def until(
    client: ChatClient, done: Callable[[Event], bool], timeout: float = WAIT
) -> list[Event]:
    """Events up to and including the first for which ``done`` is true."""
    seen: list[Event] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await client.next_event()
            seen.append(event)
            if done(event):
                return seen


def is_body(body: str) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, Message) and e.body == body
