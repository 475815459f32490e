"""Composition root of the server: Settings -> store, bus, hub, listeners."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import signal
import socket
import ssl as ssl_module
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from chinwag.bus.base import Bus
from chinwag.bus.local import LocalBus
from chinwag.config import ListenSpec, Settings
from chinwag.core.accounts import LoginThrottle, PasswordHasher
from chinwag.core.counts import Discard
from chinwag.core.hub import Hub
from chinwag.core.operator import AccountActions, ModerationActions
from chinwag.server.connection import Connection, Flusher
from chinwag.server.control import ControlServer, ControlUnusable
from chinwag.server.irc import IrcConnection
from chinwag.server.listener import Listener, bind
from chinwag.server.lock import DataDirLock
from chinwag.server.tlswire import Handshakes, TlsTransport
from chinwag.storage.base import Retention, Store, StoreError
from chinwag.storage.sqlite import SqliteStore

if TYPE_CHECKING:
    from chinwag.server.metrics import Metrics
    from chinwag.server.web import WebApp

log = logging.getLogger("chinwag.server")

DB_NAME = "chinwag.db"


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("chinwag", appauthor=False))


async def _open_store(settings: Settings, data_dir: Path) -> Store:
    """The server's store: SQLite in ``data_dir``, or the PostgreSQL of ``settings.store``."""
    if settings.store == "sqlite":
        return await SqliteStore.open(
            data_dir / DB_NAME,
            commit_delay=settings.commit_delay,
            durability=settings.durability,
            purge_interval=settings.dedupe_purge_interval,
            retention=retention_of(settings),
            retention_batch=settings.retention_batch,
            # With fsync, SQLite's own checkpoints measured better (docs/performance.md).
            checkpoint_bytes=(
                (settings.checkpoint_wal_bytes or None) if settings.durability == "os" else None
            ),
        )
    # Imported only here: a one-node server never loads asyncpg.
    from chinwag.storage.postgres import PostgresStore

    return await PostgresStore.open(
        settings.store,
        commit_delay=settings.commit_delay,
        command_timeout=settings.store_timeout,
        cid_ttl=settings.cid_ttl,
        purge_batch=settings.dedupe_purge_batch,
        purge_interval=settings.dedupe_purge_interval,
        retention=retention_of(settings),
        retention_batch=settings.retention_batch,
    )


def retention_of(settings: Settings) -> Retention:
    """How long the store keeps messages, from the retention settings (0 days: forever)."""
    return Retention(
        rooms=settings.room_retention_days or None,
        dms=settings.dm_retention_days or None,
        per_room=settings.room_retentions(),
    )


async def _open_bus(settings: Settings) -> Bus:
    """The bus: this process alone, or Redis at ``settings.bus`` for several nodes."""
    if settings.bus == "local":
        return LocalBus()
    from chinwag.bus.redis import RedisBus  # imported only here, as asyncpg is

    bus = RedisBus(
        settings.bus, stream_max=settings.bus_stream_max, retry_max=settings.bus_retry_max
    )
    await bus.start()
    return bus


async def open_store(data_dir: Path) -> SqliteStore:
    """The store of the data directory ``data_dir`` (for tools beside the server)."""
    return await SqliteStore.open(data_dir / DB_NAME)


class ListenError(Exception):
    """A listener cannot be bound; the message names it, says why and what to do."""

    def __init__(self, spec: ListenSpec, error: OSError) -> None:
        self.spec = spec
        self.error = error
        why = error.strerror or str(error)
        if isinstance(error, socket.gaierror):
            advice = "check the host name, or use an IP address"
        elif error.errno == errno.EADDRINUSE:
            advice = "another program (a server?) uses it: pick another port (--port, --listen)"
        elif error.errno == errno.EADDRNOTAVAIL:
            advice = "this machine has no such address: use one of its own, or 0.0.0.0"
        elif error.errno == errno.EACCES:
            advice = "ports below 1024 need privileges: pick a port from 1024 up"
        else:
            advice = "check the address and the port"
        super().__init__(f"cannot listen on {spec}: {why}; {advice}")


@dataclass(frozen=True, slots=True)
class BoundAddress:
    """One address a listener accepts connections on (a spec may resolve to several)."""

    spec: ListenSpec
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.spec.tls

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


