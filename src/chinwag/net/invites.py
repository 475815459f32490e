"""Invites: a server's address, its certificate fingerprint and a sign-up token.

An invite comes in two spellings that carry the same thing:

* a link, ``chinwag://HOST:PORT?fp=FINGERPRINT&t=TOKEN``: ``fp`` (hex, the
  SHA-256 of the server's certificate, see :mod:`chinwag.net.tls`) is there when
  the server speaks TLS, ``t`` when the invite lets its holder register;
* a compact code for reading aloud or typing, e.g. ``DBKA-AAA7-…``: RFC 4648
  base32 of a packed form (below), in groups of four, with a checksum, so that
  a typo is caught rather than sending you elsewhere. Case, dashes and spaces
  do not matter.

The code packs, in order: one byte (high nibble: format version 1; bits 0-1:
host kind 0 = name, 1 = IPv4, 2 = IPv6; bit 2: fingerprint follows; bit 3: token
follows), the port (2 bytes, big-endian), the host (4 or 16 bytes, or a length
byte and that many bytes of ASCII name), the first 16 bytes of the fingerprint
(128 bits: as safe to pin as all 32, see ``fingerprint_matches``), the 10-byte
token, and the first 2 bytes of the SHA-256 of everything before.

Tokens are 10 random bytes, written as 16 lower-case base32 characters. The
server keeps only their SHA-256 (:func:`token_hash`), with the uses left and an
expiry, in its ``invites`` table; ``register`` with ``"invite":TOKEN`` uses one
up atomically (protocol.md §5).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import secrets
import socket
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from chinwag.net.tls import CERT_FILE, MIN_FINGERPRINT_BYTES, cert_fingerprint, parse_fingerprint

__all__ = [
    "DEFAULT_PORT",
    "SCHEME",
    "Invite",
    "create_invite",
    "default_host",
    "looks_like_code",
    "new_token",
    "parse_duration",
    "parse_invite",
    "token_hash",
]

SCHEME: Final = "chinwag"
DEFAULT_PORT: Final = 5050
TOKEN_BYTES: Final = 10
_VERSION: Final = 1
_CHECK_BYTES: Final = 2
_CODE_CHARS: Final = re.compile(r"[A-Z2-7]+")
_TOKEN_RE: Final = re.compile(r"[a-z2-7]{1,128}")
_HOST_RE: Final = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


# Stores an invite token's hash: (data dir, token hash, uses, expires_ms,
# created_ms); raises FileNotFoundError when the data directory has no database.
SaveToken = Callable[[Path, str, int, int | None, int], Awaitable[None]]


def new_token() -> str:
    """A fresh sign-up token: 16 base32 characters (80 random bits)."""
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii").lower()


def token_hash(token: str) -> str:
    """What the server stores for a token: hex SHA-256 of it (trimmed, lower case)."""
    return hashlib.sha256(token.strip().lower().encode("utf-8")).hexdigest()


def parse_duration(text: str) -> float | None:
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w`` (or plain seconds) in seconds; ``never`` → None.

    Raises:
        ValueError: anything else, or not positive.
    """
    text = text.strip().lower()
    if text in ("never", "none", "0"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw]?)", text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 24h, 7d or never)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def _check_host(host: str) -> str:
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST_RE.fullmatch(host):
        raise ValueError(f"not a host name or address: {host[:80]!r}")
    return host.lower()


