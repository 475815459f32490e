"""LAN discovery with DNS-SD over multicast DNS (RFC 6762/6763), service ``_chinwag._tcp``.

A server announces one service instance, named ``SERVER_NAME on HOST``, with
its port, the addresses it can be reached at, and TXT keys:

========== ==============================================================
``name``    the server's name (setting ``server_name``)
``version`` the chinwag version
``proto``   protocol versions spoken (``1``)
``tls``     ``1`` when the port speaks TLS, else ``0``
``fp``      with TLS: the certificate's SHA-256 fingerprint (colon hex)
``reg``     registration mode: ``open``, ``invite`` or ``closed``
``users``   sessions online (checked every 5 s; re-announced when it changed)
========== ==============================================================

It announces on the interface of the address it listens on (``--host
127.0.0.1`` announces on loopback only), or on every interface for a wildcard
address. Anyone on the LAN can announce anything, so a client pins an
announced fingerprint only for a server it has never pinned (see
:mod:`chinwag.net.connect`); a changed certificate is refused either way.

The maintained ``zeroconf`` package does the mDNS work, on the running event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from chinwag import __version__
from chinwag.net.tls import format_fingerprint, parse_fingerprint

if TYPE_CHECKING:
    from zeroconf import ServiceStateChange, Zeroconf
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    from chinwag.server.app import Server

log = logging.getLogger("chinwag.discovery")

__all__ = ["SERVICE_TYPE", "Announcer", "FoundServer", "browse"]

SERVICE_TYPE: Final = "_chinwag._tcp.local."
PROTO: Final = "1"
_WILDCARDS: Final = frozenset({"", "0.0.0.0", "::"})


@dataclass(frozen=True, slots=True)
class FoundServer:
    """A server seen on the LAN.

    Attributes:
        instance: its DNS-SD instance name (``chinwag on alice-laptop``).
        name: its ``server_name``.
        host: the address to connect to (the first of ``addresses``).
        port: its port.
        addresses: every IPv4 address it announced.
        version: its chinwag version.
        proto: protocol versions it speaks (``"1"``).
        tls: whether the port speaks TLS.
        fingerprint: its certificate's fingerprint (with TLS), to pin.
        registration: ``open``, ``invite`` or ``closed`` (None: not said).
        users: sessions online (None: not said).
    """

    instance: str
    name: str
    host: str
    port: int
    addresses: tuple[str, ...]
    version: str
    proto: str
    tls: bool
    fingerprint: bytes | None
    registration: str | None
    users: int | None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``chinwag servers --json``); ``link`` is its invite link."""
        from chinwag.net.invites import Invite

        data = asdict(self)
        data["addresses"] = list(self.addresses)
        data["fingerprint"] = (
            format_fingerprint(self.fingerprint) if self.fingerprint is not None else None
        )
        data["link"] = Invite(self.host, self.port, self.fingerprint).link()
        return data


