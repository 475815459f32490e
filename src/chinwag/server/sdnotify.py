"""systemd's readiness and watchdog protocol (``Type=notify``), with the stdlib alone.

systemd passes ``NOTIFY_SOCKET`` (a Unix datagram socket; a leading ``@``
means the abstract namespace) and, with ``WatchdogSec=``, ``WATCHDOG_USEC``.
The server sends ``READY=1`` once it listens, ``WATCHDOG=1`` every half of the
watchdog interval from its event loop (a loop that hangs stops the pings, and
systemd restarts the server), and ``STOPPING=1`` at shutdown. Without
``NOTIFY_SOCKET`` (not run by systemd) nothing is sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chinwag.server.app import Server

log = logging.getLogger("chinwag.server")


class SystemdNotifier:
    """A `Service` that tells systemd the server is ready, alive, then stopping.

    Args:
        address: ``NOTIFY_SOCKET``.
        watchdog: seconds between two ``WATCHDOG=1`` (half of systemd's
            interval), or None without a watchdog.
    """

    def __init__(self, address: str, watchdog: float | None) -> None:
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._watchdog = watchdog
        self._timer: asyncio.TimerHandle | None = None
        self._failed = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> SystemdNotifier | None:
        """The notifier systemd asks for in ``environ``; None when not run by systemd."""
        address = environ.get("NOTIFY_SOCKET", "")
        if not address:
            return None
        watchdog = None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog = int(usec) / 2_000_000
        return cls(address, watchdog)

    def send(self, state: str) -> None:
        """Send one notification; a failure is logged once, never raised."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(state.encode())
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("cannot notify systemd on %s: %s", self._address, exc.strerror)

    async def start(self, server: Server) -> None:
        host, port = server.address
        self.send(f"READY=1\nSTATUS=listening on {host}:{port}")
        if self._watchdog is not None:
            self._ping(asyncio.get_running_loop(), self._watchdog)

    def _ping(self, loop: asyncio.AbstractEventLoop, every: float) -> None:
        self.send("WATCHDOG=1")
        self._timer = loop.call_later(every, self._ping, loop, every)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.send("STOPPING=1")
