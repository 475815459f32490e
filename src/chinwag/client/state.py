"""The client's model of the chat: pure data, no I/O, no clock.

:class:`ChatState` keeps what a client has been shown: messages per
conversation, unread counts, the rooms it is in, and the ids it has seen, so
that a message delivered twice (delivery is at least once, protocol v1 §5) is
handed to the application once. The network side feeds it; user interfaces
read it.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from chinwag.client.events import Changed, Message, RoomDetails, fold_nick

__all__ = ["ChatState", "Conversation"]


@dataclass(frozen=True, slots=True, order=True)
class Conversation:
    """A room or a direct-message thread with one other nick.

    Attributes:
        kind: ``room`` or ``dm``.
        name: the room's name, or the other party's nick in comparison form
            (casefolded), so that ``Bob`` and ``bob`` are one conversation.
    """

    kind: Literal["room", "dm"]
    name: str

    @classmethod
    def room(cls, name: str) -> Conversation:
        """The conversation of room ``name`` (room names are ASCII, case-insensitive)."""
        return cls("room", name.lower())

    @classmethod
    def dm(cls, nick: str) -> Conversation:
        """The direct-message conversation with ``nick``."""
        return cls("dm", fold_nick(nick))

    @classmethod
    def of(cls, message: Message) -> Conversation:
        """The conversation ``message`` belongs to."""
        if message.room is not None:
            return cls.room(message.room)
        return cls.dm(message.peer or message.sender)

    def __str__(self) -> str:
        return ("#" if self.kind == "room" else "@") + self.name


class ChatState:
    """Messages per conversation, unread counts, rooms, and duplicate detection.

    Args:
        nick: this client's nick (may be set later by :meth:`welcome`).
        max_ids: how many delivered ids to remember for duplicate detection. Ids
            older than the remembered window count as duplicates: the server
            delivers each session's messages in increasing id order, so an old id
            can only be a repeat.
        max_per_conversation: messages kept per conversation (the oldest go).
    """

    def __init__(
        self, nick: str = "", *, max_ids: int = 100_000, max_per_conversation: int = 2_000
    ) -> None:
        if max_ids < 1 or max_per_conversation < 1:
            raise ValueError("max_ids and max_per_conversation must be positive")
        self.nick = nick
        self.account = False
        self.rooms: set[str] = set()
        # Each room's settings and your role there, as last told (issue 16).
        self.rooms_info: dict[str, RoomDetails] = {}
        self.active: Conversation = Conversation.room("lobby")
        self._max_ids = max_ids
        self._max_per = max_per_conversation
        self._ids: set[int] = set()
        self._order: deque[int] = deque()
        self._floor = 0  # every id <= floor was forgotten, hence a duplicate
        self._messages: dict[Conversation, list[Message]] = {}
        self._unread: dict[Conversation, int] = {}
        self._names: dict[Conversation, str] = {}
        self._last: dict[Conversation, int] = {}  # conversation -> newest id
        self._where: dict[int, Conversation] = {}  # kept message id -> its conversation
        self._markers: dict[Conversation, int] = {}  # the account's read markers
        # Issue 15: DM receipts per other party (folded nick): (delivered, read).
        self._receipts: dict[str, tuple[int, int]] = {}

    # --- session -----------------------------------------------------------------

    def welcome(self, nick: str, account: bool, rooms: Iterable[str]) -> None:
        """Record a new session: its nick as stored, account flag and rooms."""
        self.nick = nick
        self.account = account
        self.rooms = {r.lower() for r in rooms}
        for room in self.rooms:
            self._names.setdefault(Conversation.room(room), room)

    def joined(self, room: str) -> None:
        """Record that this client is now in ``room``."""
        self.rooms.add(room.lower())
        self._names.setdefault(Conversation.room(room), room.lower())

    def left(self, room: str) -> None:
        """Record that this client left ``room`` (its messages are kept)."""
        self.rooms.discard(room.lower())

    def open_dm(self, nick: str) -> Conversation:
        """The DM conversation with ``nick``, remembering how to display it."""
        conv = Conversation.dm(nick)
        self._names.setdefault(conv, nick)
        return conv

    def is_me(self, nick: str) -> bool:
        """Whether ``nick`` is this client's nick (compared casefolded)."""
        return bool(self.nick) and fold_nick(nick) == fold_nick(self.nick)

    # --- messages ----------------------------------------------------------------

    def is_duplicate(self, message_id: int) -> bool:
        """Whether a message with this id was already accepted by :meth:`add`."""
        return message_id <= self._floor or message_id in self._ids

    def add(self, message: Message) -> bool:
        """Accept a delivered (live or backlog) message unless it is a duplicate.

        A new message is stored in its conversation and, unless it is our own or
        its conversation is :attr:`active`, counted as unread.

        Returns:
            True if the message is new, False if it was a duplicate (ignored).
        """
        if self.is_duplicate(message.id):
            return False
        self._ids.add(message.id)
        self._order.append(message.id)
        while len(self._order) > self._max_ids:
            old = self._order.popleft()
            self._ids.discard(old)
            self._floor = max(self._floor, old)
        conv = self._store(message)
        if not message.own and conv != self.active:
            self._unread[conv] = self._unread.get(conv, 0) + 1
        return True

    def add_history(self, messages: Iterable[Message]) -> list[Message]:
        """Merge older messages fetched with ``history``; never counted as unread.

        Returns:
            The messages that were not already known to their conversation.
        """
        added = []
        for message in messages:
            conv = Conversation.of(message)
            known = self._messages.get(conv, [])
            i = bisect.bisect_left(known, message.id, key=lambda m: m.id)
            if i < len(known) and known[i].id == message.id:
                continue
            self._store(message)
            added.append(message)
        return added

    def _store(self, message: Message) -> Conversation:
        conv = Conversation.of(message)
        if message.room is not None:
            self._names.setdefault(conv, message.room.lower())
        else:
            self._names[conv] = message.peer or message.sender
        msgs = self._messages.setdefault(conv, [])
        if not msgs or msgs[-1].id < message.id:
            msgs.append(message)
        else:
            bisect.insort(msgs, message, key=lambda m: m.id)
        self._where[message.id] = conv
        if len(msgs) > self._max_per:
            for gone in msgs[: len(msgs) - self._max_per]:
                self._where.pop(gone.id, None)
            del msgs[: len(msgs) - self._max_per]
        self._last[conv] = max(self._last.get(conv, 0), message.id)
        return conv

    def find(self, message_id: int) -> Message | None:
        """The kept message with this id, wherever it is; None if not kept."""
        conv = self._where.get(message_id)
        if conv is None:
            return None
        msgs = self._messages.get(conv, [])
        i = bisect.bisect_left(msgs, message_id, key=lambda m: m.id)
        return msgs[i] if i < len(msgs) and msgs[i].id == message_id else None

    def apply(self, change: Changed) -> Message | None:
        """Apply an edit, deletion or reaction to the kept message it is about.

        Returns:
            The message as it is now, or None if it is not kept here (an older
            message; ``history`` will bring it with the change already applied).
        """
        conv = self._where.get(change.target)
        if conv is None:
            return None
        msgs = self._messages[conv]
        i = bisect.bisect_left(msgs, change.target, key=lambda m: m.id)
        if i >= len(msgs) or msgs[i].id != change.target:
            return None
        msgs[i] = msgs[i].apply(change, self.nick)
        return msgs[i]

    def messages(self, conversation: Conversation) -> list[Message]:
        """The kept messages of a conversation, oldest first."""
        return list(self._messages.get(conversation, ()))

    def oldest_id(self, conversation: Conversation) -> int | None:
        """The id of the oldest kept message of a conversation (for ``history``)."""
        msgs = self._messages.get(conversation)
        return msgs[0].id if msgs else None

    def conversations(self) -> list[Conversation]:
        """Conversations with messages or membership, the most recently active first."""
        convs = set(self._messages) | {Conversation.room(r) for r in self.rooms}
        return sorted(convs, key=lambda c: (-self._last.get(c, 0), c))

    def display_name(self, conversation: Conversation) -> str:
        """A conversation's name as shown: ``#room`` or ``@Nick`` (display form)."""
        prefix = "#" if conversation.kind == "room" else "@"
        return prefix + self._names.get(conversation, conversation.name)

    # --- unread ------------------------------------------------------------------

    def unread(self, conversation: Conversation) -> int:
        """Messages from others in this conversation since it was last read."""
        return self._unread.get(conversation, 0)

    def total_unread(self) -> int:
        """Unread messages over every conversation."""
        return sum(self._unread.values())

    def mark_read(self, conversation: Conversation) -> None:
        """Reset a conversation's unread count."""
        self._unread.pop(conversation, None)

    def newest_id(self, conversation: Conversation) -> int:
        """The id of the newest kept message of a conversation (0 if none)."""
        msgs = self._messages.get(conversation)
        return msgs[-1].id if msgs else 0

    def set_unread(self, conversation: Conversation, count: int) -> None:
        """Set a conversation's unread count (e.g. from ``caught_up.unread``)."""
        if count > 0 and conversation != self.active:
            self._unread[conversation] = count
        else:
            self._unread.pop(conversation, None)

    def marker(self, conversation: Conversation) -> int:
        """The account's read marker of a conversation, as far as this client knows (0: none)."""
        return self._markers.get(conversation, 0)

    def read_upto(self, conversation: Conversation, upto: int) -> bool:
        """The account read a conversation up to message ``upto`` (here or on another device).

        Markers only move forward. The unread count becomes the kept messages
        from others after the marker, if that is fewer than it was.

        Returns:
            True if the marker moved.
        """
        if upto <= self._markers.get(conversation, 0):
            return False
        self._markers[conversation] = upto
        left = sum(1 for m in self._messages.get(conversation, ()) if m.id > upto and not m.own)
        if left < self._unread.get(conversation, 0):
            self.set_unread(conversation, left)
        return True

    def receipt(self, nick: str, *, delivered: int = 0, read: int = 0) -> tuple[int, int]:
        """How far ``nick`` has our DMs on a device and has read them, ``(delivered, read)``,
        after moving either forward (never back) by a receipt, live or stored."""
        key = fold_nick(nick)
        had = self._receipts.get(key, (0, 0))
        now = (max(had[0], delivered), max(had[1], read))
        if now != had:
            self._receipts[key] = now
        return now

    def dm_status(self, message: Message) -> Literal["sent", "delivered", "read"] | None:
        """Where one of our DMs is on its timeline (queued ones are in the outbox,
        not here): ``sent`` (stored), ``delivered`` (on a device of the other
        party) or ``read``; None for anything but our own DM."""
        if not message.own or message.room is not None or message.peer is None:
            return None
        delivered, read = self._receipts.get(fold_nick(message.peer), (0, 0))
        if message.id <= read:
            return "read"
        return "delivered" if message.id <= delivered else "sent"

    def set_active(self, conversation: Conversation) -> None:
        """Make ``conversation`` the one on screen: it is read, and stays read."""
        self.active = conversation
        self.mark_read(conversation)
