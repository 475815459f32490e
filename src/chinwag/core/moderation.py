"""Moderation (issue 16, protocol §8): roles, room settings, invites, kick, ban, mute, grant.

Who may do what:

| action | who |
|---|---|
| ``room`` topic | the room's owner or a mod, or a server admin; any member when the
  topic is not locked (``topic_locked`` false) |
| ``room`` private / announce / secret / topic_locked / retention_days | the owner, or an admin |
| ``room`` key / limit (ircmodes) | the owner or a mod, or an admin |
| ``invite``, ``kick``, ``ban``/``unban``, ``mute``/``unmute``, ``voice``/``unvoice`` | owner
  or mod, or admin |
| ``grant`` mod/member | the owner, or an admin |
| server-wide ``kick``, ``ban``/``unban``, ``grant`` admin | an admin |

Ranks are member < mod < owner < admin, and nobody acts on someone of their own
rank or above (a mod cannot kick another mod, nor the owner). The lobby, and
every room older than moderation, has no owner: the admins govern it. Voice is
not a rank: a voiced member (of any role) may speak in an announce room.

A guest's room powers end with its session (ircroles): the room it made is its
own while it is online, it may be made a mod, and everything it set is undone
when its session ends: the standings it made (bans, mutes, voices, roles,
invites: ``Standing.guest``) and the room's locks (private, announce, secret,
topic lock: ``RoomSettings.guest``) unless an account has set them since.

Rooms' settings and every standing (roles, bans, mutes, invites) are kept in
memory, loaded once at start and written through to the store with their audit
entry in the same transaction, so a say's check reads no store. Timed bans and
mutes end by themselves: each check compares ``until`` with the injected clock.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from chinwag.bus.base import Bus, Moderated
from chinwag.config import Settings
from chinwag.core.accounts import parse_nick
from chinwag.core.rules import LOBBY, one_line, parse_room
from chinwag.core.sessions import Frame, OnlineRegistry, Principal, Session, account_pid, ok
from chinwag.errors import (
    BadKey,
    BadNick,
    BadRequest,
    Banned,
    ChatError,
    Forbidden,
    NoSuchUser,
    NotMember,
    RoomFull,
)
from chinwag.protocol.events import (
    BanRow,
    BansReply,
    Bye,
    Grant,
    Invite,
    ListBans,
    Moderate,
    Outgoing,
    Presence,
    RoomInfo,
    RoomSet,
)
from chinwag.storage.base import AuditEntry, RoomSettings, Standing, Store

SERVER = ""  # the scope of server-wide standings
ACTING: ContextVar[tuple[str, str] | None] = ContextVar("chinwag_acting", default=None)
"""ircoper: (principal, admin account pid) while an opered session's command is carried out."""
OPERATOR = Principal("operator", "", "operator", False, frozenset())
"""Who ``chinwag admin`` acts as: an admin that is in no room and never online."""
RANKS = {"member": 0, "mod": 1, "owner": 2, "admin": 3}

EndSessions = Callable[[str, str, str, Outgoing], int]
"""Ends every session of the principal with this nick key (`Logins.end_sessions`)."""

RemoveMember = Callable[[Principal, str], Awaitable[None]]
"""Takes a principal out of a room, in the store and online (`Rooms.remove`)."""


