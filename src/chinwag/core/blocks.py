"""Blocks (issue 16, protocol §8): a person stops receiving anything from a nick.

A block is kept by the blocker's account and names a *nick* (its casefolded
key), not a principal: it hides the account of that nick and any guest who
uses it, now or later, so a guest who leaves and comes back under the same
nick stays blocked. Blocking a nick nobody uses is accepted like any other
(the answer never tells whether the nick exists; ``ok`` either way), and it
holds should someone take that nick later. A guest may block too; its blocks
live as long as its session, like its rooms, and become its account's when it
registers.

Who may see what is decided where it always was (core/delivery.py for live
messages and typing, core/login.py for the backlog, core/rooms.py for
history, core/search.py for search, core/receipts.py for receipts); each asks
`hidden` here, and only for a principal whose set of blocked keys is not
empty, so fan-out costs nothing more for everyone else. The blocked one is not
told: their messages are stored and acked as before, and they simply never
reach the blocker.

A block made on one node reaches the blocker's sessions on every node as a
`BlocksChanged` event on the bus, carrying the blocker's whole list.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from chinwag.bus.base import BlocksChanged, Bus
from chinwag.config import Settings
from chinwag.core.sessions import OnlineRegistry, Principal, Session, ok, parse_nick_cached, reply
from chinwag.errors import BadNick, BadRequest, ChatError, Forbidden
from chinwag.protocol.events import Block, BlocksReply, ListBlocks, Unblock
from chinwag.storage.base import Store, StoredMessage, StoreError

log = logging.getLogger(__name__)

# A history or search page that held only blocked messages is followed by at
# most this many older pages, so that a client paging by the oldest id it was
# given has one (unless all of those were blocked too).
BLOCKED_PAGES = 4


def sender_key(m: StoredMessage) -> str:
    """The casefolded nick a stored message was sent under (what a block names)."""
    if m.sender.startswith("a:"):
        return m.sender[2:]
    try:
        return parse_nick_cached(m.sender_nick).key
    except ChatError:  # a nick stored by an older rule: compare it as it is
        return m.sender_nick.casefold()


def hidden(blocked: frozenset[str], m: StoredMessage) -> bool:
    """Whether ``m`` is kept from someone who blocks ``blocked`` (call only when non-empty)."""
    return sender_key(m) in blocked


def nick_key(nick: str) -> str:
    """The casefolded key of a nick as shown (what a block names)."""
    try:
        return parse_nick_cached(nick).key
    except ChatError:
        return nick.casefold()


def visible(blocked: frozenset[str], messages: Iterable[StoredMessage]) -> list[StoredMessage]:
    """``messages`` as someone who blocks ``blocked`` sees them (call only when non-empty).

    The blocked ones' messages are left out, and their nicks left out of the
    others' reactions (a reaction only they had put on goes).
    """
    shown = []
    for m in messages:
        if hidden(blocked, m):
            continue
        if m.reactions:
            reactions = tuple(
                (emoji, kept)
                for emoji, nicks in m.reactions
                if (kept := tuple(n for n in nicks if nick_key(n) not in blocked))
            )
            if reactions != m.reactions:
                m = replace(m, reactions=reactions)
        shown.append(m)
    return shown


class Blocks:
    """The ``block``, ``unblock`` and ``blocks`` commands, and each principal's set.

    Args:
        settings: limits (``blocks_max``).
        store: where an account's blocks are kept.
        bus: where a change is announced to the other nodes.
        registry: who is online.
        clock: wall clock in seconds (when a block was made).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        registry: OnlineRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._store = store
        self._bus = bus
        self._online = registry.by_pid
        self._by_key = registry.by_key
        self._clock = clock
        # A guest's blocks, by principal, with the nick as shown (accounts': the store).
        self._guest_nicks: dict[str, dict[str, str]] = {}

    async def of_account(self, pid: str) -> frozenset[str]:
        """The keys an account blocks, from the store (read at its first login)."""
        return frozenset(key for key, _ in await self._store.blocks_of(pid))

    def _target(self, session: Session, raw: str) -> tuple[str, str]:
        """(key, nick as shown) of the nick a block names; refuses a bad one or yourself."""
        try:
            nick = parse_nick_cached(raw)
        except BadNick:
            raise BadNick(f"{raw[:40]!r} is not a nick; check the spelling") from None
        p = session.principal
        if nick.key == p.key:
            raise BadRequest("you cannot block yourself")
        online = self._by_key.get(nick.key)
        return nick.key, online.nick if online is not None else nick.display

    async def block(self, session: Session, cmd: Block) -> None:
        """Stop everything sent under ``cmd.nick`` from reaching this account's sessions."""
        key, display = self._target(session, cmd.nick)
        p = session.principal
        limit = self.settings.blocks_max
        if p.account:
            row = await self._store.get_account(key)
            if row is not None and not row.deleted:
                display = row.nick
            held = await self._store.add_block(
                p.pid, key, display, limit=limit, created_ms=int(self._clock() * 1000)
            )
            if held is None:
                raise self._full(limit)
            self._changed(p.pid, tuple(k for k, _ in held))
        else:
            mine = self._guest_nicks.setdefault(p.pid, {})
            if key not in mine and len(mine) >= limit:
                raise self._full(limit)
            mine.setdefault(key, display)
            p.blocked = p.blocked | {key}
        ok(session, cmd.ref)

    @staticmethod
    def _full(limit: int) -> Forbidden:
        return Forbidden(
            f"you already block {limit} nicks, the most this server allows;"
            " unblock someone (/blocks lists them) first",
            reason="too_many_blocks",
        )

    async def unblock(self, session: Session, cmd: Unblock) -> None:
        """Let what ``cmd.nick`` sends from now on reach this account again."""
        key, _ = self._target(session, cmd.nick)
        p = session.principal
        if p.account:
            held = await self._store.remove_block(p.pid, key)
            self._changed(p.pid, tuple(k for k, _ in held))
        else:
            self._guest_nicks.get(p.pid, {}).pop(key, None)
            p.blocked = p.blocked - {key}
        ok(session, cmd.ref)

    async def list_blocks(self, session: Session, cmd: ListBlocks) -> None:
        """Reply with the nicks this account blocks, oldest block first."""
        p = session.principal
        if p.account:
            nicks = tuple(nick for _, nick in await self._store.blocks_of(p.pid))
        else:
            nicks = tuple(self._guest_nicks.get(p.pid, {}).values())
        reply(session, BlocksReply(nicks=nicks, ref=cmd.ref))

    def _changed(self, pid: str, keys: tuple[str, ...]) -> None:
        """Apply the account's new list here at once, and on every node through the bus."""
        self.apply(BlocksChanged(pid, keys))
        self._bus.publish(BlocksChanged(pid, keys))

    def apply(self, event: BlocksChanged) -> None:
        """An account's list changed (here or on another node): its online sessions follow."""
        p = self._online.get(event.account)
        if p is not None:
            p.blocked = frozenset(event.keys)

    async def registered(self, principal: Principal, guest_pid: str) -> None:
        """A guest became an account: its blocks are kept by the account from now on."""
        mine = self._guest_nicks.pop(guest_pid, {})
        now = int(self._clock() * 1000)
        for key, display in mine.items():
            await self._store.add_block(
                principal.pid, key, display, limit=self.settings.blocks_max, created_ms=now
            )
        if mine:
            self._changed(principal.pid, tuple(await self.of_account(principal.pid)))

    def ended(self, pid: str) -> None:
        """A guest's last session ended: its blocks end with it."""
        self._guest_nicks.pop(pid, None)

    async def reload(self) -> None:
        """Read again the blocks of every account online here (after the bus lost events)."""
        for p in list(self._online.values()):
            if p.account:
                try:
                    p.blocked = await self.of_account(p.pid)
                except StoreError as exc:
                    log.warning(
                        "cannot read the blocks of %s again (%s); they are read at its next"
                        " login, or when it changes them",
                        p.nick,
                        exc,
                    )
