"""What the other nodes say beside their messages: who is online, typing, notices (issue 13).

Every node keeps, for every other node it hears from, a view of who is online
there and in which rooms (`sessions.RemoteOnline`): a cache the bus keeps up to
date, never the truth. Each node announces its own principals as they come and
go (`Online`, `Offline`, `Membership`), says it is alive every
``node_heartbeat`` seconds with its count of principals, and sends its whole
`Roster` when asked. A node asks for rosters when it starts, after the bus was
interrupted (`Resync`), and when another node's count differs from its view of
it; a node silent for three heartbeats is forgotten (killed, or cut off).

With the view, ``who``, presence notices, typing, DMs to guests, the DM quota's
"online?", read-marker echoes and DM receipts reach across nodes. Presence is
per principal across the whole group: a join notice when a principal first
comes online anywhere, a leave notice when its last session anywhere ends.

Adding an event between nodes (moderation, blocks): a class in bus/base.py
registered with `node_event`, and its handler in `Nodes.handlers` here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from chinwag.bus.base import (
    Alive,
    Bus,
    LoginChecked,
    Membership,
    NodeEvent,
    Offline,
    Online,
    ReadMoved,
    ReceiptNotice,
    ReceiptsSet,
    Registering,
    Renamed,
    Roster,
    RosterWanted,
    SessionsEnded,
    TypingRelay,
)
from chinwag.config import Settings
from chinwag.core.accounts import LoginThrottle, RegisterThrottle
from chinwag.core.blocks import nick_key
from chinwag.core.sessions import (
    Frame,
    NodeView,
    OnlineRegistry,
    Principal,
    RemotePrincipal,
)
from chinwag.protocol.events import AccountNotice, ReadMarker, Receipt, TypingNotice

log = logging.getLogger(__name__)

SILENT_HEARTBEATS = 3  # a node not heard from for this many heartbeats is forgotten


def online_event(node: str, p: Principal) -> Online:
    """How ``node`` announces its principal ``p``."""
    rooms = tuple(sorted(p.rooms))
    return Online(node, p.pid, p.key, p.nick, p.account, p.bot, rooms, p.away, p.invisible)


class Nodes:
    """The other nodes' events, applied to this node; this node's heartbeat and roster.

    Args:
        settings: ``node_heartbeat``.
        bus: where this node's events go (`Bus.announce`).
        registry: who is online here, and the view of the other nodes.
        monotonic: clock for the heartbeat.
        receipts_set: forget or set a cached receipts setting (`DmReceipts.cache`).
        throttles: the login and registration throttles, shared with the other nodes.
        end_sessions: ends an account's sessions on this node (`Logins.end_sessions`).
    """

    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        registry: OnlineRegistry,
        monotonic: Callable[[], float],
        receipts_set: Callable[[str, bool], None],
        throttles: tuple[LoginThrottle, RegisterThrottle],
        end_sessions: Callable[[str, str, str], int],
    ) -> None:
        self.settings = settings
        self._bus = bus
        self._registry = registry
        self._remote = registry.remote
        self._monotonic = monotonic
        self._receipts_set = receipts_set
        self.node = bus.node
        registry.node = bus.node
        self._throttle, self._register_throttle = throttles
        self._end_sessions = end_sessions
        if bus.shared:
            registry.announce = bus.announce
            node = bus.node
            self._throttle.tell = lambda key, address, ok: bus.announce(
                LoginChecked(node, key, address, ok)
            )
            self._register_throttle.tell = lambda address: bus.announce(Registering(node, address))
        self.handlers: dict[type[NodeEvent], Callable[[Any], None]] = {
            Online: self._online,
            Offline: self._offline,
            Membership: self._membership,
            Alive: self._alive,
            RosterWanted: self._roster_wanted,
            Roster: self._roster,
            TypingRelay: self._typing,
            ReadMoved: self._read_moved,
            ReceiptNotice: self._receipt,
            ReceiptsSet: self._receipts_setting,
            LoginChecked: self._login_checked,
            Registering: self._registering,
            SessionsEnded: self._sessions_ended,
            Renamed: self._renamed,
        }

    # -- this node -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Ask for every node's roster, then say this node is alive every heartbeat.

        Runs only when other nodes may listen (`Bus.shared`); cancelled at shutdown.
        """
        if not self._bus.shared:
            return
        self.resync()
        interval = self.settings.node_heartbeat
        while True:
            await asyncio.sleep(interval)
            self._bus.announce(Alive(self.node, len(self._registry.by_pid)))
            self._forget_silent()

    def resync(self) -> None:
        """After an interruption of the bus (and at start): tell ours, ask for theirs."""
        if self._bus.shared:
            self._bus.announce(RosterWanted(self.node, ""))
            self._send_roster()

    def _send_roster(self) -> None:
        online = tuple(online_event(self.node, p) for p in self._registry.by_pid.values())
        self._bus.announce(Roster(self.node, online))

    def _forget_silent(self) -> None:
        too_old = self._monotonic() - SILENT_HEARTBEATS * self.settings.node_heartbeat
        for node, view in list(self._remote.nodes.items()):
            if view.heard < too_old:
                log.warning(
                    "node %s has been silent for %d heartbeats: its %d users count as offline",
                    node,
                    SILENT_HEARTBEATS,
                    len(view.by_pid),
                )
                for pid in list(view.by_pid):
                    self._remove(node, view, pid)
                del self._remote.nodes[node]

    # -- the other nodes -----------------------------------------------------------------------

    def receive(self, event: NodeEvent) -> None:
        """Apply one event from another node."""
        if event.node == self.node:
            return  # our own, come back (the local bus never does this; be safe)
        view = self._remote.nodes.get(event.node)
        if view is None:
            view = self._remote.nodes[event.node] = NodeView(self._monotonic())
        else:
            view.heard = self._monotonic()
        handler = self.handlers.get(type(event))
        if handler is None:
            return
        try:
            handler(event)
        except Exception:
            # Never let one odd event stop this node's delivery: it is a cache.
            log.exception("could not apply a %r event from node %s", event.kind, event.node)

    def _view(self, node: str) -> NodeView:
        return self._remote.nodes[node]  # `receive` made it

    def _online(self, e: Online) -> None:
        view = self._view(e.node)
        was_online = self._registry.online(e.key) is not None  # irccaps: MONITOR
        before = view.by_key.get(e.key)
        old_rooms: frozenset[str] = frozenset()
        if before is not None:
            # The same principal again, or a guest who registered (a new pid): no
            # notices for the rooms it was in already.
            old_rooms = before.rooms
            view.remove(before.pid)
        rooms = frozenset(e.rooms)
        p = RemotePrincipal(e.pid, e.key, e.nick, e.account, e.bot, rooms, e.away, e.invisible)
        view.put(p)
        local = self._registry.by_pid.get(e.pid)
        if local is not None:
            local.bot = e.bot  # irccaps: the account's bot flag, set on that node (one state)
        for room in p.rooms - old_rooms:
            self._presence(e.node, p, room, "join")
        for room in old_rooms - p.rooms:
            self._presence(e.node, p, room, "leave")
        if not was_online:
            self._registry.tell_watchers(p.key, p.nick, online=True)
        elif before is not None and e.account and not before.account:
            # irccaps: a guest there registered: its peers here learn it is an account now.
            self._registry.tell_peers(
                p,
                Frame(AccountNotice(nick=p.nick)),
                Frame(AccountNotice(nick=p.nick, monitor=True)),
                exclude=None,
            )

    def _renamed(self, e: Renamed) -> None:
        """A guest of that node took another nick (ircmsg): the view follows, members are told."""
        view = self._view(e.node)
        p = view.remove(e.pid)
        if p is None:
            return  # not known here yet: its Online (or the roster) will carry the new nick
        old_key = p.key
        p.key, p.nick = e.key, e.nick  # the rest (away, invisible, rooms) is the same person's
        view.put(p)
        self._registry.renamed(p, e.old_nick, old_key)

    def _offline(self, e: Offline) -> None:
        self._remove(e.node, self._view(e.node), e.pid)

    def _remove(self, node: str, view: NodeView, pid: str) -> None:
        p = view.remove(pid)
        if p is not None:
            for room in p.rooms:
                self._presence(node, p, room, "leave", quit="")  # offline there (or gone)
            if self._registry.online(p.key) is None:  # irccaps: offline everywhere now
                self._registry.tell_watchers(p.key, p.nick, online=False)

    def _presence(
        self, node: str, p: RemotePrincipal, room: str, event: str, quit: str | None = None
    ) -> None:
        """A join or leave notice here, unless ``p`` is in ``room`` here or on a third node."""
        local = self._registry.by_pid.get(p.pid)
        if local is not None and room in local.rooms:
            return
        if self._remote.in_room(p.pid, room, but=node):
            return
        self._registry.presence(room, p, event, exclude=None, quit=quit)

    def _membership(self, e: Membership) -> None:
        view = self._view(e.node)
        p = view.by_pid.get(e.pid)
        changed = p is not None and (e.room in p.rooms) != e.joined
        if p is not None and changed:
            if e.joined:
                p.rooms = p.rooms | {e.room}
                view.rooms.setdefault(e.room, set()).add(p)
            else:
                view.set_rooms_out(p, e.room)
                p.rooms = p.rooms - {e.room}
        local = self._registry.by_pid.get(e.pid)
        if local is not None and local.account:
            # The same account, online here too, joins or leaves here (the store has it).
            if (e.room in local.rooms) != e.joined:
                self._move_local(local, e.room, e.joined)
        elif p is not None and changed:
            self._presence(e.node, p, e.room, "join" if e.joined else "leave")

    def _move_local(self, local: Principal, room: str, joined: bool) -> None:
        registry = self._registry
        if joined:
            local.rooms = local.rooms | {room}  # never changed in place (see rooms.py)
            registry.rooms.setdefault(room, set()).add(local)
            registry.presence(room, local, "join", exclude=None)
        else:
            registry.presence(room, local, "leave", exclude=None)
            local.rooms = local.rooms - {room}
            members = registry.rooms.get(room)
            if members is not None:
                members.discard(local)
                if not members:
                    del registry.rooms[room]
        # Tell the others too, so that every view of this node stays right.
        registry.announce(Membership(self.node, local.pid, room, joined))

    def _alive(self, e: Alive) -> None:
        if len(self._view(e.node).by_pid) != e.online:
            self._bus.announce(RosterWanted(self.node, e.node))

    def _roster_wanted(self, e: RosterWanted) -> None:
        if e.of in ("", self.node):
            self._send_roster()

    def _roster(self, e: Roster) -> None:
        view = self._view(e.node)
        keys = {o.key for o in e.online}
        for p in list(view.by_pid.values()):
            if p.key not in keys:
                self._remove(e.node, view, p.pid)
        for online in e.online:
            self._online(online)

    def _typing(self, e: TypingRelay) -> None:
        registry = self._registry
        if e.room is not None:
            frame = Frame(TypingNotice(sender=e.sender, room=e.room))
            targets: list[Principal] = list(registry.rooms.get(e.room, ()))
        else:
            frame = Frame(TypingNotice(sender=e.sender, to=e.to))
            targets = [
                p for p in (registry.by_pid.get(e.to_pid or ""), registry.by_pid.get(e.sender_pid))
                if p is not None
            ]  # fmt: skip
        sender = nick_key(e.sender)
        for member in targets:
            if member.blocked and sender in member.blocked:
                continue  # issue 16: nothing of the blocked reaches the blocker
            for s in member.sessions:
                if s.pending is None:
                    s.outlet.send(frame)

    def _sessions_of(self, pid: str, frame: Frame) -> None:
        p = self._registry.by_pid.get(pid)
        if p is not None:
            for s in p.sessions:
                s.deliver(0, frame)

    def _read_moved(self, e: ReadMoved) -> None:
        marker = ReadMarker(room=e.room, with_=e.with_, upto=e.upto, ts_ms=e.ts_ms)
        self._sessions_of(e.pid, Frame(marker))

    def _receipt(self, e: ReceiptNotice) -> None:
        self._sessions_of(e.pid, Frame(Receipt(with_=e.with_, upto=e.upto, state=e.state)))

    def _receipts_setting(self, e: ReceiptsSet) -> None:
        self._receipts_set(e.pid, e.on)

    def _login_checked(self, e: LoginChecked) -> None:
        self._throttle.heard(e.key, e.address, e.ok)

    def _registering(self, e: Registering) -> None:
        self._register_throttle.heard(e.address)

    def _sessions_ended(self, e: SessionsEnded) -> None:
        ended = self._end_sessions(e.key, e.reason, e.message)
        if ended:
            log.info(
                "ended %d session(s) of %s as node %s asked (%s)", ended, e.key, e.node, e.reason
            )
