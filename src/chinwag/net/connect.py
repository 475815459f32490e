"""What ``chinwag chat [ARG]`` connects to, and which certificate it trusts.

ARG is ``HOST[:PORT]``, a ``chinwag://`` link, a compact invite code, or
nothing: then the LAN is browsed and the user picks a server from a numbered
list. The result is a host, a port, an optional sign-up token and the TLS
context to use (None for plain TCP).

Whom to trust (:func:`secure`), in order:

1. ``--ca FILE`` (or ``--ca system``): ordinary verification against that CA
   (or the system's trust store), with the host name checked. No pinning.
2. A fingerprint pinned for ``HOST:PORT`` in ``known_hosts``: the server must
   show exactly that certificate. A changed one is refused with a warning
   (nothing is sent to it), unless an invite carries the new fingerprint: an
   invite comes from the server's admin, so its fingerprint replaces the pin.
   A LAN announcement (which anyone on the LAN can forge) never does.
3. Else a fingerprint from an invite or the LAN announcement: the server must
   match it, and it is pinned without asking.
4. Else (``--tls`` with nothing known): the fingerprint is shown and the user
   asked "trust this server? [y/N]" (``--trust`` says yes for scripts); a yes
   pins it.

TLS is used when any of these says so (``--tls``, ``--ca``, a pin, an invite
with a fingerprint, an announcement with ``tls=1``): once a server is pinned,
a client never falls back to plain TCP with it.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from chinwag.net.discovery import FoundServer, browse
from chinwag.net.invites import DEFAULT_PORT, looks_like_code, parse_invite
from chinwag.net.pins import KnownHosts, host_key
from chinwag.net.tls import (
    TlsSetupError,
    ca_context,
    fetch_fingerprint,
    fingerprint_matches,
    format_fingerprint,
    pinned_context,
)

__all__ = [
    "ConnectError",
    "Plan",
    "Target",
    "choose_server",
    "describe_found",
    "forget_advice",
    "parse_address",
    "prepare",
    "secure",
    "target_from_arg",
    "target_from_found",
]


class ConnectError(Exception):
    """Why ``chinwag chat`` will not connect, in words for the user.

    Attributes:
        status: the exit status (1: refused or not found; 2: bad arguments).
    """

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Target:
    """A server to connect to, and what its source vouches for.

    Attributes:
        host: host name or address.
        port: TCP port.
        fingerprint: the certificate fingerprint an invite or the announcement gave.
        token: a sign-up token from an invite.
        tls: the source says the port speaks TLS.
        source: ``address``, ``invite`` or ``discovery``.
    """

    host: str
    port: int
    fingerprint: bytes | None = None
    token: str | None = None
    tls: bool = False
    source: str = "address"

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What to connect to: ``server`` (``HOST:PORT``), ``ssl`` (None: plain), ``token``."""

    server: str
    host: str
    port: int
    ssl: ssl.SSLContext | None
    token: str | None


