"""The bot framework: a bot is an ordinary chinwag account driven by commands.

A :class:`Bot` logs in with :class:`~chinwag.client.ChatClient` like any other
client (so it reconnects, resends, and gets its backlog), registers its nick as
a bot account on first run, and turns each message addressed to it into a call
of the command handler named by the message's first word::

    bot = Bot("echobot")

    @bot.command("echo", help="echo TEXT: I say it back")
    def echo(ctx: Context) -> None:
        ctx.reply(ctx.args)

    bot.main()          # chinwag-style command line: [HOST[:PORT]] --nick --data

Messages addressed to the bot are its direct messages, and in a room the lines
that start with the prefix (``!echo hi``) or its nick (``echobot: echo hi``).
A reply goes where the command came from: a DM is answered by DM.

**Durability.** Each handled message is one *unit of work*: the handler reads
and writes :attr:`Context.store` and queues replies; then the framework writes
the data changes, the replies and the message's id to the bot's SQLite file in
one transaction, and only then hands the replies to the client. A bot killed
at almost any point therefore neither loses a decided reply (unsent ones are
sent at the next start) nor handles a message twice (the backlog replays it;
its id is already recorded); ``docs/bots.md`` names the two windows, each one
handler run wide, where a kill can repeat a reply or lose a message. Units run
one at a time, in message order, so handlers need no locks.

**Untrusted text.** Nicks and message text are data: handlers put them into
replies with f-strings or concatenation, never as a format string (no
``text.format()``, no ``%``), and the framework strips control characters and
cuts replies to the protocol's 4,000 characters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import inspect
import logging
import os
import random
import re
import signal
import ssl as ssl_module
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from chinwag.bot.credentials import Credentials, load_credentials, save_credentials
from chinwag.bot.store import BotDB, Kind, OutboxRow, Store, dumps
from chinwag.client import (
    CaughtUp,
    ChatClient,
    ChatState,
    Conversation,
    Message,
    SendFailed,
    Sent,
    Status,
)
from chinwag.client.events import fold_nick
from chinwag.errors import (
    BadPassword,
    ChatError,
    NickTaken,
    PasswordRequired,
    RateLimited,
    ServerError,
)

__all__ = [
    "DB_FILE",
    "EXIT_CANNOT_RUN",
    "EXIT_CRASHED",
    "MAX_NOT_UNDERSTOOD",
    "QUIET_FOR",
    "Actions",
    "Bot",
    "BotError",
    "Command",
    "Context",
    "Undeliverable",
    "clean_body",
    "default_data_dir",
    "parse_command",
    "quote",
]

log = logging.getLogger("chinwag.bot")

DB_FILE: Final = "bot.db"
LOCK_FILE: Final = "lock"
KNOWN_HOSTS: Final = "known_hosts"
EXIT_CANNOT_RUN: Final = 1
"""Exit status when the bot cannot run as configured (its nick is taken...): retrying won't help."""
EXIT_CRASHED: Final = 70
"""Exit status after an unexpected error (EX_SOFTWARE): a supervisor may restart it."""
MAX_BODY: Final = 4000
DEFAULT_PORT: Final = 5050  # protocol v1 §1
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NICK_PATH: Final = re.compile(r"[\w-]{1,32}")
_STATE_NS: Final = "_conv"
_OOPS: Final = "Sorry, that went wrong on my side; nothing was changed."
MAX_NOT_UNDERSTOOD: Final = 10
"""Answers to messages not understood, in a row per conversation, before going quiet."""
QUIET_FOR: Final = 600.0
"""Seconds a bot stays quiet about messages it does not understand, after too many."""

Handler = Callable[["Context"], Awaitable[None] | None]
ActionHandler = Callable[["Actions"], Awaitable[None] | None]
UndeliverableHandler = Callable[["Actions", "Undeliverable"], Awaitable[None] | None]
F = TypeVar("F", bound=Callable[..., Any])


class BotError(Exception):
    """The bot cannot run (for example: its nick belongs to someone else)."""


def clean_body(text: str) -> str:
    """``text`` made sendable: control characters (but newline and tab) become ``?``,
    and a text over 4,000 characters is cut with an ellipsis."""
    text = _CONTROL.sub("?", text)
    if len(text) > MAX_BODY:
        text = text[: MAX_BODY - 1] + "…"
    return text


