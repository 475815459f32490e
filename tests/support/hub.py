"""The hub in-process: real parts, no sockets, tests that run in milliseconds.

`HubHarness.open` composes a hub the way ``Server._open`` (``server/app.py``)
does: a SQLite store in a real file under the test's ``tmp_path``, the local
bus, a real `PasswordHasher` (with cheap argon2 settings) and a `LoginThrottle`,
then ``load()`` and a task running ``run()``. Each `Client` talks to the hub
through the hub's public methods only (``login``, ``handle``, ``pipeline``,
``logout``) and receives through a `FakeOutlet`, a real implementation of
the `Outlet` protocol that keeps every frame as the dict a client would decode.

What the hub sends is turned into dicts in ONE place, `frame_dicts` (and the
refusals the connection would send, in `refusal`): when the hub's outgoing
frames change shape, re-point those two functions and nothing else.

Every wait is bounded (`WAIT`), and closing the harness ends every session,
stops the hub's task and closes the bus, the store and the hasher.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from chinwag.bus.local import LocalBus
from chinwag.config import Settings
from chinwag.core.accounts import LoginThrottle, PasswordHasher
from chinwag.core.hub import Frame, Hub, Session
from chinwag.errors import ChatError
from chinwag.protocol.events import Command, Error, Hello, Register
from chinwag.protocol.jsonlines import render
from chinwag.storage.base import AppendResult
from chinwag.storage.sqlite import SqliteStore

WAIT = 2.0  # seconds any one wait of the harness may take before the test fails
PASSWORD = "correct horse battery"

# Cheap argon2 (as tests/core/test_accounts.py): these tests are not about its cost.
FAST_HASHING: dict[str, Any] = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 64,
    "argon2_parallelism": 1,
    "hash_workers": 1,
}


# -- the one place that knows what the hub's outgoing frames look like -----------------


def frame_dicts(frame: Frame) -> list[dict[str, Any]]:
    """The frames a client decodes from what the hub handed its outlet.

    A `Frame` with ``parts`` stands for its parts in order. Each is encoded by
    the wire codec and decoded again, so a test sees exactly the JSON a client
    gets (and a frame that cannot be encoded fails the test).
    """
    frames = frame.parts or (frame,)
    return [json.loads(part.render(render)) for part in frames]


def refusal(exc: ChatError, ref: str | None) -> Frame:
    """The error frame the connection sends for a refused command or hello."""
    return Frame(Error.of(exc, ref))


# -- the transport double ----------------------------------------------------------------


class FakeOutlet:
    """An `Outlet` that keeps what it is sent, as dicts, in ``frames``.

    ``hold(when)`` makes the next paced frame matching ``when`` wait, once
    recorded, until ``release()``: a test can then act while a login is in the
    middle of its backlog (``wait_held()`` returns once it is).
    """

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.address = address
        self.frames: list[dict[str, Any]] = []
        self.closed: str | None = None  # why, once closed
        self._arrived = asyncio.Event()
        self._hold: Callable[[dict[str, Any]], bool] | None = None
        self._held = asyncio.Event()
        self._released = asyncio.Event()

    def _record(self, frame: Frame) -> list[dict[str, Any]]:
        got = frame_dicts(frame)
        self.frames.extend(got)
        self._arrived.set()
        return got

    def send(self, frame: Frame) -> None:
        if self.closed is None:  # as a connection: nothing is written after close
            self._record(frame)

    async def send_paced(self, frame: Frame) -> None:
        if self.closed is not None:
            raise ConnectionError("connection closed")
        got = self._record(frame)
        when = self._hold
        if when is not None and any(when(f) for f in got):
            self._hold = None
            self._held.set()
            async with asyncio.timeout(WAIT):
                await self._released.wait()

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason

    def hold(self, when: Callable[[dict[str, Any]], bool]) -> None:
        """Pause at the next paced frame for which ``when`` is true."""
        self._hold = when
        self._held.clear()
        self._released.clear()

    async def wait_held(self) -> None:
        async with asyncio.timeout(WAIT):
            await self._held.wait()

    def release(self) -> None:
        self._released.set()

    async def wait_arrival(self) -> None:
        """Wait until a frame arrives (bounded by `WAIT`)."""
        self._arrived.clear()
        async with asyncio.timeout(WAIT):
            await self._arrived.wait()


# -- a logged-in client --------------------------------------------------------------------


class Client:
    """One session of the hub, and the frames its connection would have written."""

    def __init__(self, harness: HubHarness, outlet: FakeOutlet, session: Session) -> None:
        self.harness = harness
        self.outlet = outlet
        self.session: Session | None = session
        self._read = 0  # frames before this index were returned by next() or unread()

    @property
    def frames(self) -> list[dict[str, Any]]:
        """Every frame received since the hello (welcome first)."""
        return self.outlet.frames

    async def send(self, cmd: Command) -> None:
        """Have the hub carry out ``cmd``; a refusal becomes the client's error frame."""
        assert self.session is not None, "logged out"
        try:
            await self.harness.hub.handle(self.session, cmd)
        except ChatError as exc:
            self.outlet.send(refusal(exc, cmd.ref))

    def pipeline(self, cmd: Command) -> asyncio.Future[AppendResult] | None:
        """``Hub.pipeline``: a refusal raises `ChatError` (the caller reports it)."""
        assert self.session is not None, "logged out"
        return self.harness.hub.pipeline(self.session, cmd)

    async def next(self, kind: str | None = None) -> dict[str, Any]:
        """The next frame not read yet (of type ``kind``: others are skipped)."""
        async with asyncio.timeout(WAIT):
            while True:
                while self._read < len(self.frames):
                    frame = self.frames[self._read]
                    self._read += 1
                    if kind is None or frame["type"] == kind:
                        return frame
                await self.outlet.wait_arrival()

    async def unread(self) -> list[dict[str, Any]]:
        """Every frame not read yet, once what is under way has been delivered."""
        await self.harness.settle()
        got = self.frames[self._read :]
        self._read = len(self.frames)
        return got

    async def logout(self, *, clean: bool = True) -> None:
        """End the session (``clean``: as after ``bye``, which moves the cursor)."""
        if self.session is not None:
            session, self.session = self.session, None
            await self.harness.hub.logout(session, clean=clean)


