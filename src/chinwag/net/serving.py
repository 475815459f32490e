"""The server's side of :mod:`chinwag.net`: its TLS context and its LAN announcement."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from chinwag.config import Settings
from chinwag.net.discovery import Announcer
from chinwag.net.tls import (
    CertInfo,
    TlsSetupError,
    ensure_self_signed,
    format_fingerprint,
    load_server_cert,
    server_context,
)

if TYPE_CHECKING:
    from chinwag.server.app import Service

log = logging.getLogger("chinwag.tls")

__all__ = ["server_extras", "server_tls"]


def server_tls(settings: Settings, data_dir: Path) -> tuple[ssl.SSLContext, CertInfo] | None:
    """The TLS context of the TLS listeners (None: none speaks TLS); logs the fingerprint.

    ``tls_cert``/``tls_key`` name a real certificate; else a self-signed one is
    made (once) in ``data_dir``, naming the TLS listeners' hosts too.

    Raises:
        TlsSetupError: a file cannot be read or written, or the key does not fit.
    """
    tls_hosts = tuple(spec.host for spec in settings.listeners() if spec.tls)
    if not tls_hosts:
        return None
    if settings.tls_cert or settings.tls_key:
        if not (settings.tls_cert and settings.tls_key):
            raise TlsSetupError("--cert and --key go together")
        info = load_server_cert(Path(settings.tls_cert), Path(settings.tls_key))
    else:
        info = ensure_self_signed(data_dir, extra_names=tuple(h for h in tls_hosts if h))
    how = (
        "created a self-signed certificate"
        if info.created
        else ("using the self-signed certificate" if info.self_signed else "using the certificate")
    )
    log.info("TLS: %s %s", how, info.cert)
    log.info("TLS certificate SHA-256 fingerprint %s", format_fingerprint(info.fingerprint))
    return server_context(info.cert, info.key), info


def server_extras(
    settings: Settings, data_dir: Path
) -> tuple[ssl.SSLContext | None, list[Service]]:
    """What ``chinwag serve`` passes to ``serve()``: the TLS context and the announcer.

    Raises:
        TlsSetupError: see :func:`server_tls`.
    """
    tls = server_tls(settings, data_dir)
    services: list[Service] = []
    if settings.announce:
        services.append(
            Announcer(
                name=settings.server_name,
                fingerprint=tls[1].fingerprint if tls is not None else None,
                registration=settings.registration,
            )
        )
    return (tls[0] if tls is not None else None), services
