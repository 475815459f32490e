"""The session rules, sans I/O: wire lines in, actions out, on a clock counted in ms.

Items come from the real JSON-lines codec, so each case reads as what a client
sent; the clock is whole milliseconds since the connection was accepted, so
every deadline is checked one millisecond before it and exactly at it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chinwag.config import Settings
from chinwag.core.driver import (
    BYE,
    PING,
    PONG,
    Close,
    Handle,
    Ignore,
    LogIn,
    LogOut,
    Phase,
    Pipeline,
    Send,
    SessionDriver,
)
from chinwag.errors import BadPassword, ChatError, ServerError
from chinwag.protocol.events import Command, Dm, Hello, Incoming, Say
from chinwag.protocol.jsonlines import ServerCodec

ACCEPTED = 1000.0  # the connection's accept time on the driver's clock (seconds)


def at(ms: int) -> float:
    """The driver's ``now`` ``ms`` milliseconds after the accept."""
    return ACCEPTED + ms / 1000


def items(*frames: dict[str, Any] | bytes) -> list[Incoming]:
    """What the JSON-lines codec makes of these frames (dicts) or raw lines (bytes)."""
    codec = ServerCodec(1024)
    data = b"".join(f if isinstance(f, bytes) else json.dumps(f).encode() + b"\n" for f in frames)
    return codec.receive_data(data)


def one(frame: dict[str, Any] | bytes) -> Incoming:
    (item,) = items(frame)
    return item


def phase(d: SessionDriver) -> Phase:
    """The driver's phase, read afresh (each call may change it)."""
    return d.phase


def driver(**settings: Any) -> SessionDriver:
    return SessionDriver(Settings(**settings), at(0))


def logged_in(**settings: Any) -> SessionDriver:
    d = driver(**settings)
    assert isinstance(d.receive(one({"type": "hello", "proto": 1, "nick": "ann"})), LogIn)
    assert d.logged_in()
    assert phase(d) is Phase.ACTIVE
    return d


def error_of(action: object) -> tuple[str, str | None]:
    """(code, ref) of the error an action sends."""
    assert isinstance(action, Send | Close), action
    event = action.event if isinstance(action, Send) else action.last
    assert isinstance(event, ChatError), action
    return event.code, action.ref


HELLO = {"type": "hello", "proto": 1, "nick": "ann", "ref": "h"}


# --- before login ---------------------------------------------------------------------


def test_before_login_only_hello_ping_and_bye_are_served() -> None:
    d = driver()
    assert phase(d) is Phase.AWAITING_HELLO
    assert error_of(d.receive(one({"type": "join", "room": "x", "ref": "j"}))) == (
        "not_logged_in",
        "j",
    )
    assert error_of(d.receive(one({"type": "say", "room": "lobby", "body": "hi", "ref": "s"}))) == (
        "not_logged_in",
        "s",
    )
    assert d.receive(one({"type": "ping", "ref": "p"})) == Send(PONG, "p")
    action = d.receive(one(HELLO))
    assert action == LogIn(Hello(proto=1, nick="ann", ref="h"))
    assert phase(d) is Phase.LOGGING_IN


def test_bye_before_login_says_bye_and_closes() -> None:
    d = driver()
    assert d.receive(one({"type": "bye", "ref": "b"})) == Close("bye", BYE, "b")
    assert phase(d) is Phase.CLOSED
    assert isinstance(d.receive(one({"type": "ping"})), Ignore)  # nothing after the end


@pytest.mark.parametrize("limit", [1, 3, 50])
def test_prelogin_max_frames_counts_every_frame_and_closes_on_the_next(limit: int) -> None:
    d = driver(prelogin_max_frames=limit)
    # Served, refused, unknown and silently dropped frames all count.
    kinds: list[dict[str, Any] | bytes] = [
        {"type": "ping"},
        {"type": "who", "room": "lobby"},
        {"type": "no-such-type"},
        {"type": "seen", "upto": "x"},
    ]
    for i in range(limit):
        assert not isinstance(d.receive(one(kinds[i % len(kinds)])), Close), i
    action = d.receive(one({"type": "ping", "ref": "over"}))
    assert isinstance(action, Close)
    assert action.reason == "too many frames before login"
    assert error_of(action) == ("not_logged_in", None)


