"""The JSON Lines codec of protocol v1: bytes in, events out, and frames to bytes.

:class:`ServerCodec` is sans-I/O, like the protocol objects of websockets and h11:
the connection feeds it whatever it read and gets back commands from
:mod:`chinwag.protocol.events`. It never raises on the peer's input. A junk line
becomes :class:`~chinwag.protocol.events.Rejected` (answer with an error, keep
going), a malformed ``typing``/``seen``/``pong`` becomes
:class:`~chinwag.protocol.events.Dropped` (they never get replies), and a line
over the limit becomes :class:`~chinwag.protocol.events.Fatal` (send the error,
then close).

Decoding is strict I-JSON (RFC 7493), as protocol v1 §1 requires. Python's
``json.loads`` on its own is not: it accepts ``NaN`` and duplicate keys, lets lone
surrogates through (they break the UTF-8 storage later), and raises
``RecursionError`` on deep nesting. Each of those is refused here as ``bad_frame``.

:class:`ClientCodec` is the client's side: it frames server output with a larger
limit and hands back plain dictionaries.
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime, timedelta
from typing import Any, Final

from chinwag.protocol.events import (
    AccountNotice,
    Ack,
    Away,
    AwayNotice,
    BansReply,
    Block,
    BlocksReply,
    Bye,
    CaughtUp,
    ClientCommand,
    Delete,
    Deleted,
    Dm,
    Dropped,
    Edit,
    Edited,
    Error,
    Fatal,
    GetSettings,
    Grant,
    Hello,
    History,
    HistoryReply,
    Incoming,
    Invisible,
    Invite,
    Join,
    Leave,
    ListBans,
    ListBlocks,
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
    Passwd,
    Ping,
    Pong,
    Presence,
    React,
    Reacted,
    Read,
    ReadMarker,
    RealNameNotice,
    Receipt,
    Receipts,
    ReceiptState,
    Register,
    Rejected,
    Rename,
    Results,
    RoomInfo,
    RoomSet,
    RoomsReply,
    Say,
    Search,
    Seen,
    SetBot,
    SetName,
    SettingsReply,
    Stats,
    StatsReply,
    Typing,
    TypingNotice,
    Unblock,
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

__all__ = [
    "DEFAULT_CLIENT_MAX_LINE",
    "DEFAULT_MAX_LINE",
    "MAX_CID_LEN",
    "MAX_DEPTH",
    "MAX_REF_LEN",
    "MAX_SAFE_INTEGER",
    "ClientCodec",
    "ProtocolError",
    "ServerCodec",
    "decode_line",
    "encode",
    "iso_ts",
    "render",
    "to_data",
]

DEFAULT_MAX_LINE: Final = 65_536
"""Largest client frame in bytes, ``\\r\\n`` included (protocol v1 §1)."""

DEFAULT_CLIENT_MAX_LINE: Final = 16 * 1024 * 1024
"""Largest server frame a client accepts, in bytes (protocol v1 §1: at least 16 MiB)."""

MAX_DEPTH: Final = 32
"""Deepest accepted nesting of arrays and objects; ``{}`` has depth 1."""

MAX_SAFE_INTEGER: Final = 2**53
"""Integers beyond ±this cannot be represented exactly by an IEEE double."""

MAX_REF_LEN: Final = 64
MAX_CID_LEN: Final = 64

# Frame types that never get a reply: when malformed they are dropped silently.
_SILENT: Final = frozenset({"typing", "seen", "pong"})

_DEVICE_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")

# A JSON string (an unterminated one runs to the end of the line, so that this
# never backtracks: the scan stays linear) or a bracket.
_TOKEN_RE: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)

# Lone surrogates can only come from \uXXXX escapes (the text itself was
# decoded as strict UTF-8), so parsed values need checking only when the raw
# line holds an escape in the surrogate range.
_SURROGATE_ESCAPE_RE: Final = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE_RE: Final = re.compile("[\\ud800-\\udfff]")

# Required fields of each known type, for naming the culprit in ``bad_request``.
_REQUIRED: Final[dict[str, tuple[tuple[str, type], ...]]] = {
    "hello": (("proto", int), ("nick", str)),
    "say": (("room", str), ("body", str)),
    "dm": (("to", str), ("body", str)),
    "join": (("room", str),),
    "leave": (("room", str),),
    "who": (("room", str),),
    "register": (("password", str),),
    "passwd": (("old", str), ("new", str)),
    "seen": (("upto", int),),
    "edit": (("id", int), ("body", str)),
    "delete": (("id", int),),
    "react": (("id", int), ("emoji", str)),
    "search": (("q", str),),
    "read": (("upto", int),),
    "receipts": (("on", bool),),
    "block": (("nick", str),),
    "unblock": (("nick", str),),
    "room": (("room", str),),
    "invite": (("room", str), ("nick", str)),
    "kick": (("nick", str),),
    "ban": (("nick", str),),
    "unban": (("nick", str),),
    "mute": (("room", str), ("nick", str)),
    "unmute": (("room", str), ("nick", str)),
    "voice": (("room", str), ("nick", str)),  # issue 19 (ircroles)
    "unvoice": (("room", str), ("nick", str)),
    "grant": (("nick", str), ("role", str)),
    "whowas": (("nick", str),),  # issue 19 (ircreg)
    "bans": (("room", str),),  # issue 19 (ircwho)
    "whois": (("mask", str),),  # issue 19 (ircoper)
    "wallops": (("text", str),),
    "wallops_listen": (("on", bool),),
    "invisible": (("on", bool),),
    "setname": (("real_name", str),),  # irccaps
    "bot": (("on", bool),),
    "nick": (("nick", str),),  # ircmsg
}

_JSON_KIND: Final[dict[type, str]] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


# --- strict JSON ---------------------------------------------------------------


class _Refused(ValueError):
    """The line breaks a rule of strict JSON; the message says which."""


def _short(text: str, limit: int = 40) -> str:
    """Return ``repr`` of ``text`` cut to ``limit`` characters, for error messages."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"duplicate key {_short(key)}")
            seen.add(key)
    return obj


