"""Who is online: principals, sessions, the frames they are sent, and presence.

A `Principal` is who messages belong to (an account, or one guest session); a
`Session` is one logged-in connection, and its `Outlet` the transport's side of
it. A `Frame` is one outbound event, rendered once per codec however many
sessions receive it. The `OnlineRegistry` is shared by the hub's handlers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Protocol

from chinwag.bus.base import NodeEvent, Offline
from chinwag.config import Settings
from chinwag.core.accounts import parse_nick
from chinwag.core.ratelimit import Budget, TokenBucket
from chinwag.errors import RateLimited
from chinwag.protocol.events import AwayNotice, MonitorNotice, Ok, Outgoing, Presence

Renderer = Callable[[Outgoing], bytes]
"""A codec's way of writing an event (``jsonlines.render``): one function per codec."""


class Frame:
    """One outbound event, rendered at most once per codec however many sessions receive it.

    A frame made with ``parts`` (and no event) stands for those frames in order
    (several messages of one room, fanned out in one loop turn): each part is
    rendered once per codec, and the parts are written joined.

    The bytes of the first renderer that asks are kept in ``wire``, under
    ``renderer``; an outlet on the hot path of fan-out checks ``frame.renderer is
    its_renderer`` and takes ``frame.wire`` without a call. Other renderers' bytes
    (an IRC member in a room of JSON members) are kept in a small dict.
    """

    __slots__ = ("_others", "event", "parts", "renderer", "wire")

    def __init__(self, event: Outgoing | None, parts: tuple[Frame, ...] = ()) -> None:
        self.event = event
        self.parts = parts
        self.renderer: Renderer | None = None  # whose bytes `wire` holds
        self.wire = b""
        self._others: dict[Renderer, bytes] | None = None

    def render(self, renderer: Renderer) -> bytes:
        """This frame's bytes as ``renderer`` writes them: rendered once, then remembered."""
        if self.renderer is renderer:
            return self.wire
        if self.renderer is None:
            self.wire = self._rendered(renderer)
            self.renderer = renderer
            return self.wire
        if self._others is None:
            self._others = {}
        wire = self._others.get(renderer)
        if wire is None:
            wire = self._others[renderer] = self._rendered(renderer)
        return wire

    def _rendered(self, renderer: Renderer) -> bytes:
        if self.parts:
            return b"".join(part.render(renderer) for part in self.parts)
        assert self.event is not None, "a frame has an event or parts"
        return renderer(self.event)


class Outlet(Protocol):
    """The transport's side of one connection, as the hub sees it."""

    address: str

    def send(self, frame: Frame) -> None:
        """Queue a frame; never blocks. A peer that stops reading is cut off."""

    async def send_paced(self, frame: Frame) -> None:
        """Queue a frame, waiting while the peer's buffer is full (for the backlog)."""

    def close(self, reason: str) -> None:
        """Close the connection after what is queued has been written."""


class Principal:
    """Who messages belong to: an account, or one guest session. Online ones only."""

    __slots__ = (
        "account",
        "away",
        "blocked",
        "bot",
        "budget",
        "invisible",
        "key",
        "nick",
        "pid",
        "read_at",
        "rooms",
        "sessions",
        "typing",
    )

    def __init__(
        self,
        pid: str,
        key: str,
        nick: str,
        account: bool,
        rooms: frozenset[str],
        bot: bool = False,
    ) -> None:
        self.pid = pid
        self.key = key
        self.nick = nick
        self.account = account
        self.bot = bot
        self.rooms = rooms
        self.sessions: list[Session] = []
        self.budget: TokenBucket | None = None  # an account's, shared by its sessions
        # When a typing notice was last forwarded, by room or "@" + the other's pid.
        self.typing: dict[str, float] | None = None
        # The nick keys this principal blocks (issue 16): nothing sent under them
        # reaches its sessions. Empty for nearly everyone: checked only when not.
        self.blocked: frozenset[str] = frozenset()
        # Its away message (issue 19), set by any of its sessions; None: not away.
        self.away: str | None = None
        # ircoper: a whois mask leaves it out (IRC +i) but for people in a room with it.
        self.invisible = False
        # A guest's read markers set by time (ircmsg: IRC MARKREAD), by conversation:
        # (marker, time given). Kept while it is online (it has no next login).
        self.read_at: dict[str, tuple[int, int]] | None = None