def _label(text: str, fallback: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return label or fallback


def _instance_name(server_name: str) -> str:
    host = socket.gethostname().split(".")[0] or "localhost"
    name = f"{server_name} on {host}".replace(".", "-")
    raw = name.encode("utf-8")[:63]  # one DNS label
    return raw.decode("utf-8", errors="ignore").strip() or "chinwag"


def _own_ipv4_addresses() -> list[str]:
    """This machine's IPv4 addresses, loopback last (only the interface list is read)."""
    import ifaddr

    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and ip.ip not in found:
                found.append(ip.ip)
    outside = [a for a in found if not ipaddress.IPv4Address(a).is_loopback]
    return outside or ["127.0.0.1"]


def _txt(props: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in props.items() if isinstance(k, str) and v is not None}


def _found(info: AsyncServiceInfo) -> FoundServer | None:
    from zeroconf import IPVersion

    txt = _txt(info.decoded_properties)
    addresses = tuple(info.parsed_addresses(IPVersion.V4Only))
    if not addresses or not info.port:
        return None
    fp: bytes | None = None
    if txt.get("fp"):
        with contextlib.suppress(ValueError):
            fp = parse_fingerprint(txt["fp"])
    users_text = txt.get("users", "")
    instance = info.name[: -len(SERVICE_TYPE) - 1] if info.name.endswith(SERVICE_TYPE) else ""
    return FoundServer(
        instance=instance or info.name,
        name=txt.get("name", instance),
        host=addresses[0],
        port=int(info.port),
        addresses=addresses,
        version=txt.get("version", "?"),
        proto=txt.get("proto", "?"),
        tls=txt.get("tls") == "1",
        fingerprint=fp,
        registration=txt.get("reg"),
        users=int(users_text) if users_text.isdigit() else None,
    )


async def browse(timeout: float = 2.0, *, interfaces: list[str] | None = None) -> list[FoundServer]:
    """The chinwag servers that answer on the LAN within ``timeout`` seconds.

    Args:
        timeout: how long to listen (answers usually come within 0.1-0.5 s;
            the rest catches slow responders).
        interfaces: IPv4 addresses of the interfaces to ask on; None: all.

    Returns:
        The servers found, sorted by name and address.
    """
    from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    names: set[str] = set()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            names.discard(name)
        else:
            names.add(name)

    azc = AsyncZeroconf(
        interfaces=interfaces if interfaces else InterfaceChoice.All,
        ip_version=IPVersion.V4Only,
    )
    try:
        browser = AsyncServiceBrowser(azc.zeroconf, [SERVICE_TYPE], handlers=[on_change])
        try:
            await asyncio.sleep(max(timeout, 0.1))
        finally:
            await browser.async_cancel()
        infos = [AsyncServiceInfo(SERVICE_TYPE, name) for name in sorted(names)]
        await asyncio.gather(*(info.async_request(azc.zeroconf, 1000) for info in infos))
    finally:
        await azc.async_close()
    found = [f for f in (_found(info) for info in infos) if f is not None]
    return sorted(found, key=lambda f: (f.name.lower(), f.instance, f.host, f.port))


class Announcer:
    """The server's mDNS announcement: a `chinwag.server.app.Service`.

    ``start`` returns at once; the announcement (probing for a unique name
    takes about a second) and the ``users`` refresh run in a task. A failure
    (say UDP port 5353 is not available) is logged, and the server runs on.

    Args:
        name: the server's name (``server_name``).
        fingerprint: the certificate's fingerprint when the port speaks TLS.
        registration: the registration mode, for the ``reg`` key.
        refresh: seconds between checks of the ``users`` count.
    """

    def __init__(
        self,
        *,
        name: str,
        fingerprint: bytes | None,
        registration: str,
        refresh: float = 5.0,
    ) -> None:
        # Imported now, before the server runs: importing takes ~0.1 s, which
        # would otherwise stall the event loop (and its clients) once it serves.
        import zeroconf.asyncio  # noqa: F401

        self._name = name
        self._fingerprint = fingerprint
        self._registration = registration
        self._refresh = refresh
        self._task: asyncio.Task[None] | None = None
        self._azc: AsyncZeroconf | None = None
        self.instance: str | None = None
        """The instance name registered (after a rename, if the name was taken)."""
        self.announced = asyncio.Event()

    async def start(self, server: Server) -> None:
        host, port = server.address
        self._task = asyncio.create_task(self._run(server, host, port), name="chinwag-announce")

    def _properties(self, users: int, tls: bool) -> dict[str, str]:
        props = {
            "name": self._name[:200],
            "version": __version__,
            "proto": PROTO,
            "tls": "1" if tls else "0",
            "reg": self._registration,
            "users": str(users),
        }
        if tls and self._fingerprint is not None:
            props["fp"] = format_fingerprint(self._fingerprint)
        return props

    async def _run(self, server: Server, host: str, port: int) -> None:
        from zeroconf import InterfaceChoice, IPVersion, NonUniqueNameException
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        interfaces: list[str] | InterfaceChoice
        if host in _WILDCARDS:
            interfaces, addresses = InterfaceChoice.All, _own_ipv4_addresses()
        elif ip is not None and ip.version == 4:
            interfaces, addresses = [host], [host]
        else:
            log.warning(
                "not announced on the LAN: announcing needs an IPv4 or wildcard --host, not %s",
                host,
            )
            return
        try:
            self._azc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
            info = AsyncServiceInfo(
                SERVICE_TYPE,
                f"{_instance_name(self._name)}.{SERVICE_TYPE}",
                port=port,
                properties=self._properties(server.hub.online_count(), server.tls),
                server=f"{_label(socket.gethostname().split('.')[0], 'chinwag')}.local.",
                addresses=[socket.inet_aton(a) for a in addresses],
            )
            await (await self._azc.async_register_service(info, allow_name_change=True))
        except (OSError, NonUniqueNameException, RuntimeError) as exc:
            log.warning("not announced on the LAN (mDNS): %s", exc)
            return
        self.instance = info.name[: -len(SERVICE_TYPE) - 1]
        self.announced.set()
        log.info(
            "announced on the LAN as %r (%s, port %d, at %s)",
            self.instance,
            SERVICE_TYPE.rstrip("."),
            port,
            ", ".join(addresses),
        )
        users = server.hub.online_count()
        while True:
            await asyncio.sleep(self._refresh)
            now = server.hub.online_count()
            if now == users:
                continue
            users = now
            fresh = AsyncServiceInfo(
                SERVICE_TYPE,
                info.name,
                port=port,
                properties=self._properties(users, server.tls),
                server=info.server,
                addresses=[socket.inet_aton(a) for a in addresses],
            )
            try:
                await (await self._azc.async_update_service(fresh))
            except (OSError, RuntimeError) as exc:
                log.warning("could not refresh the LAN announcement: %s", exc)

    async def close(self) -> None:
        """Withdraw the announcement (goodbye packets) and close the sockets; bounded."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._azc is not None:
            azc, self._azc = self._azc, None
            try:
                async with asyncio.timeout(3):
                    await azc.async_close()
            except (TimeoutError, OSError, RuntimeError) as exc:
                log.warning("closing the LAN announcement: %r", exc)
