"""TLS on the server's one port, and certificate pinning in the client: real servers, real probes.

Every connection goes to 127.0.0.1. Probes that Python's ssl module cannot make
(a client-initiated renegotiation) are made with ``openssl s_client``.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Peer, ServerProcess
from support.cli import chinwag

from chinwag.client import ChatClient, Message
from chinwag.net.connect import ConnectError, Target, secure
from chinwag.net.invites import Invite
from chinwag.net.pins import KnownHosts
from chinwag.net.tls import (
    CERT_FILE,
    KEY_FILE,
    FingerprintMismatch,
    ca_context,
    ensure_self_signed,
    fetch_fingerprint,
    fingerprint_matches,
    format_fingerprint,
    parse_fingerprint,
    pinned_context,
    server_context,
)

FAST = {
    "argon2_memory_kib": 8192,
    "argon2_time_cost": 1,
    "tls_handshake_timeout": 1.5,
    "log_level": "debug",  # some tests look for a connection's log lines
}
_FP = re.compile(r"fingerprint ([0-9A-F:]{95})")


def logged_fingerprint(srv: ServerProcess) -> bytes:
    match = _FP.search(srv.log())
    assert match, srv.log()
    return parse_fingerprint(match.group(1))


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "srv", FAST, args=["--tls", "--no-announce"])
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


# --- certificates and fingerprints ----------------------------------------------------


def test_self_signed_certificate_is_made_once_with_a_private_key(tmp_path: Path) -> None:
    from cryptography import x509

    first = ensure_self_signed(tmp_path, extra_names=("chat.example", "10.1.2.3"))
    assert first.created and first.self_signed
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((tmp_path / CERT_FILE).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = san.get_values_for_type(x509.DNSName)
    ips = san.get_values_for_type(x509.IPAddress)
    assert {"localhost", "chat.example"} <= set(names)
    assert ipaddress.ip_address("127.0.0.1") in ips and ipaddress.ip_address("10.1.2.3") in ips
    assert cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(
        days=3000
    )
    again = ensure_self_signed(tmp_path)
    assert not again.created and again.fingerprint == first.fingerprint
    # A key left readable by others is tightened.
    (tmp_path / KEY_FILE).chmod(0o644)
    ensure_self_signed(tmp_path)
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_fingerprint_is_what_openssl_prints(tmp_path: Path) -> None:
    info = ensure_self_signed(tmp_path)
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(info.cert)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.strip().split("=", 1)[1] == format_fingerprint(info.fingerprint)


def test_fingerprints_parse_in_any_spelling_and_may_be_shortened() -> None:
    fp = bytes(range(32))
    text = format_fingerprint(fp)
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", text)
    for spelling in (text, text.lower(), text.replace(":", ""), "sha256:" + text):
        assert parse_fingerprint(spelling) == fp
    assert fingerprint_matches(fp[:16], fp) and fingerprint_matches(fp, fp)
    assert not fingerprint_matches(fp[:15], fp)  # too short to pin anything
    assert not fingerprint_matches(bytes(16), fp)
    for bad in ("zz", "ab:cd", "00" * 33, "0" * 63):
        with pytest.raises(ValueError):
            parse_fingerprint(bad)


def test_server_context_settings(tmp_path: Path) -> None:
    info = ensure_self_signed(tmp_path)
    ctx = server_context(info.cert, info.key)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_RENEGOTIATION
    assert ctx.options & ssl.OP_NO_COMPRESSION
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all("ECDHE" in n and ("GCM" in n or "CHACHA20" in n) for n in tls12)


# --- a TLS server -----------------------------------------------------------------------


async def test_tls_server_logs_its_fingerprint_and_chats_over_tls(
    tls_server: ServerProcess,
) -> None:
    fp = logged_fingerprint(tls_server)
    assert "with TLS" in tls_server.log()
    assert await asyncio.to_thread(fetch_fingerprint, "127.0.0.1", tls_server.port) == fp
    cfg = tls_server.data.parent / "client"
    ann = ChatClient(
        "127.0.0.1", tls_server.port, nick="ann", config_dir=cfg, ssl=pinned_context(fp)
    )
    bob = ChatClient(
        "127.0.0.1", tls_server.port, nick="bob", config_dir=cfg, ssl=pinned_context(fp[:16])
    )
    try:
        await ann.connect()
        await bob.connect()
        cid = ann.say("lobby", "over TLS")
        await ann.wait_sent(cid, timeout=5)
        while True:
            event = await bob.next_event(timeout=5)
            if isinstance(event, Message) and event.body == "over TLS":
                break
        session = ann._session
        assert session is not None
        sslobj = session.writer.get_extra_info("ssl_object")
        assert sslobj is not None and sslobj.version() == "TLSv1.3"
    finally:
        await ann.close()
        await bob.close()


async def test_a_client_pinned_to_another_certificate_refuses_before_sending(
    tls_server: ServerProcess,
) -> None:
    wrong = bytes(32)
    client = ChatClient(
        "127.0.0.1",
        tls_server.port,
        nick="mallory",
        config_dir=tls_server.data.parent / "client",
        ssl=pinned_context(wrong),
        connect_timeout=5,
    )
    with pytest.raises(FingerprintMismatch) as info:
        await client.connect()
    assert info.value.actual == logged_fingerprint(tls_server)
    await client.close()
    await asyncio.sleep(0.3)
    assert "mallory" not in tls_server.log()  # no hello was sent


def test_chat_pins_on_first_use_and_refuses_a_changed_certificate(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "srv", FAST, args=["--tls", "--no-announce"])
    srv.start()
    cfg = tmp_path / "client"
    address = f"127.0.0.1:{srv.port}"
    try:
        # Unknown, no terminal to ask on, no --trust: refused, nothing pinned.
        out = chinwag("chat", address, "--tls", "--nick", "ann", stdin="/quit\n", config=cfg)
        assert out.returncode == 1, out
        assert "pass --trust" in out.stderr and not (cfg / "known_hosts").exists()
        assert format_fingerprint(logged_fingerprint(srv)) in out.stdout

        out = chinwag(
            "chat", address, "--tls", "--trust", "--nick", "ann", stdin="hi\n/quit\n", config=cfg
        )
        assert out.returncode == 0, out
        assert f"connected to {address} over TLS as ann" in out.stdout
        known = (cfg / "known_hosts").read_text()
        assert f"{address} {format_fingerprint(logged_fingerprint(srv))}" in known

        # Pinned: TLS without --tls, and no question.
        out = chinwag("chat", address, "--nick", "ann", stdin="/quit\n", config=cfg)
        assert out.returncode == 0, out
        assert "over TLS" in out.stdout and "not known" not in out.stdout

        # The server gets a new certificate on the same port.
        srv.kill()
        (srv.data / CERT_FILE).unlink()
        (srv.data / KEY_FILE).unlink()
        srv.start()
        logins_before = srv.log().count("logged in")
        for extra in ([], ["--tls", "--trust"]):
            out = chinwag("chat", address, *extra, "--nick", "ann", stdin="/quit\n", config=cfg)
            assert out.returncode == 1, out
            assert "has CHANGED" in out.stderr
            assert str(cfg / "known_hosts") in out.stderr
            assert f"chinwag known-hosts forget {address}" in out.stderr
            assert "connected to" not in out.stdout
        assert srv.log().count("logged in") == logins_before
        assert (cfg / "known_hosts").read_text() == known  # the pin was not replaced

        # An invite from the admin carries the new fingerprint: it replaces the pin.
        new_fp = parse_fingerprint(_FP.findall(srv.log())[-1])  # the log spans both starts
        link = Invite("127.0.0.1", srv.port, new_fp).link()
        out = chinwag("chat", link, "--nick", "ann", stdin="/quit\n", config=cfg)
        assert out.returncode == 0, out
        assert "the invite vouches for it" in out.stdout
        assert (
            f"{address} {format_fingerprint(new_fp)}"
            in chinwag("known-hosts", "list", config=cfg).stdout
        )

        # Or the user forgets the pin, and is asked again.
        out = chinwag("known-hosts", "forget", address, config=cfg)
        assert out.returncode == 0 and "forgot" in out.stdout, out
        assert address not in (cfg / "known_hosts").read_text()
        out = chinwag("known-hosts", "forget", address, config=cfg)
        assert out.returncode == 1 and "is not pinned" in out.stderr, out
        out = chinwag("chat", address, "--tls", "--nick", "ann", stdin="/quit\n", config=cfg)
        assert out.returncode == 1 and "pass --trust" in out.stderr, out
    finally:
        srv.kill()


def test_secure_pins_an_offered_fingerprint_without_asking(tmp_path: Path) -> None:
    actual = bytes(range(32))
    known = KnownHosts(tmp_path / "known_hosts")
    lines: list[str] = []

    def fetch(host: str, port: int) -> bytes:
        return actual

    def never(prompt: str) -> str | None:
        raise AssertionError("asked")

    target = Target("10.9.9.9", 5050, actual[:16], tls=True, source="invite")
    ctx = secure(target, known=known, ask=never, say=lines.append, fetch=fetch)
    assert ctx is not None and known.get("10.9.9.9", 5050) == actual
    # A forged invite for a pinned server is refused.
    forged = Target("10.9.9.9", 5050, bytes(32), tls=True, source="invite")
    with pytest.raises(ConnectError, match="another fingerprint"):
        secure(forged, known=known, ask=never, say=lines.append, fetch=fetch)
    # An announcement that does not match the server is refused.
    liar = Target("10.9.9.8", 5050, bytes(32), tls=True, source="discovery")
    with pytest.raises(ConnectError, match="does not match"):
        secure(liar, known=known, ask=never, say=lines.append, fetch=fetch)
    assert known.get("10.9.9.8", 5050) is None
    # Plain TCP when nothing says TLS.
    assert secure(Target("10.9.9.7", 5050), known=known, fetch=fetch) is None
    # The user says no.
    with pytest.raises(ConnectError, match="not trusted"):
        secure(Target("10.9.9.7", 5050), tls=True, known=known, ask=lambda p: "n", fetch=fetch)
    assert known.get("10.9.9.7", 5050) is None


# --- a real certificate, checked against a CA ---------------------------------------------


def _make_ca_and_leaf(folder: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "cert.pem").write_bytes(leaf.public_bytes(pem))
    (folder / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "ca.pem", folder / "cert.pem", folder / "key.pem"


async def test_a_real_certificate_is_verified_against_its_ca(tmp_path: Path) -> None:
    ca, cert, key = _make_ca_and_leaf(tmp_path / "pki")
    srv = ServerProcess(
        tmp_path / "srv", FAST, args=["--cert", str(cert), "--key", str(key), "--no-announce"]
    )
    srv.start()
    try:
        assert not (srv.data / CERT_FILE).exists()  # no self-signed one was made
        cfg = tmp_path / "client"
        good = ChatClient("localhost", srv.port, nick="ann", config_dir=cfg, ssl=ca_context(ca))
        await good.connect()
        await good.close()
        # The wrong name, or another CA: refused by ordinary verification.
        for host, context in (
            ("127.0.0.1", ca_context(ca)),
            ("localhost", ca_context(_make_ca_and_leaf(tmp_path / "other")[0])),
        ):
            bad = ChatClient(host, srv.port, nick="bob", config_dir=cfg, ssl=context)
            with pytest.raises(ssl.SSLCertVerificationError):
                await bad.connect()
            await bad.close()
        out = chinwag(
            "chat", f"localhost:{srv.port}", "--ca", str(ca), "--nick", "cat",
            stdin="/quit\n", config=cfg,
        )  # fmt: skip
        assert out.returncode == 0 and "over TLS" in out.stdout, out
        assert not (cfg / "known_hosts").exists()  # CA mode pins nothing
    finally:
        srv.kill()


def test_bad_certificate_arguments_are_refused_in_plain_words(tmp_path: Path) -> None:
    out = chinwag("serve", "--data", str(tmp_path), "--cert", str(tmp_path / "none.pem"),
                  "--key", str(tmp_path / "none.key"), "--port", "0", "--no-announce")  # fmt: skip
    assert out.returncode == 2 and "cannot load the certificate" in out.stderr
    out = chinwag("serve", "--data", str(tmp_path), "--cert", "x.pem", "--port", "0")
    assert out.returncode == 2 and "--cert and --key go together" in out.stderr


# --- probes -----------------------------------------------------------------------------


def _old_client(max_version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that really offers TLS 1.0/1.1: OpenSSL's security level 0 allows them."""
    import warnings

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = max_version
    return ctx


