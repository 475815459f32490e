"""What a :class:`~chinwag.client.ChatClient` hands to the application.

Every event is a frozen dataclass. The application reads them in order from
:meth:`ChatClient.events() <chinwag.client.ChatClient.events>` and matches on
the class::

    match event:
        case Message(sender=sender, body=body, room=room): ...
        case Status(state="reconnecting", retry_in=delay): ...

Wire frames never reach the application as dictionaries: the client turns them
into these classes (protocol v1 field names become Python names: ``from`` is
``sender``). Frames that cannot be understood are skipped.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from chinwag.errors import ChatError

__all__ = [
    "AwayChanged",
    "CaughtUp",
    "Changed",
    "ErrorReceived",
    "Event",
    "HistoryPage",
    "Message",
    "Presence",
    "Reaction",
    "ReadMarker",
    "Receipt",
    "Renamed",
    "RoomInfo",
    "SendFailed",
    "Sent",
    "SettingsChanged",
    "Status",
    "Typing",
    "User",
    "Welcome",
    "fold_nick",
    "parse_ts",
]

StatusState = Literal["connected", "reconnecting", "offline"]


def fold_nick(nick: str) -> str:
    """The comparison form of a nick: NFC, then casefolded (protocol v1 §2)."""
    return unicodedata.normalize("NFC", nick).casefold()


def parse_ts(text: object) -> datetime:
    """Parse a wire timestamp (``2026-11-24T05:00:00.123Z``) into an aware UTC datetime.

    A missing or malformed timestamp becomes the current time: a server's slip
    must not cost the application a message.
    """
    if isinstance(text, str):
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Welcome:
    """A session began: the server accepted ``hello``.

    Attributes:
        nick: the nick as the server stores it (its display form).
        account: whether the nick is a registered account.
        rooms: the rooms this session is in.
        motd: the server's message of the day ("" if none).
        server_name: the server's name.
        server_version: the server's version string.
        resumed: False for the first session of this client, True after a reconnect.
        receipts: whether the account has DM receipts on (None: a guest, or a
            server that does not say; issue 15).
    """

    nick: str
    account: bool
    rooms: tuple[str, ...]
    motd: str = ""
    server_name: str = ""
    server_version: str = ""
    resumed: bool = False
    receipts: bool | None = None


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """The backlog is over; what follows is live.

    Attributes:
        missed: number of messages the server replayed.
        rooms: replayed messages per room name.
        dms: replayed messages per other party's nick.
        truncated: older messages were left out of the backlog.
        resumed: False for the first session of this client, True after a reconnect
            (then the counts include messages the application already had; the
            client dropped those as duplicates).
        unread: backlog messages from others after the account's read marker,
            per conversation: a room's name, or ``@`` and the other party's nick
            for a DM (protocol version 1.1; conversations with none are left out).
        mentions: backlog messages that mention you (protocol version 1.1).
        receipts: stored DM receipts, per other party's nick: how far they have your
            DMs on a device and have read them, ``(delivered, read)`` (issue 15;
            the client also hands each on as a :class:`Receipt` after this event).
        markers: the account's read markers, keyed as ``unread`` is: the id of the
            newest message read in each conversation it may see (issue 15; the
            client's :class:`ChatState` has them already when this event comes).
    """

    missed: int
    rooms: Mapping[str, int] = field(default_factory=dict)
    dms: Mapping[str, int] = field(default_factory=dict)
    truncated: bool = False
    resumed: bool = False
    unread: Mapping[str, int] = field(default_factory=dict)
    mentions: int = 0
    receipts: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    markers: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reaction:
    """One emoji on a message and who put it on, oldest first."""

    emoji: str
    nicks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message, in a room (``room`` set) or direct (``to`` set).

    Attributes:
        id: the server's message id (increasing in storage order).
        ts: when the server stored it (aware, UTC).
        sender: the sender's display nick (the wire's ``from``).
        body: the text; may hold ``\\n`` and ``\\t``. Untrusted: escape it before
            printing it to a terminal.
        room: the room, for a room message.
        to: the recipient's display nick, for a direct message.
        replay: part of the backlog sent at login, not live.
        own: sent by this nick (from this or another device).
        cid: the client id the sender gave; only present on the sender's copies.
        mentions: the nicks the server found mentioned (protocol version 1.1).
        mentioned: whether ``mentions`` names this client's nick.
        reply_to: the id of the message this one answers, if any.
        edited: the body is an edit's (only ``history`` says so, or :meth:`apply`).
        deleted: the message was deleted: ``body`` is "" (its text is erased).
        reactions: the reactions on it, in the order they were first put on.
        notice: sent as a notice (an IRC NOTICE, a bot's status line): shown as
            one, and never answered automatically.
    """

    id: int
    ts: datetime
    sender: str
    body: str
    room: str | None = None
    to: str | None = None
    replay: bool = False
    own: bool = False
    cid: str | None = None
    mentions: tuple[str, ...] = ()
    mentioned: bool = False
    reply_to: int | None = None
    edited: bool = False
    deleted: bool = False
    reactions: tuple[Reaction, ...] = ()
    notice: bool = False

    @property
    def is_dm(self) -> bool:
        """Whether this is a direct message."""
        return self.room is None

    @property
    def peer(self) -> str | None:
        """For a DM, the other party's nick (yourself for a DM to yourself); else None."""
        if self.room is not None:
            return None
        return self.to if self.own and self.to is not None else self.sender

    @classmethod
    def from_frame(cls, frame: Mapping[str, Any], me: str) -> Message | None:
        """Build a message from a wire ``message`` frame; None if it is malformed.

        Args:
            frame: the decoded frame (or one entry of a ``history`` page).
            me: this client's nick, to tell its own messages apart.
        """
        mid, sender, body = frame.get("id"), frame.get("from"), frame.get("body")
        room, to, cid = frame.get("room"), frame.get("to"), frame.get("cid")
        raw = frame.get("mentions")
        mentions = tuple(n for n in raw if isinstance(n, str)) if isinstance(raw, list) else ()
        if not (isinstance(mid, int) and not isinstance(mid, bool) and mid > 0):
            return None
        deleted = frame.get("deleted") is True
        if deleted:
            body = ""  # the text is erased; history says so with no body
        if not isinstance(sender, str) or not isinstance(body, str):
            return None
        if isinstance(room, str):
            to = None
        elif isinstance(to, str):
            room = None
        else:
            return None
        return cls(
            id=mid,
            ts=parse_ts(frame.get("ts")),
            sender=sender,
            body=body,
            room=room,
            to=to,
            replay=frame.get("replay") is True,
            own=bool(me) and fold_nick(sender) == fold_nick(me),
            cid=cid if isinstance(cid, str) else None,
            mentions=mentions,
            mentioned=bool(me) and fold_nick(me) in {fold_nick(n) for n in mentions},
            reply_to=_positive(frame.get("reply_to")),
            edited=isinstance(frame.get("edited"), str),
            deleted=deleted,
            reactions=_reactions(frame.get("reactions")),
            notice=frame.get("notice") is True,
        )

    def apply(self, change: Changed, me: str = "") -> Message:
        """This message as ``change`` leaves it (a change of another message: unchanged).

        An edit replaces the body and adds the people it newly mentions; a
        deletion erases the body and the reactions; a reaction puts its nick on
        (or takes it off) that emoji. Applying a change twice gives the same
        message, so a change delivered twice does no harm.

        Args:
            change: an ``edited``, ``deleted`` or ``reacted`` event.
            me: this client's nick (for :attr:`mentioned`).
        """
        if change.target != self.id or self.deleted:
            return self
        match change.kind:
            case "edited" if change.body is not None:
                mentions = self.mentions + tuple(
                    n for n in change.mentions if fold_nick(n) not in map(fold_nick, self.mentions)
                )
                mentioned = self.mentioned or (
                    bool(me) and fold_nick(me) in {fold_nick(n) for n in change.mentions}
                )
                return replace(
                    self, body=change.body, edited=True, mentions=mentions, mentioned=mentioned
                )
            case "deleted":
                return replace(self, body="", deleted=True, reactions=())
            case "reacted" if change.emoji is not None:
                return replace(self, reactions=_toggle(self.reactions, change))
        return self


@dataclass(frozen=True, slots=True)
class Presence:
    """Someone joined or left a room (the nick may be yourself, from another device)."""

    room: str
    nick: str
    event: Literal["join", "leave"]


@dataclass(frozen=True, slots=True)
class Typing:
    """Someone is typing in a room (``room``) or to you (``to``)."""

    sender: str
    room: str | None = None
    to: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """The connection changed state.

    Attributes:
        state: ``connected``; ``reconnecting`` (the next attempt is in ``retry_in``
            seconds); or ``offline`` (closed, or a reconnect was refused for good:
            see ``error``).
        retry_in: seconds until the next attempt, when reconnecting.
        queued: messages waiting in the outbox for their ``ack``.
        error: why the client went offline or the last attempt failed, if known.
        cert_refused: offline because the server's TLS certificate was refused
            (it is not the pinned one, or no longer verifies).
    """

    state: StatusState
    retry_in: float | None = None
    queued: int = 0
    error: str | None = None
    cert_refused: bool = False


@dataclass(frozen=True, slots=True)
class Sent:
    """The server stored a message of ours (its ``ack``)."""

    cid: str
    id: int
    ts: datetime
    away: str | None = None  # a DM's: the recipient's away message, if away (issue 19)


@dataclass(frozen=True, slots=True)
class SendFailed:
    """The server refused a message for good; it left the outbox unsent.

    Attributes:
        cid: the client id given when it was queued.
        error: the refusal (``error.code`` is the wire code, e.g. ``not_member``).
        kind: ``say`` or ``dm``.
        target: the room (say) or nick (dm).
        body: the text that was not sent.
    """

    cid: str
    error: ChatError
    kind: Literal["say", "dm"]
    target: str
    body: str


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """An error frame that answers none of our pending requests."""

    error: ChatError


@dataclass(frozen=True, slots=True)
class User:
    """One online member of a room (a ``who`` reply)."""

    nick: str
    account: bool
    bot: bool = False
    away: str | None = None  # the away message, if away (issue 19)


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """One room with members (a ``rooms`` reply)."""

    name: str
    online: int


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of messages, oldest first; ``more`` if older ones exist (newer ones, for a
    page asked with ``after``).

    ``receipts``: for a DM page, how far the other party has your DMs, ``(delivered,
    read)``, when both of you have receipts on (issue 15); None otherwise.
    """

    messages: tuple[Message, ...]
    more: bool
    receipts: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Changed:
    """An edit, deletion or reaction of an earlier message (protocol version 1.1).

    Attributes:
        kind: ``"edited"``, ``"deleted"`` or ``"reacted"`` (the wire's type).
        id: the event's own id (in the same sequence as messages).
        target: the id of the message it changes.
        by: who edited, deleted or reacted (a display nick).
        room: the room, or None for a DM.
        to: for a DM, the other party as the server named it.
        body: the new text of an edit; None otherwise. Untrusted.
        emoji: the reaction; None unless ``kind`` is ``"reacted"``. Untrusted.
        on: whether the reaction was put on (False: taken off).
        replay: part of the backlog sent at login, not live.
        mentions: for an edit, the people it newly mentions.
    """

    kind: str
    id: int
    target: int
    by: str
    room: str | None = None
    to: str | None = None
    body: str | None = None
    emoji: str | None = None
    on: bool = True
    replay: bool = False
    mentions: tuple[str, ...] = ()

    @classmethod
    def from_frame(cls, frame: Mapping[str, Any]) -> Changed | None:
        """Build it from an ``edited``, ``deleted`` or ``reacted`` frame; None if malformed."""
        kind, mid, target = frame.get("type"), frame.get("id"), frame.get("target")
        by = frame.get("by") if kind == "deleted" else frame.get("from")
        if kind not in ("edited", "deleted", "reacted") or not isinstance(by, str):
            return None
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (mid, target)):
            return None
        body, emoji = frame.get("body"), frame.get("emoji")
        if (kind == "edited" and not isinstance(body, str)) or (
            kind == "reacted" and not isinstance(emoji, str)
        ):
            return None
        room, to = frame.get("room"), frame.get("to")
        raw = frame.get("mentions")
        return cls(
            kind=str(kind),
            id=int(mid),  # type: ignore[arg-type]
            target=int(target),  # type: ignore[arg-type]
            by=by,
            room=room if isinstance(room, str) else None,
            to=to if isinstance(to, str) else None,
            body=body if kind == "edited" else None,
            emoji=emoji if kind == "reacted" else None,
            on=frame.get("on") is not False,
            replay=frame.get("replay") is True,
            mentions=tuple(n for n in raw if isinstance(n, str)) if isinstance(raw, list) else (),
        )


@dataclass(frozen=True, slots=True)
class ReadMarker:
    """Another device of this account read a conversation up to ``upto`` (protocol 1.1).

    Attributes:
        upto: the id of the newest message read.
        room: the room, for a room.
        with_: the other party's nick, for a DM (the wire's ``with``).
    """

    upto: int
    room: str | None = None
    with_: str | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """The other party of a DM got (``delivered``) or read (``read``) your DMs up to ``upto``.

    Only when both accounts turned receipts on (:meth:`ChatClient.set_receipts
    <chinwag.client.ChatClient.set_receipts>`); protocol version 1.1.
    """

    with_: str
    upto: int
    state: Literal["delivered", "read"]


@dataclass(frozen=True, slots=True)
class SettingsChanged:
    """The account's settings changed on another device (issue 15): ``receipts`` now."""

    receipts: bool


def _positive(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _reactions(value: object) -> tuple[Reaction, ...]:
    if not isinstance(value, list):
        return ()
    out = []
    for entry in value:
        if isinstance(entry, dict) and isinstance(entry.get("emoji"), str):
            nicks = entry.get("nicks")
            names = tuple(n for n in nicks if isinstance(n, str)) if isinstance(nicks, list) else ()
            if names:
                out.append(Reaction(entry["emoji"], names))
    return tuple(out)


def _toggle(reactions: tuple[Reaction, ...], change: Changed) -> tuple[Reaction, ...]:
    """Reactions with ``change.by`` put on (or taken off) ``change.emoji``; a set per emoji."""
    who = fold_nick(change.by)
    out: list[Reaction] = []
    found = False
    for reaction in reactions:
        if reaction.emoji != change.emoji:
            out.append(reaction)
            continue
        found = True
        has = any(fold_nick(n) == who for n in reaction.nicks)
        if change.on:
            nicks = reaction.nicks if has else (*reaction.nicks, change.by)
        else:
            nicks = tuple(n for n in reaction.nicks if fold_nick(n) != who)
        if nicks:
            out.append(Reaction(reaction.emoji, nicks))
    if not found and change.on and change.emoji is not None:
        out.append(Reaction(change.emoji, (change.by,)))
    return tuple(out)


# -- moderation (issue 16) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoomDetails:
    """A room's settings: on joining it, and to its members when they change (``by``).

    ``role`` is yours there (``member``, ``mod``, ``owner``, ``admin``) when known.
    ``retention_days``: the room's own retention (protocol §12.3), None if none.
    ``keyed``, ``key``, ``limit`` (ircmodes): whether a join needs a key, the key (told
    to the owner, mods and admins only), the member limit (None: none).
    """

    room: str
    topic: str
    private: bool
    announce: bool
    by: str | None = None
    role: str | None = None
    retention_days: int | None = None
    keyed: bool = False
    key: str | None = None
    limit: int | None = None

    @classmethod
    def from_frame(cls, frame: Mapping[str, Any]) -> RoomDetails | None:
        room, topic = frame.get("room"), frame.get("topic")
        if not isinstance(room, str) or not isinstance(topic, str):
            return None
        by, role, days = frame.get("by"), frame.get("role"), frame.get("retention_days")
        key, limit = frame.get("key"), frame.get("limit")
        return cls(
            room,
            topic,
            frame.get("private") is True,
            frame.get("announce") is True,
            by if isinstance(by, str) else None,
            role if isinstance(role, str) else None,
            days if isinstance(days, int) and not isinstance(days, bool) and days > 0 else None,
            frame.get("keyed") is True,
            key if isinstance(key, str) else None,
            limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None,
        )


@dataclass(frozen=True, slots=True)
class Moderated:
    """A moderator acted on ``nick`` in ``room``: ``action`` is ``kick``, ``ban``, ``unban``,
    ``mute``, ``unmute``, ``invite`` or ``grant`` (with ``role``); ``until`` None: for ever."""

    room: str
    nick: str
    action: str
    by: str
    reason: str = ""
    until: datetime | None = None
    role: str | None = None

    @classmethod
    def from_frame(cls, frame: Mapping[str, Any]) -> Moderated | None:
        room, nick, action, by = (frame.get(k) for k in ("room", "nick", "event", "by"))
        if not all(isinstance(v, str) for v in (room, nick, action, by)):
            return None
        assert isinstance(room, str) and isinstance(nick, str)
        assert isinstance(action, str) and isinstance(by, str)
        reason, until, role = frame.get("reason"), frame.get("until"), frame.get("role")
        return cls(
            room,
            nick,
            action,
            by,
            reason if isinstance(reason, str) else "",
            parse_ts(until) if isinstance(until, str) else None,
            role if isinstance(role, str) else None,
        )


@dataclass(frozen=True, slots=True)
class AwayChanged:
    """Someone in a room with you (or you, from another device) is away (``message``),
    or back (None) (issue 19)."""

    nick: str
    message: str | None


@dataclass(frozen=True, slots=True)
class Renamed:
    """A guest in a room with you (or you) took another nick (ircmsg): ``nick`` is now ``new``."""

    nick: str
    new: str


Event = (
    Welcome
    | CaughtUp
    | Message
    | Presence
    | Typing
    | Status
    | Sent
    | SendFailed
    | ErrorReceived
    | Changed
    | ReadMarker
    | Receipt
    | SettingsChanged
    | RoomDetails
    | Moderated
    | AwayChanged
    | Renamed
)
"""Everything :meth:`ChatClient.events` can yield."""
