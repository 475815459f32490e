"""The network side of the desktop app: everything here runs on the bridge's asyncio loop.

A :class:`NetSession` is one login: it owns a :class:`~chinwag.client.ChatClient`
and forwards every event the client yields to the Tk side as a
:class:`NetEvent` (tagged with the session's number, so that events of a
session the user already logged out of are recognised and ignored). Its
methods are coroutines for the Tk side to hand to
:meth:`AsyncBridge.call <chinwag.client.gui.bridge.AsyncBridge.call>`.

:func:`poll_lan` feeds the connect window's list of servers found on the LAN
from whatever source the caller wires in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import os
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from chinwag import __version__
from chinwag.client.connection import ChatClient, speaks_tls
from chinwag.client.events import Event, HistoryPage, User, Welcome
from chinwag.client.gui.model import ServerProblem
from chinwag.client.state import Conversation
from chinwag.client.tui import parse_server

__all__ = [
    "Ask",
    "LanServer",
    "LanServers",
    "LanSource",
    "NetEvent",
    "NetSession",
    "Prepare",
    "Prepared",
    "Say",
    "poll_lan",
]

CLIENT_NAME: Final = f"chinwag-gui/{__version__}"
LAN_POLL: Final = 2.0
"""Seconds between two looks at the LAN source."""


@dataclass(frozen=True, slots=True)
class NetEvent:
    """An event of session number ``session``; ``event`` None: the session ended."""

    session: int
    event: Event | None


@dataclass(frozen=True, slots=True)
class LanServer:
    """A server found on the local network."""

    name: str
    host: str
    port: int
    tls: bool = False

    @property
    def address(self) -> str:
        """``host:port`` (``[v6]:port`` for IPv6), as typed in the server field."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class LanServers:
    """The servers on the LAN right now (posted to the Tk side)."""

    servers: tuple[LanServer, ...]


@dataclass(frozen=True, slots=True)
class Prepared:
    """Where and how to connect, as a :data:`Prepare` hook decided it.

    Attributes:
        host: the server's host.
        port: its port.
        ssl: a TLS context (None: plain TCP).
        invite: a sign-up token (from an invite) to send with ``register``.
    """

    host: str
    port: int
    ssl: ssl_module.SSLContext | None = None
    invite: str | None = None


Say = Callable[[str], None]
Ask = Callable[[str], str | None]
Prepare = Callable[[str, Say, Ask], Prepared]
"""``prepare(server, say, ask)``: turn what the user typed in the server field
(``host:port``, an invite link or code...) into a :class:`Prepared`, e.g. with
TLS and certificate pinning. Called on a worker thread, never the Tk thread: it
may block (fetch a certificate) and ``ask`` waits for the user's answer to a
yes/no question, after the lines given to ``say``. Its exceptions are shown to
the user next to the server field (``str(exc)``)."""


LanSource = Callable[[], Iterable[LanServer] | Awaitable[Iterable[LanServer]]]
"""What the connect window's LAN list is fed from: called every :data:`LAN_POLL` s
on the network thread (never on the Tk thread); may be a plain function or a
coroutine function."""


async def poll_lan(
    source: LanSource, post: Callable[[object], None], interval: float = LAN_POLL
) -> None:
    """Post :class:`LanServers` whenever the list from ``source`` changes, until cancelled.

    A source that raises is asked again at the next interval: the list is a
    convenience and must never take the app down.
    """
    last: tuple[LanServer, ...] | None = None
    while True:
        try:
            found = source()
            if inspect.isawaitable(found):
                found = await found
            servers = tuple(sorted(set(found), key=lambda s: (s.name.casefold(), s.address)))
        except asyncio.CancelledError:
            raise
        except Exception:
            servers = last if last is not None else ()
        if servers != last:
            last = servers
            post(LanServers(servers))
        await asyncio.sleep(interval)


