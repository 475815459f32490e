"""The IRC codec: IRC lines in, typed commands out, and typed server events to IRC lines.

Sans-I/O like :mod:`chinwag.protocol.jsonlines`: the transport feeds
:meth:`IrcServerCodec.receive_data` whatever it read and gets back, in order,
commands for the hub (:mod:`chinwag.protocol.events`) and :class:`Reply` items —
lines the codec answers on its own (``CAP``, ``PING``, ``417``, ``FAIL``…), which
the transport writes in their turn. :meth:`IrcServerCodec.render` writes what the
hub says as IRC lines for this connection. It never raises on the peer's input.

The rules are those of RFC 1459/2812 as modern servers implement them
(modern.ircdocs.horse) and of IRCv3 (ircv3.net):

- A line is at most :data:`MAX_LINE` bytes (``\\r\\n`` included) plus
  :data:`MAX_TAGS` bytes of tags (``@`` and the space after them included). A
  longer line is answered with ``417 ERR_INPUTTOOLONG`` and skipped; the
  connection stays. Only a line longer than the codec's ``hard_limit`` (no
  client has a reason to send one) ends it, with ``ERROR``.
- Text is UTF-8 only (IRCv3 ``UTF8ONLY``): a line that is not is answered with
  ``FAIL <command> INVALID_UTF8`` and skipped.
- Rooms are channels ``#room``; ``PRIVMSG nick`` is a DM. The ``ref`` of every
  command this codec makes is its own (``i1``, ``i2``…): the hub echoes it on
  the answer, so that an error is rendered as the numeric of the command it
  refuses and an ``ack`` as the ``echo-message`` copy of what was sent.

Registration (``NICK``/``USER``/``PASS``/``CAP``/``AUTHENTICATE``) becomes one
``Hello``: with ``PASS`` or SASL ``PLAIN`` it logs in to an account, without it is
a guest; the username names the device (``alice@phone``), ``irc`` by default.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Final

from chinwag.protocol.events import (
    AccountNotice,
    Ack,
    Away,
    AwayNotice,
    BansReply,
    BlocksReply,
    Bye,
    CaughtUp,
    Command,
    Delete,
    Deleted,
    Dm,
    Edited,
    Error,
    Fatal,
    Grant,
    Hello,
    History,
    HistoryRange,
    HistoryReply,
    HistoryTargets,
    Incoming,
    Invisible,
    Invite,
    Join,
    Leave,
    ListBans,
    ListenWallops,
    ListRooms,
    Message,
    Moderate,
    Monitor,
    MonitorNotice,
    MonitorReply,
    Ok,
    Oper,
    Outgoing,
    Ping,
    Pong,
    Presence,
    React,
    Reacted,
    Read,
    ReadMarker,
    ReadQuery,
    RealNameNotice,
    Receipt,
    Register,
    Rename,
    Results,
    RoomInfo,
    RoomRow,
    RoomSet,
    RoomsReply,
    Say,
    Seen,
    SetBot,
    SetName,
    SettingsReply,
    Stats,
    StatsReply,
    Typing,
    TypingNotice,
    Wallops,
    WallopsNotice,
    Welcome,
    Who,
    Whois,
    WhoisReply,
    WhoMember,
    WhoReply,
    WhoWas,
    WhoWasReply,
)
from chinwag.protocol.framing import LineBuffer, LineTooLong
from chinwag.protocol.masks import wildcard_match

__all__ = [
    "CAPS",
    "DEFAULT_DEVICE",
    "DEFAULT_HARD_LIMIT",
    "HOST",
    "MAX_LINE",
    "MAX_TAGS",
    "NICK_ESCAPE",
    "SHARED_CAPS",
    "IrcMessage",
    "IrcServerCodec",
    "Reply",
    "SharedRenderer",
    "chinwag_nick",
    "escape_tag_value",
    "format_message",
    "irc_nick",
    "parse_message",
    "shared_renderer",
    "unescape_tag_value",
]

MAX_LINE: Final = 512
"""Largest line without its tags, in bytes, ``\\r\\n`` included (RFC 1459 §2.3)."""

MAX_TAGS: Final = 4096
"""Largest tag section of a client line, ``@`` and the space after it included (IRCv3)."""

DEFAULT_HARD_LIMIT: Final = 4 * (MAX_LINE + MAX_TAGS)
"""Default length beyond which a line ends the connection instead of getting ``417``."""

DEFAULT_DEVICE: Final = "irc"
"""The device of an IRC session whose username names none."""

HOST: Final = "chinwag"
"""The host part of every user's IRC source (``nick!nick@chinwag``)."""

CAPS: Final = (
    "cap-notify",
    "echo-message",
    "labeled-response",
    "message-tags",
    "sasl",
    "server-time",
    "batch",
    "multi-prefix",
    "userhost-in-names",
    "draft/chathistory",
    "account-tag",
    "draft/message-redaction",
    "draft/multiline",
    "away-notify",
    "draft/read-marker",
    "extended-monitor",
    "extended-join",
    "setname",
    "draft/account-registration",
    "account-notify",
)
"""The IRCv3 capabilities this codec offers, in the order ``CAP LS`` lists them."""

_CLIENT_TAG_DENY: Final = "CLIENTTAGDENY=*,-typing,-draft/react,-draft/unreact,-draft/reply"
"""ISUPPORT: the client-only tags relayed (IRCv3 message-tags): a typing notice, and
a reaction with the message it names; any other ``+tag`` is not kept or relayed."""

MAX_LABEL: Final = 64
"""Longest ``label`` tag kept for labeled-response (the spec's own bound)."""

MAX_PENDING: Final = 256
"""Commands awaiting the hub's answer that are remembered (oldest forgotten first)."""

MAX_QUITS_KEPT: Final = 64
"""Nicks whose QUIT was said, kept to leave out the same quit's leaves of other rooms."""

MAX_HISTORY_LIMIT: Final = 100
"""Most messages one ``CHATHISTORY`` request asks the hub for."""

# CHATHISTORY subcommands: how many parameters each takes (the limit is the last).
_CHATHISTORY_USAGE: Final = {
    "LATEST": "LATEST <target> *|<point> <limit>",
    "BEFORE": "BEFORE <target> <point> <limit>",
    "AFTER": "AFTER <target> <point> <limit>",
    "AROUND": "AROUND <target> <point> <limit>",
    "BETWEEN": "BETWEEN <target> <point> <point> <limit>",
    "TARGETS": "TARGETS <timestamp> <timestamp> <limit>",
}
_CHATHISTORY_PARAMS: Final = {sub: len(usage.split()) for sub, usage in _CHATHISTORY_USAGE.items()}

NICK_ESCAPE: Final = "`"
"""Put before a chinwag nick whose first character IRC nicks cannot start with."""
_ESCAPED_FIRST: Final = frozenset("0123456789-")

# Characters that cannot be in an IRC nick: they break the message grammar or
# collide with channel/prefix syntax.
_BAD_NICK_CHARS: Final = frozenset(" ,*?!@:.\r\n\0")
_BAD_NICK_FIRST: Final = frozenset("#&$:0123456789-+~%")

# SASL (IRCv3 sasl-3.1): a response comes in chunks of 400 bytes of base64; a PLAIN
# one (authzid, account, password) is never longer than this in all.
_SASL_CHUNK: Final = 400
_SASL_MAX: Final = 800

# The device a username or SASL account names after "@" (as on the JSON port).
_DEVICE_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DEVICE_WORDS: Final = (
    "after @ comes the device: 1 to 64 letters, digits, _ or - (e.g. alice@phone)"
)

# Why a JOIN is refused (the `forbidden` reason), as the numeric IRC clients know; the
# room caps (room_limit, server_room_limit) are 405 ERR_TOOMANYCHANNELS.
_JOIN_REFUSALS: Final = {"private": "473", "banned": "474"}
# ircmodes: a room's key (+k) and member limit (+l), by the error's code.
_JOIN_ERRORS: Final = {"bad_key": "475", "room_full": "471"}

# Why the server ends a session (`Bye.reason`, issue 16), in the ERROR line IRC clients show.
_BYE_WORDS: Final = {
    "banned": "you are banned from this server",
    "kicked": "an admin ended your session",
}
# Commands the hub carries out without an answer (a labeled one gets an ``ACK``).
_UNANSWERED: Final = (Pong, Seen, Typing)

_LOBBY: Final = "lobby"  # every account's room (protocol §4), hidden without auto_join
_TAG_ESCAPES: Final = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}
_TAG_UNESCAPES: Final = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


# --- lines -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IrcMessage:
    """One parsed IRC line: tags, optional source, the command (upper case), parameters."""

    command: str
    params: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Reply(Command):
    """Lines the codec answers on its own, to be written in their turn among the hub's.

    A command of the transport's, not the hub's: it goes through the session's
    inbox (so it counts as a frame before login and keeps its place in the
    order), and the transport writes it.
    """

    wire: bytes