@dataclass(frozen=True, slots=True)
class Invite:
    """Where a server is, the certificate to pin, and an optional sign-up token.

    Attributes:
        host: host name or IP address (no brackets).
        port: TCP port.
        fingerprint: SHA-256 of the server's certificate (or its first 16+
            bytes); None for a server without TLS.
        token: the sign-up token, or None.
    """

    host: str
    port: int = DEFAULT_PORT
    fingerprint: bytes | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", _check_host(self.host))
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range")
        if self.fingerprint is not None and not (
            MIN_FINGERPRINT_BYTES <= len(self.fingerprint) <= 32
        ):
            raise ValueError("a fingerprint has 16 to 32 bytes")
        if self.token is not None:
            object.__setattr__(self, "token", self.token.strip().lower())
            if not _TOKEN_RE.fullmatch(self.token or ""):
                raise ValueError("a token is 1-128 characters of base32 (a-z, 2-7)")

    @property
    def address(self) -> str:
        """``HOST:PORT`` (``[v6]:PORT``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def link(self) -> str:
        """``chinwag://HOST:PORT?fp=…&t=…``."""
        query = []
        if self.fingerprint is not None:
            query.append(f"fp={self.fingerprint.hex()}")
        if self.token is not None:
            query.append(f"t={self.token}")
        return f"{SCHEME}://{self.address}" + ("?" + "&".join(query) if query else "")

    def web_link(self, http_port: int) -> str:
        """The web client's link on ``http_port``: ``http(s)://HOST:PORT/#invite=TOKEN``.

        HTTPS when the server speaks TLS (the invite has a fingerprint); the
        token is in the fragment, which a browser does not send to the server.
        """
        scheme = "https" if self.fingerprint is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        link = f"{scheme}://{host}:{http_port}/"
        return link + (f"#invite={self.token}" if self.token is not None else "")

    def code(self) -> str:
        """The compact code (see the module docstring).

        Raises:
            ValueError: the token is not one of ours (10 bytes of base32), or
                the host name is longer than 255 bytes.
        """
        flags = _VERSION << 4
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            name = self.host.encode("ascii")
            host = bytes([len(name)]) + name
        else:
            flags |= 1 if ip.version == 4 else 2
            host = ip.packed
        body = bytearray([flags])
        body += self.port.to_bytes(2, "big") + host
        if self.fingerprint is not None:
            body[0] |= 4
            body += self.fingerprint[:MIN_FINGERPRINT_BYTES]
        if self.token is not None:
            raw = _token_bytes(self.token)
            body[0] |= 8
            body += raw
        body += hashlib.sha256(body).digest()[:_CHECK_BYTES]
        text = base64.b32encode(bytes(body)).decode("ascii").rstrip("=")
        return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def _token_bytes(token: str) -> bytes:
    try:
        raw = base64.b32decode(token.upper())
    except ValueError:
        raw = b""
    if len(raw) != TOKEN_BYTES:
        raise ValueError("only tokens made by chinwag (16 base32 characters) fit in a code")
    return raw


def _parse_link(text: str) -> Invite:
    parts = urllib.parse.urlsplit(text.strip())
    if parts.scheme.lower() != SCHEME or not parts.hostname:
        raise ValueError(f"not a {SCHEME}:// link: {text[:80]!r}")
    port = parts.port or DEFAULT_PORT  # ValueError for a bad port
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=False, strict_parsing=False)
    fp = query.get("fp", [None])[0]
    token = query.get("t", [None])[0]
    return Invite(
        parts.hostname,
        port,
        parse_fingerprint(fp) if fp else None,
        token or None,
    )


def _parse_code(text: str) -> Invite | None:
    """The invite in a compact code, or None when ``text`` is not one."""
    letters = re.sub(r"[\s-]", "", text).upper()
    if len(letters) < 8 or not _CODE_CHARS.fullmatch(letters):
        return None
    try:
        raw = base64.b32decode(letters + "=" * (-len(letters) % 8))
    except ValueError:
        return None
    if len(raw) < 1 + 2 + 2 + _CHECK_BYTES:
        return None
    body, check = raw[:-_CHECK_BYTES], raw[-_CHECK_BYTES:]
    if hashlib.sha256(body).digest()[:_CHECK_BYTES] != check or body[0] >> 4 != _VERSION:
        return None
    flags, port, pos = body[0], int.from_bytes(body[1:3], "big"), 3
    kind = flags & 3
    if kind == 1:
        host = str(ipaddress.IPv4Address(body[pos : pos + 4]))
        pos += 4
    elif kind == 2:
        host = str(ipaddress.IPv6Address(body[pos : pos + 16]))
        pos += 16
    else:
        size = body[pos] if pos < len(body) else 0
        host = body[pos + 1 : pos + 1 + size].decode("ascii", errors="replace")
        pos += 1 + size
    fp = token = None
    if flags & 4:
        fp = body[pos : pos + MIN_FINGERPRINT_BYTES]
        pos += MIN_FINGERPRINT_BYTES
    if flags & 8:
        token = base64.b32encode(body[pos : pos + TOKEN_BYTES]).decode("ascii").lower()
        pos += TOKEN_BYTES
    if pos != len(body):
        return None
    try:
        return Invite(host, port, fp, token)
    except ValueError:
        return None


