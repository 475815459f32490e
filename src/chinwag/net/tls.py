"""TLS for chinwag: certificates, contexts and SHA-256 fingerprints.

The server speaks TLS on its one port when it has a certificate (protocol §1):
either a real one (``--cert``/``--key``) or a self-signed one that
:func:`ensure_self_signed` makes in the data directory on first start.

A self-signed certificate cannot be checked against a CA, so clients *pin* it:
they remember its fingerprint (:mod:`chinwag.net.pins`) and refuse a server
that shows another one. The fingerprint is the SHA-256 of the certificate's DER
encoding, written as 32 upper-case hex pairs joined by colons, the same as
``openssl x509 -noout -fingerprint -sha256`` prints it::

    5F:2C:…:9A

Pinning is done by :func:`pinned_context`: a client context that does no CA or
host-name check (the pin replaces both) but checks the peer's fingerprint right
after the handshake, before a single byte of chat is sent, on every connection
(reconnects included). :func:`ca_context` does ordinary verification instead,
for certificates from a CA (``--ca FILE`` or the system's trust store).

Both sides: TLS 1.2 at least (1.3 preferred), no compression (CRIME), and no
renegotiation; for TLS 1.2 only forward-secret AEAD cipher suites.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import os
import re
import secrets
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

log = logging.getLogger("chinwag.tls")

__all__ = [
    "CERT_FILE",
    "KEY_FILE",
    "CertInfo",
    "FingerprintMismatch",
    "TlsSetupError",
    "ca_context",
    "cert_fingerprint",
    "ensure_self_signed",
    "fetch_fingerprint",
    "fingerprint",
    "fingerprint_matches",
    "format_fingerprint",
    "load_server_cert",
    "parse_fingerprint",
    "pinned_context",
    "server_context",
]

CERT_FILE: Final = "tls-cert.pem"
"""The self-signed certificate, in the server's data directory."""
KEY_FILE: Final = "tls-key.pem"
"""Its private key (mode 0600), beside it."""

CERT_DAYS: Final = 3650
"""Validity of a self-signed certificate. Pins, not dates, are what clients check."""

MIN_FINGERPRINT_BYTES: Final = 16
"""An offered fingerprint may be shortened to this many leading bytes (128 bits)."""

TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"
"""TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are all fine)."""

_HEX: Final = re.compile(r"[0-9a-fA-F]+")


class TlsSetupError(Exception):
    """A certificate or key that cannot be made or used; the message says which and why."""


class FingerprintMismatch(ssl.SSLCertVerificationError):
    """The server's certificate is not the pinned one. Nothing was sent to it.

    Attributes:
        expected: the pinned fingerprint (possibly shortened, see ``fingerprint_matches``).
        actual: the SHA-256 of the certificate the server showed.
    """

    def __init__(self, expected: bytes, actual: bytes) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"the server's TLS certificate is not the pinned one "
            f"(pinned {format_fingerprint(expected)}, got {format_fingerprint(actual)})"
        )


# --- fingerprints ------------------------------------------------------------------


def fingerprint(der: bytes) -> bytes:
    """The SHA-256 of a DER-encoded certificate."""
    return hashlib.sha256(der).digest()


def format_fingerprint(fp: bytes) -> str:
    """``AB:CD:…``: colon-separated upper-case hex, as openssl prints it."""
    return ":".join(f"{b:02X}" for b in fp)


def parse_fingerprint(text: str) -> bytes:
    """Read a fingerprint as hex, with or without colons (an optional ``sha256:`` first).

    A shortened fingerprint (at least 16 leading bytes) is accepted: see
    :func:`fingerprint_matches`.

    Raises:
        ValueError: not hex, or not 16 to 32 bytes.
    """
    text = text.strip()
    if text.lower().startswith("sha256:"):
        text = text[7:]
    digits = text.replace(":", "")
    if not _HEX.fullmatch(digits) or len(digits) % 2:
        raise ValueError(f"not a hex fingerprint: {text[:80]!r}")
    raw = bytes.fromhex(digits)
    if not MIN_FINGERPRINT_BYTES <= len(raw) <= 32:
        raise ValueError(f"a SHA-256 fingerprint has 16 to 32 bytes, not {len(raw)}")
    return raw


def fingerprint_matches(offered: bytes, actual: bytes) -> bool:
    """Whether ``offered`` (full, or its first 16+ bytes) is ``actual``'s fingerprint.

    128 bits are far beyond a second-preimage search, so a shortened fingerprint
    (as in a compact invite code) pins as safely as a full one.
    """
    return len(offered) >= MIN_FINGERPRINT_BYTES and actual[: len(offered)] == offered


