"""Harness for the desktop app's tests: a private Xvfb display, a Tk root, bounded waits.

The tests drive the real window from the test thread, which is Tk's main
thread: they type with widget methods and ``event_generate``, and pump Tk with
``root.update()`` in loops bounded by time. Library clients that play the other
people run on an asyncio loop in a thread of their own (:class:`LoopThread`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import os
import random
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
WAIT = 15.0
XVFB_ARGS = ("-screen", "0", "1280x1024x24", "-nolisten", "tcp")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


try:
    import tkinter  # noqa: F401
except ImportError:
    if _in_ci():
        raise  # CI must run these tests: scripts/test installs python3-tk
    collect_ignore_glob = ["test_*.py"]  # no Tk in this Python: nothing here can run


def _read_line(fd: int, timeout: float) -> str:
    """Read up to a newline (or EOF). Xvfb writes the number and the newline separately,
    and dies if the pipe is closed in between."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _start_xvfb(exe: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start Xvfb on a free display; returns the process and ``:N`` once it accepts clients.

    The number is picked at random far above the usual ones: Xvfb's own "first
    free number" search races with other test sessions on the same machine (a
    server that is shutting down can delete the socket of the next one).
    """
    rng = random.Random()
    for _ in range(20):
        number = rng.randrange(100, 30000)
        if Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists():
            continue
        read_fd, write_fd = os.pipe()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [exe, f":{number}", "-displayfd", str(write_fd), *XVFB_ARGS],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        os.close(write_fd)
        try:
            answer = _read_line(read_fd, 15.0)
        finally:
            os.close(read_fd)
        if answer == str(number) and proc.poll() is None:
            return proc, f":{number}"
        proc.kill()
        proc.wait(5)
    raise RuntimeError(f"Xvfb did not start:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def xvfb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start Xvfb on a free display for the session; DISPLAY points at it meanwhile."""
    exe = shutil.which("Xvfb")
    if exe is None:
        if _in_ci():
            pytest.fail("Xvfb is not installed; scripts/test installs it (apt-get install xvfb)")
        pytest.skip("Xvfb is not installed (apt-get install xvfb); the GUI tests need it")
    proc, display = _start_xvfb(exe, tmp_path_factory.mktemp("xvfb") / "xvfb.log")
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    try:
        yield display
    finally:
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def root(xvfb: str) -> Iterator[Any]:
    """A Tk root on the Xvfb display, destroyed at the end."""
    import tkinter as tk

    tk_root = tk.Tk(className="Chinwag")
    try:
        yield tk_root
    finally:
        with contextlib.suppress(tk.TclError):
            tk_root.destroy()
        # Free this root's widgets, fonts and images here, on the Tk thread: left to
        # the cycle collector, their __del__ could run on a later test's network
        # thread and wait forever for this dead interpreter.
        gc.collect()


def pump(root: Any, until: Callable[[], object], timeout: float = WAIT, what: str = "") -> Any:
    """Run Tk's event loop until ``until()`` is truthy (returned) or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        root.update()
        result = until()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or until}")
        time.sleep(0.01)


def settle(root: Any, seconds: float) -> None:
    """Keep the window running for ``seconds`` (for things that must *not* happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        root.update()
        time.sleep(0.01)


class LoopThread:
    """An asyncio loop in a thread, for the library clients that play other people."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(
        self, coro: Coroutine[Any, Any, T], root: Any | None = None, timeout: float = WAIT
    ) -> T:
        """Run a coroutine there and wait for it (keeping Tk alive meanwhile, if given)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return future.result(timeout=0.01)
            except concurrent.futures.TimeoutError:
                if time.monotonic() > deadline:
                    future.cancel()
                    raise AssertionError(f"timed out after {timeout} s") from None
                if root is not None:
                    root.update()

    def call(self, fn: Callable[[], T], root: Any | None = None) -> T:
        """Run a plain function on the loop (library methods such as ``say`` must be)."""

        async def run() -> T:
            return fn()

        return self.run(run(), root)

    def close(self) -> None:
        """Cancel what still runs (a failed test's clients), then stop the loop."""

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()


@pytest.fixture
def others() -> Iterator[LoopThread]:
    """A loop for library clients; stopped at the end."""
    loop = LoopThread()
    try:
        yield loop
    finally:
        loop.close()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The app's config directory (device id, gui.json), private to the test."""
    path = tmp_path / "gui-config"
    path.mkdir()
    return path
