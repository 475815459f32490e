"""The event vocabulary shared by every codec and the hub.

Client commands are imperative (``Hello``, ``Say``); what a codec makes of input
it cannot accept is ``Rejected`` (reply with an error, keep going), ``Dropped``
(no reply: ``typing``/``seen``/``pong`` that are malformed) or ``Fatal`` (flush,
then close). Every command carries the client's ``ref`` so that the reply can
echo it. Field checks that need no state (types, lengths of ``ref``/``cid``) are
the codec's; rules that need state or Unicode tables (nicks, rooms, bodies) are
the hub's.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Say(Command):
    room: str
    body: str
    cid: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Dm(Command):
    to: str
    body: str
    cid: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Join(Command):
    room: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Leave(Command):
    room: str


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
    pass


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
