"""Running under systemd (issue 17, item 5): sd_notify readiness and watchdog, the unit file.

The notifications go to a real Unix datagram socket that the test makes, the
way systemd does, from a real ``chinwag serve``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ServerProcess
from ops_support import SETTINGS

UNIT = Path(__file__).parents[2] / "contrib" / "chinwag.service"


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket like systemd's NOTIFY_SOCKET: a file, or in the abstract namespace."""
    with tempfile.TemporaryDirectory(prefix="cw-notify-") as folder:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if request.param == "path":  # in /tmp: short enough for AF_UNIX
            address = str(Path(folder) / "notify")
            sock.bind(address)
        else:  # "@name" in NOTIFY_SOCKET stands for "\0name"
            name = f"cw-notify-{os.getpid()}-{Path(folder).name}"
            sock.bind("\0" + name)
            address = "@" + name
        try:
            yield sock, address
        finally:
            sock.close()


def receive(sock: socket.socket, timeout: float) -> str:
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def test_the_server_says_ready_once_listening_then_pings_the_watchdog_then_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    srv = ServerProcess(tmp_path / "server", SETTINGS)
    srv.start()
    try:
        ready = receive(sock, 20)
        assert ready.split("\n") == ["READY=1", f"STATUS=listening on 127.0.0.1:{srv.port}"]
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5):
            pass  # it does listen
        start = time.monotonic()
        pings = [receive(sock, 5) for _ in range(5)]
        assert pings == ["WATCHDOG=1"] * 5
        assert time.monotonic() - start < 4  # about 0.5 s: pings come every 0.1 s
        assert srv.stop() == 0
        while (message := receive(sock, 5)) == "WATCHDOG=1":
            pass  # pings sent before the SIGTERM was handled
        assert message == "STOPPING=1"
    finally:
        srv.kill()


def test_without_a_watchdog_only_readiness_and_stopping_are_sent(
    tmp_path: Path, notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", "1")  # the watchdog is meant for another process
    srv = ServerProcess(tmp_path / "server", SETTINGS)
    srv.start()
    try:
        assert receive(sock, 20).startswith("READY=1\n")
        time.sleep(0.5)
        assert srv.stop() == 0
        assert receive(sock, 5) == "STOPPING=1"
    finally:
        srv.kill()


def test_an_unreachable_notify_socket_is_logged_once_and_the_server_serves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    srv = ServerProcess(tmp_path / "server", SETTINGS)
    srv.start()
    try:
        time.sleep(0.5)  # several pings fail meanwhile
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5):
            pass
        assert srv.stop() == 0
    finally:
        srv.kill()
    assert srv.log().count("cannot notify systemd") == 1


def test_the_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (no systemd)")
    chinwag = Path(sys.executable).parent / "chinwag"
    if not chinwag.exists():
        pytest.skip(f"no chinwag script beside {sys.executable} to stand in for ExecStart")
    text = UNIT.read_text()
    assert "/usr/local/bin/chinwag serve" in text
    for hardening in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes"):
        assert hardening in text
    assert "Type=notify" in text and "WatchdogSec=" in text
    # verify wants ExecStart to exist: the installed script stands in for /usr/local/bin's.
    unit = tmp_path / "chinwag.service"
    unit.write_text(text.replace("/usr/local/bin/chinwag", str(chinwag)))
    out = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", out.stderr  # unknown keys are only warnings: none