def _client_hello_versions(ctx: ssl.SSLContext) -> tuple[int, set[int]]:
    """(legacy_version, supported_versions) of the ClientHello ``ctx`` sends, read off the wire."""
    listener = socket.create_server(("127.0.0.1", 0))
    captured: list[bytes] = []

    def accept() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            captured.append(data)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    sock = socket.create_connection(listener.getsockname(), timeout=5)
    with pytest.raises((ssl.SSLError, OSError)):
        ctx.wrap_socket(sock)  # the capture side closes without answering
    sock.close()
    thread.join(5)
    listener.close()
    record = captured[0]
    assert record[0] == 0x16  # handshake
    body = record[5:]
    assert body[0] == 1  # ClientHello
    legacy = int.from_bytes(body[4:6], "big")
    pos = 6 + 32
    pos += 1 + body[pos]  # session id
    pos += 2 + int.from_bytes(body[pos : pos + 2], "big")  # cipher suites
    pos += 1 + body[pos]  # compression methods
    supported: set[int] = set()
    if pos < len(body):
        end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
        pos += 2
        while pos < end:
            kind = int.from_bytes(body[pos : pos + 2], "big")
            size = int.from_bytes(body[pos + 2 : pos + 4], "big")
            if kind == 43:  # supported_versions
                data = body[pos + 5 : pos + 4 + size]
                supported = {int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)}
            pos += 4 + size
    return legacy, supported


