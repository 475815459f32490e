"""The event vocabulary shared by every codec and the hub.

Client commands are imperative (``Hello``, ``Say``); what a codec makes of input
it cannot accept is ``Rejected`` (reply with an error, keep going), ``Dropped``
(no reply: ``typing``/``seen``/``pong`` that are malformed) or ``Fatal`` (flush,
then close). Every command carries the client's ``ref`` so that the reply can
echo it. Field checks that need no state (types, lengths of ``ref``/``cid``) are
the codec's; rules that need state or Unicode tables (nicks, rooms, bodies) are
the hub's.

Server events (``Welcome``, ``Message``, ``Ack``…) are what the hub says; each
codec renders them in its own wire format (JSON lines: ``jsonlines.render``).
They carry no wire details: timestamps are integer milliseconds, and the codec
formats them. ``Ping``, ``Pong`` and ``Bye`` are both commands and server events:
they carry nothing but ``ref``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chinwag.errors import ChatError


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """Base of every client command."""

    ref: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Command):
    proto: int
    nick: str
    password: str | None = None
    device: str = "default"
    client: str | None = None
    lobby: bool = True  # start in the lobby (False: IRC with irc_auto_join off; not on the wire)
    # IRC's USER username (before any @device) and real name (issue 19; not on the wire).
    user: str | None = None
    real_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Say(Command):
    room: str
    body: str
    cid: str | None = None
    reply_to: int | None = None  # §8: a message of the same conversation
    notice: bool = False  # ircmsg: shown as a notice, never answered automatically
    # ircmsg: where an IRC draft/multiline line was joined to the one before without
    # a newline (code point offsets in body, ascending); IRC only, not in JSON.
    concat: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Dm(Command):
    to: str
    body: str
    cid: str | None = None
    reply_to: int | None = None
    notice: bool = False  # ircmsg: shown as a notice, never answered automatically
    # ircmsg: where an IRC draft/multiline line was joined to the one before without
    # a newline (code point offsets in body, ascending); IRC only, not in JSON.
    concat: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Edit(Command):
    """§8: replace the body of message ``id`` (the sender's own, within the edit window)."""

    id: int
    body: str
    cid: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Delete(Command):
    """§8: delete message ``id``; its body is erased from storage."""

    id: int
    cid: str | None = None
    reason: str | None = None  # why (one line), told with the deletion (issue 19)


@dataclass(frozen=True, slots=True, kw_only=True)
class React(Command):
    """§8: put this person's reaction ``emoji`` on message ``id`` on or off."""

    id: int
    emoji: str
    on: bool = True
    cid: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Join(Command):
    """``key`` (branch ircmodes, an extension): the room's key, if it has one."""

    room: str
    key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Leave(Command):
    room: str
    reason: str = ""  # IRC's PART message, told to the members on IRC (not on the JSON wire)


@dataclass(frozen=True, slots=True, kw_only=True)
class Who(Command):
    room: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListRooms(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class History(Command):
    """Exactly one of ``room`` and ``with_`` is set (the codec enforces it)."""

    room: str | None = None
    with_: str | None = None
    before: int | None = None
    limit: int | None = None
    after: int | None = None  # issue 15: oldest first from just after this id (not with before)


@dataclass(frozen=True, slots=True, kw_only=True)
class Register(Command):
    """``bot`` and ``invite`` are extensions (docs/protocol.md §5)."""

    password: str
    bot: bool = False
    invite: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Passwd(Command):
    old: str
    new: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Seen(Command):
    upto: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Typing(Command):
    """Exactly one of ``room`` and ``to`` is set."""

    room: str | None = None
    to: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Bye(Command):
    """As a server event, ``reason`` says why the server ends the session (§8: ``banned``);
    from a client, its quit message (IRC ``QUIT :message``; issue 19)."""

    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Search(Command):
    """§8: messages with every word of ``q`` that the asker may see now.

    At most one of ``room`` and ``with_`` is set (neither: everywhere).
    """

    q: str
    room: str | None = None
    with_: str | None = None
    sender: str | None = None  # the wire's "from"
    before: int | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Read(Command):
    """§8: the account has read ``room`` (or the DM ``with_``) up to ``upto``.

    Exactly one of ``room`` and ``with_`` is set. The server echoes it to the
    account's other sessions as a `ReadMarker`.
    """

    room: str | None = None
    with_: str | None = None
    upto: int
    # IRC draft/read-marker (issue 19): up to the latest message at or before this
    # time instead (``upto`` is then ignored); answered with `ReadMarker`, not `Ok`.
    upto_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipts(Command):
    """§8 (the ``receipts`` setting): send and receive DM receipts, or stop."""

    on: bool


# -- blocks (issue 16) --


@dataclass(frozen=True, slots=True, kw_only=True)
class Block(Command):
    """§8: nothing of ``nick`` (messages, events, typing) reaches this account any more."""

    nick: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Unblock(Command):
    """§8: what ``nick`` sends from now on reaches this account again."""

    nick: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListBlocks(Command):
    """The nicks this account blocks (answered with `BlocksReply`)."""


# -- account settings (issue 15) ------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GetSettings(Command):
    """The account's settings, read back (answered with `SettingsReply`)."""


# -- moderation (issue 16, protocol §8) -----------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomSet(Command):
    """§8 ``room``: change a room's settings; None leaves one as it is (at least one is set).

    ``retention_days`` (issue 17, an extension): days the room's messages are
    kept; 0 clears the room's own setting.
    ``key`` and ``limit`` (branch ircmodes, extensions): what a join must give, and
    how many may be online in the room; ``""`` and 0 clear them.
    """

    room: str
    topic: str | None = None
    private: bool | None = None
    announce: bool | None = None
    retention_days: int | None = None
    key: str | None = None
    limit: int | None = None
    topic_locked: bool | None = None  # ircroles: only the owner and mods set the topic
    secret: bool | None = None  # ircroles: unlisted, still open to all


@dataclass(frozen=True, slots=True, kw_only=True)
class Invite(Command):
    """§8: let ``nick`` join the private ``room``."""

    room: str
    nick: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Moderate(Command):
    """§8 ``kick``, ``ban``, ``unban``, ``mute``, ``unmute`` (``action``) of ``nick``;
    ircroles: ``voice``, ``unvoice`` (may speak in an announce room).

    ``room`` None: server-wide (an admin's; ``kick`` and ``ban``/``unban`` only).
    ``until_ms`` None: until lifted (ban, mute).
    """

    action: str
    room: str | None = None
    nick: str
    until_ms: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant(Command):
    """§8: give ``nick`` the ``role`` ``mod`` or ``member`` in ``room``; ``admin`` or
    ``member`` server-wide when ``room`` is None."""

    room: str | None = None
    nick: str
    role: str


# -- IRC CHATHISTORY (issue 19) --


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryRange(Command):
    """Messages of a room (``room``) or a DM (``with_``) in a range (IRC only).

    ``after < id < before`` and ``after_ms < ts < before_ms`` (None: no upper
    bound): the oldest ``limit`` of them, or with ``newest`` the newest
    ``limit``. With ``around`` (an id) or ``around_ms`` (a time) set, the other
    bounds and ``newest`` are ignored: up to ``limit`` messages centred there,
    about half at or before it. Answered with a `HistoryReply`, oldest first.
    Exactly one of ``room`` and ``with_`` is set.
    """

    room: str | None = None
    with_: str | None = None
    after: int = 0
    before: int | None = None
    limit: int
    newest: bool = False
    around: int | None = None
    after_ms: int = 0
    before_ms: int | None = None
    around_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryTargets(Command):
    """The conversations whose newest message is from ``after_ms < ts < before_ms`` (IRC only).

    The asker's rooms and DM conversations, ``limit`` of them: the oldest, or
    with ``newest`` the newest. Answered with `Results` (``q`` empty): the newest
    message of each, oldest first.
    """

    after_ms: int
    before_ms: int
    limit: int
    newest: bool = False


# -- server figures (issue 19, ircreg) --


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats(Command):
    """§4.1: how many people and rooms are online now (IRC's ``LUSERS``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WhoWas(Command):
    """§4.1: when ``nick`` last went offline here (IRC's ``WHOWAS``), at most ``limit``."""

    nick: str
    limit: int | None = None


# -- away (issue 19, irchist) --


@dataclass(frozen=True, slots=True, kw_only=True)
class Away(Command):
    """Set the principal's away message (every session of it), or with None clear it.

    Answered with `Ok`; the principal's room peers get `AwayNotice`.
    """

    message: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Monitor(Command):
    """Watch nicks come online and go offline (irccaps, IRC ``MONITOR``; the session's list).

    ``clear`` empties the list, then ``remove`` leaves out nicks and ``add`` adds
    them. Answered with `MonitorReply`: which of the added nicks are online now,
    or, with nothing to change, the whole list's.
    """

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    clear: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SetBot(Command):
    """Say the principal is a bot, or not (irccaps, IRC ``MODE nick +B``); answered with `Ok`.

    An account's flag is stored (as ``register`` with ``bot``); a guest's lasts its session.
    """

    on: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SetName(Command):
    """Change the session's real name (irccaps, IRC ``SETNAME``); answered with `Ok`.

    The principal's room peers and those who monitor it get `RealNameNotice`;
    ``quiet`` (not on the wire): nobody is told (an IRC client's ``USER`` after SASL).
    """

    real_name: str
    quiet: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadQuery(Command):
    """Where the account's read marker of ``room`` (or the DM ``with_``) is (IRC ``MARKREAD``).

    Answered with `ReadMarker` (``upto`` 0: none). Issue 19.
    """

    room: str | None = None
    with_: str | None = None


# -- ban list (issue 19, ircwho) --


@dataclass(frozen=True, slots=True, kw_only=True)
class ListBans(Command):
    """§12.5: the bans of ``room`` in force (its owner, mods and admins ask; IRC ``MODE #r +b``).

    Answered with `BansReply`.
    """

    room: str


# -- operators, whois, wallops (issue 19, ircoper) --


@dataclass(frozen=True, slots=True, kw_only=True)
class Whois(Command):
    """§4.1: the people online now whose nick matches ``mask`` (``*`` and ``?`` are
    wildcards; without them, that nick alone), wherever they are (IRC's ``WHOIS``/``WHO``)."""

    mask: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Oper(Command):
    """§4.1: this session acts with the rights of the admin account ``account`` (its
    ``password`` checked) until it ends; without ``account``, it stops (IRC ``OPER``)."""

    account: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Wallops(Command):
    """§4.1: an admin's one-line ``text`` to every session that listens for wallops."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenWallops(Command):
    """§4.1: whether this session gets wallops (IRC user mode ``+w``)."""

    on: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Invisible(Command):
    """§4.2: whether a ``whois`` mask leaves out this principal (IRC user mode ``+i``)."""

    on: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Rename(Command):
    """A guest takes another nick (ircmsg); an account's nick is its name.

    Answered with the `Presence` ``nick`` event (its ``ref`` set), which everyone
    sharing a room with it gets too; the same nick again: `Ok`.
    """

    nick: str


ClientCommand = (
    Hello
    | Say
    | Dm
    | Join
    | Leave
    | Who
    | ListRooms
    | History
    | Register
    | Passwd
    | Seen
    | Typing
    | Ping
    | Pong
    | Bye
    | Edit
    | Delete
    | React
    | Search
    | Read
    | Receipts
    | Block
    | Unblock
    | ListBlocks
    | RoomSet
    | Invite
    | Moderate
    | Grant
    | HistoryRange
    | HistoryTargets
    | GetSettings
    | Stats
    | WhoWas
    | Away
    | ReadQuery
    | Monitor
    | SetName
    | SetBot
    | ListBans
    | Whois
    | Oper
    | Wallops
    | ListenWallops
    | Invisible
    | Rename
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input the server answers with an error frame; the connection stays open.

    ``code`` is ``bad_frame`` (counts towards the bad-frame limit),
    ``unknown_type`` or ``bad_request``.
    """

    code: str
    message: str
    ref: str | None = None
    kind: str | None = None  # the frame's type, when it had a string one


@dataclass(frozen=True, slots=True)
class Dropped:
    """A malformed ``typing``, ``seen`` or ``pong``: no reply, nothing happens."""

    reason: str


@dataclass(frozen=True, slots=True)
class Fatal:
    """Broken framing (a line over the limit): send the error, then close."""

    code: str
    message: str


Incoming = ClientCommand | Rejected | Dropped | Fatal


# --- server events ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerEvent:
    """Base of every server event but ``Ping``/``Pong``/``Bye`` (shared with commands).

    ``ref`` echoes the ``ref`` of the command this event answers, if it had one.
    """

    ref: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome(ServerEvent):
    """The answer to a good ``hello``: who the session is and where it stands."""

    proto: int
    nick: str
    account: bool
    server_name: str
    server_version: str
    motd: str
    rooms: tuple[str, ...]
    features: tuple[str, ...] = ()  # §8: what of version 1.1 this server supports
    settings: Mapping[str, bool] | None = None  # issue 15: an account's settings (receipts)
    bot: bool = False  # irccaps: the session's principal is a bot (IRC user mode +B)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message(ServerEvent):
    """A committed message: in a room (``room``) or a DM (``to``, the recipient's nick).

    ``cid`` is set only on the sender's own copies; ``replay`` on backlog copies.
    A deleted message (in history) has ``deleted`` and an empty ``body`` that is
    not rendered; ``edited_ms`` and ``reactions`` are set in history.
    """

    id: int
    ts_ms: int
    sender: str
    room: str | None = None
    to: str | None = None
    body: str
    cid: str | None = None
    replay: bool = False
    reply_to: int | None = None
    mentions: tuple[str, ...] = ()
    edited_ms: int | None = None
    deleted: bool = False
    reactions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    account: bool = False  # the sender is an account, not a guest (IRC account-tag)
    bot: bool = False  # irccaps: live copies only, the sender is a bot (IRC's bot tag)
    notice: bool = False  # sent as a notice (IRC NOTICE; ircmsg): never answered automatically
    concat: tuple[int, ...] = ()  # IRC draft/multiline concat points in body (ircmsg)


@dataclass(frozen=True, slots=True, kw_only=True)
class Edited(ServerEvent):
    """§8: event ``id``: ``sender`` changed the body of message ``target``."""

    id: int
    ts_ms: int
    target: int
    sender: str
    room: str | None = None
    to: str | None = None
    body: str
    mentions: tuple[str, ...] = ()  # the people this edit newly mentions
    replay: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Deleted(ServerEvent):
    """§8: event ``id``: ``by`` deleted message ``target``."""

    id: int
    ts_ms: int
    target: int
    by: str
    room: str | None = None
    to: str | None = None
    replay: bool = False
    reason: str | None = None  # the deleter's, if given (issue 19)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reacted(ServerEvent):
    """§8: event ``id``: ``sender`` put reaction ``emoji`` on message ``target`` on or off."""

    id: int
    ts_ms: int
    target: int
    sender: str
    room: str | None = None
    to: str | None = None
    emoji: str
    on: bool
    replay: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack(ServerEvent):
    """A message of this session is committed: its id and timestamp."""

    id: int
    ts_ms: int
    cid: str | None = None
    away: str | None = None  # a DM's: the recipient's away message, if away (issue 19)


@dataclass(frozen=True, slots=True, kw_only=True)
class CaughtUp(ServerEvent):
    """The backlog is over: how many messages it held, per room and per DM partner."""

    missed: int
    rooms: Mapping[str, int]
    dms: Mapping[str, int]
    truncated: bool
    mentions: int | None = None  # §8: backlog messages mentioning this nick (None: a 1.0 frame)
    unread: Mapping[str, int] | None = None  # §8: "room" / "@nick" -> unread in the backlog
    receipts: Mapping[str, ReceiptState] | None = None  # issue 15: "@nick" -> stored receipts
    markers: Mapping[str, int] | None = None  # issue 15: "room" / "@nick" -> read marker


@dataclass(frozen=True, slots=True, kw_only=True)
class Presence(ServerEvent):
    """``nick`` came to (``event="join"``) or left (``"leave"``) ``room``.

    §8 moderation adds the events ``kick``, ``ban``, ``unban``, ``mute``,
    ``unmute``, ``invite`` and ``grant``, with who did it (``by``), why
    (``reason``), until when (``until_ms``) and the role given (``role``).
    ``quit`` (issue 19, an extension): on a ``leave``, its subject went offline (its
    last session ended) with this quit message ('' for none); None: it left the room.
    ``event="nick"`` (ircmsg): guest ``nick`` is now called ``new``; ``room`` is ""
    (it is told once to everyone sharing a room with it, not per room).
    """

    room: str
    nick: str
    event: str
    by: str | None = None
    reason: str | None = None
    until_ms: int | None = None
    role: str | None = None
    quit: str | None = None
    by_account: bool = False  # ``by`` is an account (ircoper: IRC's account-tag on INVITE)
    # irccaps: on a ``join``, whether ``nick`` is an account and the real name its IRC
    # session gave (IRC extended-join; not on the JSON wire).
    account: bool = False
    real_name: str | None = None
    # ircroles: a ban of a nick nobody had (nobody was taken out: IRC says no KICK). Not on
    # the JSON wire.
    nick_only: bool = False
    new: str | None = None  # a "nick" event's new nick (ircmsg)


@dataclass(frozen=True, slots=True, kw_only=True)
class TypingNotice(ServerEvent):
    """``sender`` is typing in ``room``, or to ``to`` (a nick)."""

    sender: str
    room: str | None = None
    to: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ok(ServerEvent):
    """A command that has no other answer was carried out."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WhoMember:
    """One row of a ``who`` reply."""

    nick: str
    account: bool
    bot: bool = False
    away: str | None = None  # the away message, if away (issue 19)
    role: str = "member"  # member, mod, owner, admin (on the JSON wire unless member: rooms4)
    voiced: bool = False  # ircroles: may speak in an announce room (on the JSON wire if so)
    user: str | None = None  # an IRC session's username and real name (issue 19), else None
    real_name: str | None = None
    oper: bool = False  # a session of theirs acts as an admin (issue 19, ircoper)


@dataclass(frozen=True, slots=True, kw_only=True)
class WhoReply(ServerEvent):
    """The members of ``room`` online now, sorted by nick (at most a limit of them)."""

    room: str
    users: tuple[WhoMember, ...]
    truncated: bool
    # rooms4: the room's settings and the asker's own role (``RoomInfo.role``), so that a
    # client opening a room needs no second ``join`` to learn them.
    info: RoomInfo | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomRow:
    """One row of a ``rooms`` reply."""

    name: str
    online: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomsReply(ServerEvent):
    """The rooms of this server, by name, with how many members are online."""

    rooms: tuple[RoomRow, ...]
    truncated: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryReply(ServerEvent):
    """A page of a room's (``room``) or a conversation's (``with_``) messages, oldest first."""

    room: str | None = None
    with_: str | None = None
    messages: tuple[Message, ...]
    more: bool
    receipts: ReceiptState | None = None  # issue 15: a DM's stored receipts (``with_``)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadMarker(ServerEvent):
    """§8: another session of this account read ``room`` (or the DM ``with_``) up to ``upto``."""

    room: str | None = None
    with_: str | None = None
    upto: int
    ts_ms: int | None = None  # the time of message ``upto``, when known (IRC MARKREAD)


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt(ServerEvent):
    """§8: ``with_`` has your DMs up to ``upto`` on a device (``delivered``) or read them."""

    with_: str
    upto: int
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptState:
    """Issue 15: how far the other party has your DMs on a device, and has read them."""

    delivered: int
    read: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingsReply(ServerEvent):
    """Issue 15: the account's settings; also sent to its other sessions when one changes."""

    receipts: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Results(ServerEvent):
    """§8: the answer to ``search``: matching messages, NEWEST first."""

    q: str
    messages: tuple[Message, ...]
    more: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BlocksReply(ServerEvent):
    """The answer to ``blocks``: the nicks this account blocks, oldest block first."""

    nicks: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomInfo(ServerEvent):
    """§8: a room's settings, to its members when they change (``by``) and on join.

    ``role`` (an extension) is the receiver's own role, on the answer to its ``join``.
    ``retention_days`` (issue 17, an extension): the room's own retention, None if none.
    ``created_ms`` (issue 19, an extension): when the room was made, on the answer to a
    ``join``; None elsewhere, and for rooms older than moderation (no time kept).
    ``keyed``, ``key`` and ``limit`` (branch ircmodes, extensions): whether a join needs
    a key, the key itself (only to the owner, mods and admins; None to the others) and
    the member limit (None: none).
    """

    room: str
    topic: str
    private: bool
    announce: bool
    by: str | None = None
    role: str | None = None
    retention_days: int | None = None
    created_ms: int | None = None
    keyed: bool = False
    key: str | None = None
    limit: int | None = None
    topic_locked: bool = True  # ircroles: only the owner and mods set the topic
    secret: bool = False  # ircroles: unlisted for non-members, still open to all
    topic_by: str | None = None  # ircroles: who set the topic, and when (None: not known)
    topic_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Error(ServerEvent):
    """A refusal: a stable ``code``, words for a person, and fields of its own.

    ``extra`` holds the code's own fields (``retry_after``, ``reason``…), in order.
    """

    code: str
    message: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, exc: ChatError, ref: str | None = None) -> Error:
        """The error event that tells the peer about ``exc``.

        Args:
            exc: the refusal.
            ref: the ``ref`` of the command it refuses, if any.
        """
        return cls(code=exc.code, message=exc.message, extra=exc.extra, ref=ref)


# -- server figures (issue 19, ircreg) --


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsReply(ServerEvent):
    """§4.1: people (accounts and guests) online on every node and on this one,
    rooms someone is online in, and the server's nodes; of those here, how many
    are invisible (IRC ``+i``), and how many sessions here act as an operator."""

    online: int
    here: int
    rooms: int
    nodes: int
    invisible: int
    operators: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WhoWasEntry:
    """One departure: ``nick`` (an account or a guest) went offline at ``ts_ms``."""

    nick: str
    account: bool
    ts_ms: int
    user: str | None = None  # its last IRC session's username and real name (ircoper)
    real_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WhoWasReply(ServerEvent):
    """§4.1: the departures of the nick asked for (as asked), newest first."""

    nick: str
    entries: tuple[WhoWasEntry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AwayNotice(ServerEvent):
    """``nick`` is away with ``message`` now, or (None) back (issue 19)."""

    nick: str
    message: str | None = None
    # irccaps: told only because the recipient monitors ``nick`` (shares no room with it).
    monitor: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorReply(ServerEvent):
    """The answer to `Monitor`: nicks of it that are ``online`` (as they are shown) and not."""

    online: tuple[str, ...] = ()
    offline: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorNotice(ServerEvent):
    """A nick the session monitors came online (its first session) or went offline (its last)."""

    nick: str
    online: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountNotice(ServerEvent):
    """Guest ``nick`` registered: it is an account now (irccaps, IRC ``account-notify``);
    ``monitor`` as `AwayNotice`'s."""

    nick: str
    monitor: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RealNameNotice(ServerEvent):
    """``nick`` changed its real name (irccaps, IRC ``SETNAME``); ``monitor`` as `AwayNotice`'s."""

    nick: str
    real_name: str
    monitor: bool = False


# -- ban list (issue 19, ircwho) --


@dataclass(frozen=True, slots=True, kw_only=True)
class BanRow:
    """One ban of a room: ``nick`` banned by ``by`` at ``ts_ms`` until ``until_ms`` (None: lifted
    by hand), for ``reason``."""

    nick: str
    by: str
    ts_ms: int
    until_ms: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BansReply(ServerEvent):
    """§12.5: the bans of ``room`` in force, oldest first."""

    room: str
    bans: tuple[BanRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class WhoisReply(ServerEvent):
    """§4.1: the people online whose nick matches ``mask``, sorted by nick (at most a
    limit of them: ``truncated``); their rows as in ``who`` (``role`` is ``member``)."""

    mask: str
    users: tuple[WhoMember, ...]
    truncated: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class WallopsNotice(ServerEvent):
    """§4.1: the admin ``sender`` said ``text`` to everyone listening for wallops."""

    sender: str
    text: str


Outgoing = (
    Welcome
    | Message
    | Edited
    | Deleted
    | Reacted
    | Ack
    | CaughtUp
    | Presence
    | TypingNotice
    | Ok
    | WhoReply
    | RoomsReply
    | HistoryReply
    | Results
    | ReadMarker
    | Receipt
    | BlocksReply
    | RoomInfo
    | SettingsReply
    | Error
    | Ping
    | Pong
    | Bye
    | StatsReply
    | WhoWasReply
    | AwayNotice
    | BansReply
    | WhoisReply
    | WallopsNotice
    | MonitorReply
    | MonitorNotice
    | RealNameNotice
    | AccountNotice
)
"""Every event the server sends."""
