"""DM receipts (protocol §8): delivered and read, between two accounts that both want them.

A receipt goes to the sender's sessions online at that moment; the newest
delivered and read ids of each DM pair are also stored (issue 15), so a later
login gets them in ``caught_up`` and a DM ``history`` page carries them.
"""

from __future__ import annotations

from chinwag.bus.base import ReceiptNotice, ReceiptsSet
from chinwag.core.blocks import nick_key
from chinwag.core.sessions import Frame, OnlineRegistry, Principal, Session, ok, reply
from chinwag.errors import Forbidden
from chinwag.protocol.events import GetSettings, Receipt, Receipts, ReceiptState, SettingsReply
from chinwag.storage.base import Store


class DmReceipts:
    """The ``receipts`` setting and the receipts themselves.

    Args:
        store: where the setting is kept, and the DMs.
        registry: who is online.
    """

    def __init__(self, store: Store, registry: OnlineRegistry) -> None:
        self._store = store
        self._online = registry.by_pid
        self._registry = registry
        # pid -> setting, for accounts asked about since start; a change made on
        # another node reaches it through the bus (`cache`, from core/nodes.py).
        self._on: dict[str, bool] = {}

    def cache(self, pid: str, on: bool) -> None:
        """Another node changed ``pid``'s setting: follow it, if it is cached here, and
        tell the account's sessions on this node."""
        if pid in self._on:
            self._on[pid] = on
        online = self._online.get(pid)
        if online is not None:
            frame = Frame(SettingsReply(receipts=on))
            for s in online.sessions:
                s.deliver(0, frame)

    async def configure(self, session: Session, cmd: Receipts) -> None:
        """Turn this account's receipts on or off."""
        p = session.principal
        if not p.account:
            raise Forbidden("receipts belong to an account: /register first", reason="guest")
        await self._store.set_receipts(p.pid, cmd.on)
        self._on[p.pid] = cmd.on
        self._registry.announce(ReceiptsSet(self._registry.node, p.pid, cmd.on))
        ok(session, cmd.ref)
        # Issue 15: the account's other sessions show the setting as it is now.
        synced = Frame(SettingsReply(receipts=cmd.on))
        for s in p.sessions:
            if s is not session:
                s.deliver(0, synced)

    async def _wanted(self, pids: list[str]) -> set[str]:
        unknown = [pid for pid in pids if pid not in self._on]
        if unknown:
            found = await self._store.receipts_on(unknown)
            for pid in unknown:
                self._on[pid] = pid in found
        return {pid for pid in pids if self._on[pid]}

    async def delivered(self, session: Session, after_id: int, upto_id: int) -> None:
        """A device of this account has everything up to ``upto_id`` (a ``seen``)."""
        p = session.principal
        if not p.account or not await self._wanted([p.pid]):
            return
        senders = await self._store.dm_senders(p.pid, after_id, upto_id)
        if p.blocked:  # issue 16: what a blocked nick sent was never delivered
            senders = {pid: top for pid, top in senders.items() if pid[2:] not in p.blocked}
        if senders:
            for pid in await self._wanted(list(senders)):
                await self._store.advance_receipt(pid, p.pid, delivered=senders[pid])
                receipt = Receipt(with_=p.nick, upto=senders[pid], state="delivered")
                self._notify(pid, receipt, p.key)

    async def read(self, session: Session, other: str, upto: int) -> None:
        """This account moved its read marker of the DM with ``other`` to ``upto``."""
        p = session.principal
        if p.blocked and other[2:] in p.blocked:
            return  # issue 16: the blocked one learns nothing of the blocker
        if p.account and other != p.pid and await self._wanted([p.pid, other]) == {p.pid, other}:
            await self._store.advance_receipt(other, p.pid, read=upto)
            self._notify(other, Receipt(with_=p.nick, upto=upto, state="read"), p.key)

    # -- issue 15: the setting read back, and the receipts stored -----------------

    async def setting(self, p: Principal) -> bool:
        """Whether this account has receipts on (False for a guest)."""
        return p.account and bool(await self._wanted([p.pid]))

    async def settings(self, session: Session, cmd: GetSettings) -> None:
        """Answer ``settings`` with the account's settings as they are now."""
        reply(session, SettingsReply(receipts=await self.setting(session.principal), ref=cmd.ref))

    async def stored(self, p: Principal) -> dict[str, ReceiptState]:
        """``"@" + nick`` -> how far that person has this account's DMs, for ``caught_up``.

        Only while both have receipts on, and neither blocks the other.
        """
        if not await self.setting(p):
            return {}
        rows = await self._store.stored_receipts(p.pid, p.key)
        return {
            "@" + nick: ReceiptState(delivered=delivered, read=read)
            for nick, delivered, read in rows
            if not (p.blocked and nick_key(nick) in p.blocked)
        }

    async def of_dm(self, p: Principal, other: str, nick: str) -> ReceiptState | None:
        """How far ``other`` (a principal, shown as ``nick``) has this account's DMs, for a
        DM ``history`` page; None unless both have receipts on, neither blocks the other
        and some receipt was stored."""
        if not p.account or other == p.pid or (p.blocked and nick_key(nick) in p.blocked):
            return None
        if await self._wanted([p.pid, other]) != {p.pid, other}:
            return None
        rows = await self._store.stored_receipts(p.pid, p.key, other)
        if not rows:
            return None  # nothing delivered yet (or the other blocks this account)
        _, delivered, read = rows[0]
        return ReceiptState(delivered=delivered, read=read)

    def _notify(self, pid: str, event: Receipt, sender_key: str) -> None:
        online = self._online.get(pid)
        if online is not None and not (online.blocked and sender_key in online.blocked):
            frame = Frame(event)
            for s in online.sessions:
                s.deliver(0, frame)
        if self._registry.remote.get(pid) is not None:  # its sessions on other nodes
            notice = ReceiptNotice(self._registry.node, pid, event.with_, event.upto, event.state)
            self._registry.announce(notice)
