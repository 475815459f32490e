"""The hub: every chat rule, once, for every transport.

The hub is a façade over one handler per concern, in the way Synapse splits its
handlers: `sessions` (who is online, frames, presence), `delivery` (fan-out after
commit, read cursors, typing), `posting` (say and dm to their ack), `rooms`
(membership, who, the room list, history) and `login` (hello to caught_up,
logout, registration, passwords). The hub never touches sockets or SQL: it
talks to a `Store`, a `Bus`, and one `Outlet` per session (the transport's side
of a connection). Messages are fanned out only after their commit, and only
from what the bus yields, so one node and several share one delivery path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable

from chinwag.bus.base import AwaySet, Bus, InvisibleSet, RealNameSet, SessionsEnded, WallopsSent
from chinwag.config import Settings
from chinwag.core.accounts import LoginThrottle, PasswordHasher
from chinwag.core.away import AwayStates
from chinwag.core.blocks import Blocks
from chinwag.core.botmode import BotMode
from chinwag.core.counts import Counts
from chinwag.core.delivery import Delivery
from chinwag.core.login import Logins
from chinwag.core.markers import ReadMarkers
from chinwag.core.moderation import ACTING, Moderation
from chinwag.core.monitor import Monitors
from chinwag.core.nodes import Nodes
from chinwag.core.opers import Operators
from chinwag.core.posting import Posting
from chinwag.core.realname import RealNames
from chinwag.core.receipts import DmReceipts
from chinwag.core.revisions import Revisions
from chinwag.core.rooms import Rooms
from chinwag.core.search import Searching
from chinwag.core.sessions import (
    Frame,
    OnlineRegistry,
    Outlet,
    Session,
    charge,
    ok,
    parse_nick_cached,
    reply,
)
from chinwag.errors import BadNick, BadRequest, ChatError
from chinwag.protocol.events import (
    Away,
    Block,
    Bye,
    Command,
    Delete,
    Dm,
    Edit,
    GetSettings,
    Grant,
    Hello,
    History,
    HistoryRange,
    HistoryTargets,
    Invisible,
    Invite,
    Join,
    Leave,
    ListBans,
    ListBlocks,
    ListenWallops,
    ListRooms,
    Moderate,
    Monitor,
    Oper,
    Passwd,
    Ping,
    Pong,
    React,
    Read,
    ReadQuery,
    Receipts,
    Register,
    Rename,
    RoomSet,
    Say,
    Search,
    Seen,
    SetBot,
    SetName,
    Stats,
    StatsReply,
    Typing,
    Unblock,
    Wallops,
    Who,
    Whois,
    WhoWas,
    WhoWasEntry,
    WhoWasReply,
)
from chinwag.storage.base import AppendResult, Store

__all__ = ["Frame", "Hub", "Outlet", "Session"]

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
    Search: 1.0,
    Read: 1.0,
    Receipts: 1.0,
    Block: 1.0,
    Unblock: 1.0,
    ListBlocks: 1.0,
    RoomSet: 1.0,
    Invite: 1.0,
    Moderate: 1.0,
    Grant: 1.0,
    HistoryRange: 1.0,
    HistoryTargets: 1.0,
    GetSettings: 1.0,
    Stats: 1.0,
    WhoWas: 1.0,
    Away: 1.0,
    ReadQuery: 1.0,
    ListBans: 1.0,
    Whois: 1.0,  # ircoper
    Oper: 1.0,
    Wallops: 1.0,
    ListenWallops: 1.0,
    Invisible: 1.0,
    Monitor: 1.0,
    SetName: 1.0,
    SetBot: 1.0,
    Rename: 1.0,
}


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
        self.counts = Counts(settings.metrics)
        """What ``/metrics`` reports; shared by the parts below."""
        self._registry = OnlineRegistry(settings)
        self._delivery = Delivery(settings, store, bus, self._registry, monotonic)
        self._posting = Posting(settings, store, bus, self._registry, clock)
        self._moderation = Moderation(settings, store, self._registry, clock, bus)
        self._rooms = Rooms(
            settings, store, self._registry, self._posting.resolve, self._moderation
        )
        self._revisions = Revisions(settings, store, self._posting, clock)
        self._searching = Searching(settings, store, self._posting.resolve)
        self._receipts = DmReceipts(store, self._registry)
        self._delivery.receipts = self._receipts
        self._delivery.counts = self._posting.counts = self.counts
        self._markers = ReadMarkers(store, self._posting.resolve, self._receipts)
        self._logins = Logins(
            settings,
            store,
            hasher,
            throttle,
            self._registry,
            names=bus,
            clock=clock,
            monotonic=monotonic,
        )
        self._blocks = Blocks(settings, store, bus, self._registry, clock)
        self._clock = clock
        # whowas (issue 19): the newest departures here, (nick key, entry), oldest first.
        self._whowas_log: deque[tuple[str, WhoWasEntry]] = deque(maxlen=settings.whowas_history)
        self._delivery.blocks = self._blocks
        # Moderation (issue 16): who may speak, delete, and how sessions are ended.
        self._posting.check_say = self._moderation.check_say
        self._delivery.check_say = self._moderation.check_say
        self._revisions._moderation = self._moderation
        self._moderation.end_sessions = self._logins.end_sessions
        self._moderation.remove_member = self._rooms.remove
        self._delivery.moderated = self._moderation.heard
        self._delivery.moderation_resynced = self._moderation.resync
        self._logins.adopted = self._moderation.adopt
        # -- several nodes (issue 13): what the other nodes say beside messages --
        self._nodes = Nodes(
            settings,
            bus,
            self._registry,
            monotonic,
            self._receipts.cache,
            (throttle, self._logins._register_throttle),
            self._logins.end_sessions,
        )
        self._delivery.node_event = self._nodes.receive
        self._delivery.resynced = self._nodes.resync
        self._markers._registry = self._registry
        self._logins.counts = self.counts
        # Issue 15: the receipts setting read back, stored receipts at login and in history.
        self._logins.receipts = self._receipts
        self._rooms.receipts = self._receipts
        # -- away (issue 19) --
        self._away = AwayStates(settings, self._registry)
        self._nodes.handlers[AwaySet] = self._away.heard
        # -- operators, whois, wallops (issue 19, ircoper) --
        self._opers = Operators(
            settings, store, hasher, throttle, self._registry, self._moderation, clock
        )
        self._nodes.handlers[WallopsSent] = self._opers.heard
        self._nodes.handlers[InvisibleSet] = self._opers.heard_invisible
        # -- monitored nicks (irccaps) --
        self._monitors = Monitors(settings, self._registry)
        self._real_names = RealNames(settings, self._registry)
        self._bot_mode = BotMode(store, self._registry)
        self._nodes.handlers[RealNameSet] = self._real_names.heard

    async def load(self) -> None:
        """Read what the hub keeps in memory from the store; call once, before logins.

        See `Logins.load`, `Delivery.load` and `Moderation.load`.
        """
        await self._logins.load()
        await self._delivery.load()
        await self._moderation.load()

    async def run(self) -> None:
        """Deliver what the bus yields, until the bus closes (see `Delivery.run`).

        With other nodes, this node's heartbeat runs beside it (`Nodes.run`).
        """
        heartbeat = asyncio.create_task(self._nodes.run(), name="chinwag-node-heartbeat")
        try:
            await self._delivery.run()
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    def sessions(self) -> Iterable[Session]:
        """Every live session, as of now."""
        return self._registry.sessions()

    def online_count(self) -> int:
        """How many principals (accounts and guests) are online."""
        return self._registry.count()

    async def login(self, hello: Hello, outlet: Outlet) -> Session:
        """Check a hello, then send welcome, the backlog and caught_up.

        Raises:
            ChatError: the hello is refused; nothing changed.
        """
        try:
            self._moderation.check_hello(hello.nick)
            session = await self._logins.login(hello, outlet)
            refusal = self._moderation.server_ban(session.principal.pid)
            if refusal is not None:
                # Banned while this login was under way: it ends as the others did.
                await self._logins.logout(session, clean=False)
                raise refusal
        except ChatError:
            if self.counts.on:
                self.counts.login_failures += 1
            raise
        if self.counts.on:
            self.counts.logins += 1
        return session

    async def logout(self, session: Session, *, clean: bool, quit: str = "") -> None:
        """End a session; a clean ``bye`` moves the device's cursor to what it received.
        ``quit``: the quit message its rooms see if it was the principal's last (issue 19)."""
        await self._logins.logout(session, clean=clean, quit=quit)
        p = session.principal
        if not p.sessions:
            self._departed(p.key, p.nick, p.account, session)
        if not p.account and not p.sessions:
            self._blocks.ended(p.pid)
            await self._moderation.ended(p.pid, p.nick)

    @property
    def moderation(self) -> Moderation:
        """Roles, room settings and sanctions (the operator's live actions use it)."""
        return self._moderation

    def end_sessions(self, key: str, reason: str, message: str) -> int:
        """End every live session of the principal called ``key`` at once; how many.

        See `Logins.end_sessions`. The other nodes end theirs too (those are not counted).
        """
        self._registry.announce(SessionsEnded(self._registry.node, key, reason, message))
        return self._logins.end_sessions(key, reason, message)

    def pipeline(self, session: Session, cmd: Command) -> asyncio.Future[AppendResult] | None:
        """Start a say, or a DM to someone online, without waiting for its commit.

        See `Posting.pipeline`: None means "run it with `handle`, in order".
        """
        return self._posting.pipeline(session, cmd)

    async def handle(self, session: Session, cmd: Command) -> None:
        """Carry out one command of a logged-in session; replies go to its outlet.

        Raises:
            ChatError: the command is refused; nothing changed.
        """
        cost = _COSTS.get(type(cmd))
        if cost is not None:
            charge(session, cost)
        if session.oper is None:
            await self._handle(session, cmd)
            return
        # ircoper: an opered session acts with its admin account's rights (is_admin).
        token = ACTING.set((session.principal.pid, session.oper))
        try:
            await self._handle(session, cmd)
        finally:
            ACTING.reset(token)

    async def _handle(self, session: Session, cmd: Command) -> None:
        match cmd:
            case Say():
                await self._posting.say(session, cmd)
            case Dm():
                await self._posting.dm(session, cmd)
            case Seen():
                await self._delivery.seen(session, cmd)
            case Edit():
                await self._revisions.edit(session, cmd)
            case Delete():
                await self._revisions.delete(session, cmd)
            case React():
                await self._revisions.react(session, cmd)
            case Search():
                await self._searching.search(session, cmd)
            case Read():
                await self._markers.read(session, cmd)
            case Receipts():
                await self._receipts.configure(session, cmd)
            case Typing():
                self._delivery.typing(session, cmd)
            case Join():
                await self._rooms.join(session, cmd)
            case Leave():
                await self._rooms.leave(session, cmd)
            case Who():
                self._rooms.who(session, cmd)
            case ListRooms():
                await self._rooms.list_rooms(session, cmd)
            case History():
                await self._rooms.history(session, cmd)
            case HistoryRange():
                await self._rooms.history_range(session, cmd)
            case HistoryTargets():
                await self._rooms.history_targets(session, cmd)
            case Register():
                guest = session.principal.pid
                await self._logins.register(session, cmd)
                await self._blocks.registered(session.principal, guest)
            case Block():
                await self._blocks.block(session, cmd)
            case Unblock():
                await self._blocks.unblock(session, cmd)
            case ListBlocks():
                await self._blocks.list_blocks(session, cmd)
            case RoomSet():
                await self._moderation.room_set(session.principal, cmd)
                ok(session, cmd.ref)
            case Invite():
                await self._moderation.invite(session.principal, cmd)
                ok(session, cmd.ref)
            case Moderate():
                await self._moderation.moderate(session.principal, cmd)
                ok(session, cmd.ref)
            case Grant():
                await self._moderation.grant(session.principal, cmd)
                ok(session, cmd.ref)
            case Passwd():
                await self._logins.passwd(session, cmd)
            case GetSettings():
                await self._receipts.settings(session, cmd)
            case Stats():
                reply(session, self._stats(cmd.ref))
            case WhoWas():
                reply(session, self._whowas(cmd))
            case Away():
                self._away.set(session, cmd)
            case ReadQuery():
                await self._markers.query(session, cmd)
            case ListBans():
                reply(session, self._moderation.bans(session.principal, cmd))
            case Whois():
                self._opers.whois(session, cmd)
            case Oper():
                await self._opers.oper(session, cmd)
            case Wallops():
                self._opers.wallops(session, cmd)
            case ListenWallops():
                self._opers.listen(session, cmd)
            case Invisible():
                self._opers.invisible(session, cmd)
            case Monitor():
                self._monitors.monitor(session, cmd)
            case SetName():
                self._real_names.set(session, cmd)
            case SetBot():
                await self._bot_mode.set(session, cmd)
            case Rename():
                await self._logins.rename(session, cmd)
            case Ping():
                reply(session, Pong(ref=cmd.ref))
            case Pong():
                pass
            case Hello():
                raise BadRequest("already logged in")
            case Bye():
                raise BadRequest("bye is handled by the connection")  # pragma: no cover
            case _:
                raise BadRequest(f"unsupported command {type(cmd).__name__}")

    # -- server figures (issue 19, ircreg) --
    def _stats(self, ref: str | None) -> StatsReply:
        """People online on every node (each once), rooms someone is online in, nodes;
        of those people the invisible ones (``+i`` on any node), and the operator
        sessions of this node (another node's are not known here)."""
        registry = self._registry
        hidden = {pid for pid, p in registry.by_pid.items() if p.invisible}
        is_admin = self._moderation.is_admin
        operators = sum(1 for s in registry.sessions() if s.oper is not None and is_admin(s.oper))
        remote = registry.remote.nodes
        rooms = {name for name, members in registry.rooms.items() if members}
        here = online = len(registry.by_pid)
        if remote:
            pids = set(registry.by_pid)
            for view in remote.values():
                pids.update(view.by_pid)
                hidden.update(pid for pid, p in view.by_pid.items() if p.invisible)
                rooms.update(name for name, members in view.rooms.items() if members)
            online = len(pids)
        nodes = 1 + len(remote)
        return StatsReply(
            online=online,
            here=here,
            rooms=len(rooms),
            nodes=nodes,
            invisible=len(hidden),
            operators=operators,
            ref=ref,
        )

    def _departed(self, key: str, nick: str, account: bool, last: Session) -> None:
        """Remember that ``nick`` went offline here, for ``whowas`` (oldest forgotten first),
        with its ``last`` session's IRC username and real name (ircoper)."""
        if self.settings.whowas_history:
            entry = WhoWasEntry(
                nick=nick,
                account=account,
                ts_ms=int(self._clock() * 1000),
                user=last.user,
                real_name=last.real_name,
            )
            self._whowas_log.append((key, entry))

    def _whowas(self, cmd: WhoWas) -> WhoWasReply:
        """The departures of the nick ``cmd`` names, newest first (none for a bad nick)."""
        try:
            key = parse_nick_cached(cmd.nick).key
        except BadNick:
            return WhoWasReply(nick=cmd.nick, entries=(), ref=cmd.ref)
        found = [entry for k, entry in reversed(self._whowas_log) if k == key]
        return WhoWasReply(nick=cmd.nick, entries=tuple(found[: cmd.limit]), ref=cmd.ref)