def test_an_overlong_line_closes_at_once_and_is_not_counted_as_a_frame() -> None:
    d = driver(prelogin_max_frames=1)
    (fatal,) = items(b'{"type":"ping","pad":"' + b"x" * 2000 + b'"}\n')
    action = d.receive(fatal)
    assert isinstance(action, Close)
    assert action.reason == "frame_too_large"
    assert error_of(action) == ("frame_too_large", None)


def test_the_prelogin_limit_stops_counting_at_login() -> None:
    d = driver(prelogin_max_frames=2)
    d.receive(one({"type": "ping"}))
    assert isinstance(d.receive(one(HELLO)), LogIn)
    assert d.logged_in()
    for _ in range(5):
        assert isinstance(d.receive(one({"type": "ping"})), Handle)


# --- bad frames and failed hellos ---------------------------------------------------------


@pytest.mark.parametrize("log_in", [False, True], ids=["before-login", "after-login"])
def test_max_bad_frames_closes_on_the_last_one_with_its_error(log_in: bool) -> None:
    d = logged_in(max_bad_frames=3) if log_in else driver(max_bad_frames=3)
    for _ in range(2):
        assert error_of(d.receive(one(b"not json\n"))) == ("bad_frame", None)
    # Other refusals are not bad frames: they never count.
    assert error_of(d.receive(one({"type": "no-such-type", "ref": "u"}))) == ("unknown_type", "u")
    assert error_of(d.receive(one({"type": "who", "ref": "w"}))) == ("bad_request", "w")
    last = d.receive(one(b'{"ref": "r"}\n'))
    assert isinstance(last, Close)
    assert last.reason == "too many bad frames"
    assert error_of(last) == ("bad_frame", "r")


def test_max_failed_hellos_counts_refused_and_ill_formed_hellos() -> None:
    d = driver(max_failed_hellos=3)
    assert isinstance(d.receive(one(HELLO)), LogIn)
    refused = d.login_failed(BadPassword(), "h", refused=True)
    assert isinstance(refused, Send)
    assert error_of(refused) == ("bad_password", "h")
    assert phase(d) is Phase.AWAITING_HELLO
    # An ill-formed hello is a failed hello (not a bad frame).
    assert error_of(d.receive(one({"type": "hello", "proto": 1, "ref": "x"}))) == (
        "bad_request",
        "x",
    )
    # The server failing is not the client's fault: it does not count.
    d.receive(one(HELLO))
    assert error_of(d.login_failed(ServerError(), "h", refused=False)) == ("server_error", "h")
    d.receive(one(HELLO))
    last = d.login_failed(BadPassword(), "h", refused=True)
    assert isinstance(last, Close)
    assert last.reason == "too many failed hellos"
    assert error_of(last) == ("bad_password", "h")
    assert phase(d) is Phase.CLOSED


def test_a_login_that_ends_after_the_connection_closed_is_undone() -> None:
    d = driver()
    d.receive(one(HELLO))
    d.closed()
    assert d.logged_in() is False


# --- after login ---------------------------------------------------------------------


def test_only_say_and_dm_may_be_pipelined() -> None:
    d = logged_in()
    say = one({"type": "say", "room": "lobby", "body": "hi"})
    dm = one({"type": "dm", "to": "bob", "body": "hi"})
    assert d.receive(say) == Pipeline(Say(room="lobby", body="hi"))
    assert d.receive(dm) == Pipeline(Dm(to="bob", body="hi"))
    others: list[dict[str, Any]] = [
        {"type": "join", "room": "x"},
        {"type": "leave", "room": "x"},
        {"type": "who", "room": "x"},
        {"type": "rooms"},
        {"type": "history", "room": "x"},
        {"type": "seen", "upto": 1},
        {"type": "typing", "room": "x"},
        {"type": "ping"},
        {"type": "pong"},
        HELLO,
    ]
    for frame in others:
        command = one(frame)
        assert isinstance(command, Command), frame
        assert d.receive(command) == Handle(command), frame
    # A malformed typing/seen/pong is dropped without a reply.
    assert isinstance(d.receive(one({"type": "typing", "room": 5})), Ignore)


