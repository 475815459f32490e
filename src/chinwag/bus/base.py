"""The bus: how "message N was committed" reaches the hub on every node.

The hub delivers only what ``subscribe()`` yields, on the node that published
too, so one node and many share one code path.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, TypeAlias, TypeVar

from chinwag.storage.base import Histogram, StoredMessage


@dataclass(frozen=True, slots=True)
class Posted:
    """A message was committed and may now be delivered."""

    message: StoredMessage


@dataclass(frozen=True, slots=True)
class Resync:
    """Events may have been missed (the bus between nodes was down): catch up from the store."""


@dataclass(frozen=True, slots=True)
class BlocksChanged:
    """An account's blocks changed (issue 16): ``keys`` is its whole list now."""

    account: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Moderated:
    """A moderation action was committed (issue 16): every node re-reads the rooms and
    standings, and carries out its effect on its own sessions (the node that did it,
    ``origin``, already has).

    ``action`` is a §8 command (``kick``, ``ban``, ``unban``, ``mute``, ``unmute``,
    ``invite``, ``grant``, ``room``); ``room`` None is server-wide; ``principal`` and
    ``nick`` are whom it is about ('' for ``room``).
    """

    origin: str
    action: str
    room: str | None
    principal: str
    nick: str
    by: str
    reason: str = ""
    until_ms: int | None = None
    role: str | None = None


BusEvent: TypeAlias = "Posted | Resync | NodeEvent | BlocksChanged | Moderated"


class BusError(Exception):
    """The bus cannot be reached at start-up (the message says where and what to do)."""


class Bus(Protocol):
    node: str
    """This node's name on the bus (the ``node`` of the `NodeEvent` it sends)."""
    shared: bool
    """Whether other nodes may be listening (False: this process is the whole server)."""

    def publish(self, event: BusEvent) -> None:
        """Hand ``event`` to every subscriber, in publish order. Never blocks."""

    def announce(self, event: NodeEvent) -> None:
        """Hand ``event`` to the other nodes' subscribers only; nothing without others.

        Best effort: one lost while the bus is down is made good by the `Roster`
        each node sends when asked after a `Resync`. Never blocks.
        """

    def subscribe(self) -> AsyncIterator[BusEvent]:
        """Every event published from now on, in order, until ``close()``."""
        ...

    async def claim(self, name: str, owner: str) -> bool:
        """Hold ``name`` for ``owner`` across every node; False when another owner holds it.

        How a guest nick stays unique on all nodes. The claim lasts until
        `release` (or, should its node die, a short while after).
        """
        ...

    async def release(self, name: str, owner: str) -> None:
        """Give up ``owner``'s claim on ``name`` (nothing if another owner holds it)."""

    async def close(self) -> None:
        """End every subscription."""

    # -- health and lag (issue 17) --
    lag_seconds: Histogram
    """Seconds from another node's publish to this node's read (empty for one node)."""

    def trouble(self) -> str | None:
        """Why events from other nodes cannot arrive now, in plain words; None: they can."""
        ...


# -- events between nodes (issue 13) --
#
# What one node tells the others beside committed messages: who is online and in
# which rooms, typing, notices for an account's sessions elsewhere, and cached
# settings that changed. Each is a frozen dataclass of JSON-friendly fields
# (str, int, bool, None, tuples of those), registered under a stable ``kind``
# with `node_event`; `RedisBus` carries them as JSON, and the hub's
# `core/nodes.py` has one handler per class. Adding one (moderation, blocks):
# a class here with its decorator, and its handler in `Nodes.handlers`. A kind
# a node does not know (a newer chinwag's) is skipped.

NODE_EVENTS: dict[str, type[NodeEvent]] = {}
"""Every kind of event between nodes, by its ``kind``."""

E = TypeVar("E", bound="NodeEvent")


class NodeEvent:
    """Something one node tells the others; ``node`` says which node (`Bus.node`)."""

    __slots__ = ()
    kind: ClassVar[str] = ""
    node: str

    @classmethod
    def decode(cls, data: dict[str, Any]) -> Self:
        """The event from its JSON fields (JSON has no tuples: lists become tuples).

        Raises:
            TypeError: fields missing, unknown, or of the wrong type.
        """
        hints = _hints(cls)
        fields = {name: _tuples(value) for name, value in data.items()}
        for name, value in fields.items():
            if name in hints and not _fits(value, hints[name]):
                raise TypeError(f"{cls.kind}: {name} is not a {hints[name]}")
        return cls(**fields)

    def encode(self) -> dict[str, Any]:
        """The event's fields, for JSON."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


_HINTS: dict[type, dict[str, Any]] = {}  # each event class's field types, read once


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _fits(value: Any, hint: Any) -> bool:
    """Whether a decoded ``value`` has the type ``hint`` (the few types events use)."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, tuple) and all(_fits(v, item) for v in value)
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def node_event(kind: str) -> Callable[[type[E]], type[E]]:
    """Register an event between nodes under ``kind`` (stable: it crosses versions)."""

    def register(cls: type[E]) -> type[E]:
        if kind in NODE_EVENTS:
            raise ValueError(f"two events between nodes are called {kind!r}")
        cls.kind = kind
        NODE_EVENTS[kind] = cls
        return cls

    return register