def unescape_tag_value(raw: str) -> str:
    """A tag value as IRCv3 message-tags defines its escapes (an unknown ``\\x`` is ``x``)."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\":
            if i + 1 < len(raw):
                nxt = raw[i + 1]
                out.append(_TAG_UNESCAPES.get(nxt, nxt))
            i += 2  # a trailing lone backslash is dropped
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def escape_tag_value(value: str) -> str:
    """A tag value with ``;``, space, backslash, CR and LF escaped (IRCv3 message-tags)."""
    if not any(ch in value for ch in _TAG_ESCAPES):
        return value
    return "".join(_TAG_ESCAPES.get(ch, ch) for ch in value)


def parse_message(text: str) -> IrcMessage | None:
    """Parse one IRC line (already decoded, without its ``\\r\\n``).

    Args:
        text: the line.

    Returns:
        The message, or ``None`` for a line with no command (blank, or tags only).
    """
    rest = text
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        raw_tags, _, rest = rest[1:].partition(" ")
        for item in raw_tags.split(";"):
            if not item:
                continue
            key, _, value = item.partition("=")
            tags[key] = unescape_tag_value(value)
    rest = rest.lstrip(" ")
    source: str | None = None
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
    trailing: str | None = None
    head, sep, tail = rest.partition(" :")
    if rest.startswith(":"):
        head, trailing = "", rest[1:]
    elif sep:
        trailing = tail
    words = [word for word in head.split(" ") if word]  # only spaces separate (RFC 1459)
    if not words:
        return None
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    return IrcMessage(command=words[0].upper(), params=tuple(params), tags=tags, source=source)


def format_message(
    command: str,
    *params: str,
    source: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> bytes:
    """One IRC line, ``\\r\\n`` included; the last parameter is sent as a trailing one.

    Args:
        command: the command or the three-digit numeric.
        params: its parameters; only the last may be empty, hold spaces or start
            with ``:`` (it is then sent as a trailing parameter).
        source: the prefix (``server`` or ``nick!user@host``), if any.
        tags: message tags, escaped here; an empty value is sent as a bare key.
    """
    parts: list[str] = []
    if tags:
        items = [f"{k}={escape_tag_value(v)}" if v else k for k, v in tags.items()]
        parts.append("@" + ";".join(items))
    if source is not None:
        parts.append(":" + source)
    parts.append(command)
    if params:
        parts.extend(params[:-1])
        last = params[-1]
        parts.append(":" + last if not last or " " in last or last.startswith(":") else last)
    return (" ".join(parts) + "\r\n").encode()


def _split_body(body: str, budget: int, joins: tuple[int, ...] = ()) -> list[tuple[str, bool]]:
    """``body`` as IRC message texts, each at most ``budget`` UTF-8 bytes.

    One per line of it, a line too long for one being cut (never inside a
    character) into pieces; each comes with whether it continues the piece
    before it (``draft/multiline-concat``) rather than starting a new line.
    ``joins``: offsets in ``body`` where a line sent with ``draft/multiline``
    was joined to the one before (ircmsg): it starts a piece there again.
    """
    lines: list[tuple[str, bool]] = []
    cuts = (0, *joins, len(body))
    for k in range(len(cuts) - 1):
        part = body[cuts[k] : cuts[k + 1]].replace("\r\n", "\n").replace("\r", "\n")
        lines += [(line, k > 0 and j == 0) for j, line in enumerate(part.split("\n"))]
    pieces: list[tuple[str, bool]] = []
    for line, joined in lines:
        raw = line.encode()
        concat = joined
        while len(raw) > budget:
            cut = budget
            while cut > 0 and (raw[cut] & 0xC0) == 0x80:  # never split a character
                cut -= 1
            pieces.append((raw[:cut].decode(), concat))
            raw = raw[cut:]
            concat = True
        pieces.append((raw.decode(), concat))
    return pieces


def _time_tag(ts_ms: int) -> str:
    t = time.gmtime(ts_ms // 1000)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{ts_ms % 1000:03d}Z"
    )


def _history_point(point: str) -> tuple[str, int] | None:
    """A CHATHISTORY point: ``msgid=<id>`` or ``timestamp=<ISO 8601 UTC>`` (in ms); or None."""
    kind, _, value = point.partition("=")
    if kind == "msgid" and value.isdigit():
        return kind, int(value)
    if kind == "timestamp":
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return kind, round(when.timestamp() * 1000)
    return None


def _bound(kind: str, at: int, lower: bool) -> dict[str, int]:
    """The `HistoryRange` field a point gives: a lower (``after``) or an upper bound."""
    if kind == "msgid":
        return {"after" if lower else "before": at}
    return {"after_ms" if lower else "before_ms": at}


def _valid_nick(nick: str) -> bool:
    return bool(nick) and nick[0] not in _BAD_NICK_FIRST and not _BAD_NICK_CHARS & set(nick)


def _line_tags(
    caps: Container[str],
    ts_ms: int,
    msg_id: int,
    batch: str | None,
    account: str | None = None,
    bot: bool = False,
) -> dict[str, str]:
    """The tags of a line: its batch, and what ``server-time``, ``message-tags`` and
    ``account-tag`` add (``account``: the sender's account, None for a guest; ``bot``:
    the sender is a bot, the ``bot`` tag with ``message-tags``)."""
    tags: dict[str, str] = {}
    if batch is not None:
        tags["batch"] = batch
    if "server-time" in caps:
        tags["time"] = _time_tag(ts_ms)
    if "message-tags" in caps:
        tags["msgid"] = str(msg_id)
    if account is not None and "account-tag" in caps:
        tags["account"] = account
    if bot and "message-tags" in caps:
        tags["bot"] = ""
    return tags


def _text_lines(
    verb: str,
    target: str,
    source: str,
    text: str,
    tags: Mapping[str, str],
    multiline: str | None = None,
    joins: tuple[int, ...] = (),
) -> bytes:
    """``text`` as ``verb`` lines to ``target``: one per line of it, each within IRC's limit
    (with the source before it, as every server relays a client's line).

    With ``multiline`` (a batch id, for a client that enabled ``draft/multiline``)
    a text of several pieces is one ``draft/multiline`` batch whose opening line
    carries ``tags``; otherwise every piece is a line of its own with ``tags``
    (an empty line is left out, or for a text of one line sent as a space: IRC has
    no empty message). ``joins``: the text's concat points (see `_split_body`).
    """
    # Cut where a client's own line would be: what a client could send in one
    # line (without the colon, when it has no space) is relayed in one, as ergo
    # does, though the source makes it longer.
    overhead = len(f"{verb} {target} \r\n".encode())
    pieces = _split_body(text, MAX_LINE - overhead, joins)
    if multiline is None or len(pieces) == 1:
        shown = [piece for piece, _ in pieces if piece] or [" "]
        rest = {k: v for k, v in tags.items() if k != "msgid"}  # one line has the msgid
        return b"".join(
            format_message(verb, target, piece, source=source, tags=tags if i == 0 else rest)
            for i, piece in enumerate(shown)
        )
    start = format_message(
        "BATCH", f"+{multiline}", "draft/multiline", target, source=source, tags=tags
    )
    inner = {"batch": multiline}
    concat = {"batch": multiline, "draft/multiline-concat": ""}
    lines = [
        format_message(verb, target, piece, source=source, tags=concat if more else inner)
        for piece, more in pieces
    ]
    return start + b"".join(lines) + format_message("BATCH", f"-{multiline}", source=source)


def irc_nick(nick: str) -> str:
    """A chinwag nick as IRC carries it (the mapping is reversible: :func:`chinwag_nick`).

    chinwag nicks are letters, digits, combining marks, ``_`` and ``-``; IRC's
    only quarrel with them is a first character that is a digit or ``-``. Such
    a nick gets a leading backtick, which IRC allows in nicks and chinwag never
    has: ``7of9`` is ``NICK_ESCAPE + "7of9"`` on IRC. Every other nick is the same.
    """
    return NICK_ESCAPE + nick if nick and nick[0] in _ESCAPED_FIRST else nick


def chinwag_nick(name: str) -> str:
    """The chinwag nick an IRC client names (the inverse of :func:`irc_nick`)."""
    if len(name) > 1 and name[0] == NICK_ESCAPE and name[1] in _ESCAPED_FIRST:
        return name[1:]
    return name


def _here(user: WhoMember) -> str:
    """WHO's flags: ``H`` here, ``G`` gone (away); ``*`` an operator (ircoper); ``B`` a
    bot (irccaps, ISUPPORT ``BOT``)."""
    away = "H" if user.away is None else "G"
    return away + ("*" if user.oper else "") + ("B" if user.bot else "")


def _prefixes(user: WhoMember, multi: bool) -> str:
    """A member's channel prefixes (``PREFIX=(ov)@+``, ircroles): ``@`` for the owner, mods
    and admins, ``+`` when voiced; the highest alone unless ``multi-prefix``."""
    marks = ("@" if user.role != "member" else "") + ("+" if user.voiced else "")
    return marks if multi else marks[:1]


def _user(nick: str) -> str:
    """A user's IRC source (``nick!nick@chinwag``), from a chinwag nick or an IRC one."""
    nick = irc_nick(nick)
    return f"{nick}!{nick}@{HOST}"


def _ban_nick(mask: str) -> str | None:
    """The nick a ban mask names: ``nick`` or ``nick!*@*`` (every user's host is the
    same here, so no other mask names anyone); None for any other mask."""
    nick, _, rest = mask.partition("!")
    if not _valid_nick(nick):
        return None
    return nick if rest in ("", "*@*", f"*@{HOST}", f"{nick}@{HOST}", f"{nick}@*") else None


def _revision_lines(e: Edited | Deleted | Reacted, caps: Container[str], target: str) -> bytes:
    """An edit, a deletion or a reaction, from its author to ``target``.

    A deletion is ``REDACT`` with ``draft/message-redaction``; a reaction is a
    ``TAGMSG`` with ``+draft/react`` (``+draft/unreact`` when taken back) and
    ``+draft/reply`` naming the message, with ``message-tags`` (nothing without:
    plain IRC cannot carry it). Otherwise a ``NOTICE`` tells what happened:
    ``(edited message 42) the new text``, ``(deleted message 42)``, with
    ``+draft/reply`` naming the message where tags are on.
    """
    if isinstance(e, Reacted):
        if "message-tags" not in caps:
            return b""
        tags = _line_tags(caps, e.ts_ms, e.id, None)
        tags["+draft/react" if e.on else "+draft/unreact"] = e.emoji
        tags["+draft/reply"] = str(e.target)
        return format_message("TAGMSG", target, source=_user(e.sender), tags=tags)
    tags = _line_tags(caps, e.ts_ms, e.id, None)
    if isinstance(e, Deleted):
        who, text = e.by, f"(deleted message {e.target})"
        if "draft/message-redaction" in caps:
            why = (e.reason,) if e.reason else ()
            return format_message(
                "REDACT", target, str(e.target), *why, source=_user(who), tags=tags
            )
    else:
        who, text = e.sender, f"(edited message {e.target}) {e.body}"
    if "message-tags" in caps:
        tags["+draft/reply"] = str(e.target)
    return _text_lines("NOTICE", target, _user(who), text, tags)


def _join_line(
    channel: str, nick: str, caps: Container[str], account: bool, real: str | None
) -> bytes:
    """A ``JOIN``; with ``extended-join``, with the account (``*`` for a guest) and real name."""
    if "extended-join" not in caps:
        return format_message("JOIN", channel, source=_user(nick))
    name = irc_nick(nick)
    return format_message(
        "JOIN", channel, name if account else "*", real or name, source=_user(nick)
    )


def _key_and_limit_lines(
    channel: str, event: RoomInfo, old: RoomInfo | None, source: str
) -> list[bytes]:
    """ircmodes: the ``MODE`` lines of a change of a room's key or member limit (the key
    itself only to those who may know it, else ``*``)."""
    lines = []
    was_keyed = old is not None and old.keyed
    if event.keyed and (not was_keyed or (old is not None and old.key != event.key)):
        lines.append(format_message("MODE", channel, "+k", event.key or "*", source=source))
    elif was_keyed and not event.keyed:
        lines.append(format_message("MODE", channel, "-k", "*", source=source))
    limit = old.limit if old is not None else None
    if event.limit != limit:
        if event.limit is None:
            lines.append(format_message("MODE", channel, "-l", source=source))
        else:
            lines.append(format_message("MODE", channel, "+l", str(event.limit), source=source))
    return lines


def _presence_lines(event: Presence, caps: Container[str] = ()) -> bytes:
    """A room's presence event as the IRC lines its members see (its subject too, mostly).

    A kick is ``KICK`` (the comment is the reason, else the kicker's nick); a ban
    ``MODE +b nick!*@*`` then ``KICK`` (a ban takes its subject out of the room);
    an unban ``MODE -b``; a grant of mod ``MODE +o``, of member ``MODE -o``.
    Mutes and invites have no line members see (the invitee gets ``INVITE``).
    """
    if event.event == "nick" and event.new is not None:  # ircmsg: a guest's new nick
        return format_message("NICK", irc_nick(event.new), source=_user(event.nick))
    channel = f"#{event.room}"
    match event.event:
        case "join":
            return _join_line(channel, event.nick, caps, event.account, event.real_name)
        case "leave":
            why = (event.reason,) if event.reason else ()  # the PART message of an IRC user
            return format_message("PART", channel, *why, source=_user(event.nick))
    nick = irc_nick(event.nick)
    by = irc_nick(event.by) if event.by else nick
    source = _user(event.by) if event.by else _user(event.nick)
    match event.event:
        case "kick":
            return format_message("KICK", channel, nick, event.reason or by, source=source)
        case "ban":
            ban = format_message("MODE", channel, "+b", f"{nick}!*@*", source=source)
            if event.nick_only:  # ircroles: a nick nobody had, so nobody to kick
                return ban
            return ban + format_message("KICK", channel, nick, event.reason or by, source=source)
        case "unban":
            return format_message("MODE", channel, "-b", f"{nick}!*@*", source=source)
        case "grant" if event.role in ("mod", "member"):
            sign = "+" if event.role == "mod" else "-"
            return format_message("MODE", channel, f"{sign}o", nick, source=source)
        case "voice" | "unvoice":  # ircroles
            sign = "+" if event.event == "voice" else "-"
            return format_message("MODE", channel, f"{sign}v", nick, source=source)
    return b""


class SharedRenderer:
    """The IRC lines of the events that read the same for every recipient.

    A room message, a DM (its target is its recipient, for both parties), a
    presence change, a room typing notice, a room edit or deletion: their lines
    depend only on which of :data:`SHARED_CAPS` the client enabled. One renderer
    per set of those is made (:func:`shared_renderer`), so a frame fanned out to
    many IRC clients is rendered once per set, however many receive it (the
    frame keeps bytes per renderer). :meth:`IrcServerCodec.shared` tells, per
    connection, whether its lines for a frame are these.
    """

    __slots__ = ("caps",)

    def __init__(self, caps: frozenset[str]) -> None:
        self.caps = caps

    def __call__(self, event: Outgoing) -> bytes:
        caps = self.caps
        match event:
            case Message(room=room, to=to):
                assert room is not None or to is not None, "a DM names its recipient"
                target = f"#{room}" if room is not None else irc_nick(to or "")
                account = irc_nick(event.sender) if event.account else None
                tags = _line_tags(caps, event.ts_ms, event.id, None, account, event.bot)
                multi = f"ml{event.id}" if "draft/multiline" in caps else None
                verb = "NOTICE" if event.notice else "PRIVMSG"
                body = event.body
                return _text_lines(
                    verb, target, _user(event.sender), body, tags, multi, event.concat
                )
            case Presence():
                return _presence_lines(event, caps)
            case TypingNotice(room=str(room)):
                if "message-tags" not in caps:
                    return b""
                tags = {"+typing": "active"}
                return format_message("TAGMSG", f"#{room}", source=_user(event.sender), tags=tags)
            case Edited(room=str(room)) | Deleted(room=str(room)) | Reacted(room=str(room)):
                return _revision_lines(event, caps, f"#{room}")
        raise TypeError(f"{type(event).__name__} is not rendered the same for every IRC client")


SHARED_CAPS: Final = frozenset(
    {
        "server-time",
        "message-tags",
        "account-tag",
        "draft/message-redaction",
        "draft/multiline",
        "extended-join",
    }
)
"""The capabilities that change the shared lines of an event (the renderer's key)."""


@functools.cache
def _shared_renderer(caps: frozenset[str]) -> SharedRenderer:
    return SharedRenderer(caps)


def shared_renderer(caps: Container[str]) -> SharedRenderer:
    """The one shared renderer for a client that enabled ``caps``."""
    return _shared_renderer(frozenset(c for c in SHARED_CAPS if c in caps))


def _one_batch(lines: list[bytes]) -> bool:
    """Whether ``lines`` are one batch: its start, lines inside it, its end."""
    first, last = parse_message(lines[0].decode()), parse_message(lines[-1].decode())
    if first is None or last is None or first.command != "BATCH" or last.command != "BATCH":
        return False
    return bool(first.params) and bool(last.params) and first.params[0][1:] == last.params[0][1:]


# --- the codec ---------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    """What a command of this codec was, kept until the hub answers its ``ref``."""

    command: str  # the IRC command it came from
    target: str = "*"  # the channel or nick it named
    label: str | None = None
    body: str | None = None  # what was sent, for echo-message
    userhost: _Userhost | None = None  # the USERHOST this nick's whois is asked for
    reason: str | None = None  # a REDACT's, for its echo
    before: bytes = b""  # lines held for this answer (a labeled JOIN, for its NAMES)
    sub: str = ""  # a CHATHISTORY's subcommand, for its FAIL
    nick: str | None = None  # the person a KICK, INVITE or MODE names, as the client wrote it
    react: Reacted | None = None  # a TAGMSG reaction, echoed when its ack comes (ircmsg)
    concat: tuple[int, ...] = ()  # a multiline PRIVMSG's concat points, for its echo (ircmsg)


@dataclass(slots=True)
class _Userhost:
    """A USERHOST being answered: one ``whois`` per nick, as they come."""

    nicks: tuple[str, ...]  # as the asker wrote them
    waiting: int  # whois answers still to come
    found: dict[str, WhoMember] = field(default_factory=dict)  # by casefolded chinwag nick


@dataclass(slots=True)
class _Multiline:
    """A ``draft/multiline`` batch being received."""

    ref: str
    target: str
    opening: IrcMessage  # the BATCH + line (its label is the batch's)
    verb: str | None = None  # PRIVMSG or NOTICE, from the first line
    lines: list[str] = field(default_factory=list)
    joins: list[int] = field(default_factory=list)  # concat points in the text (ircmsg)
    size: int = 0  # bytes of text so far, newlines included
    failed: bool = False


class IrcServerCodec:
    """The server's side of one IRC connection: client bytes in, commands and replies out.

    Args:
        server_name: the server's name, the source of its numerics.
        hard_limit: a line longer than this many bytes ends the connection.
    """

    def __init__(
        self,
        server_name: str = "chinwag",
        hard_limit: int = DEFAULT_HARD_LIMIT,
        multiline_max_lines: int = 100,
        multiline_max_bytes: int = 16_000,
        away_max_length: int = 300,
        auto_join: bool = True,
        monitor_max: int = 100,
        real_name_max: int = 200,
        registration_open: bool = True,
    ) -> None:
        self.server_name = server_name
        self.monitor_max = monitor_max  # ISUPPORT MONITOR (the setting monitor_max)
        self.real_name_max = real_name_max  # ISUPPORT NAMELEN (real_name_max)
        self._hello_real_name: str | None = None  # the real name the Hello carried
        self._bot = False  # the principal is a bot (user mode +B; irccaps)
        # The capabilities offered: REGISTER only where anyone may register (irccaps).
        self._offered = tuple(
            c for c in CAPS if registration_open or c != "draft/account-registration"
        )
        self.away_max_length = away_max_length
        self.auto_join = auto_join  # start in #lobby (the setting irc_auto_join)
        self.multiline_max_lines = multiline_max_lines
        self.multiline_max_bytes = multiline_max_bytes
        self._multiline: _Multiline | None = None  # the draft/multiline batch being received
        self._lines = LineBuffer(max(hard_limit, MAX_LINE + MAX_TAGS))
        self.closed = False
        """True after a ``Fatal``: the stream cannot be framed any more."""
        self.nick: str | None = None
        """The nick the client asked for, then (once welcomed) the one it has."""
        self.caps: set[str] = set()
        """The capabilities the client enabled."""
        self.registered = False
        """The hub welcomed the session and ``001`` went out."""
        self._user: str | None = None
        self._real_name: str | None = None  # USER's last parameter (issue 19)
        self._password: str | None = None
        self._cap_negotiating = False
        self._cap_version = 301
        self._sasl: str | None = None  # "PLAIN" while an AUTHENTICATE exchange runs
        self._sasl_buffer = ""
        self._sasl_nick: str | None = None  # the account SASL logged in as, once it did
        self._sasl_device: str | None = None  # the device SASL named (account@device)
        self._hello_ref: str | None = None  # the Hello awaiting its answer
        self._welcome: Welcome | None = None  # welcomed but registration not over yet
        self._held: list[bytes] = []  # events rendered before 001 could be sent
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        # Who was last seen to quit (casefolded nicks): one QUIT however many rooms they left.
        self._quits: OrderedDict[str, None] = OrderedDict()
        self._account = False  # logged in to an account (a guest has no cursor)
        self._oper = False  # user mode +o: this session acts as an admin (ircoper)
        self._wallops = False  # user mode +w: this session gets wallops
        self._invisible = False  # user mode +i, as this session last set it
        self._channels: set[str] = set()  # the channels joined, casefolded
        # The cids of this connection's messages (a random prefix: other sessions of
        # the account have their own); the hub's copy of one back to us is not shown,
        # as IRC shows one's own message only as the echo-message echo.
        self._cid_prefix = f"irc-{secrets.token_hex(4)}-"
        self._sent: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self._replay_batch: tuple[str, str] | None = None  # (id, target) of the open one
        self.followups: list[Incoming] = []
        """Commands rendering asked for (the NAMES of a joined room): the transport
        takes them and carries them out after what it is doing."""
        self._last_id = 0  # the newest message id rendered to this client
        self._serial = 0
        self._shared: SharedRenderer | None = None  # for self.caps, once asked for
        self._redacted: dict[int, None] = {}  # messages whose REDACT was echoed already
        self._reacted: dict[int, None] = {}  # reaction events echoed already (ircmsg)
        # The room_info of each joined channel (casefolded), as the hub last said it:
        # TOPIC and MODE queries are answered from it, and a change is told as its lines.
        self._infos: dict[str, RoomInfo] = {}
        # TOPIC/MODE queries waiting for a channel's first room_info (channel -> commands).
        # (command, label): the label goes on the answer when it comes.
        self._info_wanted: dict[str, list[tuple[str, str | None]]] = {}
        # ircmsg: without auto_join, the lobby an account is a member of is not shown
        # (none of its lines) until this connection JOINs it: the room names hidden.
        self._hidden: set[str] = set()

    # -- input ------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Incoming | Reply]:
        """Feed bytes read from the client; return what they complete, in order.

        A line over the IRC limits gives a ``417`` reply and is skipped; one over
        the hard limit gives ``Fatal("frame_too_large")`` as soon as that is
        certain, and later data yields nothing. Never raises on the peer's input.

        Args:
            data: the next bytes from the peer, in any segmentation.
        """
        if self.closed:
            return []
        try:
            lines = self._lines.feed(data)
        except LineTooLong as exc:
            self.closed = True
            out = self._lines_to_items(exc.lines)
            limit = self._lines.limit
            out.append(Fatal("frame_too_large", f"a line is at most {limit} bytes; closing"))
            return out
        return self._lines_to_items(lines)

    def _lines_to_items(self, lines: list[bytes]) -> list[Incoming | Reply]:
        out: list[Incoming | Reply] = []
        for line in lines:
            out.extend(self._line(line))
        return out

    def _line(self, raw: bytes) -> list[Incoming | Reply]:
        tags_len = 0
        if raw.startswith(b"@"):
            space = raw.find(b" ")
            tags_len = len(raw) if space == -1 else space + 1
        if tags_len > MAX_TAGS or len(raw) - tags_len + 2 > MAX_LINE:
            return [self._reply("417", "Input line was too long; it was skipped")]
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            word = raw[tags_len:].lstrip(b" ").split(b" ", 1)[0]
            name = word.decode("ascii", "replace").upper() if word.isalpha() else "*"
            return [
                Reply(
                    format_message(
                        "FAIL",
                        name,
                        "INVALID_UTF8",
                        "Your line was not UTF-8; it was skipped. Set your client to UTF-8",
                        source=self.server_name,
                    )
                )
            ]
        if "\0" in text:
            return [self._reply("FAIL", "*", "INVALID_PARAMS", "NUL is not allowed; skipped")]
        msg = parse_message(text)
        if msg is None:
            return []
        batch = msg.tags.get("batch")
        if msg.command == "BATCH" or batch is not None:
            return self._batch(msg, batch)  # its label is the batch's, answered at its end
        items = self._dispatch(msg)
        label = self._label(msg)
        if label:
            if all(isinstance(item, _UNANSWERED) for item in items):
                # Nothing answers these (PONG, a typing notice): an ACK does.
                ack = format_message("ACK", source=self.server_name)
                items = [*items, Reply(self._labeled(ack, label))]
            elif all(isinstance(item, Reply) for item in items):
                # Answered here: the label goes on the answer (commands for the
                # hub carry it in their pending entry instead).
                wire = b"".join(item.wire for item in items if isinstance(item, Reply))
                items = [Reply(self._labeled(wire, label))]
        return items

    # -- helpers for replies ------------------------------------------------------------
    def _me(self) -> str:
        """The target of numerics: the nick once registered, ``*`` before (it may be refused)."""
        welcomed = self.registered or self._welcome is not None
        return irc_nick(self.nick) if welcomed and self.nick is not None else "*"

    def _source(self, nick: str) -> str:
        return _user(nick)

    def _numeric(self, code: str, *params: str, tags: Mapping[str, str] | None = None) -> bytes:
        if code == "FAIL":
            return format_message("FAIL", *params, source=self.server_name, tags=tags)
        return format_message(code, self._me(), *params, source=self.server_name, tags=tags)

    def _reply(self, code: str, *params: str) -> Reply:
        return Reply(self._numeric(code, *params))

    def _label(self, msg: IrcMessage) -> str | None:
        """The label its answer carries: with ``labeled-response``, at most `MAX_LABEL` long."""
        label = msg.tags.get("label") if "labeled-response" in self.caps else None
        return label if label is not None and len(label) <= MAX_LABEL else None

    def _remember(
        self, command: str, target: str, msg: IrcMessage | None, body: str | None = None
    ) -> str:
        self._serial += 1
        ref = f"i{self._serial}"
        label = self._label(msg) if msg is not None else None
        self._pending[ref] = _Pending(command, target, label, body)
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        return ref

    # -- commands -----------------------------------------------------------------------
    def _dispatch(self, msg: IrcMessage) -> list[Incoming | Reply]:
        cmd, params = msg.command, msg.params
        if cmd == "CAP":
            return self._cap(params)
        if cmd == "AUTHENTICATE":
            return self._authenticate(params)
        if cmd == "PING":
            if not params or not params[0]:
                return [self._reply("461", "PING", "Not enough parameters: PING <token>")]
            pong = format_message("PONG", self.server_name, params[0], source=self.server_name)
            return [Reply(pong)]
        if cmd == "PONG":
            if not self.registered:
                return []  # the server pings only once registered: nothing to answer
            token = params[-1] if params else ""
            if token.startswith("seen-") and token[5:].isdigit():
                # The client read every line sent before that PING (TCP keeps order).
                return [Pong(), Seen(upto=int(token[5:]))]
            return [Pong()]
        if cmd == "QUIT":  # its message: the QUIT the channels see (issue 19)
            return [Bye(reason=params[0] if params and params[0] else None)]
        if not self.registered:
            return self._registration(msg)
        return self._command(msg)

    def _cap(self, params: tuple[str, ...]) -> list[Incoming | Reply]:
        sub = params[0].upper() if params else ""
        me = self._me()
        if sub == "LS":
            if not self.registered:
                self._cap_negotiating = True
            if len(params) > 1 and params[1].isdigit():
                self._cap_version = max(self._cap_version, int(params[1]))
            values = {
                "sasl": "PLAIN",
                "draft/multiline": (
                    f"max-bytes={self.multiline_max_bytes},max-lines={self.multiline_max_lines}"
                ),
            }
            offered = [
                f"{c}={values[c]}" if c in values and self._cap_version >= 302 else c
                for c in self._offered
            ]
            if self._cap_version >= 302:
                self.caps.add("cap-notify")  # implied by 302 (IRCv3 capability negotiation)
                self._shared = None
            line = format_message("CAP", me, "LS", " ".join(offered), source=self.server_name)
            return [Reply(line)]
        if sub == "LIST":
            line = format_message(
                "CAP", me, "LIST", " ".join(sorted(self.caps)), source=self.server_name
            )
            return [Reply(line)]
        if sub == "REQ":
            if not self.registered:
                self._cap_negotiating = True
            wanted = params[1].split() if len(params) > 1 else []
            names = [w[1:] if w.startswith("-") else w for w in wanted]
            if not wanted or any(n not in self._offered for n in names):
                verdict = "NAK"
            else:
                verdict = "ACK"
                self._shared = None
                for w in wanted:
                    if w.startswith("-"):
                        self.caps.discard(w[1:])
                    else:
                        self.caps.add(w)
            text = params[1] if len(params) > 1 else ""
            return [Reply(format_message("CAP", me, verdict, text, source=self.server_name))]
        if sub == "END":
            if self.registered or not self._cap_negotiating:
                return []
            self._cap_negotiating = False
            return self._try_register()
        return [self._reply("410", sub or "*", "Invalid CAP subcommand; use LS, LIST, REQ or END")]

    def _authenticate(self, params: tuple[str, ...]) -> list[Incoming | Reply]:
        arg = params[0] if params else ""
        if self._sasl_nick is not None:
            return [self._reply("907", "You have already authenticated using SASL")]
        if self.registered:
            # Who a session is is fixed at its start (its nick is its account's name).
            why = "SASL works only while connecting; reconnect to log in to an account"
            return [self._reply("462", f"You may not reregister: {why}")]
        if "sasl" not in self.caps:
            return [
                self._reply("904", "SASL authentication failed: enable the sasl capability first")
            ]
        if arg == "*":
            self._sasl, self._sasl_buffer = None, ""
            return [self._reply("906", "SASL authentication aborted")]
        if self._sasl is None:
            if arg.upper() != "PLAIN":
                return [
                    self._reply("908", "PLAIN", "are the available SASL mechanisms"),
                    self._reply("904", "SASL authentication failed: that mechanism is not offered"),
                ]
            self._sasl = "PLAIN"
            return [Reply(format_message("AUTHENTICATE", "+"))]
        if arg != "+":
            if len(arg) > _SASL_CHUNK:
                self._sasl, self._sasl_buffer = None, ""
                why = f"SASL message too long: send it in chunks of {_SASL_CHUNK} bytes"
                return [self._reply("905", why)]
            self._sasl_buffer += arg
            if len(self._sasl_buffer) > _SASL_MAX:
                self._sasl, self._sasl_buffer = None, ""
                why = f"SASL authentication failed: a PLAIN message is at most {_SASL_MAX} bytes"
                return [self._reply("904", why)]
            if len(arg) == _SASL_CHUNK:
                return []  # more chunks follow (after exactly 400 bytes, at least "+")
        payload, self._sasl, self._sasl_buffer = self._sasl_buffer, None, ""
        try:
            decoded = base64.b64decode(payload, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return [
                self._reply(
                    "904", "SASL authentication failed: the PLAIN message is not base64 of UTF-8"
                )
            ]
        fields = decoded.split("\0")
        if len(fields) != 3 or not fields[1] or not fields[2]:
            return [
                self._reply(
                    "904",
                    "SASL authentication failed: PLAIN wants authzid NUL account NUL password",
                )
            ]
        account, _, device = fields[1].partition("@")
        password = fields[2]
        if fields[0] and fields[0].partition("@")[0] != account:
            return [self._reply("904", "SASL authentication failed: log in as yourself only")]
        account = chinwag_nick(account)  # the account's name, as chinwag or IRC writes it
        if not _valid_nick(irc_nick(account)):
            return [
                self._reply(
                    "904", "SASL authentication failed: that account name cannot be used on IRC"
                )
            ]
        if device and _DEVICE_RE.fullmatch(device) is None:
            return [self._reply("904", f"SASL authentication failed: {_DEVICE_WORDS}")]
        self._sasl_nick = account
        self._sasl_device = device or None
        ref = self._hello(account, password, "AUTHENTICATE")
        return [self._hello_command(account, password, ref)]

    def _hello(self, nick: str, password: str | None, command: str) -> str:
        self._serial += 1
        ref = f"i{self._serial}"
        self._hello_ref = ref
        self._pending[ref] = _Pending(command, nick)
        return ref

    def _hello_command(self, nick: str, password: str | None, ref: str) -> Hello:
        device = self._sasl_device or DEFAULT_DEVICE
        if self._sasl_device is None and self._user is not None and "@" in self._user:
            device = self._user.rpartition("@")[2]
        return Hello(
            proto=1,
            nick=nick,
            password=password,
            device=device,
            client="irc",
            ref=ref,
            lobby=self.auto_join,
            user=self._user.partition("@")[0] if self._user is not None else None,
            real_name=self._hello_real(),
        )

    def _hello_real(self) -> str | None:
        self._hello_real_name = self._real_name
        return self._real_name

    def _registration(self, msg: IrcMessage) -> list[Incoming | Reply]:
        cmd, params = msg.command, msg.params
        if cmd == "PASS":
            if not params:
                return [self._reply("461", "PASS", "Not enough parameters: PASS <password>")]
            self._password = params[0]
            return []
        if cmd == "NICK":
            if not params or not params[0]:
                return [self._reply("431", "No nickname given: NICK <nick>")]
            if not _valid_nick(params[0]):
                why = "That nick cannot be used on IRC; choose another"
                if params[0][0] in _ESCAPED_FIRST:
                    why += f" (chinwag's nick {params[0]} is {irc_nick(params[0])} on IRC)"
                return [self._reply("432", params[0], why)]
            self.nick = chinwag_nick(params[0])
            return self._try_register()
        if cmd == "USER":
            if len(params) < 4 or not params[0] or not params[3]:
                return [
                    self._reply("461", "USER", "Not enough parameters: USER <user> 0 * :<name>")
                ]
            device = params[0].rpartition("@")[2] if "@" in params[0] else None
            if device is not None and _DEVICE_RE.fullmatch(device) is None:
                return [self._reply("FAIL", "USER", "INVALID_USERNAME", _DEVICE_WORDS)]
            self._user, self._real_name = params[0], params[3]
            return self._try_register()
        if cmd == "REGISTER":  # draft/account-registration without before-connect
            why = "Connect first (NICK, USER, CAP END), then REGISTER makes your nick an account"
            return [self._reply("FAIL", "REGISTER", "COMPLETE_CONNECTION_REQUIRED", "*", why)]
        return [self._reply("451", "You have not registered: send NICK and USER first")]

    def _try_register(self) -> list[Incoming | Reply]:
        if self._cap_negotiating or self.nick is None or self._user is None:
            return []
        if self._welcome is not None:  # SASL already logged in: registration is over
            return [Reply(self._finish_registration(self._welcome))]
        if self._hello_ref is not None or self._sasl_nick is not None:
            return []  # a Hello is on its way
        ref = self._hello(self.nick, self._password, "NICK")
        return [self._hello_command(self.nick, self._password, ref)]

    def _command(self, msg: IrcMessage) -> list[Incoming | Reply]:
        cmd, params = msg.command, msg.params
        if cmd in ("PRIVMSG", "NOTICE"):
            if not params:
                return [self._reply("411", f"No recipient given ({cmd} <target> :<text>)")]
            if len(params) < 2 or not params[1]:
                return [self._reply("412", "No text to send")]
            target, body = params[0], params[1]
            if target.lower() == "nickserv":
                return self._nickserv(msg, body)
            notice = cmd == "NOTICE"  # stored and relayed as a notice (ircmsg)
            ref = self._remember(cmd, target, msg, body)
            if target.startswith("#"):
                return [Say(room=target[1:], body=body, ref=ref, cid=self._cid(ref), notice=notice)]
            return [
                Dm(to=chinwag_nick(target), body=body, ref=ref, cid=self._cid(ref), notice=notice)
            ]
        if cmd == "JOIN":
            if not params:
                return [self._reply("461", "JOIN", "Not enough parameters: JOIN #room")]
            keys = params[1].split(",") if len(params) > 1 else []  # ircmodes: JOIN #a,#b k1,k2
            return self._join(msg, params[0], keys)
        if cmd == "PART":
            if not params:
                return [self._reply("461", "PART", "Not enough parameters: PART #room")]
            parted: list[Incoming | Reply] = []
            for name in params[0].split(","):
                if not name.startswith("#") or len(name) < 2:
                    parted.append(
                        self._reply("403", name or "*", "No such channel: rooms are #name")
                    )
                    continue
                ref = self._remember("PART", name, msg, params[1] if len(params) > 1 else None)
                parted.append(
                    Leave(room=name[1:], reason=params[1] if len(params) > 1 else "", ref=ref)
                )
            return parted
        if cmd == "WHO" and params and params[0] and not params[0].startswith("#"):
            return self._who_mask(msg)
        if cmd in ("NAMES", "WHO"):
            if not params or not params[0].startswith("#"):
                end = "366" if cmd == "NAMES" else "315"
                target = params[0] if params else "*"
                return [self._reply(end, target, f"End of /{cmd} list (only #rooms are listed)")]
            name = params[0].split(",")[0]
            return [Who(room=name[1:], ref=self._remember(cmd, name, msg))]
        if cmd == "LIST":
            # LIST #a,#b lists those only (a channel that does not exist: nothing).
            wanted = params[0] if params and params[0].startswith("#") else "*"
            return [ListRooms(ref=self._remember("LIST", wanted, msg))]
        if cmd == "CHATHISTORY":
            return self._chathistory(msg)
        if cmd == "REDACT":
            return self._redact(msg)
        if cmd == "TAGMSG":
            return self._tagmsg(msg)
        if cmd == "WHOIS":
            return self._whois(msg)
        if cmd == "AWAY":
            return self._away(msg)
        if cmd == "USERHOST":
            return self._userhost(msg)
        if cmd == "MARKREAD":
            return self._markread(msg)
        if cmd == "TOPIC":
            return self._topic(msg)
        if cmd == "MODE":
            return self._mode(msg)
        if cmd == "KICK":
            return self._kick(msg)
        if cmd == "INVITE":
            return self._invite(msg)
        if cmd in ("TIME", "INFO"):
            return [self._about_server(cmd, params)]
        if cmd in ("OPER", "KILL", "WALLOPS"):
            return self._operator(msg)
        if cmd == "WHOWAS":
            return self._whowas(msg)
        if cmd == "LUSERS":
            return [Stats(ref=self._remember("LUSERS", "*", msg))]
        if cmd == "MONITOR":
            return self._monitor(msg)
        if cmd == "REGISTER":
            return self._register(msg)
        if cmd == "SETNAME":
            if not params or not params[0]:
                return [
                    self._reply("461", "SETNAME", "Not enough parameters: SETNAME :<real name>")
                ]
            ref = self._remember("SETNAME", "*", msg, params[0])
            return [SetName(real_name=params[0], ref=ref)]
        if cmd in ("PASS", "USER"):
            return [self._reply("462", "You may not reregister")]
        if cmd == "NICK":
            return self._nick_change(msg)
        return [self._reply("421", cmd, "Unknown command, or not there yet on chinwag")]

    def _join(self, msg: IrcMessage, names: str, keys: list[str]) -> list[Incoming | Reply]:
        """``JOIN #a,#b k1,k2``: a ``Join`` for each channel, with its key if given
        (ircmodes), ``403`` for each name that is not one.

        A labeled JOIN is answered by one batch (ircmsg): the ``403`` of its invalid
        names go inside the batch of its first channel's JOIN and NAMES.
        """
        out: list[Incoming | Reply] = []
        refused: list[bytes] = []
        first: _Pending | None = None
        for i, name in enumerate(names.split(",")):
            if not name.startswith("#") or len(name) < 2:
                refused.append(
                    self._numeric("403", name or "*", "No such channel: rooms are #name")
                )
                continue
            if self._in_channel(name):
                continue  # already there: a server ignores such a JOIN (clients send one)
            ref = self._remember("JOIN", name, msg)
            first = first or self._pending[ref]
            key = keys[i] if i < len(keys) and keys[i] else None
            out.append(Join(room=name[1:], key=key, ref=ref))
        if first is not None and first.label is not None and "batch" in self.caps:
            first.before = b"".join(refused)
            return out
        return [Reply(wire) for wire in refused] + out

    def _in_channel(self, channel: str) -> bool:
        """Whether the client is in ``channel`` once the hub has carried out the JOINs
        and PARTs it sent so far: the newest one still unanswered says it, else the
        channels joined. ``PART #x`` then ``JOIN #x`` in one write (irssi's ``/cycle``)
        is a leave and a fresh join, though the PART's answer has not come yet."""
        key = channel.casefold()
        for pending in reversed(self._pending.values()):
            if pending.command in ("JOIN", "PART") and pending.target.casefold() == key:
                return pending.command == "JOIN"
        return key in self._channels

    def _nick_change(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``NICK`` once registered: a guest takes another nick (ircmsg, a ``nick``);
        an account's nick is its name.

        Asking for the nick one has is nothing (clients do it); a guest's new
        nick, or a change of case of it, is answered with ``NICK`` (``433``: taken,
        ``432``: not a nick); an account gets ``447`` saying what to do instead.
        """
        params = msg.params
        if not params or not params[0]:
            return [self._reply("431", "No nickname given: NICK <nick>")]
        if self.nick is not None and chinwag_nick(params[0]) == self.nick:
            return []
        if self._account:
            if self.nick is not None and chinwag_nick(params[0]).casefold() == self.nick.casefold():
                return []  # the account's name, written otherwise: it is shown as registered
            why = (
                "Your nick is your account's name and cannot change; to use another,"
                " register it as an account and log in as it"
            )
            return [self._reply("447", params[0], why)]
        if not _valid_nick(params[0]):
            return [self._reply("432", params[0], "Erroneous nickname")]
        return [Rename(nick=chinwag_nick(params[0]), ref=self._remember("NICK", params[0], msg))]

    def _whois(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``WHOIS [server] <nick>``: who they are, for anyone online (a ``whois``).

        Someone offline, or who blocks the asker, gets ``401``; a mask is no nick.
        """
        if not msg.params or not msg.params[-1]:
            return [self._reply("431", "No nickname given: WHOIS <nick>")]
        nick = msg.params[-1]
        if "*" in nick or "?" in nick:
            return [Reply(self._whois_lines(nick, None))]
        ref = self._remember("WHOIS", nick, msg)
        return [Whois(mask=chinwag_nick(nick), ref=ref)]

    def _whois_lines(self, asked: str, user: WhoMember | None) -> bytes:
        """``311``, ``312``, ``313`` (operator), ``330``, ``335``, ``301``; or ``401``; ``318``."""
        if user is None:
            why = "No such nick: nobody by that name is online"
            return self._numeric("401", asked, why) + self._numeric(
                "318", asked, "End of /WHOIS list"
            )
        nick = irc_nick(user.nick)
        lines = [
            self._numeric("311", nick, user.user or nick, HOST, "*", user.real_name or nick),
            # No 319: the rooms someone is in are not told (only shared ones would be).
            self._numeric("312", nick, self.server_name, "chinwag"),
        ]
        if user.oper:
            lines.append(self._numeric("313", nick, "is an IRC operator (acts as a server admin)"))
        if user.account:
            lines.append(self._numeric("330", nick, nick, "is logged in as"))
        if user.bot:
            lines.append(self._numeric("335", nick, "is a bot"))
        if user.away is not None:
            lines.append(self._numeric("301", nick, user.away))
        lines.append(self._numeric("318", nick, "End of /WHOIS list"))
        return b"".join(lines)

    def _render_whois(self, event: WhoisReply, pending: _Pending | None) -> bytes:
        """A ``whois`` answer: to the WHOIS, USERHOST or WHO <mask> that asked."""
        if pending is None:
            return b""
        if pending.userhost is not None:
            return self._userhost_part(pending, event)
        if pending.command == "WHO":
            return self._who_mask_lines(pending.target, event)
        wanted = chinwag_nick(pending.target).casefold()
        user = next((u for u in event.users if u.nick.casefold() == wanted), None)
        return self._whois_lines(pending.target, user)

    def _about_server(self, cmd: str, params: tuple[str, ...]) -> Reply:
        """``TIME`` (``391``) and ``INFO`` (``371``… ``374``) of this server.

        A target naming another server gets ``402``: there is only this one.
        """
        name = self.server_name
        if params and params[0] and params[0].casefold() != name.casefold():
            return self._reply("402", params[0], f"No such server: this one is {name}")
        if cmd == "TIME":
            now = datetime.now(UTC).strftime("%A %B %d %Y -- %H:%M:%S UTC")
            return self._reply("391", name, now)
        lines = [
            self._numeric("371", "chinwag: a self-hostable chat server"),
            self._numeric("371", "It keeps what you missed while away and plays it back"),
            self._numeric("374", "End of /INFO list"),
        ]
        return Reply(b"".join(lines))

    def _operator(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``OPER <name> <password>``: act as that admin account (``oper``; ``381``, ``+o``);
        ``KILL <nick> [:reason]``: a server kick (ends their sessions); ``WALLOPS :<text>``."""
        cmd, params = msg.command, msg.params
        if cmd == "OPER":
            if len(params) < 2:
                return [self._reply("461", "OPER", "Not enough parameters: OPER <name> <password>")]
            ref = self._remember("OPER", params[0], msg)
            return [Oper(account=chinwag_nick(params[0]), password=params[1], ref=ref)]
        if not params or not params[0]:
            usage = "KILL <nick> [:reason]" if cmd == "KILL" else "WALLOPS :<text>"
            return [self._reply("461", cmd, f"Not enough parameters: {usage}")]
        if cmd == "KILL":
            nick = params[0]
            reason = params[1] if len(params) > 1 else ""
            ref = self._moderating("KILL", nick, msg, nick)
            return [Moderate(action="kick", nick=chinwag_nick(nick), reason=reason, ref=ref)]
        ref = self._remember("WALLOPS", "*", msg, params[0])
        return [Wallops(text=params[0], ref=ref)]

    def _operator_error(self, event: Error, pending: _Pending) -> bytes:
        """A refused OPER (``464`` wrong name or password, ``491`` not an admin), KILL or
        WALLOPS (``481`` not an operator, ``401`` nobody by that name)."""
        code, text = event.code, event.message
        if pending.command == "OPER":
            if code == "bad_password":
                return self._numeric("464", f"Password incorrect: {text}")
            if code == "forbidden":
                return self._numeric("491", f"No O-lines for your host: {text}")
            return self._numeric("FAIL", "OPER", code.upper(), text)
        if code == "forbidden" and event.extra.get("reason") == "not_admin":
            return self._numeric("481", f"Permission Denied- {text}")
        if code in ("no_such_user", "bad_nick"):
            return self._numeric("401", pending.target, text)
        return self._numeric("FAIL", pending.command, code.upper(), text)

    def _user_mode(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``MODE <me> [<modes>]``: ``+w``/``-w`` wallops, ``+i``/``-i`` invisible to masks,
        ``-o`` stop acting as an admin (``+o`` comes only from OPER), ``+B``/``-B`` a bot
        (irccaps); ``221`` a query."""
        params = msg.params
        if chinwag_nick(params[0]).casefold() != (self.nick or "").casefold():
            return [self._reply("502", "Can't change mode for other users")]
        if len(params) == 1:
            return [self._reply("221", self._user_modes())]
        out: list[Incoming | Reply] = []
        sign = "+"
        for char in params[1]:
            if char in "+-":
                sign = char
            elif char == "w" and (sign == "+") != self._wallops:
                ref = self._remember("UMODE", "*", msg, sign + "w")
                out.append(ListenWallops(on=sign == "+", ref=ref))
            elif char == "i" and (sign == "+") != self._invisible:
                ref = self._remember("UMODE", "*", msg, sign + "i")
                out.append(Invisible(on=sign == "+", ref=ref))
            elif char == "o" and sign == "-" and self._oper:
                out.append(Oper(ref=self._remember("UMODE", "*", msg, "-o")))
            elif char == "B" and (sign == "+") != self._bot:  # irccaps
                ref = self._remember("BOTMODE", self._me(), msg, sign + "B")
                out.append(SetBot(on=sign == "+", ref=ref))
            elif char not in "iowB":
                why = f"Unknown user mode {char}: the user modes here are i, o, w and B"
                out.append(self._reply("501", why))
        return out

    def _user_mode_ok(self, pending: _Pending) -> bytes:
        """OPER done (``381`` and ``MODE +o``), or a user mode changed (its ``MODE``)."""
        me = self._me()
        if pending.command == "OPER":
            self._oper = True
            done = self._numeric("381", "You are now an IRC operator: you act as a server admin")
            return done + format_message("MODE", me, "+o", source=self._source(me))
        change = pending.body or ""
        if change == "-o":
            self._oper = False
        elif change[1:] == "i":
            self._invisible = change == "+i"
        else:
            self._wallops = change == "+w"
        return format_message("MODE", me, change, source=self._source(me))

    def _user_modes(self) -> str:
        modes = ("i", self._invisible), ("o", self._oper), ("w", self._wallops), ("B", self._bot)
        return "+" + "".join(mode for mode, on in modes if on)

    def _whowas(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``WHOWAS <nick> [<count>]``: ``whowas`` (a count of 0 or less: every entry)."""
        params = msg.params
        if not params or not params[0]:
            return [self._reply("461", "WHOWAS", "Not enough parameters: WHOWAS <nick>")]
        count = params[1] if len(params) > 1 else ""
        limit = int(count) if count.isdigit() and int(count) > 0 else None
        ref = self._remember("WHOWAS", params[0], msg)
        return [WhoWas(nick=chinwag_nick(params[0]), limit=limit, ref=ref)]

    def _whowas_lines(self, e: WhoWasReply, pending: _Pending | None) -> bytes:
        """``314`` (with the username and real name its last IRC session gave) and ``312``
        (when they left) per departure, newest first, or ``406``; ``369``."""
        asked = pending.target if pending is not None else irc_nick(e.nick)
        lines: list[bytes] = []
        for entry in e.entries:
            nick = irc_nick(entry.nick)
            user, real = entry.user or nick, entry.real_name or nick
            lines.append(self._numeric("314", nick, user, HOST, "*", real))
            left = f"went offline {_time_tag(entry.ts_ms)}"
            lines.append(self._numeric("312", nick, self.server_name, left))
        if not lines:
            why = "There was no such nickname (or it left before what this server remembers)"
            lines.append(self._numeric("406", asked, why))
        lines.append(self._numeric("369", asked, "End of WHOWAS"))
        return b"".join(lines)

    # -- the ban list (issue 19, ircwho) --
    def _ban_list(self, e: BansReply) -> bytes:
        """``367`` per ban (``nick!*@*``, who set it, when in seconds), then ``368``."""
        channel = f"#{e.room}"
        lines = [
            self._numeric("367", channel, f"{irc_nick(b.nick)}!*@*", b.by, str(b.ts_ms // 1000))
            for b in e.bans
        ]
        lines.append(self._numeric("368", channel, "End of channel ban list"))
        return b"".join(lines)

    # -- away (issue 19, irchist) --
    def _away(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``AWAY [:message]``: an ``away`` (no or an empty message: back); ``306``/``305``."""
        message = msg.params[0] if msg.params else ""
        ref = self._remember("AWAY", "*", msg, message)
        return [Away(message=message or None, ref=ref)]

    def _userhost(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``USERHOST <nick>{ <nick>}``: ``302`` with ``nick=+user@host`` (``-`` if away).

        As WHOIS: anyone online (at most five nicks, one ``whois`` each).
        """
        nicks = tuple(n for n in msg.params[:5] if n)
        if not nicks:
            return [self._reply("461", "USERHOST", "Not enough parameters: USERHOST <nick>")]
        asked = [n for n in nicks if "*" not in n and "?" not in n]  # a mask is no nick
        userhost = _Userhost(nicks, len(asked))
        if not asked:
            return [Reply(self._userhost_lines(userhost))]
        out: list[Incoming | Reply] = []
        for nick in asked:
            ref = self._remember("USERHOST", nick, msg)
            self._pending[ref].userhost = userhost
            out.append(Whois(mask=chinwag_nick(nick), ref=ref))
        return out

    def _userhost_part(self, pending: _Pending, event: WhoisReply | None) -> bytes:
        """One nick's answer (None: refused) of a USERHOST; its ``302`` with the last."""
        userhost = pending.userhost
        assert userhost is not None
        userhost.waiting -= 1
        if event is not None:
            for user in event.users:
                userhost.found[user.nick.casefold()] = user
        return self._userhost_lines(userhost) if userhost.waiting == 0 else b""

    def _userhost_lines(self, userhost: _Userhost) -> bytes:
        replies = []
        for asked in userhost.nicks:
            user = userhost.found.get(chinwag_nick(asked).casefold())
            if user is not None:
                nick = irc_nick(user.nick)
                oper = "*" if user.oper else ""
                away = "+" if user.away is None else "-"
                replies.append(f"{nick}{oper}={away}{user.user or nick}@{HOST}")
        return self._numeric("302", " ".join(replies))

    # -- WHO <nick|mask> (issue 19, ircwho; anyone online: ircoper) --
    def _who_mask(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``WHO <nick|mask>``: ``352`` for each person online whose nick (or
        ``nick!user@host``, if the mask has ``!`` or ``@``) matches, case-folded, with
        ``*`` and ``?`` (``0`` is ``*``): a ``whois`` of the mask's nick part."""
        mask = msg.params[0]
        folded = "*" if mask == "0" else mask.casefold()
        nick_part = folded.split("!", 1)[0] if "!" in folded else folded
        if "@" in folded and "!" not in folded:
            nick_part = "*"
        ref = self._remember("WHO", mask, msg)
        return [Whois(mask=chinwag_nick(nick_part) if nick_part != "*" else "*", ref=ref)]

    def _who_mask_lines(self, mask: str, event: WhoisReply) -> bytes:
        """One ``352`` per person matched (no channel named: ``*``), sorted by nick; ``315``."""
        folded = "*" if mask == "0" else mask.casefold()
        full = "!" in folded or "@" in folded
        rows = []
        for user in event.users:
            nick = irc_nick(user.nick)
            name = f"{nick}!{user.user or nick}@{HOST}" if full else nick
            if wildcard_match(folded, name.casefold()):
                rows.append(self._who_row("*", user, _here(user)))
        return b"".join(rows) + self._numeric("315", mask, "End of /WHO list")

    def _who_row(self, channel: str, user: WhoMember, flags: str) -> bytes:
        """One ``352`` line: the IRC username and real name where the session gave them."""
        nick = irc_nick(user.nick)
        real = f"0 {user.real_name or nick}"
        return self._numeric(
            "352", channel, user.user or nick, HOST, self.server_name, nick, flags, real
        )

    # -- draft/read-marker (issue 19, irchist) --
    def _markread(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``MARKREAD <target> [timestamp=<ts>]``: the account's read marker, by time.

        chinwag's markers are message ids: a timestamp moves the marker to the
        latest message at or before it; the answer names that message's time
        (``*``: no marker).
        """
        if not msg.params or not msg.params[0]:
            usage = "Usage: MARKREAD <target> [timestamp=YYYY-MM-DDThh:mm:ss.sssZ]"
            return [self._reply("FAIL", "MARKREAD", "NEED_MORE_PARAMS", usage)]
        target = msg.params[0]
        room = target[1:] if target.startswith("#") else None
        with_ = None if room is not None else chinwag_nick(target)
        ref = self._remember("MARKREAD", target, msg)
        if len(msg.params) == 1:
            return [ReadQuery(room=room, with_=with_, ref=ref)]
        point = _history_point(msg.params[1])
        if point is None or point[0] != "timestamp":
            del self._pending[ref]
            why = "Set a marker with timestamp=YYYY-MM-DDThh:mm:ss.sssZ"
            return [self._reply("FAIL", "MARKREAD", "INVALID_PARAMS", target, why)]
        return [Read(room=room, with_=with_, upto=0, upto_ms=point[1], ref=ref)]

    def _render_markread(self, event: ReadMarker) -> bytes:
        target = f"#{event.room}" if event.room is not None else irc_nick(event.with_ or "*")
        when = "*" if event.ts_ms is None else f"timestamp={_time_tag(event.ts_ms)}"
        return format_message("MARKREAD", target, when, source=self.server_name)

    # -- channels: topics, modes, kicks, invites (mapped onto moderation, §12) -----------

    def _moderating(
        self, command: str, channel: str, msg: IrcMessage, nick: str | None = None
    ) -> str:
        ref = self._remember(command, channel, msg)
        self._pending[ref].nick = nick
        return ref

    def _topic(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``TOPIC #room`` asks for the topic; ``TOPIC #room :text`` sets it (``room``)."""
        if not msg.params:
            return [self._reply("461", "TOPIC", "Not enough parameters: TOPIC #room [:topic]")]
        channel = msg.params[0]
        if not channel.startswith("#") or len(channel) < 2:
            return [self._reply("403", channel, "No such channel: rooms are #name")]
        if len(msg.params) == 1:
            return self._channel_query("TOPIC", channel, msg)
        ref = self._moderating("TOPIC", channel, msg)
        return [RoomSet(room=channel[1:], topic=msg.params[1], ref=ref)]

    def _channel_query(self, command: str, channel: str, msg: IrcMessage) -> list[Incoming | Reply]:
        """A TOPIC or MODE query: from the channel's room_info when joined; else whether
        the room exists (``rooms``) tells ``442`` from ``403``."""
        key = channel.casefold()
        joining = any(
            p.command == "JOIN" and p.target.casefold() == key for p in self._pending.values()
        )
        if joining:  # sent right after its JOIN: the room_info after the join answers it
            self._info_wanted.setdefault(key, []).append((command, None))
            return []
        if key not in self._channels:
            return [ListRooms(ref=self._remember(command, channel, msg))]
        info = self._infos.get(key)
        if info is not None:
            return [Reply(self._query_answer(command, info))]
        # Joined, its room_info not here yet: a join of a room one is in answers it.
        self._info_wanted.setdefault(key, []).append((command, self._label(msg)))
        return [Join(room=channel[1:], ref=self._remember("INFO", channel, None))]

    def _query_answer(self, command: str, info: RoomInfo) -> bytes:
        channel = f"#{info.room}"
        if command == "TOPIC":
            if info.topic:
                return self._numeric("332", channel, info.topic) + self._topic_time(info)
            return self._numeric("331", channel, "No topic is set")
        modes = "+n" + "".join(
            char
            for char, on in (
                ("t", info.topic_locked),
                ("i", info.private),
                ("m", info.announce),
                ("s", info.secret),
            )
            if on
        )
        args = []  # ircmodes: the key (to those who may know it; else *), the limit
        if info.keyed:
            modes += "k"
            args.append(info.key or "*")
        if info.limit is not None:
            modes += "l"
            args.append(str(info.limit))
        created = b""
        if info.created_ms is not None:  # 329: when the room was made (ircwho)
            created = self._numeric("329", channel, str(info.created_ms // 1000))
        return self._numeric("324", channel, modes, *args) + created

    def _topic_time(self, info: RoomInfo) -> bytes:
        """``333 #room nick <unix seconds>``: who set the topic, and when (ircroles); nothing
        for topics older than that (not known)."""
        if info.topic_ms is None or not info.topic_by:
            return b""
        by = irc_nick(info.topic_by)
        return self._numeric("333", f"#{info.room}", by, str(info.topic_ms // 1000))

    def _mode(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``MODE``: a channel's modes asked for or changed (``+o``/``-o`` grant, ``+b``/``-b``
        ban, ``+i`` private, ``+m`` announce; ``n`` and ``t`` are always on); a nick's
        user modes: ``_user_mode``."""
        params = msg.params
        if not params:
            return [self._reply("461", "MODE", "Not enough parameters: MODE <target>")]
        target = params[0]
        if not target.startswith("#"):
            return self._user_mode(msg)
        if len(params) == 1:
            return self._channel_query("MODE", target, msg)
        room = target[1:]
        args = list(params[2:])
        out: list[Incoming | Reply] = []
        sign = "+"
        for char in params[1]:
            if char in "+-":
                sign = char
                continue
            on = sign == "+"
            if char == "o":
                if not args:
                    out.append(
                        self._reply("461", "MODE", "Not enough parameters: MODE #room +o nick")
                    )
                    continue
                nick = args.pop(0)
                ref = self._moderating("MODE", target, msg, nick)
                role = "mod" if on else "member"
                out.append(Grant(room=room, nick=chinwag_nick(nick), role=role, ref=ref))
            elif char == "v":  # ircroles: voice
                if not args:
                    out.append(
                        self._reply("461", "MODE", "Not enough parameters: MODE #room +v nick")
                    )
                    continue
                nick = args.pop(0)
                ref = self._moderating("MODE", target, msg, nick)
                action = "voice" if on else "unvoice"
                out.append(Moderate(action=action, room=room, nick=chinwag_nick(nick), ref=ref))
            elif char == "b":
                if not args:  # the ban list (ircwho): 367 per ban, then 368
                    out.append(ListBans(room=room, ref=self._moderating("MODE", target, msg)))
                    continue
                mask = args.pop(0)
                banned = _ban_nick(mask)
                if banned is None:
                    why = "A ban here is of a nick: give nick or nick!*@*"
                    out.append(self._reply("696", target, "b", mask, why))
                    continue
                ref = self._moderating("MODE", target, msg, banned)
                action = "ban" if on else "unban"
                out.append(Moderate(action=action, room=room, nick=chinwag_nick(banned), ref=ref))
            elif char in "kl":
                out.append(self._key_or_limit(target, msg, char, on, args))
            elif char in "imst":
                ref = self._moderating("MODE", target, msg)
                if char == "i":
                    out.append(RoomSet(room=room, private=on, ref=ref))
                elif char == "m":
                    out.append(RoomSet(room=room, announce=on, ref=ref))
                elif char == "s":  # ircroles: secret
                    out.append(RoomSet(room=room, secret=on, ref=ref))
                else:  # ircroles: topic lock
                    out.append(RoomSet(room=room, topic_locked=on, ref=ref))
            elif char == "n":
                if not on:
                    why = "is always on here: only a room's members speak in it"
                    out.append(self._reply("472", char, why))
            else:
                out.append(self._reply("472", char, "is not a channel mode on chinwag"))
        return out

    def _key_or_limit(
        self, channel: str, msg: IrcMessage, char: str, on: bool, args: list[str]
    ) -> Incoming | Reply:
        """ircmodes: ``+k key``/``-k [key]`` and ``+l N``/``-l`` as a ``room`` request;
        a limit that is no whole number above 0 is ``696`` here (a key's and a limit's
        bounds are the hub's: ``696`` on its answer, `_moderation_error`)."""
        room = channel[1:]
        if char == "k":
            if not on:
                if args:
                    args.pop(0)  # -k key, -k *: cleared whatever was given
                return RoomSet(room=room, key="", ref=self._moderating("MODE", channel, msg))
            if not args:
                return self._reply("461", "MODE", "Not enough parameters: MODE #room +k key")
            key = args.pop(0)
            if not key:
                return self._reply("696", channel, "k", "*", "A key is not empty: -k clears it")
            return RoomSet(room=room, key=key, ref=self._moderating("MODE", channel, msg, "*"))
        if not on:
            return RoomSet(room=room, limit=0, ref=self._moderating("MODE", channel, msg))
        if not args:
            return self._reply("461", "MODE", "Not enough parameters: MODE #room +l number")
        value = args.pop(0)
        if not value.isascii() or not value.isdigit() or int(value) < 1:
            why = "A limit is a whole number above 0: -l clears it"
            return self._reply("696", channel, "l", value or "*", why)
        ref = self._moderating("MODE", channel, msg, value)
        return RoomSet(room=room, limit=int(value), ref=ref)

    def _kick(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``KICK #room nick[,nick…] [:reason]``: a ``kick`` of each (§12)."""
        if len(msg.params) < 2:
            return [self._reply("461", "KICK", "Not enough parameters: KICK #room nick [:reason]")]
        channel = msg.params[0].split(",")[0]
        if not channel.startswith("#") or len(channel) < 2:
            return [self._reply("403", channel, "No such channel: rooms are #name")]
        reason = msg.params[2] if len(msg.params) > 2 else ""
        out: list[Incoming | Reply] = []
        for nick in msg.params[1].split(","):
            if nick:
                ref = self._moderating("KICK", channel, msg, nick)
                out.append(
                    Moderate(
                        action="kick",
                        room=channel[1:],
                        nick=chinwag_nick(nick),
                        reason=reason,
                        ref=ref,
                    )
                )
        return out

    def _invite(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``INVITE nick #room``: an ``invite`` (§12); ``341`` once done."""
        if len(msg.params) < 2:
            return [self._reply("461", "INVITE", "Not enough parameters: INVITE nick #room")]
        nick, channel = msg.params[0], msg.params[1]
        if not channel.startswith("#") or len(channel) < 2:
            return [self._reply("403", channel, "No such channel: rooms are #name")]
        ref = self._moderating("INVITE", channel, msg, nick)
        return [Invite(room=channel[1:], nick=chinwag_nick(nick), ref=ref)]

    def _presence(self, event: Presence) -> bytes:
        """A presence event for this client: its own kick, ban or invite included.

        Someone who went offline is one ``QUIT`` for all the channels shared with them
        (its ``leave`` of each comes in a row: the first one says it, the rest nothing).
        """
        if event.event == "nick" and event.new is not None and event.nick == self.nick:
            self.nick = event.new  # one's own new nick (the answer to NICK; ircmsg)
            return _presence_lines(event)
        if event.nick != self.nick:
            key = event.nick.casefold()
            if event.quit is not None and event.event == "leave":
                if key in self._quits:
                    return b""
                self._quits[key] = None
                while len(self._quits) > MAX_QUITS_KEPT:
                    self._quits.popitem(last=False)
                source = _user(event.nick)
                return format_message(
                    "QUIT", f"Quit: {event.quit}" if event.quit else "Quit", source=source
                )
            if event.event == "join":
                self._quits.pop(key, None)  # back: its next quit is said again
            return _presence_lines(event, self.caps)
        channel = f"#{event.room}"
        if event.event in ("kick", "ban"):
            self._channels.discard(channel.casefold())
            self._infos.pop(channel.casefold(), None)
            return _presence_lines(event)
        if event.event == "invite":
            source = _user(event.by) if event.by else self.server_name
            # ircoper: the inviter's account, as on PRIVMSG (account-tag).
            account = irc_nick(event.by) if event.by and event.by_account else None
            tags = {"account": account} if account and "account-tag" in self.caps else None
            return format_message("INVITE", self._me(), channel, source=source, tags=tags)
        if event.event in ("grant", "voice", "unvoice"):
            return _presence_lines(event)
        return b""  # one's own join and leave are the answers to one's JOIN and PART

    def _room_info(self, event: RoomInfo) -> bytes:
        """A room's settings: after one's join, its topic (``332``); after a change,
        ``TOPIC`` and ``MODE`` lines for what changed."""
        channel = f"#{event.room}"
        key = channel.casefold()
        old = self._infos.get(key)
        if event.created_ms is None and old is not None and old.created_ms is not None:
            event = replace(event, created_ms=old.created_ms)  # a change: kept
        self._infos[key] = event
        if event.by is None:  # after one's join, or the answer to a query (a join again)
            # Only this answers the TOPIC or MODE queries waiting: a change someone made
            # meanwhile (``by`` set) leaves them waiting for it.
            wanted = self._info_wanted.pop(key, [])
            topic = b""
            if event.topic:
                topic = self._numeric("332", channel, event.topic) + self._topic_time(event)
            if any(command == "TOPIC" for command, _ in wanted):
                topic = b""  # the query's own answer says it
            answers = [(self._query_answer(command, event), label) for command, label in wanted]
            return topic + b"".join(
                wire if label is None else self._labeled(wire, label) for wire, label in answers
            )
        # A change in a room joined at login (its room_info not asked for yet: a query of
        # each at login would spend the command budget): its whole state is told.
        source = _user(event.by)
        lines = []
        if old is None or old.topic != event.topic:
            lines.append(format_message("TOPIC", channel, event.topic, source=source))
        for char, now, before in (
            ("i", event.private, old.private if old is not None else False),
            ("m", event.announce, old.announce if old is not None else False),
            ("s", event.secret, old.secret if old is not None else False),
            ("t", event.topic_locked, old.topic_locked if old is not None else True),
        ):
            if now != before:
                sign = "+" if now else "-"
                lines.append(format_message("MODE", channel, f"{sign}{char}", source=source))
        lines += _key_and_limit_lines(channel, event, old, source)
        return b"".join(lines)

    def _listed(self, row: RoomRow, wanted: str | None) -> bool:
        """Whether LIST shows the room: the channels asked for (all if none); with
        ``irc_auto_join`` off, not an empty lobby (IRC channels with nobody in them
        do not exist, and IRC users are not put in that one)."""
        channel = f"#{row.name}".casefold()
        if wanted is not None and channel not in wanted.casefold().split(","):
            return False
        return self.auto_join or row.name != "lobby" or row.online > 0

    def _moderation_error(self, event: Error, pending: _Pending) -> bytes:
        """A refused TOPIC, MODE, KICK or INVITE as the numeric IRC clients know."""
        channel, nick, text = pending.target, pending.nick or "*", event.message
        reason = event.extra.get("reason")
        if event.code == "forbidden":
            return self._numeric("482", channel, f"You're not channel operator: {text}")
        if event.code == "not_member":
            if reason == "no_room":
                return self._numeric("403", channel, f"No such channel: {text}")
            if channel.casefold() in self._channels:
                return self._numeric("441", nick, channel, f"They aren't on that channel: {text}")
            return self._numeric("442", channel, f"You're not on that channel: {text}")
        if event.code == "no_such_user":
            return self._numeric("401", nick, f"No such nick: {text}")
        if event.code == "bad_request" and reason in ("key", "limit"):  # ircmodes
            return self._numeric("696", channel, reason[0], nick, f"Invalid mode parameter: {text}")
        if event.code == "bad_request" and reason == "member":
            return self._numeric("443", nick, channel, f"is already on channel: {text}")
        if event.code == "bad_room":
            return self._numeric("403", channel, f"No such channel: {text}")
        return self._numeric("FAIL", pending.command, event.code.upper(), text)

    def _batch(self, msg: IrcMessage, tag: str | None) -> list[Incoming | Reply]:
        """A client batch (IRCv3 ``batch``): only ``draft/multiline``, one at a time.

        ``BATCH +id draft/multiline <target>``, then ``PRIVMSG``/``NOTICE`` lines
        to that target tagged ``batch=id`` (``draft/multiline-concat`` joins a
        line to the one before without a newline), then ``BATCH -id``: one
        message. Over ``multiline_max_lines`` or ``multiline_max_bytes``, or a
        line that does not belong, the whole batch is refused with ``FAIL BATCH``
        and nothing is sent.
        """
        if not self.registered:
            return [self._reply("451", "You have not registered: send NICK and USER first")]
        multi = self._multiline
        if msg.command == "BATCH":
            ref = msg.params[0] if msg.params else ""
            if ref.startswith("+") and len(ref) > 1:
                kind = msg.params[1] if len(msg.params) > 1 else ""
                if kind != "draft/multiline" or len(msg.params) < 3:
                    why = "Only BATCH +id draft/multiline <target> can be sent"
                    return [self._reply("FAIL", "BATCH", "UNKNOWN_TYPE", kind or "*", why)]
                if multi is not None:
                    return [self._multiline_fail("MULTILINE_INVALID", "one batch at a time")]
                self._multiline = _Multiline(ref[1:], msg.params[2], msg)
                return []
            if ref.startswith("-") and multi is not None and ref[1:] == multi.ref:
                self._multiline = None
                return self._multiline_end(multi)
            why = "No such batch is open"
            return [self._reply("FAIL", "BATCH", "INVALID_REFTAG", ref or "*", why)]
        if multi is None or tag != multi.ref:
            why = "That batch is not open"
            return [self._reply("FAIL", "BATCH", "INVALID_REFTAG", tag or "*", why)]
        if multi.failed:
            return []
        if msg.command not in ("PRIVMSG", "NOTICE") or len(msg.params) < 2:
            return self._multiline_refuse(multi, "MULTILINE_INVALID", "only PRIVMSG or NOTICE")
        if msg.params[0] != multi.target or multi.verb not in (None, msg.command):
            return self._multiline_refuse(
                multi, "MULTILINE_INVALID_TARGET", "every line goes to the batch's target"
            )
        multi.verb = msg.command
        text = msg.params[1]
        if "draft/multiline-concat" in msg.tags and not text:
            return self._multiline_refuse(
                multi, "MULTILINE_INVALID", "draft/multiline-concat on a blank line"
            )
        if "draft/multiline-concat" in msg.tags and multi.lines:
            at = sum(len(line) for line in multi.lines) + len(multi.lines) - 1
            if at > 0:  # kept, to relay the lines as they came (ircmsg)
                multi.joins.append(at)
            multi.lines[-1] += text
        else:
            multi.size += 1 if multi.lines else 0  # the newline before it
            multi.lines.append(text)
        multi.size += len(text.encode())
        if len(multi.lines) > self.multiline_max_lines:
            limit = str(self.multiline_max_lines)
            return self._multiline_refuse(multi, "MULTILINE_MAX_LINES", limit)
        if multi.size > self.multiline_max_bytes:
            limit = str(self.multiline_max_bytes)
            return self._multiline_refuse(multi, "MULTILINE_MAX_BYTES", limit)
        return []

    def _multiline_refuse(
        self, multi: _Multiline, code: str, detail: str
    ) -> list[Incoming | Reply]:
        """Refuse the batch being received: what comes of it up to its end is dropped."""
        multi.failed = True
        multi.lines = []
        return [self._multiline_fail(code, detail)]

    def _multiline_fail(self, code: str, detail: str) -> Reply:
        why = {
            "MULTILINE_MAX_LINES": "Too many lines in one message; nothing was sent",
            "MULTILINE_MAX_BYTES": "The message is too long; nothing was sent",
        }.get(code, "That multiline batch cannot be sent; nothing was sent")
        if " " in detail:  # words, not a context token: they go with the description
            return self._reply("FAIL", "BATCH", code, f"{why} ({detail})")
        return self._reply("FAIL", "BATCH", code, detail, why)

    def _multiline_end(self, multi: _Multiline) -> list[Incoming | Reply]:
        if multi.failed:
            return []
        if multi.verb is None or not any(line.strip() for line in multi.lines):
            return [self._multiline_fail("MULTILINE_INVALID", "an empty batch")]
        body = "\n".join(multi.lines)
        opening = multi.opening
        echo = IrcMessage(multi.verb, (multi.target, body), opening.tags, opening.source)
        items = self._dispatch(echo)
        joins = tuple(multi.joins)
        if not joins:
            return items
        for item in items:
            if isinstance(item, Say | Dm) and item.ref is not None:
                self._pending[item.ref].concat = joins
        return [replace(i, concat=joins) if isinstance(i, Say | Dm) else i for i in items]

    def _redact_echo(self, pending: _Pending) -> bytes:
        """The deletion, to the one who asked for it, as soon as it is done.

        With ``draft/message-redaction`` it is ``REDACT`` now (with the reason
        given), in its turn before anything asked for later, and the hub's copy
        of the same deletion is then not shown again; without, the hub's
        ``NOTICE`` copy is all there is (with a label: ``ACK``).
        """
        assert pending.body is not None
        if "draft/message-redaction" not in self.caps:
            return format_message("ACK", source=self.server_name) if pending.label else b""
        self._redacted[int(pending.body)] = None
        while len(self._redacted) > MAX_PENDING:
            del self._redacted[next(iter(self._redacted))]
        params = [pending.target, pending.body]
        if pending.reason:
            params.append(pending.reason)
        return format_message("REDACT", *params, source=self._source(self._me()))

    def _redact(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``REDACT <target> <msgid> [:reason]`` (draft/message-redaction): a ``delete``."""
        if len(msg.params) < 2:
            usage = "Usage: REDACT <target> <msgid> [:reason]"
            return [self._reply("FAIL", "REDACT", "NEED_MORE_PARAMS", usage)]
        target, msgid = msg.params[0], msg.params[1]
        if target.startswith("#") and not self._in_channel(target):
            why = "You are not in that channel"
            return [self._reply("FAIL", "REDACT", "INVALID_TARGET", target, why)]
        if not msgid.isdigit() or int(msgid) < 1:
            why = "A message is named by its msgid, a number"
            return [self._reply("FAIL", "REDACT", "UNKNOWN_MSGID", target, msgid, why)]
        reason = msg.params[2] if len(msg.params) > 2 else None
        ref = self._remember("REDACT", target, msg, msgid)
        self._pending[ref].reason = reason
        return [Delete(id=int(msgid), reason=reason or None, ref=ref)]

    def _tagmsg(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``TAGMSG``: ``+draft/react`` / ``+draft/unreact`` with ``+draft/reply`` is a
        ``react``, ``+typing=active`` a ``typing``; other client tags are not relayed."""
        if not msg.params:
            return [self._reply("461", "TAGMSG", "Not enough parameters: TAGMSG <target>")]
        target, tags = msg.params[0], msg.tags
        emoji, on = tags.get("+draft/react"), True
        if emoji is None and "+draft/unreact" in tags:
            emoji, on = tags["+draft/unreact"], False
        if emoji is not None:
            reply_to = tags.get("+draft/reply", "")
            if not reply_to.isdigit() or int(reply_to) < 1:
                why = "A reaction names its message with +draft/reply=<msgid>"
                return [self._reply("FAIL", "TAGMSG", "INVALID_PARAMS", target, why)]
            ref = self._remember("TAGMSG", target, msg)
            if "echo-message" in self.caps and self.nick is not None:
                # Echoed, labeled, when its ack comes; the hub's copy is then not shown.
                room = target[1:] if target.startswith("#") else None
                to = None if room is not None else chinwag_nick(target)
                self._pending[ref].react = Reacted(
                    id=0, ts_ms=0, target=int(reply_to), sender=self.nick,
                    room=room, to=to, emoji=emoji, on=on,
                )  # fmt: skip
            return [React(id=int(reply_to), emoji=emoji, on=on, ref=ref)]
        if tags.get("+typing") == "active":
            if target.startswith("#"):
                return [Typing(room=target[1:])]
            return [Typing(to=chinwag_nick(target))]
        return []

    def _cid(self, ref: str) -> str:
        """A cid unique to this connection: the hub's copy of it back to us is the echo's."""
        cid = f"{self._cid_prefix}{ref}"
        self._sent[cid] = None
        if len(self._sent) > MAX_PENDING:
            del self._sent[next(iter(self._sent))]
        return cid

    # -- MONITOR (irccaps) ------------------------------------------------------------------
    def _monitor(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``MONITOR + nick,…`` / ``- nick,…`` / ``C`` / ``L`` / ``S``: the session's list
        of monitored nicks (``monitor``): ``730``/``731`` now and when they come and go."""
        params = msg.params
        sub = params[0].upper() if params else ""
        if sub in ("+", "-"):
            nicks = (
                tuple(chinwag_nick(n) for n in params[1].split(",") if n) if len(params) > 1 else ()
            )
            if not nicks:
                return [
                    self._reply(
                        "461", "MONITOR", f"Not enough parameters: MONITOR {sub} nick[,nick…]"
                    )
                ]
            ref = self._remember("MONITOR", sub, msg, ",".join(params[1].split(",")))
            if sub == "+":
                return [Monitor(add=nicks, ref=ref)]
            return [Monitor(remove=nicks, ref=ref)]
        if sub == "C":
            return [Monitor(clear=True, ref=self._remember("MONITOR", sub, msg))]
        if sub in ("L", "S"):
            return [Monitor(ref=self._remember("MONITOR", sub, msg))]
        usage = "Not enough parameters: MONITOR +|- nick[,nick…], MONITOR C, L or S"
        return [self._reply("461", "MONITOR", usage)]

    def _monitor_lines(self, code: str, nicks: Iterable[str]) -> list[bytes]:
        """``nicks`` as ``code`` lines (``730``…``732``), comma-separated, each within limits."""
        lines: list[bytes] = []
        batch: list[str] = []
        for nick in nicks:
            if batch and len(",".join([*batch, nick])) > 400:
                lines.append(self._numeric(code, ",".join(batch)))
                batch = []
            batch.append(nick)
        if batch:
            lines.append(self._numeric(code, ",".join(batch)))
        return lines

    def _render_monitor(self, event: MonitorReply, pending: _Pending | None) -> bytes:
        sub = pending.target if pending is not None else "S"
        if sub == "L":
            names = [irc_nick(n) for n in (*event.online, *event.offline)]
            lines = self._monitor_lines("732", names)
            return b"".join(lines) + self._numeric("733", "End of MONITOR list")
        lines = [
            *self._monitor_lines("730", (_user(n) for n in event.online)),
            *self._monitor_lines("731", (irc_nick(n) for n in event.offline)),
        ]
        if not lines and pending is not None and pending.label is not None:
            return format_message("ACK", source=self.server_name)
        return b"".join(lines)

    def _monitor_error(self, event: Error, pending: _Pending) -> bytes:
        if event.extra.get("reason") == "monitor_max":
            limit = str(event.extra.get("limit", self.monitor_max))
            return self._numeric("734", limit, pending.body or "*", "Monitor list is full")
        if event.code == "bad_nick":
            return self._numeric("432", pending.body or "*", f"Erroneous nickname: {event.message}")
        return self._numeric("FAIL", "MONITOR", event.code.upper(), event.message)

    # -- draft/account-registration (irccaps) ---------------------------------------------------
    def _register(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``REGISTER <account> <email> <password>``: this guest's nick becomes an account
        (``register``, as NickServ REGISTER). The account is the nick (``*`` says so); no
        email is asked for or kept."""
        params = msg.params
        if len(params) < 3:
            usage = "Usage: REGISTER <account>|* <email>|* <password>"
            return [self._reply("FAIL", "REGISTER", "NEED_MORE_PARAMS", "*", usage)]
        account, password = params[0], params[2]
        me = self._me()
        if self._account:
            why = "You are logged in to an account already"
            return [self._reply("FAIL", "REGISTER", "ALREADY_AUTHENTICATED", me, why)]
        if account != "*" and chinwag_nick(account).casefold() != (self.nick or "").casefold():
            why = "An account is named by the nick it registers: REGISTER * or your nick"
            return [self._reply("FAIL", "REGISTER", "ACCOUNT_NAME_MUST_BE_NICK", account, why)]
        return [Register(password=password, ref=self._remember("REGISTER", me, msg))]

    def _registered(self, account: str) -> bytes:
        """``REGISTER SUCCESS`` and ``900``: the session is the account's now."""
        self._account = True
        success = format_message(
            "REGISTER", "SUCCESS", account, "Account created", source=self.server_name
        )
        logged_in = self._numeric(
            "900", _user(account), account, f"You are now logged in as {account}"
        )
        return success + logged_in

    def _register_error(self, event: Error, target: str) -> bytes:
        reason = str(event.extra.get("reason") or "")
        code = {
            "nick_registered": "ACCOUNT_EXISTS",
            "weak_password": "WEAK_PASSWORD",
            "bad_nick": "BAD_ACCOUNT_NAME",
            "rate_limited": "TEMPORARILY_UNAVAILABLE",
        }.get(event.code, reason.upper() or event.code.upper())
        return self._numeric("FAIL", "REGISTER", code, target, event.message)

    def _nickserv(self, msg: IrcMessage, text: str) -> list[Incoming | Reply]:
        words = text.split()
        verb = words[0].upper() if words else ""
        if verb == "REGISTER" and len(words) >= 2:
            return [Register(password=words[1], ref=self._remember("NICKSERV", "NickServ", msg))]
        if verb == "IDENTIFY":
            notice = "You are logged in already; to change accounts, reconnect with SASL or PASS"
        else:
            notice = "Commands: REGISTER <password>; IDENTIFY works only as PASS or SASL at connect"
        return [Reply(format_message("NOTICE", self._me(), notice, source=self._nickserv_source()))]

    def _nickserv_source(self) -> str:
        return f"NickServ!NickServ@{HOST}"

    def _chathistory(self, msg: IrcMessage) -> list[Incoming | Reply]:
        """``CHATHISTORY`` (IRCv3 draft/chathistory): a page of a room or a DM.

        Points are ``msgid=<id>`` or ``timestamp=<ISO 8601>`` (ISUPPORT
        ``MSGREFTYPES=msgid,timestamp``); ``*`` for LATEST. The answer is one
        ``chathistory`` batch (plain lines without ``batch``), oldest first, at
        most :data:`MAX_HISTORY_LIMIT` messages.
        """
        params = msg.params
        sub = params[0].upper() if params else ""
        wanted = _CHATHISTORY_PARAMS.get(sub)
        if wanted is None:
            why = "CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN|TARGETS ..."
            return [self._fail_history("INVALID_PARAMS", sub or "*", why)]
        if len(params) < wanted:
            usage = _CHATHISTORY_USAGE[sub]
            return [self._fail_history("NEED_MORE_PARAMS", sub, f"Usage: CHATHISTORY {usage}")]
        count = params[wanted - 1]
        if not count.isdigit() or int(count) < 1:
            why = f"The limit is a number from 1 to {MAX_HISTORY_LIMIT}"
            return [self._fail_history("INVALID_PARAMS", count, why)]
        limit = min(int(count), MAX_HISTORY_LIMIT)
        points: list[tuple[str, int]] = []  # ("msgid", id) or ("timestamp", ms)
        for point in params[1 if sub == "TARGETS" else 2 : wanted - 1]:
            if sub == "LATEST" and point == "*":
                continue
            parsed = _history_point(point)
            if parsed is None:
                why = "Point to a message by msgid=<id> or timestamp=YYYY-MM-DDThh:mm:ss.sssZ"
                return [self._fail_history("INVALID_PARAMS", point, why)]
            points.append(parsed)
        if sub == "BETWEEN" and points[0][0] != points[1][0]:
            why = "BETWEEN takes two points of one kind: two msgids or two timestamps"
            return [self._fail_history("INVALID_PARAMS", params[3], why)]
        if sub == "TARGETS":
            if any(kind != "timestamp" for kind, _ in points):
                why = "TARGETS takes two timestamps"
                return [self._fail_history("INVALID_PARAMS", params[1], why)]
            (_, first), (_, second) = points
            ref = self._remember("TARGETS", "*", msg)
            low, high = min(first, second), max(first, second)
            return [
                HistoryTargets(
                    after_ms=low, before_ms=high, limit=limit, newest=first > second, ref=ref
                )
            ]
        target = params[1]
        if target.startswith("#"):
            room, with_ = target[1:], None
        else:
            room, with_ = None, chinwag_nick(target)
        ref = self._remember("CHATHISTORY", target, msg)
        self._pending[ref].sub = sub
        if sub == "LATEST" and not points:
            return [History(room=room, with_=with_, before=None, limit=limit, ref=ref)]
        bounds: dict[str, int] = {}
        newest = sub in ("BEFORE", "LATEST")  # the messages nearest the point
        if sub == "BETWEEN":
            (kind, first), (_, second) = points
            newest = first > second  # from the later end: those nearest the first
            bounds = {
                **_bound(kind, min(first, second), True),
                **_bound(kind, max(first, second), False),
            }
        elif sub == "AROUND":
            kind, at = points[0]
            bounds = {"around" if kind == "msgid" else "around_ms": at}
        else:
            kind, at = points[0]
            bounds = _bound(kind, at, sub != "BEFORE")
        command = HistoryRange(
            room=room, with_=with_, limit=limit, newest=newest, ref=ref, **bounds
        )
        return [command]

    def _targets(self, heads: tuple[Message, ...]) -> bytes:
        """``CHATHISTORY TARGETS`` answered: one line per conversation, oldest first,
        in a ``draft/chathistory-targets`` batch (plain lines without ``batch``)."""
        lines = []
        for m in heads:
            if m.room is not None:
                target = f"#{m.room}"
            else:
                target = irc_nick((m.to if m.sender == self.nick else m.sender) or "*")
            lines.append(
                format_message(
                    "CHATHISTORY", "TARGETS", target, _time_tag(m.ts_ms), source=self.server_name
                )
            )
        if "batch" not in self.caps:
            return b"".join(lines)
        self._serial += 1
        ref = f"t{self._serial}"
        start = format_message(
            "BATCH", f"+{ref}", "draft/chathistory-targets", source=self.server_name
        )
        inner = [b"@batch=" + ref.encode() + b" " + line for line in lines]
        return start + b"".join(inner) + format_message("BATCH", f"-{ref}", source=self.server_name)

    def _fail_history(self, code: str, context: str, why: str) -> Reply:
        return Reply(self._numeric("FAIL", "CHATHISTORY", code, context, why))

    def _history_batch(self, target: str, messages: tuple[Message, ...]) -> bytes:
        """A page of history: one ``chathistory`` batch, or plain lines without ``batch``."""
        # A redacted message is gone from history (draft/message-redaction).
        messages = tuple(m for m in messages if not m.deleted)
        if "batch" not in self.caps:
            return b"".join(self._message_lines(m) for m in messages)
        self._serial += 1
        ref = f"h{self._serial}"
        start = format_message("BATCH", f"+{ref}", "chathistory", target, source=self.server_name)
        body = b"".join(self._message_lines(m, batch=ref) for m in messages)
        return start + body + format_message("BATCH", f"-{ref}", source=self.server_name)

    # -- output -------------------------------------------------------------------------
    def render(self, event: Outgoing) -> bytes:
        """The IRC lines of a server event for this connection (``b""`` if it has none).

        Events that come before registration is over (SASL logged in, ``CAP END``
        not sent yet) are held and written after ``001``.

        Args:
            event: what the hub says.
        """
        if self._hidden and event.ref is None and getattr(event, "room", None) in self._hidden:
            # ircmsg: the lobby not JOINed (auto_join off): nothing of it is shown.
            self._last_id = max(self._last_id, getattr(event, "id", 0))
            return b""
        pending = self._pending.pop(event.ref, None) if event.ref is not None else None
        if type(event) is Error and event.ref is not None:
            self._sent.pop(self._cid_prefix + event.ref, None)  # refused: no copy will come
        wire = self._render(event, pending)
        if pending is not None and pending.before:
            wire = pending.before + wire
        if pending is not None and pending.label is not None and wire:
            wire = self._labeled(wire, pending.label)
        if self._replay_batch is not None and not (type(event) is Message and event.replay):
            wire = self._end_replay_batch() + wire
        if not self.registered and not isinstance(event, (Welcome, Error, Ping, Bye)):
            self._held.append(wire)
            return b""
        return wire

    def shared(self, events: Iterable[Outgoing]) -> SharedRenderer | None:
        """The shared renderer, if this client's lines for ``events`` are its lines.

        They are for fan-out events (no ``ref``) that read the same for everyone
        (:class:`SharedRenderer`), once registration is over and no replay batch
        is open: not the copy of a message this connection sent (its echo is the
        ``echo-message`` one), not a backlog copy, not one's own presence, not a DM
        typing notice, edit or deletion (their target is the reader). When they
        are, they count as sent (the cursor's ``PING`` names the newest). Else
        ``None``: :meth:`render` writes them for this client alone.

        Args:
            events: the events of one frame, in order.
        """
        if not self.registered or self._replay_batch is not None:
            return None
        if self._hidden and any(getattr(e, "room", None) in self._hidden for e in events):
            return None  # render() leaves out what is of a hidden lobby (ircmsg)
        newest = self._last_id
        for event in events:
            match event:
                case Message(cid=None, replay=False, ref=None) if (
                    event.room is not None or event.to is not None
                ):
                    newest = max(newest, event.id)
                case Presence(ref=None, quit=None) if event.nick != self.nick and (
                    event.event != "join"
                    or not self._quits
                    or event.nick.casefold() not in self._quits
                ):
                    pass  # a quitter's join back is this connection's: it forgets the quit
                case TypingNotice(room=str(), ref=None):
                    pass
                case Deleted(room=str(), ref=None) if event.target not in self._redacted:
                    newest = max(newest, event.id)
                case Edited(room=str(), ref=None):
                    newest = max(newest, event.id)
                case Reacted(room=str(), ref=None) if event.id not in self._reacted:
                    newest = max(newest, event.id)
                case _:
                    return None
        self._last_id = newest
        if self._shared is None:  # forgotten whenever the capabilities change
            self._shared = shared_renderer(self.caps)
        return self._shared

    def _replayed(self, e: Message) -> bytes:
        """A backlog message inside a ``chathistory`` batch of its conversation.

        Consecutive messages of one room or one person share a batch; the
        batch ends when the conversation changes or anything else is sent.
        """
        target = (
            f"#{e.room}"
            if e.room is not None
            else irc_nick((e.to if e.sender == self.nick else e.sender) or "*")
        )
        out = b""
        if self._replay_batch is not None and self._replay_batch[1] != target:
            out = self._end_replay_batch()
        if self._replay_batch is None:
            self._serial += 1
            ref = f"r{self._serial}"
            self._replay_batch = (ref, target)
            out += format_message(
                "BATCH", f"+{ref}", "chathistory", target, source=self.server_name
            )
        return out + self._message_lines(e, batch=self._replay_batch[0])

    def _end_replay_batch(self) -> bytes:
        assert self._replay_batch is not None
        ref, self._replay_batch = self._replay_batch[0], None
        return format_message("BATCH", f"-{ref}", source=self.server_name)

    def _labeled(self, wire: bytes, label: str) -> bytes:
        lines = wire.split(b"\r\n")[:-1]
        tag = f"label={escape_tag_value(label)}".encode()
        if len(lines) == 1 or _one_batch(lines):  # a batch already: the label on its start
            line = lines[0]
            rest = b"".join(ln + b"\r\n" for ln in lines[1:])
            if line.startswith(b"@"):
                return b"@" + tag + b";" + line[1:] + b"\r\n" + rest
            return b"@" + tag + b" " + line + b"\r\n" + rest
        if "batch" not in self.caps:
            return wire  # several lines can carry one label only in a batch
        start = format_message("BATCH", "+L", "labeled-response", source=self.server_name)
        start = b"@" + tag + b" " + start
        inner = [
            (b"@batch=L;" + ln[1:] if ln.startswith(b"@") else b"@batch=L " + ln) + b"\r\n"
            for ln in lines
        ]
        return start + b"".join(inner) + format_message("BATCH", "-L", source=self.server_name)

    def _message_lines(
        self, e: Message, batch: str | None = None, verb: str | None = None
    ) -> bytes:
        self._last_id = max(self._last_id, e.id)
        account = irc_nick(e.sender) if e.account else None
        tags = _line_tags(self.caps, e.ts_ms, e.id, batch, account, e.bot)
        target = f"#{e.room}" if e.room is not None else (irc_nick(e.to) if e.to else self._me())
        body = e.body
        if e.replay and "server-time" not in self.caps:
            body = f"[{_time_tag(e.ts_ms)[:16].replace('T', ' ')} UTC] {body}"
        multi = f"ml{e.id}" if "draft/multiline" in self.caps else None
        verb = verb or ("NOTICE" if e.notice else "PRIVMSG")
        joins = e.concat if body is e.body else ()  # not with a replay's time before it
        return _text_lines(verb, target, _user(e.sender), body, tags, multi, joins)

    def _revision(self, e: Edited | Deleted | Reacted) -> bytes:
        """An edit, a deletion or a reaction, to the conversation as this client names it."""
        self._last_id = max(self._last_id, e.id)
        who = e.by if isinstance(e, Deleted) else e.sender
        if e.room is not None:
            target = f"#{e.room}"
        elif who == self.nick:
            target = irc_nick(e.to) if e.to else self._me()
        else:
            target = self._me()
        return _revision_lines(e, self.caps, target)

    def _render(self, event: Outgoing, pending: _Pending | None) -> bytes:
        match event:
            case Message():
                if event.cid is not None and event.cid in self._sent and not self._to_me(event):
                    del self._sent[event.cid]
                    self._last_id = max(self._last_id, event.id)
                    return b""
                if event.deleted:  # redacted before it was replayed: gone, as from history
                    self._last_id = max(self._last_id, event.id)
                    return b""
                if event.replay and "batch" in self.caps:
                    return self._replayed(event)
                return self._message_lines(event)
            case Ack() if pending is not None and pending.command == "REDACT":
                return self._redact_echo(pending)
            case Ack() if pending is not None and pending.react is not None:
                self._reacted[event.id] = None
                while len(self._reacted) > MAX_PENDING:
                    del self._reacted[next(iter(self._reacted))]
                reacted = replace(pending.react, id=event.id, ts_ms=event.ts_ms)
                return _revision_lines(reacted, self.caps, pending.target)
            case Ack() if (
                event.away is not None
                and pending is not None
                and pending.command == "PRIVMSG"
                and not pending.target.startswith("#")
            ):
                # A DM to someone away: 301 after the echo (RFC 2812 3.3.1).
                away = self._numeric("301", pending.target, event.away)
                return self._render(replace(event, away=None), pending) + away
            case Ack():
                if (
                    pending is None
                    or pending.body is None
                    or pending.command not in ("PRIVMSG", "NOTICE")  # REDACT keeps its msgid
                    or "echo-message" not in self.caps
                ):
                    if pending is not None and pending.label is not None:
                        return format_message("ACK", source=self.server_name)
                    return b""
                me = self._me()
                target = pending.target
                room = target[1:] if target.startswith("#") else None
                echo = Message(
                    id=event.id,
                    ts_ms=event.ts_ms,
                    sender=me,
                    room=room,
                    to=None if room is not None else target,
                    body=pending.body,
                    account=self._account,
                    bot=self._bot,
                    concat=pending.concat,
                )
                return self._message_lines(echo, verb=pending.command)
            case Presence():
                return self._presence(event)
            case TypingNotice():
                if "message-tags" not in self.caps:
                    return b""
                target = f"#{event.room}" if event.room is not None else self._me()
                return format_message(
                    "TAGMSG", target, source=self._source(event.sender), tags={"+typing": "active"}
                )
            case Ok():
                return self._render_ok(pending)
            case Welcome():
                return self._render_welcome(event, pending)
            case WhoReply():
                return self._render_who(event, pending)
            case RoomsReply() if pending is not None and pending.command in ("TOPIC", "MODE"):
                wanted = pending.target.casefold()
                if any(f"#{r.name}".casefold() == wanted for r in event.rooms):
                    return self._numeric("442", pending.target, "You're not on that channel")
                return self._numeric("403", pending.target, "No such channel")
            case RoomsReply():
                only = None if pending is None or pending.target == "*" else pending.target
                lines = [self._numeric("321", "Channel", "Users  Name")]
                lines += [
                    self._numeric("322", f"#{r.name}", str(r.online), "")
                    for r in event.rooms
                    if self._listed(r, only)
                ]
                lines.append(self._numeric("323", "End of /LIST"))
                return b"".join(lines)
            case HistoryReply():
                if event.room is not None:
                    target = f"#{event.room}"
                else:
                    target = irc_nick(event.with_ or "*")
                return self._history_batch(target, event.messages)
            case CaughtUp():
                if event.missed == 0:
                    return b""
                more = " (more are in /CHATHISTORY)" if event.truncated else ""
                text = f"You missed {event.missed} messages while away; they are above{more}"
                notice = format_message("NOTICE", self._me(), text, source=self.server_name)
                return notice + self._ping()
            case Error():
                return self._render_error(event, pending)
            case Ping():
                return self._ping()
            case Pong():
                return format_message(
                    "PONG", self.server_name, self.server_name, source=self.server_name
                )
            case Bye():
                # Issue 16: a server ban or an admin's kick says so (it was "goodbye").
                why = _BYE_WORDS.get(event.reason or "", "goodbye")
                return format_message("ERROR", f"Closing link: {why}")
            case Reacted() if event.id in self._reacted:
                del self._reacted[event.id]  # echoed when it was done
                self._last_id = max(self._last_id, event.id)
                return b""
            case Deleted() if event.target in self._redacted:
                del self._redacted[event.target]  # echoed when it was done
                self._last_id = max(self._last_id, event.id)
                return b""
            case Edited() | Deleted() | Reacted():
                return self._revision(event)
            case Results() if pending is not None and pending.command == "TARGETS":
                return self._targets(event.messages)
            case ReadMarker() if "draft/read-marker" in self.caps:
                return self._render_markread(event)
            case ReadMarker() | Receipt() | Results() | BlocksReply():
                return b""  # not there yet on IRC (docs/irc.md); never asked for by IRC commands
            case RoomInfo():
                return self._room_info(event)
            case SettingsReply():
                return b""  # issue 15: no IRC command asks for it; a change elsewhere is silent
            case StatsReply():
                return self._lusers(event)
            case WhoWasReply():
                return self._whowas_lines(event, pending)
            case WhoisReply():
                return self._render_whois(event, pending)
            case WallopsNotice():
                return format_message("WALLOPS", event.text, source=self._source(event.sender))
            case BansReply():
                return self._ban_list(event)
            case MonitorReply():
                return self._render_monitor(event, pending)
            case AccountNotice():
                if "account-notify" not in self.caps or event.nick == self.nick:
                    return b""
                if event.monitor and "extended-monitor" not in self.caps:
                    return b""
                return format_message("ACCOUNT", irc_nick(event.nick), source=_user(event.nick))
            case RealNameNotice():
                if "setname" not in self.caps or event.nick == self.nick:
                    return b""
                if event.monitor and "extended-monitor" not in self.caps:
                    return b""
                return format_message("SETNAME", event.real_name, source=self._source(event.nick))
            case MonitorNotice():
                if event.online:
                    return self._numeric("730", _user(event.nick))
                return self._numeric("731", irc_nick(event.nick))
            case AwayNotice():
                if "away-notify" not in self.caps or event.nick == self.nick:
                    return b""
                if event.monitor and "extended-monitor" not in self.caps:
                    return b""  # only for a monitored nick: extended-monitor (irccaps)
                params = (event.message,) if event.message is not None else ()
                return format_message("AWAY", *params, source=self._source(event.nick))

    def _to_me(self, e: Message) -> bool:
        """A DM to oneself: its delivery is shown beside its echo (as other servers do)."""
        return e.room is None and e.to is not None and e.to == e.sender == self.nick

    def _lusers(self, e: StatsReply) -> bytes:
        """``LUSERS``: ``251`` tells the invisible (``+i``) people of this node from the
        rest, ``252`` this node's operators (when there are some); no maxima are kept."""
        visible = e.online - e.invisible
        lines = [
            self._numeric(
                "251", f"There are {visible} users and {e.invisible} invisible on {e.nodes} servers"
            ),
        ]
        if e.operators:
            lines.append(self._numeric("252", str(e.operators), "operator(s) online"))
        lines += [
            self._numeric("254", str(e.rooms), "channels formed"),
            self._numeric("255", f"I have {e.here} clients and {e.nodes - 1} servers"),
            self._numeric("265", f"Current local users: {e.here}"),
            self._numeric("266", f"Current global users: {e.online}"),
        ]
        return b"".join(lines)

    def _names(self, channel: str, *, batched: bool = False) -> _Pending:
        """Ask the hub who is in ``channel``: a JOIN is followed by its NAMES list.

        With ``draft/read-marker``, its ``MARKREAD`` comes first (before ``366``),
        or, when the JOIN and its NAMES go out as one labeled batch (``batched``),
        right after that batch, so that it never comes before the JOIN.
        """
        marker = "draft/read-marker" in self.caps
        if marker and not batched:
            ref = self._remember("MARKREAD", channel, None)
            self.followups.append(ReadQuery(room=channel[1:], ref=ref))
        ref = self._remember("NAMES", channel, None)
        self.followups.append(Who(room=channel[1:], ref=ref))
        names = self._pending[ref]
        if marker and batched:
            ref = self._remember("MARKREAD", channel, None)
            self.followups.append(ReadQuery(room=channel[1:], ref=ref))
        return names

    def _ping(self) -> bytes:
        """A PING whose PONG tells that the client read every message sent before it.

        For an account, its token names the newest message sent (``seen-<id>``):
        the answer moves the device's cursor there (IRC has no ``seen`` of its own).
        """
        token = f"seen-{self._last_id}" if self._account and self._last_id else self.server_name
        return format_message("PING", token, source=self.server_name)

    def _own_join(self, channel: str) -> bytes:
        """This client's own ``JOIN`` of ``channel`` (extended-join: its account, real name)."""
        return _join_line(channel, self._me(), self.caps, self._account, self._real_name)

    def _render_ok(self, pending: _Pending | None) -> bytes:
        if pending is None:
            return b""
        me = self._me()
        if pending.command == "JOIN":
            if pending.target.casefold() in self._channels:
                # Still in it: the PART sent just before was refused (the lobby with
                # irc_auto_join); as any JOIN of a channel one is in, nothing.
                return format_message("ACK", source=self.server_name) if pending.label else b""
            self._channels.add(pending.target.casefold())
            self._hidden.discard(pending.target[1:].lower())
            batched = pending.label is not None and "batch" in self.caps
            names = self._names(pending.target, batched=batched)
            line = self._own_join(pending.target)
            if batched:
                # A labeled JOIN is answered by one batch: the JOIN with its NAMES.
                names.label, names.before = pending.label, pending.before + line
                pending.label, pending.before = None, b""
                return b""
            return line
        if pending.command == "PART":
            self._channels.discard(pending.target.casefold())
            self._infos.pop(pending.target.casefold(), None)
            why = (pending.body,) if pending.body else ()
            return format_message("PART", pending.target, *why, source=self._source(me))
        if pending.command == "INVITE":
            return self._numeric("341", irc_nick(chinwag_nick(pending.nick or "*")), pending.target)
        if pending.command == "AWAY":
            if pending.body:
                return self._numeric("306", "You have been marked as being away")
            return self._numeric("305", "You are no longer marked as being away")
        if pending.command == "REGISTER":
            return self._registered(pending.target)
        if pending.command == "BOTMODE":
            self._bot = pending.body == "+B"
            return format_message("MODE", me, pending.body or "", source=self._source(me))
        if pending.command == "SETNAME":
            self._real_name = pending.body
            if "setname" in self.caps:
                return format_message("SETNAME", pending.body or "", source=self._source(me))
        if pending.command == "NICKSERV":
            self._account = True  # the session is the account's now (irccaps)
            text = f"{me} is registered: from now on, log in with SASL or PASS"
            return format_message("NOTICE", me, text, source=self._nickserv_source())
        if pending.command in ("OPER", "UMODE"):
            return self._user_mode_ok(pending)
        if pending.label is not None:
            return format_message("ACK", source=self.server_name)
        return b""

    def _render_who(self, event: WhoReply, pending: _Pending | None) -> bytes:
        channel = f"#{event.room}"
        if pending is not None and pending.command == "WHO":
            multi = "multi-prefix" in self.caps
            rows = [self._who_row(channel, u, _here(u) + _prefixes(u, multi)) for u in event.users]
            return b"".join(rows) + self._numeric("315", channel, "End of /WHO list")
        lines: list[bytes] = []
        names: list[str] = []
        full = "userhost-in-names" in self.caps
        info = self._infos.get(channel.casefold())
        hidden = info is not None and (info.private or info.secret)
        symbol = "@" if hidden else "="  # unlisted (private, secret): @
        multi = "multi-prefix" in self.caps
        for user in event.users:
            name = self._source(user.nick) if full else irc_nick(user.nick)
            name = _prefixes(user, multi) + name
            candidate = " ".join([*names, name])
            if names and len(candidate) > 400:
                lines.append(self._numeric("353", symbol, channel, " ".join(names)))
                names = []
            names.append(name)
        if names:
            lines.append(self._numeric("353", symbol, channel, " ".join(names)))
        return b"".join(lines) + self._numeric("366", channel, "End of /NAMES list")

    def _render_welcome(self, event: Welcome, pending: _Pending | None) -> bytes:
        self._hello_ref = None
        self._account = event.account
        self._bot = event.bot
        if pending is not None and pending.command == "AUTHENTICATE":
            self.nick = event.nick
            account = irc_nick(event.nick)
            self._welcome = event
            source = _user(account)
            logged_in = f"You are now logged in as {account}"
            out = format_message(
                "900", account, source, account, logged_in, source=self.server_name
            )
            out += format_message(
                "903", account, "SASL authentication successful", source=self.server_name
            )
            if not self._cap_negotiating and self._user is not None:
                out += self._finish_registration(event)
            return out
        self.nick = event.nick
        return self._finish_registration(event)

    def _finish_registration(self, event: Welcome) -> bytes:
        self.registered = True
        self._welcome = None
        me = self._me()
        name = self.server_name
        isupport = (
            "CASEMAPPING=ascii",
            "CHANMODES=b,k,l,imnst",
            "CHANTYPES=#",
            _CLIENT_TAG_DENY,
            f"CHATHISTORY={MAX_HISTORY_LIMIT}",
            "MSGREFTYPES=msgid,timestamp",
            f"AWAYLEN={self.away_max_length}",
            f"MONITOR={self.monitor_max}",
            f"NAMELEN={self.real_name_max}",
            "BOT=B",
            "NETWORK=chinwag",
            "PREFIX=(ov)@+",
            "UTF8ONLY",
        )
        lines = [
            self._numeric("001", f"Welcome to {event.server_name}, {me}"),
            self._numeric("002", f"Your host is {name}, running chinwag {event.server_version}"),
            self._numeric("003", "This server keeps what you missed while away"),
            self._numeric("004", name, event.server_version, "iowB", "biklmnostv"),
            self._numeric("005", *isupport, "are supported by this server"),
        ]
        if event.motd:
            lines.append(self._numeric("375", f"- {name} Message of the day -"))
            lines += [self._numeric("372", f"- {row}") for row in event.motd.splitlines() or [""]]
            lines.append(self._numeric("376", "End of /MOTD command"))
        else:
            lines.append(self._numeric("422", "MOTD File is missing"))
        for room in event.rooms:
            if room == _LOBBY and not self.auto_join:
                self._hidden.add(room)  # not shown until JOINed (ircmsg)
                continue
            channel = f"#{room}"
            lines.append(self._own_join(channel))
            self._channels.add(channel.casefold())
            self._names(channel)
        held, self._held = self._held, []
        if self._real_name is not None and self._real_name != self._hello_real_name:
            # USER came after SASL had logged in: the session's real name is set now.
            ref = self._remember("USER", "*", None)
            self.followups.append(SetName(real_name=self._real_name, quiet=True, ref=ref))
        return b"".join(lines) + b"".join(held)

    def _render_error(self, event: Error, pending: _Pending | None) -> bytes:
        command = pending.command if pending is not None else "*"
        target = pending.target if pending is not None else "*"
        code, text = event.code, event.message
        if command == "NOTICE":
            return b""  # a NOTICE never gets an automatic reply (RFC 2812 3.3.2)
        if pending is not None and pending.userhost is not None:
            return self._userhost_part(pending, None)
        if pending is not None and command in ("OPER", "KILL", "WALLOPS"):
            return self._operator_error(event, pending)
        if command == "WHOIS":  # refused (the rate limit): nothing learned
            return self._numeric("FAIL", "WHOIS", code.upper(), text) + self._numeric(
                "318", target, "End of /WHOIS list"
            )
        if command == "UMODE":
            return self._numeric("FAIL", "MODE", code.upper(), text)
        if command == "AWAY":
            return self._numeric("FAIL", "AWAY", code.upper(), text)
        if command == "MONITOR" and pending is not None:
            return self._monitor_error(event, pending)
        if command == "BOTMODE":
            return self._numeric("FAIL", "MODE", code.upper(), text)
        if command == "REGISTER":
            return self._register_error(event, target)
        if command == "SETNAME":
            reason = "INVALID_REALNAME" if event.extra.get("reason") == "real_name" else ""
            return self._numeric("FAIL", "SETNAME", reason or code.upper(), text)
        if command == "MARKREAD":
            reason = "INVALID_TARGET" if code in ("not_member", "bad_room", "no_such_user") else ""
            return self._numeric("FAIL", "MARKREAD", reason or code.upper(), target, text)
        if command in ("NAMES", "WHO"):
            # Nothing to list: the end of the list, as for an empty channel.
            end = "366" if command == "NAMES" else "315"
            return self._numeric(end, target, f"End of /{command} list")
        if command in ("NICK", "AUTHENTICATE"):
            self._hello_ref = None
            if command == "AUTHENTICATE":
                self._sasl_nick = None
                return self._numeric("904", f"SASL authentication failed: {text}")
            if code in ("nick_taken", "nick_registered", "password_required"):
                return self._numeric("433", target, f"Nickname is already in use: {text}")
            if code == "bad_nick":
                return self._numeric("432", target, text)
            if code == "bad_password":
                return self._numeric("464", f"Password incorrect: {text}")
            return self._numeric("FAIL", "NICK", code.upper(), text)
        if command == "REDACT":
            # draft/message-redaction's codes: the message is unknown, or not one's to delete.
            msgid = pending.body if pending is not None and pending.body is not None else "*"
            reason = "REDACT_FORBIDDEN" if code == "forbidden" else "UNKNOWN_MSGID"
            if code not in ("forbidden", "not_found"):
                reason = code.upper()
            return self._numeric("FAIL", "REDACT", reason, target, msgid, text)
        if command == "CHATHISTORY" and code in ("not_member", "bad_room"):
            # A channel one is not in, or that is no room (draft/chathistory's code).
            assert pending is not None
            why = f"You are not in {target}; JOIN it to read its history"
            return self._numeric("FAIL", "CHATHISTORY", "INVALID_TARGET", pending.sub, target, why)
        if command == "CHATHISTORY" and code == "no_such_user":
            # Nobody by that name: a conversation with nothing in it.
            return self._history_batch(target, ())
        if pending is not None and command in ("TOPIC", "MODE", "KICK", "INVITE"):
            return self._moderation_error(event, pending)
        if command == "JOIN":
            # The TOPIC or MODE queries sent right after it: not on that channel.
            waiting = self._info_wanted.pop(target.casefold(), [])
            notice = b"".join(
                self._numeric("442", target, "You're not on that channel") for _ in waiting
            )
            if code == "bad_room":
                return self._numeric("403", target, text) + notice
            if code in _JOIN_ERRORS:  # ircmodes: a key, a member limit
                numeric = _JOIN_ERRORS[code]
                return self._numeric(numeric, target, f"Cannot join channel: {text}") + notice
            if code == "forbidden":
                # A private room without an invite, a ban, a room cap.
                numeric = _JOIN_REFUSALS.get(str(event.extra.get("reason")), "405")
                return self._numeric(numeric, target, f"Cannot join channel: {text}") + notice
            return self._numeric("FAIL", "JOIN", code.upper(), text) + notice
        if code == "no_such_user":
            return self._numeric("401", target, text)
        if code == "bad_room":
            return self._numeric("403", target, text)
        if code == "not_member":
            return self._numeric("442" if command == "PART" else "404", target, text)
        if command in ("PRIVMSG", "NOTICE") and code == "forbidden" and target.startswith("#"):
            return self._numeric("404", target, f"Cannot send to channel: {text}")
        if command == "NICKSERV":
            return format_message("NOTICE", self._me(), text, source=self._nickserv_source())
        return self._numeric("FAIL", command, code.upper(), text)
