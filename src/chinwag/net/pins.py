"""The client's ``known_hosts``: the certificate fingerprint pinned for each server.

Like SSH's file of the same name, it lives in the client's config directory
(:func:`chinwag.client.config.config_dir`) and has one line per server::

    # chinwag known servers: HOST:PORT SHA-256 fingerprint
    127.0.0.1:5050 5F:2C:…:9A
    [fe80::1]:5050 0B:77:…:E1

A server's first fingerprint is pinned (after the user agreed, or without
asking when it came from an invite or the LAN announcement); a later connection
that sees another one is refused. To accept a new certificate, forget the pin
(``chinwag known-hosts forget HOST[:PORT]``, or remove the line), or connect
with an invite that carries the new fingerprint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from chinwag.client.config import config_dir
from chinwag.net.tls import format_fingerprint, parse_fingerprint

__all__ = ["KNOWN_HOSTS_FILE", "KnownHosts", "host_key"]

KNOWN_HOSTS_FILE: Final = "known_hosts"

_HEADER: Final = (
    "# chinwag known servers: HOST:PORT SHA-256 fingerprint of its TLS certificate.\n"
    "# chinwag refuses a server whose certificate changed; to accept a new one, run\n"
    "# chinwag known-hosts forget HOST:PORT (or remove its line).\n"
)


def host_key(host: str, port: int) -> str:
    """``host:port`` as written in the file (``[v6]:port``; host names in lower case)."""
    host = host.strip().lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


class KnownHosts:
    """The pins of one config directory.

    Args:
        path: the file; default ``known_hosts`` in :func:`config_dir`.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else config_dir() / KNOWN_HOSTS_FILE

    def entries(self) -> dict[str, bytes]:
        """Every pin, by :func:`host_key`. Damaged lines are skipped."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return {}
        pins: dict[str, bytes] = {}
        for line in text.splitlines():
            words = line.split()
            if len(words) < 2 or words[0].startswith("#"):
                continue
            try:
                pins.setdefault(words[0].lower(), parse_fingerprint(words[1]))
            except ValueError:
                continue
        return pins

    def get(self, host: str, port: int) -> bytes | None:
        """The pinned fingerprint of ``host:port``, or None."""
        return self.entries().get(host_key(host, port))

    def add(self, host: str, port: int, fp: bytes) -> None:
        """Pin ``fp`` for ``host:port`` (appended; an existing pin is never replaced).

        Raises:
            ValueError: ``host:port`` already has another pin.
            OSError: the file cannot be written.
        """
        key = host_key(host, port)
        old = self.entries().get(key)
        if old == fp:
            return
        if old is not None:
            raise ValueError(f"{key} is already pinned to {format_fingerprint(old)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            if new:
                fh.write(_HEADER)
            fh.write(f"{key} {format_fingerprint(fp)}\n")

    def forget(self, host: str, port: int) -> bool:
        """Remove the pin of ``host:port``; False if there was none.

        Raises:
            OSError: the file cannot be written.
        """
        key = host_key(host, port)
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines(True)
        except FileNotFoundError:
            return False
        kept = [line for line in lines if (line.split() or [""])[0].lower() != key]
        if len(kept) == len(lines):
            return False
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(kept)
        os.replace(tmp, self.path)
        return True

    def replace(self, host: str, port: int, fp: bytes) -> None:
        """Pin ``fp`` for ``host:port`` in place of any other pin.

        Raises:
            OSError: the file cannot be written.
        """
        self.forget(host, port)
        self.add(host, port, fp)
