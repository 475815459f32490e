"""Rooms: membership (join, leave, with their caps), who, the room list, history."""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable, Collection
from typing import Required, TypedDict

from chinwag.bus.base import Membership
from chinwag.config import Settings
from chinwag.core.blocks import BLOCKED_PAGES, visible
from chinwag.core.delivery import message_event
from chinwag.core.moderation import Moderation
from chinwag.core.receipts import DmReceipts
from chinwag.core.rules import LOBBY, parse_room
from chinwag.core.sessions import (
    OnlineRegistry,
    Principal,
    RemotePrincipal,
    Session,
    irc_ident,
    is_oper,
    ok,
    reply,
)
from chinwag.errors import ChatError, Forbidden, NotMember
from chinwag.protocol.events import (
    History,
    HistoryRange,
    HistoryReply,
    HistoryTargets,
    Join,
    Leave,
    ListRooms,
    ReceiptState,
    Results,
    RoomRow,
    RoomsReply,
    Who,
    WhoMember,
    WhoReply,
)
from chinwag.storage.base import Page, Store, StoredMessage

REPLY_BYTES_PER_TOKEN = 4096  # who, rooms and history also pay for their reply's size


def reply_bytes(m: StoredMessage) -> int:
    """About how many bytes ``m`` takes in a reply: its body, its reactions and mentions
    (audit4: they were left out, so a page of much-reacted messages, or of messages whose
    edits mentioned more and more people, passed the byte limit), the rest."""
    size = len(m.body.encode()) + 120 + sum(len(n.encode()) + 3 for n in m.mentions)
    for emoji, nicks in m.reactions:
        size += 4 * len(emoji) + 24 + sum(len(n.encode()) + 3 for n in nicks)
    return size


Resolver = Callable[[str], Awaitable[tuple[str, str, bool]]]
"""(principal, display nick, online?) of a DM partner, by nick (`Posting.resolve`)."""


class _Range(TypedDict, total=False):
    """The bounds of a history range (`Store.room_history_range`)."""

    after: Required[int]
    before: Required[int | None]
    limit: Required[int]
    newest: Required[bool]
    after_ms: int
    before_ms: int | None


