"""The desktop app's model: everything the window shows, as plain data (no Tk, no I/O).

:class:`GuiModel` is fed the library's events (on the Tk thread, after they
crossed the bridge) and the user's actions, and answers the questions the
views ask: which conversations are in the sidebar with which unread counts,
what the conversation view shows (day separators, grouped messages, the
"new since you were away" divider, notices, pending messages), what the status
bar and the title say, who is typing, what the input box held per conversation.

Messages, dedupe by id and unread counts are the library's
:class:`~chinwag.client.state.ChatState`; this class adds what only a windowed
client needs. Time comes in as arguments (``now`` is a monotonic reading), so
every rule here is tested without a clock, a window or a server.
"""

from __future__ import annotations

import math
import re
import socket
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final, Literal

from chinwag.client.events import (
    CaughtUp,
    Changed,
    HistoryPage,
    Message,
    Moderated,
    Presence,
    ReadMarker,
    Receipt,
    Renamed,
    RoomDetails,
    SendFailed,
    Sent,
    Status,
    Typing,
    User,
    Welcome,
    fold_nick,
)
from chinwag.client.gui.moderation import MODERATORS, RoomRules, moderated_text, refusal_text
from chinwag.client.state import ChatState, Conversation

__all__ = [
    "LOBBY",
    "Arrival",
    "AwayDivider",
    "Chip",
    "DaySeparator",
    "GuiModel",
    "LoadEarlier",
    "LoadNewer",
    "LoginProblem",
    "MessageLine",
    "Notice",
    "NoticeLine",
    "Pending",
    "PendingLine",
    "Quote",
    "ServerProblem",
    "SidebarEntry",
    "Tick",
    "ViewItem",
    "emoji_from_text",
    "explain_login_error",
    "first_line",
    "rate_limited_text",
    "split_fences",
    "summary_text",
]

LOBBY: Final = Conversation.room("lobby")
TYPING_TTL: Final = 6.0
"""Seconds a "typing" notice lasts without a new one (clients repeat it every few s)."""
GROUP_GAP: Final = timedelta(minutes=5)
"""Messages from one sender closer than this share one header."""
MAX_NOTICES: Final = 200
"""Notices kept per conversation."""
QUOTE_CHARS: Final = 80
"""A reply's quote shows at most this many characters of the first line."""


# --- what the conversation view shows ----------------------------------------------


@dataclass(frozen=True, slots=True)
class DaySeparator:
    """A line between two days (local time)."""

    day: date


@dataclass(frozen=True, slots=True)
class AwayDivider:
    """The "new since you were away" line, above the first message of the login's backlog."""


@dataclass(frozen=True, slots=True)
class LoadEarlier:
    """A link at the top: older messages exist on the server."""

    loading: bool = False


@dataclass(frozen=True, slots=True)
class LoadNewer:
    """A link below message ``after``: newer messages exist that are not loaded here (a
    jump far back loaded a page around its message; issue 15)."""

    after: int
    loading: bool = False


Tick = Literal["sent", "delivered", "read"]
"""Where one of our DMs is, once stored: the DM timeline of protocol §8 (receipts on)."""


@dataclass(frozen=True, slots=True)
class Quote:
    """The message a reply answers, shown above the reply.

    Attributes:
        target: its id (clicking the quote jumps to it).
        sender: who wrote it ("" when it is not loaded here).
        text: its first line, "message deleted", or "an earlier message".
        loaded: whether it is kept here (else a click loads earlier pages).
    """

    target: int
    sender: str
    text: str
    loaded: bool


@dataclass(frozen=True, slots=True)
class Chip:
    """One reaction under a message: the emoji, how many put it on, and whether we did."""

    emoji: str
    count: int
    mine: bool


@dataclass(frozen=True, slots=True)
class MessageLine:
    """A message; ``header`` when it starts a group (sender and time shown).

    Attributes:
        message: the message as it is now (edited, deleted, reacted to).
        header: it starts a group.
        mention: it mentions us (the line stands out).
        quote: the message it answers, for a reply.
        editing: the user is editing it in place.
        chips: its reactions.
        tick: for one of our DMs, how far it got (when receipts are on).
    """

    message: Message
    header: bool
    mention: bool = False
    quote: Quote | None = None
    editing: bool = False
    chips: tuple[Chip, ...] = ()
    tick: Tick | None = None


@dataclass(frozen=True, slots=True)
class NoticeLine:
    """A line from the app itself: someone joined, a message was refused..."""

    text: str
    kind: Literal["info", "error"] = "info"


@dataclass(frozen=True, slots=True)
class PendingLine:
    """One of our messages the server has not stored yet (or refused)."""

    key: int
    body: str
    state: Literal["queued", "sending", "failed"]
    error: str | None = None
    quote: Quote | None = None


