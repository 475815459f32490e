"""The per-connection worker every transport shares: inbound items, in order, to the hub.

A transport (``connection.py`` for JSON lines) decodes bytes into items and feeds
them to its `SessionTask`; the task asks the connection's `SessionDriver` what
each one means and carries that out: replies and closes through the transport
(a `Link`), logins, commands and logouts through the hub. Consecutive messages
(``say``, and ``dm`` to someone online) are pipelined: up to `PIPELINE` of them
start without waiting for each commit (`Hub.pipeline`); the store commits them
in order and their acks go out in order; anything else, a refusal included,
waits until they are done. An idle session has no task: one is started when
items arrive (or when the connection ends) and ends when they are carried out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Protocol

from chinwag.core.driver import (
    BYE,
    ENDING,
    Close,
    Handle,
    LogIn,
    LogOut,
    Pipeline,
    Send,
    SessionDriver,
)
from chinwag.core.sessions import Frame, Outlet, Session
from chinwag.errors import ChatError, RateLimited
from chinwag.protocol.events import Bye, Command, Dm, Error, Hello, Incoming, Ping, Pong, Say
from chinwag.storage.base import StoreError

if TYPE_CHECKING:
    from chinwag.config import Settings
    from chinwag.core.driver import Action
    from chinwag.core.hub import Hub

log = logging.getLogger("chinwag.conn")

INBOX_HIGH = 64  # queued items before the transport stops reading
INBOX_LOW = 16  # ...and below which it reads again
PIPELINE = 32  # messages of one connection in flight (queued for commit) at once


class Link(Outlet, Protocol):
    """What a session needs of its transport, beyond what the hub needs (`Outlet`)."""

    @property
    def closing(self) -> bool:
        """The link is closing (asked to, cut off, or lost): nothing more gets through."""

    @property
    def input_ended(self) -> bool:
        """No more input will come (the peer's FIN, or the link is closing)."""

    def pause_reading(self) -> None:
        """Stop reading input: the inbox is full (called again while it stays full)."""

    def resume_reading(self) -> None:
        """Read input again, if reading was paused."""

    def ended(self) -> None:
        """The session is over (logged out, the close under way): release the connection."""


def reply_frame(event: ChatError | Ping | Pong | Bye, ref: str | None) -> Frame:
    """The frame of a reply the driver asked for."""
    if isinstance(event, ChatError):
        return Frame(Error.of(event, ref))
    return Frame(event if event.ref == ref else type(event)(ref=ref))


class SessionTask:
    """One connection's session: its driver, its inbox and, while there is work, its worker."""

    __slots__ = (
        "_finished",
        "_hub",
        "_in_flight",
        "_in_flight_bytes",
        "_inbox",
        "_link",
        "_out_limit",
        "_session",
        "_task",
        "_waiter",
        "driver",
    )

    def __init__(
        self,
        link: Link,
        hub: Hub,
        settings: Settings,
        now: float,
    ) -> None:
        self._link = link
        self._hub = hub
        self.driver = SessionDriver(settings, now)
        self._out_limit = settings.out_buffer_limit
        # A plain list and a future made only while the worker waits: an idle
        # connection is thousands of these, and a deque or an Event costs ~0.7 KiB.
        self._inbox: list[Incoming] = []
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None  # the worker, while there is work
        self._session: Session | None = None
        self._finished = False
        self._in_flight = 0  # pipelined messages not committed yet
        self._in_flight_bytes = 0  # a bound on the size of their copies to this client

    # -- what the transport tells the session -------------------------------------------
    def feed(self, items: list[Incoming], now: float) -> None:
        """Whole frames arrived: queue them, and stop reading while too many wait."""
        self.driver.frames_arrived(now)
        self._inbox.extend(items)
        self._kick()
        if len(self._inbox) > INBOX_HIGH:
            self._link.pause_reading()

    def input_ended(self) -> None:
        """The peer sent its last byte: carry out what came, then finish."""
        self._kick()

    def closed(self) -> None:
        """The link is closing (for any reason): stop, log out and finish."""
        self.driver.closed()
        self._kick()

    def tick(self, now: float) -> None:
        """Enforce the driver's deadlines at ``now`` (the server's sweep)."""
        action = self.driver.tick(now)
        if type(action) is Send:
            self._link.send(reply_frame(action.event, action.ref))
        elif type(action) is Close:
            self._close(action)

    async def stop(self, grace: float) -> None:
        """Shutdown: finish the command in progress, say bye, close (within ``grace`` s)."""
        self.driver.stop()
        self._kick()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=grace)

    # -- the worker -------------------------------------------------------------------
    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _kick(self) -> None:
        """Wake the worker, or start one: items came, or the session is ending."""
        if self._waiter is not None:
            self._wake()
        elif self._task is None and not self._finished:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        """Carry out the inbox; end when it is empty, or finish the session."""
        driver = self.driver
        inbox = self._inbox
        try:
            while inbox and driver.phase < ENDING:
                item = inbox.pop(0)
                if len(inbox) == INBOX_LOW - 1:  # passed on the way down from INBOX_HIGH
                    self._link.resume_reading()
                action = driver.receive(item)
                if type(action) is Pipeline:
                    started = self._start(action.message)
                    if started is None:
                        if self._pipeline_full():
                            await self._settle(until_room=True)
                        continue
                    action = started
                if self._in_flight:
                    # A close the driver asked for waits too: the acks go out first.
                    await self._settle()
                    if self._link.closing:
                        break
                await self._carry_out(action)
        except Exception:
            log.exception("%s: connection failed", self._link)
            self._link.close("internal error")
        if not self._link.input_ended and driver.phase < ENDING:
            self._task = None  # idle: the next items start a new worker
            return
        await self._finish()

    async def _finish(self) -> None:
        """The session ends: acks still due, logout, bye, close, release (once)."""
        if self._finished:
            return
        self._finished = True
        if self._in_flight and not self._link.closing:
            # Their acks go out before bye, or before the close after the peer's FIN.
            await self._settle()
        if self._session is not None:
            session, self._session = self._session, None
            try:
                await self._hub.logout(session, clean=False)
            except Exception:
                log.exception("%s: logout failed", self._link)
        end = self.driver.finish()
        if end is not None:
            self._close(end)
        self._link.ended()

    def _close(self, action: Close) -> None:
        if action.last is not None:
            self._link.send(reply_frame(action.last, action.ref))
        self._link.close(action.reason)

    async def _carry_out(self, action: Action) -> None:
        match action:
            case Send(event, ref):
                self._link.send(reply_frame(event, ref))
            case Close():
                self._close(action)
            case Handle(command):
                await self._handle(command)
            case LogIn(hello):
                await self._log_in(hello)
            case LogOut(ref):
                if self._session is not None:
                    session, self._session = self._session, None
                    await self._hub.logout(session, clean=True)
                self._link.send(reply_frame(BYE, ref))
                self._link.close("bye")
            case _:  # Ignore
                pass

    # -- pipelined messages ----------------------------------------------------------------
    def _start(self, message: Say | Dm) -> Send | Handle | None:
        """Pipeline a message (None); or the refusal to report, or `Handle` it in turn.

        A refusal is reported as it is, after the messages ahead of it settle:
        its checks ran once, here.
        """
        session = self._session
        assert session is not None
        try:
            future = self._hub.pipeline(session, message)
        except Exception as exc:
            return Send(self._refusal(exc, message), message.ref)
        if future is None:
            return Handle(message)
        # Each message comes back to this client (its own copy): bound what can
        # arrive at once, so a client that reads is not cut off for sending fast.
        size = 4 * len(message.body) + 256
        self._in_flight += 1
        self._in_flight_bytes += size
        future.add_done_callback(functools.partial(self._committed, size))
        return None

    def _committed(self, size: int, _future: object) -> None:
        self._in_flight -= 1
        self._in_flight_bytes -= size
        self._wake()  # the worker may be settling

    def _pipeline_full(self) -> bool:
        return self._in_flight >= PIPELINE or self._in_flight_bytes > self._out_limit // 4

    async def _settle(self, *, until_room: bool = False) -> None:
        """Wait until no pipelined message is in flight (or, ``until_room``, one more fits)."""
        try:
            while self._in_flight and not self._link.closing:
                if until_room and not self._pipeline_full():
                    break
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
        finally:
            self._waiter = None

    # -- the hub ------------------------------------------------------------------------
    def _refusal(self, exc: Exception, command: Command) -> ChatError:
        """What to tell the client about a command that raised ``exc``."""
        if isinstance(exc, ChatError):
            if isinstance(exc, RateLimited) and self._hub.counts.on:
                self._hub.counts.rate_limited += 1
            return exc
        if not isinstance(exc, StoreError):  # the store logs its own, once per incident
            log.error("%s: %s failed", self._link, type(command).__name__, exc_info=exc)
        return ChatError()

    async def _handle(self, command: Command) -> None:
        session = self._session
        assert session is not None
        try:
            await self._hub.handle(session, command)
        except Exception as exc:
            self._link.send(reply_frame(self._refusal(exc, command), command.ref))

    async def _log_in(self, hello: Hello) -> None:
        driver = self.driver
        try:
            session = await self._hub.login(hello, self._link)
        except ConnectionError:
            return  # the connection closed during the login (the driver knows)
        except Exception as exc:
            refused = isinstance(exc, ChatError)
            answer = driver.login_failed(self._refusal(exc, hello), hello.ref, refused=refused)
            if isinstance(answer, Close):
                self._close(answer)
            else:
                self._link.send(reply_frame(answer.event, answer.ref))
            return
        if not driver.logged_in():
            await self._hub.logout(session, clean=False)
            return
        self._session = session
        p = session.principal
        log.debug(
            "%s logged in as %s (%s, device %s)",
            self._link,
            p.nick,
            "account" if p.account else "guest",
            session.device,
        )