class Rooms:
    """Join, leave, who, the list of rooms and history, and the room caps.

    Args:
        settings: limits (room caps, reply sizes, history pages).
        store: memberships and history.
        registry: who is online.
        resolve: finds the other party of a DM history.
        moderation: who may join, which rooms are listed, ``room_info``.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        registry: OnlineRegistry,
        resolve: Resolver,
        moderation: Moderation,
    ) -> None:
        self.settings = settings
        self._moderation = moderation
        self._store = store
        self._resolve = resolve
        self._registry = registry
        # The registry's tables, never replaced: read directly.
        self._rooms = registry.rooms
        self.receipts: DmReceipts | None = None  # issue 15: a DM page's receipts (the hub's)

    async def join(self, session: Session, cmd: Join) -> None:
        """Join a room (within the caps); its members are told."""
        room = parse_room(cmd.room)
        p = session.principal
        if room in p.rooms:
            await self._moderation.joined(session, room, cmd.ref)
            return
        self._check_room_caps(p, room)
        self._moderation.check_join(p, room, cmd.key)
        self._moderation.check_make(p, room)
        if p.account:
            await self._store.join_room(p.pid, room)
            if room not in p.rooms:
                # A ban (made here, or heard from another node) may have come while we
                # waited: it found nobody to take out, so it is checked again.
                try:
                    self._moderation.check_join(p, room, cmd.key)
                except ChatError:
                    await self._store.leave_room(p.pid, room)
                    raise
            else:  # another session joined while we waited
                await self._moderation.joined(session, room, cmd.ref)
                return
        p.rooms = p.rooms | {room}  # never changed in place: guests share one set
        self._rooms.setdefault(room, set()).add(p)
        await self._moderation.joined(session, room, cmd.ref)
        self._registry.presence(room, p, "join", exclude=session)
        self._registry.announce(Membership(self._registry.node, p.pid, room, True))

    def _check_room_caps(self, p: Principal, room: str) -> None:
        """Raises `Forbidden` when joining ``room`` would pass a room cap."""
        s = self.settings
        cap = s.max_rooms_per_account if p.account else s.max_rooms_per_guest
        if len(p.rooms) >= cap:
            hint = "" if p.account else f" (an account may be in {s.max_rooms_per_account})"
            raise Forbidden(
                f"you are in {len(p.rooms)} rooms, the most allowed{hint}; leave one first",
                reason="room_limit",
            )
        if room not in self._rooms and len(self._rooms) >= s.max_rooms:
            raise Forbidden(
                "this server has as many rooms as it can hold; join one that exists"
                " (see rooms) or try later",
                reason="server_room_limit",
            )

    async def remove(self, p: Principal, room: str) -> None:
        """Take ``p`` out of ``room`` (a kick or a ban): online at once, then in the store.

        The room's members were told already, with who did it and why.
        """
        if room in p.rooms:  # at once: nothing of the room reaches them from now on
            p.rooms = p.rooms - {room}
            members = self._rooms.get(room)
            if members is not None:
                members.discard(p)
                if not members:
                    del self._rooms[room]
        if p.account:
            await self._store.leave_room(p.pid, room)
        await self._forget_if_empty(room)

    async def leave(self, session: Session, cmd: Leave) -> None:
        """Leave a room (never the lobby); its members are told."""
        room = parse_room(cmd.room)
        p = session.principal
        if room == LOBBY:
            raise Forbidden("everyone stays in the lobby")
        if room not in p.rooms:
            raise NotMember(f"you are not in #{room}")
        if p.account:
            await self._store.leave_room(p.pid, room)
            if room not in p.rooms:
                ok(session, cmd.ref)
                return
        self._registry.presence(room, p, "leave", exclude=session, reason=cmd.reason or None)
        p.rooms = p.rooms - {room}
        members = self._rooms.get(room)
        if members is not None:
            members.discard(p)
            if not members:
                del self._rooms[room]
        self._registry.announce(Membership(self._registry.node, p.pid, room, False))
        await self._forget_if_empty(room)
        ok(session, cmd.ref)

    async def _forget_if_empty(self, room: str) -> None:
        """rooms4: a room nobody is online in, that carries nothing, is forgotten (else
        rooms made by joining and leaving new names were kept for good)."""
        if room in self._rooms:
            return
        if self._registry.remote.nodes and self._registry.remote.members(room):
            return  # online on another node
        await self._moderation.forget_if_empty(room)

    def who(self, session: Session, cmd: Who) -> None:
        """Reply with the room's online members (the sender must be one)."""
        room = parse_room(cmd.room)
        if room not in session.principal.rooms:
            raise NotMember(f"you are not in #{room}")
        members: Collection[Principal | RemotePrincipal] = self._rooms.get(room, ())
        elsewhere = self._registry.remote.members(room) if self._registry.remote.nodes else ()
        if elsewhere:  # online on other nodes too: each principal once
            here = {m.pid: m for m in members}
            members = [*here.values(), *(m for m in elsewhere if m.pid not in here)]
        most = self.settings.who_reply_max
        truncated = len(members) > most
        listed = heapq.nsmallest(most, members, key=lambda m: m.nick.casefold())  # sorted
        role = self._moderation.role
        users = tuple(
            WhoMember(
                nick=m.nick,
                account=m.account,
                bot=m.bot,
                away=m.away,
                role=role(m.pid, room),
                voiced=self._moderation.voiced(m.pid, room),
                user=ident.user if ident is not None else None,
                real_name=ident.real_name if ident is not None else None,
                oper=is_oper(m, self._moderation.is_admin),
            )
            for m, ident in ((m, irc_ident(m)) for m in listed)
        )
        session.bucket.take(sum(32 + len(m.nick) for m in listed) / REPLY_BYTES_PER_TOKEN)
        info = self._moderation.info_for(session.principal, room)
        reply(
            session, WhoReply(room=room, users=users, truncated=truncated, info=info, ref=cmd.ref)
        )

    async def list_rooms(self, session: Session, cmd: ListRooms) -> None:
        """Reply with the rooms of this server, the busiest if there are too many."""
        names = set(await self._store.room_member_counts())
        names.update(self._rooms)
        names.add(LOBBY)
        p = session.principal
        names = {name for name in names if self._moderation.listed(p, name)}
        online_in = self._registry.online_in
        most = self.settings.rooms_reply_max
        truncated = len(names) > most
        if truncated:  # the busiest rooms
            names = set(heapq.nsmallest(most, names, key=lambda n: (-online_in(n), n)))
        rooms = tuple(RoomRow(name=name, online=online_in(name)) for name in sorted(names))
        session.bucket.take(sum(32 + len(n) for n in names) / REPLY_BYTES_PER_TOKEN)
        reply(session, RoomsReply(rooms=rooms, truncated=truncated, ref=cmd.ref))

    async def history(self, session: Session, cmd: History) -> None:
        """Reply with a page of a room's or a DM conversation's history."""
        p = session.principal
        limit = min(cmd.limit or self.settings.history_default, self.settings.history_max)
        room: str | None = None
        if cmd.room is not None:
            room = parse_room(cmd.room)
            if room not in p.rooms:
                raise NotMember(f"you are not in #{room}")
        else:
            other_pid, other_nick, _ = await self._resolve(cmd.with_ or "")

        async def read(before: int | None) -> Page:
            if room is not None:
                return await self._store.room_history(room, before=before, limit=limit)
            return await self._store.dm_history(p.pid, other_pid, before=before, limit=limit)

        async def read_after(after: int) -> Page:  # issue 15: oldest first, forwards
            r = _Range(after=after, before=None, limit=limit, newest=False)
            if room is not None:
                return await self._store.room_history_range(room, **r)
            return await self._store.dm_history_range(p.pid, other_pid, **r)

        forwards = cmd.after is not None
        page = await (read_after(cmd.after) if cmd.after is not None else read(cmd.before))
        if p.blocked:
            # Issue 16: the blocked ones' messages (and reactions) are left out. A
            # page they filled is followed by older ones (a few at most), so that a
            # client paging by the oldest id it was given has one to page by (by
            # newer ones, paging forwards: issue 15).
            for _ in range(BLOCKED_PAGES):
                if visible(p.blocked, page.messages) or not page.more or not page.messages:
                    break
                if forwards:
                    page = await read_after(page.messages[-1].id)
                else:
                    page = await read(page.messages[0].id)
        receipts = None
        if room is None and self.receipts is not None:
            receipts = await self.receipts.of_dm(p, other_pid, other_nick)
        self._answer(
            session, page, room, cmd.with_, cmd.ref, keep_newest=not forwards, receipts=receipts
        )

    def _answer(
        self,
        session: Session,
        page: Page,
        room: str | None,
        with_: str | None,
        ref: str | None,
        *,
        keep_newest: bool,
        receipts: ReceiptState | None = None,
    ) -> None:
        """Reply with ``page`` (less what the asker blocks), cut at the byte limit from its
        oldest or its newest end."""
        p = session.principal
        shown = visible(p.blocked, page.messages) if p.blocked else page.messages
        messages = [message_event(m, own=m.sender == p.pid) for m in shown]
        more = page.more
        size = 0
        order = range(len(messages) - 1, -1, -1) if keep_newest else range(len(messages))
        for n, i in enumerate(order):
            size += reply_bytes(shown[i])
            if size > self.settings.history_max_bytes and n > 0:  # one at least: to page on
                messages = messages[i + 1 :] if keep_newest else messages[:i]
                more = True
                break
        answer = HistoryReply(
            room=room,
            with_=None if room is not None else with_,
            messages=tuple(messages),
            more=more,
            ref=ref,
            receipts=receipts,
        )
        session.bucket.take(size / REPLY_BYTES_PER_TOKEN)
        reply(session, answer)

    # -- IRC CHATHISTORY (issue 19) --

    async def history_range(self, session: Session, cmd: HistoryRange) -> None:
        """Reply with the messages of a room or a DM in a range of ids (see `HistoryRange`)."""
        p = session.principal
        limit = min(cmd.limit, self.settings.history_max)
        room: str | None = None
        if cmd.room is not None:
            room = parse_room(cmd.room)
            if room not in p.rooms:
                raise NotMember(f"you are not in #{room}")
            store_room = room

            async def read(r: _Range) -> Page:
                return await self._store.room_history_range(store_room, **r)
        else:
            other_pid, _, _ = await self._resolve(cmd.with_ or "")

            async def read(r: _Range) -> Page:
                return await self._store.dm_history_range(p.pid, other_pid, **r)

        whole = _Range(
            after=cmd.after,
            before=cmd.before,
            limit=limit,
            newest=cmd.newest,
            after_ms=cmd.after_ms,
            before_ms=cmd.before_ms,
        )
        if cmd.around is None and cmd.around_ms is None:
            page = await read(whole)
            self._answer(session, page, room, cmd.with_, cmd.ref, keep_newest=cmd.newest)
            return
        # Up to half at or before the point, the rest after it.
        half = (limit + 1) // 2
        if cmd.around is not None:
            older = await read(_Range(after=0, before=cmd.around + 1, limit=half, newest=True))
            rest = limit - len(older.messages)
            newer = await read(_Range(after=cmd.around, before=None, limit=rest, newest=False))
        else:
            at = cmd.around_ms or 0
            older = await read(
                _Range(after=0, before=None, limit=half, newest=True, before_ms=at + 1)
            )
            rest = limit - len(older.messages)
            newer = await read(_Range(after=0, before=None, limit=rest, newest=False, after_ms=at))
        page = Page([*older.messages, *newer.messages], more=older.more or newer.more)
        self._answer(session, page, room, cmd.with_, cmd.ref, keep_newest=False)

    async def history_targets(self, session: Session, cmd: HistoryTargets) -> None:
        """Reply with the newest message of each conversation last active in a time range."""
        p = session.principal
        heads = await self._store.conversation_heads(p.pid, sorted(p.rooms))
        if p.blocked:
            heads = visible(p.blocked, heads)  # issue 16: nothing of the blocked
        inside = sorted(
            (m for m in heads if cmd.after_ms < m.ts_ms < cmd.before_ms),
            key=lambda m: (m.ts_ms, m.id),
        )
        limit = max(min(cmd.limit, self.settings.history_max), 0)
        chosen = inside[max(len(inside) - limit, 0) :] if cmd.newest else inside[:limit]
        messages = tuple(message_event(m, own=m.sender == p.pid) for m in chosen)
        session.bucket.take(len(messages) * 120 / REPLY_BYTES_PER_TOKEN)
        reply(session, Results(q="", messages=messages, more=len(inside) > limit, ref=cmd.ref))
