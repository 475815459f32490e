"""The client library: one :class:`ChatClient` per login, on asyncio.

A client connects, says ``hello``, and from then on keeps itself connected:
when the connection drops it reconnects with exponential backoff and jitter,
logs in again, and resends whatever the server had not acknowledged, with the
same ``cid`` (so nothing is lost or stored twice; protocol v1 §3, §7). What the
server sends becomes typed events (:mod:`chinwag.client.events`), read in order
from :meth:`ChatClient.events`; messages delivered twice are dropped by id, and
the offline cursor is advanced (``seen``) as messages are handed over.

Requests with a reply (join, who, history...) are coroutines matched to their
reply by ``ref``; an ``error`` reply raises the matching
:class:`~chinwag.errors.ChatError` subclass.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.metadata
import logging
import os
import random
import secrets
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Literal

from chinwag.client.config import device_id, is_valid_device
from chinwag.client.events import (
    AwayChanged,
    CaughtUp,
    Changed,
    ErrorReceived,
    Event,
    HistoryPage,
    Message,
    Moderated,
    Presence,
    ReadMarker,
    Receipt,
    Renamed,
    RoomDetails,
    RoomInfo,
    SendFailed,
    Sent,
    SettingsChanged,
    Status,
    Typing,
    User,
    Welcome,
    parse_ts,
)
from chinwag.client.outbox import Kind, Outbox, OutboxItem
from chinwag.client.state import ChatState, Conversation
from chinwag.errors import (
    BadBody,
    BadRequest,
    ChatError,
    NickTaken,
    RateLimited,
    ServerError,
)
from chinwag.protocol.jsonlines import (
    DEFAULT_CLIENT_MAX_LINE,
    DEFAULT_MAX_LINE,
    ClientCodec,
    ProtocolError,
    encode,
    iso_ts,
)

__all__ = [
    "DEFAULT_PORT",
    "ChatClient",
    "ClientClosed",
    "NotConnected",
    "error_from_frame",
    "speaks_tls",
]

log = logging.getLogger("chinwag.client")

DEFAULT_PORT: Final = 5050
PROTO: Final = 1
MAX_BODY: Final = 4000
_READ_CHUNK: Final = 256 * 1024
_RESULTS_KEPT: Final = 10_000


def _version() -> str:
    try:
        return importlib.metadata.version("chinwag")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - not installed
        return "0"


class NotConnected(ConnectionError):
    """The request could not be answered: its connection was lost, or the client is closed."""


class ClientClosed(NotConnected):
    """The client was closed (or gave up reconnecting): no more events will come."""


# --- errors ---------------------------------------------------------------------


def _error_classes() -> dict[str, type[ChatError]]:
    classes: dict[str, type[ChatError]] = {}
    todo: list[type[ChatError]] = [ChatError]
    while todo:
        cls = todo.pop()
        classes.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    classes["server_error"] = ServerError
    return classes


_ERRORS: Final = _error_classes()
_UNKNOWN: dict[str, type[ChatError]] = {}


def error_from_frame(frame: Mapping[str, Any]) -> ChatError:
    """The :class:`~chinwag.errors.ChatError` an ``error`` frame stands for.

    A code this library does not know (a server extension) gets a subclass of
    :class:`ChatError` made on the fly, so ``error.code`` is always the wire code.

    Args:
        frame: a decoded ``{"type":"error","code":...}`` frame.
    """
    code = frame.get("code")
    code = code if isinstance(code, str) and code else "server_error"
    message = frame.get("message")
    text = message if isinstance(message, str) and message else None
    extra = {k: v for k, v in frame.items() if k not in ("type", "code", "message", "ref")}
    cls = _ERRORS.get(code)
    if cls is None:
        cls = _UNKNOWN.get(code)
        if cls is None:
            cls = type(f"ChatError_{code}", (ChatError,), {"code": code})
            _UNKNOWN[code] = cls
    if cls is RateLimited:
        retry = frame.get("retry_after")
        retry_after = float(retry) if isinstance(retry, int | float) else 1.0
        return RateLimited(retry_after, text)
    return cls(text, **extra)


# Login refusals worth retrying while reconnecting; any other refusal is final.
_TRANSIENT_LOGIN: Final = frozenset({NickTaken.code, RateLimited.code, ServerError.code})


# --- one connection -------------------------------------------------------------


class _Session:
    """One TCP connection: framing in, frames out."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
        max_line: int,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.number = number
        self.codec = ClientCodec(max_line)
        self.frames: collections.deque[dict[str, Any]] = collections.deque()
        self.logged_in = False
        self.caught_up = False
        self.seen_sent = 0
        self.bye = False

    def send(self, frame: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode(frame))

    async def recv(self, timeout: float | None) -> dict[str, Any]:
        """The next frame. Raises NotConnected on EOF, TimeoutError after ``timeout``."""
        while not self.frames:
            async with asyncio.timeout(timeout):
                data = await self.reader.read(_READ_CHUNK)
            if not data:
                raise NotConnected("the server closed the connection")
            try:
                self.frames.extend(self.codec.receive_data(data))
            except ProtocolError as exc:
                self.frames.extend(exc.frames)
                if not self.frames:
                    raise NotConnected(str(exc)) from exc
        return self.frames.popleft()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


# --- the client -----------------------------------------------------------------


