"""The host names the web listener answers to: its guard against DNS rebinding.

A page of a site whose DNS name its owner points at this server's address (a
server on 127.0.0.1, or on a LAN only the visitor's browser can reach) sends
``Host`` and ``Origin`` of that name: they match, so the ``Origin`` check of
``/ws`` lets the page chat through the visitor's browser, and read every page
of the listener as its own. The browser always sends the name it was given in
``Host``; so a request is answered only for a name that cannot be the
attacker's: an IP address (a page reached by address is that address's own),
``localhost``, this machine's names, the names of the listeners and of
``ws_origins``, and those listed in ``web_hosts``. Anything else gets 421.

A request without ``Host`` (HTTP/1.0, a program) is answered: browsers always
send it.
"""

from __future__ import annotations

import logging
import socket
from urllib.parse import urlsplit

from chinwag.config import Settings, is_address, parse_web_hosts

log = logging.getLogger("chinwag.web")

_SHOWN = 253  # characters of a refused name kept and shown: the longest DNS name


def host_name(header: str) -> str | None:
    """The name (or address) of a ``Host`` header, lower case, without port or trailing dot.

    None: the header is not ``NAME``, ``NAME:PORT``, ``[IPv6]`` or ``[IPv6]:PORT``.
    """
    text = header.strip().lower()
    if text.startswith("["):
        inside, closed, rest = text[1:].partition("]")
        if not closed or (rest and not _port(rest)) or not is_address(inside):
            return None
        return inside
    name, colon, port = text.rpartition(":")
    if not colon:
        name = text
    elif not _port(colon + port) or ":" in name:
        return None
    name = name.removesuffix(".")
    return name or None


def _port(text: str) -> bool:
    """``text`` is ``:`` and a port number."""
    digits = text[1:]
    return text.startswith(":") and digits.isascii() and digits.isdigit()


def machine_names() -> set[str]:
    """This machine's host name, its first label and that label ``.local`` (mDNS), lower case.

    Only the local host name is read: nothing is asked of DNS.
    """
    full = socket.gethostname().lower().removesuffix(".")
    short = full.split(".")[0]
    return {name for name in (full, short, f"{short}.local") if name and name != ".local"}


class WebHosts:
    """Which ``Host`` names the web listener answers to (`refused`), and their log.

    A refused name is logged once; at most ``web_hosts_logged_max`` names are,
    then one line says that further ones are not, so that a stream of made-up
    names costs neither memory nor log without end.
    """

    def __init__(self, settings: Settings, machine: set[str] | None = None) -> None:
        listed = parse_web_hosts(settings.web_hosts)
        self.any = "*" in listed
        self.domains = tuple(name for name in listed if name.startswith("."))
        names = {"localhost", *(machine_names() if machine is None else machine)}
        names.update(name for name in listed if not name.startswith(".") and name != "*")
        names.update(spec.host.lower() for spec in settings.listeners() if spec.host)
        for origin in settings.ws_origins.split(","):
            try:
                hostname = urlsplit(origin.strip()).hostname
            except ValueError:  # an origin that is no URL: it names no host
                continue
            if hostname:
                names.add(hostname.removesuffix("."))
        self.names = frozenset(names)
        self._logged: set[str] = set()
        self._log_max = settings.web_hosts_logged_max
        self._full = False  # web_hosts_logged_max names are logged: no more

    def allows(self, name: str) -> bool:
        """``name`` (from `host_name`) is one this server answers to."""
        if self.any or name in self.names or is_address(name):
            return True
        return any(name == domain[1:] or name.endswith(domain) for domain in self.domains)

    def refused(self, header: str | None) -> str | None:
        """The name of a ``Host`` header the listener does not answer to; None: it does.

        The name (or the malformed header) is cut at 253 characters; it is
        logged the first time it is refused.
        """
        if header is None or self.any:
            return None
        name = host_name(header)
        if name is not None and self.allows(name):
            return None
        shown = (name if name is not None else header.strip())[:_SHOWN]
        self._note(shown)
        return shown

    def _note(self, shown: str) -> None:
        logged = self._logged
        if shown in logged or self._full:
            return
        if len(logged) >= self._log_max:
            self._full = True
            if self._log_max:
                log.warning(
                    "the web listener refused requests for %d host names, each logged once;"
                    " further ones are not logged (web_hosts_logged_max)",
                    self._log_max,
                )
            return
        logged.add(shown)
        log.warning(
            "the web listener refused a request for the host name %r: it is not one of this"
            " server's (a page using DNS rebinding, or a name of this server not yet in"
            " web_hosts: if it is one, add it there and restart); further requests for it"
            " are not logged",
            shown,
        )