class Session:
    """One logged-in connection."""

    __slots__ = (
        "bucket",
        "device",
        "held_limit",
        "last_delivered",
        "monitoring",
        "oper",
        "outlet",
        "pending",
        "principal",
        "real_name",
        "seen",
        "user",
        "wallops",
    )

    def __init__(
        self,
        principal: Principal,
        device: str,
        outlet: Outlet,
        bucket: Budget,
        held_limit: int,
    ) -> None:
        # An IRC session's USER username and real name (issue 19; memory only), else None.
        self.user: str | None = None
        self.real_name: str | None = None
        # ircoper: the admin account (its pid) this session acts as since its OPER, and
        # whether it gets wallops (IRC user mode +w); memory only, ended with the session.
        self.oper: str | None = None
        self.wallops = False
        self.principal = principal
        self.device = device
        self.outlet = outlet
        self.bucket = bucket
        self.last_delivered = 0
        self.seen = 0  # the highest `seen` this session has written
        # While the backlog is being sent, live frames wait here: (message id or 0, frame).
        self.pending: list[tuple[int, Frame]] | None = []
        self.held_limit = held_limit  # more live frames than this close the connection
        # irccaps: the nicks it monitors (core/monitor.py), by key, as it wrote them; or None.
        self.monitoring: dict[str, str] | None = None

    def deliver(self, msg_id: int, frame: Frame) -> None:
        pending = self.pending
        if pending is None:
            if msg_id:
                if msg_id <= self.last_delivered:
                    return  # already delivered (the backlog had it): never twice
                self.last_delivered = msg_id
            self.outlet.send(frame)
        elif len(pending) < self.held_limit:
            pending.append((msg_id, frame))
        else:
            self.outlet.close("too far behind while catching up")


def account_pid(key: str) -> str:
    """The principal of the account whose nick key is ``key``."""
    return "a:" + key


# Parsing a nick that is not plain ASCII (PRECIS, NFC, confusables) costs ~13 µs;
# DMs and typing notices name the same few nicks again and again.
parse_nick_cached = functools.lru_cache(maxsize=4096)(parse_nick)


def reply(session: Session, event: Outgoing) -> None:
    """Send ``event`` to this session alone (the answer to one of its commands)."""
    session.outlet.send(Frame(event))


def ok(session: Session, ref: str | None) -> None:
    """Tell this session that its command (``ref``) was carried out."""
    reply(session, Ok(ref=ref))


def charge(session: Session, cost: float) -> None:
    """Pay for a command from the session's budget (raises `RateLimited`)."""
    wait = session.bucket.retry_after(cost)
    if wait > 0:
        raise RateLimited(wait, f"slow down: retry in {wait:.1f} s")
    session.bucket.take(cost)