def looks_like_code(text: str) -> bool:
    """Whether ``text`` is shaped like a compact code (groups of base32), valid or not.

    Only codes of 24 letters or more (those with a fingerprint or a token) count:
    a shorter text of dashed words may well be a host name.
    """
    text = text.strip()
    return (
        re.fullmatch(r"[A-Za-z2-7]{4}(-[A-Za-z2-7]{1,4}){5,}", text) is not None
        and len(text.replace("-", "")) >= 24
    )


def parse_invite(text: str) -> Invite | None:
    """The invite in a ``chinwag://`` link or a compact code; None if ``text`` is neither.

    Raises:
        ValueError: a ``chinwag://`` link that is malformed.
    """
    if text.strip().lower().startswith(f"{SCHEME}://"):
        return _parse_link(text)
    return _parse_code(text)


def default_host() -> str:
    """This machine's first non-loopback IPv4 address (none: its host name).

    Only the local interface list is read; nothing is sent anywhere.
    """
    import ifaddr

    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                addr = ipaddress.IPv4Address(ip.ip)
                if not (addr.is_loopback or addr.is_link_local or addr.is_unspecified):
                    return str(addr)
    return socket.gethostname()


async def create_invite(
    data_dir: Path,
    *,
    host: str,
    port: int,
    uses: int | None,
    expires: float | None,
    cert: Path | None = None,
    plain: bool = False,
    save_token: SaveToken | None = None,
) -> Invite:
    """Make an invite for the server whose data directory is ``data_dir``.

    With ``uses`` a token is made and its hash stored in the server's database
    (the server may be running: SQLite's WAL lets both write). The fingerprint
    comes from ``cert``, else from the self-signed certificate in ``data_dir``.

    Args:
        data_dir: the server's data directory.
        host: the address clients should use.
        port: the server's port.
        uses: how many accounts the token may register; None makes no token.
        expires: seconds until the token expires; None for never.
        cert: the server's certificate (``--cert``), if not self-signed.
        plain: the server does not speak TLS: no fingerprint.
        save_token: stores a token's hash in the server's database (the
            composition root, which knows the storage, hands it in); needed
            when ``uses`` is given.

    Raises:
        FileNotFoundError: no database in ``data_dir`` (a token needs one).
        chinwag.net.tls.TlsSetupError: ``cert`` cannot be read.
    """
    fp: bytes | None = None
    if not plain:
        source = cert if cert is not None else data_dir / CERT_FILE
        if cert is not None or source.exists():
            fp = cert_fingerprint(source)
    token: str | None = None
    if uses is not None:
        if save_token is None:
            raise ValueError("a token needs somewhere to be saved (save_token)")
        token = new_token()
        now_ms = int(time.time() * 1000)
        expires_ms = None if expires is None else now_ms + int(expires * 1000)
        await save_token(data_dir, token_hash(token), uses, expires_ms, now_ms)
    return Invite(host, port, fp, token)


async def run_invite(
    data_dir: Path,
    *,
    host: str | None,
    port: int,
    uses: int | None,
    expires: float | None,
    cert: Path | None,
    plain: bool,
    save_token: SaveToken,
    http_port: int = 0,
) -> int:
    """``chinwag invite``: print its link, code and web link (``http_port``); the exit status."""
    from chinwag.net.tls import TlsSetupError

    try:
        invite = await create_invite(
            data_dir,
            host=host or default_host(),
            port=port,
            uses=uses,
            expires=expires,
            cert=cert,
            plain=plain,
            save_token=save_token,
        )
    except FileNotFoundError as exc:
        print(f"chinwag invite: {exc}; pass the server's --data DIR", file=sys.stderr)
        return 1
    except (TlsSetupError, ValueError) as exc:
        print(f"chinwag invite: {exc}", file=sys.stderr)
        return 2
    print(invite.link())
    print(invite.code())
    if http_port:
        print(invite.web_link(http_port))
    notes = []
    if invite.fingerprint is None:
        notes.append(
            "no TLS certificate: this invite is for a server without TLS "
            "(start it with --tls, or pass --cert)"
        )
    if invite.token is not None:
        when = "never expires" if expires is None else f"expires in {_human(expires)}"
        notes.append(f"signs up {uses} account(s); {when}")
    for note in notes:
        print(f"# {note}", file=sys.stderr)
    return 0


def _human(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
