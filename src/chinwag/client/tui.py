"""``chinwag chat``: the terminal client.

One scrolling stream of every conversation, each line labelled with its local
time (HH:MM) and its conversation (``#room`` or ``@nick``), above an input line.
On a terminal the input line is a prompt_toolkit prompt (history, editing, and
output that scrolls above it); when stdin or stdout is not a terminal the client
reads plain lines, so it can be scripted.

Text from other people is untrusted: control characters, ANSI escape sequences
and invisible formatting characters (bidi overrides...) are never printed raw;
they are shown escaped (``\\x1b``, ``\\u202e``). See :func:`clean`.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import getpass
import logging
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ssl import SSLContext
from typing import Final, Literal

from prompt_toolkit import PromptSession
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.patch_stdout import patch_stdout

from chinwag.client.connection import (
    DEFAULT_PORT,
    MAX_BODY,
    ChatClient,
    ClientClosed,
    NotConnected,
    speaks_tls,
)
from chinwag.client.events import (
    AwayChanged,
    CaughtUp,
    Changed,
    ErrorReceived,
    Message,
    Moderated,
    Presence,
    ReadMarker,
    Receipt,
    Renamed,
    RoomDetails,
    SendFailed,
    Status,
    Welcome,
)
from chinwag.client.outbox import OutboxItem
from chinwag.client.state import Conversation
from chinwag.errors import BadPassword, ChatError, Forbidden, PasswordRequired

__all__ = ["clean", "format_message", "parse_server", "run_chat", "summary"]

# Issue 15: how far one of my DMs got, in /history (sent: no mark).
_TICKS: Final = {"delivered": "  ✓", "read": "  ✓✓"}

HELP: Final = """\
commands:
  /join ROOM [KEY]    join a room (made on first join) and talk there (#ROOM too;
                      KEY: the room's key, if it has one)
  /leave [ROOM]       leave a room (default: the current one); also /part
  /rooms              list rooms (with what is unread in the ones you are in)
  /unread             what is unread, per conversation (the one you are in is read)
  /receipts on|off    DM read receipts: you see when someone read your DMs (✓✓),
                      and they see when you read theirs, if both of you turn them on
                      (/receipts alone: whether they are on)
  /who [ROOM]         who is online in a room (default: the current one); also /names
  /dm NICK [TEXT]     talk to NICK directly (and send TEXT); also /query NICK
  /msg NICK TEXT      send NICK a direct message, staying where you are
  /r TEXT             reply to whoever last sent you a direct message
  /history [N]        the N (default 20) messages before the oldest shown here
  /edit [ID] TEXT     replace the text of your message ID (default: your last one here)
  /delete [ID]        delete your message ID (default: your last one here)
  /react [ID] EMOJI   react to message ID (default: the last one here); /unreact takes it off
  /answer [ID] TEXT   reply to message ID (default: the last one here from someone else)
  /search WORDS       find messages you may see with every one of WORDS (ids shown)
  /block NICK         see nothing more from NICK, on any device (NICK is not told)
  /unblock NICK       see what NICK sends from now on again; /blocks lists your blocks
  /away [TEXT]        tell the people in your rooms you are away (TEXT); /away alone: back
  /topic [TEXT]       show or set the current room's topic (its owner or a mod)
  /mode [+p|-p|+a|-a] show the room's settings, or make it private (+p: invite only,
                      unlisted) or announce-only (+a: only owner and mods speak)
  /retention [DAYS|off]   show or set how many days this room keeps its messages
                      (its owner; the server's own limit may be shorter)
  /key [KEY|off]      show or set the key one must give to join this room
                      (its owner or a mod; members, the invited and mods need none)
  /limit [N|off]      show or set how many may be online in this room at once
                      (its owner or a mod; the invited and mods still join)
  /invite NICK        let NICK join this (private) room
  /kick NICK [WHY]    take NICK out of this room (they may come back)
  /ban NICK [FOR] [WHY]   keep NICK out of this room, FOR 30m, 2h, 7d… or until /unban
  /mute NICK [FOR] [WHY]  stop NICK speaking here, FOR a while or until /unmute
  /unban NICK, /unmute NICK   lift them
  /grant NICK ROLE    make NICK a mod of this room, or a member again (its owner)
  /register           make your nick an account (asks for a password)
  /passwd             change your password
  /quit               leave (if messages are not sent yet, asks you to /quit again)
  /help               this text
anything else is sent to the current conversation (shown in the prompt);
start a line with // to send a line that starts with /; Alt+Enter starts a
new line; a message over 4,000 characters is sent in parts"""

# The commands with their arguments (for "usage:" and "did you mean").
_USAGE: Final = {
    "join": "/join ROOM [KEY]",
    "leave": "/leave [ROOM]",
    "rooms": "/rooms",
    "unread": "/unread",
    "receipts": "/receipts on|off",
    "who": "/who [ROOM]",
    "dm": "/dm NICK [TEXT]",
    "query": "/query NICK",
    "msg": "/msg NICK TEXT",
    "reply": "/r TEXT",
    "history": "/history [N]",
    "edit": "/edit [ID] TEXT",
    "delete": "/delete [ID]",
    "react": "/react [ID] EMOJI",
    "unreact": "/unreact [ID] EMOJI",
    "answer": "/answer [ID] TEXT",
    "search": "/search WORDS",
    "block": "/block NICK",
    "unblock": "/unblock NICK",
    "blocks": "/blocks",
    "away": "/away [TEXT]",
    "topic": "/topic [TEXT]",
    "mode": "/mode [+p|-p|+a|-a]",
    "retention": "/retention [DAYS|off]",
    "key": "/key [KEY|off]",
    "limit": "/limit [N|off]",
    "invite": "/invite NICK",
    "kick": "/kick NICK [WHY]",
    "ban": "/ban NICK [FOR] [WHY]",
    "unban": "/unban NICK",
    "mute": "/mute NICK [FOR] [WHY]",
    "unmute": "/unmute NICK",
    "grant": "/grant NICK mod|member",
    "register": "/register",
    "passwd": "/passwd",
    "quit": "/quit",
    "help": "/help",
}
_ALIASES: Final = {"part": "leave", "names": "who", "r": "reply", "exit": "quit"}
_NOT_YET: Final = {
    "me": "/me is not there yet: the protocol has no action messages (planned)",
}

DIVIDER: Final = "-" * 48
RECONNECT_MAX: Final = 5.0
"""The longest pause between two reconnect attempts, in seconds."""
LOGIN_ATTEMPTS: Final = 3
READ_DELAY: Final = 0.5
"""Seconds between a message showing in the conversation in view and its read marker moving."""
READ_EVERY: Final = 3.0
"""At least this many seconds between two read markers (each costs a command token)."""

# Invisible characters that are part of how scripts and emoji are written.
_KEEP_FORMAT: Final = frozenset("\u200c\u200d")


def clean(text: str, *, multiline: bool = False) -> str:
    """Make untrusted text safe to print on a terminal.

    C0 and C1 control characters (ESC included, so no ANSI sequence survives),
    DEL, lone surrogates, line/paragraph separators and format characters
    (bidi overrides and isolates, tag characters...) are replaced by a visible
    escape such as ``\\x1b`` or ``\\u202e``. Tabs become spaces. Newlines are
    kept only if ``multiline``.

    Args:
        text: the untrusted text.
        multiline: keep ``\\n`` (the caller indents continuation lines).
    """
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch == "\n" and multiline:
            out.append(ch)
        elif ch == "\t":
            out.append("    ")
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            out.append(f"\\x{code:02x}")
        elif code < 0x7F:
            out.append(ch)
        elif unicodedata.category(ch) in ("Cf", "Cs", "Zl", "Zp") and ch not in _KEEP_FORMAT:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def hhmm(ts: datetime | None = None) -> str:
    """A timestamp as local time HH:MM (now if None)."""
    return (ts.astimezone() if ts is not None else datetime.now().astimezone()).strftime("%H:%M")


def label(conversation: Conversation, names: Callable[[Conversation], str] | None = None) -> str:
    """``#room`` or ``@nick``, cleaned."""
    return clean(names(conversation) if names is not None else str(conversation))


def format_message(message: Message) -> str:
    """One message as printed: ``HH:MM #room <nick> text`` (or ``@peer`` for a DM).

    A message that mentions you (protocol version 1.1) starts with ``(!)``; a
    notice has ``-nick-`` instead of ``<nick>``, as IRC clients show one.

    Continuation lines of a multi-line body are indented under the text; the
    lines of a fenced code block (between two ````` lines) are shown with a
    bar in front, the fences themselves are not.
    """
    where = f"#{message.room}" if message.room is not None else f"@{message.peer}"
    who = f"-{clean(message.sender)}-" if message.notice else f"<{clean(message.sender)}>"
    head = f"{hhmm(message.ts)} {clean(where)} {who} "  # -nick-: a notice, as IRC shows one
    if message.mentioned and not message.own:
        head = "(!) " + head  # it mentions you
    lines: list[str] = []
    code = False
    body = "(message deleted)" if message.deleted else message.body
    if message.edited and not message.deleted:
        body += " (edited)"
    for line in clean(body, multiline=True).split("\n"):
        if line.lstrip().startswith("```"):
            code = not code
            continue
        lines.append(f"│ {line}" if code else line)
    pad = "\n" + " " * min(len(head), 24)
    return head + pad.join(lines or [""])


def describe_change(change: Changed) -> str:
    """An edit, deletion or reaction as one line (untrusted text escaped)."""
    where = f"#{change.room}" if change.room is not None else f"@{change.to}"
    who = clean(change.by)
    if change.kind == "edited":
        return f"{who} edited [{change.target}] in {clean(where)}: {clean(change.body or '')}"
    if change.kind == "deleted":
        return f"{who} deleted [{change.target}] in {clean(where)}"
    verb = "reacted" if change.on else "took back"
    return f"{who} {verb} {clean(change.emoji or '')} on [{change.target}] in {clean(where)}"


def split_body(text: str, limit: int = MAX_BODY) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut after a line or a word."""
    parts: list[str] = []
    while len(text) > limit:
        cut = max(text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
        cut = cut + 1 if cut > 0 else limit
        parts.append(text[:cut].rstrip())
        text = text[cut:]
    return [*parts, text] if text.strip() else parts


def summary(event: CaughtUp) -> str:
    """The "while you were away" line for a login's backlog."""
    parts = [f"{n} from {nick}" for nick, n in sorted(event.dms.items(), key=lambda kv: -kv[1])]
    parts += [f"{n} in {room}" for room, n in sorted(event.rooms.items(), key=lambda kv: -kv[1])]
    text = "while you were away: " + (clean(", ".join(parts)) if parts else "nothing new")
    if event.truncated:
        text += " (older messages were left out)"
    return text


_MODERATION: Final = (
    "topic", "mode", "retention", "key", "limit", "invite", "kick", "ban", "unban", "mute",
    "unmute", "grant",
)  # fmt: skip
_ROLES: Final = ("mod", "member")
_LIFTS: Final[dict[str, Literal["kick", "unban", "unmute"]]] = {
    "kick": "kick",
    "unban": "unban",
    "unmute": "unmute",
}
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_MODE_FLAGS: Final = {"p": "private", "a": "announce"}


def parse_length(text: str) -> int | None:
    """Seconds of a length as typed (``30m``, ``2h``, ``7d``), or None if it is not one."""
    if len(text) >= 2 and text[-1] in _UNITS and text[:-1].isdigit():
        return int(text[:-1]) * _UNITS[text[-1]]
    return None


def _modes(args: list[str]) -> dict[str, bool] | None:
    """``+p -a`` (or ``+pa``) as room settings; None if something else was typed."""
    changes: dict[str, bool] = {}
    for arg in args:
        if len(arg) < 2 or arg[0] not in "+-":
            return None
        for flag in arg[1:]:
            if flag not in _MODE_FLAGS:
                return None
            changes[_MODE_FLAGS[flag]] = arg[0] == "+"
    return changes


def _count(text: str) -> bool:
    """A whole number above 0, written in ASCII digits."""
    return text.isascii() and text.isdigit() and int(text) > 0


def room_line(room: str, details: RoomDetails | None) -> str:
    """The room info line: ``#games: chess · private · announce · you are its owner``."""
    if details is None:
        return f"#{clean(room)}: nothing known yet (/join it again to see its settings)"
    parts = [f"topic: {clean(details.topic)}" if details.topic else "no topic"]
    if details.private:
        parts.append("private (invite only)")
    if details.announce:
        parts.append("announce (only its owner and mods speak)")
    if details.retention_days is not None:
        days = details.retention_days
        parts.append(f"messages kept {days} day{'' if days == 1 else 's'}")
    if details.keyed:
        parts.append(f"key: {clean(details.key)}" if details.key else "needs a key to join")
    if details.limit is not None:
        parts.append(f"at most {details.limit} online")
    if details.role is not None and details.role != "member":
        parts.append(
            f"you are {'an' if details.role in ('admin', 'owner') else 'a'} {details.role}"
        )
    by = f" (set by {clean(details.by)})" if details.by else ""
    return f"#{clean(room)}: " + " · ".join(parts) + by


def describe_moderation(event: Moderated, me: bool) -> str:
    """A moderator's action in plain words: ``you are muted in #games until 14:05 by olga``."""
    who = "you" if me else clean(event.nick)
    verb = {
        "kick": "kicked from",
        "ban": "banned from",
        "unban": "unbanned in",
        "mute": "muted in",
        "unmute": "unmuted in",
        "voice": "voiced in",  # ircroles: may speak while the room is announce-only
        "unvoice": "no longer voiced in",
        "invite": "invited to",
        "grant": f"made {event.role or 'member'} of",
    }.get(event.action, f"{clean(event.action)} in")
    be = "are" if me else "is"
    until = ""
    if event.action in ("ban", "mute"):
        until = f" until {_when(event.until)}" if event.until is not None else " until lifted"
    why = f": {clean(event.reason)}" if event.reason else ""
    return f"{who} {be} {verb} #{clean(event.room)}{until} by {clean(event.by)}{why}"


def _when(ts: datetime) -> str:
    """A time for people: ``14:05`` today, else with its date."""
    local = ts.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def _room(text: str) -> str:
    """A room as typed (``games`` or ``#games``), as the server names it."""
    return text.removeprefix("#").lower()


def parse_server(server: str) -> tuple[str, int]:
    """Split ``HOST[:PORT]`` (``[v6addr]:PORT`` for IPv6) into host and port.

    Raises:
        ValueError: the port is not a number from 1 to 65535.
    """
    host, port = server, DEFAULT_PORT
    if server.startswith("["):
        end = server.find("]")
        if end == -1:
            raise ValueError(f"bad address {server!r}")
        host, rest = server[1:end], server[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad address {server!r}")
            port = int(rest[1:])
    elif server.count(":") == 1:
        host, _, text = server.partition(":")
        port = int(text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    return host or "localhost", port


# --- input and output ----------------------------------------------------------


class _Terminal:
    """Where lines go and come from: prompt_toolkit on a terminal, plain lines if not."""

    def __init__(self, interactive: bool, prompt: Callable[[], str]) -> None:
        self.interactive = interactive
        self._prompt = prompt
        self._lines: asyncio.Queue[str | None] | None = None
        self._session: PromptSession[str] | None = None

    def print(self, text: str) -> None:
        print(text, flush=True)

    def redraw(self) -> None:
        """Draw the prompt again (it shows the connection's state)."""
        if self._session is not None and self._session.app.is_running:
            self._session.app.invalidate()

    @contextlib.contextmanager
    def output(self) -> Iterator[None]:
        """Keep printed lines above the input line while the chat runs."""
        if not self.interactive:
            yield
            return
        with patch_stdout():
            yield

    def _reader(self) -> asyncio.Queue[str | None]:
        if self._lines is None:
            loop = asyncio.get_running_loop()
            lines: asyncio.Queue[str | None] = asyncio.Queue()

            def pump() -> None:
                # A daemon thread: a blocked readline must not hold up the exit.
                for line in sys.stdin:
                    loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
                loop.call_soon_threadsafe(lines.put_nowait, None)

            threading.Thread(target=pump, name="chinwag-stdin", daemon=True).start()
            self._lines = lines
        return self._lines

    async def read_line(self) -> str | None:
        """The next input line; None at end of input (Ctrl-D, Ctrl-C, EOF)."""
        if not self.interactive:
            return await self._reader().get()
        if self._session is None:
            # The line typed is erased once sent: the message's echo shows it.
            self._session = PromptSession(erase_when_done=True, key_bindings=_keys())
        try:
            text: str = await self._session.prompt_async(self._prompt)
        except (EOFError, KeyboardInterrupt):
            return None
        return text

    async def read_secret(self, prompt: str) -> str | None:
        """A password, not echoed; None if the user gave up."""
        if not self.interactive:
            return await self._reader().get()
        try:
            secret: PromptSession[str] = PromptSession()
            text: str = await secret.prompt_async(prompt, is_password=True)
        except (EOFError, KeyboardInterrupt):
            return None
        return text


def _keys() -> KeyBindings:
    """Alt+Enter (Esc, Enter) starts a new line in the input instead of sending."""
    keys = KeyBindings()

    @keys.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return keys


@dataclass
class _Outcome:
    code: int | None = None


class _Chat:
    """One run of the terminal client."""

    def __init__(
        self,
        host: str,
        port: int,
        nick: str,
        password_stdin: bool,
        ssl: SSLContext | None = None,
        invite: str | None = None,
        cert_advice: str | None = None,
    ) -> None:
        self.host = host
        self.cert_advice = cert_advice
        self.port = port
        self.nick = nick
        self.password_stdin = password_stdin
        self.invite = invite
        self.tls = ssl is not None
        self.interactive = sys.stdin.isatty() and sys.stdout.isatty()
        # A person is waiting: retry at least every RECONNECT_MAX s, not the
        # library's 30 s (meant for many bots coming back at once).
        self.client = ChatClient(
            host,
            port,
            nick=nick,
            client_name="chinwag-chat",
            ssl=ssl,
            reconnect_max=RECONNECT_MAX,
        )
        self.term = _Terminal(self.interactive, self._prompt)
        self.outcome = _Outcome()
        self._backlog: list[Message] | None = []  # replayed messages until caught_up
        self._reconnecting = False
        self._input: asyncio.Task[None] | None = None
        self._quit_asked = False  # /quit said "not sent yet" once
        self._before_dm: Conversation | None = None  # where /dm switched from
        self._last_dm: str | None = None  # who last sent us a DM (for /r)
        self._told_reply: set[str] = set()  # peers whose first DM got the /r hint
        self._account = False
        self._reader: asyncio.Task[None] | None = None  # moves the read marker, then ends
        self._read_sent: dict[Conversation, int] = {}  # the last marker sent, per conversation
        self._read_at = 0.0  # when (loop time) the last marker went
        self._seen_by: dict[str, int] = {}  # folded nick -> my DMs they read, up to this id

    def say(self, text: str) -> None:
        self.term.print(text)

    def note(self, text: str) -> None:
        self.term.print(f"{hhmm()} *** {text}")

    def _prompt(self) -> str:
        where = label(self.client.state.active, self.client.state.display_name) + "> "
        if not self._reconnecting:
            return where
        queued = self.client.queued
        return f"(reconnecting{f', {queued} queued' if queued else ''}) {where}"

    # --- login -----------------------------------------------------------------

    async def _ask_password(self, prompt: str) -> str | None:
        if self.password_stdin:
            line = await asyncio.to_thread(sys.stdin.readline)
            return line.rstrip("\r\n") if line else None
        try:
            return await asyncio.to_thread(getpass.getpass, prompt)
        except (EOFError, KeyboardInterrupt):
            return None

    async def login(self) -> bool:
        password: str | None = None
        for _ in range(LOGIN_ATTEMPTS + 1):
            try:
                await self.client.connect(password=password)
                return True
            except PasswordRequired:
                pass
            except BadPassword as exc:
                self.say(f"{clean(exc.message)}")
                if self.password_stdin:
                    return False
            except ChatError as exc:
                self.say(f"cannot log in as {clean(self.nick)}: {clean(exc.message)}")
                return False
            except OSError as exc:
                why = exc.strerror or str(exc) or type(exc).__name__
                self.say(f"cannot connect to {self.host}:{self.port}: {why}")
                if not self.tls and await speaks_tls(self.host, self.port):
                    self.say("this server speaks TLS: add --tls, or use an invite from its admin")
                return False
            password = await self._ask_password(f"password for {self.nick}: ")
            if password is None:
                return False
        self.say("too many failed attempts")
        return False

    # --- events ----------------------------------------------------------------

    async def show_events(self) -> None:
        async for event in self.client.events():
            match event:
                case Welcome():
                    self._on_welcome(event)
                case Message():
                    if self._backlog is not None and event.replay:
                        self._backlog.append(event)
                    else:
                        self.say(format_message(event))
                        self._on_dm(event)
                        self._schedule_read()
                case CaughtUp():
                    self._on_caught_up(event)
                case Presence(room=room, nick=nick, event=what):
                    verb = "joined" if what == "join" else "left"
                    self.note(f"{clean(nick)} {verb} #{clean(room)}")
                case Status():
                    self._on_status(event)
                case SendFailed(error=error, kind=kind, target=target, body=body):
                    where = f"#{target}" if kind == "say" else f"@{target}"
                    preview = body if len(body) <= 40 else body[:40] + "…"
                    self.note(
                        f"not sent to {clean(where)}: {clean(error.message)}: {clean(preview)}"
                    )
                    self._leave_failed_dm(kind, target, error.code)
                case ErrorReceived(error=error):
                    self.note(f"server: {clean(error.message)}")
                case Changed():
                    self.note(describe_change(event))
                case RoomDetails():
                    self.note(room_line(event.room, event))
                case Moderated():
                    self.note(describe_moderation(event, self.client.state.is_me(event.nick)))
                case Renamed(nick=nick, new=new):
                    self.note(f"{clean(nick)} is now known as {clean(new)}")
                case AwayChanged(nick=nick, message=message):
                    if not self.client.state.is_me(nick):
                        away = "is back" if message is None else f"is away: {clean(message)}"
                        self.note(f"{clean(nick)} {away}")
                case Receipt(state="read"):
                    self._on_read_receipt(event)
                case ReadMarker() | Receipt():
                    pass  # the state follows markers; "delivered" is not worth a line
                case _:
                    pass

    def _on_dm(self, message: Message) -> None:
        """Someone wrote to us directly: remember them for /r; say how, once."""
        if message.room is not None or message.own or message.replay:
            return
        self._last_dm = message.sender
        state = self.client.state
        key = message.sender.casefold()
        if state.active != Conversation.dm(message.sender) and key not in self._told_reply:
            self._told_reply.add(key)
            nick = clean(message.sender)
            self.note(f"/r TEXT replies to {nick}; /query {nick} talks to them")

    def _leave_failed_dm(self, kind: str, target: str, code: str) -> None:
        """A DM to nobody: go back to the conversation the /dm switched from."""
        state = self.client.state
        if kind != "dm" or code != "no_such_user" or state.active != Conversation.dm(target):
            return
        back = self._before_dm or Conversation.room("lobby")
        state.set_active(back)
        self.note(f"back to {label(back, state.display_name)}")

    def _on_read_receipt(self, receipt: Receipt) -> None:
        """The other party read my DMs up to ``receipt.upto``: a ✓✓ line naming my last one."""
        key = receipt.with_.casefold()
        if receipt.upto <= self._seen_by.get(key, 0):
            return
        conv = Conversation.dm(receipt.with_)
        mine = [m for m in self.client.state.messages(conv) if m.own and m.id <= receipt.upto]
        if not mine:
            return  # nothing of mine shown here that this covers (a later one may say it)
        self._seen_by[key] = receipt.upto
        last = mine[-1].body.replace("\n", " ")
        preview = last if len(last) <= 40 else last[:40] + "…"
        self.note(f"✓✓ {clean(receipt.with_)} read your messages, up to “{clean(preview)}”")

    def _schedule_read(self) -> None:
        """Move the account's read marker of the conversation in view, soon (at most every
        `READ_EVERY` s): what this terminal shows there counts as read on every device."""
        if not self._account or (self._reader is not None and not self._reader.done()):
            return
        state = self.client.state
        if state.newest_id(state.active) <= max(
            self._read_sent.get(state.active, 0), state.marker(state.active)
        ):
            return
        self._reader = asyncio.create_task(self._mark_read(), name="chinwag-chat-read")

    async def _mark_read(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(READ_DELAY, self._read_at + READ_EVERY - loop.time()))
        state = self.client.state
        conv = state.active
        upto = state.newest_id(conv)
        if upto <= max(self._read_sent.get(conv, 0), state.marker(conv)):
            return
        self._read_sent[conv] = upto
        self._read_at = loop.time()
        where = (
            {"room": conv.name} if conv.kind == "room" else {"with_": state.display_name(conv)[1:]}
        )
        # Not connected, gone from the room, or too many commands: the next message tries again.
        with contextlib.suppress(ChatError, NotConnected, ClientClosed, TimeoutError):
            await self.client.mark_read(upto, **where)
        self._schedule_read()  # what came while it was on its way

    def _unread_line(self) -> str:
        state = self.client.state
        counts = [(state.display_name(c), state.unread(c)) for c in state.conversations()]
        shown = ", ".join(f"{clean(name)} {n}" for name, n in counts if n)
        return f"unread: {shown}" if shown else "nothing unread"

    def _on_welcome(self, event: Welcome) -> None:
        self._account = event.account
        if event.resumed:
            self._reconnecting = False
            self.note("reconnected")
            self.term.redraw()
            return
        kind = "account" if event.account else "guest"
        self.say(
            f"connected to {clean(self.host)}:{self.port}{' over TLS' if self.tls else ''} "
            f"as {clean(event.nick)} ({kind}); "
            "/help lists the commands"
        )
        if event.motd:
            self.say(clean(event.motd, multiline=True))

    def _on_caught_up(self, event: CaughtUp) -> None:
        backlog, self._backlog = self._backlog, None
        if backlog is None:
            self._schedule_read()
            return  # a reconnect: its backlog was printed as it came
        if self._account:
            # The server counts after the account's read markers: what another device
            # read is not unread here (protocol 1.1).
            state = self.client.state
            unread = {k.casefold(): n for k, n in event.unread.items()}
            for conv in state.conversations():
                key = conv.name if conv.kind == "room" else "@" + conv.name
                state.set_unread(conv, unread.get(key.casefold(), 0))
        if backlog:  # nothing missed: nothing said
            self.say(summary(event))
            self.say(DIVIDER)
        for message in backlog:
            self.say(format_message(message))
        if self._account and self.client.state.total_unread():
            self.note(self._unread_line() + " (/unread shows this again)")
        self._schedule_read()

    def _on_status(self, event: Status) -> None:
        if event.state == "reconnecting":
            # Said once; after that the prompt shows it (and what is queued).
            if not self._reconnecting:
                self._reconnecting = True
                queued = f", {event.queued} queued" if event.queued else ""
                wait = f"{event.retry_in:.1f} s" if event.retry_in is not None else "a moment"
                self.note(
                    f"connection lost ({clean(event.error or 'unknown reason')}); "
                    f"reconnecting in {wait}, then every few seconds{queued}; "
                    "what you type is sent once it is back"
                )
            self.term.redraw()
        elif event.state == "offline" and event.cert_refused:
            self.note(
                f"the TLS certificate of {clean(self.host)}:{self.port} has CHANGED since you "
                "pinned it; chinwag disconnected and sent nothing more. Someone may be "
                "intercepting the connection, or the server got a new certificate."
            )
            self.say(clean(event.error or "", multiline=True))
            if self.cert_advice:
                self.say(clean(self.cert_advice, multiline=True))
            self._stop_for_good()
        elif event.state == "offline" and event.error:
            self.note(f"disconnected: {clean(event.error)}")
            self._stop_for_good()

    def _stop_for_good(self) -> None:
        """The connection was refused for good: stop reading input, exit with 1."""
        if self.outcome.code is None:
            self.outcome.code = 1
        if self._input is not None:
            self._input.cancel()

    # --- commands --------------------------------------------------------------

    async def read_input(self) -> None:
        while True:
            line = await self.term.read_line()
            if line is None:
                return
            if not line.strip():
                continue
            try:
                if not await self.handle(line):
                    return
                self._schedule_read()  # the conversation in view may have changed
            except ChatError as exc:
                self.note(clean(exc.message))
            except ClientClosed:
                return
            except NotConnected:
                self.note("not connected; try again once reconnected")
            except TimeoutError:
                self.note("no reply from the server; try again")

    def _send(self, conversation: Conversation, text: str) -> None:
        parts = split_body(text)
        if len(parts) > 1:
            self.note(f"too long for one message: sent in {len(parts)} parts")
        for part in parts:
            if conversation.kind == "room":
                self.client.say(conversation.name, part)
            else:
                self.client.dm(self.client.state.display_name(conversation)[1:], part)
        if not self.client.connected:
            self.note("queued; it will be sent once reconnected")

    async def handle(self, line: str) -> bool:
        """Carry out one input line; False to quit."""
        state = self.client.state
        if not line.startswith("/") or line.startswith("//"):
            self._send(state.active, line[1:] if line.startswith("//") else line)
            return True
        command, _, rest = line[1:].partition(" ")
        command, rest = command.lower(), rest.strip()
        args = rest.split()
        if command in ("quit", "exit"):
            return self._ask_before_quitting()  # False: quit now
        self._quit_asked = False
        if command in _ALIASES:
            command = _ALIASES[command]
        if command == "help":
            self.say(HELP)
        elif command == "join" and len(args) in (1, 2):
            room = _room(args[0])
            await self.client.join(room, args[1] if len(args) == 2 else None)
            state.set_active(Conversation.room(room))
            self.note(f"you are in #{clean(room)}")
        elif command == "leave" and len(args) <= 1:
            room = _room(args[0]) if args else self._current_room()
            await self.client.leave(room)
            if state.active == Conversation.room(room):
                state.set_active(Conversation.room("lobby"))
            self.note(f"you left #{clean(room)}")
        elif command == "rooms" and not args:
            rooms = await self.client.list_rooms()
            listing = ", ".join(
                f"#{clean(r.name)} ({r.online}{self._unread_of(r.name)})" for r in rooms
            )
            self.note(f"rooms: {listing or 'none'}")
        elif command == "unread" and not args:
            self.note(self._unread_line())
        elif command == "receipts" and len(args) == 1 and args[0].lower() in ("on", "off"):
            await self._receipts(args[0].lower() == "on")
        elif command == "receipts" and not args:
            await self._receipts_shown()
        elif command == "who" and len(args) <= 1:
            room = _room(args[0]) if args else self._current_room()
            users = await self.client.who(room)
            names = ", ".join(
                clean(u.nick)
                + ("" if u.account else " (guest)")
                + ("" if u.away is None else f" (away: {clean(u.away)})")
                for u in users
            )
            self.note(f"online in #{clean(room)}: {names or 'nobody'}")
        elif command in ("dm", "query") and args:
            self._talk_to(args[0], rest[len(args[0]) :].strip())
        elif command == "msg" and len(args) >= 2:
            self._send(state.open_dm(args[0]), rest[len(args[0]) :].strip())
        elif command == "reply" and args:
            if self._last_dm is None:
                self.note("nobody has sent you a direct message yet; /msg NICK TEXT writes first")
            else:
                self._send(state.open_dm(self._last_dm), rest)
        elif command == "history" and len(args) <= 1 and (not args or args[0].isdigit()):
            await self._history(int(args[0]) if args else 20)
        elif command in ("edit", "delete", "react", "unreact", "answer", "search"):
            await self._revise(command, args, rest)
        elif command == "block" and len(args) == 1:
            await self.client.block(args[0])
            self.note(f"you will see nothing more from {clean(args[0])}; /unblock undoes it")
        elif command == "unblock" and len(args) == 1:
            await self.client.unblock(args[0])
            self.note(f"you will see what {clean(args[0])} sends from now on")
        elif command == "away":
            await self.client.away(rest.strip() or None)
            if rest.strip():
                self.note("you are marked away; /away alone says you are back")
            else:
                self.note("you are no longer marked away")
        elif command == "blocks" and not args:
            nicks = await self.client.blocks()
            self.note(f"you block: {', '.join(clean(n) for n in nicks) or 'nobody'}")
        elif command in _MODERATION:
            await self._moderate(command, args, rest)
        elif command == "register" and not args:
            await self._register()
        elif command == "passwd" and not args:
            await self._passwd()
        elif command in _NOT_YET:
            self.note(_NOT_YET[command])
        elif command in _USAGE:
            self.note(f"usage: {_USAGE[command]}")
        else:
            guess = difflib.get_close_matches(command, [*_USAGE, *_ALIASES], n=1)
            hint = f": did you mean /{guess[0]}?" if guess else ""
            self.note(f"unknown command /{clean(command)}{hint} (/help lists them)")
        return True

    async def _key_or_limit(self, command: str, room: str, args: list[str]) -> None:
        """/key [KEY|off] and /limit [N|off] (ircmodes): shown alone, else set."""
        if not args:
            self.note(room_line(room, self.client.state.rooms_info.get(room)))
        elif len(args) != 1 or (command == "limit" and args[0] != "off" and not _count(args[0])):
            self.note(f"usage: {_USAGE[command]} (off: none)")
        elif command == "key":
            await self.client.set_room(room, key="" if args[0] == "off" else args[0])
        else:
            await self.client.set_room(room, limit=0 if args[0] == "off" else int(args[0]))

    async def _moderate(self, command: str, args: list[str], rest: str) -> None:
        """/topic, /mode, /retention, /key, /limit, /invite, /kick, /ban, /unban, /mute,
        /unmute, /grant (issues 16, 17, 19): in the current room."""
        if self.client.state.active.kind != "room":
            self.note(f"/{command} acts on a room: /join ROOM first")
            return
        room = self._current_room()
        if command == "topic":
            if rest:
                await self.client.set_room(room, topic=rest)
            else:
                self.note(room_line(room, self.client.state.rooms_info.get(room)))
            return
        if command == "mode":
            if not args:
                self.note(room_line(room, self.client.state.rooms_info.get(room)))
                return
            changes = _modes(args)
            if changes is None:
                self.note(f"usage: {_USAGE['mode']} (several at once: /mode +p +a)")
                return
            await self.client.set_room(
                room, private=changes.get("private"), announce=changes.get("announce")
            )
            return
        if command == "retention":
            if not args:
                self.note(room_line(room, self.client.state.rooms_info.get(room)))
            elif len(args) == 1 and (args[0] == "off" or args[0].isdigit()):
                await self.client.set_room(
                    room, retention_days=0 if args[0] == "off" else int(args[0])
                )
            else:
                self.note(f"usage: {_USAGE['retention']} (off: the server's setting alone)")
            return
        if command in ("key", "limit"):
            await self._key_or_limit(command, room, args)
            return
        if not args or (command == "grant" and (len(args) != 2 or args[1] not in _ROLES)):
            self.note(f"usage: {_USAGE[command]}")
            return
        nick, words = args[0], rest[len(args[0]) :].strip()
        if command == "invite":
            await self.client.invite(room, nick)
            self.note(f"{clean(nick)} may now join #{clean(room)}")
        elif command == "grant":
            await self.client.grant(nick, args[1], room=room)
        elif command in ("kick", "unban", "unmute"):
            await self.client.moderate(_LIFTS[command], nick, room=room, reason=words)
        else:  # ban, mute: an optional length first
            until = None
            first, _, after = words.partition(" ")
            length = parse_length(first)
            if length is not None:
                until, words = datetime.now(UTC) + timedelta(seconds=length), after.strip()
            await self.client.moderate(
                "ban" if command == "ban" else "mute", nick, room=room, until=until, reason=words
            )

    def _last_id(self, *, own: bool | None) -> int | None:
        """The newest message here: ``own`` True mine, False someone else's, None any."""
        for message in reversed(self.client.state.messages(self.client.state.active)):
            if own is None or message.own == own:
                return message.id
        return None

    async def _revise(self, command: str, args: list[str], rest: str) -> None:
        """/edit, /delete, /react, /unreact, /answer, /search (protocol version 1.1).

        Replying to a message is /answer: /reply is the IRC habit (/r), which
        answers whoever last wrote to you directly.
        """
        if command == "search":
            if not args:
                self.note(f"usage: {_USAGE['search']}")
                return
            page = await self.client.search(rest)
            for message in reversed(page.messages):
                self.say(f"[{message.id}] " + format_message(message))
            more = " (more are older)" if page.more else ""
            self.note(f"{len(page.messages)} found for {clean(rest)!r}{more}")
            return
        explicit = bool(args) and args[0].isdigit()
        own = True if command in ("edit", "delete") else (False if command == "answer" else None)
        target = int(args[0]) if explicit else self._last_id(own=own)
        text = rest[len(args[0]) :].strip() if explicit else rest
        if target is None:
            self.note(f"no message here to {command}; give its ID (/search shows ids)")
            return
        if command != "delete" and not text:
            self.note(f"usage: {_USAGE[command]}")
            return
        if command == "edit":
            await self.client.edit(target, text)
        elif command == "delete":
            await self.client.delete(target)
        elif command in ("react", "unreact"):
            await self.client.react(target, text, on=command == "react")
        else:
            active = self.client.state.active
            if active.kind == "room":
                await self.client.reply(target, text, room=active.name)
            else:
                await self.client.reply(target, text, to=active.name)

    def _unread_of(self, room: str) -> str:
        n = self.client.state.unread(Conversation.room(room))
        return f", {n} unread" if n else ""

    async def _receipts_shown(self) -> None:
        """Say whether the account has DM receipts on, as the server keeps it (issue 15)."""
        if not self.client.account:
            self.note("a guest has no read receipts: /register makes your nick an account")
            return
        on = await self.client.settings()
        self.note(f"DM receipts are {'on' if on else 'off'}: /receipts {'off' if on else 'on'}")

    async def _receipts(self, on: bool) -> None:
        try:
            await self.client.set_receipts(on)
        except Forbidden:
            self.note("a guest has no read receipts: /register makes your nick an account")
            return
        if on:
            self.note(
                "DM receipts on: when someone who turned them on too reads your DMs you see ✓✓,"
                " and they see when you read theirs; /receipts off stops it"
            )
        else:
            self.note("DM receipts off: nobody sees when you read, and you see no ✓✓")

    def _talk_to(self, nick: str, text: str) -> None:
        """Make the DM with ``nick`` the current conversation; send ``text`` if any."""
        state = self.client.state
        conv = state.open_dm(nick)
        if state.active != conv:
            self._before_dm = state.active
        state.set_active(conv)
        if text:
            self._send(conv, text)
        else:
            self.note(f"talking to @{clean(nick)}; /join ROOM goes back to a room")

    def _ask_before_quitting(self) -> bool:
        """True (and say why) if messages wait for a reconnect and this is the first /quit.

        While connected, quitting waits (a few seconds) for what is in flight.
        """
        queued = self.client.queued
        if not queued or self._quit_asked or self.client.connected:
            return False
        self._quit_asked = True
        what = "1 message is" if queued == 1 else f"{queued} messages are"
        self.note(
            f"{what} not sent yet: they go out once reconnected. "
            "Wait, or /quit again to quit and lose them."
        )
        return True

    async def _report_unsent(self, items: list[OutboxItem]) -> None:
        """After closing: name every one of ``items`` that was never acknowledged."""
        for item in items:
            try:
                await self.client.wait_sent(item.cid, 0)
            except (ChatError, NotConnected, KeyError, TimeoutError):
                where = f"#{item.target}" if item.kind == "say" else f"@{item.target}"
                self.note(f"not sent: {clean(where)}: {clean(item.body)}")

    def _current_room(self) -> str:
        active = self.client.state.active
        return active.name if active.kind == "room" else "lobby"

    async def _history(self, count: int) -> None:
        state = self.client.state
        conv = state.active
        before = state.oldest_id(conv)
        if conv.kind == "room":
            page = await self.client.history(conv.name, before=before, limit=count)
        else:
            peer = state.display_name(conv)[1:]
            page = await self.client.history(with_=peer, before=before, limit=count)
        name = label(conv, state.display_name)
        if not page.messages:
            self.note(f"no earlier messages in {name}")
            return
        self.say(f"--- earlier in {name} ---")
        for message in page.messages:
            # Issue 15: my DMs show how far they got (stored receipts, so after a restart too).
            mark = _TICKS.get(state.dm_status(message) or "", "")
            self.say(format_message(message) + mark)
        self.say(f"--- end of earlier messages{' (more: /history again)' if page.more else ''} ---")

    async def _register(self) -> None:
        # Asked twice in plain line mode too: a script's second line is the
        # confirmation, never a message.
        password = await self.term.read_secret("new password: ")
        if password is None:
            return
        again = await self.term.read_secret("once more: ")
        if again != password:
            self.note("the passwords differ; not registered")
            return
        await self.client.register(password, invite=self.invite)
        self.note(f"{clean(self.client.nick)} is now registered")

    async def _passwd(self) -> None:
        old = await self.term.read_secret("current password: ")
        new = await self.term.read_secret("new password: ") if old is not None else None
        if old is None or new is None:
            return
        again = await self.term.read_secret("once more: ")
        if again != new:
            self.note("the passwords differ; not changed")
            return
        await self.client.passwd(old, new)
        self.note("password changed")

    # --- run -------------------------------------------------------------------

    async def run(self) -> int:
        if not await self.login():
            await self.client.close()
            return 1
        with self.term.output():
            shower = asyncio.create_task(self.show_events(), name="chinwag-chat-events")
            self._input = asyncio.create_task(self.read_input(), name="chinwag-chat-input")
            with contextlib.suppress(asyncio.CancelledError):
                await self._input
            if self._reader is not None:  # a read marker still waiting: not worth the wait
                self._reader.cancel()
            unsent = self.client.unsent()
            # After a second /quit the user chose not to wait for the outbox.
            await self.client.close(timeout=0 if self._quit_asked else 5)
            try:
                await asyncio.wait_for(shower, 5)
            except TimeoutError:
                shower.cancel()
        await self._report_unsent(unsent)
        if self.outcome.code is None:
            self.say("bye")
            return 0
        return self.outcome.code


def run_chat(
    server: str,
    nick: str,
    *,
    password_stdin: bool,
    ssl: SSLContext | None = None,
    invite: str | None = None,
    cert_advice: str | None = None,
) -> int:
    """Run the terminal client until the user quits; returns the exit status.

    Args:
        server: ``HOST[:PORT]`` (default port 5050).
        nick: the nick to log in as; a registered nick asks for its password
            (without echo), or reads it from stdin with ``password_stdin``.
        password_stdin: read the password from the first line of stdin.
        ssl: connect with TLS, with this context (see ``chinwag.net.connect``).
        invite: a sign-up token, sent with ``/register``.
        cert_advice: what to do if the server's certificate changes while
            connected (the pin to forget).

    Returns:
        0 after ``/quit``, 1 if the login failed or the connection was refused
        for good, 2 for a bad server address.
    """
    try:
        host, port = parse_server(server)
    except ValueError as exc:
        print(f"chinwag chat: {exc}", file=sys.stderr)
        return 2
    try:
        chat = _Chat(host, port, nick, password_stdin, ssl, invite, cert_advice)
    except OSError as exc:  # the config directory (device id) is not writable
        print(f"chinwag chat: {exc}", file=sys.stderr)
        return 1
    # The chat itself says what goes wrong; the library's log lines would only
    # land in the middle of the screen.
    logging.getLogger("chinwag").addHandler(logging.NullHandler())
    try:
        return asyncio.run(chat.run())
    except KeyboardInterrupt:
        return 130
