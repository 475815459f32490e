"""Read markers (protocol §8): how far an account has read each conversation.

A marker belongs to the account, not to a device: moving it on one device is
echoed to the account's other sessions, and the next login's ``caught_up``
counts what lies after it (``unread``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from chinwag.bus.base import ReadMoved
from chinwag.core.receipts import DmReceipts
from chinwag.core.rules import parse_room
from chinwag.core.sessions import Frame, OnlineRegistry, Session, ok, reply
from chinwag.errors import NotMember
from chinwag.protocol.events import Read, ReadMarker, ReadQuery
from chinwag.storage.base import Store


def conversation_key(room: str | None, other: str) -> str:
    """The stored name of a conversation: ``#room``, or ``@`` + the other party's principal."""
    return "#" + room if room is not None else "@" + other


class ReadMarkers:
    """The ``read`` command.

    Args:
        store: where markers are kept.
        resolve: (principal, display nick, online?) of a nick (`Posting.resolve`).
    """

    def __init__(
        self,
        store: Store,
        resolve: Callable[[str], Awaitable[tuple[str, str, bool]]],
        receipts: DmReceipts,
    ) -> None:
        self._store = store
        self._resolve = resolve
        self._receipts = receipts
        self._registry: OnlineRegistry | None = None  # the other nodes (set by the hub)

    async def read(self, session: Session, cmd: Read) -> None:
        """Move the account's marker (never back, never past what this session was sent).

        A guest's markers are not kept (it has one session and no next login):
        it gets ``ok`` and nothing changes.
        """
        p = session.principal
        if cmd.room is not None:
            room: str | None = parse_room(cmd.room)
            if room not in p.rooms:
                raise NotMember(f"you are not in #{room}")
            other, nick = "", ""
        else:
            room = None
            other, nick, _ = await self._resolve(cmd.with_ or "")
        if cmd.upto_ms is not None:  # IRC MARKREAD (issue 19): by time
            await self._read_at(session, cmd, room, other, nick)
            return
        if p.account:
            upto = min(cmd.upto, session.last_delivered)
            key = conversation_key(room, other)
            marker = await self._store.advance_read(p.pid, key, upto)
            if marker == upto:  # it moved (or stayed at exactly this): tell the others
                elsewhere = (
                    self._registry is not None and self._registry.remote.get(p.pid) is not None
                )
                # Its time, for IRC sessions (MARKREAD); read only when someone is told.
                told = len(p.sessions) > 1 or elsewhere
                ts_ms = await self._ts_of(marker) if told else None
                echo = Frame(
                    ReadMarker(room=room, with_=None if room else nick, upto=marker, ts_ms=ts_ms)
                )
                for s in p.sessions:
                    if s is not session:
                        s.deliver(0, echo)
                if elsewhere and self._registry is not None:
                    with_ = None if room else nick
                    moved = ReadMoved(self._registry.node, p.pid, room, with_, marker, ts_ms)
                    self._registry.announce(moved)  # to its sessions on other nodes
                if room is None:
                    await self._receipts.read(session, other, marker)
        ok(session, cmd.ref)

    # -- IRC draft/read-marker (issue 19, irchist): markers by time --

    async def _read_at(
        self, session: Session, cmd: Read, room: str | None, other: str, nick: str
    ) -> None:
        """Move the marker to the latest message at or before ``cmd.upto_ms``; answer where it is.

        That message is one this session may read (its room, its DM), so the
        marker may pass what this session was sent live (it read it in history).
        The time given is kept beside it (ircmsg), never decreasing, and the
        answer is the later of it and the marked message's time: a time with no
        message at it is answered as given. A guest's is kept while it is online.
        """
        assert cmd.upto_ms is not None
        p = session.principal
        with_ = None if room else nick
        if room is not None:
            page = await self._store.room_history_range(
                room, after=0, before=None, limit=1, newest=True, before_ms=cmd.upto_ms + 1
            )
        else:
            page = await self._store.dm_history_range(
                p.pid, other, after=0, before=None, limit=1, newest=True, before_ms=cmd.upto_ms + 1
            )
        key = conversation_key(room, other)
        upto = page.messages[-1].id if page.messages else 0
        if p.account:
            marker, at = await self._store.advance_read_at(p.pid, key, upto, cmd.upto_ms)
        else:
            if p.read_at is None:
                p.read_at = {}
            was, was_at = p.read_at.get(key, (0, 0))
            marker, at = max(was, upto), max(was_at, cmd.upto_ms)
            p.read_at[key] = (marker, at)
        ts = max(at, await self._ts_of(marker) or 0)
        if at == cmd.upto_ms or (upto and marker == upto):  # it moved: tell the others
            echo = Frame(ReadMarker(room=room, with_=with_, upto=marker, ts_ms=ts))
            for s in p.sessions:
                if s is not session:
                    s.deliver(0, echo)
            if self._registry is not None and self._registry.remote.get(p.pid) is not None:
                moved = ReadMoved(self._registry.node, p.pid, room, with_, marker, ts)
                self._registry.announce(moved)
            if room is None and p.account and upto and marker == upto:
                await self._receipts.read(session, other, marker)
        reply(session, ReadMarker(room=room, with_=with_, upto=marker, ts_ms=ts, ref=cmd.ref))

    async def query(self, session: Session, cmd: ReadQuery) -> None:
        """Answer where the account's marker of a conversation is (0: none), and its time:
        the later of the time given (ircmsg) and the marked message's."""
        p = session.principal
        if cmd.room is not None:
            room: str | None = parse_room(cmd.room)
            other, nick = "", ""
        else:
            room = None
            other, nick, _ = await self._resolve(cmd.with_ or "")
        key = conversation_key(room, other)
        marker, at = 0, None
        if p.account:
            marker, at = await self._store.read_marker(p.pid, key)
        elif p.read_at is not None and key in p.read_at:
            marker, at = p.read_at[key]
        ts = max(at or 0, await self._ts_of(marker) or 0) or None
        with_ = None if room else nick
        reply(session, ReadMarker(room=room, with_=with_, upto=marker, ts_ms=ts, ref=cmd.ref))

    async def _ts_of(self, message_id: int) -> int | None:
        """When message ``message_id`` was sent (None: no such message, or 0)."""
        if message_id <= 0:
            return None
        rows = await self._store.messages_between(message_id - 1, message_id)
        return rows[0].ts_ms if rows else None
