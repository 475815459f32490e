"""The storage interface: async, backend-neutral, the single source of truth.

The hub talks only to `Store`. A backend keeps its SQL to itself. Principals
(who a message belongs to) are plain strings chosen by the hub:
``"a:<key>"`` for an account (``key`` is the casefolded nick) and
``"g:<session id>"`` for one guest session. Timestamps are integer
milliseconds since the Unix epoch (UTC). Message ids come from the database,
never from the clock, and increase in commit order.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One committed message (a room message or a DM).

    Attributes:
        id: positive, unique, increasing in commit order.
        ts_ms: when the server accepted it (ms since epoch, UTC).
        sender: principal of the sender.
        sender_nick: the sender's display nick at the time.
        room: the room (lowercase), or None for a DM.
        recipient: principal of the DM recipient, or None for a room message.
        recipient_nick: the recipient's display nick, or None.
        body: the text ('' once deleted); for an edit event the new text, for a
            reaction event the emoji.
        cid: the sender's client id, if it sent one.
        kind: None for a message; for an event (protocol §8) ``"edit"``,
            ``"delete"``, ``"react"`` or ``"unreact"``. An event row copies the
            conversation of its target: its ``room``, or for a DM ``sender`` =
            who acted and ``recipient`` = the other party.
        target: for an event, the id of the message it is about.
        reply_to: for a message, the id of the message it answers.
        edited_ms: for a message, when it was last edited (None: never).
        deleted: for a message, whether it was deleted (``body`` is then '');
            for an edit event, whether its body was erased by a later deletion.
        mentions: for a message, the display nicks it mentions.
        reactions: filled by the history reads only: ``(emoji, nicks)`` pairs.
        notice: for a message, sent as a notice (IRC's NOTICE): shown as one,
            never answered automatically (ircmsg).
        concat: for an IRC ``draft/multiline`` message, the offsets (code points)
            in ``body`` where a line was joined to the one before without a
            newline (``draft/multiline-concat``; ircmsg), ascending.
    """

    id: int
    ts_ms: int
    sender: str
    sender_nick: str
    room: str | None
    recipient: str | None
    recipient_nick: str | None
    body: str
    cid: str | None
    kind: str | None = None
    target: int | None = None
    reply_to: int | None = None
    edited_ms: int | None = None
    deleted: bool = False
    mentions: tuple[str, ...] = ()
    reactions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    notice: bool = False
    concat: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store. Exactly one of ``room`` and ``recipient`` is set.

    ``dedupe_key`` identifies the sender for ``cid`` dedupe: the account key for
    an account, the casefolded nick for a guest (protocol §3).

    With ``kind`` set it is an event about message ``target`` (protocol §8;
    see `StoredMessage`); the store applies it to its target in the same
    transaction: ``"edit"`` replaces the body (refused with `Gone` when the
    target is deleted), ``"delete"`` erases the bodies of the target and of its
    edits (`Gone` when already deleted), ``"react"``/``"unreact"`` put the
    reaction ``body`` of ``sender`` on or off.
    """

    ts_ms: int
    sender: str
    sender_nick: str
    dedupe_key: str
    room: str | None
    recipient: str | None
    recipient_nick: str | None
    body: str
    cid: str | None
    kind: str | None = None
    target: int | None = None
    reply_to: int | None = None
    mentions: tuple[str, ...] = ()
    notice: bool = False  # sent as a notice (see `StoredMessage`)
    concat: tuple[int, ...] = ()  # multiline concat points (see `StoredMessage`)


@dataclass(frozen=True, slots=True)
class AppendResult:
    message: StoredMessage
    duplicate: bool  # True: (dedupe_key, cid) was seen within cid_ttl; nothing new stored


@dataclass(frozen=True, slots=True)
class AccountRow:
    key: str  # casefolded nick: the identity
    nick: str  # display form
    skeleton: str  # TR39 skeleton of ``key``, for the confusable check
    password_hash: str  # argon2id encoded hash; "" once deleted
    created_ms: int
    deleted: bool  # a deleted account's nick stays reserved
    bot: bool


@dataclass(frozen=True, slots=True)
class BacklogStart:
    """The first page of an account's backlog, and where the rest lies.

    The rest is read with ``backlog_page``, after the last id of ``first``, up
    to ``upto_id``.
    """

    first: list[StoredMessage]  # oldest first
    upto_id: int  # the newest message committed when it was read
    count: int  # messages in the whole backlog, ``first`` included
    truncated: bool  # older ones were left out (the limit)


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[StoredMessage]  # oldest first
    more: bool  # older messages exist before the first one returned


@dataclass(frozen=True, slots=True)
class SearchScope:
    """Where a search looks (protocol §8): what the asker may see now, narrowed.

    Attributes:
        rooms: the rooms whose messages are searched.
        me: search the DMs of this principal too (None: no DMs).
        with_: only the DMs between ``me`` and this principal.
        sender: only messages from this principal.
    """

    rooms: tuple[str, ...]
    me: str | None
    with_: str | None = None
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class RoomSettings:
    """A room's own row (issue 16, protocol §8 "Moderation").

    Attributes:
        name: the room (lowercase).
        owner: the principal that created it, or None: the server's admins
            govern it (the lobby, and rooms older than moderation).
        topic: '' for none.
        private: joined only after an invite; unlisted; history for members only.
        announce: only the owner and mods may ``say``.
        created_ms: when the row was made.
        retention_days: the room's own retention (issue 17), set by its owner
            or an admin; None: only the server's settings apply. The purge
            keeps the stricter (shorter) of the two (`Retention.with_rooms`).
        key: what a ``join`` must give (IRC ``+k``; branch ircmodes), None: none.
            Kept as it is: the room's members may read it back, as on IRC.
        limit: how many may be online in the room before joins are refused
            (IRC ``+l``; branch ircmodes), None: none.
        topic_locked: only the owner and mods set the topic (IRC ``+t``, ircroles);
            off: any member does.
        secret: unlisted for everyone but its members and admins (IRC ``+s``),
            anyone may still join (ircroles).
        guest: the guest principal whose session's end undoes the room's locks
            (private, announce, secret, topic lock), None when an account set
            them last (ircroles).
        topic_by: the display nick of who set the topic last ('' unknown: before
            ircroles, or no topic); topic_ms: when (None: not known).
    """

    name: str
    owner: str | None
    topic: str = ""
    private: bool = False
    announce: bool = False
    created_ms: int = 0
    retention_days: int | None = None
    key: str | None = None
    limit: int | None = None
    topic_locked: bool = True
    secret: bool = False
    guest: str | None = None
    topic_by: str = ""
    topic_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Standing:
    """What a principal is in a scope: a room, or ``""`` for the whole server.

    ``kind`` is ``"role"`` (``value`` ``"mod"``, or ``"admin"`` in scope ``""``),
    ``"ban"``, ``"mute"``, ``"invite"`` (may join a private room) or ``"voice"``
    (may speak in an announce room, ircroles). One per (scope, principal, kind).
    ``until_ms`` None: until lifted. ``principal`` ``"n:<nick key>"``: a ban of a
    nick nobody had when it was made (whoever takes the nick is banned). ``guest``:
    the guest principal that made it; it ends with that guest's session (ircroles).
    """

    scope: str
    principal: str
    kind: str
    value: str = ""
    until_ms: int | None = None
    by: str = ""  # the display nick of who set it
    reason: str = ""
    ts_ms: int = 0
    guest: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One moderation or admin action: who (``actor``), what, whom, where, when, why."""

    ts_ms: int
    actor: str  # display nick, or "operator" for ``chinwag admin``
    action: str  # kick, ban, unban, mute, unmute, grant, invite, room, delete…
    room: str | None = None  # None: server-wide, or a DM
    target: str | None = None  # the display nick acted on, or "#<id>" of a message
    reason: str = ""
    detail: str = ""  # e.g. "until 2026-12-02T14:05:00Z", "role mod", "topic=…"