async def _bind_all(specs: Sequence[ListenSpec]) -> list[tuple[ListenSpec, list[socket.socket]]]:
    """The listening sockets of every spec, in order; all or none.

    Raises:
        ListenError: a spec cannot be bound (those bound before it are closed).
    """
    bound: list[tuple[ListenSpec, list[socket.socket]]] = []
    try:
        for spec in specs:
            try:
                bound.append((spec, await bind(spec.host, spec.port, backlog=4096)))
            except OSError as exc:
                raise ListenError(spec, exc) from exc
    except BaseException:
        for _spec, socks in bound:
            for sock in socks:
                sock.close()
        raise
    return bound


def web_link(address: BoundAddress, host: str | None = None) -> str:
    """The web client's link on ``address``, or on ``host`` (a name of the machine) instead."""
    name = host or address.host
    bracketed = f"[{name}]" if ":" in name else name
    return f"{'https' if address.tls else 'http'}://{bracketed}:{address.port}/"


def web_links(address: BoundAddress) -> str:
    """Where a browser opens the web client: on a wildcard address, by this machine's name."""
    if address.host not in ("0.0.0.0", "::"):
        return web_link(address)
    here = "127.0.0.1" if address.host == "0.0.0.0" else "::1"
    return f"{web_link(address, socket.gethostname())} (on this machine: {web_link(address, here)})"


async def _bind_web(spec: ListenSpec) -> list[tuple[ListenSpec, list[socket.socket]]]:
    """The web client's listener beside the chat port (``http_port``): none if it cannot be bound.

    The chat port is the server's job; the web client on its default port is a
    convenience that another program (or a second server) may hold already.
    """
    try:
        return await _bind_all((spec,))
    except ListenError as exc:
        log.warning("%s; the web client is off until then (http_port=0 turns it off)", exc)
        return []


class Service(Protocol):
    """Something that runs beside a listening server (e.g. the mDNS announcement)."""

    async def start(self, server: Server) -> None:
        """Begin; called once the server listens. Must not block for long."""

    async def close(self) -> None:
        """Stop; called at shutdown. Must not raise."""