class OnlineRegistry:
    """Who is online: principals by pid and by nick, the online members of each room.

    The handlers of the hub share one registry; its dicts are never replaced, only
    changed in place, so a handler may keep references to them.

    Args:
        settings: limits (``presence_limit``).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.by_pid: dict[str, Principal] = {}
        self.by_key: dict[str, Principal] = {}  # by casefolded nick
        self.rooms: dict[str, set[Principal]] = {}  # online members per room
        # Who is online on the other nodes (issue 13; core/nodes.py keeps it), and
        # how this node tells them of its own (the bus; a no-op with one node).
        self.remote = RemoteOnline()
        self.node = ""
        self.announce: Callable[[NodeEvent], None] = _nowhere
        # irccaps: the sessions here that monitor each nick key (core/monitor.py).
        self.watchers: dict[str, set[Session]] = {}

    def sessions(self) -> Iterable[Session]:
        for p in list(self.by_pid.values()):
            yield from list(p.sessions)

    def count(self) -> int:
        return len(self.by_key)

    def online_in(self, room: str) -> int:
        here = self.rooms.get(room, ())
        if not self.remote.nodes:
            return len(here)
        pids = {p.pid for p in here}
        pids.update(r.pid for r in self.remote.members(room))
        return len(pids)

    def presence(
        self,
        room: str,
        who: Principal | RemotePrincipal,
        event: str,
        exclude: Session | None,
        reason: str | None = None,
        quit: str | None = None,
    ) -> None:
        members = self.rooms.get(room, ())
        if len(members) > self.settings.presence_limit:
            return
        if event == "join":  # irccaps: what IRC extended-join shows of the joiner
            ident = (
                next((s for s in who.sessions if s.real_name is not None), None)
                if isinstance(who, Principal)
                else None
            )
            joined = Presence(
                room=room,
                nick=who.nick,
                event=event,
                account=who.account,
                real_name=ident.real_name if ident is not None else None,
            )
            frame = Frame(joined)
        else:
            frame = Frame(Presence(room=room, nick=who.nick, event=event, reason=reason, quit=quit))
        for member in members:
            for s in member.sessions:
                if s is not exclude:
                    s.deliver(0, frame)
        if event == "join" and who.away is not None:
            # Issue 19: someone away who joins is seen away (IRC away-notify).
            away = Frame(AwayNotice(nick=who.nick, message=who.away))
            for member in members:
                if member.pid == who.pid or (member.blocked and who.key in member.blocked):
                    continue  # not to itself; nothing of the blocked reaches the blocker
                for s in member.sessions:
                    s.deliver(0, away)

    def online(self, key: str) -> str | None:
        """The nick of whoever called ``key`` is online, here or on another node; or None."""
        p = self.by_key.get(key)
        if p is not None:
            return p.nick
        remote = self.remote.find(key) if self.remote.nodes else None
        return remote.nick if remote is not None else None

    def tell_watchers(self, key: str, nick: str, online: bool) -> None:
        """irccaps: ``nick`` came online (its first session anywhere) or went offline (its
        last): the sessions here that monitor it are told."""
        watching = self.watchers.get(key)
        if watching:
            frame = Frame(MonitorNotice(nick=nick, online=online))
            for s in list(watching):
                s.deliver(0, frame)

    def renamed(
        self, who: Principal | RemotePrincipal, old: str, old_key: str,
        answer: Session | None = None, ref: str | None = None,
    ) -> None:  # fmt: skip
        """Tell that ``who`` (a guest) was called ``old`` (key ``old_key``) and is now
        ``who.nick`` (ircmsg).

        Once to each principal sharing a room with it, and to its own sessions:
        ``answer``, the session that asked, gets it with ``ref`` (its answer).
        Sent whatever the size of the room (unlike joins and leaves): a reader
        who missed it would not know who speaks under the new nick. Those who
        monitor the old nick hear it go offline, those who monitor the new one
        hear it come online (a change of case only: neither).
        """
        if old_key != who.key:
            self.tell_watchers(old_key, old, online=False)
            self.tell_watchers(who.key, who.nick, online=True)
        event = Presence(room="", nick=old, event="nick", new=who.nick)
        frame = Frame(event)
        told = {who.pid}
        local = self.by_pid.get(who.pid)
        for s in local.sessions if local is not None else ():
            if s is answer:
                s.outlet.send(Frame(replace(event, ref=ref)))
            else:
                s.deliver(0, frame)
        for room in who.rooms:
            for member in self.rooms.get(room, ()):
                if member.pid in told:
                    continue
                told.add(member.pid)
                for s in member.sessions:
                    s.deliver(0, frame)

    def drop(self, session: Session, quit: str = "") -> None:
        """End ``session``; its principal's last one: a ``leave`` with ``quit`` per room."""
        if session.monitoring:
            for key in session.monitoring:
                self.unwatch(session, key)
            session.monitoring = None
        p = session.principal
        if session not in p.sessions:
            return
        p.sessions.remove(session)
        if p.sessions:
            return
        self.by_pid.pop(p.pid, None)
        if self.by_key.get(p.key) is p:
            del self.by_key[p.key]
        self.announce(Offline(self.node, p.pid))
        if self.online(p.key) is None:
            self.tell_watchers(p.key, p.nick, online=False)
        for room in p.rooms:
            members = self.rooms.get(room)
            if members is not None:
                members.discard(p)
                if not members:
                    del self.rooms[room]
            if not self.remote.in_room(p.pid, room):  # still there on another node
                self.presence(room, p, "leave", exclude=None, quit=quit)

    def tell_peers(
        self,
        who: Principal | RemotePrincipal,
        frame: Frame,
        watched: Frame,
        exclude: Session | None,
    ) -> None:
        """``frame`` to every session here that shares a room with ``who`` (not in rooms over
        ``presence_limit``; not to those who block it) and to its own here; ``watched`` to
        the sessions here that monitor it and got no ``frame`` (irccaps)."""
        key = who.key
        told: set[str] = set()
        targets: list[Principal] = []
        own = self.by_pid.get(who.pid)
        if own is not None:
            told.add(own.pid)
            targets.append(own)
        for room in who.rooms:
            members = self.rooms.get(room, ())
            if len(members) > self.settings.presence_limit:
                continue
            for member in members:
                if member.pid in told:
                    continue
                told.add(member.pid)
                if member.blocked and key in member.blocked:
                    continue  # issue 16: nothing of the blocked reaches the blocker
                targets.append(member)
        for member in targets:
            for s in member.sessions:
                if s is not exclude:
                    s.deliver(0, frame)
        for s in list(self.watchers.get(key, ())):
            blocked = s.principal.blocked
            if s.principal.pid in told or s is exclude or (blocked and key in blocked):
                continue
            s.deliver(0, watched)

    def unwatch(self, session: Session, key: str) -> None:
        """``session`` stops monitoring ``key`` (its own list is the caller's to change)."""
        watching = self.watchers.get(key)
        if watching is not None:
            watching.discard(session)
            if not watching:
                del self.watchers[key]