class StoreError(Exception):
    """Base of the storage errors the hub may catch."""


class AccountExists(StoreError):
    """create_account: the key (or, for reserved nicks, the same key) is taken."""


class OverQuota(StoreError):
    """append: the DM recipient already holds ``quota`` undelivered DMs."""


class Gone(StoreError):
    """append of an edit or delete: the target message is deleted (nothing stored)."""


# Upper bounds in seconds: from a commit batch's few ms to a stalled disk's seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Observations counted by upper bound (the last count is above every bound), and their sum.

    Written by one thread only (the event loop's, or the store's writer); read at scrape time.
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


class Store(Protocol):
    """What the hub needs from storage. Every method is safe to call concurrently.

    Writes are durable (committed) when the awaited call returns. ``commit_seconds``:
    how long each batch of writes took to commit (for ``/metrics``).
    """

    commit_seconds: Histogram

    async def close(self) -> None:
        """Finish pending writes and release the database."""

    # -- messages -----------------------------------------------------------
    def append(
        self, msg: NewMessage, *, cid_ttl_ms: int, quota: int | None = None
    ) -> asyncio.Future[AppendResult]:
        """Store ``msg`` durably, unless it repeats a recent ``cid``.

        The write is queued when ``append`` is called, not when the future is
        awaited: appends called in order on one event loop are stored in that
        order (increasing ids) and their futures are resolved in that order,
        so a caller may have several in flight (the hub pipelines a
        connection's messages this way). The future is done once the message
        is committed.

        Args:
            msg: the message.
            cid_ttl_ms: a ``(dedupe_key, cid)`` stored less than this long before
                ``msg.ts_ms`` makes this a duplicate: the original is returned with
                ``duplicate=True`` and nothing is stored.
            quota: for a DM to an offline account, the most undelivered DMs it
                may hold (see ``undelivered``); None means no limit.

        Returns:
            A future of the result; it fails with `OverQuota` when the
            recipient is at its quota (nothing was stored).
        """
        ...

    async def get_message(self, message_id: int) -> StoredMessage | None:
        """The message (not an event) with this id, or None."""
        ...

    async def max_message_id(self) -> int:
        """The highest message id stored, 0 when there are none."""
        ...

    async def messages_between(self, after_id: int, upto_id: int) -> list[StoredMessage]:
        """Every message with ``after_id < id <= upto_id``, oldest first.

        How a node fills a gap in what the bus brought it (core/delivery.py).
        """
        ...

    async def backlog_start(
        self, account: str, after_id: int, *, limit: int, since_ms: int, page: int
    ) -> BacklogStart:
        """Bound the backlog of ``account`` and read its first ``page`` messages.

        The backlog is the newest ``limit`` of the messages the account may see
        with id > ``after_id`` and ts >= ``since_ms``, up to the newest message
        committed now: room messages posted while the account was a member of
        the room (see ``join_room``), and DMs it sent or received. Finding its
        bounds reads ids, not messages.
        """
        ...

    async def backlog_page(
        self, account: str, after_id: int, upto_id: int, *, since_ms: int, limit: int
    ) -> list[StoredMessage]:
        """The oldest ``limit`` backlog messages with ``after_id < id <= upto_id``.

        Keyset paging: ``after_id`` is the last id of the previous page (the
        first is ``backlog_start``'s); an empty page is the end. Oldest first,
        each message once; ``since_ms`` as for ``backlog_start``.
        """
        ...

    async def room_history(self, room: str, *, before: int | None, limit: int) -> Page:
        """The newest ``limit`` messages of ``room`` with id < ``before`` (if given).

        History holds messages only (no event rows), each with its latest body,
        ``edited_ms``, ``deleted`` and its ``reactions``; the same for
        ``dm_history``.
        """
        ...

    async def dm_history(self, a: str, b: str, *, before: int | None, limit: int) -> Page:
        """The newest ``limit`` DMs between principals ``a`` and ``b`` (either way)."""
        ...

    async def room_history_range(
        self,
        room: str,
        *,
        after: int,
        before: int | None,
        limit: int,
        newest: bool,
        after_ms: int = 0,
        before_ms: int | None = None,
    ) -> Page:
        """Messages of ``room`` with ``after < id < before`` (no upper bound if None)
        and ``after_ms < ts < before_ms`` (the same).

        The oldest ``limit`` of them, or with ``newest`` the newest ``limit``;
        oldest first either way, as ``room_history``; ``more`` when the range
        holds more. (IRC ``CHATHISTORY AFTER``/``AROUND``/``BETWEEN``.)
        """
        ...

    async def dm_history_range(
        self,
        a: str,
        b: str,
        *,
        after: int,
        before: int | None,
        limit: int,
        newest: bool,
        after_ms: int = 0,
        before_ms: int | None = None,
    ) -> Page:
        """DMs between principals ``a`` and ``b`` (either way), as ``room_history_range``."""
        ...

    async def conversation_heads(self, principal: str, rooms: list[str]) -> list[StoredMessage]:
        """The newest message of each of ``rooms`` and of each DM conversation of
        ``principal`` (either way; one per other party), in no order.

        (IRC ``CHATHISTORY TARGETS``.) Messages only, no event rows.
        """
        ...

    async def search(
        self, words: list[str], scope: SearchScope, *, before: int | None, limit: int
    ) -> Page:
        """Live messages (not deleted) in ``scope`` containing every one of ``words``.

        Words are compared case- and accent-insensitively, as whole words.

        Args:
            words: one or more words, each matched as a word (no query syntax).
            scope: where to look.
            before: only ids below this one (paging); None for the newest.
            limit: most messages returned.

        Returns:
            A page NEWEST first (unlike history); ``more`` when older matches exist.
        """
        ...

    async def undelivered(self, account: str) -> int:
        """DMs to ``account`` from others with id above its highest device cursor."""
        ...

    async def is_member(self, account: str, room: str) -> bool:
        """Whether ``account`` is a member of ``room`` now."""
        ...

    # -- accounts -----------------------------------------------------------
    async def get_account(self, key: str) -> AccountRow | None:
        """The account (deleted ones included) with this key, or None."""
        ...

    async def account_by_skeleton(self, skeleton: str) -> AccountRow | None:
        """An account (deleted ones included) whose skeleton is ``skeleton``."""
        ...

    async def live_nicks(self, keys: list[str]) -> dict[str, str]:
        """The nick of each of the accounts ``keys`` that exists and is not deleted, by key."""
        ...

    async def create_account(self, row: AccountRow) -> None:
        """Raises: AccountExists when ``row.key`` exists (even deleted)."""
        ...

    async def set_password_hash(self, key: str, password_hash: str) -> bool:
        """False when no live account has this key."""
        ...

    async def set_bot(self, key: str, bot: bool) -> bool:
        """Mark the account a bot or not (irccaps, IRC ``MODE nick +B``); False if none."""
        ...

    async def replace_password_hash(self, key: str, old: str, new: str) -> bool:
        """Replace the hash only while it is still ``old`` (a login's rehash must not
        undo a password change made meanwhile); False otherwise."""
        ...

    async def delete_account(self, key: str) -> bool:
        """Mark deleted: the nick stays reserved; hash, rooms and cursors go. False if none."""
        ...

    async def list_accounts(self) -> list[AccountRow]:
        """All accounts, deleted ones included, by key."""
        ...

    async def account_index(self) -> list[tuple[str, str, str]]:
        """``(key, skeleton, nick)`` of every account, deleted ones included (the hub's index)."""
        ...

    async def adopt(self, guest: str, account: str) -> None:
        """A guest session registered: its DMs now belong to ``account``."""
        ...

    # -- rooms (accounts only: a guest's rooms live in memory) ----------------
    async def join_room(self, account: str, room: str) -> bool:
        """Make ``account`` a member from the current highest message id on.

        Returns False (and changes nothing) when it already is a member.
        """
        ...

    async def leave_room(self, account: str, room: str) -> bool:
        """End the membership at the current highest message id. False if not a member."""
        ...

    async def rooms_of(self, account: str) -> list[str]:
        """The rooms ``account`` is a member of, sorted."""
        ...

    async def room_member_counts(self) -> dict[str, int]:
        """Every room with at least one account member, with that count."""
        ...

    # -- cursors --------------------------------------------------------------
    async def get_cursor(self, account: str, device: str) -> int | None:
        """The device's cursor, or None for a device the account never used."""
        ...

    async def max_cursor(self, account: str) -> int:
        """The highest cursor over the account's devices, 0 when there is none."""
        ...

    async def advance_cursor(self, account: str, device: str, upto: int) -> int:
        """Set the cursor to max(cursor, upto) (creating it); return the new value."""
        ...

    # -- read markers (protocol §8) ---------------------------------------------
    async def advance_read(self, account: str, conversation: str, upto: int) -> int:
        """Move the read marker to max(marker, upto) (creating it); return the new value.

        Args:
            account: the account's principal.
            conversation: ``"#" + room``, or ``"@" + the other party's principal``.
            upto: the id read up to.
        """
        ...

    async def read_markers(self, account: str) -> dict[str, int]:
        """Every read marker of ``account``, by conversation."""
        ...

    async def advance_read_at(
        self, account: str, conversation: str, upto: int, ts_ms: int
    ) -> tuple[int, int]:
        """Move the read marker to max(marker, upto) and its time to max(time, ts_ms).

        A marker set by time (IRC ``MARKREAD``, ircmsg): ``upto`` is the latest
        message at or before ``ts_ms``. Returns the new (marker, time).
        """
        ...

    async def read_marker(self, account: str, conversation: str) -> tuple[int, int | None]:
        """(marker, time given) of one conversation: (0, None) when there is none."""
        ...

    async def set_receipts(self, account: str, on: bool) -> None:
        """Turn DM receipts on or off for ``account`` (a principal)."""
        ...

    async def receipts_on(self, accounts: list[str]) -> set[str]:
        """Those of ``accounts`` (principals) that have DM receipts on."""
        ...

    async def dm_senders(self, account: str, after_id: int, upto_id: int) -> dict[str, int]:
        """The others who sent ``account`` DMs with ``after_id < id <= upto_id``: their
        principal and the highest such id (messages only, not events)."""
        ...

    # -- stored DM receipts (issue 15) ------------------------------------------
    async def advance_receipt(
        self, sender: str, reader: str, *, delivered: int = 0, read: int = 0
    ) -> None:
        """Move what ``reader`` has of ``sender``'s DMs to max(stored, given) (creating it).

        Args:
            sender: the principal whose DMs these are.
            reader: the principal who has them on a device (``delivered``) or read
                them (``read``: the read marker of the DM).
        """
        ...

    async def stored_receipts(
        self, sender: str, sender_key: str, reader: str | None = None
    ) -> list[tuple[str, int, int]]:
        """``(reader's display nick, delivered, read)`` of ``sender``'s DMs, by nick.

        Only readers that are live accounts with receipts on and that do not block
        ``sender_key`` (the sender's casefolded nick); ``reader`` narrows to one.
        """
        ...

    async def stats(self) -> dict[str, int]:
        """Counts for ``chinwag admin stats``: accounts, messages, rooms, dms, devices."""
        ...

    async def probe(self) -> None:
        """Commit an empty write through the writer (for ``/readyz``); StoreError: cannot."""
        ...

    # -- invites (sign-up tokens; only their hashes are stored) ----------------
    async def create_invite(
        self, token_hash: str, *, uses: int, expires_ms: int | None, created_ms: int
    ) -> None:
        """Store an invite that may register ``uses`` accounts until ``expires_ms``.

        Args:
            token_hash: hex SHA-256 of the token (the token itself is never stored).
            uses: how many registrations it allows (at least 1).
            expires_ms: when it stops working (ms since epoch); None for never.
            created_ms: now.

        Raises:
            ValueError: ``uses`` is below 1, or the hash is already stored.
        """
        ...

    async def use_invite(self, token_hash: str, now_ms: int) -> bool:
        """Use the invite up by one, atomically; False when unknown, used up or expired."""
        ...

    async def refund_invite(self, token_hash: str) -> None:
        """Give back one use (the registration it was taken for failed)."""
        ...

    # -- blocks (issue 16) -------------------------------------------------------
    async def add_block(
        self, blocker: str, key: str, nick: str, *, limit: int, created_ms: int
    ) -> list[tuple[str, str]] | None:
        """``blocker`` (an account's principal) blocks the nick whose key is ``key``.

        Atomic: a block already there is kept as it was (its ``nick`` and time).

        Args:
            blocker: the account's principal.
            key: the casefolded nick blocked (an account's key, or a guest's nick).
            nick: that nick as shown, for the list.
            limit: the most blocks one account may hold.
            created_ms: now.

        Returns:
            Every block of ``blocker`` after this one, as (key, nick), oldest first;
            None when it already holds ``limit`` others (nothing is stored).
        """
        ...

    async def remove_block(self, blocker: str, key: str) -> list[tuple[str, str]]:
        """Lift ``blocker``'s block of ``key`` (nothing if there is none).

        Returns:
            Every block of ``blocker`` after this, as (key, nick), oldest first.
        """
        ...

    async def blocks_of(self, blocker: str) -> list[tuple[str, str]]:
        """Every block of ``blocker``, as (key, nick), oldest first."""
        ...

    # -- moderation (issue 16) ---------------------------------------------------
    async def load_rooms(self) -> list[RoomSettings]:
        """Every room's row, by name."""
        ...

    async def ensure_room(self, row: RoomSettings) -> RoomSettings:
        """Store ``row`` unless the room has a row already; the row stored now."""
        ...

    async def update_room(self, row: RoomSettings, audit: AuditEntry) -> None:
        """Replace the room's settings (its row exists), with its audit entry, atomically."""
        ...

    async def load_standings(self) -> list[Standing]:
        """Every standing (expired ones included: the hub skips them)."""
        ...

    async def put_standing(self, standing: Standing, audit: AuditEntry | None) -> None:
        """Set the standing (replacing one of the same scope, principal and kind),
        with its audit entry, atomically."""
        ...

    async def drop_standing(
        self, scope: str, principal: str, kind: str, audit: AuditEntry | None
    ) -> bool:
        """Lift the standing, with its audit entry; False (nothing written) if there was none."""
        ...

    async def add_audit(self, entry: AuditEntry) -> None:
        """Record an action that changes no standing (a kick, a deletion)."""
        ...

    async def audit_log(
        self, *, room: str | None, since_ms: int | None, limit: int
    ) -> list[AuditEntry]:
        """The oldest ``limit`` audit entries at or after ``since_ms`` (of ``room`` only, if
        given), oldest first."""
        ...

    # -- reactions per person (audit4) --
    async def reactions_on(self, message_id: int, who: str) -> tuple[list[str], int]:
        """The emojis that the principal ``who`` has on message ``message_id`` now, and how
        many reactions (of anyone) the message has."""
        ...

    # -- empty rooms forgotten (rooms4) --
    async def forget_room(self, room: str) -> bool:
        """Delete the room's row (and its ended memberships) if it carries nothing worth
        keeping: no topic, not private, not announce, no key nor limit, no account in it, no
        message and no standing; all checked in the deleting transaction. False (nothing
        written) if not."""
        ...


