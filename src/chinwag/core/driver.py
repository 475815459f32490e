"""The session rules of the chat protocol, sans I/O: the same for every transport.

`SessionDriver` is state as data (h11's shape): a transport's session task feeds
it what arrives, in order, and carries out the `Action` it answers; the clock is
passed in (``now``, in seconds on any monotonic clock). It owns the phase rules
(only ``hello``, ``ping`` and ``bye`` before login), the pre-login frame limit,
the bad-frame and failed-hello limits, the login deadline, the idle ping and
its pong deadline, ``bye``, and which commands may be pipelined. It never
touches a socket, a task or the hub: replies are `ChatError`s (the refusal
vocabulary) or the `Ping`/`Pong`/`Bye` events, which the transport renders.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chinwag.errors import ChatError, NotLoggedIn
from chinwag.protocol.events import (
    Bye,
    Command,
    Dm,
    Dropped,
    Fatal,
    Hello,
    Incoming,
    Ping,
    Pong,
    Rejected,
    Say,
)

if TYPE_CHECKING:
    from chinwag.config import Settings


class Phase(enum.IntEnum):
    """Where a session is. Ordered: below `ENDING`, input is still carried out."""

    AWAITING_HELLO = 0  # nothing but hello, ping and bye is served
    LOGGING_IN = 1  # a hello is with the hub (`logged_in` or `login_failed` follows)
    ACTIVE = 2  # logged in: commands go to the hub
    ENDING = 3  # bye after login: the session is being logged out, then bye and close
    STOPPING = 4  # the server shuts down: what is in flight finishes, then bye and close
    CLOSED = 5  # a close is asked for (a `Close`) or under way: nothing more is carried out


# Looking a member up on an Enum class costs ~0.5 µs; these are read per frame.
AWAITING_HELLO, LOGGING_IN, ACTIVE = Phase.AWAITING_HELLO, Phase.LOGGING_IN, Phase.ACTIVE
ENDING, STOPPING, CLOSED = Phase.ENDING, Phase.STOPPING, Phase.CLOSED


@dataclass(frozen=True, slots=True)
class Send:
    """Reply with one frame; the session goes on. ``ref`` echoes the request's."""

    event: ChatError | Ping | Pong | Bye
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Close:
    """Send ``last`` (if any, with ``ref``), then close the connection for ``reason``."""

    reason: str
    last: ChatError | Bye | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class LogIn:
    """Hand this hello to the hub; then call `SessionDriver.logged_in` or `login_failed`."""

    hello: Hello


@dataclass(frozen=True, slots=True)
class Handle:
    """Hand this command to the hub, once everything pipelined before it is done."""

    command: Command


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A message that may start before those ahead of it are committed (`Hub.pipeline`).

    If the hub cannot pipeline it (it needs I/O first), it is handled as `Handle`.
    """

    message: Say | Dm


@dataclass(frozen=True, slots=True)
class LogOut:
    """``bye`` after login: log the session out cleanly, then send bye and close.
    ``quit``: the client's quit message (IRC ``QUIT :message``), '' for none."""

    ref: str | None = None
    quit: str = ""


@dataclass(frozen=True, slots=True)
class Ignore:
    """Nothing to do (a malformed ``typing``/``seen``/``pong``, or input after the end)."""


Action = Send | Close | LogIn | Handle | Pipeline | LogOut | Ignore

# The few replies every session shares: made once.
PING = Ping()
PONG = Pong()
BYE = Bye()
IGNORE = Ignore()
_ERRORS: dict[str, type[ChatError]] = {cls.code: cls for cls in ChatError.__subclasses__()}


def _wire_error(code: str, message: str) -> ChatError:
    """The `ChatError` a codec's ``Rejected``/``Fatal`` stands for (its code is one of ours)."""
    return _ERRORS[code](message)