class Server:
    """A running chinwag server: its listeners, one hub, one store."""

    def __init__(self, settings: Settings, store: Store, hub: Hub, bus: Bus) -> None:
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self.store = store
        self.hub = hub
        self.bus = bus
        self.flusher = Flusher(self.loop)
        self._conns: set[Connection] = set()
        self._per_address: dict[str, int] = {}
        self._listeners: list[tuple[ListenSpec, Listener]] = []
        self.addresses: list[BoundAddress] = []
        """Every address the listeners accept on, listener by listener, in spec order."""
        self.tls = False
        """Whether the first listener (the one announced on the LAN) speaks TLS."""
        self._hub_task: asyncio.Task[None] | None = None
        self._hasher: PasswordHasher | None = None
        self._lock: DataDirLock | None = None  # the data dir's, held until shutdown
        self._control: ControlServer | None = None
        # One sweep for every connection's deadlines instead of timers per
        # connection; a deadline fires at most a tenth of its length late.
        shortest = min(settings.prelogin_timeout, settings.idle_timeout, settings.pong_timeout)
        self._sweep_every = min(max(shortest / 10, 0.02), 1.0)
        self._sweeper: asyncio.TimerHandle | None = None  # started once listening
        self._web: WebApp | None = None  # the http:// and https:// listeners, if any
        self._metrics: Metrics | None = None  # made at the first scrape
        self.monitoring_only = False
        """Whether the http:// listener is metrics_port's: monitoring, no web client."""

    def _sweep(self) -> None:
        self._sweeper = self.loop.call_later(self._sweep_every, self._sweep)
        now = self.loop.time()
        for conn in list(self._conns):
            try:
                conn.check_deadlines(now)
            except Exception:  # one connection's failure must not stop the sweep
                log.exception("checking the deadlines of %s failed", conn)

    @classmethod
    async def open(
        cls, settings: Settings, data_dir: Path, *, ssl: ssl_module.SSLContext | None = None
    ) -> Server:
        """Lock ``data_dir``, open its store and start every listener.

        The listeners are ``settings.listeners()``. When ``settings.listen`` is
        empty, its one listener of ``host``/``port`` speaks TLS exactly when
        ``ssl`` is given; otherwise the ``tls://`` listeners use ``ssl``. Without
        an HTTP listener, ``metrics_port`` (if set) serves the monitoring paths.

        Raises:
            DataDirError: another server (or ``chinwag admin``) is using ``data_dir``,
                or its lock file cannot be opened.
            ListenError: a listener cannot be bound (then none stays bound).
            ValueError: a ``tls://`` listener but no ``ssl`` context.
        """
        if settings.listen:
            specs = settings.listeners()
            if ssl is None and any(spec.tls for spec in specs):
                raise ValueError("a tls:// listener needs the TLS context (ssl=...)")
        else:
            base = ListenSpec("chinwag", ssl is not None, settings.host, settings.port)
            specs = (base, *settings.irc_listeners())
        await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        lock = DataDirLock.acquire(data_dir, "server")
        try:
            # Bound before the store is opened: a port in use fails fast, with
            # nothing else to undo; connections wait in the backlog meanwhile.
            bound = await _bind_all(specs)
            if not settings.listen and settings.http_port:
                bound += await _bind_web(
                    ListenSpec("http", ssl is not None, settings.host, settings.http_port)
                )
            monitoring_only = False
            if settings.metrics_port >= 0 and not any(s.protocol == "http" for s, _ in bound):
                # /metrics without a web client: on loopback unless metrics_public.
                host = settings.host if settings.metrics_public else "127.0.0.1"
                try:
                    bound += await _bind_all(
                        (ListenSpec("http", False, host, settings.metrics_port),)
                    )
                except BaseException:
                    for _spec, socks in bound:
                        for sock in socks:
                            sock.close()
                    raise
                monitoring_only = True
        except BaseException:
            lock.release()
            raise
        try:
            return await cls._open(settings, data_dir, ssl, lock, bound, monitoring_only)
        except BaseException:
            for _spec, socks in bound:
                for sock in socks:
                    sock.close()
            lock.release()
            raise

    @classmethod
    async def _open(
        cls,
        settings: Settings,
        data_dir: Path,
        ssl: ssl_module.SSLContext | None,
        lock: DataDirLock,
        bound: list[tuple[ListenSpec, list[socket.socket]]],
        monitoring_only: bool,
    ) -> Server:
        store = await _open_store(settings, data_dir)
        try:
            bus = await _open_bus(settings)
        except BaseException:
            await store.close()
            raise
        if not settings.metrics:  # nothing counted: the store's and bus's timers keep nothing
            store.commit_seconds = bus.lag_seconds = Discard()
        hasher = PasswordHasher(settings)
        hub = Hub(settings, store, bus, hasher, LoginThrottle(settings))
        await hub.load()
        server = cls(settings, store, hub, bus)
        server.monitoring_only = monitoring_only
        server._hasher = hasher
        server._lock = lock
        actions = AccountActions(settings, store, hasher, hub.end_sessions)
        try:
            server._control = await ControlServer.open(
                settings, actions, data_dir, ModerationActions(hub.moderation)
            )
        except ControlUnusable as exc:
            log.warning("%s; until then chinwag admin cannot reach this server", exc)
        server._hub_task = asyncio.create_task(hub.run())
        await asyncio.sleep(0)  # let the hub subscribe before anything is published
        # TLS in our own transport (tlswire): counted at accept, handshakes capped;
        # one count for every TLS listener, as the caps are the whole server's.
        handshakes = None
        if ssl is not None:
            handshakes = Handshakes(
                ssl,
                total=settings.tls_handshakes_max,
                per_address=settings.tls_handshakes_per_address,
                timeout=settings.tls_handshake_timeout,
            )

        def factory(spec: ListenSpec) -> Callable[[], asyncio.Protocol]:
            kind = IrcConnection if spec.protocol == "irc" else Connection
            if not spec.tls:
                return lambda: kind(server)
            assert handshakes is not None  # open() refuses a tls:// listener without ssl
            return lambda: TlsTransport(handshakes, kind(server))

        for spec, socks in bound:
            for sock in socks:
                host, port = sock.getsockname()[:2]
                server.addresses.append(BoundAddress(spec, str(host), int(port)))
            if spec.protocol == "http":
                if server._web is None:
                    from chinwag.server.web import WebApp  # aiohttp: only for a web listener

                    server._web = WebApp(
                        server,
                        server.not_ready,
                        server.metrics_page,
                        monitoring_only=monitoring_only,
                    )
                await server._web.start(socks, handshakes if spec.tls else None)
                continue
            listener = Listener(socks, factory(spec), settings.accept_pause)
            server._listeners.append((spec, listener))
            listener.start()
        server.tls = server._chat_address().tls
        server._sweep()
        return server

    def _chat_address(self) -> BoundAddress:
        """The first address that speaks the chat protocol itself (not a web listener's)."""
        return next((a for a in self.addresses if a.spec.protocol == "chinwag"), self.addresses[0])

    @property
    def address(self) -> tuple[str, int]:
        """The first chat listener's (first) address: the one announced on the LAN."""
        first = self._chat_address()
        return first.host, first.port

    def connections(self) -> dict[str, int]:
        """Open chat connections by transport (``json``, ``ws``, ``irc``), for ``/metrics``."""
        return dict(Counter(conn.transport_name for conn in self._conns))

    def metrics_page(self) -> bytes:
        """``/metrics``: every metric in the Prometheus text format, now."""
        if self._metrics is None:
            from chinwag.server.metrics import Metrics  # prometheus-client: only when scraped

            self._metrics = Metrics(self)
        return self._metrics.page()

    async def not_ready(self) -> str | None:
        """Why the server cannot take writes now (for ``/readyz``); None: it can.

        The bus must hear the other nodes (always so for one node), no message
        committed here may have waited over ``ready_lag_max`` seconds for its
        fan-out, and the store must commit an empty write within
        ``ready_timeout`` seconds.
        """
        trouble = self.bus.trouble()
        if trouble is not None:
            return (
                f"the bus between nodes is down ({trouble}): messages from other nodes do not"
                " arrive here; check that Redis runs at the bus setting's address"
            )
        lag, most = self.hub.counts.lag(time.monotonic()), self.settings.ready_lag_max
        if lag > most:
            return (
                f"a committed message has waited {lag:.1f} s for its fan-out (over ready_lag_max,"
                f" {most:g} s): the server is overloaded; check its CPU and the log"
            )
        timeout = self.settings.ready_timeout
        try:
            await asyncio.wait_for(self.store.probe(), timeout)
        except TimeoutError:
            return (
                f"the store did not commit a write within {timeout:g} s (another program"
                " holding the database's lock, or a slow disk?): check the server's log"
            )
        except StoreError as exc:
            return f"the store cannot write ({exc}): check the server's log and the disk"
        return None

    def admit(self, conn: Connection) -> bool:
        count = self._per_address.get(conn.address, 0)
        if count >= self.settings.max_conns_per_address:
            return False
        self._per_address[conn.address] = count + 1
        self._conns.add(conn)
        return True

    def forget(self, conn: Connection) -> None:
        if conn in self._conns:
            self._conns.discard(conn)
            left = self._per_address.get(conn.address, 1) - 1
            if left > 0:
                self._per_address[conn.address] = left
            else:
                self._per_address.pop(conn.address, None)

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight commands commit and ack, say bye, close."""
        for _spec, listener in self._listeners:
            listener.close()
        if self._control is not None:
            await self._control.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        conns = list(self._conns)
        if conns:
            await asyncio.gather(*(c.stop() for c in conns), return_exceptions=True)
        if self._web is not None:
            await self._web.close()
        await self.bus.close()
        if self._hub_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._hub_task, timeout=2)
        await self.store.close()
        if self._hasher is not None:
            self._hasher.close()
        if self._lock is not None:
            self._lock.release()
        if self._listeners:
            # Give closing transports one turn to hand their last bytes to the kernel.
            await asyncio.sleep(0)


async def serve(
    settings: Settings,
    data_dir: Path,
    *,
    ssl: ssl_module.SSLContext | None = None,
    services: Sequence[Service] = (),
) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly.

    Args:
        settings: the settings.
        data_dir: where the database is.
        ssl: the TLS context of the TLS listeners (see :meth:`Server.open`).
        services: started once the server listens, closed at shutdown.

    Raises:
        ListenError: a listener cannot be bound (none is left bound).
    """
    server = await Server.open(settings, data_dir, ssl=ssl)
    for address in server.addresses:
        if address.spec.protocol == "http":
            if server.monitoring_only:
                log.info("metrics: %smetrics (and /healthz, /readyz)", web_link(address))
            else:
                log.info("web client: open %s in a browser", web_links(address))
            continue
        log.info(
            "chinwag listening on %s%s (%s; data in %s)",
            address,
            " with TLS" if address.tls else "",
            address.spec,
            data_dir,
        )
    for service in services:
        await service.start(server)
    # Start-up's objects (modules, settings, the store: ~40,000) live as long
    # as the server. A full collection stops the event loop while it walks
    # every object: without this it walked them all each time (18-70 ms once
    # in a 1,000 msg/s run, docs/performance.md); frozen, they are skipped.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await asyncio.gather(server.shutdown(), *(s.close() for s in services))
        log.info("stopped")