def quote(text: str, limit: int = 40) -> str:
    """A short quotation of untrusted text for a reply: first line, cut, in quotes."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return "“" + line + "”"


def parse_command(text: str, *, nick: str, prefix: str, in_room: bool) -> tuple[str, str] | None:
    """Split a message into (command word in lower case, the rest), if it is for the bot.

    In a DM every message is for the bot. In a room only lines that start with
    ``prefix`` (``!play``) or address the bot by nick (``gamebot: play``,
    ``gamebot, play``, ``@gamebot play``) are.
    """
    body = text.strip()
    if in_room:
        if prefix and body.startswith(prefix):
            body = body[len(prefix) :]
        else:
            first, _, rest = body.partition(" ")
            addressed = first.startswith("@") or first.endswith((":", ","))
            name = first.lstrip("@").rstrip(":,")
            if not (addressed and name and fold_nick(name) == fold_nick(nick)):
                return None
            body = rest
    parts = body.split(None, 1)
    if not parts:
        return None
    return parts[0].casefold(), parts[1].strip() if len(parts) > 1 else ""


def default_data_dir(nick: str) -> Path:
    """``<platform user data dir>/chinwag/bots/<nick>``."""
    import platformdirs

    base = Path(platformdirs.user_data_dir("chinwag", appauthor=False))
    return base / "bots" / fold_nick(nick)


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tls``, ``--ca`` and ``--trust``, as ``chinwag chat`` has them."""
    parser.add_argument("--tls", action="store_true", help="use TLS (pinning the certificate)")
    parser.add_argument(
        "--ca",
        metavar="FILE",
        help="use TLS, verifying the certificate against FILE ('system': the system's CAs)",
    )
    parser.add_argument(
        "--trust", action="store_true", help="pin an unknown server's certificate without asking"
    )


@dataclass(frozen=True, slots=True)
class _Where:
    host: str
    port: int
    ssl: ssl_module.SSLContext | None = None
    invite: str | None = None


def _where(args: argparse.Namespace, data: Path) -> _Where:
    """Where to connect, how, and the sign-up token of an invite link, from the options."""
    # HOST[:PORT], an invite link or code, TLS: chinwag chat's rules of trust,
    # with the pins kept in the bot's directory and nobody to ask.
    from chinwag.net.connect import ConnectError, prepare
    from chinwag.net.pins import KnownHosts

    try:
        plan = prepare(
            str(args.server),
            tls=bool(args.tls),
            ca=args.ca,
            trust=bool(args.trust),
            interactive=False,
            known=KnownHosts(data / KNOWN_HOSTS),
        )
    except (ConnectError, ValueError) as exc:
        raise BotError(str(exc)) from exc
    return _Where(plan.host, plan.port, plan.ssl, plan.token)


@contextlib.contextmanager
def _exclusive(data: Path) -> Iterator[None]:
    """Hold ``data/lock``: two bots on one data directory would answer everything twice."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    with (data / LOCK_FILE).open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise BotError(f"another bot is running with the data directory {data}") from exc
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _version() -> str:
    try:
        return importlib.metadata.version("chinwag")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "0"


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command: its name, handler, one line of help, and where it works."""

    name: str
    handler: Handler
    help: str = ""
    dm_only: bool = False


@dataclass(frozen=True, slots=True)
class Undeliverable:
    """A reply the server refused for good (e.g. ``no_such_user``).

    Attributes:
        kind: ``dm`` or ``say``.
        target: the nick or room it was for.
        body: its text.
        tag: the tag given when it was sent (None if none).
        code: the server's error code.
        reason: the server's explanation, for people.
    """

    kind: Kind
    target: str
    body: str
    tag: str | None
    code: str
    reason: str


