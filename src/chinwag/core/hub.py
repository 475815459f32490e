"""The hub: every chat rule, once, for every transport.

Sessions, rooms, presence, routing and the login/backlog seam live here. The hub
never touches sockets or SQL: it talks to a `Store`, a `Bus`, and one `Outlet`
per session (the transport's side of a connection). Messages are fanned out only
after their commit, and only from what the bus yields, so one node and several
share one delivery path.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import heapq
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Protocol

from chinwag import __version__
from chinwag.bus.base import Bus, Posted
from chinwag.config import Settings
from chinwag.core.accounts import (
    HashQueueFull,
    LoginThrottle,
    Nick,
    PasswordHasher,
    RegisterThrottle,
    ReservedNicks,
    check_login,
    check_password,
    load_confusables,
    parse_nick,
    skeleton,
)
from chinwag.core.ratelimit import Budget, TokenBucket
from chinwag.core.rules import LOBBY, check_body, parse_room
from chinwag.errors import (
    BadNick,
    BadPassword,
    BadRequest,
    ChatError,
    Forbidden,
    NickRegistered,
    NickTaken,
    NoSuchUser,
    NotMember,
    PasswordRequired,
    QuotaExceeded,
    RateLimited,
    SessionEnded,
    UnsupportedProto,
)
from chinwag.protocol.events import (
    Ack,
    Bye,
    CaughtUp,
    Command,
    Dm,
    Error,
    Hello,
    History,
    HistoryReply,
    Join,
    Leave,
    ListRooms,
    Message,
    Ok,
    Outgoing,
    Passwd,
    Ping,
    Pong,
    Presence,
    Register,
    RoomRow,
    RoomsReply,
    Say,
    Seen,
    Typing,
    TypingNotice,
    Welcome,
    Who,
    WhoMember,
    WhoReply,
)
from chinwag.storage.base import (
    AccountExists,
    AccountRow,
    AppendResult,
    NewMessage,
    OverQuota,
    Store,
    StoredMessage,
    StoreError,
)

log = logging.getLogger("chinwag.hub")

PROTO = 1
_RECENT_CIDS = 65_536  # acks remembered in memory so a resend skips flood control and storage

# The command budget: every command is paid from the session's bucket (and its
# account's), in tokens worth one say/dm each (`rate_per_second`, `rate_burst`).
# say and dm cost 1 when they are stored; ping, pong, seen and bye are free.
_COSTS: dict[type[Command], float] = {
    Join: 1.0,
    Leave: 1.0,
    Who: 1.0,
    ListRooms: 1.0,
    History: 1.0,
    Register: 1.0,
    Passwd: 1.0,
}
TYPING_COST = 0.1  # a typing notice that is forwarded (coalesced ones are free)
REPLY_BYTES_PER_TOKEN = 4096  # who, rooms and history also pay for their reply's size
_TYPING_TARGETS = 256  # conversations one sender's last typing notice is remembered for


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

    __slots__ = ("account", "bot", "budget", "key", "nick", "pid", "rooms", "sessions", "typing")

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


class Session:
    """One logged-in connection."""

    __slots__ = (
        "bucket",
        "device",
        "held_limit",
        "last_delivered",
        "outlet",
        "pending",
        "principal",
        "seen",
    )

    def __init__(
        self,
        principal: Principal,
        device: str,
        outlet: Outlet,
        bucket: Budget,
        held_limit: int,
    ) -> None:
        self.principal = principal
        self.device = device
        self.outlet = outlet
        self.bucket = bucket
        self.last_delivered = 0
        self.seen = 0  # the highest `seen` this session has written
        # While the backlog is being sent, live frames wait here: (message id or 0, frame).
        self.pending: list[tuple[int, Frame]] | None = []
        self.held_limit = held_limit  # more live frames than this close the connection

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


def message_event(m: StoredMessage, *, own: bool = False, replay: bool = False) -> Message:
    """A stored message as its recipients see it; ``own``: the sender's copy, with its cid."""
    return Message(
        id=m.id,
        ts_ms=m.ts_ms,
        sender=m.sender_nick,
        room=m.room,
        to=m.recipient_nick if m.room is None else None,
        body=m.body,
        cid=m.cid if own else None,
        replay=replay,
    )


def _account_pid(key: str) -> str:
    return "a:" + key


# Every guest starts in the lobby alone: one shared set instead of one each.
_LOBBY_ONLY = frozenset({LOBBY})


def _session_id() -> str:
    """32 random hex digits (a guest's principal is "g:" + it, so never reused)."""
    return secrets.token_hex(16)  # as uuid4().hex, in a third of the time


