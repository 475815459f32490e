"""Delivery: fan-out of committed messages, read cursors, typing notices.

Messages are fanned out only after their commit, and only from what the bus
yields, so one node and several share one delivery path; a run of messages,
edits, deletions and reactions to one room in one loop turn reaches each member
as one combined frame.

Delivery goes by stream position. Message ids commit in id order on every
backend (storage/base.py), so a committed id N means every lower id is
committed or will never exist. The bus may still bring N before N-1 (another
node's doorbell is late, or was lost): the hub keeps the position up to which
it has delivered everything, and an id beyond the next one first makes it read
the gap from the store and deliver it, in id order; the late doorbell is then
dropped. A gap that cannot be read (the database is down) holds delivery back
until it can be: nothing is skipped, so a session's ``seen`` never passes a
message it was not sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from chinwag.bus.base import BlocksChanged, Bus, Moderated, NodeEvent, Posted, Resync, TypingRelay
from chinwag.config import Settings
from chinwag.core.blocks import Blocks, hidden
from chinwag.core.counts import Counts
from chinwag.core.receipts import DmReceipts
from chinwag.core.rules import parse_room
from chinwag.core.sessions import Frame, OnlineRegistry, Principal, Session, parse_nick_cached
from chinwag.errors import ChatError
from chinwag.protocol.events import (
    Deleted,
    Edited,
    Message,
    Reacted,
    Seen,
    Typing,
    TypingNotice,
)
from chinwag.storage.base import Store, StoredMessage, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

GAP_RETRY = (0.1, 5.0)  # seconds between reads of a gap the store could not serve: first, most
TYPING_COST = 0.1  # a typing notice that is forwarded (coalesced ones are free)
_TYPING_TARGETS = 256  # conversations one sender's last typing notice is remembered for


def _ignore(event: NodeEvent) -> None:
    """One node: no other node speaks."""


def _nothing() -> None:
    """One node: nothing to ask the others."""


def message_event(
    m: StoredMessage, *, own: bool = False, replay: bool = False, bot: bool = False
) -> Message:
    """A stored message as its recipients see it; ``own``: the sender's copy, with its cid;
    ``bot``: its sender is a bot now (irccaps: live copies say it, IRC's ``bot`` tag)."""
    return Message(
        id=m.id,
        ts_ms=m.ts_ms,
        sender=m.sender_nick,
        room=m.room,
        to=m.recipient_nick if m.room is None else None,
        body=m.body,
        cid=m.cid if own else None,
        replay=replay,
        reply_to=m.reply_to,
        mentions=m.mentions,
        edited_ms=m.edited_ms,
        deleted=m.deleted,
        reactions=m.reactions,
        account=m.sender.startswith("a:"),
        bot=bot,
        notice=m.notice,
        concat=m.concat,
    )


def stream_event(
    m: StoredMessage, *, own: bool = False, replay: bool = False, bot: bool = False
) -> Message | Edited | Deleted | Reacted | None:
    """A row of the event stream as its recipients see it (protocol §8).

    None for an edit whose body a later deletion erased: that deletion follows
    in the stream, and the erased text is not sent again.
    """
    if m.kind is None:
        return message_event(m, own=own, replay=replay, bot=bot)
    to = m.recipient_nick if m.room is None else None
    target = m.target or 0
    if m.kind == "edit":
        if m.deleted:
            return None
        return Edited(
            id=m.id,
            ts_ms=m.ts_ms,
            target=target,
            sender=m.sender_nick,
            room=m.room,
            to=to,
            body=m.body,
            mentions=m.mentions,
            replay=replay,
        )
    if m.kind == "delete":
        return Deleted(
            id=m.id,
            ts_ms=m.ts_ms,
            target=target,
            by=m.sender_nick,
            room=m.room,
            to=to,
            replay=replay,
            reason=m.body or None,  # issue 19: a deletion's body is its reason
        )
    return Reacted(
        id=m.id,
        ts_ms=m.ts_ms,
        target=target,
        sender=m.sender_nick,
        room=m.room,
        to=to,
        emoji=m.body,
        on=m.kind == "react",
        replay=replay,
    )


def _own_frame(m: StoredMessage, bot: bool = False) -> Frame:
    """The sender's copy of a message: with its cid."""
    return Frame(message_event(m, own=True, bot=bot))


class Delivery:
    """Committed messages off the bus to the sessions allowed to see them; typing notices.

    Args:
        settings: limits (``typing_interval``).
        store: where ``seen`` moves a device's cursor.
        bus: what is delivered: only what it yields.
        registry: who is online.
        monotonic: clock for the typing interval.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        registry: OnlineRegistry,
        monotonic: Callable[[], float],
    ) -> None:
        self.settings = settings
        self._store = store
        self._bus = bus
        self._monotonic = monotonic
        # The registry's tables, never replaced: read directly.
        self._online = registry.by_pid
        self._by_key = registry.by_key
        self._rooms = registry.rooms
        self._batch: list[StoredMessage] = []  # committed, to fan out this loop turn
        # Every message with an id up to here was delivered (or predates the
        # start: the backlog's). None until `load` or the first message.
        self._position: int | None = None
        self.receipts: DmReceipts | None = None  # DM receipts on `seen` (set by the hub)
        self._registry = registry
        # What the other nodes say beside messages, and a bus interruption (the hub's
        # `Nodes.receive` and `Nodes.resync`; nothing with one node).
        self.node_event: Callable[[NodeEvent], None] = _ignore
        self.resynced: Callable[[], None] = _nothing
        self.counts = Counts()  # the hub's, set by the hub
        self.blocks: Blocks | None = None  # who blocks whom (set by the hub)
        self._reloads: set[asyncio.Task[None]] = set()
        # Moderation actions of other nodes (`Moderation.heard`; set by the hub).
        self.moderated: Callable[[Moderated], Awaitable[None]] | None = None
        self.moderation_resynced: Callable[[], Awaitable[None]] | None = None  # `.resync`
        # Who may not speak in a room (muted, announce) types there unheard (set by the hub).
        self.check_say: Callable[[Principal, str], None] | None = None

    async def load(self) -> None:
        """Start after the newest message committed now: older ones are backlog."""
        self._position = await self._store.max_message_id()

    async def run(self) -> None:
        """Deliver what the bus yields, in id order and without gaps, until the bus closes.

        Messages are fanned out once per event-loop turn, so that a run of
        messages to one room reaches each recipient as one combined frame.
        """
        try:
            async for event in self._bus.subscribe():
                if isinstance(event, Posted):
                    m = event.message
                    if self._position is not None and m.id == self._position + 1:
                        self._queue(m)  # the usual case: the next id, no await
                        self._position = m.id
                    else:
                        await self._take(m)
                elif isinstance(event, Resync):
                    await self._resync()
                    self._reload_blocks()
                    if self.moderation_resynced is not None:
                        await self.moderation_resynced()
                    self.resynced()
                elif isinstance(event, BlocksChanged):
                    if self.blocks is not None:
                        self.blocks.apply(event)
                elif isinstance(event, Moderated):  # issue 16
                    if self.moderated is not None:
                        await self.moderated(event)
                else:
                    self.node_event(event)
        finally:
            self._fan_out_batch()

    async def _take(self, m: StoredMessage) -> None:
        position = m.id - 1 if self._position is None else self._position
        if m.id <= position:
            return  # delivered already: its gap was read from the store
        if m.id > position + 1:
            for missed in await self._gap(position, m.id - 1):
                self._queue(missed)
        self._queue(m)
        self._position = m.id

    async def _resync(self) -> None:
        """Deliver whatever was committed beyond the position (the bus may have lost it)."""
        upto = await self._retrying(self._store.max_message_id, "the newest message id")
        if self._position is None:
            self._position = upto
        if upto > self._position:
            for missed in await self._gap(self._position, upto):
                self._queue(missed)
            self._position = upto

    def _reload_blocks(self) -> None:
        """After a resync a change of blocks on another node may have been lost: read them."""
        if self.blocks is None:
            return
        task = asyncio.get_running_loop().create_task(self.blocks.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _retrying(self, read: Callable[[], Awaitable[T]], what: str) -> T:
        """``read()``, again and again until the store answers (delivery waits meanwhile)."""
        delay, most = GAP_RETRY
        while True:
            try:
                return await read()
            except StoreError as exc:
                log.warning(
                    "cannot read %s to deliver it (%s); delivery waits and tries again in %.1f s",
                    what,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, most)

    async def _gap(self, after: int, upto: int) -> list[StoredMessage]:
        """The committed messages with ids in (after, upto], read until the store answers."""
        missed = await self._retrying(
            lambda: self._store.messages_between(after, upto), f"messages {after + 1} to {upto}"
        )
        if (counts := self.counts).on:
            counts.gap_reads += 1
            counts.gap_messages += len(missed)
        return missed

    def _queue(self, m: StoredMessage) -> None:
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._fan_out_batch)
        self._batch.append(m)

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
        if batch and self.counts.published:  # the fan-out lag of this node's commits
            self.counts.fanned_out(batch[-1].id, time.monotonic())

    def _fan_out_room(self, room: str, msgs: list[StoredMessage]) -> None:
        """Deliver several messages and events of one room: one combined frame per recipient.

        Edits, deletions and reactions go in the same frame as messages, in id
        order: only a message has a copy of its own (the sender's, with its cid),
        and an edit whose body a later deletion erased is not sent (`stream_event`).
        """
        kept: list[StoredMessage] = []
        plain: list[Frame] = []
        for m in msgs:
            event = stream_event(m, bot=self._bot(m))
            if event is not None:
                kept.append(m)
                plain.append(Frame(event))
        if not kept:
            return
        msgs = kept
        combined = Frame(None, tuple(plain))
        senders = {m.sender for m in msgs if m.kind is None}
        last_id = msgs[-1].id
        sessions = partial = 0
        for p in self._rooms.get(room, ()):
            if room not in p.rooms:  # the delivery check, as in _fan_out
                continue
            if p.blocked and any(hidden(p.blocked, m) for m in msgs):
                partial += self._fan_out_some(p, msgs, plain)
                continue
            sessions += len(p.sessions)
            if p.pid in senders:
                parts = tuple(
                    _own_frame(m, p.bot) if m.sender == p.pid and m.kind is None else frame
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
        if self.counts.on:
            self.counts.deliveries += sessions * len(msgs) + partial

    @staticmethod
    def _fan_out_some(p: Principal, msgs: list[StoredMessage], plain: list[Frame]) -> int:
        """Deliver to ``p`` those of ``msgs`` not sent by a nick it blocks; how many copies."""
        copies = 0
        for m, frame in zip(msgs, plain, strict=True):
            if hidden(p.blocked, m):
                continue
            mine = _own_frame(m, p.bot) if m.sender == p.pid and m.kind is None else frame
            for s in p.sessions:
                s.deliver(m.id, mine)
            copies += len(p.sessions)
        return copies

    def _bot(self, m: StoredMessage) -> bool:
        """Whether the sender of message ``m`` is online as a bot (irccaps; else False)."""
        if m.kind is not None:
            return False
        p = self._online.get(m.sender)
        if p is not None:
            return p.bot
        remote = self._registry.remote.get(m.sender) if self._registry.remote.nodes else None
        return remote is not None and remote.bot

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
        if m.kind is not None:
            event = stream_event(m)
            if event is None:
                return
            plain = own = Frame(event)  # events carry no cid: one frame for all
        sessions = 0
        for p in targets:
            # The delivery check: a room member now, or a party to the DM.
            if m.room is not None:
                if m.room not in p.rooms:
                    continue
            elif p.pid != m.sender and p.pid != m.recipient:
                continue
            if p.blocked and hidden(p.blocked, m):
                continue  # issue 16: the blocked one's messages and events stop here
            frame: Frame
            if p.pid == m.sender:
                frame = own = own or Frame(message_event(m, own=True, bot=p.bot))
            else:
                frame = plain = plain or Frame(message_event(m, bot=self._bot(m)))
            sessions += len(p.sessions)
            for s in p.sessions:
                s.deliver(m.id, frame)
        if self.counts.on:
            self.counts.deliveries += sessions

    async def seen(self, session: Session, cmd: Seen) -> None:
        """Move this device's read cursor to ``upto`` (never past what it was sent)."""
        p = session.principal
        if not p.account:
            return
        upto = min(cmd.upto, session.last_delivered)
        if upto > session.seen:  # a repeat writes nothing
            before = session.seen
            await self._store.advance_cursor(p.pid, session.device, upto)
            session.seen = upto
            if self.receipts is not None:
                await self.receipts.delivered(session, before, upto)

    def typing(self, session: Session, cmd: Typing) -> None:
        """Forward a typing notice, at most once per interval; bad ones are dropped silently."""
        p = session.principal
        if cmd.room is not None:
            try:
                room = parse_room(cmd.room)
            except ChatError:
                return
            if room not in p.rooms:
                return
            if self.check_say is not None:
                try:
                    self.check_say(p, room)
                except ChatError:
                    return  # issue 16: muted, or an announce room: not heard typing either
            if not self._typing_due(session, room):
                return
            frame = Frame(TypingNotice(sender=p.nick, room=room))
            targets: Iterable[Principal] = self._rooms.get(room, ())
            if self._registry.remote.nodes:
                self._registry.announce(
                    TypingRelay(self._registry.node, p.pid, p.nick, room, None, None)
                )
        else:
            try:
                nick = parse_nick_cached(cmd.to or "")
            except ChatError:
                return
            other = self._by_key.get(nick.key)
            if other is None:
                self._typing_elsewhere(session, nick.key)
                return
            if not self._typing_due(session, "@" + other.pid):
                return
            frame = Frame(TypingNotice(sender=p.nick, to=other.nick))
            targets = {p, other}
            remote = self._registry.remote
            if remote.nodes and (remote.get(other.pid) or remote.get(p.pid)):
                self._registry.announce(
                    TypingRelay(self._registry.node, p.pid, p.nick, None, other.nick, other.pid)
                )
        for member in targets:
            if member.blocked and p.key in member.blocked:
                continue
            for s in member.sessions:
                if s is not session and s.pending is None:
                    s.outlet.send(frame)

    def _typing_elsewhere(self, session: Session, key: str) -> None:
        """A typing notice to someone online on another node only: through the bus."""
        other = self._registry.remote.find(key)
        if other is None or not self._typing_due(session, "@" + other.pid):
            return
        p = session.principal
        relay = TypingRelay(self._registry.node, p.pid, p.nick, None, other.nick, other.pid)
        self._registry.announce(relay)
        frame = Frame(TypingNotice(sender=p.nick, to=other.nick))
        for s in p.sessions:  # the sender's other sessions here
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