def cert_fingerprint(cert_pem: Path) -> bytes:
    """The fingerprint of the first certificate in a PEM file.

    Raises:
        TlsSetupError: no readable PEM certificate there.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    except (OSError, ValueError) as exc:
        raise TlsSetupError(f"cannot read the certificate {cert_pem}: {exc}") from None
    return fingerprint(cert.public_bytes(Encoding.DER))


# --- the server side ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertInfo:
    """A certificate the server will use.

    Attributes:
        cert: PEM file (the chain, leaf first).
        key: PEM private key.
        fingerprint: SHA-256 of the leaf certificate.
        created: True when it was made just now.
        self_signed: True for the one made in the data directory.
    """

    cert: Path
    key: Path
    fingerprint: bytes
    created: bool
    self_signed: bool


def _dns_name(text: str) -> str | None:
    name = text.strip().rstrip(".").lower()
    if name and re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9-]{1,63})*", name):
        return name
    return None


def ensure_self_signed(data_dir: Path, *, extra_names: tuple[str, ...] = ()) -> CertInfo:
    """Load the data directory's self-signed certificate, making it on first use.

    The key is EC P-256, written with mode 0600 before the certificate, each
    file atomically (temp file and rename), so a crash leaves either both or a
    pair that is made again. The certificate names ``localhost``, this host's
    name (and ``NAME.local``), 127.0.0.1, ::1 and ``extra_names`` (host names or
    IP addresses), so that clients with ordinary verification can use it too
    when they trust it explicitly (``--ca tls-cert.pem``).

    Raises:
        TlsSetupError: the directory is not writable, or the files are damaged.
    """
    cert_path, key_path = data_dir / CERT_FILE, data_dir / KEY_FILE
    if cert_path.exists() and key_path.exists():
        mode = key_path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); made it 0600", key_path, mode)
            key_path.chmod(0o600)
        return CertInfo(cert_path, key_path, cert_fingerprint(cert_path), False, True)

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    host = socket.gethostname()
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for item in ("localhost", host, f"{host}.local", "127.0.0.1", "::1", *extra_names):
        try:
            ip = ipaddress.ip_address(item)
        except ValueError:
            dns = _dns_name(item)
            if dns is not None and dns not in seen:
                seen.add(dns)
                names.append(x509.DNSName(dns))
        else:
            if str(ip) not in seen and not ip.is_unspecified:
                seen.add(str(ip))
                names.append(x509.IPAddress(ip))

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chinwag"),
            x509.NameAttribute(NameOID.COMMON_NAME, (_dns_name(host) or "localhost")[:64]),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(key_path, key_pem, 0o600)
        _write_atomic(cert_path, cert_pem, 0o644)
    except OSError as exc:
        raise TlsSetupError(f"cannot write a certificate in {data_dir}: {exc}") from None
    fp = fingerprint(cert.public_bytes(serialization.Encoding.DER))
    return CertInfo(cert_path, key_path, fp, True, True)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_server_cert(cert: Path, key: Path) -> CertInfo:
    """A real certificate and key (``--cert``/``--key``), checked to load.

    Raises:
        TlsSetupError: a file is missing, unreadable, or the key does not fit.
    """
    server_context(cert, key)  # fails early, with the reason, if they do not load
    return CertInfo(cert, key, cert_fingerprint(cert), False, False)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The server's context: TLS >= 1.2, no renegotiation, no compression.

    Raises:
        TlsSetupError: the certificate or key cannot be loaded.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= (
        ssl.OP_NO_RENEGOTIATION
        | ssl.OP_NO_COMPRESSION
        | ssl.OP_CIPHER_SERVER_PREFERENCE
        | ssl.OP_SINGLE_ECDH_USE
    )
    ctx.set_ciphers(TLS12_CIPHERS)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(f"cannot load the certificate {cert} with key {key}: {exc}") from None
    return ctx


# --- the client side ---------------------------------------------------------------


def _client_base() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    return ctx


def pinned_context(expected: bytes | None) -> ssl.SSLContext:
    """A client context that trusts exactly the certificate with this fingerprint.

    There is no CA or host-name check: the pin replaces both. The fingerprint is
    checked inside the handshake step of every connection made with this
    context, so a mismatch fails the connection with :class:`FingerprintMismatch`
    before any application data is sent.

    Args:
        expected: the pinned fingerprint (or its first 16+ bytes); None checks
            nothing (only for fetching a fingerprint to show the user).
    """
    ctx = _client_base()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if expected is not None:
        ctx.sslobject_class = _pinned_object_class(expected)
    return ctx


def _pinned_object_class(expected: bytes) -> type[ssl.SSLObject]:
    class PinnedSSLObject(ssl.SSLObject):
        """asyncio drives TLS through an SSLObject: check the pin as its handshake ends."""

        def do_handshake(self) -> None:
            super().do_handshake()
            der = self.getpeercert(binary_form=True)
            actual = fingerprint(der) if der else b""
            if not fingerprint_matches(expected, actual):
                raise FingerprintMismatch(expected, actual)

    return PinnedSSLObject


def ca_context(cafile: str | os.PathLike[str] | None) -> ssl.SSLContext:
    """Ordinary verification (chain and host name) against ``cafile`` or the system's CAs.

    Raises:
        TlsSetupError: ``cafile`` cannot be read.
    """
    ctx = _client_base()
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        if cafile is None:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            ctx.load_verify_locations(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(f"cannot load CA certificates from {cafile}: {exc}") from None
    return ctx


def fetch_fingerprint(host: str, port: int, timeout: float = 10.0) -> bytes:
    """Connect, finish a TLS handshake, and return the server certificate's fingerprint.

    Nothing is sent after the handshake. Use it to show an unknown server's
    fingerprint before trusting it, or to tell a changed certificate apart from
    a server that cannot be reached.

    Raises:
        OSError: no connection (``ssl.SSLError`` if the server does not speak TLS).
        TimeoutError: no handshake within ``timeout`` seconds.
    """
    ctx = pinned_context(None)
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        ctx.wrap_socket(sock, server_hostname=host or None) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server sent no certificate")
    return fingerprint(der)