class ChatClient:
    """A chat client that stays connected: log in, send, receive typed events.

    Create it, then ``await connect()`` (or use :meth:`open`), read
    :meth:`events`, and ``await close()`` at the end (or use ``async with``).

    Args:
        host: the server's host name or address.
        port: its TCP port.
        nick: the nick to log in as.
        password: the account's password (only for a registered nick: the server
            refuses a password for a guest nick with ``bad_password``).
        device: this install's device id; default: the one stored in the config
            directory (see :func:`chinwag.client.config.device_id`).
        config_dir: the client's config directory (default:
            ``$CHINWAG_CONFIG_DIR`` or the platform's).
        client_name: sent as ``client`` in ``hello``.
        ssl: a TLS context, for servers with a certificate.
        reconnect_min: the first reconnect delay in seconds; doubled on each
            failure up to ``reconnect_max``, with random jitter of up to half.
        reconnect_max: the largest reconnect delay in seconds.
        connect_timeout: seconds allowed for connecting and the ``welcome``.
        request_timeout: seconds a request (join, who...) waits for its reply.
        seen_delay: ``seen`` is sent at most this often (seconds).
        keepalive: after this many seconds without a frame from the server the
            client sends ``ping``; no answer within ``keepalive_timeout`` and the
            connection counts as lost.
        keepalive_timeout: see ``keepalive``.
        max_in_flight: messages sent ahead of their ``ack`` (a window).
        max_frame: the largest frame we send (the server's limit, protocol v1 §1).
        max_server_frame: the largest server frame accepted.
        rng: random source for the jitter (tests pass a seeded one).
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        nick: str,
        password: str | None = None,
        device: str | None = None,
        config_dir: str | os.PathLike[str] | None = None,
        client_name: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        connect_timeout: float = 10.0,
        request_timeout: float = 15.0,
        seen_delay: float = 0.5,
        keepalive: float = 45.0,
        keepalive_timeout: float = 20.0,
        max_in_flight: int = 16,
        max_frame: int = DEFAULT_MAX_LINE,
        max_server_frame: int = DEFAULT_CLIENT_MAX_LINE,
        rng: random.Random | None = None,
    ) -> None:
        if device is None:
            device = device_id(config_dir)
        if not is_valid_device(device):
            raise ValueError("device must be 1-64 characters of A-Z a-z 0-9 _ -")
        self.host = host
        self.port = port
        self.device = device
        self.password = password
        self.client_name = client_name or f"chinwag/{_version()}"
        self.state = ChatState(nick)
        self._requested_nick = nick
        self._ssl = ssl
        self._reconnect_min = reconnect_min
        self._reconnect_max = max(reconnect_max, reconnect_min)
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._seen_delay = seen_delay
        self._keepalive = keepalive
        self._keepalive_timeout = keepalive_timeout
        self._max_in_flight = max(1, max_in_flight)
        self._window = self._max_in_flight
        self._max_frame = max_frame
        self._max_server_frame = max_server_frame
        self._rng = rng or random.Random()

        self._outbox = Outbox()
        self._results: collections.OrderedDict[str, Sent | Exception] = collections.OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[Sent]]] = {}
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._requests: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ref = 0
        self._session: _Session | None = None
        self._sessions = 0
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._handed_upto = 0
        self._seen_timer: asyncio.TimerHandle | None = None
        self._paused_until = 0.0
        self._pump_timer: asyncio.TimerHandle | None = None
        self._final_error: str | None = None
        self._cert_refused = False
        self.receipts_on: bool | None = None
        """Whether the account has DM receipts on, as the server last said (issue 15;
        None: a guest, or a server that does not say)."""

    # --- properties ------------------------------------------------------------

    @property
    def nick(self) -> str:
        """The nick as the server stores it (as requested, before the first welcome)."""
        return self.state.nick

    @property
    def account(self) -> bool:
        """Whether the nick is a registered account."""
        return self.state.account

    @property
    def rooms(self) -> list[str]:
        """The rooms this client is in, sorted."""
        return sorted(self.state.rooms)

    @property
    def connected(self) -> bool:
        """Whether a session is logged in right now."""
        return self._session is not None and self._session.logged_in

    @property
    def queued(self) -> int:
        """Messages in the outbox (sent or not, waiting for their ``ack``)."""
        return len(self._outbox)

    def unsent(self) -> list[OutboxItem]:
        """The messages in the outbox, oldest first (not yet acknowledged)."""
        return list(self._outbox)

    @property
    def closed(self) -> bool:
        """Whether the client is closed (by :meth:`close` or after a final refusal)."""
        return self._closed

    # --- lifecycle -------------------------------------------------------------

    @classmethod
    async def open(cls, host: str, port: int = DEFAULT_PORT, **kwargs: Any) -> ChatClient:
        """Create a client and connect it; the arguments are those of the constructor.

        Raises:
            ChatError: the server refused the login (e.g. ``PasswordRequired``).
            OSError: the server cannot be reached.
        """
        client = cls(host, port, **kwargs)
        await client.connect()
        return client

    async def __aenter__(self) -> ChatClient:
        if self._session is None and not self._closed:
            await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self, *, password: str | None = None) -> Welcome:
        """Connect and log in; from then on the client reconnects by itself.

        Args:
            password: set (or replace) the password first.

        Returns:
            The session's :class:`Welcome` (the same event is also queued).

        Raises:
            ChatError: the server refused ``hello``: ``PasswordRequired`` (ask the
                user, then call again with ``password``), ``BadPassword``,
                ``BadNick``, ``NickTaken``, ``RateLimited``...
            OSError: the server cannot be reached (``TimeoutError`` included).
            RuntimeError: already connected, or closed.
        """
        if self._closed:
            raise RuntimeError("this client is closed")
        if self._supervisor is not None:
            raise RuntimeError("already connected")
        if password is not None:
            self.password = password
        session, welcome = await self._login()
        event = self._start_session(session, welcome)
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(session), name=f"chinwag-client-{self.state.nick}"
        )
        return event

    async def close(self, timeout: float = 5.0) -> None:
        """Say goodbye and close; waits up to ``timeout`` s for the outbox to drain.

        ``seen`` goes out first, then ``bye`` (which moves this device's cursor
        to the last message delivered). For messages still unacknowledged after
        the wait, :meth:`wait_sent` raises :class:`ClientClosed`. The event
        stream ends with ``Status("offline")``. Idempotent.
        """
        if self._closed or self._closing:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._outbox and self._supervisor is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._drained.wait()
        self._closing = True
        session = self._session
        if session is not None and session.logged_in:
            self._flush_seen(force=True)
            session.send({"type": "bye"})
            if self._supervisor is not None:
                with contextlib.suppress(TimeoutError, Exception):
                    async with asyncio.timeout(max(deadline - loop.time(), 0.5)):
                        await asyncio.shield(self._supervisor)
        await self._shutdown(None)

    async def abort(self) -> None:
        """Drop the connection at once, as a crash would: no ``seen``, no ``bye``.

        The server's cursor for this device stays where the last ``seen`` put
        it, so the next login replays what came after (delivery is at least
        once). The client is closed afterwards.
        """
        if self._closed:
            return
        self._closing = True
        if self._session is not None:
            transport = self._session.writer.transport
            transport.abort()
        await self._shutdown(None)

    async def _shutdown(self, error: str | None) -> None:
        """Stop for good: cancel the background task, fail waiters, end the events."""
        self._closing = True
        task, self._supervisor = self._supervisor, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            self._session.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._session.writer.wait_closed(), 1.0)
            self._session = None
        for timer in (self._seen_timer, self._pump_timer):
            if timer is not None:
                timer.cancel()
        self._fail_requests(ClientClosed("the client is closed"))
        for item in self._outbox:
            self._finish(item.cid, ClientClosed("the client closed before the server acknowledged"))
        self._closed = True
        self._ready.set()  # wake requests waiting for a session: they see _closed
        self._emit(
            Status(
                "offline", queued=len(self._outbox), error=error, cert_refused=self._cert_refused
            )
        )
        self._events.put_nowait(None)

    # --- events ----------------------------------------------------------------

    async def next_event(self, timeout: float | None = None) -> Event:
        """The next event, in order.

        Handing a :class:`Message` over counts as delivering it: the client then
        advances this device's cursor with ``seen`` (debounced).

        Raises:
            ClientClosed: the client is closed and every event was read.
            TimeoutError: nothing came within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            event = await self._events.get()
        if event is None:
            self._events.put_nowait(None)  # every later call ends too
            raise ClientClosed("the client is closed")
        if isinstance(event, Message | Changed) and event.id > self._handed_upto:
            self._handed_upto = event.id
            self._schedule_seen()
        return event

    async def events(self) -> AsyncIterator[Event]:
        """Every event, in order, until the client is closed (see :meth:`next_event`)."""
        while True:
            try:
                yield await self.next_event()
            except ClientClosed:
                return

    def _emit(self, event: Event) -> None:
        self._events.put_nowait(event)

    # --- sending ---------------------------------------------------------------

    def say(self, room: str, body: str, *, reply_to: int | None = None) -> str:
        """Queue a message to a room; it is sent now or as soon as connected.

        Args:
            room: the room.
            body: the text.
            reply_to: the id of the message of that room it answers (version 1.1).

        Returns:
            Its ``cid``: pass it to :meth:`wait_sent`; a refusal arrives as a
            :class:`SendFailed` event with this cid.

        Raises:
            BadBody: the body is empty or over 4,000 characters.
            BadRequest: the frame would exceed the server's frame limit.
            RuntimeError: the client is closed.
        """
        return self._queue("say", room, body, reply_to)

    def dm(self, to: str, body: str, *, reply_to: int | None = None) -> str:
        """Queue a direct message to ``to``; see :meth:`say`."""
        return self._queue("dm", to, body, reply_to)

    def _queue(self, kind: Kind, target: str, body: str, reply_to: int | None = None) -> str:
        if self._closed or self._closing:
            raise RuntimeError("this client is closed")
        # Checked here, because the server answers these by closing the
        # connection (frame_too_large), which a resend would repeat forever.
        if not body or len(body) > MAX_BODY:
            raise BadBody(f"a message is 1-{MAX_BODY} characters, not {len(body)}")
        if reply_to is not None and not (
            isinstance(reply_to, int) and not isinstance(reply_to, bool) and reply_to > 0
        ):
            raise ValueError("reply_to is a message id: a positive integer")
        item = self._outbox.add(kind, target, body, reply_to=reply_to)
        if len(encode(item.frame())) > self._max_frame:
            self._outbox.remove(item.cid)
            raise BadRequest("that message is too large to send")
        self._drained.clear()
        self._pump()
        return item.cid

    async def wait_sent(self, cid: str, timeout: float | None = None) -> Sent:
        """Wait until the server acknowledges the message with this cid.

        Raises:
            ChatError: the server refused it (the same error as its SendFailed).
            ClientClosed: the client closed before the acknowledgement.
            KeyError: no such cid (or its result was forgotten long ago).
            TimeoutError: not acknowledged within ``timeout`` seconds.
        """
        result = self._results.get(cid)
        if result is None:
            if cid not in self._outbox:
                raise KeyError(cid)
            fut: asyncio.Future[Sent] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(cid, []).append(fut)
            async with asyncio.timeout(timeout):
                return await fut
        if isinstance(result, Exception):
            raise result
        return result

    async def wait_flushed(self, timeout: float | None = None) -> None:
        """Wait until the outbox is empty (everything acknowledged or refused).

        Raises:
            TimeoutError: still not empty after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            await self._drained.wait()

    def typing(self, *, room: str | None = None, to: str | None = None) -> None:
        """Tell others we are typing (dropped when not connected; no reply)."""
        if (room is None) == (to is None):
            raise ValueError("give exactly one of room and to")
        session = self._session
        if session is not None and session.caught_up:
            session.send({"type": "typing", "room": room} if room else {"type": "typing", "to": to})

    def _finish(self, cid: str, result: Sent | Exception) -> None:
        self._outbox.remove(cid)
        self._results[cid] = result
        while len(self._results) > _RESULTS_KEPT:
            self._results.popitem(last=False)
        for fut in self._waiters.pop(cid, []):
            if fut.done():
                continue
            if isinstance(result, Exception):
                fut.set_exception(result)
            else:
                fut.set_result(result)
        if not self._outbox:
            self._window = self._max_in_flight
            self._drained.set()

    def _pump(self) -> None:
        """Send queued messages, in order, while the window and the flood control allow."""
        session = self._session
        if session is None or not session.caught_up or self._closed:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._paused_until:
            if self._pump_timer is None:
                self._pump_timer = loop.call_at(self._paused_until, self._pump_later)
            return
        while self._outbox.in_flight < self._window:
            item = self._outbox.next_to_send()
            if item is None:
                break
            self._outbox.mark_sent(item.cid)
            session.send(item.frame())

    def _pump_later(self) -> None:
        self._pump_timer = None
        self._pump()

    def _on_ack(self, frame: Mapping[str, Any]) -> None:
        ref = frame.get("ref")
        request = self._requests.get(ref) if isinstance(ref, str) else None
        if request is not None:  # an edit, delete, react or reply made as a request
            if not request.done():
                request.set_result(dict(frame))
            return
        cid, mid = frame.get("cid"), frame.get("id")
        if not isinstance(cid, str):
            ref = frame.get("ref")
            cid = ref if isinstance(ref, str) else None
        if cid is None or cid not in self._outbox or not isinstance(mid, int):
            return
        away = frame.get("away")
        sent = Sent(cid, mid, parse_ts(frame.get("ts")), away if isinstance(away, str) else None)
        self._finish(cid, sent)
        self._emit(sent)
        self._pump()

    def _on_send_error(self, cid: str, error: ChatError) -> None:
        if isinstance(error, RateLimited | ServerError):
            # Not stored: send it again, with the same cid, after the wait. From
            # now until the outbox drains, one at a time, to keep the order.
            self._outbox.retry(cid)
            wait = error.retry_after if isinstance(error, RateLimited) else 1.0
            loop = asyncio.get_running_loop()
            self._paused_until = max(self._paused_until, loop.time() + max(wait, 0.01))
            self._window = 1
            self._pump()
            return
        item = self._outbox.get(cid)
        if item is None:
            return
        self._finish(cid, error)
        self._emit(SendFailed(cid, error, item.kind, item.target, item.body))
        self._pump()

    # --- requests --------------------------------------------------------------

    async def _request(
        self, frame: dict[str, Any], *, retry: bool = True, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send a request and return its reply frame.

        Args:
            frame: the request, without ``ref``.
            retry: send it again on the next connection if the connection drops
                before the reply, or after the wait if the server answers
                ``rate_limited`` (only for requests that are safe to repeat).
            timeout: seconds for the whole wait (default ``request_timeout``).
        """
        loop = asyncio.get_running_loop()
        limit = timeout if timeout is not None else self._request_timeout
        async with asyncio.timeout(limit) as deadline:
            while True:
                while not self.connected:
                    if self._closed or self._closing:
                        raise ClientClosed("the client is closed")
                    await self._ready.wait()
                session = self._session
                assert session is not None
                self._ref += 1
                ref = f"r{self._ref}"
                fut: asyncio.Future[dict[str, Any]] = loop.create_future()
                self._requests[ref] = fut
                session.send({**frame, "ref": ref})
                try:
                    return await fut
                except NotConnected:
                    if not retry or self._closed or self._closing:
                        raise
                except RateLimited as exc:
                    # Over the server's command budget, nothing was done: ask again
                    # after the wait, if that fits in the time this request has.
                    due = deadline.when()
                    if not retry or (due is not None and loop.time() + exc.retry_after >= due):
                        raise
                    await asyncio.sleep(exc.retry_after)
                finally:
                    self._requests.pop(ref, None)

    def _fail_requests(self, error: Exception) -> None:
        requests, self._requests = self._requests, {}
        for fut in requests.values():
            if not fut.done():
                fut.set_exception(error)

    async def join(self, room: str, key: str | None = None) -> None:
        """Join a room (created on first join); ``key``: the room's, if it has one.

        Raises:
            BadRoom: not a room name.
            BadKey: the room has a key, and this is not it.
            RoomFull: the room has as many online as its member limit.
        """
        frame: dict[str, Any] = {"type": "join", "room": room}
        if key is not None:
            frame["key"] = key
        await self._request(frame)
        self.state.joined(room.lower())

    async def leave(self, room: str) -> None:
        """Leave a room.

        Raises:
            Forbidden: the room is ``lobby``.
        """
        await self._request({"type": "leave", "room": room})
        self.state.left(room.lower())

    async def who(self, room: str) -> list[User]:
        """The online members of a room.

        Raises:
            NotMember: you are not in that room.
        """
        reply = await self._request({"type": "who", "room": room})
        users = reply.get("users")
        return [
            User(
                u["nick"],
                bool(u.get("account")),
                u.get("bot") is True,
                u["away"] if isinstance(u.get("away"), str) else None,
            )
            for u in (users if isinstance(users, list) else [])
            if isinstance(u, dict) and isinstance(u.get("nick"), str)
        ]

    async def list_rooms(self) -> list[RoomInfo]:
        """Every room with at least one member, with its count of online members."""
        reply = await self._request({"type": "rooms"})
        rooms = reply.get("rooms")
        out = []
        for r in rooms if isinstance(rooms, list) else []:
            if isinstance(r, dict) and isinstance(r.get("name"), str):
                online = r.get("online")
                out.append(RoomInfo(r["name"], online if isinstance(online, int) else 0))
        return out

    async def history(
        self,
        room: str | None = None,
        *,
        with_: str | None = None,
        before: int | None = None,
        limit: int | None = None,
        after: int | None = None,
    ) -> HistoryPage:
        """A page of older messages of a room, or of the DMs with ``with_``.

        Args:
            room: the room (exactly one of ``room`` and ``with_``).
            with_: the other party's nick.
            before: only messages with a smaller id (default: the newest).
            limit: at most this many (the server's default is 50, its maximum 200).
            after: instead of ``before``: the oldest messages with a greater id, and
                ``more`` tells whether newer ones exist (issue 15). A page around a
                message far back is ``before=id + 1`` and ``after=id``.

        A DM page's stored receipts (``HistoryPage.receipts``) are also handed
        on as :class:`Receipt` events.

        Raises:
            NotMember: not in that room.
            NoSuchUser: ``with_`` names nobody.
        """
        if (room is None) == (with_ is None):
            raise ValueError("give exactly one of room and with_")
        if before is not None and after is not None:
            raise ValueError("give before or after, not both")
        frame: dict[str, Any] = {"type": "history"}
        if room is not None:
            frame["room"] = room
        else:
            frame["with"] = with_
        if before is not None:
            frame["before"] = before
        if limit is not None:
            frame["limit"] = limit
        if after is not None:
            frame["after"] = after
        reply = await self._request(frame)
        raw = reply.get("messages")
        messages = []
        for m in raw if isinstance(raw, list) else []:
            if isinstance(m, dict) and (msg := Message.from_frame(m, self.state.nick)):
                messages.append(msg)
        self.state.add_history(messages)
        receipts = _receipt_state(reply.get("receipts"))
        if receipts is not None and with_ is not None:
            self._stored_receipts(with_, receipts)
        return HistoryPage(tuple(messages), reply.get("more") is True, receipts)

    async def settings(self) -> bool:
        """Ask the server whether the account has DM receipts on (issue 15)."""
        reply = await self._request({"type": "settings"})
        on = reply.get("receipts") is True
        self.receipts_on = on if self.account else None
        return on

    def _stored_receipts(self, nick: str, state: tuple[int, int]) -> None:
        """Hand on stored receipts as `Receipt` events (only what moves them forward)."""
        before = self.state.receipt(nick)
        delivered, read = self.state.receipt(nick, delivered=state[0], read=state[1])
        if delivered > before[0]:
            self._emit(Receipt(nick, delivered, "delivered"))
        if read > before[1]:
            self._emit(Receipt(nick, read, "read"))

    # --- protocol version 1.1: edits, deletions, reactions, replies, search -------

    async def _event_request(self, frame: dict[str, Any]) -> int:
        """Send an edit, delete, react or reply with a fresh ``cid`` (so a resend
        after a lost connection is safe); return the id the server acked."""
        reply = await self._request({**frame, "cid": "c-" + secrets.token_hex(8)})
        mid = reply.get("id")
        if reply.get("type") != "ack" or not isinstance(mid, int):
            raise ServerError("the server did not acknowledge it")
        return mid

    async def edit(self, message_id: int, body: str) -> int:
        """Replace the text of your message ``message_id``; return the edit's id.

        Raises:
            Forbidden: not yours, deleted, or past the server's edit window.
            NotFound: no such message that you can see.
        """
        return await self._event_request({"type": "edit", "id": message_id, "body": body})

    async def delete(self, message_id: int) -> int:
        """Delete your message ``message_id`` (its text is erased); return the event's id."""
        return await self._event_request({"type": "delete", "id": message_id})

    async def react(self, message_id: int, emoji: str, *, on: bool = True) -> int:
        """Put your reaction ``emoji`` on message ``message_id`` (or take it off)."""
        frame = {"type": "react", "id": message_id, "emoji": emoji, "on": on}
        return await self._event_request(frame)

    async def reply(self, message_id: int, body: str, *, room: str | None = None,
                    to: str | None = None) -> int:  # fmt: skip
        """Answer message ``message_id`` in ``room`` (or in the DM with ``to``); its id."""
        if (room is None) == (to is None):
            raise ValueError("give exactly one of room and to")
        frame: dict[str, Any] = {"type": "say", "room": room} if room else {"type": "dm", "to": to}
        return await self._event_request({**frame, "body": body, "reply_to": message_id})

    async def search(
        self,
        q: str,
        *,
        room: str | None = None,
        with_: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> HistoryPage:
        """Messages you may see that hold every word of ``q``, NEWEST first."""
        frame: dict[str, Any] = {"type": "search", "q": q}
        for key, value in (("room", room), ("with", with_), ("before", before), ("limit", limit)):
            if value is not None:
                frame[key] = value
        reply = await self._request(frame)
        raw = reply.get("messages")
        messages = [
            msg
            for m in (raw if isinstance(raw, list) else [])
            if isinstance(m, dict) and (msg := Message.from_frame(m, self.state.nick))
        ]
        return HistoryPage(tuple(messages), reply.get("more") is True)

    async def mark_read(
        self, upto: int, *, room: str | None = None, with_: str | None = None
    ) -> None:
        """Move the account's read marker of a room (or of the DMs with ``with_``) to ``upto``.

        Markers never move back; the server clamps ``upto`` to the newest
        message this session was sent, and tells the account's other devices
        (they get a :class:`ReadMarker`). A guest's marker is kept nowhere.

        Raises:
            NotMember: not in that room.
            NoSuchUser: ``with_`` names nobody.
        """
        if (room is None) == (with_ is None):
            raise ValueError("give exactly one of room and with_")
        frame: dict[str, Any] = {"type": "read", "upto": upto}
        if room is not None:
            frame["room"] = room
        else:
            frame["with"] = with_
        await self._request(frame)
        conv = Conversation.room(room) if room is not None else Conversation.dm(str(with_))
        self.state.read_upto(conv, upto)

    async def set_receipts(self, on: bool) -> None:
        """Turn DM receipts on or off for the account (kept by the server; default off).

        Receipts flow only between two accounts that both turned them on: then
        you get :class:`Receipt` events for your DMs, and they for theirs.

        Raises:
            Forbidden: a guest (``extra["reason"] == "guest"``).
        """
        await self._request({"type": "receipts", "on": on})
        self.receipts_on = on

    async def register(
        self, password: str, *, invite: str | None = None, bot: bool = False
    ) -> None:
        """Register the current nick as an account with this password.

        Args:
            password: the new account's password.
            invite: a sign-up token (from an invite), for servers that need one.
            bot: mark the account as a bot (``who`` shows it with ``bot: true``).

        Raises:
            NickRegistered: it is registered already.
            WeakPassword: under 8 characters.
            Forbidden: the server needs an invite (``extra["reason"]`` is
                ``invite_required`` or ``bad_invite``) or takes no new accounts
                (``registration_closed``).
        """
        frame: dict[str, Any] = {"type": "register", "password": password}
        if invite is not None:
            frame["invite"] = invite
        if bot:
            frame["bot"] = True
        await self._request(frame, retry=False)
        self.password = password  # reconnects now need it
        self.state.account = True
        self.receipts_on = False  # a new account's setting (issue 15)

    async def passwd(self, old: str, new: str) -> None:
        """Change the account's password.

        Raises:
            BadPassword: ``old`` is wrong.
            Forbidden: a guest has no password.
        """
        await self._request({"type": "passwd", "old": old, "new": new}, retry=False)
        self.password = new

    # --- blocks (issue 16) --------------------------------------------------------

    async def block(self, nick: str) -> None:
        """Stop everything ``nick`` sends from reaching you, on every device; they are not told.

        Raises:
            BadNick: not a nick.
            BadRequest: it is your own nick.
            Forbidden: you block as many nicks as the server allows
                (``extra["reason"]`` is ``too_many_blocks``).
        """
        await self._request({"type": "block", "nick": nick})

    async def unblock(self, nick: str) -> None:
        """Let what ``nick`` sends from now on reach you again (nothing if not blocked)."""
        await self._request({"type": "unblock", "nick": nick})

    async def blocks(self) -> list[str]:
        """The nicks you block, oldest block first."""
        reply = await self._request({"type": "blocks"})
        nicks = reply.get("nicks")
        return [n for n in (nicks if isinstance(nicks, list) else []) if isinstance(n, str)]

    # --- away (issue 19) ---------------------------------------------------------

    async def away(self, message: str | None = None) -> None:
        """Say you are away, with ``message``; with none (or ``""``), that you are back.

        It holds for every device of your account until your last one disconnects;
        whoever shares a room with you gets `AwayChanged`, and a DM to you is acked
        with your message (`Sent.away`).

        Raises:
            BadRequest: the message is longer than the server allows, or not one line.
        """
        await self._request({"type": "away", "message": message or None})

    # --- seen ------------------------------------------------------------------

    # --- moderation (issue 16) ---------------------------------------------------

    async def set_room(
        self,
        room: str,
        *,
        topic: str | None = None,
        private: bool | None = None,
        announce: bool | None = None,
        retention_days: int | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> None:
        """Change a room's topic (owner or mod), or make it private or announce-only, or
        set how many days it keeps messages (0: the server's setting alone) (owner), or
        its key (``""``: none) or member limit (0: none) (owner or mod); its members get
        `RoomDetails`.

        Raises:
            Forbidden: not yours to change (``reason`` says why).
        """
        frame: dict[str, Any] = {"type": "room", "room": room}
        for name, value in (
            ("topic", topic),
            ("private", private),
            ("announce", announce),
            ("retention_days", retention_days),
            ("key", key),
            ("limit", limit),
        ):
            if value is not None:
                frame[name] = value
        await self._request(frame, retry=False)

    async def invite(self, room: str, nick: str) -> None:
        """Let ``nick`` join the private ``room`` (its owner or a mod)."""
        await self._request({"type": "invite", "room": room, "nick": nick}, retry=False)

    async def moderate(
        self,
        action: Literal["kick", "ban", "unban", "mute", "unmute"],
        nick: str,
        *,
        room: str | None = None,
        until: datetime | None = None,
        reason: str = "",
    ) -> None:
        """Kick, ban, unban, mute or unmute ``nick`` in ``room`` (None: the whole server,
        for an admin); ``until`` ends a ban or mute by itself (None: until lifted).

        Raises:
            Forbidden: not allowed for you (``reason``: ``not_allowed``, ``rank``…).
        """
        frame: dict[str, Any] = {"type": action, "nick": nick}
        if room is not None:
            frame["room"] = room
        if action in ("ban", "mute"):
            frame["until"] = None if until is None else iso_ts(int(until.timestamp() * 1000))
        if reason and action in ("kick", "ban", "mute"):
            frame["reason"] = reason
        await self._request(frame, retry=False)

    async def grant(self, nick: str, role: str, *, room: str | None = None) -> None:
        """Make ``nick`` a ``mod`` (or ``member`` again) of ``room`` (its owner), or an
        ``admin`` of the server (an admin)."""
        frame: dict[str, Any] = {"type": "grant", "nick": nick, "role": role}
        if room is not None:
            frame["room"] = room
        await self._request(frame, retry=False)

    def _on_room_info(self, session: _Session, frame: dict[str, Any]) -> None:
        details = RoomDetails.from_frame(frame)
        if details is not None:
            self.state.rooms_info[details.room] = details
            self._emit(details)

    def _on_moderated(self, session: _Session, frame: dict[str, Any]) -> None:
        event = Moderated.from_frame(frame)
        if event is None:
            return
        if event.action in ("kick", "ban") and self.state.is_me(event.nick):
            self.state.left(event.room)
        self._emit(event)

    def _schedule_seen(self) -> None:
        if self._seen_timer is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._seen_timer = loop.call_later(self._seen_delay, self._flush_seen)

    def _flush_seen(self, force: bool = False) -> None:
        self._seen_timer = None
        session = self._session
        # Only once caught up: the server clamps `upto` to what this session has
        # delivered, and after a reconnect the backlog may not be there yet.
        if session is None or not (session.caught_up or force) or not session.logged_in:
            return
        if self._handed_upto > session.seen_sent:
            session.seen_sent = self._handed_upto
            session.send({"type": "seen", "upto": self._handed_upto})

    # --- connection ------------------------------------------------------------

    async def _login(self) -> tuple[_Session, dict[str, Any]]:
        """Connect and send ``hello``; return the session and its ``welcome``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout
        async with asyncio.timeout_at(deadline):
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self._ssl, limit=_READ_CHUNK
            )
        session = _Session(reader, writer, self._sessions + 1, self._max_server_frame)
        try:
            hello: dict[str, Any] = {
                "type": "hello",
                "proto": PROTO,
                "nick": self._requested_nick,
                "device": self.device,
                "client": self.client_name,
            }
            if self.password is not None:
                hello["password"] = self.password
            session.send(hello)
            while True:
                frame = await session.recv(max(deadline - loop.time(), 0.01))
                kind = frame["type"]
                if kind == "welcome":
                    return session, frame
                if kind == "error":
                    raise error_from_frame(frame)
                if kind == "ping":
                    session.send(_with_ref({"type": "pong"}, frame))
        except BaseException:
            session.close()
            raise

    def _start_session(self, session: _Session, welcome: Mapping[str, Any]) -> Welcome:
        resumed = self._sessions > 0
        self._sessions += 1
        old_rooms = set(self.state.rooms)
        rooms = welcome.get("rooms")
        room_list = [r for r in rooms if isinstance(r, str)] if isinstance(rooms, list) else []
        nick = welcome.get("nick")
        server = welcome.get("server")
        server = server if isinstance(server, dict) else {}
        motd = welcome.get("motd")
        account = welcome.get("account") is True
        settings = welcome.get("settings")
        on = settings.get("receipts") if isinstance(settings, dict) else None
        self.receipts_on = on if isinstance(on, bool) else None
        self.state.welcome(
            nick if isinstance(nick, str) else self._requested_nick, account, room_list
        )
        session.logged_in = True
        self._session = session
        self._ready.set()
        event = Welcome(
            nick=self.state.nick,
            account=account,
            rooms=tuple(sorted(self.state.rooms)),
            motd=motd if isinstance(motd, str) else "",
            server_name=str(server.get("name", "")),
            server_version=str(server.get("version", "")),
            resumed=resumed,
            receipts=self.receipts_on,
        )
        self._emit(event)
        self._emit(Status("connected", queued=len(self._outbox)))
        if resumed and not account:
            # A guest's rooms end with its session (protocol v1 §4): take them back,
            # before the outbox is resent (replies come in order of requests).
            for room in sorted(old_rooms - self.state.rooms):
                self._ref += 1
                session.send({"type": "join", "room": room, "ref": f"j{self._ref}"})
                self.state.joined(room)
        return event

    async def _supervise(self, session: _Session) -> None:
        """Read the session; when it ends, reconnect until closed or refused for good."""
        current: _Session | None = session
        while current is not None:
            reason = "connection lost"
            try:
                await self._read_loop(current)
                reason = "the server said bye"
            except (OSError, NotConnected, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
            finally:
                self._lost(current)
            if self._closing:
                return
            log.info("%s: %s; reconnecting", self.state.nick, reason)
            current = await self._reconnect(reason)
        if not self._closing:
            # Refused for good while reconnecting (e.g. the password was changed).
            await self._shutdown(self._final_error)

    def _lost(self, session: _Session) -> None:
        session.close()
        if self._session is session:
            self._session = None
        self._ready.clear()
        self._fail_requests(NotConnected("the connection was lost"))
        self._outbox.retry_all()

    async def _reconnect(self, reason: str) -> _Session | None:
        delay = self._reconnect_min
        while not self._closing:
            wait = delay / 2 + self._rng.uniform(0, delay / 2)
            self._emit(
                Status("reconnecting", retry_in=wait, queued=len(self._outbox), error=reason)
            )
            await asyncio.sleep(wait)
            delay = min(delay * 2, self._reconnect_max)
            try:
                session, welcome = await self._login()
            except ChatError as exc:
                if exc.code not in _TRANSIENT_LOGIN:
                    log.warning("%s: login refused (%s); giving up", self.state.nick, exc.code)
                    self._final_error = f"{exc.code}: {exc.message}"
                    return None
                if isinstance(exc, RateLimited):
                    delay = max(delay, exc.retry_after)
                reason = f"{exc.code}: {exc.message}"
                continue
            except ssl_module.SSLCertVerificationError as exc:
                # The certificate changed (or no longer verifies): waiting will
                # not make it trustworthy, and retrying would only keep knocking.
                why = _reason(exc)
                log.warning("%s: TLS certificate refused; giving up: %s", self.state.nick, why)
                self._final_error = f"TLS certificate refused: {why}"
                self._cert_refused = True
                return None
            except (OSError, NotConnected, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
                continue
            if self._closing:
                session.close()
                return None
            self._start_session(session, welcome)
            return session
        return None

    async def _read_loop(self, session: _Session) -> None:
        while not session.bye:
            try:
                frame = await session.recv(self._keepalive)
            except TimeoutError:
                # Silence: make sure the server is still there.
                session.send({"type": "ping", "ref": "keepalive"})
                try:
                    frame = await session.recv(self._keepalive_timeout)
                except TimeoutError:
                    raise NotConnected("the server stopped answering") from None
            self._dispatch(session, frame)

    def _dispatch(self, session: _Session, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        handler = self._HANDLERS.get(kind)
        if handler is not None:
            handler(self, session, frame)
            return
        ref = frame.get("ref")
        fut = self._requests.get(ref) if isinstance(ref, str) else None
        if fut is not None and not fut.done():
            fut.set_result(frame)

    def _on_message_frame(self, session: _Session, frame: dict[str, Any]) -> None:
        message = Message.from_frame(frame, self.state.nick)
        if message is None or not self.state.add(message):
            return
        if message.own and message.cid is not None and message.cid in self._outbox:
            # Our own copy of a message stored before its ack reached us (a
            # backlog after a lost connection): it is sent, no resend needed.
            sent = Sent(message.cid, message.id, message.ts)
            self._finish(message.cid, sent)
            self._emit(sent)
        self._emit(message)

    def _on_change_frame(self, session: _Session, frame: dict[str, Any]) -> None:
        change = Changed.from_frame(frame)
        if change is not None:
            self.state.apply(change)
            self._emit(change)

    def _on_read(self, session: _Session, frame: dict[str, Any]) -> None:
        if isinstance(frame.get("ref"), str):  # not sent as a reply: those are "ok"
            return
        upto, room, with_ = frame.get("upto"), frame.get("room"), frame.get("with")
        if not isinstance(upto, int) or isinstance(upto, bool) or upto < 1:
            return
        if isinstance(room, str):
            self.state.read_upto(Conversation.room(room), upto)
            self._emit(ReadMarker(upto, room=room))
        elif isinstance(with_, str):
            self.state.read_upto(Conversation.dm(with_), upto)
            self._emit(ReadMarker(upto, with_=with_))

    def _on_receipt(self, session: _Session, frame: dict[str, Any]) -> None:
        with_, upto, state = frame.get("with"), frame.get("upto"), frame.get("state")
        if not isinstance(with_, str) or not isinstance(upto, int) or isinstance(upto, bool):
            return
        if state == "delivered":
            self.state.receipt(with_, delivered=upto)
            self._emit(Receipt(with_, upto, "delivered"))
        elif state == "read":
            self.state.receipt(with_, read=upto)
            self._emit(Receipt(with_, upto, "read"))

    def _on_settings(self, session: _Session, frame: dict[str, Any]) -> None:
        on = frame.get("receipts")
        if not isinstance(on, bool):
            return
        ref = frame.get("ref")
        fut = self._requests.get(ref) if isinstance(ref, str) else None
        if fut is not None:
            if not fut.done():
                fut.set_result(frame)
            return
        self.receipts_on = on  # changed on another device
        self._emit(SettingsChanged(on))

    def _on_ack_frame(self, session: _Session, frame: dict[str, Any]) -> None:
        self._on_ack(frame)

    def _on_error_frame(self, session: _Session, frame: dict[str, Any]) -> None:
        error = error_from_frame(frame)
        ref = frame.get("ref")
        if isinstance(ref, str):
            fut = self._requests.get(ref)
            if fut is not None:
                if not fut.done():
                    fut.set_exception(error)
                return
            if ref in self._outbox:
                self._on_send_error(ref, error)
                return
            if ref.startswith("j"):
                return  # a rejoin after a reconnect; the room may be gone, fine
        self._emit(ErrorReceived(error))

    def _on_caught_up(self, session: _Session, frame: dict[str, Any]) -> None:
        session.caught_up = True
        rooms, dms = frame.get("rooms"), frame.get("dms")
        missed, mentions = frame.get("missed"), frame.get("mentions")
        raw = frame.get("receipts")
        stored = {
            nick: state
            for nick, value in (raw.items() if isinstance(raw, dict) else ())
            if isinstance(nick, str) and nick.startswith("@")
            if (state := _receipt_state(value)) is not None
        }
        markers = _counts(frame.get("markers"))  # issue 15: where the account read
        for key, upto in markers.items():
            conv = Conversation.dm(key[1:]) if key.startswith("@") else Conversation.room(key)
            self.state.read_upto(conv, upto)
        self._emit(
            CaughtUp(
                missed=missed if isinstance(missed, int) else 0,
                rooms=_counts(rooms),
                dms=_counts(dms),
                truncated=frame.get("truncated") is True,
                resumed=session.number > 1,
                unread=_counts(frame.get("unread")),
                mentions=mentions if isinstance(mentions, int) and mentions > 0 else 0,
                receipts={nick[1:]: state for nick, state in stored.items()},
                markers=markers,
            )
        )
        for nick, state in stored.items():
            self._stored_receipts(nick[1:], state)
        self._flush_seen()
        self._pump()

    def _on_ping(self, session: _Session, frame: dict[str, Any]) -> None:
        session.send(_with_ref({"type": "pong"}, frame))

    def _on_presence(self, session: _Session, frame: dict[str, Any]) -> None:
        room, nick, event = frame.get("room"), frame.get("nick"), frame.get("event")
        new = frame.get("new")
        if event == "nick" and isinstance(nick, str) and isinstance(new, str):  # ircmsg
            self._emit(Renamed(nick, new))
            return
        if not (isinstance(room, str) and isinstance(nick, str)):
            return
        if event == "join":
            if self.state.is_me(nick):
                self.state.joined(room)
            self._emit(Presence(room, nick, "join"))
        elif event == "leave":
            # Our own "leave" comes when another device leaves the room (the
            # membership belongs to the account), not when our last session ends.
            if self.state.is_me(nick):
                self.state.left(room)
            self._emit(Presence(room, nick, "leave"))
        elif "by" in frame:  # §8 moderation: kick, ban, mute… with who and why
            self._on_moderated(session, frame)

    def _on_typing(self, session: _Session, frame: dict[str, Any]) -> None:
        sender, room, to = frame.get("from"), frame.get("room"), frame.get("to")
        if isinstance(sender, str) and (isinstance(room, str) or isinstance(to, str)):
            self._emit(
                Typing(
                    sender,
                    room if isinstance(room, str) else None,
                    to if isinstance(to, str) and not isinstance(room, str) else None,
                )
            )

    def _on_away(self, session: _Session, frame: dict[str, Any]) -> None:
        nick, message = frame.get("nick"), frame.get("message")
        if isinstance(nick, str):
            self._emit(AwayChanged(nick, message if isinstance(message, str) else None))

    def _on_bye(self, session: _Session, frame: dict[str, Any]) -> None:
        session.bye = True

    def _on_pong(self, session: _Session, frame: dict[str, Any]) -> None:
        ref = frame.get("ref")
        fut = self._requests.get(ref) if isinstance(ref, str) else None
        if fut is not None and not fut.done():
            fut.set_result(frame)

    _HANDLERS: Final[dict[str, Callable[[ChatClient, _Session, dict[str, Any]], None]]] = {
        "message": _on_message_frame,
        "ack": _on_ack_frame,
        "error": _on_error_frame,
        "caught_up": _on_caught_up,
        "ping": _on_ping,
        "pong": _on_pong,
        "presence": _on_presence,
        "typing": _on_typing,
        "bye": _on_bye,
        "edited": _on_change_frame,
        "deleted": _on_change_frame,
        "reacted": _on_change_frame,
        "read": _on_read,
        "receipt": _on_receipt,
        "settings": _on_settings,
        "room_info": _on_room_info,
        "away": _on_away,
    }


async def speaks_tls(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether ``host:port`` completes a TLS handshake (nothing is sent after it).

    A plain client's hello to a TLS port is only met by a closed connection;
    this tells that apart from a server that is down or not chinwag.
    """
    probe = ssl_module.create_default_context()
    probe.check_hostname = False
    probe.verify_mode = ssl_module.CERT_NONE  # only asks whether TLS answers
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host, port, ssl=probe)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(1):
            await writer.wait_closed()
    return True


def _reason(exc: BaseException) -> str:
    """An exception's message in words (not the tuple asyncio may wrap its args in)."""
    args: tuple[object, ...] = exc.args
    while len(args) == 1 and isinstance(args[0], tuple):
        args = args[0]
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return str(exc) or type(exc).__name__


def _with_ref(frame: dict[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    ref = request.get("ref")
    if isinstance(ref, str):
        frame["ref"] = ref
    return frame


def _counts(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and v > 0}


def _receipt_state(value: object) -> tuple[int, int] | None:
    """``{"delivered":42,"read":40}`` (issue 15) as ``(42, 40)``; None if malformed."""
    if not isinstance(value, dict):
        return None
    delivered, read = value.get("delivered"), value.get("read")
    for v in (delivered, read):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            return None
    assert isinstance(delivered, int) and isinstance(read, int)
    return (delivered, read)