class SessionDriver:
    """The rules of one session; a connection holds thousands, so it is small."""

    __slots__ = (
        "_bad_frames",
        "_born",
        "_failed_hellos",
        "_last_rx",
        "_ping_sent_at",
        "_prelogin_frames",
        "_settings",
        "phase",
    )

    def __init__(self, settings: Settings, now: float) -> None:
        """``now``: when the connection was accepted (the login deadline counts from it)."""
        self._settings = settings
        self.phase = AWAITING_HELLO
        self._born = self._last_rx = now
        self._ping_sent_at: float | None = None
        self._bad_frames = 0
        self._failed_hellos = 0
        self._prelogin_frames = 0

    # -- input --------------------------------------------------------------------------
    def frames_arrived(self, now: float) -> None:
        """Whole frames came in: the client is alive (dribbled bytes do not count)."""
        self._last_rx = now

    def receive(self, item: Incoming) -> Action:
        """What to do with the next inbound item, taken in arrival order.

        Needs no clock: activity counts when frames arrive (`frames_arrived`),
        not when they are carried out.
        """
        phase = self.phase
        if phase is ACTIVE:
            if type(item) is Say or type(item) is Dm:
                return Pipeline(item)
            if isinstance(item, Fatal | Dropped | Rejected):
                return self._refusal(item)
            if isinstance(item, Bye):
                self.phase = ENDING
                return LogOut(item.ref, item.reason or "")
            return Handle(item)
        if phase is not AWAITING_HELLO:
            # Ending, stopping or closed (or a second item while a hello is out,
            # which a session task never does): nothing more is carried out.
            return IGNORE
        if not isinstance(item, Fatal):
            # Every frame before login counts: refused, unknown and ignored ones too.
            self._prelogin_frames += 1
            if self._prelogin_frames > self._settings.prelogin_max_frames:
                return self._close(
                    "too many frames before login",
                    NotLoggedIn("too many frames before hello; connection closed"),
                )
        if isinstance(item, Fatal | Dropped | Rejected):
            return self._refusal(item)
        if isinstance(item, Hello):
            self.phase = LOGGING_IN
            return LogIn(item)
        if isinstance(item, Ping):
            return Send(PONG, item.ref)
        if isinstance(item, Bye):
            return self._close("bye", BYE, item.ref)
        return Send(NotLoggedIn(), item.ref)

    def _refusal(self, item: Fatal | Dropped | Rejected) -> Action:
        if isinstance(item, Fatal):
            return self._close(item.code, _wire_error(item.code, item.message))
        if isinstance(item, Dropped):
            return IGNORE
        error = _wire_error(item.code, item.message)
        if self.phase is AWAITING_HELLO and item.kind == "hello":
            return self._hello_failed(error, item.ref)
        if item.code == "bad_frame":
            self._bad_frames += 1
            if self._bad_frames >= self._settings.max_bad_frames:
                return self._close("too many bad frames", error, item.ref)
        return Send(error, item.ref)

    # -- what the hub made of a hello --------------------------------------------------
    def logged_in(self) -> bool:
        """The hub accepted the hello. False: the connection closed meanwhile; log out."""
        if self.phase is CLOSED:
            return False
        if self.phase is LOGGING_IN:
            self.phase = ACTIVE
        return True

    def login_failed(self, error: ChatError, ref: str | None, *, refused: bool) -> Send | Close:
        """The hello did not log in; tell the client ``error``.

        ``refused``: the hub refused it (bad password, nick taken...), which counts
        towards ``max_failed_hellos``; False: the server failed, not the client.
        """
        if self.phase is LOGGING_IN:
            self.phase = AWAITING_HELLO
        if refused:
            return self._hello_failed(error, ref)
        return Send(error, ref)

    def _hello_failed(self, error: ChatError, ref: str | None) -> Send | Close:
        self._failed_hellos += 1
        if self._failed_hellos >= self._settings.max_failed_hellos:
            return self._close("too many failed hellos", error, ref)
        return Send(error, ref)

    # -- time -------------------------------------------------------------------------
    def tick(self, now: float) -> Send | Close | None:
        """The deadlines at ``now``: the login deadline, the idle ping, the pong deadline."""
        phase = self.phase
        s = self._settings
        if phase is AWAITING_HELLO or phase is LOGGING_IN:
            if now >= self._born + s.prelogin_timeout:
                return self._close(
                    "pre-login deadline",
                    NotLoggedIn("you did not log in in time; connection closed"),
                )
            return None
        if phase is not ACTIVE:
            return None  # logging out or stopping: the end is already under way
        if self._ping_sent_at is not None and self._last_rx > self._ping_sent_at:
            self._ping_sent_at = None  # any frame after our ping answers it
        if self._ping_sent_at is not None:
            if now >= self._ping_sent_at + s.pong_timeout:
                return self._close("idle: no answer to ping")
        elif now >= self._last_rx + s.idle_timeout:
            self._ping_sent_at = now
            return Send(PING)
        return None

    # -- the end ------------------------------------------------------------------------
    def stop(self) -> None:
        """The server shuts down: carry out nothing more; `finish` says bye."""
        if self.phase < ENDING:
            self.phase = STOPPING

    def closed(self) -> None:
        """The connection is closing, for whatever reason: nothing more is carried out."""
        self.phase = CLOSED

    def finish(self) -> Close | None:
        """Input has ended or the server stops, and the session is over: how to close.

        None: the connection is already closing.
        """
        if self.phase is CLOSED:
            return None
        if self.phase is STOPPING:
            return self._close("server shutting down", BYE)
        return self._close("client closed")

    def _close(
        self, reason: str, last: ChatError | Bye | None = None, ref: str | None = None
    ) -> Close:
        self.phase = CLOSED
        return Close(reason, last, ref)
