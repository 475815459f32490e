"""Posting: a say or dm from its checks to its commit and ack.

Every check runs before anything changes; then the message is appended to the
store (pipelined: several of one connection in flight at once), acked, and
published on the bus, from which `delivery` fans it out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from chinwag.bus.base import Bus, Posted
from chinwag.config import Settings
from chinwag.core.counts import Counts
from chinwag.core.rules import check_body, parse_room
from chinwag.core.sessions import (
    Frame,
    OnlineRegistry,
    Principal,
    Session,
    account_pid,
    charge,
    parse_nick_cached,
    reply,
)
from chinwag.errors import (
    BadNick,
    BadRequest,
    ChatError,
    Forbidden,
    NoSuchUser,
    NotMember,
    QuotaExceeded,
    RateLimited,
)
from chinwag.protocol.events import Ack, Command, Dm, Error, Say
from chinwag.storage.base import AppendResult, Gone, NewMessage, OverQuota, Store, StoreError

log = logging.getLogger("chinwag.hub")

_RECENT_CIDS = 65_536  # acks remembered in memory so a resend skips flood control and storage

# "@nick" at a word boundary (not inside a word or an e-mail address); a nick is
# at most 32 code points of letters, marks, digits, _ and - (protocol §2).
_MENTION = re.compile(r"(?<![\w@.])@([\w\-\u0300-\u036f]{1,32})(?![\w\-@])")


@dataclass(frozen=True, slots=True)
class Extra:
    """What a message or an event of §8 stores besides its body (see `NewMessage`)."""

    kind: str | None = None
    target: int | None = None
    reply_to: int | None = None
    mentions: tuple[str, ...] = ()
    notice: bool = False  # a message sent as a notice (ircmsg)
    concat: tuple[int, ...] = ()  # IRC draft/multiline concat points (ircmsg)


def check_concat(body: str, concat: tuple[int, ...]) -> None:
    """Raises `BadRequest` unless ``concat`` are ascending offsets inside ``body`` (ircmsg)."""
    previous = 0
    for at in concat:
        if not previous < at < len(body):
            raise BadRequest("concat: ascending offsets inside the body")
        previous = at


def mentioned_keys(body: str, limit: int) -> list[str]:
    """The nick keys (casefolded, as at login) of the first ``limit`` distinct @nicks."""
    keys: list[str] = []
    if "@" not in body:
        return keys
    for match in _MENTION.finditer(body):
        try:
            key = parse_nick_cached(match.group(1)).key
        except BadNick:
            continue
        if key not in keys:
            keys.append(key)
            if len(keys) >= limit:
                break
    return keys


def _anyone_speaks(p: Principal, room: str) -> None:
    """The check of a say without moderation: every member may speak."""


def _dedupe_key(session: Session) -> str:
    """Whose ``cid``s a session's share (protocol v1 §3).

    An account's, for an account. For a guest, the same nick on the same device
    (a client that reconnects and resends is still deduplicated), and never a
    later guest's who took the nick: without a device of its own, the session.
    """
    p = session.principal
    if p.account:
        return p.key
    return p.pid if session.device == "default" else f"{p.key}/{session.device}"


class Posting:
    """Say and dm: checks, flood control, the store's append, the ack, dedupe by ``cid``.

    Args:
        settings: limits (``cid_ttl``, ``offline_quota``).
        store: where a message is committed.
        bus: where a committed message is published.
        registry: who is online.
        clock: wall clock in seconds (message timestamps, the cid window).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        registry: OnlineRegistry,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self._store = store
        self._bus = bus
        self._clock = clock
        self._by_key = registry.by_key  # never replaced: read directly
        self._remote = registry.remote  # who is online on the other nodes
        self._by_pid = registry.by_pid  # never replaced: read directly (away, issue 19)
        # (dedupe key, cid) -> (when it was stored, its ack), for at most cid_ttl.
        self._recent: OrderedDict[tuple[str, str], tuple[int, Ack]] = OrderedDict()
        self._cid_ttl_ms = int(settings.cid_ttl * 1000)
        self.counts = Counts()  # the hub's, set by the hub
        # Moderation's check of a say (muted, announce rooms); set by the hub.
        self.check_say: Callable[[Principal, str], None] = _anyone_speaks

    def pipeline(self, session: Session, cmd: Command) -> asyncio.Future[AppendResult] | None:
        """Start a say, or a DM to someone online, without waiting for its commit.

        Every check runs now, and a refusal raises `ChatError` with nothing
        changed; then the message is queued for the store. When it is
        committed, the ack (or an error frame) goes to the session and the
        message to the bus. The store commits and resolves appends in call
        order, so replies keep the order in which commands were started.

        Returns:
            The store's future (done once the reply is queued), or None when the
            command needs I/O before it can be queued: any other command, a DM
            to someone offline, a resent ``cid``. Run that one with `handle`
            once everything started before it is done, to keep replies in order.
        """
        room: str | None = None
        to: tuple[str, str] | None = None
        if type(cmd) is Say:
            room = self._say_room(session, cmd)
        elif type(cmd) is Dm:
            check_body(cmd.body)
            check_concat(cmd.body, cmd.concat)
            target = self._online_target(cmd.to)
            if target is None:
                return None
            to = (target.pid, target.nick)
        else:
            return None
        cid = cmd.cid
        if cid is not None and (_dedupe_key(session), cid) in self._recent:
            return None
        if cmd.reply_to is not None or "@" in cmd.body:
            return None  # the reply's target and the mentions are looked up first
        future = self._store.append(
            self._new_message(
                session, cmd.body, cid, room, to, notice=cmd.notice, concat=cmd.concat
            ),
            cid_ttl_ms=self._cid_ttl_ms,
        )
        future.add_done_callback(
            functools.partial(
                self._committed,
                session,
                cmd.ref,
                cid,
                time.perf_counter() if self.counts.on else 0.0,
            )
        )
        return future

    def _committed(
        self,
        session: Session,
        ref: str | None,
        cid: str | None,
        started: float,
        future: asyncio.Future[AppendResult],
    ) -> None:
        exc = future.exception()  # nothing cancels it: the connection never awaits it
        if exc is None:
            if self.counts.on:
                self.counts.ack_seconds.observe(time.perf_counter() - started)
            self._acked(session, ref, cid, future.result())
            return
        # Pipelined messages have no quota: only the database can fail here, and
        # the store logs that (once per incident, not per message).
        session.bucket.refund()
        if not isinstance(exc, StoreError):
            log.error("storing a message failed", exc_info=exc)
        session.outlet.send(Frame(Error.of(ChatError(), ref)))

    def _say_room(self, session: Session, cmd: Say) -> str:
        """The room of a valid say (raises `ChatError` when it is refused)."""
        room = parse_room(cmd.room)
        if room not in session.principal.rooms:
            raise NotMember(f"you are not in #{room}; join it first")
        check_body(cmd.body)
        check_concat(cmd.body, cmd.concat)
        self.check_say(session.principal, room)
        return room

    async def say(self, session: Session, cmd: Say) -> None:
        """Post to a room and wait for its commit (the ack is sent then)."""
        room = self._say_room(session, cmd)
        self._afford(session, cmd.cid)
        if cmd.reply_to is not None:
            await self._check_reply(session, cmd.reply_to, room=room)
        mentions = await self.mentions_in(cmd.body, room=room)
        await self._post(
            session,
            cmd.ref,
            cmd.cid,
            cmd.body,
            room=room,
            extra=Extra(
                reply_to=cmd.reply_to, mentions=mentions, notice=cmd.notice, concat=cmd.concat
            ),
        )

    async def dm(self, session: Session, cmd: Dm) -> None:
        """Send a DM, to someone online or not (then within their offline quota)."""
        check_body(cmd.body)
        check_concat(cmd.body, cmd.concat)
        self._afford(session, cmd.cid)
        target_pid, target_nick, online = await self.resolve(cmd.to)
        if cmd.reply_to is not None:
            await self._check_reply(session, cmd.reply_to, dm_with=target_pid)
        parties = ((session.principal.pid, session.principal.nick), (target_pid, target_nick))
        mentions = self.mentions_in_dm(cmd.body, parties)
        quota = None if online else self.settings.offline_quota
        await self._post(
            session,
            cmd.ref,
            cmd.cid,
            cmd.body,
            to=(target_pid, target_nick),
            quota=quota,
            extra=Extra(
                reply_to=cmd.reply_to, mentions=mentions, notice=cmd.notice, concat=cmd.concat
            ),
        )

    async def _check_reply(
        self, session: Session, reply_to: int, *, room: str | None = None, dm_with: str = ""
    ) -> None:
        """Raises `BadRequest` unless ``reply_to`` is a message of this conversation."""
        target = await self._store.get_message(reply_to)
        pid = session.principal.pid
        if target is None:
            ok_target = False
        elif room is not None:
            ok_target = target.room == room
        else:
            ok_target = target.room is None and {target.sender, target.recipient} == {pid, dm_with}
        if not ok_target:
            raise BadRequest(f"reply_to: message {reply_to} is not in this conversation")

    async def mentions_in(self, body: str, *, room: str) -> tuple[str, ...]:
        """The display nicks of the people ``body`` mentions who may see ``room``.

        Nicks are compared as at login (casefolded); at most ``mention_limit``
        distinct ones are looked up.
        """
        found: list[str] = []
        for key in mentioned_keys(body, self.settings.mention_limit):
            online = self._by_key.get(key) or self._remote.find(key)
            if online is not None:
                if room in online.rooms:
                    found.append(online.nick)
                continue
            if await self._store.is_member(account_pid(key), room):
                row = await self._store.get_account(key)
                if row is not None and not row.deleted:
                    found.append(row.nick)
        return tuple(found)

    def mentions_in_dm(self, body: str, parties: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
        """The display nicks of the DM's parties (pid, nick) that ``body`` mentions."""
        keys = mentioned_keys(body, self.settings.mention_limit)
        found: list[str] = []
        for _, nick in parties:
            key = parse_nick_cached(nick).key
            if key in keys and nick not in found:
                found.append(nick)
        return tuple(found)

    async def post_event(
        self, session: Session, ref: str | None, cid: str | None, body: str, extra: Extra,
        *, room: str | None, to: tuple[str, str] | None,
    ) -> None:  # fmt: skip
        """Store an event of §8 (edit, delete, react) like a message: cid, ack, bus.

        The caller has already charged the command's cost (before reading its
        target, so that refused ones cost too); a resent ``cid`` gets it back.
        """
        await self._post(session, ref, cid, body, room=room, to=to, extra=extra, prepaid=True)

    def _with_away(self, ack: Ack, recipient: str) -> Ack:
        """A DM's ack, with the recipient's away message if they are away (issue 19)."""
        to = self._by_pid.get(recipient) or self._remote.get(recipient)
        if to is None or to.away is None:
            return ack
        return replace(ack, away=to.away)

    def _online_target(self, raw: str) -> Principal | None:
        """The online principal called ``raw``, or None (offline, or not a nick)."""
        try:
            return self._by_key.get(parse_nick_cached(raw).key)
        except BadNick:
            return None

    async def resolve(self, raw: str) -> tuple[str, str, bool]:
        """(principal, display nick, online?) of a DM partner, by nick."""
        try:
            nick = parse_nick_cached(raw)
        except BadNick:
            raise NoSuchUser(f"nobody is called {raw[:40]!r}") from None
        online = self._by_key.get(nick.key)
        if online is not None:
            return online.pid, online.nick, True
        elsewhere = self._remote.find(nick.key)  # a guest's, or an account's, on another node
        if elsewhere is not None and elsewhere.account:
            return elsewhere.pid, elsewhere.nick, True
        row = await self._store.get_account(nick.key)
        if elsewhere is not None and row is None:
            return elsewhere.pid, elsewhere.nick, True  # a guest on another node
        # (A guest elsewhere with an account in the store has just registered, and
        # its node's word is on the way: its DMs go to the account now.)
        if row is None or row.deleted:
            raise NoSuchUser(f"{nick.display} is neither registered nor online")
        # Every principal online here is in _by_key, and one online on another
        # node in the view: an account found only in the store is offline.
        return account_pid(row.key), row.nick, elsewhere is not None

    async def _post(
        self,
        session: Session,
        ref: str | None,
        cid: str | None,
        body: str,
        *,
        room: str | None = None,
        to: tuple[str, str] | None = None,
        quota: int | None = None,
        extra: Extra | None = None,
        prepaid: bool = False,
    ) -> None:
        if cid is not None and (earlier := self._recent_ack(session, cid)) is not None:
            if prepaid:
                session.bucket.refund()
            reply(session, replace(earlier, ref=ref))  # a repeat: same ack, no flood charge
            return
        started = time.perf_counter()
        msg = self._new_message(session, body, cid, room, to, paid=prepaid)
        if extra is not None:
            msg = replace(
                msg,
                kind=extra.kind,
                target=extra.target,
                reply_to=extra.reply_to,
                mentions=extra.mentions,
                notice=extra.notice,
                concat=extra.concat,
            )
        try:
            result = await self._store.append(msg, cid_ttl_ms=self._cid_ttl_ms, quota=quota)
        except OverQuota:
            session.bucket.refund()
            raise QuotaExceeded(
                f"{msg.recipient_nick} has too many undelivered messages; try later"
            ) from None
        except Gone:
            session.bucket.refund()
            raise Forbidden("that message is deleted", reason="deleted") from None
        if self.counts.on:
            self.counts.ack_seconds.observe(time.perf_counter() - started)
        self._acked(session, ref, cid, result)

    def _afford(self, session: Session, cid: str | None) -> None:
        """Raises `RateLimited` when the session cannot pay for a message now.

        Checked before a message's lookups (its reply target, its mentions), so
        that a flood is refused before it reads the store, not only at the
        charge after; a resent ``cid`` is free, as always. Nothing is taken.
        """
        if cid is not None and self._recent_ack(session, cid) is not None:
            return
        wait = session.bucket.retry_after(1.0)
        if wait > 0:
            raise RateLimited(wait, f"slow down: retry in {wait:.1f} s")

    def _recent_ack(self, session: Session, cid: str) -> Ack | None:
        """The ack of ``cid`` from this sender within ``cid_ttl``, if it is remembered."""
        key = (_dedupe_key(session), cid)
        found = self._recent.get(key)
        if found is None:
            return None
        if int(self._clock() * 1000) - found[0] >= self._cid_ttl_ms:
            del self._recent[key]  # too old: the cid may name a new message now
            return None
        return found[1]

    def _new_message(
        self,
        session: Session,
        body: str,
        cid: str | None,
        room: str | None,
        to: tuple[str, str] | None,
        *,
        paid: bool = False,
        notice: bool = False,
        concat: tuple[int, ...] = (),
    ) -> NewMessage:
        """Charge flood control for a message (unless ``paid``) and build it.

        Raises:
            RateLimited: over the budget; nothing was charged.
        """
        if not paid:
            charge(session, 1.0)
        p = session.principal
        if p.typing:  # a message ends its typing notice: the next one goes out at once
            p.typing.pop(room or "@" + (to[0] if to else ""), None)
        return NewMessage(
            ts_ms=int(self._clock() * 1000),
            sender=p.pid,
            sender_nick=p.nick,
            dedupe_key=_dedupe_key(session),
            room=room,
            recipient=to[0] if to else None,
            recipient_nick=to[1] if to else None,
            body=body,
            cid=cid,
            notice=notice,
            concat=concat,
        )

    def _acked(
        self, session: Session, ref: str | None, cid: str | None, result: AppendResult
    ) -> None:
        """A message is committed: ack it, remember its cid, and publish it if new."""
        stored = result.message
        ack = Ack(id=stored.id, ts_ms=stored.ts_ms, cid=cid, ref=ref)
        if stored.recipient is not None and stored.kind is None:
            ack = self._with_away(ack, stored.recipient)
        if cid is not None:
            # A resend gets this ack again, with the resend's ref.
            self._recent[(_dedupe_key(session), cid)] = (stored.ts_ms, ack)
            if len(self._recent) > _RECENT_CIDS:
                self._recent.popitem(last=False)
        reply(session, ack)
        if result.duplicate:
            session.bucket.refund()
        else:
            if (counts := self.counts).on:
                counts.messages += 1
                counts.committed(stored.id, time.monotonic())
            self._bus.publish(Posted(stored))