def test_bye_after_login_logs_out_and_nothing_after_it_is_carried_out() -> None:
    d = logged_in(prelogin_timeout=0.001)
    assert d.receive(one({"type": "bye", "ref": "b"})) == LogOut("b")
    assert phase(d) is Phase.ENDING
    assert isinstance(d.receive(one({"type": "say", "room": "lobby", "body": "x"})), Ignore)
    # Logging out takes time (a cursor commit): no login deadline, no ping meanwhile.
    assert d.tick(at(3_600_000)) is None
    d.stop()  # a shutdown now does not turn the bye into "server shutting down"
    assert phase(d) is Phase.ENDING


# --- deadlines -----------------------------------------------------------------------


@pytest.mark.parametrize("timeout_ms", [1, 250, 60_000])
def test_prelogin_timeout_closes_at_its_edge_even_while_logging_in(timeout_ms: int) -> None:
    d = driver(prelogin_timeout=timeout_ms / 1000)
    d.frames_arrived(at(timeout_ms - 1))  # activity does not extend the login deadline
    assert d.tick(at(timeout_ms - 1)) is None
    d.receive(one(HELLO))
    assert phase(d) is Phase.LOGGING_IN
    action = d.tick(at(timeout_ms))
    assert isinstance(action, Close)
    assert action.reason == "pre-login deadline"
    assert error_of(action) == ("not_logged_in", None)
    assert d.logged_in() is False  # the login it cut short is undone


def test_a_session_that_logged_in_has_no_login_deadline() -> None:
    d = logged_in(prelogin_timeout=1.0, idle_timeout=3600.0)
    assert d.tick(at(10_000)) is None


def test_idle_ping_then_pong_timeout_at_their_edges() -> None:
    d = logged_in(idle_timeout=2.0, pong_timeout=0.5)
    d.frames_arrived(at(1_000))
    assert d.tick(at(2_999)) is None
    assert d.tick(at(3_000)) == Send(PING)
    assert d.tick(at(3_001)) is None  # one ping per idle period
    assert d.tick(at(3_499)) is None
    action = d.tick(at(3_500))
    assert action == Close("idle: no answer to ping")
    assert phase(d) is Phase.CLOSED
    assert d.tick(at(100_000)) is None


def test_any_frame_after_the_ping_answers_it_and_the_next_ping_waits_a_full_period() -> None:
    d = logged_in(idle_timeout=2.0, pong_timeout=0.5)
    assert d.tick(at(2_000)) == Send(PING)
    d.frames_arrived(at(2_000))  # in the same millisecond as the ping: not after it
    assert d.tick(at(2_500)) == Close("idle: no answer to ping")

    d = logged_in(idle_timeout=2.0, pong_timeout=0.5)
    assert d.tick(at(2_000)) == Send(PING)
    d.frames_arrived(at(2_001))
    assert d.tick(at(2_500)) is None
    assert d.tick(at(4_000)) is None
    assert d.tick(at(4_001)) == Send(PING)


def test_no_ping_before_login() -> None:
    d = driver(idle_timeout=0.001, prelogin_timeout=60.0)
    assert d.tick(at(59_999)) is None


# --- the end -------------------------------------------------------------------------


def test_how_a_session_ends() -> None:
    d = logged_in()
    assert d.finish() == Close("client closed")  # the input ended

    d = logged_in()
    d.stop()
    assert phase(d) is Phase.STOPPING
    assert isinstance(d.receive(one({"type": "ping"})), Ignore)
    assert d.tick(at(10**9)) is None
    assert d.finish() == Close("server shutting down", BYE)

    d = logged_in()
    d.closed()
    assert d.finish() is None  # already closing: nothing more to send


def test_a_driver_is_small() -> None:
    # A server holds thousands of idle connections (docs/performance.md).
    d = driver()
    assert not hasattr(d, "__dict__")