ViewItem = (
    DaySeparator | AwayDivider | LoadEarlier | LoadNewer | MessageLine | NoticeLine | PendingLine
)


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice kept in a conversation, shown after the message with id ``after_id``."""

    after_id: int
    text: str
    kind: Literal["info", "error"] = "info"


@dataclass(slots=True)
class Pending:
    """A message the user sent that the server has not stored yet.

    Attributes:
        key: the app's own number for it (the ``cid`` comes later, from the
            network thread).
        conversation: where it goes.
        body: the text.
        cid: the library's client id, once queued there.
        acked: the server stored it (our own copy has not arrived yet).
        error: why it was not sent, if it failed for good.
        reply_to: the id of the message it answers.
    """

    key: int
    conversation: Conversation
    body: str
    cid: str | None = None
    acked: bool = False
    error: str | None = None
    reply_to: int | None = None


@dataclass(frozen=True, slots=True)
class SidebarEntry:
    """One line of the sidebar."""

    conversation: Conversation
    name: str
    unread: int


@dataclass(frozen=True, slots=True)
class Arrival:
    """Where a new message went, and whether to ring the bell for it."""

    conversation: Conversation
    alert: bool


@dataclass(slots=True)
class _Typist:
    display: str
    until: float


# --- text helpers ------------------------------------------------------------------------


def split_fences(body: str) -> list[tuple[str, bool]]:
    """Split a message body into runs of plain text and fenced (```) code.

    A line that starts with three backticks opens or closes a block; the fence
    lines themselves are not shown (a language name after the fence is dropped).
    An unclosed block runs to the end. Code keeps its spacing exactly: the game
    bot draws boards in these blocks.

    Returns:
        ``(text, is_code)`` runs, in order, without the newline that ends a run.
    """
    runs: list[tuple[str, bool]] = []
    current: list[str] = []
    code = False
    for line in body.split("\n"):
        if line.lstrip().startswith("```"):
            rest = line.lstrip()[3:]
            if not code and rest.rstrip().endswith("```") and len(rest.rstrip()) > 3:
                # ```one line of code``` on a single line
                if current:
                    runs.append(("\n".join(current), False))
                    current = []
                runs.append((rest.rstrip()[:-3], True))
                continue
            if current or code:
                runs.append(("\n".join(current), code))
            current = []
            code = not code
            continue
        current.append(line)
    if current:
        runs.append(("\n".join(current), code))
    return [(text, is_code) for text, is_code in runs if text or is_code]


def first_line(body: str) -> str:
    """A body's first line with text (code fences skipped), cut to :data:`QUOTE_CHARS`."""
    lines = (line.strip() for text, _code in split_fences(body) for line in text.split("\n"))
    first = next((line for line in lines if line), "")
    return first if len(first) <= QUOTE_CHARS else first[: QUOTE_CHARS - 1] + "…"


def summary_text(event: CaughtUp) -> str:
    """The caught-up summary shown at login, in plain words."""
    parts = [
        f"{n} from {nick}" for nick, n in sorted(event.dms.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    parts += [
        f"{n} in #{room}" for room, n in sorted(event.rooms.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    if not parts:
        return "While you were away: nothing new."
    total = event.missed or sum(event.dms.values()) + sum(event.rooms.values())
    noun = "message" if total == 1 else "messages"
    text = f"While you were away: {total} new {noun} — " + ", ".join(parts) + "."
    if event.truncated:
        text += " Older ones were left out."
    return text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- the model ---------------------------------------------------------------------------


class GuiModel:
    """The state of one login, as the window shows it.

    Args:
        nick: the nick being logged in (the server's display form replaces it
            at :meth:`on_welcome`).
        server: ``host:port``, for the status bar.
        tz: the time zone for timestamps and day separators (default: local).
        typing_ttl: how long a "typing" notice lasts, in seconds.

    Attributes:
        state: the library's pure model: messages, dedupe, unread counts, rooms.
        tls: the connection uses TLS (said in the status bar).
        focused: the window has the keyboard focus (else DMs and mentions alert).
        summary: the caught-up summary of this login (None: none, or dismissed).
        alert: why the title flashes (a DM or a mention while unfocused), if it does.
        status: the connection's last :class:`Status`.
        logged_in: a session is (or was, until it went offline) logged in.
        caught_up: this login's backlog is over.
    """

    def __init__(
        self,
        nick: str = "",
        server: str = "",
        *,
        tz: tzinfo | None = None,
        typing_ttl: float = TYPING_TTL,
    ) -> None:
        self.state = ChatState(nick)
        self.server = server
        self.tls = False
        self.tz = tz
        self.typing_ttl = typing_ttl
        self.focused = True
        self.summary: str | None = None
        self.alert: str | None = None
        self.status: Status = Status("offline")
        self.logged_in = False
        self.caught_up = False
        self._retry_at: float | None = None
        self._mention_for = ""
        self._mention = re.compile("(?!)")
        self._catching_up = False
        self._drafts: dict[Conversation, str] = {}
        self._last_sent: dict[Conversation, str] = {}
        self._pending: dict[int, Pending] = {}
        self._next_key = 0
        self._delivered_cids: dict[str, int] = {}
        self._away_first: dict[Conversation, int] = {}
        self._notices: dict[Conversation, list[Notice]] = {}
        self._last_id: dict[Conversation, int] = {}
        self._dms: dict[Conversation, int] = {}  # DM -> newest id (0 when just opened)
        self._members: dict[str, dict[str, User]] = {}
        # Whether each nick seen in a ``who`` reply is an account: presence
        # frames do not say. A registered nick stays registered; a guest may
        # register since, so only "account" is taken as settled.
        self._accounts: dict[str, bool] = {}
        self._typing: dict[Conversation, dict[str, _Typist]] = {}
        self._more: dict[Conversation, bool] = {}
        self._history_loaded: set[Conversation] = set()
        self._history_loading: set[Conversation] = set()
        # Issue 15: per conversation, the ids after which newer messages are not loaded
        # (a jump's page), and those being loaded now.
        self._gaps: dict[Conversation, set[int]] = {}
        self._gaps_loading: set[int] = set()
        self.editing: int | None = None
        """The id of the message being edited in place, if one is."""
        self.receipts = False
        """Whether this account has DM receipts on (read ticks are shown then)."""
        self.results: list[Message] = []
        """The last search's results, newest first."""
        self.results_query = ""
        self.results_more = False
        self._replying: dict[Conversation, int] = {}
        self._receipts: dict[Conversation, tuple[int, int]] = {}  # DM -> (delivered, read)
        self._read_sent: dict[Conversation, int] = {}
        self.rules = RoomRules()
        """Rooms' settings, our roles, who is muted or a mod, whom we block (issue 16)."""

    # --- who am I ----------------------------------------------------------------

    @property
    def nick(self) -> str:
        """Our nick (the server's display form after the welcome)."""
        return self.state.nick

    @property
    def active(self) -> Conversation:
        """The conversation on screen."""
        return self.state.active

    def mentions_me(self, body: str) -> bool:
        """Whether ``body`` names our nick as a word (``alice``, ``@Alice``; not ``malice``)."""
        if not self.nick:
            return False
        if self._mention_for != self.nick:
            word = re.escape(fold_nick(self.nick))
            self._mention = re.compile(r"(?<![\w-])" + word + r"(?![\w-])")
            self._mention_for = self.nick
        return self._mention.search(fold_nick(body)) is not None

    # --- events from the library -------------------------------------------------

    def on_welcome(self, event: Welcome) -> None:
        """A session began; the first one of a login starts the away backlog."""
        self.state.welcome(event.nick, event.account, event.rooms)
        self.logged_in = True
        if not event.resumed:
            self._catching_up = True
            self.caught_up = False

    def on_caught_up(self, event: CaughtUp) -> None:
        """The backlog is over. At login, keep the summary if anything was missed."""
        self.caught_up = True
        if event.resumed:
            return
        self._catching_up = False
        if event.missed:
            self.summary = summary_text(event)
            # The server knows what the account read on its other devices: its
            # count replaces ours (which counted every message of the backlog).
            unread = {
                Conversation.dm(k[1:]) if k.startswith("@") else Conversation.room(k): n
                for k, n in event.unread.items()
            }
            for conv in self.state.conversations():
                self.state.set_unread(conv, unread.get(conv, 0))

    def on_message(self, message: Message) -> Arrival | None:
        """Take a delivered message.

        Returns:
            Where it went and whether it calls for the user's attention (a DM or
            a mention, live, while the window is not focused; :attr:`alert` then
            says why); None if it was a duplicate (nothing changed).
        """
        if not self.state.add(message):
            return None
        conv = Conversation.of(message)
        self._last_id[conv] = max(self._last_id.get(conv, 0), message.id)
        if conv.kind == "dm":
            self._dms[conv] = max(self._dms.get(conv, 0), message.id)
        if message.replay and self._catching_up and not message.own:
            self._away_first.setdefault(conv, message.id)
        if message.own and message.cid is not None:
            self._delivered_cids[message.cid] = message.id
            for key, item in list(self._pending.items()):
                if item.cid == message.cid:
                    del self._pending[key]
        typists = self._typing.get(conv)
        if typists is not None:
            typists.pop(fold_nick(message.sender), None)
        alert = False
        if not (message.own or message.replay or self.focused):
            if message.room is None:
                self.alert, alert = f"{message.sender} sent you a message", True
            elif message.mentioned or self.mentions_me(message.body):
                self.alert, alert = f"{message.sender} mentioned you in #{message.room}", True
        return Arrival(conv, alert)

    def on_change(self, change: Changed) -> Arrival | None:
        """An edit, deletion or reaction of a message.

        Returns:
            Where the changed message is and whether to alert (an edit that
            newly mentions us, live, while the window is not focused); None if
            the message is not kept here (history brings it changed already).
        """
        message = self.state.apply(change)
        if message is None:
            return None
        conv = Conversation.of(message)
        if message.deleted:
            if self.editing == message.id:
                self.editing = None
            for c, target in list(self._replying.items()):
                if target == message.id:
                    del self._replying[c]
        alert = False
        newly = {fold_nick(n) for n in change.mentions}
        if (
            change.kind == "edited"
            and not (change.replay or self.focused or self.state.is_me(change.by))
            and self.nick
            and fold_nick(self.nick) in newly
        ):
            where = f"#{message.room}" if message.room is not None else "a message to you"
            self.alert, alert = f"{change.by} mentioned you in {where}", True
        return Arrival(conv, alert)

    def on_read_marker(self, event: ReadMarker) -> Conversation | None:
        """Another device of ours read a conversation: its unread count follows."""
        if event.room is not None:
            conv = Conversation.room(event.room)
        elif event.with_ is not None:
            conv = Conversation.dm(event.with_)
        else:
            return None
        self.state.read_upto(conv, event.upto)
        return conv

    def on_receipt(self, event: Receipt) -> None:
        """The other party of a DM got or read our messages up to ``event.upto``."""
        conv = Conversation.dm(event.with_)
        delivered, read = self._receipts.get(conv, (0, 0))
        if event.state == "read":
            read = max(read, event.upto)
        delivered = max(delivered, event.upto)  # read implies delivered
        self._receipts[conv] = (delivered, read)

    def tick(self, message: Message) -> Tick | None:
        """How far one of our DMs got: sent, delivered, read (None: not shown)."""
        if not (self.receipts and message.own and message.room is None) or message.deleted:
            return None
        delivered, read = self._receipts.get(Conversation.of(message), (0, 0))
        if message.id <= read:
            return "read"
        if message.id <= delivered:
            return "delivered"
        return "sent"

    def read_due(self) -> tuple[Conversation, int] | None:
        """The conversation on screen and its newest id, if it should be marked read now.

        Only while the window has the focus and the login is caught up; only
        past the marker already known or asked for.
        """
        if not (self.focused and self.caught_up and self.status.state == "connected"):
            return None
        conv = self.active
        if conv.kind == "room" and conv.name not in self.state.rooms:
            return None
        newest = self.state.newest_id(conv)
        if newest <= max(self.state.marker(conv), self._read_sent.get(conv, 0)):
            return None
        return conv, newest

    def read_sent(self, conversation: Conversation, upto: int) -> None:
        """A ``read`` up to ``upto`` is on its way (not asked again meanwhile)."""
        self._read_sent[conversation] = max(self._read_sent.get(conversation, 0), upto)

    def read_done(self, conversation: Conversation, upto: int, ok: bool) -> None:
        """The server answered the ``read``: the marker moved.

        A refusal (a DM with a guest who left is ``no_such_user``) is not asked
        again until a newer message comes: asking at once would only repeat it.
        """
        if ok:
            self.state.read_upto(conversation, upto)

    def on_renamed(self, event: Renamed) -> None:
        """A guest took another nick (ircmsg): member lists follow, its rooms are told."""
        key = fold_nick(event.nick)
        for room, members in self._members.items():
            user = members.pop(key, None)
            if user is not None:
                members[fold_nick(event.new)] = replace(user, nick=event.new)
                self.add_notice(
                    Conversation.room(room), f"{event.nick} is now known as {event.new}"
                )

    def on_presence(self, event: Presence) -> bool:
        """Someone joined or left a room: the member list and a notice follow.

        Returns:
            True if the room's members should be fetched again with ``who``: a
            nick joined that is not known to be an account.
        """
        room = event.room.lower()
        members = self._members.get(room)
        key = fold_nick(event.nick)
        unknown = False
        if event.event == "join":
            if members is not None and key not in members:
                account = self._accounts.get(key, False)
                unknown = not account
                members[key] = User(event.nick, account)
        else:
            if members is not None:
                members.pop(key, None)
            typists = self._typing.get(Conversation.room(room))
            if typists is not None:
                typists.pop(key, None)
        if self.state.is_me(event.nick):
            if event.event == "join":
                self.state.joined(room)
            else:
                self.state.left(room)
                if self.active == Conversation.room(room):
                    self.state.set_active(LOBBY)
            return False
        verb = "joined" if event.event == "join" else "left"
        self.add_notice(Conversation.room(room), f"{event.nick} {verb}")
        return unknown and members is not None

    def on_typing(self, event: Typing, now: float) -> Conversation | None:
        """Someone is typing; returns the conversation (None for our own notices)."""
        if self.state.is_me(event.sender):
            return None
        if event.room is not None:
            conv = Conversation.room(event.room)
        else:
            conv = Conversation.dm(event.sender)
        typists = self._typing.setdefault(conv, {})
        typists[fold_nick(event.sender)] = _Typist(event.sender, now + self.typing_ttl)
        return conv

    def on_status(self, event: Status, now: float) -> None:
        """The connection changed state. A final "offline" fails what was not sent."""
        self.status = event
        self._retry_at = now + event.retry_in if event.retry_in is not None else None
        if event.state == "offline":
            self.logged_in = False
            if event.error:
                for item in self._pending.values():
                    if not item.acked and item.error is None:
                        item.error = "not sent: the connection was closed"

    def on_sent(self, event: Sent) -> None:
        """The server stored one of our messages."""
        for item in self._pending.values():
            if item.cid == event.cid:
                item.acked = True

    def on_send_failed(self, event: SendFailed) -> Conversation | None:
        """The server refused a message for good.

        The refusal stays visible on the message, and the text goes back into
        that conversation's input box if it is empty, so nothing typed is lost.

        Returns:
            The conversation whose draft was restored, if one was.
        """
        for item in self._pending.values():
            if item.cid == event.cid:
                room = event.target if event.kind == "say" else None
                why = refusal_text(event.error, room, local=self.local, now=datetime.now(UTC))
                item.error = f"not sent: {why}"
                if not self._drafts.get(item.conversation):
                    self._drafts[item.conversation] = item.body
                    return item.conversation
        return None

    # --- the user's actions --------------------------------------------------------

    def queue(self, conversation: Conversation, body: str) -> Pending:
        """Record a message the user sent; it shows as pending until stored."""
        self._next_key += 1
        reply_to = self._replying.pop(conversation, None)
        item = Pending(self._next_key, conversation, body, reply_to=reply_to)
        self._pending[item.key] = item
        self._last_sent[conversation] = body
        self._drafts.pop(conversation, None)
        if conversation.kind == "dm":
            self.open_dm(self.target(conversation))
        return item

    def message(self, message_id: int) -> Message | None:
        """A kept message by id (None if not kept here)."""
        return self.state.find(message_id)

    def can_edit(self, message_id: int) -> bool:
        """Whether the user may edit or delete this message: theirs, and not deleted."""
        message = self.state.find(message_id)
        return message is not None and message.own and not message.deleted

    def last_own(self, conversation: Conversation) -> int | None:
        """The id of our newest message in a conversation that is not deleted."""
        for message in reversed(self.state.messages(conversation)):
            if message.own and not message.deleted:
                return message.id
        return None

    def start_edit(self, message_id: int) -> bool:
        """Edit one of our messages in place; False if it is not ours (or gone)."""
        if not self.can_edit(message_id):
            return False
        self.editing = message_id
        return True

    def stop_edit(self) -> None:
        """End editing in place (saved or cancelled)."""
        self.editing = None

    def start_reply(self, message_id: int) -> bool:
        """Answer a message of the conversation on screen with the next one sent there."""
        message = self.state.find(message_id)
        if message is None or message.deleted or Conversation.of(message) != self.active:
            return False
        self._replying[self.active] = message_id
        return True

    def cancel_reply(self) -> None:
        """Send the next message of the conversation on screen as no reply."""
        self._replying.pop(self.active, None)

    def replying(self, conversation: Conversation) -> Quote | None:
        """The message the next one sent to ``conversation`` will answer, if any."""
        target = self._replying.get(conversation)
        return self.quote(target) if target is not None else None

    def quote(self, target: int) -> Quote:
        """How a reply shows the message it answers."""
        message = self.state.find(target)
        if message is None:
            return Quote(target, "", "an earlier message", False)
        if message.deleted:
            return Quote(target, message.sender, "message deleted", True)
        return Quote(target, message.sender, first_line(message.body), True)

    def chips(self, message: Message) -> tuple[Chip, ...]:
        """A message's reactions as chips (ours highlighted)."""
        return tuple(
            Chip(r.emoji, len(r.nicks), any(self.state.is_me(n) for n in r.nicks))
            for r in message.reactions
        )

    def set_results(self, query: str, page: HistoryPage, *, more_of: bool = False) -> None:
        """Search results (newest first); ``more_of``: a next page of the same search."""
        if more_of and query == self.results_query:
            self.results = self.results + list(page.messages)
        else:
            self.results = list(page.messages)
        self.results_query = query
        self.results_more = page.more

    def clear_results(self) -> None:
        """The search was closed."""
        self.results, self.results_query, self.results_more = [], "", False

    def results_title(self) -> str:
        """The line above the search results."""
        n = len(self.results)
        if not n:
            return f"Nothing found for “{self.results_query}”"
        more = "+" if self.results_more else ""
        return f"{n}{more} found for “{self.results_query}”"

    def result_rows(self) -> list[str]:
        """One line per search result: where, who, when, and the text's first line."""
        rows = []
        for m in self.results:
            where = f"#{m.room}" if m.room is not None else f"@{m.peer}"
            when = self.local(m.ts).strftime("%d %b %H:%M")
            rows.append(f"{where} · {m.sender} · {when} — {first_line(m.body)}")
        return rows

    def holds(self, conversation: Conversation, message_id: int) -> bool:
        """Whether message ``message_id`` is kept in ``conversation``."""
        message = self.state.find(message_id)
        return message is not None and Conversation.of(message) == conversation

    def bind_cid(self, key: int, cid: str) -> None:
        """The network thread queued pending message ``key`` under ``cid``."""
        item = self._pending.get(key)
        if item is None:
            return
        if cid in self._delivered_cids:  # our copy came back before we heard the cid
            del self._pending[key]
            return
        item.cid = cid

    def refuse(self, key: int, reason: str) -> None:
        """The library refused a pending message before sending (empty, too long...)."""
        item = self._pending.get(key)
        if item is not None:
            item.error = f"not sent: {reason}"
            if not self._drafts.get(item.conversation):
                self._drafts[item.conversation] = item.body

    def dismiss(self, key: int) -> None:
        """Forget a failed pending message."""
        self._pending.pop(key, None)

    def pending(self, conversation: Conversation | None = None) -> list[Pending]:
        """Pending messages (of one conversation, or all), oldest first."""
        return [
            p
            for p in self._pending.values()
            if conversation is None or p.conversation == conversation
        ]

    @property
    def queued(self) -> int:
        """Messages typed and not yet stored (failed ones excluded)."""
        return sum(1 for p in self._pending.values() if p.error is None and not p.acked)

    def switch(self, conversation: Conversation, current_draft: str) -> str:
        """Show ``conversation``: keep the input box's text for the one we leave.

        Returns:
            The text the input box held for ``conversation``.
        """
        self.save_draft(current_draft)
        if conversation.kind == "dm":
            self.open_dm(self.target(conversation))
        self.state.set_active(conversation)
        return self._drafts.get(conversation, "")

    def save_draft(self, text: str) -> None:
        """Keep what the input box holds for the active conversation."""
        if text.strip():
            self._drafts[self.active] = text
        else:
            self._drafts.pop(self.active, None)

    def draft(self, conversation: Conversation) -> str:
        """What the input box holds for a conversation."""
        return self._drafts.get(conversation, "")

    def recall(self, conversation: Conversation) -> str | None:
        """The last message the user sent to a conversation (for the Up key)."""
        return self._last_sent.get(conversation)

    def open_dm(self, nick: str) -> Conversation:
        """Add a DM conversation with ``nick`` to the sidebar."""
        conv = self.state.open_dm(nick)
        self._dms.setdefault(conv, 0)
        return conv

    def close_dm(self, conversation: Conversation) -> None:
        """Take a DM conversation off the sidebar (it comes back with the next message)."""
        self._dms.pop(conversation, None)
        if self.active == conversation:
            self.state.set_active(LOBBY)

    def set_focused(self, focused: bool) -> None:
        """The window gained or lost the keyboard focus; gaining it ends any alert."""
        self.focused = focused
        if focused:
            self.alert = None
            self.state.mark_read(self.active)

    def add_notice(
        self, conversation: Conversation, text: str, kind: Literal["info", "error"] = "info"
    ) -> None:
        """Show a line from the app in a conversation, after its newest message."""
        notices = self._notices.setdefault(conversation, [])
        notices.append(Notice(self._last_id.get(conversation, 0), text, kind))
        if len(notices) > MAX_NOTICES:
            del notices[: len(notices) - MAX_NOTICES]

    def dismiss_summary(self) -> None:
        """Hide the caught-up summary."""
        self.summary = None

    # --- rooms, members, history ------------------------------------------------------

    def target(self, conversation: Conversation) -> str:
        """The room name or nick to send to."""
        return self.state.display_name(conversation)[1:]

    def set_members(self, room: str, users: Iterable[User]) -> None:
        """The online members of a room, from a ``who`` reply."""
        members = {fold_nick(u.nick): u for u in users}
        self._members[room.lower()] = members
        self._accounts.update((key, user.account) for key, user in members.items())

    def members(self, room: str) -> list[User] | None:
        """The online members of a room, sorted (None until fetched)."""
        members = self._members.get(room.lower())
        if members is None:
            return None
        return sorted(members.values(), key=lambda u: fold_nick(u.nick))

    def needs_history(self, conversation: Conversation) -> bool:
        """Whether the view should fetch a first page of history for a conversation."""
        return (
            conversation not in self._history_loaded
            and conversation not in self._history_loading
            and (conversation.kind == "dm" or conversation.name in self.state.rooms)
        )

    def history_started(self, conversation: Conversation) -> None:
        """A ``history`` request for this conversation is under way."""
        self._history_loading.add(conversation)

    def history_failed(self, conversation: Conversation) -> None:
        """The ``history`` request failed (it can be asked for again)."""
        self._history_loading.discard(conversation)

    def add_history(self, conversation: Conversation, page: HistoryPage) -> int:
        """Merge a page of older messages; returns how many were new."""
        self._history_loading.discard(conversation)
        self._history_loaded.add(conversation)
        self._more[conversation] = page.more
        return self._merge(conversation, page)

    def _merge(self, conversation: Conversation, page: HistoryPage) -> int:
        added = self.state.add_history(page.messages)
        for message in added:
            self._last_id[conversation] = max(self._last_id.get(conversation, 0), message.id)
            if conversation.kind == "dm":
                self._dms[conversation] = max(self._dms.get(conversation, 0), message.id)
        return len(added)

    # --- issue 15: a page around a message far back, and the gap it leaves ----------

    def add_around(
        self, conversation: Conversation, older: HistoryPage, newer: HistoryPage
    ) -> None:
        """Merge a jump's pages: up to and with its message (``older``), and after it.

        Where ``older`` stops short of older messages kept here, and where
        ``newer`` stops short of what is newer, a gap remains (`LoadNewer`).
        """
        kept = [m.id for m in self.state.messages(conversation)]
        low = min((m.id for m in older.messages), default=None)
        below = [i for i in kept if low is not None and i < low]
        self._history_loaded.add(conversation)
        self._merge(conversation, older)
        gaps = self._gaps.setdefault(conversation, set())
        if below and older.more:
            gaps.add(below[-1])
        elif not below:
            self._more[conversation] = older.more
        self._after_gap(conversation, newer)

    def gap_started(self, after: int) -> None:
        """A page after gap ``after`` is being loaded."""
        self._gaps_loading.add(after)

    def add_newer(self, conversation: Conversation, after: int, page: HistoryPage | None) -> None:
        """Merge the page after gap ``after`` (None: it failed; the gap stays)."""
        self._gaps_loading.discard(after)
        if page is None:
            return
        self._gaps.setdefault(conversation, set()).discard(after)
        self._after_gap(conversation, page)

    def _after_gap(self, conversation: Conversation, page: HistoryPage) -> None:
        """A page forwards went in: if it joined nothing kept and newer ones exist, the
        gap now starts at its newest message."""
        added = self._merge(conversation, page)
        if page.more and page.messages and added == len(page.messages):
            self._gaps.setdefault(conversation, set()).add(page.messages[-1].id)

    def oldest_id(self, conversation: Conversation) -> int | None:
        """The oldest message id shown in a conversation (``before`` for the next page)."""
        return self.state.oldest_id(conversation)

    # --- what the window shows ------------------------------------------------------

    def sidebar(self) -> tuple[list[SidebarEntry], list[SidebarEntry]]:
        """Rooms (lobby first, then by name) and DMs (the most recent first)."""
        rooms = sorted(self.state.rooms, key=lambda r: (r != "lobby", r))
        room_entries = [
            SidebarEntry(c, r, self.state.unread(c)) for r in rooms for c in (Conversation.room(r),)
        ]
        dms = sorted(self._dms.items(), key=lambda kv: (-kv[1], kv[0].name))
        dm_entries = [SidebarEntry(c, self.target(c), self.state.unread(c)) for c, _ in dms]
        return room_entries, dm_entries

    def items(self, conversation: Conversation) -> list[ViewItem]:
        """What the conversation view shows, top to bottom."""
        out: list[ViewItem] = []
        if self._more.get(conversation):
            out.append(LoadEarlier(conversation in self._history_loading))
        notices = list(self._notices.get(conversation, ()))
        away = self._away_first.get(conversation)
        n = 0
        prev: Message | None = None
        prev_day: date | None = None
        for message in self.state.messages(conversation):
            while n < len(notices) and notices[n].after_id < message.id:
                out.append(NoticeLine(notices[n].text, notices[n].kind))
                n += 1
                prev = None
            day = self.local(message.ts).date()
            if day != prev_day:
                out.append(DaySeparator(day))
                prev_day, prev = day, None
            if message.id == away:
                out.append(AwayDivider())
                prev = None
            header = not (
                prev is not None
                and fold_nick(prev.sender) == fold_nick(message.sender)
                and message.ts - prev.ts <= GROUP_GAP
            )
            mention = not message.own and (message.mentioned or self.mentions_me(message.body))
            out.append(
                MessageLine(
                    message,
                    header,
                    mention,
                    self.quote(message.reply_to) if message.reply_to is not None else None,
                    message.id == self.editing,
                    self.chips(message),
                    self.tick(message),
                )
            )
            prev = message
            if message.id in self._gaps.get(conversation, ()):
                out.append(LoadNewer(message.id, message.id in self._gaps_loading))
                prev = None
        out.extend(NoticeLine(notice.text, notice.kind) for notice in notices[n:])
        for item in self.pending(conversation):
            quote = self.quote(item.reply_to) if item.reply_to is not None else None
            if item.error is not None:
                out.append(PendingLine(item.key, item.body, "failed", item.error, quote))
            elif item.cid is not None and self.status.state == "connected":
                out.append(PendingLine(item.key, item.body, "sending", quote=quote))
            else:
                out.append(PendingLine(item.key, item.body, "queued", quote=quote))
        return out

    # --- moderation (issue 16) -------------------------------------------------------

    def on_room_details(self, event: RoomDetails) -> None:
        """A room's settings, on joining it or changed by someone (said in the room)."""
        old = self.rules.on_details(event)
        if event.by is None:
            return
        said: list[str] = []
        if old is None or old.topic != event.topic:
            said.append(f"set the topic to “{event.topic}”" if event.topic else "cleared the topic")
        if old is None or old.private != event.private:
            said.append("made the room private" if event.private else "opened the room to all")
        if old is None or old.announce != event.announce:
            said.append(
                "made the room announce-only" if event.announce else "let everyone speak again"
            )
        if said:
            self.add_notice(Conversation.room(event.room), f"{event.by} {' and '.join(said)}")

    def can_delete(self, message_id: int) -> bool:
        """Whether the user may delete this message: theirs, or a room's they moderate."""
        if self.can_edit(message_id):
            return True
        message = self.state.find(message_id)
        return (
            message is not None
            and not message.deleted
            and message.room is not None
            and self.rules.role(message.room) in MODERATORS
        )

    def known_guest(self, nick: str) -> bool:
        """Whether a ``who`` reply said ``nick`` has no account."""
        return self._accounts.get(fold_nick(nick)) is False

    def on_moderated(self, event: Moderated) -> None:
        """Someone was kicked, banned, muted, invited or given a role: said in plain words.

        Being kicked or banned takes the room off our list (the library already
        left it); the notice goes to the lobby, where we land.
        """
        me = self.state.is_me(event.nick)
        self.rules.on_moderated(event, me)
        room = event.room.lower()
        text = moderated_text(event, me=me, local=self.local, now=datetime.now(UTC))
        conv = Conversation.room(room)
        if event.action in ("kick", "ban"):
            members = self._members.get(room)
            if members is not None:
                members.pop(fold_nick(event.nick), None)
            if me:
                self.state.left(room)
                if self.active == conv:
                    self.state.set_active(LOBBY)
                self.add_notice(LOBBY, text, "error")
                return
        self.add_notice(conv if room in self.state.rooms else LOBBY, text)

    def local(self, ts: datetime) -> datetime:
        """A timestamp in the model's time zone."""
        return ts.astimezone(self.tz)

    def typing_text(self, conversation: Conversation, now: float) -> str:
        """``bob is typing…`` (or two names, or "several people"), "" if nobody is."""
        typists = self._typing.get(conversation, {})
        for key in [k for k, t in typists.items() if t.until <= now]:
            del typists[key]
        names = sorted((t.display for t in typists.values()), key=fold_nick)
        if not names:
            return ""
        if len(names) == 1:
            return f"{names[0]} is typing…"
        if len(names) == 2:
            return f"{names[0]} and {names[1]} are typing…"
        return "Several people are typing…"

    def status_text(self, now: float) -> str:
        """The status bar, which tells the truth about the connection and the queue."""
        queued = self.queued
        waiting = f" — {_plural(queued, 'message')} queued" if queued else ""
        state = self.status.state
        if state == "connected":
            kind = "account" if self.state.account else "guest"
            tls = " over TLS" if self.tls else ""
            text = f"Connected to {self.server}{tls} as {self.nick} ({kind})"
            if queued:
                text += f" — sending {_plural(queued, 'message')}"
            return text
        if state == "reconnecting":
            if self._retry_at is None or self._retry_at - now <= 0.05:
                return f"Connection lost — reconnecting now…{waiting}"
            seconds = max(1, math.ceil(self._retry_at - now - 0.05))
            return f"Connection lost — reconnecting in {seconds} s{waiting}"
        text = "Offline" + waiting
        if self.status.error:
            text += f" ({self.status.error})"
        return text

    def title(self, flash: bool = False) -> str:
        """The window title: total unread count, active conversation; the alert when flashing."""
        if flash and self.alert:
            return f"✉ {self.alert} — chinwag"
        total = self.state.total_unread()
        name = self.state.display_name(self.active) if self.logged_in or self.nick else ""
        base = f"{name} — chinwag" if name else "chinwag"
        return f"({total}) {base}" if total else base

    def dm_conversations(self) -> Sequence[Conversation]:
        """The DM conversations on the sidebar."""
        return list(self._dms)


class ServerProblem(Exception):
    """The server field names no server we can use (shown next to that field, as is)."""


# --- login refusals in plain words ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginProblem:
    """Why a login failed, in plain words, and which field of the form it concerns.

    Attributes:
        field: ``server``, ``nick``, ``password`` or ``form`` (the form as a whole).
        text: what to tell the user.
        retry_after: for ``rate_limited``: seconds before Connect may be pressed again.
    """

    field: Literal["server", "nick", "password", "form"]
    text: str
    retry_after: float | None = None


def explain_login_error(
    error: BaseException, *, server: str, nick: str, register: bool
) -> LoginProblem:
    """Turn a refused or failed login into words for the connect window."""
    if isinstance(error, ServerProblem):
        return LoginProblem("server", str(error))
    code = getattr(error, "code", None)
    message = str(getattr(error, "message", "") or error)
    match code:
        case "password_required" if register:
            return LoginProblem(
                "nick", f"“{nick}” is already registered. Untick “Register” and enter its password."
            )
        case "password_required":
            return LoginProblem("password", f"“{nick}” is registered: enter its password.")
        case "bad_password":
            return LoginProblem("password", f"Wrong password for “{nick}”.")
        case "nick_taken":
            return LoginProblem(
                "nick",
                f"Someone online is using “{nick}” right now. "
                "Pick another nick, or try again in a moment.",
            )
        case "nick_registered":
            return LoginProblem("nick", f"“{nick}” is already registered.")
        case "bad_nick":
            return LoginProblem(
                "nick",
                f"“{nick}” can't be used ({message}). Nicks are up to 32 letters, digits, _ and -.",
            )
        case "weak_password":
            return LoginProblem("password", "Too short: a password needs at least 8 characters.")
        case "rate_limited":
            wait = float(getattr(error, "retry_after", 1.0))
            return LoginProblem("password", rate_limited_text(wait), retry_after=wait)
        case "unsupported_proto":
            return LoginProblem("server", "That server speaks a protocol this app does not know.")
        case "server_error":
            return LoginProblem("form", "The server had a problem. Try again.")
        case str():
            return LoginProblem("form", f"The server refused: {message}.")
    if isinstance(error, ConnectionRefusedError):
        return LoginProblem("server", f"Nobody is answering at {server}. Is the server running?")
    if isinstance(error, TimeoutError):
        return LoginProblem("server", f"{server} did not answer in time.")
    if isinstance(error, socket.gaierror):
        return LoginProblem("server", f"Cannot find the host of {server}.")
    if isinstance(error, OSError):
        why = error.strerror or str(error) or type(error).__name__
        return LoginProblem("server", f"Cannot reach {server}: {why}.")
    return LoginProblem("form", f"Could not log in: {message or type(error).__name__}.")


def rate_limited_text(seconds: float) -> str:
    """The countdown shown after ``rate_limited``."""
    n = max(1, math.ceil(seconds))
    return f"Too many attempts. Try again in {n} s."


_EMOJI_JOINERS: Final = frozenset("\u200d\ufe0f\ufe0e")


def emoji_as_text(text: str) -> str:
    """Colour emoji as ``:their name:`` (Tk 8.6 draws them as empty boxes).

    Only pictographs outside the Basic Multilingual Plane are named: older
    symbols (☺, ❤) are in ordinary fonts. Skin-tone modifiers, variation
    selectors and the joiners of emoji sequences are dropped.
    """
    out: list[str] = []
    for i, ch in enumerate(text):
        code = ord(ch)
        if ch in _EMOJI_JOINERS and (ch != "\u200d" or _astral_symbol(text, i - 1)):
            continue
        if 0x1F3FB <= code <= 0x1F3FF:  # skin tones
            continue
        if _astral_symbol(text, i):
            out.append(f":{unicodedata.name(ch, 'emoji').lower()}:")
        else:
            out.append(ch)
    return "".join(out)


def emoji_from_text(text: str) -> str | None:
    """What the user typed as a reaction: the emoji itself, or its name.

    Tk cannot draw colour emoji, so a name is the easy way to type one:
    ``kangaroo``, ``:thumbs up sign:`` (as the app shows them) or ``THUMBS UP SIGN``.

    Returns:
        The emoji, or None if the text is neither one nor the name of one.
    """
    text = text.strip()
    if not text:
        return None
    if not any(ch.isalpha() and ch.isascii() for ch in text):
        return text  # an emoji itself: the server checks it is one grapheme
    name = text.strip(":").replace("_", " ").strip().upper()
    try:
        found = unicodedata.lookup(name)
    except KeyError:
        return None
    return found if unicodedata.category(found) == "So" else None


def _astral_symbol(text: str, i: int) -> bool:
    return 0 <= i < len(text) and ord(text[i]) > 0xFFFF and unicodedata.category(text[i]) == "So"
