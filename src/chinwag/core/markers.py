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
from chinwag.core.sessions import Frame, OnlineRegistry, Session, ok
from chinwag.errors import NotMember
from chinwag.protocol.events import Read, ReadMarker
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
        if p.account:
            upto = min(cmd.upto, session.last_delivered)
            key = conversation_key(room, other)
            marker = await self._store.advance_read(p.pid, key, upto)
            if marker == upto:  # it moved (or stayed at exactly this): tell the others
                echo = Frame(ReadMarker(room=room, with_=None if room else nick, upto=marker))
                for s in p.sessions:
                    if s is not session:
                        s.deliver(0, echo)
                if self._registry is not None and self._registry.remote.get(p.pid) is not None:
                    with_ = None if room else nick
                    moved = ReadMoved(self._registry.node, p.pid, room, with_, marker)
                    self._registry.announce(moved)  # to its sessions on other nodes
                if room is None:
                    await self._receipts.read(session, other, marker)
        ok(session, cmd.ref)