# -- the harness -------------------------------------------------------------------------------


class HubHarness:
    """A hub with its real store, bus and hasher; `open` it, and it cleans up."""

    def __init__(
        self,
        settings: Settings,
        store: SqliteStore,
        bus: LocalBus,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.hasher = PasswordHasher(settings)
        self.hub = Hub(settings, store, bus, self.hasher, LoginThrottle(settings), clock=clock)
        self.clients: list[Client] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, tmp_path: Path, clock: Callable[[], float] = time.time, **settings: Any
    ) -> AsyncIterator[HubHarness]:
        """A running hub whose database is ``tmp_path/chinwag.db``.

        Args:
            tmp_path: the test's directory.
            clock: the hub's wall clock (message timestamps, windows).
            settings: `Settings` fields to change (cheap argon2 is the default).
        """
        config = Settings(**{**FAST_HASHING, **settings})
        store = await SqliteStore.open(tmp_path / "chinwag.db", commit_delay=config.commit_delay)
        harness = cls(config, store, LocalBus(), clock)
        try:
            await harness.hub.load()
            harness._task = asyncio.create_task(harness.hub.run())
            await asyncio.sleep(0)  # the hub subscribes before anything is published
            yield harness
        finally:
            await harness._close()

    async def _close(self) -> None:
        for client in self.clients:
            if client.session is not None:
                await client.logout(clean=False)
        await self.bus.close()
        if self._task is not None:
            try:
                async with asyncio.timeout(WAIT):
                    await self._task
            finally:
                self._task.cancel()
        await self.store.close()
        self.hasher.close(wait=True)

    async def settle(self) -> None:
        """Let what was published reach every session.

        Once a command's ``handle`` (or its pipelined future) is done, its
        message is on the bus: the hub's task takes it in the next loop turn and
        fans it out in the turn after. No I/O is involved, so a few turns are enough.
        """
        for _ in range(8):
            await asyncio.sleep(0)

    async def login(
        self,
        nick: str,
        *,
        password: str | None = None,
        device: str = "default",
        outlet: FakeOutlet | None = None,
    ) -> Client:
        """Log in (``welcome`` ... ``caught_up`` are its first frames).

        Raises:
            ChatError: the hello is refused.
        """
        outlet = outlet or FakeOutlet()
        hello = Hello(proto=1, nick=nick, password=password, device=device)
        async with asyncio.timeout(WAIT):
            session = await self.hub.login(hello, outlet)
        client = Client(self, outlet, session)
        self.clients.append(client)
        return client

    async def refused(self, nick: str, **hello: Any) -> dict[str, Any]:
        """The error frame a hello for ``nick`` gets (the test fails if it is welcomed)."""
        outlet = FakeOutlet()
        try:
            await self.login(nick, outlet=outlet, **hello)
        except ChatError as exc:
            outlet.send(refusal(exc, None))
        else:
            raise AssertionError(f"the hello of {nick} was welcomed: {outlet.frames}")
        [error] = outlet.frames
        return error

    async def register(self, nick: str, password: str = PASSWORD) -> None:
        """Make ``nick`` an account, then log that session out cleanly."""
        client = await self.login(nick)
        await client.send(Register(password=password, ref="reg"))
        assert await client.next("ok") == {"type": "ok", "ref": "reg"}
        await client.logout()
