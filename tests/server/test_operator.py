"""The operator's word reaches live sessions (issue 10, item 8), against real servers.

One server per data directory (a lock, released by the kernel even after
kill -9); ``chinwag admin`` reaches a running server through ``control.sock``
(mode 0600, same user only), so that ``delete`` and ``reset-password`` end the
account's live sessions at once; with no server running, it works on the
database as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import Peer, ServerProcess

from chinwag.client import ChatClient, ErrorReceived, Status

CHEAP = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}
# Were the lock missing, the second server would listen: on loopback, unannounced.
LOOPBACK = ("--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--no-announce")


async def admin(data: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """``chinwag admin --data DATA ARGS``: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chinwag",
        "admin",
        "--data",
        str(data),
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def register(port: int, nick: str, password: str, peers: list[Peer]) -> Peer:
    peer = await Peer.connect(port)
    peers.append(peer)
    await peer.hello(nick)
    await peer.send(type="register", password=password, ref="r")
    assert (await peer.recv_type("ok", timeout=30))["ref"] == "r"
    return peer


async def log_in(port: int, nick: str, peers: list[Peer], **extra: str) -> Peer:
    peer = await Peer.connect(port)
    peers.append(peer)
    await peer.hello(nick, **extra)
    return peer


async def hello_error(port: int, nick: str, **extra: str) -> str:
    """The error code a hello gets."""
    peer = await Peer.connect(port)
    try:
        await peer.send(type="hello", proto=1, nick=nick, **extra)
        frame = await peer.recv()
        assert frame["type"] == "error", frame
        return str(frame["code"])
    finally:
        await peer.close()


async def ended(peer: Peer) -> dict[str, object]:
    """The ``session_ended`` error a peer gets before its connection closes."""
    frames = await peer.expect_closed(timeout=10)
    errors = [f for f in frames if f["type"] == "error"]
    assert [e["code"] for e in errors] == ["session_ended"], frames
    return errors[0]


# -- the data-dir lock ------------------------------------------------------------------


