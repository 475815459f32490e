"""Login: hello to caught_up, logout, registration, passwords, the account index.

The login/backlog seam lives here: a session's live frames wait while its
backlog is sent, then follow ``caught_up`` in order, never twice.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable

from chinwag import __version__
from chinwag.bus.base import Bus, Renamed
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
from chinwag.core.blocks import hidden
from chinwag.core.counts import Counts
from chinwag.core.delivery import stream_event
from chinwag.core.markers import conversation_key
from chinwag.core.nodes import online_event
from chinwag.core.ratelimit import Budget, TokenBucket
from chinwag.core.receipts import DmReceipts
from chinwag.core.rules import LOBBY
from chinwag.core.sessions import Frame, OnlineRegistry, Outlet, Principal, Session, account_pid, ok
from chinwag.errors import (
    BadNick,
    BadPassword,
    Forbidden,
    NickRegistered,
    NickTaken,
    PasswordRequired,
    SessionEnded,
    UnsupportedProto,
)
from chinwag.protocol.events import (
    AccountNotice,
    CaughtUp,
    Error,
    Hello,
    Outgoing,
    Passwd,
    ReceiptState,
    Register,
    Rename,
    Welcome,
)
from chinwag.storage.base import AccountExists, AccountRow, Store

log = logging.getLogger("chinwag.hub")

PROTO = 1
# Protocol §8: what of version 1.1 this server does.
FEATURES = (
    "edit",
    "delete",
    "react",
    "reply",
    "mentions",
    "search",
    "read",
    "receipts",
    "block",
    "moderation",
)

# Every guest starts in the lobby alone: one shared set instead of one each.
_LOBBY_ONLY = frozenset({LOBBY})


def _session_id() -> str:
    """32 random hex digits (a guest's principal is "g:" + it, so never reused)."""
    return secrets.token_hex(16)  # as uuid4().hex, in a third of the time


# caught_up after an empty backlog (every guest's): the same frame, rendered once per codec.
_NOTHING_MISSED = Frame(
    CaughtUp(missed=0, rooms={}, dms={}, truncated=False, mentions=0, unread={})
)


class Logins:
    """Login and logout, the backlog, registration and passwords, the account index.

    Args:
        settings: limits and defaults.
        store: accounts, cursors and the backlog.
        hasher: argon2id, off the event loop.
        throttle: failed-login limits.
        registry: who is online.
        names: where a guest's nick is held while it is online (the bus: every node).
        clock: wall clock in seconds (retention, account and invite times).
        monotonic: clock for flood control and the registration throttle.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        registry: OnlineRegistry,
        *,
        names: Bus,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.settings = settings
        self._names = names  # guest nicks held across nodes
        self._store = store
        self._hasher = hasher
        self._throttle = throttle
        self._clock = clock
        self._monotonic = monotonic
        self._registry = registry
        # The registry's tables, never replaced: read directly.
        self._online = registry.by_pid
        self._by_key = registry.by_key
        self._rooms = registry.rooms
        # Keys and skeletons of every account row, deleted ones included (see load);
        # each skeleton (of the key and of the nick as shown) maps to (key, nick).
        self._account_keys: set[str] = set()
        self._account_skeletons: dict[str, tuple[str, str]] = {}
        self.counts = Counts()  # the hub's, set by the hub (backlog sizes)
        self._loaded = False
        # With several nodes on one store (issue 13) another node may register
        # a nick at any time: the index then only adds refusals, and a guest's
        # hello reads the store.
        self._index_is_whole = settings.store == "sqlite"
        self._reserved = ReservedNicks(settings.reserved_nicks)
        self._register_throttle = RegisterThrottle(settings, monotonic)
        # Operator actions (end_sessions) per account key: a login under way restarts.
        self._account_changes: dict[str, int] = {}
        # A guest's standings and rooms pass to its account (`Moderation.adopt`; the hub's).
        self.adopted: Callable[[str, str, str, frozenset[str]], Awaitable[None]] | None = None
        # Issue 15: the receipts setting in welcome, stored receipts in caught_up (the hub's).
        self.receipts: DmReceipts | None = None

    async def load(self) -> None:
        """Read what the hub keeps in memory from the store; call once, before logins.

        That is the key and both TR39 skeletons of every account, so that a guest's
        hello for a nick no account has, or resembles, needs no store read. The
        index holds a registration's nick from just before its row is written
        (so no hello passes it unread) and drops it again if that fails, since
        look-alikes are refused from the index alone; it never holds less than
        the store. It is authoritative for "no such account" because accounts
        are only ever created by ``register`` here (the admin tools list,
        delete and reset passwords; deleted rows stay, as their nicks stay
        reserved; ``bench/seed.py`` writes before the server starts): with
        several nodes sharing one store, it would not be.
        """
        load_confusables()  # now, rather than during the first hello
        for key, skel, display in await self._store.account_index():
            self._account_keys.add(key)
            self._index_skeletons(key, display, (skel, skeleton(display)))
        self._loaded = True

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
            and self._index_is_whole
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
            rooms = frozenset(await self._store.rooms_of(account_pid(row.key)))
            if LOBBY not in rooms and hello.lobby:
                await self._store.join_room(account_pid(row.key), LOBBY)
                rooms |= _LOBBY_ONLY
            blocked = frozenset(key for key, _ in await self._store.blocks_of(account_pid(row.key)))
            if self._account_changes.get(row.key, 0) != changes:
                # The operator deleted the account or reset its password while we
                # read it: decide again on what the store says now.
                return await self.login(hello, outlet)
            return await self._start(
                account_pid(row.key),
                nick.key,
                row.nick,
                True,
                rooms,
                hello,
                outlet,
                bot=row.bot,
                blocked=blocked,
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
        # Held on every node (the bus) while the guest is online; one node: a no-op.
        if not await self._names.claim(key, pid):
            raise NickTaken(f"{display} is online; retry shortly or pick another nick")
        try:
            rooms = _LOBBY_ONLY if hello.lobby else frozenset()
            return await self._start(pid, key, display, False, rooms, hello, outlet)
        except BaseException:
            await self._names.release(key, pid)
            raise

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
        blocked: frozenset[str] = frozenset(),
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
            principal.blocked = blocked  # later changes reach it through core/blocks.py
            if account and self._registry.remote.nodes:  # away on another node (issue 19)
                elsewhere = self._registry.remote.get(pid)
                principal.away = elsewhere.away if elsewhere is not None else None
                principal.invisible = elsewhere is not None and elsewhere.invisible  # ircoper
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
        session.user, session.real_name = hello.user, hello.real_name
        principal.sessions.append(session)
        if first:
            registry = self._registry
            registry.announce(online_event(registry.node, principal))
            if not registry.remote.nodes or registry.remote.find(key) is None:
                registry.tell_watchers(key, principal.nick, online=True)  # irccaps: MONITOR
            for room in principal.rooms:
                if not registry.remote.in_room(pid, room):  # else online already, elsewhere
                    registry.presence(room, principal, "join", exclude=session)
        try:
            await self._catch_up(session, hello)
        except BaseException:
            self._registry.drop(session)
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
        settings = None
        if p.account and self.receipts is not None:  # issue 15
            settings = {"receipts": await self.receipts.setting(p)}
        welcome = Welcome(
            proto=PROTO,
            nick=p.nick,
            account=p.account,
            server_name=self.settings.server_name,
            server_version=__version__,
            motd=self.settings.motd,
            rooms=tuple(sorted(p.rooms)),
            features=FEATURES,
            settings=settings,
            ref=hello.ref,
            bot=p.bot,
        )
        if p.account:
            await session.outlet.send_paced(Frame(welcome))
        else:
            # A guest has no backlog: welcome and caught_up leave in one write.
            session.outlet.send(Frame(welcome))
        rooms: dict[str, int] = {}
        dms: dict[str, int] = {}
        missed = 0
        mentioned: set[int] = set()  # the messages of the backlog that mention this nick
        truncated = False
        unread: dict[str, int] = {}
        receipts: dict[str, ReceiptState] = {}
        markers: dict[str, int] = {}
        if p.account:
            markers = await self._store.read_markers(p.pid)
            if self.receipts is not None:  # issue 15
                receipts = await self.receipts.stored(p)
            session.last_delivered = cursor
            session.seen = cursor  # stored already; receipts count from here
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
            if self.counts.on:
                self.counts.backlogs.observe(start.count)
            page = start.first
            while page:
                for m in page:
                    if p.blocked and hidden(p.blocked, m):
                        session.last_delivered = m.id  # issue 16: passed over, never sent
                        continue
                    own = m.sender == p.pid
                    event = stream_event(m, own=own, replay=True)
                    if event is not None:
                        await session.outlet.send_paced(Frame(event))
                    session.last_delivered = m.id
                    if p.nick in m.mentions:  # a message, or an edit that newly mentions
                        mentioned.add(m.target or m.id)
                    if m.kind is not None:
                        continue  # caught_up counts messages; edits, deletions… follow them
                    if m.room is not None:
                        rooms[m.room] = rooms.get(m.room, 0) + 1
                        label, key = m.room, conversation_key(m.room, "")
                    else:
                        other = m.recipient_nick if own else m.sender_nick
                        dms[other or ""] = dms.get(other or "", 0) + 1
                        label = "@" + (other or "")
                        key = conversation_key(None, (m.recipient if own else m.sender) or "")
                    if not own and m.id > markers.get(key, 0):
                        unread[label] = unread.get(label, 0) + 1
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
        marks = await self._markers_now(p, markers)
        # No await from here on: caught_up, then the live frames that waited, in order.
        if missed or truncated or receipts or marks:
            caught_up = CaughtUp(
                missed=sum(rooms.values()) + sum(dms.values()),
                rooms=rooms,
                dms=dms,
                truncated=truncated,
                mentions=len(mentioned),
                unread=unread,
                receipts=receipts,
                markers=marks,
            )
            session.outlet.send(Frame(caught_up))
        else:
            session.outlet.send(_NOTHING_MISSED)
        pending, session.pending = session.pending or [], None
        for msg_id, frame in pending:
            if msg_id == 0 or msg_id > session.last_delivered:
                session.deliver(msg_id, frame)

    async def _markers_now(self, p: Principal, markers: dict[str, int]) -> dict[str, int]:
        """The account's read markers as ``caught_up`` names them (issue 15, evfanout).

        ``room`` for a room it is in now, ``@nick`` for a DM with an account that
        exists and that it does not block; the rest (rooms left, guests gone) are
        left out. One store read for all the DM partners with a marker.
        """
        named: dict[str, int] = {}
        dms: dict[str, int] = {}
        for key, upto in markers.items():
            if upto <= 0:
                continue
            if key.startswith("#"):
                if key[1:] in p.rooms:
                    named[key[1:]] = upto
            elif key.startswith("@a:"):
                other = key[3:]
                if not (p.blocked and other in p.blocked):
                    dms[other] = upto
        if dms:
            for other, nick in (await self._store.live_nicks(list(dms))).items():
                named["@" + nick] = dms[other]
        return named

    async def logout(self, session: Session, *, clean: bool, quit: str = "") -> None:
        """End a session; a clean ``bye`` moves the device's cursor to what it received.
        ``quit``: the quit message its rooms see if it was the principal's last."""
        p = session.principal
        self._registry.drop(session, quit)
        if not p.account and p.pid not in self._online:
            await self._names.release(p.key, p.pid)
        if clean and p.account and session.pending is None:
            await self._store.advance_cursor(p.pid, session.device, session.last_delivered)

    def end_sessions(
        self, key: str, reason: str, message: str, farewell: Outgoing | None = None
    ) -> int:
        """End every live session of the principal called ``key`` at once; how many.

        Each gets ``error session_ended`` with ``reason`` and ``message`` (or
        ``farewell``, as §8's ``bye`` with reason ``banned``), then its
        connection closes (its logout follows when the command it may be
        carrying out is done). A login of that account still under way starts
        over, so it sees the store as the operator left it.
        """
        self._account_changes[key] = self._account_changes.get(key, 0) + 1
        p = self._by_key.get(key)
        if p is None:
            return 0
        frame = Frame(farewell or Error.of(SessionEnded(message, reason=reason)))
        sessions = list(p.sessions)
        for s in sessions:
            s.outlet.send(frame)
            s.outlet.close(f"ended by the operator: {reason}")
        return len(sessions)

    async def register(self, session: Session, cmd: Register) -> None:
        """Make this guest's nick an account: rooms and messages are adopted."""
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
        pid = account_pid(nick.key)
        for room in sorted(p.rooms):
            await self._store.join_room(pid, room)
        await self._store.adopt(p.pid, pid)
        if self.adopted is not None:
            await self.adopted(p.pid, pid, p.nick, p.rooms)
        await self._store.advance_cursor(pid, session.device, session.last_delivered)
        self._online.pop(p.pid, None)
        await self._names.release(p.key, p.pid)  # the account holds the nick now
        p.pid = pid
        p.account = True
        p.bot = cmd.bot
        p.budget = self._account_bucket()
        session.bucket.share(p.budget)
        self._online[pid] = p
        # The other nodes put the account in the guest's place (same key), quietly.
        self._registry.announce(online_event(self._registry.node, p))
        ok(session, cmd.ref)
        # irccaps: its room peers and those who monitor it learn it is an account now.
        self._registry.tell_peers(
            p,
            Frame(AccountNotice(nick=p.nick)),
            Frame(AccountNotice(nick=p.nick, monitor=True)),
            exclude=session,
        )

    async def rename(self, session: Session, cmd: Rename) -> None:
        """A guest takes another nick (ircmsg), with the checks of a guest's hello.

        Not an account's nick, nor like one (TR39), not reserved, not online
        (on any node: the bus holds guest nicks). The old nick is free at once.
        A change of case only (``alice`` to ``Alice``) is the same nick shown
        otherwise. Everyone sharing a room with the guest, and the guest, is
        told (`OnlineRegistry.renamed`); the same nick again changes nothing.

        Raises:
            Forbidden: an account (its nick is its name); BadNick, NickTaken,
                NickRegistered: the nick cannot be had. Nothing changed.
        """
        p = session.principal
        nick = parse_nick(cmd.nick)
        if nick.display == p.nick:
            ok(session, cmd.ref)
            return
        if p.account:
            raise Forbidden(
                f"{p.nick} is an account: its nick is its name; to use another, register it",
                reason="account",
            )
        old_key = p.key
        if nick.key != p.key:
            self._reserved.check(nick)
            if nick.key in self._account_keys or await self._store.get_account(nick.key):
                raise NickRegistered(f"{nick.display} is registered; pick another nick")
            clash = await self._look_alike(nick)
            if clash is not None:
                raise BadNick(
                    f"{nick.display!r} looks too much like the registered nick {clash!r};"
                    " pick another"
                )
            if self._by_key.get(nick.key) is not None:
                raise NickTaken(f"{nick.display} is online; pick another nick")
            if not await self._names.claim(nick.key, p.pid):
                raise NickTaken(f"{nick.display} is online; pick another nick")
            if self._by_key.get(nick.key) is not None or p.pid not in self._online:
                # Taken here while the bus was asked, or the guest left meanwhile.
                await self._names.release(nick.key, p.pid)
                raise NickTaken(f"{nick.display} is online; pick another nick")
            if self._by_key.get(old_key) is p:
                del self._by_key[old_key]
            p.key = nick.key
            self._by_key[nick.key] = p
            await self._names.release(old_key, p.pid)  # free at once for anyone
        old = p.nick
        p.nick = nick.display
        registry = self._registry
        registry.announce(Renamed(registry.node, p.pid, p.key, p.nick, old))
        registry.renamed(p, old, old_key, answer=session, ref=cmd.ref)

    async def passwd(self, session: Session, cmd: Passwd) -> None:
        """Change an account's password after checking the old one."""
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
        ok(session, cmd.ref)