def _parse_int(digits: str) -> int:
    value = int(digits)  # over 4,300 digits: ValueError, refused like any bad JSON
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise _Refused("integer outside ±2**53")
    return value


def _parse_float(digits: str) -> float:
    value = float(digits)
    if not math.isfinite(value):  # 1e400 would silently become inf
        raise _Refused("number out of range")
    return value


def _parse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_object_pairs,
    parse_int=_parse_int,
    parse_float=_parse_float,
    parse_constant=_parse_constant,
)

_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

# JSON allows these raw inside strings, but str.splitlines() and JavaScript
# before ES2019 treat them as line breaks; escaping them costs nothing.
_LINE_BREAKS: Final = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _deeper_than(text: str, max_depth: int) -> bool:
    """Whether brackets outside strings nest deeper than ``max_depth``.

    This runs before the JSON parser, so that the parser can never recurse deep
    enough to raise ``RecursionError``. On invalid JSON it may over-count, never
    under-count the nesting the parser would reach.
    """
    depth = 0
    for match in _TOKEN_RE.finditer(text):
        char = text[match.start()]
        if char == '"':
            continue
        if char in "[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE_RE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(item) for item in value)
    return False


def _parse_strict(line: bytes) -> Any:
    """Parse one line as I-JSON (RFC 7493) with nesting at most :data:`MAX_DEPTH`.

    Raises:
        _Refused: the line is not strict JSON; the message says why.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refused(f"not valid UTF-8 (at byte {exc.start})") from None
    # Counting is cheap; the exact scan runs only for lines with many brackets.
    if line.count(b"[") + line.count(b"{") > MAX_DEPTH and _deeper_than(text, MAX_DEPTH):
        raise _Refused(f"nested deeper than {MAX_DEPTH}")
    try:
        value = _DECODER.decode(text)
    except _Refused:
        raise
    except RecursionError:  # unreachable after the depth check; kept as a backstop
        raise _Refused(f"nested deeper than {MAX_DEPTH}") from None
    except ValueError as exc:
        raise _Refused(f"not JSON: {exc}") from None
    if _SURROGATE_ESCAPE_RE.search(line) is not None and _has_surrogate(value):
        raise _Refused("lone surrogate in a string")
    return value


# --- fields --------------------------------------------------------------------


class _BadField(ValueError):
    """A field of a known frame type is missing or ill-typed."""


def _is_int(value: object) -> bool:
    # bool is a subclass of int, but true is not a number on the wire.
    return isinstance(value, int) and not isinstance(value, bool)


def _opt_str(obj: dict[str, Any], key: str, max_len: int | None = None) -> str | None:
    value = obj.get(key)
    if value is None:  # absent or null: both mean "not given"
        return None
    if not isinstance(value, str):
        raise _BadField(f"field {key!r} must be a string")
    if max_len is not None and len(value) > max_len:
        raise _BadField(f"field {key!r} must be at most {max_len} characters")
    return value


def _opt_int(obj: dict[str, Any], key: str, minimum: int) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not _is_int(value):
        raise _BadField(f"field {key!r} must be an integer")
    if value < minimum:
        raise _BadField(f"field {key!r} must be at least {minimum}")
    return int(value)


def _what_is_wrong(obj: dict[str, Any], fields: tuple[tuple[str, type], ...]) -> str:
    for name, kind in fields:
        value = obj.get(name)
        if value is None:
            return f"missing field {name!r}"
        if kind is int and not _is_int(value):
            return f"field {name!r} must be an integer"
        if kind is str and not isinstance(value, str):
            return f"field {name!r} must be a string"
        if kind is bool and not isinstance(value, bool):
            return f"field {name!r} must be true or false"
    return "malformed frame"  # pragma: no cover - every mismatch is named above


def _device(obj: dict[str, Any]) -> str:
    device = _opt_str(obj, "device")
    if device is None:
        return "default"
    if _DEVICE_RE.fullmatch(device) is None:
        raise _BadField("field 'device' must be 1-64 characters of A-Z a-z 0-9 _ -")
    return device


def _history(obj: dict[str, Any], ref: str | None) -> History:
    room = _opt_str(obj, "room")
    with_ = _opt_str(obj, "with")
    if (room is None) == (with_ is None):
        raise _BadField("exactly one of 'room' and 'with' is required")
    before = _opt_int(obj, "before", minimum=1)
    after = _opt_int(obj, "after", minimum=0)
    if before is not None and after is not None:
        raise _BadField("give 'before' (older messages) or 'after' (newer ones), not both")
    return History(
        room=room,
        with_=with_,
        before=before,
        limit=_opt_int(obj, "limit", minimum=1),
        after=after,
        ref=ref,
    )


def _receipt_state(state: ReceiptState) -> dict[str, int]:
    return {"delivered": state.delivered, "read": state.read}


def _message_id(obj: dict[str, Any]) -> int:
    """The ``id`` of an edit, delete or react: a positive integer."""
    value = _opt_int(obj, "id", minimum=1)
    if value is None:
        raise _BadField("missing field 'id'")
    return value


def _on(obj: dict[str, Any]) -> bool:
    on = obj.get("on", True)
    if not isinstance(on, bool):
        raise _BadField("field 'on' must be true or false")
    return on


def _search(obj: dict[str, Any], q: str, ref: str | None) -> Search:
    room = _opt_str(obj, "room")
    with_ = _opt_str(obj, "with")
    if room is not None and with_ is not None:
        raise _BadField("at most one of 'room' and 'with' may be given")
    return Search(
        q=q,
        room=room,
        with_=with_,
        sender=_opt_str(obj, "from"),
        before=_opt_int(obj, "before", minimum=1),
        limit=_opt_int(obj, "limit", minimum=1),
        ref=ref,
    )


def _read(obj: dict[str, Any], upto: int, ref: str | None) -> Read:
    room = _opt_str(obj, "room")
    with_ = _opt_str(obj, "with")
    if (room is None) == (with_ is None):
        raise _BadField("exactly one of 'room' and 'with' is required")
    if upto < 1:
        raise _BadField("field 'upto' must be at least 1")
    return Read(room=room, with_=with_, upto=upto, ref=ref)


def _typing(obj: dict[str, Any], ref: str | None) -> Typing:
    room = _opt_str(obj, "room")
    to = _opt_str(obj, "to")
    if (room is None) == (to is None):
        raise _BadField("exactly one of 'room' and 'to' is required")
    return Typing(room=room, to=to, ref=ref)


def _opt_bool(obj: dict[str, Any], key: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _BadField(f"field {key!r} must be true or false")
    return value


def _nick_list(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    """A list of nicks (absent or null: none)."""
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(nick, str) for nick in value):
        raise _BadField(f"field {key!r} must be a list of nicks (strings)")
    return tuple(value)


def _opt_ts(obj: dict[str, Any], key: str) -> int | None:
    """A UTC ISO 8601 timestamp field (``2026-11-24T05:00:00.123Z``) as ms, or None."""
    text = _opt_str(obj, key, 40)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.utcoffset() != timedelta(0):
        raise _BadField(
            f"field {key!r} must be a UTC time like 2026-11-24T05:00:00Z, or null for ever"
        )
    return int(when.timestamp() * 1000)


def _moderate(obj: dict[str, Any], action: str, nick: str, ref: str | None) -> Moderate:
    room = _opt_str(obj, "room")
    if room is None and action in ("mute", "unmute", "voice", "unvoice"):
        raise _BadField("missing field 'room'")
    timed = action in ("ban", "mute")
    return Moderate(
        action=action,
        room=room,
        nick=nick,
        until_ms=_opt_ts(obj, "until") if timed else None,
        reason=_opt_str(obj, "reason") or "",
        ref=ref,
    )


def _key_and_limit(info: RoomInfo, data: dict[str, Any]) -> None:
    """ircmodes: ``keyed`` when a join needs a key, ``key`` to those who may know it,
    ``limit`` when the room has a member limit."""
    if info.keyed:
        data["keyed"] = True
    if info.key is not None:
        data["key"] = info.key
    if info.limit is not None:
        data["limit"] = info.limit


def _lock_fields(data: dict[str, Any], info: RoomInfo) -> None:
    """ircroles: ``topic_locked`` and ``secret`` when not a new room's (the topic locked, not
    secret), and who set the topic and when if known, so that the bytes of rooms with none
    of these stay as they were."""
    if not info.topic_locked:
        data["topic_locked"] = False
    if info.secret:
        data["secret"] = True
    if info.topic_ms is not None:  # who set the topic, and when (IRC 333)
        data["topic_by"], data["topic_at"] = info.topic_by, iso_ts(info.topic_ms)


def _room_set(obj: dict[str, Any], room: str, ref: str | None) -> RoomSet:
    cmd = RoomSet(
        room=room,
        topic=_opt_str(obj, "topic"),
        private=_opt_bool(obj, "private"),
        announce=_opt_bool(obj, "announce"),
        retention_days=_opt_int(obj, "retention_days", 0),
        key=_opt_str(obj, "key"),
        limit=_opt_int(obj, "limit", 0),
        topic_locked=_opt_bool(obj, "topic_locked"),
        secret=_opt_bool(obj, "secret"),
        ref=ref,
    )
    given = (
        cmd.topic,
        cmd.private,
        cmd.announce,
        cmd.retention_days,
        cmd.key,
        cmd.limit,
        cmd.topic_locked,
        cmd.secret,
    )
    if given == (None,) * len(given):
        raise _BadField(
            "give at least one of 'topic', 'private', 'announce', 'retention_days', 'key',"
            " 'limit', 'topic_locked' and 'secret'"
        )
    return cmd


def _command(obj: dict[str, Any], ref: str | None) -> ClientCommand | Rejected:
    """Map a frame with a string ``type`` to its command.

    Raises:
        _BadField: a field of a known type is missing or ill-typed.
    """
    # The hot types come first. Unknown fields are ignored: mapping patterns
    # match on the keys they name and nothing else.
    match obj:
        case {"type": "say", "room": str(room), "body": str(body)}:
            return Say(
                room=room,
                body=body,
                cid=_opt_str(obj, "cid", MAX_CID_LEN),
                reply_to=_opt_int(obj, "reply_to", minimum=1),
                notice=bool(_opt_bool(obj, "notice")),
                ref=ref,
            )
        case {"type": "dm", "to": str(to), "body": str(body)}:
            return Dm(
                to=to,
                body=body,
                cid=_opt_str(obj, "cid", MAX_CID_LEN),
                reply_to=_opt_int(obj, "reply_to", minimum=1),
                notice=bool(_opt_bool(obj, "notice")),
                ref=ref,
            )
        case {"type": "typing"}:
            return _typing(obj, ref)
        case {"type": "seen", "upto": int(upto)} if not isinstance(upto, bool):
            return Seen(upto=upto, ref=ref)
        case {"type": "ping"}:
            return Ping(ref=ref)
        case {"type": "pong"}:
            return Pong(ref=ref)
        case {"type": "join", "room": str(room)}:
            return Join(room=room, key=_opt_str(obj, "key"), ref=ref)
        case {"type": "leave", "room": str(room)}:
            return Leave(room=room, ref=ref)
        case {"type": "who", "room": str(room)}:
            return Who(room=room, ref=ref)
        case {"type": "rooms"}:
            return ListRooms(ref=ref)
        case {"type": "history"}:
            return _history(obj, ref)
        case {"type": "hello", "proto": int(proto), "nick": str(nick)} if not isinstance(
            proto, bool
        ):
            return Hello(
                proto=proto,
                nick=nick,
                password=_opt_str(obj, "password"),
                device=_device(obj),
                client=_opt_str(obj, "client"),
                ref=ref,
            )
        case {"type": "register", "password": str(password)}:
            bot = obj.get("bot", False)
            if not isinstance(bot, bool):
                raise _BadField("field 'bot' must be true or false")
            return Register(
                password=password, bot=bot, invite=_opt_str(obj, "invite", 256), ref=ref
            )
        case {"type": "passwd", "old": str(old), "new": str(new)}:
            return Passwd(old=old, new=new, ref=ref)
        case {"type": "bye"}:
            return Bye(ref=ref)
        case {"type": "edit", "body": str(body)}:
            cid = _opt_str(obj, "cid", MAX_CID_LEN)
            return Edit(id=_message_id(obj), body=body, cid=cid, ref=ref)
        case {"type": "delete"}:
            return Delete(
                id=_message_id(obj),
                cid=_opt_str(obj, "cid", MAX_CID_LEN),
                reason=_opt_str(obj, "reason"),  # issue 19
                ref=ref,
            )
        case {"type": "react", "emoji": str(emoji)}:
            cid = _opt_str(obj, "cid", MAX_CID_LEN)
            return React(id=_message_id(obj), emoji=emoji, on=_on(obj), cid=cid, ref=ref)
        case {"type": "read", "upto": int(upto)} if not isinstance(upto, bool):
            return _read(obj, upto, ref)
        case {"type": "receipts", "on": bool(on)}:
            return Receipts(on=on, ref=ref)
        case {"type": "search", "q": str(q)}:
            return _search(obj, q, ref)
        case {"type": "block", "nick": str(nick)}:
            return Block(nick=nick, ref=ref)
        case {"type": "unblock", "nick": str(nick)}:
            return Unblock(nick=nick, ref=ref)
        case {"type": "blocks"}:
            return ListBlocks(ref=ref)
        case {"type": "settings"}:
            return GetSettings(ref=ref)
        case {"type": "room", "room": str(room)}:
            return _room_set(obj, room, ref)
        case {"type": "invite", "room": str(room), "nick": str(nick)}:
            return Invite(room=room, nick=nick, ref=ref)
        case {
            "type": "kick" | "ban" | "unban" | "mute" | "unmute" | "voice" | "unvoice" as action,
            "nick": str(nick),
        }:
            return _moderate(obj, action, nick, ref)
        case {"type": "grant", "nick": str(nick), "role": str(role)}:
            return Grant(room=_opt_str(obj, "room"), nick=nick, role=role, ref=ref)
        case {"type": "stats"}:  # issue 19 (ircreg)
            return Stats(ref=ref)
        case {"type": "whowas", "nick": str(nick)}:
            return WhoWas(nick=nick, limit=_opt_int(obj, "limit", minimum=1), ref=ref)
        case {"type": "away"}:  # issue 19: no message, null or "" is back
            return Away(message=_opt_str(obj, "message"), ref=ref)
        case {"type": "bans", "room": str(room)}:  # issue 19 (ircwho)
            return ListBans(room=room, ref=ref)
        case {"type": "whois", "mask": str(mask)}:  # issue 19 (ircoper)
            return Whois(mask=mask, ref=ref)
        case {"type": "oper"}:
            name, secret = _opt_str(obj, "account"), _opt_str(obj, "password")
            if name is not None and secret is None:
                raise _BadField("field 'password' is required with 'account'")
            return Oper(account=name, password=secret, ref=ref)
        case {"type": "wallops", "text": str(text)}:
            return Wallops(text=text, ref=ref)
        case {"type": "wallops_listen", "on": bool(on)}:
            return ListenWallops(on=on, ref=ref)
        case {"type": "invisible", "on": bool(on)}:
            return Invisible(on=on, ref=ref)
        case {"type": "bot", "on": bool(on)}:  # irccaps
            return SetBot(on=on, ref=ref)
        case {"type": "setname", "real_name": str(real_name)}:  # irccaps
            return SetName(real_name=real_name, ref=ref)
        case {"type": "monitor"}:  # irccaps
            return Monitor(
                add=_nick_list(obj, "add"),
                remove=_nick_list(obj, "remove"),
                clear=bool(_opt_bool(obj, "clear")),
                ref=ref,
            )
        case {"type": "nick", "nick": str(nick)}:  # ircmsg: a guest's new nick
            return Rename(nick=nick, ref=ref)
        case {"type": str(kind)} if kind in _REQUIRED:
            raise _BadField(_what_is_wrong(obj, _REQUIRED[kind]))
        case {"type": kind}:
            return Rejected("unknown_type", f"unknown frame type {_short(kind)}", ref)
    raise AssertionError("unreachable: decode_line checked the string 'type'")


def decode_line(line: bytes) -> Incoming:
    """Decode one complete line (terminator already stripped) into an event.

    Never raises on the peer's input.

    Args:
        line: the bytes of one frame, as returned by :class:`LineBuffer`.

    Returns:
        The command; or ``Rejected("bad_frame")`` for a line that is not a strict
        JSON object with a string ``type``; ``Rejected("bad_request")`` for a bad
        ``ref`` or a missing or ill-typed field of a known type;
        ``Rejected("unknown_type")``; or ``Dropped`` for a malformed ``typing``,
        ``seen`` or ``pong``. A ``Rejected`` carries the frame's ``ref`` when that
        ref was valid.
    """
    try:
        obj = _parse_strict(line)
    except _Refused as exc:
        return Rejected("bad_frame", str(exc))
    if not isinstance(obj, dict):
        return Rejected("bad_frame", f"expected a JSON object, got {_JSON_KIND[type(obj)]}")
    raw_ref = obj.get("ref")
    ref_ok = raw_ref is None or (isinstance(raw_ref, str) and len(raw_ref) <= MAX_REF_LEN)
    ref: str | None = raw_ref if ref_ok else None
    kind = obj.get("type")
    if not isinstance(kind, str):
        return Rejected("bad_frame", "a frame needs a string field 'type'", ref)
    try:
        if not ref_ok:
            raise _BadField(f"field 'ref' must be a string of at most {MAX_REF_LEN} characters")
        return _command(obj, ref)
    except _BadField as exc:
        if kind in _SILENT:
            return Dropped(f"{kind}: {exc}")
        return Rejected("bad_request", f"{kind}: {exc}", ref, kind=kind)


# --- encoding ------------------------------------------------------------------


def encode(frame: dict[str, Any]) -> bytes:
    """Serialize one frame as a line of compact JSON.

    The result ends with ``\\n`` and holds no other line break: JSON escapes
    ``\\n`` and ``\\r`` inside strings, and U+0085, U+2028 and U+2029 are escaped
    here too.

    Args:
        frame: a JSON-serializable dictionary with a string ``type``.

    Returns:
        UTF-8 bytes ending with ``\\n``.

    Raises:
        ValueError: the frame holds NaN or infinity, or a string with a lone
            surrogate (``UnicodeEncodeError``); this is the caller's bug.
        TypeError: the frame holds something JSON cannot represent.
    """
    text = _ENCODER.encode(frame)
    if "\u2028" in text or "\u2029" in text or "\x85" in text:
        text = text.translate(_LINE_BREAKS)
    return (text + "\n").encode("utf-8")


# --- server events ---------------------------------------------------------------

_last_second: list[Any] = [-1, ""]  # iso_ts's cache: (second, its "YYYY-MM-DDTHH:MM:SS.")


def iso_ts(ts_ms: int) -> str:
    """UTC ISO 8601 with milliseconds, e.g. ``2026-11-24T05:00:00.123Z`` (protocol v1 §3).

    Args:
        ts_ms: milliseconds since the epoch.
    """
    second = ts_ms // 1000
    cached = _last_second
    if cached[0] != second:  # messages come in bursts: most share their second
        t = time.gmtime(second)
        cached[1] = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
        )
        cached[0] = second
    return f"{cached[1]}{ts_ms % 1000:03d}Z"


def _message(e: Message) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "message", "id": e.id, "ts": iso_ts(e.ts_ms), "from": e.sender}
    if e.room is not None:
        data["room"] = e.room
    else:
        data["to"] = e.to
    if e.deleted:
        data["deleted"] = True  # §8: the body is gone
    else:
        data["body"] = e.body
    if e.reply_to is not None:
        data["reply_to"] = e.reply_to
    if e.mentions:
        data["mentions"] = list(e.mentions)
    if e.edited_ms is not None:
        data["edited"] = iso_ts(e.edited_ms)
    if e.reactions:
        data["reactions"] = [{"emoji": emoji, "nicks": list(n)} for emoji, n in e.reactions]
    if e.cid is not None:
        data["cid"] = e.cid
    if e.replay:
        data["replay"] = True
    if e.notice:
        data["notice"] = True  # ircmsg: sent as a notice
    return data


def _event_head(kind: str, e: Edited | Reacted, sender: str) -> dict[str, Any]:
    data: dict[str, Any] = {"type": kind, "id": e.id, "target": e.target, "from": sender}
    if e.room is not None:
        data["room"] = e.room
    else:
        data["to"] = e.to
    return data


def to_data(event: Outgoing) -> dict[str, Any]:
    """The JSON object of a server event (protocol v1 §3-§5), ``ref`` last.

    Args:
        event: what the server says.

    Returns:
        A new dictionary, with its keys in the order the protocol documents.
    """
    data: dict[str, Any]
    match event:
        case Message():
            data = _message(event)
        case Edited():
            data = _event_head("edited", event, event.sender)
            data["body"] = event.body
            if event.mentions:
                data["mentions"] = list(event.mentions)
            data["ts"] = iso_ts(event.ts_ms)
            if event.replay:
                data["replay"] = True
        case Deleted():
            data = {"type": "deleted", "id": event.id, "target": event.target, "by": event.by}
            if event.reason is not None:  # issue 19
                data["reason"] = event.reason
            if event.room is not None:
                data["room"] = event.room
            else:
                data["to"] = event.to
            data["ts"] = iso_ts(event.ts_ms)
            if event.replay:
                data["replay"] = True
        case Reacted():
            data = _event_head("reacted", event, event.sender)
            data["emoji"] = event.emoji
            data["on"] = event.on
            data["ts"] = iso_ts(event.ts_ms)
            if event.replay:
                data["replay"] = True
        case Ack():
            data = {"type": "ack", "id": event.id, "ts": iso_ts(event.ts_ms)}
            if event.cid is not None:
                data["cid"] = event.cid
            if event.away is not None:  # issue 19: a DM to someone away
                data["away"] = event.away
        case TypingNotice():
            data = {"type": "typing", "from": event.sender}
            if event.room is not None:
                data["room"] = event.room
            else:
                data["to"] = event.to
        case Presence(new=str(new)):  # ircmsg: a guest's new nick, in no one room
            data = {"type": "presence", "event": "nick", "nick": event.nick, "new": new}
        case Presence():
            data = {
                "type": "presence",
                "room": event.room,
                "nick": event.nick,
                "event": event.event,
            }
            if event.by is not None:  # §8 moderation
                data["by"] = event.by
                data["reason"] = event.reason or ""
                if event.event in ("ban", "mute"):
                    data["until"] = None if event.until_ms is None else iso_ts(event.until_ms)
                if event.role is not None:
                    data["role"] = event.role
            if event.quit is not None:  # issue 19 (ircwho): went offline
                data["quit"] = event.quit
            if event.by_account:  # ircoper: the one who did it is an account
                data["by_account"] = True
        case Ok():
            data = {"type": "ok"}
        case Error():
            data = {"type": "error", "code": event.code, "message": event.message}
            data.update(event.extra)
        case Welcome():
            data = {
                "type": "welcome",
                "proto": event.proto,
                "nick": event.nick,
                "account": event.account,
                "server": {"name": event.server_name, "version": event.server_version},
                "motd": event.motd,
                "rooms": list(event.rooms),
            }
            if event.features:  # §8 (1.1); a 1.0 welcome has none
                data["features"] = list(event.features)
            if event.settings is not None:  # issue 15: an account's
                data["settings"] = dict(event.settings)
        case CaughtUp():
            data = {
                "type": "caught_up",
                "missed": event.missed,
                "rooms": dict(event.rooms),
                "dms": dict(event.dms),
                "truncated": event.truncated,
            }
            if event.mentions is not None:  # §8 (1.1)
                data["mentions"] = event.mentions
            if event.unread is not None:
                data["unread"] = dict(event.unread)
            if event.receipts:  # issue 15: only when some are stored
                data["receipts"] = {k: _receipt_state(v) for k, v in event.receipts.items()}
            if event.markers:  # issue 15 (evfanout): only when some are kept
                data["markers"] = dict(event.markers)
        case WhoReply():
            data = {
                "type": "who",
                "room": event.room,
                "users": _who_rows(event.users),
                "truncated": event.truncated,
            }
            if event.info is not None:  # rooms4: the settings, and the asker's role
                data["topic"], data["private"] = event.info.topic, event.info.private
                data["announce"], data["role"] = event.info.announce, event.info.role
                if event.info.retention_days is not None:  # §12.3
                    data["retention_days"] = event.info.retention_days
                _key_and_limit(event.info, data)
                _lock_fields(data, event.info)  # ircroles
        case RoomsReply():
            rooms = [{"name": r.name, "online": r.online} for r in event.rooms]
            data = {"type": "rooms", "rooms": rooms, "truncated": event.truncated}
        case HistoryReply():
            data = {"type": "history"}
            if event.room is not None:
                data["room"] = event.room
            else:
                data["with"] = event.with_
            data["messages"] = [_message(m) for m in event.messages]
            data["more"] = event.more
            if event.receipts is not None:  # issue 15
                data["receipts"] = _receipt_state(event.receipts)
        case ReadMarker():
            data = {"type": "read"}
            if event.room is not None:
                data["room"] = event.room
            else:
                data["with"] = event.with_
            data["upto"] = event.upto
        case Receipt():
            data = {"type": "receipt", "with": event.with_, "upto": event.upto}
            data["state"] = event.state
        case Results():
            data = {"type": "results", "q": event.q}
            data["messages"] = [_message(m) for m in event.messages]
            data["more"] = event.more
        case BlocksReply():
            data = {"type": "blocks", "nicks": list(event.nicks)}
        case SettingsReply():
            data = {"type": "settings", "receipts": event.receipts}
        case Ping():
            data = {"type": "ping"}
        case Pong():
            data = {"type": "pong"}
        case Bye():
            data = {"type": "bye"}
            if event.reason is not None:
                data["reason"] = event.reason
        case RoomInfo():
            data = {
                "type": "room_info",
                "room": event.room,
                "topic": event.topic,
                "private": event.private,
                "announce": event.announce,
                "by": event.by,
            }
            if event.role is not None:
                data["role"] = event.role
            if event.retention_days is not None:
                data["retention_days"] = event.retention_days
            if event.created_ms is not None:  # issue 19 (ircwho)
                data["created"] = iso_ts(event.created_ms)
            _key_and_limit(event, data)
            _lock_fields(data, event)  # ircroles
        case StatsReply():  # issue 19 (ircreg)
            data = {"type": "stats", "online": event.online, "here": event.here}
            data["rooms"], data["nodes"] = event.rooms, event.nodes
            data["invisible"], data["operators"] = event.invisible, event.operators  # ircfix
        case WhoWasReply():
            entries: list[dict[str, Any]] = []
            for e in event.entries:
                entry = {"nick": e.nick, "account": e.account, "ts": iso_ts(e.ts_ms)}
                if e.user is not None:  # ircoper: its last IRC session's USER
                    entry["user"], entry["real_name"] = e.user, e.real_name
                entries.append(entry)
            data = {"type": "whowas", "nick": event.nick, "entries": entries}
        case WhoisReply():  # issue 19 (ircoper)
            data = {"type": "whois", "mask": event.mask, "users": _who_rows(event.users)}
            data["truncated"] = event.truncated
        case WallopsNotice():
            data = {"type": "wallops", "from": event.sender, "text": event.text}
        case AwayNotice():  # issue 19
            data = {"type": "away", "nick": event.nick, "message": event.message}
        case MonitorReply():  # irccaps
            data = {"type": "monitor", "online": list(event.online)}
            data["offline"] = list(event.offline)
        case MonitorNotice():
            data = {"type": "monitored", "nick": event.nick, "online": event.online}
        case AccountNotice():  # irccaps
            data = {"type": "account", "nick": event.nick}
        case RealNameNotice():
            data = {"type": "setname", "nick": event.nick, "real_name": event.real_name}
        case BansReply():  # issue 19 (ircwho)
            bans = [
                {
                    "nick": b.nick,
                    "by": b.by,
                    "ts": iso_ts(b.ts_ms),
                    "until": None if b.until_ms is None else iso_ts(b.until_ms),
                    "reason": b.reason,
                }
                for b in event.bans
            ]
            data = {"type": "bans", "room": event.room, "bans": bans}
    if event.ref is not None:
        data["ref"] = event.ref
    return data


def _who_rows(members: tuple[WhoMember, ...]) -> list[dict[str, Any]]:
    """The rows of a ``who`` or ``whois`` reply: optional fields only when they say something."""
    rows: list[dict[str, Any]] = []
    for m in members:
        row: dict[str, Any] = {"nick": m.nick, "account": m.account}
        if m.bot:
            row["bot"] = True
        if m.away is not None:  # issue 19
            row["away"] = m.away
        if m.role != "member":  # rooms4
            row["role"] = m.role
        if m.voiced:  # ircroles
            row["voiced"] = True
        if m.user is not None:  # issue 19 (ircwho): an IRC session's USER
            row["user"], row["real_name"] = m.user, m.real_name
        if m.oper:  # issue 19 (ircoper): a session of theirs acts as an admin
            row["oper"] = True
        rows.append(row)
    return rows


def render(event: Outgoing) -> bytes:
    """A server event as one line of protocol v1 JSON; see :func:`to_data` and :func:`encode`.

    This one function renders for every JSON-lines connection, so a frame that
    many of them receive can cache its bytes under it (``core`` calls it a
    renderer).

    Args:
        event: what the server says.

    Returns:
        UTF-8 bytes ending with ``\\n``.
    """
    return encode(to_data(event))


# --- codecs --------------------------------------------------------------------


class ServerCodec:
    """The server's side of one connection: client bytes in, events out.

    Args:
        max_line: the largest accepted client frame in bytes, ``\\r\\n`` included.
    """

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._lines = LineBuffer(max_line)
        self.closed: bool = False
        """True after a ``Fatal``: the stream cannot be framed any more."""

    @property
    def max_line(self) -> int:
        """The largest accepted client frame in bytes, ``\\r\\n`` included."""
        return self._lines.limit

    def receive_data(self, data: bytes) -> list[Incoming]:
        """Feed bytes read from the client; return the events they complete.

        Empty and whitespace-only lines are ignored. A line over the limit gives
        ``Fatal("frame_too_large")`` as soon as that is certain (before its
        newline arrives); then :attr:`closed` is true and later data yields
        nothing. Never raises on the peer's input.

        Args:
            data: the next bytes from the peer, in any segmentation.

        Returns:
            The decoded events, in order.
        """
        if self.closed:
            return []
        try:
            lines = self._lines.feed(data)
        except LineTooLong as exc:
            self.closed = True
            events = [decode_line(line) for line in exc.lines if line.strip()]
            message = f"a frame is at most {self.max_line} bytes, newline included"
            events.append(Fatal("frame_too_large", message))
            return events
        return [decode_line(line) for line in lines if line.strip()]

    def encode(self, frame: dict[str, Any]) -> bytes:
        """Serialize a frame for the client; see :func:`encode`."""
        return encode(frame)


class ProtocolError(Exception):
    """The server broke the framing (a line over the client's limit).

    Args:
        message: what went wrong.
        frames: the frames that were complete before the overlong line.
    """

    def __init__(self, message: str, frames: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.frames: list[dict[str, Any]] = frames if frames is not None else []


def _client_frames(lines: list[bytes]) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError):
            continue  # be liberal in what we accept: skip what we cannot read
        if isinstance(obj, dict) and isinstance(obj.get("type"), str):
            frames.append(obj)
    return frames


class ClientCodec:
    """A client's side of the connection: server bytes in, frame dicts out.

    Args:
        max_line: the largest accepted server frame in bytes, newline included.
    """

    def __init__(self, max_line: int = DEFAULT_CLIENT_MAX_LINE) -> None:
        self._lines = LineBuffer(max_line)

    def receive_data(self, data: bytes) -> list[dict[str, Any]]:
        """Feed bytes read from the server; return the frames they complete.

        Lines that are not JSON objects with a string ``type`` are skipped.

        Args:
            data: the next bytes from the server, in any segmentation.

        Returns:
            The frames, in order.

        Raises:
            ProtocolError: a line is over the limit. Its ``frames`` holds the
                frames that preceded it; every later call raises again.
        """
        try:
            lines = self._lines.feed(data)
        except LineTooLong as exc:
            raise ProtocolError(
                f"server frame too large: {exc}", _client_frames(exc.lines)
            ) from exc
        return _client_frames(lines)

    def encode(self, frame: dict[str, Any]) -> bytes:
        """Serialize a frame for the server; see :func:`encode`."""
        return encode(frame)