@pytest.mark.parametrize(
    ("version", "wire"),
    [(ssl.TLSVersion.TLSv1, 0x0301), (ssl.TLSVersion.TLSv1_1, 0x0302)],
    ids=["TLSv1.0", "TLSv1.1"],
)
def test_old_tls_versions_are_refused(
    tls_server: ServerProcess, version: ssl.TLSVersion, wire: int
) -> None:
    ctx = _old_client(version)
    legacy, supported = _client_hello_versions(ctx)
    assert legacy == wire and all(v <= wire for v in supported)  # it really offers only that
    sock = socket.create_connection(("127.0.0.1", tls_server.port), timeout=5)
    with pytest.raises(ssl.SSLError) as info:
        ctx.wrap_socket(sock)
    sock.close()
    # The server ends the handshake without a ServerHello: the client sees the close.
    assert isinstance(info.value, ssl.SSLEOFError) or "PROTOCOL_VERSION" in str(info.value)
    _still_serves(tls_server)


def test_tls_1_2_is_accepted_with_a_forward_secret_aead_suite(tls_server: ServerProcess) -> None:
    ctx = pinned_context(None)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as sock,
        ctx.wrap_socket(sock) as tls,
    ):
        assert tls.version() == "TLSv1.2"
        cipher = tls.cipher()
        assert cipher is not None and cipher[0].startswith("ECDHE-") and "GCM" in cipher[0]
        assert tls.compression() is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_renegotiation_is_refused(tls_server: ServerProcess) -> None:
    # Python's ssl cannot start a renegotiation; s_client does on a line "R" (TLS 1.2 only:
    # TLS 1.3 has no renegotiation at all).
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{tls_server.port}", "-tls1_2"],
        input="R\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    text = out.stdout + out.stderr
    assert "Protocol  : TLSv1.2" in text or "Protocol: TLSv1.2" in text, text
    assert "RENEGOTIATING" in text, text
    assert "no renegotiation" in text, text  # the server's no_renegotiation alert
    _still_serves(tls_server)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type":"hello","proto":1,"nick":"plain"}\n',
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    ids=["json", "http"],
)
def test_plaintext_to_the_tls_port_is_closed_cleanly(
    tls_server: ServerProcess, payload: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as sock:
        sock.sendall(payload)
        started = time.monotonic()
        assert sock.recv(4096) == b""  # a FIN, no bytes, no reset
        assert time.monotonic() - started < 2
    _still_serves(tls_server)
    assert "Traceback" not in tls_server.log()


@pytest.mark.parametrize(
    "partial", [b"", b"\x16\x03\x01\x02\x00\x01\x00\x01"], ids=["silent", "half"]
)
def test_the_handshake_deadline_closes_a_stalled_client(
    tls_server: ServerProcess, partial: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(partial)
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            data = b""
        waited = time.monotonic() - started
    assert data == b""
    assert 1.0 <= waited < 5.0, waited  # tls_handshake_timeout = 1.5
    _still_serves(tls_server)


def _still_serves(srv: ServerProcess) -> None:
    async def hello() -> None:
        fp = logged_fingerprint(srv)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", srv.port, ssl=pinned_context(fp)), 5
        )
        peer = Peer(reader, writer)
        try:
            await peer.hello("checker")
        finally:
            await peer.close()

    asyncio.run(hello())


def test_a_person_is_asked_before_an_unknown_certificate_is_pinned(
    tls_server: ServerProcess, tmp_path: Path
) -> None:
    import os

    import pexpect

    fp = format_fingerprint(logged_fingerprint(tls_server))
    env = {**os.environ, "CHINWAG_CONFIG_DIR": str(tmp_path / "cfg"), "TERM": "dumb"}
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"
    address = f"127.0.0.1:{tls_server.port}"
    for answer, pinned in (("", False), ("y", True)):
        child = pexpect.spawn(
            sys.executable,
            ["-m", "chinwag", "chat", address, "--tls", "--nick", "ann"],
            env=env,
            encoding="utf-8",
            timeout=20,
            dimensions=(50, 200),
        )
        try:
            child.expect(re.escape(fp))
            child.expect(r"trust this server\? \[y/N\]")
            child.sendline(answer)
            if pinned:
                child.expect(f"pinned {re.escape(address)} \\(as you trusted it\\)")
                child.expect(f"connected to {re.escape(address)} over TLS")
                child.sendline("/quit")
            else:
                child.expect("not trusted; chinwag did not connect")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == (0 if pinned else 1)
        assert (tmp_path / "cfg" / "known_hosts").exists() == pinned


async def test_a_connected_client_gives_up_when_the_certificate_changes_under_it(
    tmp_path: Path,
) -> None:
    from chinwag.client import Status

    srv = ServerProcess(tmp_path / "srv", FAST, args=["--tls", "--no-announce"])
    srv.start()
    client = ChatClient(
        "127.0.0.1",
        srv.port,
        nick="ann",
        config_dir=tmp_path / "client",
        ssl=pinned_context(logged_fingerprint(srv)),
        reconnect_min=0.1,
        reconnect_max=0.5,
    )
    try:
        await client.connect()
        async with asyncio.timeout(10):
            while "logged in" not in srv.log():  # the server logs it just after welcome
                await asyncio.sleep(0.05)
        await asyncio.to_thread(srv.kill)
        (srv.data / CERT_FILE).unlink()
        (srv.data / KEY_FILE).unlink()
        await asyncio.to_thread(srv.start)
        async with asyncio.timeout(20):
            while True:
                event = await client.next_event()
                if isinstance(event, Status) and event.state == "offline":
                    break
        assert event.error is not None and "TLS certificate refused" in event.error
        assert "not the pinned one" in event.error
        assert srv.log().count("logged in") == 1  # only the first, before the change
    finally:
        await client.close()
        srv.kill()


def test_an_app_asks_about_a_changed_certificate_in_words_not_commands(tmp_path: Path) -> None:
    """The desktop app's question: plain words, a yes replaces the pin, a no keeps it."""
    old, new = bytes(range(32)), bytes(range(1, 33))
    known = KnownHosts(tmp_path / "known_hosts")
    known.add("10.9.9.9", 5050, old)
    said: list[str] = []
    target = Target("10.9.9.9", 5050)

    with pytest.raises(ConnectError, match="not trusted"):
        secure(
            target,
            known=known,
            ask=lambda p: "n",
            say=said.append,
            fetch=lambda h, p: new,
            changed="ask",
        )
    text = "\n".join(said)
    assert "has changed since you last connected" in text and format_fingerprint(new) in text
    assert "chinwag known-hosts" not in text and "known_hosts" not in text
    assert known.get("10.9.9.9", 5050) == old
    ctx = secure(
        target,
        known=known,
        ask=lambda p: "y",
        say=said.append,
        fetch=lambda h, p: new,
        changed="ask",
    )
    assert ctx is not None and known.get("10.9.9.9", 5050) == new