class NetSession:
    """One login on the network loop.

    Args:
        number: the app's number for this login.
        post: hands objects to the Tk side (:meth:`AsyncBridge.post`).
        server: what the user typed in the server field (``host[:port]``, or
            whatever ``prepare`` understands).
        nick: the nick to log in as.
        password: the account's password, or the new one to register with.
        register: register the nick (as a guest first) with ``password``.
        config_dir: the client's config directory (device id).
        options: more :class:`ChatClient` arguments (tests shorten the reconnect delays).
        prepare: turns ``server`` into where and how to connect (default: plain
            TCP to ``host[:port]``).
        ask: answers ``prepare``'s questions (blocking; given the lines said before).
    """

    def __init__(
        self,
        number: int,
        post: Callable[[object], None],
        server: str,
        nick: str,
        password: str | None,
        *,
        register: bool = False,
        config_dir: str | os.PathLike[str] | None = None,
        options: dict[str, Any] | None = None,
        prepare: Prepare | None = None,
        ask: Callable[[str, list[str]], str | None] | None = None,
    ) -> None:
        self.number = number
        self._post = post
        self._server = server
        self._prepare = prepare
        self._ask = ask
        self._invite: str | None = None
        self.address = server
        """``host:port`` once :meth:`login` resolved it (never an invite's token)."""
        self.tls = False
        """Whether the connection uses TLS."""
        self._nick = nick
        self._password = password
        self._register = register
        self._config_dir = config_dir
        self._options = dict(options or {})
        self._client: ChatClient | None = None
        self._forwarder: asyncio.Task[None] | None = None

    @property
    def client(self) -> ChatClient:
        """The logged-in client (only valid after :meth:`login`)."""
        if self._client is None:
            raise RuntimeError("not logged in")
        return self._client

    async def login(self) -> Welcome:
        """Connect, log in (and register if asked), then start forwarding events.

        Raises:
            ChatError: the server refused (``PasswordRequired``, ``BadPassword``,
                ``NickTaken``, ``RateLimited``, ``WeakPassword``...).
            OSError: the server cannot be reached.
            ServerProblem: the server field names nothing usable.
        """
        prepared = await self._prepared()
        self._invite = prepared.invite
        self.address = LanServer("", prepared.host, prepared.port).address
        self.tls = prepared.ssl is not None
        client = ChatClient(
            prepared.host,
            prepared.port,
            nick=self._nick,
            password=None if self._register else self._password,
            config_dir=self._config_dir,
            client_name=CLIENT_NAME,
            ssl=prepared.ssl,
            **self._options,
        )
        try:
            try:
                welcome = await client.connect()
            except OSError:
                if prepared.ssl is None and await speaks_tls(prepared.host, prepared.port):
                    raise ServerProblem(
                        "This server speaks TLS: paste an invite link from its admin here, "
                        "or pick it from the servers found on your network."
                    ) from None
                raise
            if self._register:
                assert self._password is not None
                await self._register_with(client, self._password)
                welcome = dataclasses.replace(welcome, account=True)
        except BaseException:
            await client.close(timeout=1.0)
            raise
        self._client = client
        self._forwarder = asyncio.get_running_loop().create_task(
            self._forward(client), name=f"chinwag-gui-events-{self.number}"
        )
        return welcome

    async def _prepared(self) -> Prepared:
        if self._prepare is None:
            try:
                host, port = parse_server(self._server)
            except ValueError as exc:
                raise ServerProblem(str(exc)) from None
            return Prepared(host, port)
        said: list[str] = []
        ask, prepare = self._ask, self._prepare

        def answer(prompt: str) -> str | None:
            return ask(prompt, list(said)) if ask is not None else None

        try:
            return await asyncio.to_thread(prepare, self._server, said.append, answer)
        except Exception as exc:
            raise ServerProblem(str(exc) or type(exc).__name__) from None

    async def _register_with(self, client: ChatClient, password: str) -> None:
        if self._invite is not None:
            await client.register(password, invite=self._invite)
        else:
            await client.register(password)

    async def _forward(self, client: ChatClient) -> None:
        try:
            async for event in client.events():
                if isinstance(event, Welcome) and client.account and not event.account:
                    # Registered right after the welcome was queued: say what is true now.
                    event = dataclasses.replace(event, account=True)
                self._post(NetEvent(self.number, event))
        finally:
            self._post(NetEvent(self.number, None))

    async def close(self, timeout: float = 5.0) -> None:
        """Log out: the client waits up to ``timeout`` s for its outbox, says bye, closes."""
        if self._client is not None:
            await self._client.close(timeout=timeout)
        if self._forwarder is not None:
            try:
                await asyncio.wait_for(self._forwarder, 2.0)
            except (TimeoutError, asyncio.CancelledError):
                self._forwarder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._forwarder

    # --- what the Tk side asks for -------------------------------------------------

    async def send(
        self, conversation: Conversation, target: str, body: str, reply_to: int | None = None
    ) -> str:
        """Queue a message (a reply with ``reply_to``) in the outbox; returns its ``cid``."""
        if conversation.kind == "room":
            return self.client.say(conversation.name, body, reply_to=reply_to)
        return self.client.dm(target, body, reply_to=reply_to)

    async def edit(self, message_id: int, body: str) -> int:
        """Replace the text of one of our messages."""
        return await self.client.edit(message_id, body)

    async def delete(self, message_id: int) -> int:
        """Delete one of our messages."""
        return await self.client.delete(message_id)

    async def react(self, message_id: int, emoji: str, on: bool) -> int:
        """Put a reaction on a message, or take ours off."""
        return await self.client.react(message_id, emoji, on=on)

    async def search(self, query: str, before: int | None = None) -> HistoryPage:
        """Messages we may see holding every word of ``query``, newest first."""
        return await self.client.search(query, before=before)

    async def mark_read(self, conversation: Conversation, target: str, upto: int) -> None:
        """Move the account's read marker of a conversation."""
        if conversation.kind == "room":
            await self.client.mark_read(upto, room=conversation.name)
        else:
            await self.client.mark_read(upto, with_=target)

    async def set_receipts(self, on: bool) -> None:
        """Turn the account's DM receipts on or off."""
        await self.client.set_receipts(on)

    async def typing(self, conversation: Conversation, target: str) -> None:
        """Tell the others we are typing."""
        if self._client is None or not self._client.connected:
            return
        if conversation.kind == "room":
            self._client.typing(room=conversation.name)
        else:
            self._client.typing(to=target)

    async def join(self, room: str, key: str | None = None) -> list[User]:
        """Join a room (``key``: the room's, if it has one); returns who is online in it."""
        await self.client.join(room, key)
        return await self.client.who(room)

    async def leave(self, room: str) -> None:
        """Leave a room."""
        await self.client.leave(room)

    async def who(self, room: str) -> list[User]:
        """Who is online in a room."""
        return await self.client.who(room)

    async def history(
        self,
        conversation: Conversation,
        target: str,
        before: int | None,
        limit: int = 50,
        *,
        after: int | None = None,
    ) -> HistoryPage:
        """A page of older messages of a conversation (newer than ``after``, if given)."""
        if conversation.kind == "room":
            return await self.client.history(
                conversation.name, before=before, limit=limit, after=after
            )
        return await self.client.history(with_=target, before=before, limit=limit, after=after)

    async def around(
        self, conversation: Conversation, target: str, message_id: int, limit: int
    ) -> tuple[HistoryPage, HistoryPage]:
        """Up to ``limit`` messages up to and with ``message_id``, and ``limit`` after it."""
        older = await self.history(conversation, target, message_id + 1, limit)
        newer = await self.history(conversation, target, None, limit, after=message_id)
        return older, newer

    async def register(self, password: str) -> None:
        """Register the nick we are logged in with (with the invite, if one was used)."""
        await self._register_with(self.client, password)

    async def passwd(self, old: str, new: str) -> None:
        """Change the account's password."""
        await self.client.passwd(old, new)

    # --- moderation and blocks (issue 16) ------------------------------------------

    async def set_room(
        self,
        room: str,
        topic: str | None,
        private: bool | None,
        announce: bool | None,
        retention_days: int | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> None:
        """Change a room's topic, privacy, announce-only, own retention, key or member limit
        (None stays; 0 days clears the room's retention, "" the key, 0 the limit)."""
        await self.client.set_room(
            room,
            topic=topic,
            private=private,
            announce=announce,
            retention_days=retention_days,
            key=key,
            limit=limit,
        )

    async def moderate(
        self, action: str, room: str, nick: str, until: datetime | None, reason: str
    ) -> None:
        """Kick, ban, mute, unmute, invite, or make a mod or member, in ``room``."""
        match action:
            case "kick" | "ban" | "unban" | "mute" | "unmute":
                await self.client.moderate(action, nick, room=room, until=until, reason=reason)
            case "invite":
                await self.client.invite(room, nick)
            case "mod" | "member":
                await self.client.grant(nick, action, room=room)
            case _:
                raise ValueError(f"not a moderation action: {action}")

    async def block(self, nick: str, on: bool) -> list[str]:
        """Block (or unblock) ``nick``; returns the nicks blocked now."""
        if on:
            await self.client.block(nick)
        else:
            await self.client.unblock(nick)
        return await self.client.blocks()

    async def blocks(self) -> list[str]:
        """The nicks we block, oldest first."""
        return await self.client.blocks()
