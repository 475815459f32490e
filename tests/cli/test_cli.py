"""The chinwag command line: settings, admin."""

from __future__ import annotations

from pathlib import Path

from conftest import Peer, ServerProcess
from support.cli import chinwag

from chinwag.config import Settings, describe


def test_print_settings_lists_every_setting_with_overrides_applied(tmp_path: Path) -> None:
    config = tmp_path / "chinwag.toml"
    config.write_text('[server]\nmotd = "hi from toml"\nbacklog_limit = 500\n')
    out = chinwag("serve", "--config", str(config), "--set", "offline_quota=7", "--print-settings")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(describe())
    by_name = {line.split()[0]: line for line in lines}
    assert "'hi from toml'" in by_name["motd"]
    assert " 500 " in by_name["backlog_limit"] and "(default 10000)" in by_name["backlog_limit"]
    assert " 7 " in by_name["offline_quota"]
    assert " 5050 " in by_name["port"]


def test_bad_settings_are_refused_in_plain_words() -> None:
    out = chinwag("serve", "--set", "no_such=1", "--print-settings")
    assert out.returncode == 2
    assert "unknown setting 'no_such'" in out.stderr and "--print-settings" in out.stderr
    out = chinwag("serve", "--set", "rate_burst=lots", "--print-settings")
    assert out.returncode == 2 and "rate_burst needs an int" in out.stderr
    out = chinwag("serve", "--set", "log_level=verbose", "--print-settings")
    assert out.returncode == 2 and "log_level is one of debug, info" in out.stderr


async def test_connection_events_are_logged_at_debug_only(tmp_path: Path) -> None:
    for level in ("info", "debug"):
        srv = ServerProcess(tmp_path / level, {"argon2_memory_kib": 8192, "log_level": level})
        srv.start()
        try:
            peer = await Peer.connect(srv.port)
            await peer.hello("ann", device="desk")
            assert srv.stop() == 0  # the connection is closed at shutdown, then "stopped"
            await peer.close()
        finally:
            srv.kill()
        log = srv.log()
        assert "listening on" in log and "stopped" in log
        lines = (" connected\n", "logged in as ann (guest, device desk)", "closed: server shutting")
        assert [line in log for line in lines] == [level == "debug"] * 3, log


def test_configuration_doc_lists_every_setting() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    for name, kind, default, _ in describe():
        assert f"| `{name}` | {kind} | `{default!r}` |" in doc, f"{name} is missing or stale"
    assert Settings().port == 5050


async def test_admin_lists_resets_deletes_and_counts(tmp_path: Path) -> None:
    # At debug level, so that the check that no password is logged covers every line.
    srv = ServerProcess(tmp_path / "srv", {"argon2_memory_kib": 8192, "log_level": "debug"})
    srv.start()
    try:
        bob = await Peer.connect(srv.port)
        await bob.hello("Bob")
        await bob.send(type="register", password="old password")
        await bob.recv_type("ok")
        await bob.send(type="say", room="lobby", body="hi", cid="1")
        await bob.recv_type("ack")
        await bob.close()
        data = str(srv.data)
        out = chinwag("admin", "--data", data, "accounts")
        assert out.returncode == 0 and "Bob" in out.stdout and "1 account(s)" in out.stdout
        out = chinwag("admin", "--data", data, "stats")
        assert out.returncode == 0 and "messages" in out.stdout
        rows = out.stdout.splitlines()  # one column of names, one of numbers, aligned
        assert len({len(row) for row in rows}) == 1 and "deleted_accounts" in out.stdout, rows
        out = chinwag(
            "admin",
            "--data",
            data,
            "reset-password",
            "bob",
            "--password-stdin",
            stdin="s3cret-new-pw\n",
        )
        assert out.returncode == 0, out.stderr
        assert "s3cret-new-pw" not in out.stdout + out.stderr
        peer = await Peer.connect(srv.port)
        await peer.hello("bob", password="s3cret-new-pw")
        await peer.close()
        out = chinwag("admin", "--data", data, "delete", "bob")
        assert out.returncode == 0 and "reserved" in out.stdout
        peer = await Peer.connect(srv.port)
        await peer.send(type="hello", proto=1, nick="BOB")
        assert (await peer.recv())["code"] == "bad_nick"
        await peer.close()
        out = chinwag("admin", "--data", data, "delete", "nobody")
        assert out.returncode == 1 and "no account" in out.stderr
        assert "s3cret-new-pw" not in srv.log() and "old password" not in srv.log()
    finally:
        srv.kill()


def test_admin_on_a_directory_without_a_database(tmp_path: Path) -> None:
    out = chinwag("admin", "--data", str(tmp_path), "accounts")
    assert out.returncode == 1 and "--data" in out.stderr


def test_help_names_the_program_not_one_of_its_commands() -> None:
    out = chinwag("--help")
    assert out.returncode == 0
    assert "chinwag chat" not in out.stdout.split("positional arguments")[0], out.stdout
    assert "self-hostable chat server" in out.stdout
    assert "known-hosts" in out.stdout


def test_a_server_is_named_after_its_host_unless_named() -> None:
    import socket

    from chinwag.config import build

    assert build().server_name == socket.gethostname().split(".")[0]
    assert build(server_name="lan party").server_name == "lan party"