class Actions:
    """What a handler can do: use the bot's store and send messages.

    Timers and start-up hooks get an ``Actions``; command handlers get a
    :class:`Context`, which adds the message being handled.

    Attributes:
        bot: the bot.
        store: the bot's persistent data (see :class:`~chinwag.bot.store.Store`).
        now: the time the unit of work started (seconds since the epoch).
        rng: the bot's random source.
    """

    def __init__(self, bot: Bot, now: float) -> None:
        self.bot = bot
        self.store = bot.store
        self.now = now
        self.rng = bot.rng
        self.outgoing: list[tuple[Kind, str, str, str | None]] = []

    @property
    def nick(self) -> str:
        """The bot's own nick."""
        return self.bot.nick

    def dm(self, nick: str, text: str, *, tag: str | None = None) -> None:
        """Send ``text`` to ``nick`` by direct message, once this unit is saved.

        Args:
            nick: the recipient (an offline account gets it in its backlog).
            text: the message (cleaned and cut to 4,000 characters).
            tag: given back to :meth:`Bot.on_undeliverable` handlers if the
                server refuses the message for good.
        """
        self._queue("dm", nick, text, tag)

    def say(self, room: str, text: str, *, tag: str | None = None) -> None:
        """Send ``text`` to ``room`` (the bot must be in it), once this unit is saved."""
        self._queue("say", room, text, tag)

    def _queue(self, kind: Kind, target: str, text: str, tag: str | None) -> None:
        body = clean_body(text)
        if body.strip():
            self.outgoing.append((kind, target, body, tag))


class Context(Actions):
    """A command being handled.

    Attributes:
        message: the message.
        sender: who sent it (display nick).
        conversation: where it came from (a room, or the DM with the sender).
        command: the command word, in lower case.
        args: the text after the command word, stripped.
        state: a dict kept per conversation between messages and restarts
            (JSON data; saved when the handler returns).
    """

    def __init__(self, bot: Bot, now: float, message: Message, command: str, args: str) -> None:
        super().__init__(bot, now)
        self.message = message
        self.sender = message.sender
        self.conversation = Conversation.of(message)
        self.command = command
        self.args = args
        self._state_key = str(self.conversation)
        self._puzzled = False
        loaded = self.store.get(_STATE_NS, self._state_key, {})
        self.state: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
        self._state_text = dumps(self.state)

    @property
    def words(self) -> list[str]:
        """``args`` split on white space."""
        return self.args.split()

    @property
    def in_room(self) -> bool:
        """Whether the command came from a room (else by DM)."""
        return self.message.room is not None

    def not_understood(self) -> bool:
        """Call before answering a message you did not understand; answer only if True.

        After :data:`MAX_NOT_UNDERSTOOD` such answers in a row in one conversation
        it returns False (for :data:`QUIET_FOR` seconds, or until a message is
        understood): two bots that each answer the other's replies with "I don't
        know that" would otherwise keep each other busy forever.
        """
        self._puzzled = True
        return self.bot._may_answer(self._state_key, self.now)

    def reply(self, text: str, *, tag: str | None = None) -> None:
        """Answer where the command came from: in the room, or by DM to the sender."""
        if self.message.room is not None:
            self.say(self.message.room, text, tag=tag)
        else:
            self.dm(self.sender, text, tag=tag)

    def _save_state(self) -> None:
        text = dumps(self.state)
        if text != self._state_text:
            if self.state:
                self.store.put(_STATE_NS, self._state_key, self.state)
            else:
                self.store.delete(_STATE_NS, self._state_key)


@dataclass
class _Timer:
    seconds: float
    handler: ActionHandler


