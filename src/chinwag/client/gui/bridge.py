"""The only meeting point of Tk and asyncio.

Tk is single-threaded and must stay on the main thread; the client library runs
on asyncio. :class:`AsyncBridge` runs an event loop in a daemon thread. The Tk
side hands it coroutines (:meth:`AsyncBridge.submit`, :meth:`AsyncBridge.call`);
the loop side hands back plain objects through a thread-safe queue
(:meth:`AsyncBridge.post`), which the Tk side drains with ``after()``. So no Tk
call ever happens off the main thread, and no network code runs on it: the
window cannot freeze on the network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import tkinter as tk
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

__all__ = ["AsyncBridge", "Outcome"]

T = TypeVar("T")

POLL_MS: Final = 25
"""How often Tk looks at the queue, in milliseconds."""
MAX_PER_POLL: Final = 500
"""Items handled per poll, so a flood of events cannot starve the window's redraws."""


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What a coroutine started with :meth:`AsyncBridge.call` came to."""

    value: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """Whether it returned (rather than raised)."""
        return self.error is None


@dataclass(frozen=True, slots=True)
class _Callback:
    fn: Callable[[Any], None]
    outcome: Outcome[Any]


class AsyncBridge:
    """An asyncio loop in a daemon thread; what it posts reaches Tk through a polled queue.

    Args:
        root: any Tk widget (its ``after`` drives the polling).
        on_event: called on the Tk thread with each object the loop side posts.
        poll_ms: the polling period.
    """

    def __init__(
        self,
        root: tk.Misc,
        on_event: Callable[[object], None],
        *,
        poll_ms: int = POLL_MS,
    ) -> None:
        self._root = root
        self._on_event = on_event
        self._poll_ms = poll_ms
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="chinwag-gui-network", daemon=True)
        self._closed = False
        self._after: str | None = None
        self._thread.start()
        self._after = self._root.after(self._poll_ms, self._drain)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The network loop (use it only through :meth:`submit` and :meth:`call`)."""
        return self._loop

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            # Let cancelled tasks finish their clean-up, then close the loop.
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    # --- loop side ---------------------------------------------------------------

    def post(self, item: object) -> None:
        """Hand an object to the Tk side (thread-safe; called on the loop thread)."""
        self._inbox.put(item)

    # --- Tk side -----------------------------------------------------------------

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run a coroutine on the network loop; returns at once."""
        if self._closed:
            coro.close()
            raise RuntimeError("the bridge is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(
        self, coro: Coroutine[Any, Any, T], on_done: Callable[[Outcome[T]], None]
    ) -> concurrent.futures.Future[None]:
        """Run a coroutine on the network loop; ``on_done`` gets its outcome on the Tk thread.

        The outcome is posted the moment the coroutine ends, through the same
        queue as everything else the loop side posts, so it reaches Tk in order
        with the events that coroutine caused.
        """

        async def run() -> None:
            try:
                value = await coro
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # handed to on_done, raised nowhere else
                self.post(_Callback(on_done, Outcome(error=exc)))
            else:
                self.post(_Callback(on_done, Outcome(value=value)))

        return self.submit(run())

    def drain(self) -> int:
        """Handle everything queued now (also done every ``poll_ms``); returns how many."""
        handled = 0
        while handled < MAX_PER_POLL:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            handled += 1
            if isinstance(item, _Callback):
                item.fn(item.outcome)
            else:
                self._on_event(item)
        return handled

    def _drain(self) -> None:
        self._after = None
        try:
            self.drain()
        finally:
            if not self._closed:
                # Come back at once if the queue was not emptied.
                delay = 1 if not self._inbox.empty() else self._poll_ms
                self._after = self._root.after(delay, self._drain)

    def close(self, timeout: float = 5.0) -> None:
        """Stop polling, stop the loop (cancelling what still runs) and join its thread."""
        if self._closed:
            return
        self._closed = True
        if self._after is not None:
            with contextlib.suppress(tk.TclError):
                self._root.after_cancel(self._after)
            self._after = None
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