def clock_text(until_ms: int) -> str:
    """``until`` for people: ``14:05 UTC`` today, else the date too."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(until_ms / 1000))


def _kicked_words(reason: str) -> str:
    return "an admin ended your session" + (f": {reason}" if reason else "")


_VOICE = ("voice", "unvoice")
_LIFTED = {"ban": "unban", "mute": "unmute", "voice": "unvoice"}  # a guest's, at its end


def _guest(p: Principal) -> str | None:
    """The guest acting (what it sets ends with its session: ircroles), None for an account."""
    return None if p.account else p.pid


def _changes(row: RoomSettings, new: RoomSettings) -> list[str]:
    """``name=value`` of each room setting that ``new`` changes, for the audit entry."""
    return [
        f"{name}={getattr(new, name)}"
        for name in (
            "topic",
            "private",
            "announce",
            "retention_days",
            "topic_locked",
            "secret",
            "limit",
        )
        if getattr(new, name) != getattr(row, name)
    ] + (  # the key is a secret of the room: never written in the log (ircmodes)
        [f"key={'cleared' if new.key is None else 'set'}"] if new.key != row.key else []
    )


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


class Moderation:
    """Room settings, roles, invites, bans and mutes: checks, actions and their audit.

    Args:
        settings: limits (topic and reason lengths, standings per room).
        store: rooms, standings and the audit log.
        registry: who is online.
        clock: wall clock in seconds (expiry of timed bans and mutes, audit times).
        bus: how the other nodes hear of each action (None: none to tell).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        registry: OnlineRegistry,
        clock: Callable[[], float],
        bus: Bus | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._bus = bus  # tells the other nodes (None: no server runs, nobody to tell)
        self._node = secrets.token_hex(8)  # this hub, so that it skips its own actions
        self._registry = registry
        self._clock = clock
        self._rooms: dict[str, RoomSettings] = {}
        self._standings: dict[tuple[str, str, str], Standing] = {}
        self._per_room: dict[str, int] = {}  # standings kept per scope (room_standings_max)
        self._server_bans = 0  # how many are kept: none, and a hello needs no look at all
        # Rooms where a say needs a look (announce, or someone muted): the hot path's filter.
        self._guarded: set[str] = set()
        # Rooms made by guests live in memory only, as guests' rooms always did, until
        # an account joins or something about them is set: then they are written.
        self._unsaved: set[str] = set()
        # rooms4: when each principal made its last rooms (seconds), for rooms_made_max.
        self._made: dict[str, list[float]] = {}
        self.end_sessions: EndSessions | None = None  # set by the hub
        self.remove_member: RemoveMember | None = None  # set by the hub

    async def load(self) -> None:
        """Read every room's row and every standing still in force; the lobby gets a row."""
        await self._reload()
        if LOBBY not in self._rooms:
            self._rooms[LOBBY] = await self._store.ensure_room(
                RoomSettings(LOBBY, None, created_ms=self._now_ms())
            )

    async def _reload(self) -> None:
        rooms = await self._store.load_rooms()
        standings = await self._store.load_standings()
        now = self._now_ms()
        unsaved = {name: self._rooms[name] for name in self._unsaved}
        self._rooms.clear()
        self._standings.clear()
        self._per_room.clear()
        self._server_bans = 0
        self._guarded.clear()
        for row in rooms:
            self._rooms[row.name] = row
        for name, row in unsaved.items():
            if name in self._rooms:  # written meanwhile (another node): the store's row counts
                self._unsaved.discard(name)
            else:
                self._rooms[name] = row
        for s in standings:
            if s.until_ms is None or s.until_ms > now:
                self._keep(s)
        self._guarded.update(r.name for r in self._rooms.values() if r.announce)

    async def resync(self) -> None:
        """The bus may have lost events (Redis was away): re-read rooms and standings, then
        apply what is in force now to this node's sessions (the banned cut off, the banned
        from a room taken out of it)."""
        await self._reload()
        for p in list(self._registry.by_pid.values()):
            ban = self._active(SERVER, p.pid, "ban")
            if ban is not None:
                self.end_all(p.pid, p.nick, "banned", self._banned_words(ban))
                continue
            for room in sorted(p.rooms):
                if self._active(room, p.pid, "ban") is not None:
                    assert self.remove_member is not None, "set by the hub"
                    await self.remove_member(p, room)

    def _publish(
        self,
        action: str,
        room: str | None,
        pid: str,
        nick: str,
        by: str,
        reason: str = "",
        until_ms: int | None = None,
        role: str | None = None,
    ) -> None:
        if self._bus is not None:
            self._bus.publish(
                Moderated(self._node, action, room, pid, nick, by, reason, until_ms, role)
            )

    async def heard(self, event: Moderated) -> None:
        """Another node's action: re-read rooms and standings, then its effect on the
        sessions of this node (members told, the kicked taken out, the banned cut off)."""
        if event.origin == self._node:
            return  # done already, when it was carried out here
        await self._reload()
        room = event.room
        if room is None:
            if event.action == "adopt":
                return
            if event.action == "ban":
                ban = self._active(SERVER, event.principal, "ban")
                if ban is not None:
                    self.end_all(event.principal, event.nick, "banned", self._banned_words(ban))
            elif event.action == "kick":
                self.end_all(event.principal, event.nick, "kicked", _kicked_words(event.reason))
            return
        if event.action == "room":
            row = self._rooms.get(room)
            if row is not None:
                self._announce_info(row, event.by)
            return
        if event.action in ("invite_used", "adopt", "forget"):
            return
        online = self._registry.by_pid.get(event.principal)
        if event.action in ("kick", "ban") and online is not None and room in online.rooms:
            assert self.remove_member is not None, "set by the hub"
            await self.remove_member(online, room)
        self._announce(
            room,
            Presence(
                room=room,
                nick=event.nick,
                event=event.action,
                by=event.by,
                reason=event.reason,
                until_ms=event.until_ms,
                role=event.role,
                by_account=event.action == "invite" and self._is_account(event.by),
                nick_only=event.principal.startswith("n:"),
            ),
            online,
        )

    def _is_account(self, nick: str) -> bool:
        """Whether ``nick`` (who did something, online somewhere) is an account's."""
        try:
            key = parse_nick(nick).key
        except BadNick:
            return False
        who = self._registry.by_key.get(key) or self._registry.remote.find(key)
        return who is not None and who.account

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _keep(self, s: Standing) -> None:
        key = (s.scope, s.principal, s.kind)
        if key not in self._standings:
            self._per_room[s.scope] = self._per_room.get(s.scope, 0) + 1
            if s.scope == SERVER and s.kind == "ban":
                self._server_bans += 1
        self._standings[key] = s
        if s.kind == "mute":
            self._guarded.add(s.scope)

    def _forget(self, scope: str, pid: str, kind: str) -> None:
        if self._standings.pop((scope, pid, kind), None) is not None:
            self._per_room[scope] -= 1
            if scope == SERVER and kind == "ban":
                self._server_bans -= 1

    def _active(self, scope: str, pid: str, kind: str) -> Standing | None:
        """The standing if it is in force now (a timed one past ``until`` ended by itself)."""
        s = self._standings.get((scope, pid, kind))
        if s is not None and s.until_ms is not None and s.until_ms <= self._now_ms():
            self._forget(scope, pid, kind)
            return None
        return s

    # -- rights ---------------------------------------------------------------------------------

    def is_admin(self, pid: str) -> bool:
        """A server admin: granted the role, or the operator (``chinwag admin``); or (ircoper)
        the principal of the session now acting (`ACTING`) as an admin account still one."""
        if pid == OPERATOR.pid or self._active(SERVER, pid, "role") is not None:
            return True
        acting = ACTING.get()
        return (
            acting is not None
            and acting[0] == pid
            and self._active(SERVER, acting[1], "role") is not None
        )

    def role(self, pid: str, room: str) -> str:
        """``admin``, ``owner``, ``mod`` or ``member``: what ``pid`` may do in ``room``."""
        if self.is_admin(pid):
            return "admin"
        row = self._rooms.get(room)
        if row is not None and row.owner == pid:
            return "owner"
        if self._active(room, pid, "role") is not None:
            return "mod"
        return "member"

    def _rank(self, pid: str, room: str) -> int:
        return RANKS[self.role(pid, room)]

    def may_delete(self, pid: str, room: str) -> bool:
        """A moderator of ``room`` (mod, owner) or a server admin may delete others' messages."""
        return self._rank(pid, room) >= RANKS["mod"]

    def check_outranks(self, pid: str, room: str, sender: str, sender_nick: str) -> None:
        """Raises `Forbidden` (``rank``) unless ``pid`` ranks above ``sender`` in ``room``:
        a mod deletes neither another mod's message, nor the owner's, nor an admin's."""
        if self._rank(sender, room) >= self._rank(pid, room):
            raise Forbidden(
                f"{sender_nick} is {self.role(sender, room)} of #{room}: you cannot delete"
                " their message",
                reason="rank",
            )

    # -- checks the other handlers ask ------------------------------------------------------------

    def check_hello(self, nick: str) -> None:
        """Raises `Banned` (with ``until``) while the account called ``nick`` is banned."""
        if not self._server_bans:
            return
        try:
            key = parse_nick(nick).key
        except ChatError:
            return  # the login refuses the nick itself, in its own words
        refusal = self.server_ban(account_pid(key))
        if refusal is not None:
            raise refusal

    def server_ban(self, pid: str) -> Banned | None:
        """The refusal of a hello while ``pid`` is banned from the server, else None."""
        ban = self._active(SERVER, pid, "ban")
        if ban is None:
            return None
        return Banned(self._banned_words(ban), until=self._until(ban.until_ms))

    def voiced(self, pid: str, room: str) -> bool:
        """Whether ``pid`` has voice in ``room`` (may speak there when it is announce-only)."""
        return self._active(room, pid, "voice") is not None

    def check_say(self, p: Principal, room: str) -> None:
        """Raises `Forbidden` (``muted``, ``announce``) when ``p`` may not speak in ``room``."""
        if room not in self._guarded:
            return
        self.check_muted(p, room)
        row = self._rooms.get(room)
        if (
            row is not None
            and row.announce
            and self._rank(p.pid, room) < RANKS["mod"]
            and not self.voiced(p.pid, room)
        ):
            raise Forbidden(
                f"only the owner, mods and voiced members speak in #{room} (an announce room)",
                reason="announce",
            )

    def check_muted(self, p: Principal, room: str, doing: str = "") -> None:
        """Raises `Forbidden` (``muted``, with ``until``) while ``p`` is muted in ``room``.

        Also asked before a reaction is put on (rooms4): a mute stops reactions as it does
        in Discord or Matrix, else a muted member toggles stored reactions that push real
        messages out of absent members' backlogs. ``doing`` names what was refused.
        """
        if room not in self._guarded:
            return
        mute = self._active(room, p.pid, "mute")
        if mute is not None:
            when = "" if mute.until_ms is None else f" until {clock_text(mute.until_ms)}"
            raise Forbidden(
                f"you are muted in #{room}{when}{doing}",
                reason="muted",
                until=self._until(mute.until_ms),
            )

    def check_join(self, p: Principal, room: str, key: str | None = None) -> None:
        """Raises `Forbidden` (``banned``, ``private``) when ``p`` may not join ``room``;
        `BadKey` without the room's key, `RoomFull` at its member limit (ircmodes)."""
        ban = self._active(room, p.pid, "ban") or self._active(room, "n:" + p.key, "ban")
        if ban is not None:
            raise Forbidden(
                self._banned_words(ban, room), reason="banned", until=self._until(ban.until_ms)
            )
        row = self._rooms.get(room)
        if (
            row is not None
            and row.private
            and row.owner != p.pid
            and self._active(room, p.pid, "invite") is None
            and not self.is_admin(p.pid)
        ):
            raise Forbidden(
                f"#{room} is private: ask one of its mods to invite you", reason="private"
            )
        if row is not None and (row.key is not None or row.limit is not None):
            self._check_key_and_limit(p, row, key)

    def _check_key_and_limit(self, p: Principal, row: RoomSettings, key: str | None) -> None:
        """ircmodes: a room's key and member limit stop a join, unless ``p`` was invited or
        holds a role there (owner, mod, admin). Members never get here: they are in."""
        room = row.name
        invited = self._active(room, p.pid, "invite") is not None
        if invited or self._rank(p.pid, room) >= RANKS["mod"]:
            return
        if row.key is not None:
            if key is None or not key:
                raise BadKey(f"#{room} needs a key to join: ask one of its mods for it")
            if not hmac.compare_digest(key.encode(), row.key.encode()):
                raise BadKey(f"that is not the key of #{room}: ask one of its mods for it")
        if row.limit is not None:
            online = self._registry.online_in(room)
            if online >= row.limit:
                raise RoomFull(
                    f"#{room} is full: {online} are in it, its limit is {row.limit};"
                    " ask one of its mods for an invite, or try later"
                )

    def listed(self, p: Principal, room: str) -> bool:
        """Whether ``rooms`` shows ``room`` to ``p``: private and secret rooms only to members
        and admins."""
        row = self._rooms.get(room)
        hidden = row is not None and (row.private or row.secret)
        return not hidden or room in p.rooms or self.is_admin(p.pid)

    async def joined(self, session: Session, room: str, ref: str | None) -> None:
        """After a join: the room's row (the joiner owns a new room), the invite is used,
        then ``ok`` and ``room_info`` to the joiner."""
        p = session.principal
        row = self._rooms.get(room)
        if row is None:
            row = RoomSettings(room, p.pid, created_ms=self._now_ms())
            self._rooms[room] = row
            self._unsaved.add(room)
            self._prune()
            self._made_one(p.pid)
        if p.account:
            row = await self._save(room)
        if (room, p.pid, "invite") in self._standings:
            self._forget(room, p.pid, "invite")
            await self._store.drop_standing(room, p.pid, "invite", None)
            self._publish("invite_used", room, p.pid, p.nick, p.nick)
        ok(session, ref)
        session.outlet.send(Frame(self._info(row, None, role=self.role(p.pid, room))))

    async def _save(self, room: str) -> RoomSettings:
        """The room's row, written to the store first if it lived in memory only."""
        row = self._rooms[room]
        if room in self._unsaved:
            row = self._rooms[room] = await self._store.ensure_room(row)
            self._unsaved.discard(room)
        return row

    def _prune(self) -> None:
        """Forget rooms made by guests that have nobody online any more (beyond ``max_rooms``)."""
        if len(self._unsaved) <= self.settings.max_rooms:
            return
        for name in list(self._unsaved):
            if name not in self._registry.rooms:
                self._unsaved.discard(name)
                del self._rooms[name]

    async def adopt(self, guest: str, account: str, nick: str, rooms: frozenset[str]) -> None:
        """A guest registered: the rooms it is in are written, and its standings and the
        rooms it owns pass to its account (a mute is not escaped by registering)."""
        for room in sorted(rooms & self._unsaved):
            await self._save(room)
        for (scope, pid, kind), standing in list(self._standings.items()):
            if pid == guest:
                moved = dataclasses.replace(standing, principal=account)
                if moved.guest == guest:
                    moved = dataclasses.replace(moved, guest=None)
                await self._store.put_standing(moved, None)
                await self._store.drop_standing(scope, guest, kind, None)
                self._forget(scope, guest, kind)
                self._keep(moved)
            elif standing.guest == guest:  # made by the guest: the account's now (ircroles)
                moved = dataclasses.replace(standing, guest=None)
                await self._store.put_standing(moved, None)
                self._keep(moved)
        for name, row in list(self._rooms.items()):
            if row.owner == guest or row.guest == guest:
                owner = account if row.owner == guest else row.owner
                new = dataclasses.replace(row, owner=owner, guest=None)
                await self._save(name)
                entry = AuditEntry(self._now_ms(), nick, "register", name, nick, "", "owner")
                await self._store.update_room(new, entry)
                self._rooms[name] = new
        self._publish("adopt", None, account, nick, nick)

    async def ended(self, guest: str, nick: str) -> None:
        """A guest's session ended: its mutes, bans, invites, voice and roles end with it
        (the next guest with the nick is someone else). Kept, they would fill
        ``room_standings_max`` for good: nobody can lift a standing of a guest that is gone.

        ircroles: so does what the guest made: the standings it set on others (each lifted
        with an audit entry and told to the room, as if it had lifted them), and the locks
        of the rooms whose ``guest`` it is (private, announce, secret off, no key nor limit,
        topic locked again: a new room's), so that nothing a guest did outlives it.
        """
        for scope, pid, kind in [key for key in self._standings if key[1] == guest]:
            self._forget(scope, pid, kind)
            entry = None
            if kind in ("role", "voice"):  # ircroles: the powers it held, in the audit log
                detail = f"{kind} ended with the guest's session"
                entry = AuditEntry(self._now_ms(), nick, "ended", scope, nick, "", detail)
            await self._store.drop_standing(scope, pid, kind, entry)
        for standing in list(self._standings.values()):
            s = standing
            if s.guest == guest and self._active(s.scope, s.principal, s.kind) is not None:
                await self._lift_made(s, nick)
        for row in list(self._rooms.values()):
            if row.guest == guest:
                await self._unlock(row, nick)

    async def _lift_made(self, s: Standing, guest_nick: str) -> None:
        """Lift ``s``, made by the guest ``guest_nick`` whose session ended (ircroles)."""
        online = self._registry.by_pid.get(s.principal)
        if online is not None:
            nick = online.nick
        elif s.kind == "ban" and s.value:
            nick = s.value
        else:
            nick = s.principal[2:]  # an account's key, or a banned nick's key
        self._forget(s.scope, s.principal, s.kind)
        lifted = _LIFTED.get(s.kind, "grant" if s.kind == "role" else "uninvite")
        detail = f"{s.kind} ended with the session of the guest who made it"
        entry = AuditEntry(self._now_ms(), guest_nick, lifted, s.scope, nick, "", detail)
        await self._store.drop_standing(s.scope, s.principal, s.kind, entry)
        if s.kind == "invite":
            return  # nobody is told of an invite's end
        role = "member" if s.kind == "role" else None
        event = Presence(room=s.scope, nick=nick, event=lifted, by=guest_nick, role=role)
        self._announce(s.scope, event, online)
        self._publish(lifted, s.scope, s.principal, nick, guest_nick, role=role)

    async def _unlock(self, row: RoomSettings, guest_nick: str) -> None:
        """The room's locks set by a guest whose session ended, undone (ircroles)."""
        new = dataclasses.replace(
            row,
            private=False,
            announce=False,
            secret=False,
            topic_locked=True,
            key=None,
            limit=None,
            guest=None,
        )
        changes = _changes(row, new)
        detail = "session ended" + (": " + " ".join(changes) if changes else "")
        entry = AuditEntry(self._now_ms(), guest_nick, "room", row.name, None, "", detail)
        await self._save(row.name)
        await self._store.update_room(new, entry)
        self._rooms[row.name] = new
        self._announce_info(new, guest_nick)
        self._publish("room", row.name, "", "", guest_nick)

    # -- rooms made, and empty rooms forgotten (rooms4) ----------------------------------------

    def _recent(self, pid: str) -> list[float]:
        """When ``pid`` made the rooms it made within ``rooms_made_window``, oldest first."""
        since = self._clock() - self.settings.rooms_made_window
        times = [t for t in self._made.get(pid, ()) if t > since]
        if times:
            self._made[pid] = times
        else:
            self._made.pop(pid, None)
        return times

    def check_make(self, p: Principal, room: str) -> None:
        """Raises `Forbidden` (``rooms_made``) when joining ``room`` would make a new room
        and ``p`` made ``rooms_made_max`` within ``rooms_made_window`` already (audit4:
        rooms were made without end, each a row kept for good)."""
        if room in self._rooms:
            return
        times = self._recent(p.pid)
        most = self.settings.rooms_made_max
        if len(times) >= most:
            wait = max(times[0] + self.settings.rooms_made_window - self._clock(), 1.0)
            window = self.settings.rooms_made_window / 60
            raise Forbidden(
                f"you have made {len(times)} rooms in the last {window:g} minutes, the most"
                f" allowed; try again in {wait / 60:.0f} minutes, or join a room that exists"
                " (see rooms)",
                reason="rooms_made",
                retry_after=round(wait, 1),
            )

    def _made_one(self, pid: str) -> None:
        times = self._recent(pid)
        times.append(self._clock())
        self._made[pid] = times
        if len(self._made) > 4 * self.settings.rooms_made_max + 1024:
            for other in list(self._made):  # those whose window passed: forgotten
                self._recent(other)

    async def forget_if_empty(self, room: str) -> bool:
        """Forget ``room`` (in memory, and in the store) when nobody is in it here and it
        carries nothing worth keeping: no topic, not private, not announce, no retention of its
        own, no standing (and in the store: no account in it, no message). Whether it was
        forgotten.

        The caller knows that nobody is online in it, on this node or another.
        """
        row = self._rooms.get(room)
        if (
            row is None
            or room == LOBBY
            or row.topic
            or row.private
            or row.announce
            or row.secret
            or not row.topic_locked
            or row.retention_days
            or row.key
            or row.limit
            or self._per_room.get(room, 0)
            or room in self._registry.rooms
        ):
            return False
        del self._rooms[room]  # at once: a join meanwhile makes it anew (and finds the row)
        if room in self._unsaved:
            self._unsaved.discard(room)
            return True
        if await self._store.forget_room(room):
            self._publish("forget", room, "", "", "")
            return True
        if room not in self._rooms:  # still worth keeping (an account in it, a message)
            self._rooms[room] = row
        return False

    def info_for(self, p: Principal, room: str) -> RoomInfo | None:
        """rooms4: ``room``'s settings with ``p``'s own role there (None: it has no row)."""
        row = self._rooms.get(room)
        return None if row is None else self._info(row, None, role=self.role(p.pid, room))

    def _announce_info(self, row: RoomSettings, by: str) -> None:
        """The room's new settings to each online member, with its own role (rooms4):
        one frame per role, rendered once for every member who has it."""
        frames: dict[str, Frame] = {}
        for member in set(self._registry.rooms.get(row.name, ())):
            role = self.role(member.pid, row.name)
            frame = frames.get(role)
            if frame is None:
                frame = frames[role] = Frame(self._info(row, by, role=role))
            for s in member.sessions:
                s.deliver(0, frame)

    def _info(self, row: RoomSettings, by: str | None, role: str | None = None) -> RoomInfo:
        trusted = role is not None and RANKS.get(role, 0) >= RANKS["mod"]  # may know the key
        return RoomInfo(
            room=row.name,
            topic=row.topic,
            private=row.private,
            announce=row.announce,
            by=by,
            role=role,
            retention_days=row.retention_days,
            created_ms=row.created_ms or None if role is not None else None,
            keyed=row.key is not None,
            key=row.key if trusted else None,
            limit=row.limit,
            topic_locked=row.topic_locked,
            secret=row.secret,
            topic_by=row.topic_by if row.topic_ms is not None else None,
            topic_ms=row.topic_ms,
        )

    # -- actions --------------------------------------------------------------------------------

    def _audit(
        self,
        actor: Principal,
        action: str,
        room: str | None,
        target: str | None,
        reason: str = "",
        detail: str = "",
    ) -> AuditEntry:
        return AuditEntry(self._now_ms(), actor.nick, action, room, target, reason, detail)

    def _acting_in(self, p: Principal, raw_room: str, least: str) -> str:
        """The room, if ``p`` has at least the role ``least`` there (admins anywhere)."""
        room = parse_room(raw_room)
        if room not in self._rooms:
            raise NotMember(f"there is no room #{room}", reason="no_room")
        if room not in p.rooms and not self.is_admin(p.pid):
            raise NotMember(f"you are not in #{room}")
        if self._rank(p.pid, room) < RANKS[least]:
            who = "its owner" if least == "owner" else "its owner or a mod"
            raise Forbidden(f"only {who} may do that in #{room}", reason="not_allowed")
        return room

    def _check_reason(self, reason: str) -> None:
        most = self.settings.moderation_reason_max
        if len(reason) > most:
            raise BadRequest(f"a reason is at most {most} characters, not {len(reason)}")
        if not one_line(reason):
            # A newline would forge lines of `chinwag admin audit`, an escape drive its terminal.
            raise BadRequest("a reason is one line without control characters")

    async def _target(
        self, raw_nick: str, by_nick: bool = False
    ) -> tuple[str, str, Principal | None]:
        """(principal, display nick, online principal) of ``raw_nick``: an account, or an
        online guest (a guest is acted on by its session); ``by_nick`` (a ban): else the nick
        itself (``n:`` and its key), whoever takes it later (ircroles)."""
        nick = parse_nick(raw_nick)
        online = self._registry.by_key.get(nick.key)
        if online is not None:
            return online.pid, online.nick, online
        row = await self._store.get_account(nick.key)
        if (row is None or row.deleted) and by_nick:
            return "n:" + nick.key, nick.display, None
        if row is None or row.deleted:
            raise NoSuchUser(f"nobody called {nick.display} is registered or online")
        return account_pid(row.key), row.nick, None

    def _room_full(self, room: str) -> None:
        most = self.settings.room_standings_max
        if self._per_room.get(room, 0) >= most:
            raise Forbidden(
                f"#{room} keeps {most} bans, mutes, invites and mods at most; lift some first",
                reason="limit",
            )

    def _announce(self, room: str, event: Outgoing, also: Principal | None = None) -> None:
        """``event`` to every session of the room's online members (and of ``also``)."""
        frame = Frame(event)
        members = set(self._registry.rooms.get(room, ()))
        if also is not None:
            members.add(also)
        for member in members:
            for s in member.sessions:
                s.deliver(0, frame)

    async def room_set(self, p: Principal, cmd: RoomSet) -> None:
        """Change a room's topic (owner, mod; any member when not ``topic_locked``), key or
        limit (owner, mod: ircmodes), private, announce, secret, topic lock or own retention
        (owner); members are told.

        A guest's locks end with its session (ircroles): the room's ``guest`` is the guest
        who set a lock last (a key and a limit are locks too), cleared when an account sets one.
        """
        locks = (cmd.private, cmd.announce, cmd.secret, cmd.topic_locked, cmd.key, cmd.limit)
        if any(v is not None for v in (*locks[:4], cmd.retention_days)):
            least = "owner"
        else:
            found = self._rooms.get(parse_room(cmd.room))
            topic_only = cmd.key is None and cmd.limit is None
            free = topic_only and found is not None and not found.topic_locked
            least = "member" if free else "mod"
        room = self._acting_in(p, cmd.room, least)
        row = self._rooms[room]
        key, limit = self._key(row, cmd.key), self._limit(row, cmd.limit)
        topic = row.topic
        if cmd.topic is not None:
            topic = cmd.topic.strip()
            if len(topic) > self.settings.topic_max:
                raise BadRequest(
                    f"a topic is at most {self.settings.topic_max} characters, not {len(topic)}"
                )
            if not one_line(topic):
                raise BadRequest("a topic is one line without control characters")
        if room == LOBBY and (cmd.private or cmd.key or cmd.limit):
            raise Forbidden(
                "the lobby is everyone's: it cannot be private, nor have a key or a limit",
                reason="lobby",
            )
        guest = row.guest
        if any(v is not None for v in locks):
            guest = None if p.account else p.pid
        topic_by, topic_ms = row.topic_by, row.topic_ms
        if topic != row.topic:  # who set it, and when (IRC 333)
            topic_by, topic_ms = (p.nick, self._now_ms()) if topic else ("", None)
        new = RoomSettings(
            room,
            row.owner,
            topic,
            row.private if cmd.private is None else cmd.private,
            row.announce if cmd.announce is None else cmd.announce,
            row.created_ms,
            self._retention(row, cmd.retention_days),
            key,
            limit,
            row.topic_locked if cmd.topic_locked is None else cmd.topic_locked,
            row.secret if cmd.secret is None else cmd.secret,
            guest,
            topic_by,
            topic_ms,
        )
        changes = _changes(row, new)
        await self._save(room)
        await self._store.update_room(
            new, self._audit(p, "room", room, None, detail=" ".join(changes))
        )
        self._rooms[room] = new
        if new.announce:
            self._guarded.add(room)
        self._announce_info(new, p.nick)
        self._publish("room", room, "", "", p.nick)

    def _retention(self, row: RoomSettings, days: int | None) -> int | None:
        """The room's own retention after a ``room`` request's ``retention_days`` (issue 17).

        None: not given, the room's stays; 0: cleared. Raises `BadRequest` above
        ``room_retention_max_days``.
        """
        if days is None:
            return row.retention_days
        most = self.settings.room_retention_max_days
        if days > most:
            raise BadRequest(
                f"a room keeps its messages {most} days at most (retention_days), not {days};"
                " 0 clears the room's own retention"
            )
        return days or None

    def _key(self, row: RoomSettings, key: str | None) -> str | None:
        """The room's key after a ``room`` request's ``key`` (ircmodes): None: not given,
        the room's stays; ``""``: cleared. Raises `BadRequest` (``"reason":"key"``) for a
        key longer than ``room_key_max`` bytes, or with spaces, commas or control
        characters (it could not be given in an IRC ``JOIN #a,#b key1,key2``)."""
        if key is None:
            return row.key
        if not key:
            return None
        most = self.settings.room_key_max
        if len(key.encode()) > most:
            raise BadRequest(
                f"a room's key is at most {most} bytes, not {len(key.encode())}", reason="key"
            )
        if any(c.isspace() or c == "," or not c.isprintable() for c in key):
            raise BadRequest(
                "a room's key has no spaces, commas or control characters", reason="key"
            )
        return key

    def _limit(self, row: RoomSettings, limit: int | None) -> int | None:
        """The room's member limit after a ``room`` request's ``limit`` (ircmodes): None:
        not given, the room's stays; 0: cleared. Raises `BadRequest` (``"reason":"limit"``)
        above ``room_limit_max``."""
        if limit is None:
            return row.limit
        most = self.settings.room_limit_max
        if limit > most:
            raise BadRequest(
                f"a room's member limit is at most {most}, not {limit}; 0 clears it",
                reason="limit",
            )
        return limit or None

    async def invite(self, p: Principal, cmd: Invite) -> None:
        """Let someone join a (private) room; the room's members and the invitee are told."""
        room = self._acting_in(p, cmd.room, "mod")
        pid, nick, online = await self._target(cmd.nick)
        if room in (online.rooms if online is not None else ()):
            raise BadRequest(f"{nick} is in #{room} already", reason="member")
        if (room, pid, "invite") not in self._standings:
            self._room_full(room)
        standing = Standing(room, pid, "invite", by=p.nick, ts_ms=self._now_ms(), guest=_guest(p))
        await self._save(room)
        await self._store.put_standing(standing, self._audit(p, "invite", room, nick))
        self._keep(standing)
        invite = Presence(room=room, nick=nick, event="invite", by=p.nick, by_account=p.account)
        self._announce(room, invite, online)
        self._publish("invite", room, pid, nick, p.nick)

    async def moderate(self, p: Principal, cmd: Moderate) -> None:
        """kick, ban, unban, mute, unmute: in a room, or (an admin's) server-wide."""
        self._check_reason(cmd.reason)
        if cmd.room is None:
            await self._server_action(p, cmd)
            return
        room = self._acting_in(p, cmd.room, "mod")
        action = cmd.action
        pid, nick, online = await self._target(cmd.nick, by_nick=action in ("ban", "unban"))
        if action == "unban" and self._active(room, pid, "ban") is None:
            by_nick = "n:" + parse_nick(nick).key  # the nick's own ban (ircroles)
            if self._active(room, by_nick, "ban") is not None:
                pid, online = by_nick, None
        rank = self._rank(pid, room)
        if rank >= self._rank(p.pid, room) and not (action in _VOICE and pid == p.pid):
            raise Forbidden(
                f"{nick} is {self.role(pid, room)} of #{room}: you cannot {cmd.action} them",
                reason="rank",
            )
        if room == LOBBY and action in ("kick", "ban", "unban"):
            raise Forbidden(
                "everyone stays in the lobby: mute them there, or ask an admin to ban them"
                " from the server",
                reason="lobby",
            )
        now = self._now_ms()
        if cmd.until_ms is not None and cmd.until_ms <= now:
            raise BadRequest(f"'until' is in the past ({_iso(cmd.until_ms)}); give a later time")
        event = Presence(
            room=room,
            nick=nick,
            event=action,
            by=p.nick,
            reason=cmd.reason,
            until_ms=cmd.until_ms,
            nick_only=pid.startswith("n:"),
        )
        detail = "" if cmd.until_ms is None else f"until {_iso(cmd.until_ms)}"
        entry = self._audit(p, action, room, nick, cmd.reason, detail)
        if action in ("ban", "mute", "voice"):
            if (room, pid, action) not in self._standings:
                self._room_full(room)
            # A ban keeps the banned display nick (``value``): the ban list shows it (ircwho).
            kept = nick if action == "ban" else ""
            until = None if action == "voice" else cmd.until_ms
            standing = Standing(
                room, pid, action, kept, until, p.nick, cmd.reason, now, guest=_guest(p)
            )
            await self._save(room)
            await self._store.put_standing(standing, entry)
            self._keep(standing)
        elif action in ("unban", "unmute", "unvoice"):
            kind = action[2:]
            if self._active(room, pid, kind) is None:
                state = {"ban": "banned", "mute": "muted", "voice": "voiced"}[kind]
                raise BadRequest(f"{nick} is not {state} in #{room}")
            self._forget(room, pid, kind)
            await self._store.drop_standing(room, pid, kind, entry)
        else:  # kick
            if not await self._is_member(pid, online, room):
                raise NotMember(f"{nick} is not in #{room}")
            await self._store.add_audit(entry)
        if action in ("kick", "ban") and not pid.startswith("n:"):
            if online is not None:
                assert self.remove_member is not None, "set by the hub"
                await self.remove_member(online, room)
            else:
                await self._store.leave_room(pid, room)  # offline here: other nodes, next login
            if self._active(room, pid, "role") is not None:
                # A kicked or banned mod comes back (if ever) as a member: the role goes too.
                await self.set_role(room, pid, nick, "member", p.nick)
        self._announce(room, event, online)
        self._publish(action, room, pid, nick, p.nick, cmd.reason, cmd.until_ms)

    async def _is_member(self, pid: str, online: Principal | None, room: str) -> bool:
        if online is not None:
            return room in online.rooms
        return await self._store.is_member(pid, room)

    async def _server_action(self, p: Principal, cmd: Moderate) -> None:
        if not self.is_admin(p.pid):
            raise Forbidden(
                f"only a server admin may {cmd.action} without a room", reason="not_admin"
            )
        if cmd.action not in ("kick", "ban", "unban"):
            raise BadRequest(f"{cmd.action} needs a 'room'")
        pid, nick, _ = await self._target(cmd.nick)
        if self.is_admin(pid):
            raise Forbidden(f"{nick} is an admin: take that role away first", reason="rank")
        now = self._now_ms()
        if cmd.until_ms is not None and cmd.until_ms <= now:
            raise BadRequest(f"'until' is in the past ({_iso(cmd.until_ms)}); give a later time")
        detail = "" if cmd.until_ms is None else f"until {_iso(cmd.until_ms)}"
        entry = self._audit(p, cmd.action, None, nick, cmd.reason, detail)
        message = ""
        if cmd.action == "ban":
            standing = Standing(SERVER, pid, "ban", "", cmd.until_ms, p.nick, cmd.reason, now)
            await self._store.put_standing(standing, entry)
            self._keep(standing)
            message = self._banned_words(standing)
        elif cmd.action == "unban":
            if self._active(SERVER, pid, "ban") is None:
                raise BadRequest(f"{nick} is not banned from this server")
            self._forget(SERVER, pid, "ban")
            await self._store.drop_standing(SERVER, pid, "ban", entry)
        else:
            await self._store.add_audit(entry)
            message = _kicked_words(cmd.reason)
        self._publish(cmd.action, None, pid, nick, p.nick, cmd.reason, cmd.until_ms)
        if cmd.action != "unban":
            self.end_all(pid, nick, "banned" if cmd.action == "ban" else "kicked", message)

    def end_all(self, pid: str, nick: str, reason: str, message: str) -> int:
        """End every session of ``pid`` at once with ``bye`` (``reason``); how many."""
        assert self.end_sessions is not None, "set by the hub"
        key = pid[2:] if pid.startswith("a:") else parse_nick(nick).key
        return self.end_sessions(key, reason, message, Bye(reason=reason))

    async def grant(self, p: Principal, cmd: Grant) -> None:
        """Make an account a mod (or a member again) of a room; an admin (or not) of the server."""
        if cmd.room is None:
            if not self.is_admin(p.pid):
                raise Forbidden("only a server admin may grant server roles", reason="not_admin")
            if cmd.role not in ("admin", "member"):
                raise BadRequest("a server role is 'admin' or 'member'")
            scope, room = SERVER, None
        else:
            room = self._acting_in(p, cmd.room, "owner")
            if cmd.role not in ("mod", "member"):
                raise BadRequest("a room role is 'mod' or 'member'")
            scope = room
        pid, nick, online = await self._target(cmd.nick)
        if not pid.startswith("a:"):
            if room is None:
                raise Forbidden(f"{nick} is a guest: only accounts are admins", reason="guest")
            # ircroles: a guest's role is for its session, and for a room it is in.
            if online is None or room not in online.rooms:
                raise NotMember(f"{nick} is not in #{room}")
        if room is not None and self.role(pid, room) in ("owner", "admin"):
            raise Forbidden(f"{nick} is {self.role(pid, room)} of #{room} already", reason="rank")
        await self.set_role(scope, pid, nick, cmd.role, p.nick, guest=_guest(p))
        self._publish("grant", room, pid, nick, p.nick, role=cmd.role)
        if room is not None:
            self._announce(
                room,
                Presence(room=room, nick=nick, event="grant", by=p.nick, role=cmd.role),
                online,
            )

    async def set_role(
        self, scope: str, pid: str, nick: str, role: str, by: str, guest: str | None = None
    ) -> None:
        """Give ``pid`` the role (``member``: take it away), with its audit entry; ``guest``:
        the guest granting it, with whose session it ends (ircroles)."""
        entry = AuditEntry(self._now_ms(), by, "grant", scope or None, nick, "", f"role {role}")
        if role == "member":
            self._forget(scope, pid, "role")
            if not await self._store.drop_standing(scope, pid, "role", entry):
                await self._store.add_audit(entry)
            return
        if (scope, pid, "role") not in self._standings and scope:
            self._room_full(scope)
            await self._save(scope)
        standing = Standing(scope, pid, "role", role, None, by, "", self._now_ms(), guest)
        await self._store.put_standing(standing, entry)
        self._keep(standing)

    def bans(self, p: Principal, cmd: ListBans) -> BansReply:
        """The bans of a room in force, oldest first: for its owner, mods and admins (§12.5)."""
        room = self._acting_in(p, cmd.room, "mod")
        rows = []
        for scope, pid, kind in list(self._standings):
            if scope != room or kind != "ban":
                continue
            s = self._active(scope, pid, kind)
            if s is None:
                continue
            # Bans older than ircwho kept no nick: an account's key is its nick folded.
            nick = s.value or (pid[2:] if pid[:2] in ("a:", "n:") else "guest")
            rows.append(
                BanRow(nick=nick, by=s.by, ts_ms=s.ts_ms, until_ms=s.until_ms, reason=s.reason)
            )
        rows.sort(key=lambda r: (r.ts_ms, r.nick))
        return BansReply(room=room, bans=tuple(rows), ref=cmd.ref)

    async def audited_delete(
        self, actor: Principal, room: str | None, message_id: int, sender: str
    ) -> None:
        """Record a moderator's or admin's deletion of someone else's message."""
        await self._store.add_audit(
            self._audit(actor, "delete", room, f"#{message_id}", detail=f"from {sender}")
        )

    # -- words ----------------------------------------------------------------------------------

    @staticmethod
    def _until(until_ms: int | None) -> str | None:
        return None if until_ms is None else _iso(until_ms)

    @staticmethod
    def _banned_words(ban: Standing, room: str | None = None) -> str:
        where = f"from #{room}" if room else "from this server"
        when = "" if ban.until_ms is None else f" until {clock_text(ban.until_ms)}"
        why = f" ({ban.reason})" if ban.reason else ""
        return f"you are banned {where}{when}{why}"


__all__ = ["RANKS", "SERVER", "Moderation", "clock_text"]