@node_event("online")
@dataclass(frozen=True, slots=True)
class Online(NodeEvent):
    """A principal is online on ``node`` (its first session there), in ``rooms``.

    Also sent when a guest registers (the same key, a new ``pid``): the new
    principal takes the old one's place, with no leave or join notices.
    """

    node: str
    pid: str
    key: str
    nick: str
    account: bool
    bot: bool
    rooms: tuple[str, ...]
    away: str | None = None  # its away message (issue 19)
    invisible: bool = False  # left out of whois masks (ircoper)


@node_event("renamed")
@dataclass(frozen=True, slots=True)
class Renamed(NodeEvent):
    """Guest ``pid`` online on ``node`` is now called ``nick`` (key ``key``; ircmsg).

    Its rooms and away message stay; the others tell their members who share a
    room with it, once each, as they are told on ``node``.
    """

    node: str
    pid: str
    key: str
    nick: str
    old_nick: str


@node_event("offline")
@dataclass(frozen=True, slots=True)
class Offline(NodeEvent):
    """A principal's last session on ``node`` has ended."""

    node: str
    pid: str


@node_event("membership")
@dataclass(frozen=True, slots=True)
class Membership(NodeEvent):
    """A principal online on ``node`` joined (or left) ``room``.

    Another node where the same account is online joins (or leaves) it there too.
    """

    node: str
    pid: str
    room: str
    joined: bool


@node_event("alive")
@dataclass(frozen=True, slots=True)
class Alive(NodeEvent):
    """``node`` is running, with ``online`` principals (every ``node_heartbeat`` seconds).

    A node whose count differs from what another holds asks it for its `Roster`.
    """

    node: str
    online: int


@node_event("roster_wanted")
@dataclass(frozen=True, slots=True)
class RosterWanted(NodeEvent):
    """``node`` asks for the `Roster` of node ``of`` ("": of every node)."""

    node: str
    of: str


@node_event("roster")
@dataclass(frozen=True, slots=True)
class Roster(NodeEvent):
    """Everyone online on ``node``: replaces what the others held of it."""

    node: str
    online: tuple[Online, ...]

    @classmethod
    def decode(cls, data: dict[str, Any]) -> Self:
        entries = data.get("online")
        if not isinstance(entries, list):
            raise TypeError("a roster holds a list")
        return cls(node=data["node"], online=tuple(Online.decode(e) for e in entries))

    def encode(self) -> dict[str, Any]:
        return {"node": self.node, "online": [e.encode() for e in self.online]}


@node_event("typing")
@dataclass(frozen=True, slots=True)
class TypingRelay(NodeEvent):
    """``sender`` types in ``room``, or to ``to`` (then ``to_pid`` is theirs)."""

    node: str
    sender_pid: str
    sender: str
    room: str | None
    to: str | None
    to_pid: str | None


@node_event("read_moved")
@dataclass(frozen=True, slots=True)
class ReadMoved(NodeEvent):
    """Account ``pid`` moved a read marker: echoed to its sessions on other nodes."""

    node: str
    pid: str
    room: str | None
    with_: str | None
    upto: int
    ts_ms: int | None = None  # the time of message ``upto`` (issue 19: IRC MARKREAD)


@node_event("receipt")
@dataclass(frozen=True, slots=True)
class ReceiptNotice(NodeEvent):
    """A DM receipt for account ``pid``'s sessions on other nodes."""

    node: str
    pid: str
    with_: str
    upto: int
    state: str


@node_event("receipts_set")
@dataclass(frozen=True, slots=True)
class ReceiptsSet(NodeEvent):
    """Account ``pid`` turned its DM receipts on or off: other nodes' caches follow."""

    node: str
    pid: str
    on: bool


@node_event("login_checked")
@dataclass(frozen=True, slots=True)
class LoginChecked(NodeEvent):
    """A password was checked on ``node``: the other nodes' login throttles count it.

    ``key`` is the account's (None: the nick names no account), ``address`` the
    client's as the throttle keys it (an IPv6 /64).
    """

    node: str
    key: str | None
    address: str
    ok: bool


@node_event("registering")
@dataclass(frozen=True, slots=True)
class Registering(NodeEvent):
    """A registration from ``address`` was counted on ``node``: the others count it too."""

    node: str
    address: str


@node_event("sessions_ended")
@dataclass(frozen=True, slots=True)
class SessionsEnded(NodeEvent):
    """The operator deleted the account ``key`` or reset its password (``reason``) on ``node``.

    Every other node ends the account's sessions there too, with ``message``.
    """

    node: str
    key: str
    reason: str
    message: str


# -- away (issue 19, irchist) --


@node_event("away")
@dataclass(frozen=True, slots=True)
class AwaySet(NodeEvent):
    """Principal ``pid`` online on ``node`` is away with ``message``, or (None) back."""

    node: str
    pid: str
    message: str | None


# -- wallops (issue 19, ircoper) --


@node_event("wallops")
@dataclass(frozen=True, slots=True)
class WallopsSent(NodeEvent):
    """The admin ``nick`` on ``node`` sent the wallops ``text``: every node delivers it."""

    node: str
    nick: str
    text: str


@node_event("invisible")
@dataclass(frozen=True, slots=True)
class InvisibleSet(NodeEvent):
    """Principal ``pid`` online on ``node`` is (or is no longer) invisible to whois masks."""

    node: str
    pid: str
    on: bool


# -- real names (irccaps) --


@node_event("real_name")
@dataclass(frozen=True, slots=True)
class RealNameSet(NodeEvent):
    """A session of principal ``pid`` online on ``node`` changed its real name."""

    node: str
    pid: str
    real_name: str