@dataclass
class _Run:
    """What one :meth:`Bot.run` keeps while it runs."""

    client: ChatClient
    db: BotDB
    pending: list[OutboxRow]
    failure: asyncio.Future[None]
    backlog_cids: set[str] = field(default_factory=set)
    rows_by_cid: dict[str, OutboxRow] = field(default_factory=dict)
    started: bool = False
    offline_error: str | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class Bot:
    """A chat bot: commands in, replies out, state kept in its own SQLite file.

    Args:
        nick: the bot's nick (``--nick`` can change it before :meth:`run`).
        about: one line saying what the bot does, at the top of ``help``.
        prefix: in rooms, lines starting with this are commands (``!help``).
        rooms: rooms to join at start (DMs need none).
        rng: the random source handlers use (``ctx.rng``); tests pass a seeded one.
        clock: seconds since the epoch (``ctx.now``); tests may pass their own.
    """

    def __init__(
        self,
        nick: str,
        *,
        about: str = "",
        prefix: str = "!",
        rooms: Sequence[str] = (),
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.nick = nick
        self.about = about
        self.prefix = prefix
        self.rooms = list(rooms)
        self.rng = rng or random.Random()
        self.clock = clock
        self.store = Store()
        self.client: ChatClient | None = None
        self._commands: dict[str, Command] = {}
        self._order: list[Command] = []
        self._fallback: Handler | None = None
        self._timers: list[_Timer] = []
        self._on_start: list[ActionHandler] = []
        self._on_undeliverable: list[UndeliverableHandler] = []
        self._lock = asyncio.Lock()
        self._last_id = 0
        self._run: _Run | None = None
        self._invite: str | None = None
        self._puzzled: dict[str, tuple[int, float]] = {}  # conversation -> (in a row, last)
        self.command("help", help="help: what I can do")(self._help)

    # --- registration ---------------------------------------------------------------

    def command(
        self, name: str, *aliases: str, help: str = "", dm_only: bool = False
    ) -> Callable[[F], F]:
        """Decorator: handle messages whose first word is ``name`` (or an alias).

        Args:
            name: the command word (matched case-insensitively).
            aliases: other words for the same command (not listed in ``help``).
            help: one line for ``help`` (e.g. ``"play GAME: start a game"``).
            dm_only: in a room, answer "send me that by DM" instead.
        """

        def register(fn: F) -> F:
            cmd = Command(name.casefold(), fn, help, dm_only)
            self._order = [c for c in self._order if c.name != cmd.name] + [cmd]
            for word in (name, *aliases):
                self._commands[word.casefold()] = cmd
            return fn

        return register

    def fallback(self, fn: F) -> F:
        """Decorator: handle DMs whose first word is no command (default: point to help)."""
        self._fallback = fn
        return fn

    def every(self, seconds: float) -> Callable[[F], F]:
        """Decorator: run ``handler(actions)`` every ``seconds`` while connected."""

        def register(fn: F) -> F:
            self._timers.append(_Timer(seconds, fn))
            return fn

        return register

    def on_start(self, fn: F) -> F:
        """Decorator: run ``handler(actions)`` once the first backlog has been handled."""
        self._on_start.append(fn)
        return fn

    def on_undeliverable(self, fn: F) -> F:
        """Decorator: run ``handler(actions, undeliverable)`` when the server refuses a reply."""
        self._on_undeliverable.append(fn)
        return fn

    @property
    def commands(self) -> list[Command]:
        """The commands, in the order they were registered."""
        return list(self._order)

    def help_text(self) -> str:
        """The text of the built-in ``help`` command."""
        lines = [self.about] if self.about else []
        lines += [c.help or c.name for c in self._order]
        return "\n".join(lines)

    def _help(self, ctx: Context) -> None:
        ctx.reply(self.help_text())

    # --- running ----------------------------------------------------------------------

    async def run(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        data_dir: Path | None = None,
        stop: asyncio.Event | None = None,
        invite: str | None = None,
        **client_args: Any,
    ) -> None:
        """Connect, handle messages until ``stop`` is set (or the client gives up).

        The first run registers the nick as a bot account with a random
        password kept in ``data_dir/credentials.json``; the data live in
        ``data_dir/bot.db``; the client's device id in ``data_dir/device``.
        Until the first login succeeds, an unreachable server is retried with
        backoff (the client reconnects by itself after that).

        Args:
            host: the server.
            port: its port.
            data_dir: the bot's directory (default: :func:`default_data_dir`).
            stop: set it to close cleanly (replies are flushed, then ``bye``).
            invite: a sign-up token for the first run, if the server needs one.
            client_args: passed to :class:`~chinwag.client.ChatClient` (``ssl``...).

        Raises:
            BotError: the nick cannot be used (registered by someone else...).
        """
        if not _NICK_PATH.fullmatch(self.nick):
            raise BotError(f"{self.nick!r} is not a usable bot nick")
        data = data_dir if data_dir is not None else default_data_dir(self.nick)
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        stop = stop or asyncio.Event()
        self._invite = invite
        with _exclusive(data):
            await self._run_locked(host, port, data, stop, client_args)

    async def _run_locked(
        self, host: str, port: int, data: Path, stop: asyncio.Event, client_args: dict[str, Any]
    ) -> None:
        db = await BotDB.open(data / DB_FILE)
        try:
            kv, pending, self._last_id = await db.load()
            self.store = Store(kv)
            client = await self._connect(host, port, data, stop, client_args)
            if client is None:
                return
            failure = asyncio.get_running_loop().create_future()
            run = self._run = _Run(client, db, pending, failure)
            self.client = client
            try:
                await self._serve(run, stop)
            finally:
                for task in list(run.tasks):
                    task.cancel()
                await asyncio.gather(*run.tasks, return_exceptions=True)
                await client.close()
                self._run = None
                if failure.done():
                    failure.exception()  # retrieved: it was raised, or the bot stopped anyway
        finally:
            await db.close()

    async def _serve(self, run: _Run, stop: asyncio.Event) -> None:
        consumer = asyncio.create_task(self._consume(run), name="chinwag-bot-events")
        stopper = asyncio.create_task(stop.wait())
        try:
            waiting: set[asyncio.Future[Any]] = {consumer, stopper, run.failure}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if run.failure in done:
                run.failure.result()  # a timer's unit of work failed: the bot ends
            if stopper in done:
                log.info("%s: stopping", self.nick)
                await run.client.close()
                await consumer
            consumer.result()  # a failure in a unit of work ends the bot
            if not stop.is_set():
                raise BotError(
                    f"the server refused to let {self.nick} back in: {run.offline_error}"
                )
        finally:
            stopper.cancel()
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    async def _connect(
        self, host: str, port: int, data: Path, stop: asyncio.Event, client_args: dict[str, Any]
    ) -> ChatClient | None:
        delay = 0.5
        while not stop.is_set():
            try:
                return await self._login(host, port, data, client_args)
            except (OSError, NickTaken, RateLimited, ServerError) as exc:
                wait = max(delay, exc.retry_after if isinstance(exc, RateLimited) else 0)
                log.warning("%s: cannot log in yet (%s); retrying in %.1f s", self.nick, exc, wait)
            except ChatError as exc:  # bad_nick, nick_registered...: waiting will not help
                raise BotError(
                    f"the server refused {self.nick}: {exc.code}: {exc.message}"
                ) from exc
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await stop.wait()
            delay = min(delay * 2, 30.0)
        return None

    def _client(
        self, host: str, port: int, data: Path, password: str | None, **kw: Any
    ) -> ChatClient:
        kw.setdefault("client_name", f"chinwag-bot/{_version()}")
        # One message in flight: when the server's flood control refuses one, a
        # wider window lets a later reply overtake it (docs/client.md, Sending),
        # and a player must never see the board of move 3 before that of move 2.
        kw.setdefault("max_in_flight", 1)
        client = ChatClient(host, port, nick=self.nick, password=password, config_dir=data, **kw)
        # A bot talks to many people for a long time: keep ids for duplicate
        # detection, but not a copy of every conversation.
        client.state = ChatState(self.nick, max_per_conversation=1)
        return client

    async def _login(
        self, host: str, port: int, data: Path, client_args: dict[str, Any]
    ) -> ChatClient:
        creds = load_credentials(data, self.nick)
        if creds.registered:
            client = self._client(host, port, data, creds.password, **client_args)
            try:
                await client.connect()
            except (BadPassword, PasswordRequired) as exc:
                raise BotError(
                    f"the server refused {self.nick}'s stored password ({exc.code}); "
                    f"reset it with chinwag admin reset-password, or delete {data}"
                ) from exc
        else:
            save_credentials(data, creds)  # first: never an account whose password is lost
            client = await self._register(host, port, data, creds, client_args)
            save_credentials(data, Credentials(creds.nick, creds.password, registered=True))
        try:
            for room in self.rooms:
                await client.join(room)
        except BaseException:
            await client.abort()
            raise
        return client

    async def _register(
        self, host: str, port: int, data: Path, creds: Credentials, client_args: dict[str, Any]
    ) -> ChatClient:
        client = self._client(host, port, data, None, **client_args)
        try:
            await client.connect()
        except PasswordRequired:
            # Registered by an earlier run that died before it could note it?
            client = self._client(host, port, data, creds.password, **client_args)
            try:
                await client.connect()
            except BadPassword as exc:
                raise BotError(
                    f"{self.nick} is a registered account that is not this bot's; "
                    "pick another nick with --nick"
                ) from exc
            return client
        try:
            await client.register(creds.password, invite=self._invite, bot=True)
        except BaseException:
            await client.abort()
            raise
        log.info("%s: registered as a bot account", self.nick)
        return client

    async def _consume(self, run: _Run) -> None:
        async for event in run.client.events():
            if isinstance(event, Message):
                await self._on_message(run, event)
            elif isinstance(event, CaughtUp):
                if not run.started:
                    await self._start(run)
            elif isinstance(event, Sent):
                row = run.rows_by_cid.pop(event.cid, None)
                if row is not None:
                    run.db.done_nowait(row.seq)
            elif isinstance(event, SendFailed):
                await self._on_send_failed(run, event)
            elif isinstance(event, Status) and event.state != "connected":
                log.info("%s: %s %s", self.nick, event.state, event.error or "")
                if event.state == "offline":
                    run.offline_error = event.error

    async def _start(self, run: _Run) -> None:
        run.started = True
        pending, run.pending = run.pending, []
        for row in pending:
            if row.cid is not None and row.cid in run.backlog_cids:
                run.db.done_nowait(row.seq)  # stored before the last crash; seen in the backlog
            else:
                self._send_row(run, row)
        run.backlog_cids.clear()
        for hook in self._on_start:
            await self._unit(hook, Actions(self, self.clock()))
        for timer in self._timers:
            task = asyncio.create_task(self._tick(timer), name=f"chinwag-bot-timer-{self.nick}")
            task.add_done_callback(lambda t: self._task_done(run, t))
            run.tasks.add(task)
        log.info("%s: ready", self.nick)

    @staticmethod
    def _task_done(run: _Run, task: asyncio.Task[None]) -> None:
        run.tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None and not run.failure.done():
            run.failure.set_exception(exc)

    async def _tick(self, timer: _Timer) -> None:
        while True:
            await asyncio.sleep(timer.seconds)
            await self._unit(timer.handler, Actions(self, self.clock()))

    async def _on_message(self, run: _Run, message: Message) -> None:
        if message.own:
            if not run.started and message.cid is not None:
                run.backlog_cids.add(message.cid)
            return
        if message.id <= self._last_id:
            return  # handled before a restart; delivery is at least once
        if message.notice:
            return  # a notice is never answered automatically (IRC's rule; ircmsg)
        parsed = parse_command(
            message.body, nick=self.nick, prefix=self.prefix, in_room=message.room is not None
        )
        if parsed is None:
            return
        command, args = parsed
        ctx = Context(self, self.clock(), message, command, args)
        cmd = self._commands.get(command)
        handler: Handler
        if cmd is not None and cmd.dm_only and ctx.in_room:
            handler = self._dm_only
        elif cmd is not None:
            handler = cmd.handler
        elif self._fallback is not None and not ctx.in_room:
            handler = self._fallback
        else:
            handler = self._unknown
        await self._unit(handler, ctx, message.id)

    def _dm_only(self, ctx: Context) -> None:
        ctx.reply(
            f"Send me that by direct message: /dm {self.nick} {ctx.command} {ctx.args}".rstrip()
        )

    def _unknown(self, ctx: Context) -> None:
        if ctx.not_understood():
            ctx.reply(f"I don't know the command {quote(ctx.command)}. Send help for the list.")

    def _may_answer(self, key: str, now: float) -> bool:
        count, last = self._puzzled.get(key, (0, now))
        if now - last > QUIET_FOR:
            count = 0
        self._puzzled[key] = (count + 1, now)
        if len(self._puzzled) > 10_000:  # forget the oldest streaks
            for old in sorted(self._puzzled, key=lambda k: self._puzzled[k][1])[:5_000]:
                del self._puzzled[old]
        return count < MAX_NOT_UNDERSTOOD

    async def _on_send_failed(self, run: _Run, event: SendFailed) -> None:
        row = run.rows_by_cid.pop(event.cid, None)
        if row is None:
            return
        run.db.done_nowait(row.seq)
        log.info("%s: %s to %r refused: %s", self.nick, row.kind, row.target, event.error.code)
        failed = Undeliverable(
            row.kind, row.target, row.body, row.tag, event.error.code, event.error.message
        )
        for handler in self._on_undeliverable:

            def call(acts: Actions, handler: UndeliverableHandler = handler) -> Any:
                return handler(acts, failed)

            await self._unit(call, Actions(self, self.clock()))

    async def _unit(
        self, handler: Callable[[Any], Awaitable[None] | None], acts: Actions, msg_id: int = 0
    ) -> None:
        """Run one handler and save its effects in one transaction, then send."""
        run = self._run
        assert run is not None
        async with self._lock:
            try:
                result = handler(acts)
                if inspect.isawaitable(result):
                    await result
                if isinstance(acts, Context):
                    acts._save_state()
                    if not acts._puzzled:
                        self._puzzled.pop(acts._state_key, None)  # understood: a new streak
            except Exception:
                log.exception("%s: a handler failed", self.nick)
                self.store.rollback()
                acts.outgoing.clear()
                if isinstance(acts, Context):
                    acts.reply(_OOPS)
            try:
                rows = await run.db.commit(self.store.changes(), acts.outgoing, msg_id or None)
            except BaseException:
                self.store.rollback()
                raise
            self.store.accept()
            self._last_id = max(self._last_id, msg_id)
            for row in rows:
                self._send_row(run, row)

    def _send_row(self, run: _Run, row: OutboxRow) -> None:
        if not run.started:
            # Handling the backlog: replies wait behind those of the last run,
            # which are sent first, in order, once the backlog is over.
            run.pending.append(row)
            return
        try:
            if row.kind == "dm":
                cid = run.client.dm(row.target, row.body)
            else:
                cid = run.client.say(row.target, row.body)
        except (ChatError, RuntimeError) as exc:
            # Closed (it stays in the database for the next run), or unsendable.
            log.warning("%s: cannot send to %r: %s", self.nick, row.target, exc)
            if isinstance(exc, ChatError):
                run.db.done_nowait(row.seq)
            return
        run.rows_by_cid[cid] = row
        run.db.set_cid_nowait(row.seq, cid)

    # --- command line -------------------------------------------------------------

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The options every bot takes: ``[HOST[:PORT]] --nick --data``."""
        parser.add_argument(
            "server",
            nargs="?",
            default="localhost",
            help="HOST[:PORT] or an invite link or code (default localhost:5050)",
        )
        parser.add_argument(
            "--nick", default=self.nick, help=f"the bot's nick (default {self.nick})"
        )
        parser.add_argument(
            "--data",
            type=Path,
            help="the bot's directory: password, database (default: user data dir/bots/NICK)",
        )
        add_tls_arguments(parser)

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Run from the command line: parse ``argv``, run until SIGINT/SIGTERM.

        Returns:
            The exit status: 0; :data:`EXIT_CANNOT_RUN` if the bot cannot run as
            configured; 2 for bad usage; :data:`EXIT_CRASHED` after an unexpected error.
        """
        parser = argparse.ArgumentParser(description=self.about or f"the {self.nick} bot")
        self.add_arguments(parser)
        args = parser.parse_args(argv)
        return self.run_from_args(args)

    def run_from_args(self, args: argparse.Namespace) -> int:
        """Run with parsed :meth:`add_arguments` options; see :meth:`main`."""
        self.nick = str(args.nick)
        data = args.data if args.data is not None else default_data_dir(self.nick)
        try:
            where = _where(args, data)
        except BotError as exc:
            print(f"{self.nick}: {exc}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        if not logging.getLogger().handlers:
            logging.basicConfig(
                level=logging.INFO,
                stream=sys.stderr,
                format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            )
        try:
            asyncio.run(self._main(where, data, bool(getattr(args, "stop_on_eof", False))))
        except BotError as exc:
            print(f"{self.nick}: {exc}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        except KeyboardInterrupt:
            return 130
        except Exception:
            log.exception("%s: crashed", self.nick)
            return EXIT_CRASHED
        return 0

    async def _main(self, where: _Where, data: Path, stop_on_eof: bool) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if stop_on_eof:
            # Run by a parent that holds our stdin open (chinwag serve --with-gamebot):
            # when it dies, even by kill -9, stdin ends, and so do we. The thread
            # reads the raw descriptor: blocked in sys.stdin it would hold the
            # buffer's lock, and the interpreter's exit aborts on that lock.
            def watch() -> None:
                with contextlib.suppress(OSError):
                    while os.read(sys.stdin.fileno(), 4096):
                        pass
                with contextlib.suppress(RuntimeError):  # the loop is closed already
                    loop.call_soon_threadsafe(stop.set)

            threading.Thread(target=watch, name="chinwag-bot-stdin", daemon=True).start()
        await self.run(
            where.host, where.port, data_dir=data, stop=stop, invite=where.invite, ssl=where.ssl
        )