# caught_up after an empty backlog (every guest's): the same frame, encoded once.
_NOTHING_MISSED = Frame(CaughtUp(missed=0, rooms={}, dms={}, truncated=False))


# Parsing a nick that is not plain ASCII (PRECIS, NFC, confusables) costs ~13 µs;
# DMs and typing notices name the same few nicks again and again.
_parse_nick_cached = functools.lru_cache(maxsize=4096)(parse_nick)


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


class Hub:
    """Every chat rule, once.

    Args:
        settings: limits and defaults.
        store: the truth.
        bus: where committed messages go before they are delivered.
        hasher: argon2id, off the event loop.
        throttle: failed-login limits.
        clock: wall clock in seconds (message timestamps, retention).
        monotonic: clock for flood control.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._store = store
        self._bus = bus
        self._hasher = hasher
        self._throttle = throttle
        self._clock = clock
        self._monotonic = monotonic
        self._online: dict[str, Principal] = {}  # by pid
        self._by_key: dict[str, Principal] = {}  # by casefolded nick
        self._rooms: dict[str, set[Principal]] = {}  # online members per room
        # (dedupe key, cid) -> (when it was stored, its ack), for at most cid_ttl.
        self._recent: OrderedDict[tuple[str, str], tuple[int, Ack]] = OrderedDict()
        self._batch: list[StoredMessage] = []  # committed, to fan out this loop turn
        self._cid_ttl_ms = int(settings.cid_ttl * 1000)
        # Keys and skeletons of every account row, deleted ones included (see load);
        # each skeleton (of the key and of the nick as shown) maps to (key, nick).
        self._account_keys: set[str] = set()
        self._account_skeletons: dict[str, tuple[str, str]] = {}
        self._loaded = False
        self._reserved = ReservedNicks(settings.reserved_nicks)
        self._register_throttle = RegisterThrottle(settings, monotonic)
        # Operator actions (end_sessions) per account key: a login under way restarts.
        self._account_changes: dict[str, int] = {}

    async def load(self) -> None:
        """Read what the hub keeps in memory from the store; call once, before logins.

        That is the key and both TR39 skeletons of every account, so that a guest's
        hello for a nick no account has, or resembles, needs no store read. The
        index holds a registration's nick from just before its row is written
        (so no hello passes it unread) and drops it again if that fails, since
        look-alikes are refused from the index alone; it never holds less than
        the store. It is authoritative for "no such account" because accounts
        are only ever created by this hub's ``_register`` (the admin tools list,
        delete and reset passwords; deleted rows stay, as their nicks stay
        reserved; ``bench/seed.py`` writes before the server starts): with
        several nodes sharing one store, it would not be.
        """
        load_confusables()  # now, rather than during the first hello
        for key, skel, display in await self._store.account_index():
            self._account_keys.add(key)
            self._index_skeletons(key, display, (skel, skeleton(display)))
        self._loaded = True

    # -- running ----------------------------------------------------------------
    async def run(self) -> None:
        """Deliver what the bus yields, until the bus closes.

        Messages are fanned out once per event-loop turn, so that a run of
        messages to one room reaches each recipient as one combined frame.
        """
        loop = asyncio.get_running_loop()
        try:
            async for event in self._bus.subscribe():
                if isinstance(event, Posted):
                    if not self._batch:
                        loop.call_soon(self._fan_out_batch)
                    self._batch.append(event.message)
        finally:
            self._fan_out_batch()

    def _fan_out_batch(self) -> None:
        batch, self._batch = self._batch, []
        i = 0
        while i < len(batch):
            room = batch[i].room
            j = i + 1
            if room is not None:
                while j < len(batch) and batch[j].room == room:
                    j += 1
            if j - i == 1:
                self._fan_out(batch[i])
            else:
                self._fan_out_room(room or "", batch[i:j])
            i = j

    def _fan_out_room(self, room: str, msgs: list[StoredMessage]) -> None:
        """Deliver several messages of one room: one combined frame per recipient."""
        plain = [Frame(message_event(m)) for m in msgs]
        combined = Frame(None, tuple(plain))
        senders = {m.sender for m in msgs}
        last_id = msgs[-1].id
        for p in self._rooms.get(room, ()):
            if room not in p.rooms:  # the delivery check, as in _fan_out
                continue
            if p.pid in senders:
                parts = tuple(
                    Frame(message_event(m, own=True)) if m.sender == p.pid else frame
                    for m, frame in zip(msgs, plain, strict=True)
                )
                mine = Frame(None, parts)
            else:
                parts, mine = combined.parts, combined
            for s in p.sessions:
                if s.pending is None:
                    s.deliver(last_id, mine)
                else:  # still catching up: held per message, filtered by id later
                    for m, frame in zip(msgs, parts, strict=True):
                        s.deliver(m.id, frame)

    def sessions(self) -> Iterable[Session]:
        for p in list(self._online.values()):
            yield from list(p.sessions)

    def online_count(self) -> int:
        return len(self._by_key)

    # -- login --------------------------------------------------------------------
    def _index_skeletons(self, key: str, display: str, skeletons: Iterable[str]) -> None:
        for skel in skeletons:
            self._account_skeletons.setdefault(skel, (key, display))

    async def _look_alike(self, nick: Nick) -> str | None:
        """The nick of another account that ``nick`` could be mistaken for, if any.

        Either skeleton counts: of the casefolded key (the contract's rule, also
        checked in the store) and of the nick as shown (``aIice`` for ``alice``).
        """
        clash = await self._store.account_by_skeleton(nick.skeleton)
        if clash is not None and clash.key != nick.key:
            return clash.nick
        for skel in nick.skeletons:
            key, display = self._account_skeletons.get(skel, (nick.key, ""))
            if key != nick.key:
                return display
        return None

    async def _rehash(self, row: AccountRow, password: str, who: str) -> None:
        """Store a fresh hash of the normalised password at today's cost, if there is room."""
        try:
            new = await self._hasher.hash(password, who)
            await self._store.replace_password_hash(row.key, row.password_hash, new)
        except HashQueueFull:
            pass  # at a later login
        except Exception:
            log.exception("could not store the new password hash of %s", row.key)

    async def login(self, hello: Hello, outlet: Outlet) -> Session:
        """Check a hello, then send welcome, the backlog and caught_up.

        Raises:
            ChatError: the hello is refused; nothing changed.
        """
        if hello.proto != PROTO:
            raise UnsupportedProto(
                f"this server speaks protocol {PROTO}, not {hello.proto}", supported=[PROTO]
            )
        nick = parse_nick(hello.nick)
        if (
            hello.password is None
            and self._loaded
            and nick.key not in self._account_keys
            and nick.skeleton not in self._account_skeletons
            and nick.display_skeleton not in self._account_skeletons
        ):
            # A guest whose nick no account has or resembles (see load): no store read.
            self._reserved.check(nick)
            return await self._start_guest(nick.key, nick.display, hello, outlet)
        address = outlet.address
        changes = self._account_changes.get(nick.key, 0)
        row = await self._store.get_account(nick.key)
        if row is None:
            self._reserved.check(nick)  # an account made before the list keeps its nick
        if row is not None and row.deleted:
            raise BadNick(f"the nick {nick.display!r} is reserved; pick another")
        if row is not None:
            if hello.password is None:
                raise PasswordRequired(f"{row.nick} is registered; send its password")
            verdict = await check_login(
                self._hasher, self._throttle, row.key, address, row.password_hash, hello.password
            )
            if not verdict.ok:
                raise BadPassword()
            if verdict.rehash:
                await self._rehash(row, hello.password, outlet.address)
            rooms = frozenset(await self._store.rooms_of(_account_pid(row.key)))
            if LOBBY not in rooms:
                await self._store.join_room(_account_pid(row.key), LOBBY)
                rooms |= _LOBBY_ONLY
            if self._account_changes.get(row.key, 0) != changes:
                # The operator deleted the account or reset its password while we
                # read it: decide again on what the store says now.
                return await self.login(hello, outlet)
            return await self._start(
                _account_pid(row.key), nick.key, row.nick, True, rooms, hello, outlet, bot=row.bot
            )
        clash = await self._look_alike(nick)
        if clash is not None:
            raise BadNick(
                f"{nick.display!r} looks too much like the registered nick {clash!r}; pick another"
            )
        if hello.password is not None:
            # Same work as a real check, so timing does not tell whether a nick exists.
            await check_login(self._hasher, self._throttle, None, address, None, hello.password)
            raise BadPassword()
        return await self._start_guest(nick.key, nick.display, hello, outlet)

    async def _start_guest(self, key: str, display: str, hello: Hello, outlet: Outlet) -> Session:
        pid = "g:" + _session_id()
        return await self._start(pid, key, display, False, _LOBBY_ONLY, hello, outlet)

    async def _start(
        self,
        pid: str,
        key: str,
        display: str,
        account: bool,
        rooms: frozenset[str],
        hello: Hello,
        outlet: Outlet,
        *,
        bot: bool = False,
    ) -> Session:
        # Everything from the nick check to registering the session is synchronous,
        # so two hellos for one guest nick cannot both pass.
        holder = self._by_key.get(key)
        if holder is not None and holder.pid != pid:
            raise NickTaken(f"{holder.nick} is online; retry shortly or pick another nick")
        principal = self._online.get(pid)
        first = principal is None
        if principal is None:
            principal = Principal(pid, key, display, account, rooms, bot)
            self._online[pid] = principal
            self._by_key[key] = principal
            for room in rooms:
                self._rooms.setdefault(room, set()).add(principal)
        if account and principal.budget is None:
            principal.budget = self._account_bucket()
        bucket = Budget(
            TokenBucket(self.settings.rate_per_second, self.settings.rate_burst, self._monotonic),
            principal.budget,
        )
        session = Session(principal, hello.device, outlet, bucket, self.settings.backlog_held_limit)
        principal.sessions.append(session)
        if first:
            for room in principal.rooms:
                self._presence(room, principal, "join", exclude=session)
        try:
            await self._catch_up(session, hello)
        except BaseException:
            self._drop(session)
            raise
        return session

    def _account_bucket(self) -> TokenBucket:
        """The command budget an account's sessions share."""
        s = self.settings
        share = s.account_budget
        return TokenBucket(s.rate_per_second * share, s.rate_burst * share, self._monotonic)

    async def _catch_up(self, session: Session, hello: Hello) -> None:
        p = session.principal
        cursor = 0
        if p.account:
            # Before welcome: a login whose cursor cannot be read or written is
            # refused (server_error), never welcomed and then dropped.
            found = await self._store.get_cursor(p.pid, session.device)
            if found is None:
                # A device's first login: it starts where the account's others are,
                # and from now on it is a used device with a cursor of its own.
                cursor = await self._store.max_cursor(p.pid)
                await self._store.advance_cursor(p.pid, session.device, cursor)
            else:
                cursor = found
        welcome = Welcome(
            proto=PROTO,
            nick=p.nick,
            account=p.account,
            server_name=self.settings.server_name,
            server_version=__version__,
            motd=self.settings.motd,
            rooms=tuple(sorted(p.rooms)),
            ref=hello.ref,
        )
        if p.account:
            await session.outlet.send_paced(Frame(welcome))
        else:
            # A guest has no backlog: welcome and caught_up leave in one write.
            session.outlet.send(Frame(welcome))
        rooms: dict[str, int] = {}
        dms: dict[str, int] = {}
        missed = 0
        truncated = False
        if p.account:
            session.last_delivered = cursor
            since_ms = int((self._clock() - self.settings.retention_days * 86_400) * 1000)
            # Page by page: the next page is read once the client has taken most of
            # this one (send_paced waits while its buffer is full), so a client that
            # does not read holds one page in memory, not its whole backlog. Messages
            # committed after the start was read are live traffic, held meanwhile.
            page_size = max(self.settings.backlog_page, 1)
            start = await self._store.backlog_start(
                p.pid,
                cursor,
                limit=self.settings.backlog_limit,
                since_ms=since_ms,
                page=page_size,
            )
            truncated = start.truncated
            page = start.first
            while page:
                for m in page:
                    own = m.sender == p.pid
                    frame = Frame(message_event(m, own=own, replay=True))
                    await session.outlet.send_paced(frame)
                    session.last_delivered = m.id
                    if m.room is not None:
                        rooms[m.room] = rooms.get(m.room, 0) + 1
                    else:
                        other = m.recipient_nick if own else m.sender_nick
                        dms[other or ""] = dms.get(other or "", 0) + 1
                missed += len(page)
                if missed >= start.count:
                    break
                page = await self._store.backlog_page(
                    p.pid,
                    page[-1].id,
                    start.upto_id,
                    since_ms=since_ms,
                    limit=min(page_size, start.count - missed),
                )
        # No await from here on: caught_up, then the live frames that waited, in order.
        if missed or truncated:
            caught_up = CaughtUp(missed=missed, rooms=rooms, dms=dms, truncated=truncated)
            session.outlet.send(Frame(caught_up))
        else:
            session.outlet.send(_NOTHING_MISSED)
        pending, session.pending = session.pending or [], None
        for msg_id, frame in pending:
            if msg_id == 0 or msg_id > session.last_delivered:
                session.deliver(msg_id, frame)

    async def logout(self, session: Session, *, clean: bool) -> None:
        """End a session; a clean ``bye`` moves the device's cursor to what it received."""
        p = session.principal
        self._drop(session)
        if clean and p.account and session.pending is None:
            await self._store.advance_cursor(p.pid, session.device, session.last_delivered)

    def _drop(self, session: Session) -> None:
        p = session.principal
        if session not in p.sessions:
            return
        p.sessions.remove(session)
        if p.sessions:
            return
        self._online.pop(p.pid, None)
        if self._by_key.get(p.key) is p:
            del self._by_key[p.key]
        for room in p.rooms:
            members = self._rooms.get(room)
            if members is not None:
                members.discard(p)
                if not members:
                    del self._rooms[room]
            self._presence(room, p, "leave", exclude=None)

    def end_sessions(self, key: str, reason: str, message: str) -> int:
        """End every live session of the principal called ``key`` at once; how many.

        Each gets ``error session_ended`` with ``reason`` and ``message``, then
        its connection closes (its logout follows when the command it may be
        carrying out is done). A login of that account still under way starts
        over, so it sees the store as the operator left it.
        """
        self._account_changes[key] = self._account_changes.get(key, 0) + 1
        p = self._by_key.get(key)
        if p is None:
            return 0
        frame = Frame(Error.of(SessionEnded(message, reason=reason)))
        sessions = list(p.sessions)
        for s in sessions:
            s.outlet.send(frame)
            s.outlet.close(f"ended by the operator: {reason}")
        return len(sessions)

    # -- commands ---------------------------------------------------------------------
    async def handle(self, session: Session, cmd: Command) -> None:
        """Carry out one command of a logged-in session; replies go to its outlet.

        Raises:
            ChatError: the command is refused; nothing changed.
        """
        cost = _COSTS.get(type(cmd))
        if cost is not None:
            self._charge(session, cost)
        match cmd:
            case Say():
                await self._say(session, cmd)
            case Dm():
                await self._dm(session, cmd)
            case Seen():
                await self._seen(session, cmd)
            case Typing():
                self._typing(session, cmd)
            case Join():
                await self._join(session, cmd)
            case Leave():
                await self._leave(session, cmd)
            case Who():
                self._who(session, cmd)
            case ListRooms():
                await self._list_rooms(session, cmd)
            case History():
                await self._history(session, cmd)
            case Register():
                await self._register(session, cmd)
            case Passwd():
                await self._passwd(session, cmd)
            case Ping():
                self._reply(session, Pong(ref=cmd.ref))
            case Pong():
                pass
            case Hello():
                raise BadRequest("already logged in")
            case Bye():
                raise BadRequest("bye is handled by the connection")  # pragma: no cover
            case _:
                raise BadRequest(f"unsupported command {type(cmd).__name__}")

    def _charge(self, session: Session, cost: float) -> None:
        """Pay for a command from the session's budget (raises `RateLimited`)."""
        wait = session.bucket.retry_after(cost)
        if wait > 0:
            raise RateLimited(wait, f"slow down: retry in {wait:.1f} s")
        session.bucket.take(cost)

    def _reply(self, session: Session, event: Outgoing) -> None:
        session.outlet.send(Frame(event))

    def _ok(self, session: Session, ref: str | None) -> None:
        self._reply(session, Ok(ref=ref))

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
            target = self._online_target(cmd.to)
            if target is None:
                return None
            to = (target.pid, target.nick)
        else:
            return None
        cid = cmd.cid
        if cid is not None and (_dedupe_key(session), cid) in self._recent:
            return None
        future = self._store.append(
            self._new_message(session, cmd.body, cid, room, to), cid_ttl_ms=self._cid_ttl_ms
        )
        future.add_done_callback(functools.partial(self._committed, session, cmd.ref, cid))
        return future

    def _committed(
        self,
        session: Session,
        ref: str | None,
        cid: str | None,
        future: asyncio.Future[AppendResult],
    ) -> None:
        exc = future.exception()  # nothing cancels it: the connection never awaits it
        if exc is None:
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
        return room

    async def _say(self, session: Session, cmd: Say) -> None:
        room = self._say_room(session, cmd)
        await self._post(session, cmd.ref, cmd.cid, cmd.body, room=room)

    async def _dm(self, session: Session, cmd: Dm) -> None:
        check_body(cmd.body)
        target_pid, target_nick, online = await self._resolve(cmd.to)
        quota = None if online else self.settings.offline_quota
        await self._post(
            session, cmd.ref, cmd.cid, cmd.body, to=(target_pid, target_nick), quota=quota
        )

    def _online_target(self, raw: str) -> Principal | None:
        """The online principal called ``raw``, or None (offline, or not a nick)."""
        try:
            return self._by_key.get(_parse_nick_cached(raw).key)
        except BadNick:
            return None

    async def _resolve(self, raw: str) -> tuple[str, str, bool]:
        """(principal, display nick, online?) of a DM partner, by nick."""
        try:
            nick = _parse_nick_cached(raw)
        except BadNick:
            raise NoSuchUser(f"nobody is called {raw[:40]!r}") from None
        online = self._by_key.get(nick.key)
        if online is not None:
            return online.pid, online.nick, True
        row = await self._store.get_account(nick.key)
        if row is None or row.deleted:
            raise NoSuchUser(f"{nick.display} is neither registered nor online")
        # Every online principal is in _by_key, so an account found only in the
        # store is offline.
        return _account_pid(row.key), row.nick, False

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
    ) -> None:
        if cid is not None and (earlier := self._recent_ack(session, cid)) is not None:
            self._reply(session, replace(earlier, ref=ref))  # a repeat: same ack, no flood charge
            return
        msg = self._new_message(session, body, cid, room, to)
        try:
            result = await self._store.append(msg, cid_ttl_ms=self._cid_ttl_ms, quota=quota)
        except OverQuota:
            session.bucket.refund()
            raise QuotaExceeded(
                f"{msg.recipient_nick} has too many undelivered messages; try later"
            ) from None
        self._acked(session, ref, cid, result)

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
    ) -> NewMessage:
        """Charge flood control for a message and build it (raises `RateLimited`)."""
        self._charge(session, 1.0)
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
        )

    def _acked(
        self, session: Session, ref: str | None, cid: str | None, result: AppendResult
    ) -> None:
        """A message is committed: ack it, remember its cid, and publish it if new."""
        stored = result.message
        ack = Ack(id=stored.id, ts_ms=stored.ts_ms, cid=cid, ref=ref)
        if cid is not None:
            # A resend gets this ack again, with the resend's ref.
            self._recent[(_dedupe_key(session), cid)] = (stored.ts_ms, ack)
            if len(self._recent) > _RECENT_CIDS:
                self._recent.popitem(last=False)
        self._reply(session, ack)
        if result.duplicate:
            session.bucket.refund()
        else:
            self._bus.publish(Posted(stored))

    def _fan_out(self, m: StoredMessage) -> None:
        """Deliver a committed message to every online session allowed to see it."""
        if m.room is not None:
            targets: Iterable[Principal] = self._rooms.get(m.room, ())
        else:
            sender = self._online.get(m.sender)
            recipient = self._online.get(m.recipient or "")
            targets = {p for p in (sender, recipient) if p is not None}
        plain: Frame | None = None
        own: Frame | None = None
        for p in targets:
            # The delivery check: a room member now, or a party to the DM.
            if m.room is not None:
                if m.room not in p.rooms:
                    continue
            elif p.pid != m.sender and p.pid != m.recipient:
                continue
            if p.pid == m.sender:
                own = own or Frame(message_event(m, own=True))
                frame = own
            else:
                plain = plain or Frame(message_event(m))
                frame = plain
            for s in p.sessions:
                s.deliver(m.id, frame)

    async def _seen(self, session: Session, cmd: Seen) -> None:
        p = session.principal
        if not p.account:
            return
        upto = min(cmd.upto, session.last_delivered)
        if upto > session.seen:  # a repeat writes nothing
            await self._store.advance_cursor(p.pid, session.device, upto)
            session.seen = upto

    def _typing(self, session: Session, cmd: Typing) -> None:
        p = session.principal
        if cmd.room is not None:
            try:
                room = parse_room(cmd.room)
            except ChatError:
                return
            if room not in p.rooms:
                return
            if not self._typing_due(session, room):
                return
            frame = Frame(TypingNotice(sender=p.nick, room=room))
            targets: Iterable[Principal] = self._rooms.get(room, ())
        else:
            try:
                nick = _parse_nick_cached(cmd.to or "")
            except ChatError:
                return
            other = self._by_key.get(nick.key)
            if other is None or not self._typing_due(session, "@" + other.pid):
                return
            frame = Frame(TypingNotice(sender=p.nick, to=other.nick))
            targets = {p, other}
        for member in targets:
            for s in member.sessions:
                if s is not session and s.pending is None:
                    s.outlet.send(frame)

    def _typing_due(self, session: Session, key: str) -> bool:
        """Whether a typing notice to ``key`` goes out now; if so, it is paid and noted.

        One sender's notices to one room or person go out at most once per
        `typing_interval` (or once more after a message there, which ends the
        notice); the rest, and those over budget, are dropped silently.
        """
        p = session.principal
        now = self._monotonic()
        interval = self.settings.typing_interval
        last = p.typing.get(key) if p.typing is not None else None
        if last is not None and now - last < interval:
            return False
        if session.bucket.retry_after(TYPING_COST) > 0:
            return False
        if p.typing is None:
            p.typing = {}
        elif len(p.typing) >= _TYPING_TARGETS and last is None:
            p.typing = {k: t for k, t in p.typing.items() if now - t < interval}
            if len(p.typing) >= _TYPING_TARGETS:
                return False
        session.bucket.take(TYPING_COST)
        p.typing[key] = now
        return True

    def _presence(self, room: str, who: Principal, event: str, exclude: Session | None) -> None:
        members = self._rooms.get(room, ())
        if len(members) > self.settings.presence_limit:
            return
        frame = Frame(Presence(room=room, nick=who.nick, event=event))
        for member in members:
            for s in member.sessions:
                if s is not exclude:
                    s.deliver(0, frame)

    async def _join(self, session: Session, cmd: Join) -> None:
        room = parse_room(cmd.room)
        p = session.principal
        if room in p.rooms:
            self._ok(session, cmd.ref)
            return
        self._check_room_caps(p, room)
        if p.account:
            await self._store.join_room(p.pid, room)
            if room in p.rooms:  # another session joined while we waited
                self._ok(session, cmd.ref)
                return
        p.rooms = p.rooms | {room}  # never changed in place: guests share one set
        self._rooms.setdefault(room, set()).add(p)
        self._ok(session, cmd.ref)
        self._presence(room, p, "join", exclude=session)

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

    async def _leave(self, session: Session, cmd: Leave) -> None:
        room = parse_room(cmd.room)
        p = session.principal
        if room == LOBBY:
            raise Forbidden("everyone stays in the lobby")
        if room not in p.rooms:
            raise NotMember(f"you are not in #{room}")
        if p.account:
            await self._store.leave_room(p.pid, room)
            if room not in p.rooms:
                self._ok(session, cmd.ref)
                return
        self._presence(room, p, "leave", exclude=session)
        p.rooms = p.rooms - {room}
        members = self._rooms.get(room)
        if members is not None:
            members.discard(p)
            if not members:
                del self._rooms[room]
        self._ok(session, cmd.ref)

    def _who(self, session: Session, cmd: Who) -> None:
        room = parse_room(cmd.room)
        if room not in session.principal.rooms:
            raise NotMember(f"you are not in #{room}")
        members = self._rooms.get(room, ())
        most = self.settings.who_reply_max
        truncated = len(members) > most
        listed = heapq.nsmallest(most, members, key=lambda m: m.nick.casefold())  # sorted
        users = tuple(WhoMember(nick=m.nick, account=m.account, bot=m.bot) for m in listed)
        session.bucket.take(sum(32 + len(m.nick) for m in listed) / REPLY_BYTES_PER_TOKEN)
        self._reply(session, WhoReply(room=room, users=users, truncated=truncated, ref=cmd.ref))

    async def _list_rooms(self, session: Session, cmd: ListRooms) -> None:
        names = set(await self._store.room_member_counts())
        names.update(self._rooms)
        names.add(LOBBY)
        most = self.settings.rooms_reply_max
        truncated = len(names) > most
        if truncated:  # the busiest rooms
            names = set(heapq.nsmallest(most, names, key=lambda n: (-self._online_in(n), n)))
        rooms = tuple(RoomRow(name=name, online=self._online_in(name)) for name in sorted(names))
        session.bucket.take(sum(32 + len(n) for n in names) / REPLY_BYTES_PER_TOKEN)
        self._reply(session, RoomsReply(rooms=rooms, truncated=truncated, ref=cmd.ref))

    def _online_in(self, room: str) -> int:
        return len(self._rooms.get(room, ()))

    async def _history(self, session: Session, cmd: History) -> None:
        p = session.principal
        limit = min(cmd.limit or self.settings.history_default, self.settings.history_max)
        room: str | None = None
        if cmd.room is not None:
            room = parse_room(cmd.room)
            if room not in p.rooms:
                raise NotMember(f"you are not in #{room}")
            page = await self._store.room_history(room, before=cmd.before, limit=limit)
        else:
            other_pid, _, _ = await self._resolve(cmd.with_ or "")
            page = await self._store.dm_history(p.pid, other_pid, before=cmd.before, limit=limit)
        messages = [message_event(m, own=m.sender == p.pid) for m in page.messages]
        more = page.more
        # Cut the page at the byte limit, keeping the newest messages.
        size = 0
        for i in range(len(messages) - 1, -1, -1):
            size += len(page.messages[i].body.encode()) + 120
            if size > self.settings.history_max_bytes:
                messages = messages[i + 1 :]
                more = True
                break
        reply = HistoryReply(
            room=room,
            with_=None if room is not None else cmd.with_,
            messages=tuple(messages),
            more=more,
            ref=cmd.ref,
        )
        session.bucket.take(size / REPLY_BYTES_PER_TOKEN)
        self._reply(session, reply)

    async def _register(self, session: Session, cmd: Register) -> None:
        p = session.principal
        if p.account:
            raise NickRegistered(f"{p.nick} is already registered")
        mode = self.settings.registration
        if mode not in ("open", "invite"):  # "closed", and anything unknown
            raise Forbidden("this server takes no new accounts", reason="registration_closed")
        check_password(cmd.password, self.settings)
        nick = parse_nick(p.nick)
        self._reserved.check(nick)
        if await self._store.get_account(nick.key) is not None:
            raise NickRegistered()
        clash = await self._look_alike(nick)
        if clash is not None:
            raise BadNick(f"{p.nick!r} looks too much like the registered nick {clash!r}")
        invite: str | None = None
        if mode == "invite":
            if not cmd.invite:
                raise Forbidden(
                    "this server needs an invite to register; ask its admin for one",
                    reason="invite_required",
                )
            # The store keeps tokens only as hashes (chinwag.net.invites.token_hash).
            invite = hashlib.sha256(cmd.invite.strip().lower().encode("utf-8")).hexdigest()
            # Used up before the (slow) hash: two registrations never share a last use.
            if not await self._store.use_invite(invite, int(self._clock() * 1000)):
                raise Forbidden("that invite is unknown, used up or expired", reason="bad_invite")
        new_key, new_skeletons = False, []  # what this registration adds to the index
        try:
            self._register_throttle.take(session.outlet.address)  # refused: invite given back
            try:
                password_hash = await self._hasher.hash(cmd.password, session.outlet.address)
            except HashQueueFull:  # it never reached the hasher: it does not count
                self._register_throttle.give_back(session.outlet.address)
                raise
            row = AccountRow(
                key=nick.key,
                nick=p.nick,
                skeleton=nick.skeleton,
                password_hash=password_hash,
                created_ms=int(self._clock() * 1000),
                deleted=False,
                bot=cmd.bot,
            )
            # Into the index before the row exists, so no hello can pass it unread.
            new_key = nick.key not in self._account_keys
            new_skeletons = [k for k in nick.skeletons if k not in self._account_skeletons]
            self._account_keys.add(nick.key)
            self._index_skeletons(nick.key, p.nick, nick.skeletons)
            await self._store.create_account(row)
        except BaseException as exc:
            if not isinstance(exc, AccountExists):
                # No account was made: its look-alikes must not be refused from memory.
                if new_key:
                    self._account_keys.discard(nick.key)
                for k in new_skeletons:
                    self._account_skeletons.pop(k, None)
            if invite is not None:  # no account was made with it: give the use back
                try:
                    await self._store.refund_invite(invite)
                except Exception:
                    log.exception("could not give back a use of an invite")
            if isinstance(exc, AccountExists):
                raise NickRegistered() from None
            raise
        pid = _account_pid(nick.key)
        for room in sorted(p.rooms):
            await self._store.join_room(pid, room)
        await self._store.adopt(p.pid, pid)
        await self._store.advance_cursor(pid, session.device, session.last_delivered)
        self._online.pop(p.pid, None)
        p.pid = pid
        p.account = True
        p.bot = cmd.bot
        p.budget = self._account_bucket()
        session.bucket.share(p.budget)
        self._online[pid] = p
        self._ok(session, cmd.ref)

    async def _passwd(self, session: Session, cmd: Passwd) -> None:
        p = session.principal
        if not p.account:
            raise Forbidden("guests have no password; use register")
        row = await self._store.get_account(p.key)
        stored = None if row is None else row.password_hash
        verdict = await check_login(
            self._hasher, self._throttle, p.key, session.outlet.address, stored, cmd.old
        )
        if not verdict.ok:
            raise BadPassword("the old password is wrong")
        check_password(cmd.new, self.settings)
        new_hash = await self._hasher.hash(cmd.new, session.outlet.address)
        await self._store.set_password_hash(p.key, new_hash)
        self._ok(session, cmd.ref)