# -- who is online on the other nodes (issue 13) --


def _nowhere(event: NodeEvent) -> None:
    """One node: nobody to tell."""


class RemotePrincipal:
    """A principal online on another node, as that node last said."""

    __slots__ = ("account", "away", "bot", "invisible", "key", "nick", "pid", "rooms")

    def __init__(
        self,
        pid: str,
        key: str,
        nick: str,
        account: bool,
        bot: bool,
        rooms: frozenset[str],
        away: str | None = None,
        invisible: bool = False,
    ) -> None:
        self.pid = pid
        self.key = key
        self.nick = nick
        self.account = account
        self.bot = bot
        self.rooms = rooms
        self.away = away
        self.invisible = invisible


def irc_ident(p: Principal | RemotePrincipal) -> Session | None:
    """The first of ``p``'s sessions here that gave an IRC username (issue 19), if any."""
    if isinstance(p, RemotePrincipal):
        return None  # on another node: its sessions are not known here
    return next((s for s in p.sessions if s.user is not None), None)


def is_oper(p: Principal | RemotePrincipal, is_admin: Callable[[str], bool]) -> bool:
    """Whether a session of ``p`` here acts as an account that ``is_admin`` still (ircoper;
    other nodes' sessions are not known)."""
    return isinstance(p, Principal) and any(
        s.oper is not None and is_admin(s.oper) for s in p.sessions
    )


class NodeView:
    """What one other node said of who is online there, and when it last spoke."""

    __slots__ = ("by_key", "by_pid", "heard", "rooms")

    def __init__(self, heard: float) -> None:
        self.heard = heard
        self.by_pid: dict[str, RemotePrincipal] = {}
        self.by_key: dict[str, RemotePrincipal] = {}
        self.rooms: dict[str, set[RemotePrincipal]] = {}

    def put(self, p: RemotePrincipal) -> None:
        self.by_pid[p.pid] = p
        self.by_key[p.key] = p
        for room in p.rooms:
            self.rooms.setdefault(room, set()).add(p)

    def remove(self, pid: str) -> RemotePrincipal | None:
        p = self.by_pid.pop(pid, None)
        if p is None:
            return None
        if self.by_key.get(p.key) is p:
            del self.by_key[p.key]
        for room in p.rooms:
            self.set_rooms_out(p, room)
        return p

    def set_rooms_out(self, p: RemotePrincipal, room: str) -> None:
        members = self.rooms.get(room)
        if members is not None:
            members.discard(p)
            if not members:
                del self.rooms[room]


class RemoteOnline:
    """Who is online on the other nodes: one `NodeView` per node heard from.

    A cache that the bus keeps (core/nodes.py): each node announces its own
    principals, a `Roster` replaces a node's view, and a node silent for three
    heartbeats is forgotten. With one node it stays empty and costs nothing.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, NodeView] = {}

    def find(self, key: str) -> RemotePrincipal | None:
        """The principal called ``key`` (casefolded nick) online on another node, if any."""
        for view in self.nodes.values():
            p = view.by_key.get(key)
            if p is not None:
                return p
        return None

    def get(self, pid: str, *, but: str = "") -> RemotePrincipal | None:
        """Principal ``pid`` as another node (not ``but``) holds it, if online there."""
        for node, view in self.nodes.items():
            p = view.by_pid.get(pid)
            if p is not None and node != but:
                return p
        return None

    def in_room(self, pid: str, room: str, *, but: str = "") -> bool:
        """Whether ``pid`` is online in ``room`` on another node (not ``but``)."""
        for node, view in self.nodes.items():
            p = view.by_pid.get(pid)
            if p is not None and node != but and room in p.rooms:
                return True
        return False

    def members(self, room: str) -> list[RemotePrincipal]:
        """The principals online in ``room`` on other nodes, each once."""
        found: dict[str, RemotePrincipal] = {}
        for view in self.nodes.values():
            for p in view.rooms.get(room, ()):
                found.setdefault(p.pid, p)
        return list(found.values())
