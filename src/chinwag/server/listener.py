"""The listening sockets and their accept loop.

asyncio's own accept loop (CPython 3.11, ``selector_events._accept_connection``)
does not stop when ``accept()`` fails with EMFILE: it goes on trying ``backlog``
times (4096 here) in the same turn, logging a traceback and scheduling one more
retry for each failure, every second while the process is out of descriptors
(issue 10: 100 % CPU and thousands of tracebacks a second). This one stops
accepting for ``accept_pause`` seconds, logs one line per incident, and resumes
by itself; connected clients are served on meanwhile, and new ones wait in the
kernel's backlog until descriptors free up.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Callable

log = logging.getLogger("chinwag.server")

_OUT_OF = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_BATCH = 128  # connections accepted per readiness, so that one flood cannot starve the loop


def peer_key(peername: object) -> str:
    """The "address" every per-address limit counts a peer under.

    An IPv4 address as it is (an IPv4-mapped IPv6 one as IPv4); an IPv6 address
    by its /64, since one host is routinely given a whole /64 and would
    otherwise be 2^64 addresses to every limit.
    """
    if not (isinstance(peername, tuple) and peername):
        return "?"
    host = str(peername[0])
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return host


async def bind(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening, non-blocking sockets for every address ``host`` resolves to.

    Raises:
        OSError: the address cannot be resolved or bound (e.g. the port is taken).
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned nothing")
    socks: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class Listener:
    """Accepts connections on ``socks`` and hands each to a protocol made by ``factory``."""

    def __init__(
        self,
        socks: list[socket.socket],
        factory: Callable[[], asyncio.Protocol],
        pause: float,
    ) -> None:
        self.sockets = socks
        self._factory = factory
        self._pause = pause
        self._loop = asyncio.get_running_loop()
        self._resting: set[int] = set()  # fds of sockets waiting for descriptors to free up
        self._incident = False  # out of descriptors since the last accept that worked
        self._closed = False
        self._starting: set[asyncio.Task[None]] = set()  # held until each transport is made

    def start(self) -> None:
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(_BATCH):
            try:
                conn, _address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while in the backlog
            except OSError as exc:
                if exc.errno in _OUT_OF:
                    self._rest(sock, exc)
                else:
                    log.warning("accepting a connection failed: %s", exc)
                return
            if self._incident:
                self._incident = False
                log.info("accepting connections again")
            conn.setblocking(False)
            task = self._loop.create_task(self._connect(conn))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except Exception:
            log.exception("setting up an accepted connection failed")
            conn.close()
        except BaseException:  # cancelled at shutdown: the socket is ours to close
            conn.close()
            raise

    def _rest(self, sock: socket.socket, exc: OSError) -> None:
        """Out of descriptors: stop accepting on ``sock`` for a while (logged once per incident)."""
        fd = sock.fileno()
        self._loop.remove_reader(fd)
        self._resting.add(fd)
        self._loop.call_later(self._pause, self._resume, sock)
        if not self._incident:
            self._incident = True
            fds = exc.errno in (errno.EMFILE, errno.ENFILE)
            log.warning(
                "out of %s (%s): not accepting new connections until some close (retrying "
                "every %g s; connected clients are served on). %s",
                "file descriptors" if fds else "kernel memory for sockets",
                exc.strerror,
                self._pause,
                "Raise the open-files limit (ulimit -n, LimitNOFILE in systemd) or lower "
                "max_conns_per_address."
                if fds
                else "Free memory on the host or lower max_conns_per_address.",
            )

    def _resume(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if self._closed or fd not in self._resting:
            return
        self._resting.discard(fd)
        self._loop.add_reader(fd, self._accept, sock)

    def close(self) -> None:
        """Stop accepting and close the listening sockets (connections live on)."""
        if self._closed:
            return
        self._closed = True
        for sock in self.sockets:
            if sock.fileno() not in self._resting:
                self._loop.remove_reader(sock.fileno())
            sock.close()
