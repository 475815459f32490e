"""The chinwag client library (asyncio): what every chinwag client and bot uses.

A minimal bot::

    from chinwag.client import ChatClient, Message

    async with await ChatClient.open("127.0.0.1", 5050, nick="echo") as client:
        async for event in client.events():
            if isinstance(event, Message) and not event.own:
                client.say(event.room or "lobby", event.body)

See ``docs/client.md`` for the full guide.
"""

from __future__ import annotations

from chinwag.client.config import config_dir, device_id
from chinwag.client.connection import (
    DEFAULT_PORT,
    ChatClient,
    ClientClosed,
    NotConnected,
    error_from_frame,
)
from chinwag.client.events import (
    AwayChanged,
    CaughtUp,
    Changed,
    ErrorReceived,
    Event,
    HistoryPage,
    Message,
    Moderated,
    Presence,
    Reaction,
    ReadMarker,
    Receipt,
    Renamed,
    RoomDetails,
    RoomInfo,
    SendFailed,
    Sent,
    SettingsChanged,
    Status,
    Typing,
    User,
    Welcome,
)
from chinwag.client.outbox import Outbox, OutboxItem
from chinwag.client.state import ChatState, Conversation

__all__ = [
    "DEFAULT_PORT",
    "AwayChanged",
    "CaughtUp",
    "Changed",
    "ChatClient",
    "ChatState",
    "ClientClosed",
    "Conversation",
    "ErrorReceived",
    "Event",
    "HistoryPage",
    "Message",
    "Moderated",
    "NotConnected",
    "Outbox",
    "OutboxItem",
    "Presence",
    "Reaction",
    "ReadMarker",
    "Receipt",
    "Renamed",
    "RoomDetails",
    "RoomInfo",
    "SendFailed",
    "Sent",
    "SettingsChanged",
    "Status",
    "Typing",
    "User",
    "Welcome",
    "config_dir",
    "device_id",
    "error_from_frame",
]