def test_a_second_server_on_the_same_data_dir_refuses_naming_the_first(tmp_path: Path) -> None:
    first = ServerProcess(tmp_path / "data", CHEAP).start()
    try:
        assert first.proc is not None
        second = subprocess.run(
            [sys.executable, "-m", "chinwag", "serve", "--data", str(first.data), *LOOPBACK],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1, second.stderr
        assert f"another chinwag server (pid {first.proc.pid})" in second.stderr
        assert str(first.data) in second.stderr and "--data" in second.stderr
        assert "listening on" not in second.stderr
        assert first.proc.poll() is None  # the first one runs on
    finally:
        first.kill()


async def test_a_lock_left_by_kill_9_does_not_block_the_next_start(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "data", CHEAP).start()
    try:
        await register(srv.port, "bob", "bob password", peers)
        srv.restart()  # kill -9, then start on the same directory
        assert srv.proc is not None
        assert (srv.data / "lock").read_text().split()[0] == str(srv.proc.pid)
        await log_in(srv.port, "bob", peers, password="bob password")
    finally:
        srv.kill()


# -- the control socket ------------------------------------------------------------------


def test_the_control_socket_is_private_to_the_servers_user(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", CHEAP).start()
    try:
        mode = (srv.data / "control.sock").stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert stat.S_IMODE((srv.data / "lock").stat().st_mode) == 0o600
    finally:
        srv.kill()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_another_user_is_refused_even_when_the_socket_mode_is_loosened() -> None:
    # Under /tmp, not pytest's tmp_path: nobody may enter the directories above that.
    top = Path(tempfile.mkdtemp(prefix="chinwag-op-", dir="/tmp"))
    srv = ServerProcess(top / "data", CHEAP).start()
    try:
        path = srv.data / "control.sock"
        for loosened in (top, srv.data):
            loosened.chmod(0o755)
        os.chmod(path, 0o666)  # a mistake: the peer's uid is still checked
        script = (
            "import os, socket, sys\n"
            "os.setuid(65534)\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.settimeout(10)\n"
            "s.connect(sys.argv[1])\n"
            's.sendall(b\'{"op":"delete","nick":"bob"}\\n\')\n'
            "data = b''\n"
            "while chunk := s.recv(4096):\n"
            "    data += chunk\n"
            "sys.stdout.write(data.decode())\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        reply = json.loads(out.stdout)
        assert reply["ok"] is False and "user (root)" in reply["message"], reply
        assert "refused a control connection from uid 65534" in srv.log()
    finally:
        srv.kill()
        shutil.rmtree(top)


def control_exchange(path: Path, data: bytes, timeout: float = 10.0) -> dict[str, object]:
    """Send ``data`` on the control socket; the reply that came back before it closed."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        # The server may answer (a refusal) and close before reading it all.
        with contextlib.suppress(BrokenPipeError):
            sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    reply: dict[str, object] = json.loads(received)
    return reply


async def test_bad_control_requests_get_a_clear_error_and_change_nothing(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "data", CHEAP).start()
    try:
        bob = await register(srv.port, "bob", "bob password", peers)
        path = srv.data / "control.sock"
        for request, words in [
            (b"not json\n", "JSON"),
            (b'{"op":"explode","nick":"bob"}\n', "unknown"),
            (b'{"op":"delete"}\n', "nick"),
            (b'{"op":"reset-password","nick":"bob"}\n', "password"),
            (b'{"op":"reset-password","nick":"bob","password":"short"}\n', "8"),
            (
                b'{"op":"reset-password","nick":"bob","password":"' + b"\\ud800" * 9 + b'"}\n',
                "text",
            ),
            (b'{"op":"delete","nick":"no such one"}\n', "nick"),
            (b"{" + b" " * 70_000 + b"}\n", "longer"),
        ]:
            reply = await asyncio.to_thread(control_exchange, path, request)
            assert reply["ok"] is False and words in str(reply["message"]), (request[:40], reply)
        await bob.send(type="ping", ref="p")
        assert (await bob.recv_type("pong"))["ref"] == "p"
        await log_in(srv.port, "bob", peers, password="bob password", device="two")
    finally:
        srv.kill()


async def test_control_connections_are_bounded_in_number_and_time(tmp_path: Path) -> None:
    settings = {**CHEAP, "control_max_conns": 2, "control_timeout": 1.0}
    srv = ServerProcess(tmp_path / "data", settings).start()
    path = str(srv.data / "control.sock")
    socks: list[socket.socket] = []
    try:
        for _ in range(2):  # at the limit: both are served (they wait for a request)
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(path)
            socks.append(s)
        await asyncio.sleep(0.2)
        reply = await asyncio.to_thread(control_exchange, srv.data / "control.sock", b"")
        assert reply["ok"] is False and "busy" in str(reply["message"]), reply
        start = time.monotonic()
        idle = await asyncio.to_thread(socks[0].recv, 4096)  # silent for control_timeout
        assert 0.5 <= time.monotonic() - start < 5, idle
        for s in socks:  # both were served: they waited for a request, not refused as busy
            if s is not socks[0]:
                idle = await asyncio.to_thread(s.recv, 4096)
            assert json.loads(idle)["ok"] is False and "in time" in json.loads(idle)["message"]
            assert await asyncio.to_thread(s.recv, 4096) == b""
    finally:
        for s in socks:
            s.close()
        srv.kill()


# -- delete and reset-password reach live sessions ------------------------------------------


async def test_delete_ends_the_accounts_live_sessions_at_once(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "data", CHEAP).start()
    try:
        bob = await register(srv.port, "bob", "bob password", peers)
        phone = await log_in(srv.port, "bob", peers, password="bob password", device="phone")
        ann = await log_in(srv.port, "ann", peers)
        code, out, err = await admin(srv.data, "delete", "bob")
        assert code == 0, err
        assert "deleted bob" in out and "2 live session(s) ended" in out
        for peer in (bob, phone):
            error = await ended(peer)
            assert error["reason"] == "account_deleted" and "deleted" in str(error["message"])
        assert await hello_error(srv.port, "bob", password="bob password") == "bad_nick"
        assert await hello_error(srv.port, "Bob") == "bad_nick"  # reserved, also for guests
        await ann.send(type="say", room="lobby", body="still here", ref="s")
        assert (await ann.recv_type("ack"))["ref"] == "s"
        code, out, err = await admin(srv.data, "accounts")
        assert code == 0 and "deleted (nick reserved)" in out
    finally:
        srv.kill()
    # After a restart too: the operator's word was stored.
    srv.start()
    try:
        assert await hello_error(srv.port, "bob", password="bob password") == "bad_nick"
    finally:
        srv.kill()


async def test_reset_password_ends_sessions_and_the_new_password_works_at_once(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "data", {**CHEAP, "log_level": "debug"}).start()
    try:
        bob = await register(srv.port, "bob", "old password", peers)
        code, out, err = await admin(
            srv.data, "reset-password", "BOB", "--password-stdin", stdin="n3w-s3cret-pw\n"
        )
        assert code == 0, err
        assert "new password set for bob" in out and "1 live session(s) ended" in out
        error = await ended(bob)
        assert error["reason"] == "password_reset" and "password" in str(error["message"])
        assert await hello_error(srv.port, "bob", password="old password") == "bad_password"
        await log_in(srv.port, "bob", peers, password="n3w-s3cret-pw")
        code, out, err = await admin(
            srv.data, "reset-password", "bob", "--password-stdin", stdin="short\n"
        )
        assert code == 2 and "8" in err  # too short: refused, nothing changed
        await log_in(srv.port, "bob", peers, password="n3w-s3cret-pw", device="two")
        assert "n3w-s3cret-pw" not in srv.log() + out + err
        assert "old password" not in srv.log()
    finally:
        srv.kill()


async def test_admin_without_a_running_server_works_on_the_database(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "data", CHEAP).start()
    try:
        await register(srv.port, "bob", "old password", peers)
        await register(srv.port, "cat", "cat password", peers)
        for peer in peers:
            await peer.close()
        srv.kill()  # kill -9: control.sock is left behind, nobody answers on it
        code, out, err = await admin(
            srv.data, "reset-password", "bob", "--password-stdin", stdin="n3w-s3cret-pw\n"
        )
        assert code == 0 and "new password set for bob" in out, err
        assert "session" not in out  # nothing was online
        code, out, err = await admin(srv.data, "delete", "cat")
        assert code == 0 and "deleted cat" in out, err
        code, out, err = await admin(srv.data, "delete", "cat")
        assert code == 1 and "no account" in err
        srv.start()
        assert await hello_error(srv.port, "bob", password="old password") == "bad_password"
        await log_in(srv.port, "bob", peers, password="n3w-s3cret-pw")
        assert await hello_error(srv.port, "cat") == "bad_nick"
    finally:
        srv.kill()


async def test_a_login_under_way_when_the_account_is_deleted_is_refused(
    tmp_path: Path, peers: list[Peer]
) -> None:
    # Checking a password takes a second or more here: the delete lands meanwhile,
    # after the login has read the account.
    slow = {"argon2_memory_kib": 8192, "argon2_time_cost": 150}
    srv = ServerProcess(tmp_path / "data", slow).start()
    try:
        bob = await register(srv.port, "bob", "bob password", peers)
        await bob.close()
        late = await Peer.connect(srv.port)
        peers.append(late)
        await late.send(type="hello", proto=1, nick="bob", password="bob password")
        await asyncio.sleep(0.3)
        started = time.monotonic()
        reply = await asyncio.to_thread(
            control_exchange, srv.data / "control.sock", b'{"op":"delete","nick":"bob"}\n'
        )
        assert reply == {"ok": True, "message": "deleted bob; the nick stays reserved"}
        frame = await late.recv(timeout=30)
        assert time.monotonic() - started > 0.2, "the delete came after the login: no race"
        assert frame["type"] == "error" and frame["code"] == "bad_nick", frame
    finally:
        srv.kill()


async def test_the_client_library_shows_the_reason_and_goes_offline(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", CHEAP).start()
    client = ChatClient(
        "127.0.0.1", srv.port, nick="bob", config_dir=tmp_path / "client", reconnect_min=0.1
    )
    try:
        await client.connect()
        await client.register("bob password")
        code, _, err = await admin(
            srv.data, "reset-password", "bob", "--password-stdin", stdin="n3w-s3cret-pw\n"
        )
        assert code == 0, err
        seen: list[str] = []
        async with asyncio.timeout(20):
            while True:
                event = await client.next_event()
                if isinstance(event, ErrorReceived):
                    seen.append(f"{event.error.code} {event.error.extra.get('reason')}")
                elif isinstance(event, Status) and event.state == "offline":
                    seen.append(f"offline {event.error}")
                    break
        assert seen[0] == "session_ended password_reset", seen
        assert seen[-1].startswith("offline bad_password"), seen
    finally:
        await client.close()
        srv.kill()


async def test_without_a_control_socket_admin_refuses_instead_of_going_around_the_server(
    tmp_path: Path, peers: list[Peer]
) -> None:
    # DATA/control.sock would be longer than a Unix socket path may be (107 bytes).
    data = tmp_path / ("d" * 110)
    srv = ServerProcess(data, CHEAP).start()
    try:
        assert srv.proc is not None
        assert "longer than 107 bytes; use a shorter --data" in srv.log()
        await register(srv.port, "bob", "bob password", peers)
        code, out, err = await admin(data, "delete", "bob")
        assert code == 1 and f"another chinwag server (pid {srv.proc.pid})" in err, out + err
        assert "nothing was changed" in err
        await log_in(srv.port, "bob", peers, password="bob password", device="two")
    finally:
        srv.kill()


async def test_both_ways_apply_the_same_password_rules(tmp_path: Path, peers: list[Peer]) -> None:
    srv = ServerProcess(tmp_path / "data", {**CHEAP, "min_password": 12}).start()
    try:
        await register(srv.port, "bob", "a long old password", peers)
        eleven = "elevenchars\n"
        code, out, err = await admin(
            srv.data, "reset-password", "bob", "--password-stdin", stdin=eleven
        )
        assert code == 2 and "at least 12" in err, out + err  # the server's rules
        srv.stop()
        code, out, err = await admin(
            srv.data, "--set", "min_password=12", "reset-password", "bob", "--password-stdin",
            stdin=eleven,
        )  # fmt: skip
        assert code == 2 and "at least 12" in err, out + err  # offline: the same, when told
        code, out, err = await admin(srv.data, "--set", "min_pasword=12", "accounts")
        assert code == 2 and "unknown setting 'min_pasword'" in err
        srv.start()
        await log_in(srv.port, "bob", peers, password="a long old password")
    finally:
        srv.kill()


def test_a_silent_control_connection_does_not_hold_up_shutdown(tmp_path: Path) -> None:
    settings = {**CHEAP, "control_timeout": 60.0, "shutdown_grace": 8.0}
    srv = ServerProcess(tmp_path / "data", settings).start()
    try:
        with socket.socket(socket.AF_UNIX) as idle:
            idle.connect(str(srv.data / "control.sock"))
            time.sleep(0.2)
            start = time.monotonic()
            assert srv.stop(timeout=20) == 0
            assert time.monotonic() - start < 4
        assert not (srv.data / "control.sock").exists()
    finally:
        srv.kill()