def heads(principal: str, candidates: list[StoredMessage]) -> list[StoredMessage]:
    """One message per conversation: the newest of the candidates of each (rooms by
    name, DMs by ``principal``'s other party, whichever way they went)."""
    newest: dict[str, StoredMessage] = {}
    for m in candidates:
        if m.room is not None:
            key = "#" + m.room
        else:
            other = (m.recipient or "") if m.sender == principal else m.sender
            key = "@" + other
        if key not in newest or newest[key].id < m.id:
            newest[key] = m
    return list(newest.values())


_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def account_export(
    account: AccountRow,
    devices: Iterable[tuple[str, int]],
    memberships: Iterable[tuple[str, int, int | None]],
    upto: int,
) -> dict[str, Any]:
    """`Store.export_account`'s answer (both backends): the account without its
    password hash, each device's cursor, every membership interval, ``upto_id``."""
    return {
        "account": {
            "nick": account.nick,
            "key": account.key,
            "created_ms": account.created_ms,
            "deleted": account.deleted,
            "bot": account.bot,
        },
        "devices": [{"device": d, "cursor": c} for d, c in devices],
        "memberships": [{"room": r, "from_id": f, "to_id": t} for r, f, t in memberships],
        "upto_id": int(upto),
    }


def read_migrations(folder: str) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration file in ``chinwag.storage/folder``, by version.

    Each backend keeps its own numbered files (``001_initial.sql``…) in its own folder.

    Raises:
        StoreError: the files are not numbered 001, 002, … without a gap.
    """
    files = importlib.resources.files("chinwag.storage").joinpath(folder)
    found: list[tuple[int, str, str]] = []
    for entry in files.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migration files are not numbered 001, 002, …: {versions}")
    return found


# -- retention (issue 17): messages older than their conversation's limit ------
DAY_MS: Final = 86_400_000


@dataclass(frozen=True, slots=True)
class Retention:
    """How long messages are kept before they are deleted for good, in days (None: forever).

    ``rooms`` applies to every room without an entry in ``per_room`` (an entry
    of None keeps that room's messages forever); ``dms`` to direct messages.
    Events (edits, deletions, reactions) go with the message they are about,
    and with their own age.
    """

    rooms: float | None = None
    dms: float | None = None
    per_room: Mapping[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for days in (self.rooms, self.dms, *self.per_room.values()):
            if days is not None and not days > 0:
                raise ValueError(f"a retention is a number of days above 0, not {days!r}")

    @property
    def active(self) -> bool:
        """Whether anything is ever deleted."""
        return any(d is not None for d in (self.rooms, self.dms, *self.per_room.values()))

    def cutoffs(self, now_ms: int) -> tuple[int | None, int | None, dict[str, int | None]]:
        """(rooms, DMs, per room): messages with ``ts_ms`` below a cutoff are expired."""

        def cut(days: float | None) -> int | None:
            return None if days is None else now_ms - int(days * DAY_MS)

        per_room = {room: cut(days) for room, days in self.per_room.items()}
        return cut(self.rooms), cut(self.dms), per_room

    def with_rooms(self, own: Mapping[str, float]) -> Retention:
        """This retention with rooms' own settings (days, from the rooms table) added.

        A room keeps its messages for the shorter of the server's retention
        for it and its own: each is a promise to delete, so both hold.
        """
        if not own:
            return self
        per_room = dict(self.per_room)
        for room, days in own.items():
            server = self.per_room.get(room, self.rooms)
            per_room[room] = days if server is None else min(server, days)
        return Retention(self.rooms, self.dms, per_room)