def parse_address(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT``) → host and port (default 5050).

    Raises:
        ValueError: a bad port or brackets.
    """
    host, port = text.strip(), DEFAULT_PORT
    if host.startswith("["):
        end = host.find("]")
        if end == -1:
            raise ValueError(f"bad address {text!r}")
        host, rest = host[1:end], host[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad address {text!r}")
            port = int(rest[1:])
    elif host.count(":") == 1:
        host, _, digits = host.partition(":")
        port = int(digits)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    return host or "localhost", port


def target_from_arg(text: str) -> Target:
    """The target an argument names: an invite link or code, else ``HOST[:PORT]``.

    Raises:
        ConnectError: a malformed link or address (status 2).
    """
    try:
        invite = parse_invite(text)
        if invite is not None:
            return Target(
                invite.host,
                invite.port,
                invite.fingerprint,
                invite.token,
                tls=invite.fingerprint is not None,
                source="invite",
            )
        if looks_like_code(text):
            raise ValueError(
                f"{text.strip()[:40]!r} looks like an invite code, but it does not check out: "
                "a character may be mistyped"
            )
        host, port = parse_address(text)
    except ValueError as exc:
        raise ConnectError(str(exc), 2) from None
    return Target(host, port)


def target_from_found(found: FoundServer) -> Target:
    """The target a LAN announcement gives."""
    return Target(
        found.host,
        found.port,
        found.fingerprint if found.tls else None,
        None,
        tls=found.tls,
        source="discovery",
    )


def describe_found(servers: list[FoundServer]) -> list[str]:
    """One line per server, numbered from 1, for people."""
    lines = []
    for n, s in enumerate(servers, 1):
        bits = [f"{s.address}", "TLS" if s.tls else "no TLS", f"v{s.version}"]
        if s.users is not None:
            bits.append(f"{s.users} online")
        if s.registration and s.registration != "open":
            bits.append(f"registration: {s.registration}")
        lines.append(f"{n:>3}  {s.name}  ({s.instance})  " + "  ".join(bits))
    return lines


def choose_server(
    servers: list[FoundServer],
    *,
    ask: Callable[[str], str | None] | None,
    say: Callable[[str], None],
) -> FoundServer:
    """Let the user pick one of ``servers`` by number (Enter: the first).

    Args:
        servers: what the browse found (at least one).
        ask: reads an answer to a prompt (None at end of input); None when
            nobody can answer (not a terminal): then one server is taken
            as it is, and several are refused.
        say: prints a line.

    Raises:
        ConnectError: no valid choice.
    """
    say("chinwag servers on this network:")
    for line in describe_found(servers):
        say(line)
    if ask is None:
        if len(servers) == 1:
            return servers[0]
        raise ConnectError("several servers found; name one as HOST:PORT", 2)
    for _ in range(3):
        answer = ask(f"connect to which? [1-{len(servers)}, Enter for 1] ")
        if answer is None:
            break
        answer = answer.strip()
        if not answer:
            return servers[0]
        if answer.isdigit() and 1 <= int(answer) <= len(servers):
            return servers[int(answer) - 1]
        say(f"type a number from 1 to {len(servers)}")
    raise ConnectError("no server chosen")


def forget_advice(host: str, port: int, path: Path) -> str:
    """What to do about a changed certificate: the command, the file, or an invite."""
    key = host_key(host, port)
    return (
        "If the server's admin confirms the new fingerprint, forget the old one with\n"
        f"  chinwag known-hosts forget {key}\n"
        f"(it is the line for {key} in {path}) and connect again;\n"
        "or connect with a new invite from the admin, which carries the new fingerprint."
    )


def _changed_warning(target: Target, pinned: bytes, actual: bytes, path: Path) -> str:
    return (
        f"WARNING: the TLS certificate of {target.address} has CHANGED.\n"
        f"  pinned:  {format_fingerprint(pinned)}\n"
        f"  now:     {format_fingerprint(actual)}\n"
        "Someone may be intercepting the connection, or the server got a new certificate.\n"
        "chinwag did not connect and sent nothing.\n"
        + forget_advice(target.host, target.port, path)
    )


def secure(
    target: Target,
    *,
    tls: bool = False,
    ca: str | None = None,
    trust: bool = False,
    known: KnownHosts | None = None,
    ask: Callable[[str], str | None] | None = None,
    say: Callable[[str], None] = print,
    fetch: Callable[[str, int], bytes] = fetch_fingerprint,
    changed: Literal["refuse", "ask"] = "refuse",
) -> ssl.SSLContext | None:
    """The TLS context for ``target`` (None: plain TCP), pinning as the module says.

    Args:
        target: where to connect, and what its source vouches for.
        tls: the user asked for TLS (``--tls``).
        ca: ``--ca``: a CA file, or ``system``.
        trust: accept an unknown fingerprint without asking (``--trust``).
        known: the pins; default: ``known_hosts`` in the config directory.
        ask: reads an answer to a prompt; None when nobody can answer.
        say: prints a line.
        fetch: returns the certificate fingerprint the server shows.
        changed: what to do with a changed certificate: ``refuse`` (with the
            command that forgets the pin, for the terminal) or ``ask`` (in
            words, for the desktop app: a yes replaces the pin).

    Raises:
        ConnectError: the certificate changed or does not match; the user
            said no; or no TLS connection could be made.
    """
    if ca is not None:
        try:
            return ca_context(None if ca == "system" else ca)
        except TlsSetupError as exc:
            raise ConnectError(str(exc), 2) from None
    known = known if known is not None else KnownHosts()
    pinned = known.get(target.host, target.port)
    if not (tls or target.tls or target.fingerprint is not None or pinned is not None):
        return None
    try:
        actual = fetch(target.host, target.port)
    except (OSError, TimeoutError) as exc:
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise ConnectError(
            f"cannot make a TLS connection to {target.address}: {why or type(exc).__name__}"
            + (" (does this server speak TLS?)" if isinstance(exc, ssl.SSLError) else "")
        ) from None
    if pinned is not None:
        vouched = (
            target.source == "invite"
            and target.fingerprint is not None
            and fingerprint_matches(target.fingerprint, actual)
        )
        if not fingerprint_matches(pinned, actual) and vouched:
            try:
                known.replace(target.host, target.port, actual)
            except OSError as exc:
                say(f"(could not save the pin in {known.path}: {exc})")
            else:
                say(
                    f"{target.address} has a new TLS certificate, and the invite vouches for it: "
                    f"pinned it in {known.path} in place of the old one"
                )
            return pinned_context(actual)
        if not fingerprint_matches(pinned, actual) and changed == "ask" and ask is not None:
            say(f"The TLS certificate of {target.address} has changed since you last connected.")
            say(f"  before:  {format_fingerprint(pinned)}")
            say(f"  now:     {format_fingerprint(actual)}")
            say(
                "Someone may be intercepting the connection, or the server got a new "
                "certificate. Trust the new one only if the server's admin confirms its "
                "fingerprint."
            )
            if (ask("trust the new certificate? [y/N] ") or "").strip().lower() not in ("y", "yes"):
                raise ConnectError("not trusted; chinwag did not connect")
            try:
                known.replace(target.host, target.port, actual)
            except OSError as exc:
                say(f"(could not save the pin in {known.path}: {exc})")
            return pinned_context(actual)
        if not fingerprint_matches(pinned, actual):
            raise ConnectError(_changed_warning(target, pinned, actual, known.path))
        if target.fingerprint is not None and not fingerprint_matches(target.fingerprint, actual):
            raise ConnectError(
                f"the {target.source} gives another fingerprint for {target.address} than the "
                f"one you pinned (and the server shows):\n"
                f"  {target.source + ':':<11} {format_fingerprint(target.fingerprint)}\n"
                f"  {'pinned:':<11} {format_fingerprint(pinned)}\n"
                "chinwag did not connect. The invite or announcement may be forged or stale."
            )
        return pinned_context(actual)
    if target.fingerprint is not None:
        if not fingerprint_matches(target.fingerprint, actual):
            raise ConnectError(
                f"WARNING: {target.address} shows a certificate that does not match the "
                f"{target.source}:\n"
                f"  {target.source + ':':<11} {format_fingerprint(target.fingerprint)}\n"
                f"  {'server:':<11} {format_fingerprint(actual)}\n"
                "Someone may be impersonating the server. chinwag did not connect."
            )
        _pin(known, target, actual, say, f"from the {target.source}")
        return pinned_context(actual)
    say(f"{target.address} is not known yet. Its TLS certificate's SHA-256 fingerprint is")
    say(f"  {format_fingerprint(actual)}")
    say("Compare it with the one the server logged at start-up (ask its admin).")
    if not trust:
        answer = ask("trust this server? [y/N] ") if ask is not None else None
        if answer is None and ask is None:
            raise ConnectError(
                "not trusted: no terminal to ask on; pass --trust to accept it, "
                "or use an invite from the server's admin"
            )
        if (answer or "").strip().lower() not in ("y", "yes"):
            raise ConnectError("not trusted; chinwag did not connect")
    _pin(known, target, actual, say, "as you trusted it")
    return pinned_context(actual)


def _pin(
    known: KnownHosts, target: Target, fp: bytes, say: Callable[[str], None], why: str
) -> None:
    try:
        known.add(target.host, target.port, fp)
    except (OSError, ValueError) as exc:
        say(f"(could not save the pin in {known.path}: {exc})")
        return
    say(f"pinned {target.address} ({why}) in {known.path}")


def _ask_tty(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None


def prepare(
    arg: str | None,
    *,
    tls: bool = False,
    ca: str | None = None,
    trust: bool = False,
    browse_timeout: float = 2.0,
    interactive: bool | None = None,
    known: KnownHosts | None = None,
) -> Plan:
    """Everything ``chinwag chat`` does before logging in.

    Args:
        arg: the command-line argument (None: browse the LAN).
        tls, ca, trust: the flags of the same names.
        browse_timeout: seconds to listen for LAN announcements.
        interactive: whether prompts can be answered (default: stdin is a terminal).
        known: the pins (default: ``known_hosts`` in the config directory).

    Raises:
        ConnectError: nothing found, or nothing to trust.
    """
    if interactive is None:
        interactive = sys.stdin.isatty()
    ask = _ask_tty if interactive else None
    say = print
    if arg is None or not arg.strip():
        say(f"looking for chinwag servers on the LAN ({browse_timeout:g} s)…")
        found = asyncio.run(browse(browse_timeout))
        if not found:
            say("none answered; trying localhost")
            target = Target("localhost", DEFAULT_PORT)
        else:
            target = target_from_found(choose_server(found, ask=ask, say=say))
    else:
        target = target_from_arg(arg)
    context = secure(target, tls=tls, ca=ca, trust=trust, known=known, ask=ask, say=say)
    if target.token is not None:
        say("this invite lets you register an account: type /register once connected")
    return Plan(target.address, target.host, target.port, context, target.token)
