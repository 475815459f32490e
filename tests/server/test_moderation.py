"""Moderation over real sockets against a real server process (issue 16, protocol §8),
with ``chinwag admin`` reaching the running server through its control socket."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import Peer, ServerProcess

from chinwag.client import ChatClient, Status

PASSWORD = "correct horse"


async def admin(data: Path, *args: str) -> tuple[int, str, str]:
    """``chinwag admin --data DATA ARGS``: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chinwag",
        "admin",
        "--data",
        str(data),
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def account(peers: list[Peer], port: int, nick: str, device: str = "default") -> Peer:
    """A session of the account ``nick``, registered by its first session."""
    peer = await Peer.connect(port)
    peers.append(peer)
    await peer.send(type="hello", proto=1, nick=nick, password=PASSWORD, device=device)
    first = await peer.recv()
    if first["type"] == "error":  # not registered yet
        assert first["code"] == "bad_password", first
        await peer.hello(nick)
        await peer.send(type="register", password=PASSWORD, ref="reg")
        assert (await peer.recv_type("ok", timeout=30))["ref"] == "reg"
        return peer
    while first["type"] != "caught_up":
        first = await peer.recv()
    return peer


async def reply(peer: Peer, ref: str, **frame: Any) -> dict[str, Any]:
    await peer.send(ref=ref, **frame)
    while (got := await peer.recv()).get("ref") != ref:
        pass
    return got


async def test_a_member_cannot_kick_and_a_private_room_stays_hidden(
    server: ServerProcess, peers: list[Peer]
) -> None:
    olga = await account(peers, server.port, "olga")
    mallory = await account(peers, server.port, "mallory")
    assert (await reply(olga, "j", type="join", room="secret"))["type"] == "ok"
    info = await olga.recv_type("room_info")
    assert (info["room"], info["role"]) == ("secret", "owner")
    assert (await reply(olga, "p", type="room", room="secret", private=True))["type"] == "ok"
    await reply(olga, "s", type="say", room="secret", body="hidden words")
    no = await reply(mallory, "j", type="join", room="secret")
    assert (no["code"], no["reason"]) == ("forbidden", "private")
    rooms = await reply(mallory, "l", type="rooms")
    assert "secret" not in [r["name"] for r in rooms["rooms"]]
    kick = await reply(mallory, "k", type="kick", room="lobby", nick="olga", reason="mine")
    assert (kick["code"], kick["reason"]) == ("forbidden", "not_allowed")
    assert "hidden words" not in str(await mallory.quiet(0.3))


async def test_chinwag_admin_grant_then_a_server_ban_cuts_off_every_device_at_once(
    server: ServerProcess, peers: list[Peer]
) -> None:
    ada = await account(peers, server.port, "ada")
    desk = await account(peers, server.port, "bob")
    phone = await account(peers, server.port, "bob", device="phone")
    code, out, err = await admin(server.data, "grant", "ada", "admin")
    assert code == 0, err
    assert "ada is now admin of the server" in out
    ban = await reply(ada, "b", type="ban", nick="bob", until=None, reason="abuse")
    assert ban["type"] == "ok"
    for peer in (desk, phone):
        frames = await peer.expect_closed(timeout=10)
        assert frames[-1] == {"type": "bye", "reason": "banned"}
    again = await Peer.connect(server.port)
    peers.append(again)
    await again.send(type="hello", proto=1, nick="bob", password=PASSWORD)
    refused = await again.recv()
    assert (refused["code"], refused["until"]) == ("banned", None)
    code, out, err = await admin(server.data, "audit")
    assert code == 0, err
    lines = out.splitlines()
    assert any("operator" in line and "grant" in line and "ada" in line for line in lines)
    assert any(
        "ada" in line and "ban" in line and "bob" in line and "abuse" in line for line in lines
    )
    code, out, err = await admin(server.data, "unban", "bob")
    assert code == 0, err
    back = await account(peers, server.port, "bob")
    assert (await reply(back, "p", type="ping"))["type"] == "pong"


async def test_chinwag_admin_refuses_bad_input_and_changes_nothing(
    server: ServerProcess, peers: list[Peer]
) -> None:
    await account(peers, server.port, "bob")
    code, _, err = await admin(server.data, "ban", "bob", "--until", "yesterday-ish")
    assert code == 2 and "30m, 2h, 7d" in err
    code, _, err = await admin(server.data, "ban", "nobody-here")
    assert code == 1 and "nobody called nobody-here" in err
    code, _, err = await admin(server.data, "grant", "bob", "mod", "--room", "nowhere")
    assert code == 1 and "no room #nowhere" in err
    code, out, _ = await admin(server.data, "audit")
    assert code == 0 and out.splitlines()[-1] == "0 entries"


async def test_with_no_server_running_chinwag_admin_changes_the_database_itself(
    server: ServerProcess, peers: list[Peer]
) -> None:
    bob = await account(peers, server.port, "bob")
    await bob.close()
    assert server.stop() == 0
    code, out, err = await admin(server.data, "ban", "bob", "--until", "2h", "--reason", "cool off")
    assert code == 0, err
    assert out.strip() == "bob banned from the server"
    server.start()
    again = await Peer.connect(server.port)
    peers.append(again)
    await again.send(type="hello", proto=1, nick="bob", password=PASSWORD)
    refused = await again.recv()
    assert refused["code"] == "banned" and refused["until"].endswith("Z")
    assert "cool off" in refused["message"]
    code, out, _ = await admin(server.data, "audit", "--since", "1h")
    assert code == 0
    [entry] = [line for line in out.splitlines() if "cool off" in line]
    assert "operator" in entry and "server" in entry and "until" in entry


async def test_chinwag_admin_audit_prints_at_most_audit_page_entries(
    server: ServerProcess, peers: list[Peer]
) -> None:
    await account(peers, server.port, "bob")
    for role in ("admin", "member", "admin"):
        code, _, err = await admin(server.data, "grant", "bob", role)
        assert code == 0, err
    code, out, _ = await admin(server.data, "--set", "audit_page=4", "audit")
    lines = out.splitlines()
    assert code == 0 and lines[-1] == "3 entries"
    assert [line.rsplit(" ", 2)[-2:] for line in lines[1:-1]] == [
        ["role", "admin"],
        ["role", "member"],
        ["role", "admin"],
    ]
    code, out, _ = await admin(server.data, "--set", "audit_page=3", "audit")
    assert code == 0
    assert out.splitlines()[-1] == (
        "3 entries (the most printed at once: narrow it with --since or --room)"
    )
    code, out, _ = await admin(server.data, "--set", "audit_page=2", "audit")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4 and lines[2].endswith("role member")


async def test_a_banned_library_client_stops_reconnecting_and_says_why(
    server: ServerProcess, peers: list[Peer], tmp_path: Path
) -> None:
    ada = await account(peers, server.port, "ada")
    await account(peers, server.port, "bob")
    code, _, err = await admin(server.data, "grant", "ada", "admin")
    assert code == 0, err
    client = ChatClient(
        "127.0.0.1",
        server.port,
        nick="bob",
        password=PASSWORD,
        config_dir=tmp_path / "bob",
        reconnect_min=0.05,
        reconnect_max=0.2,
    )
    await asyncio.wait_for(client.connect(), 15)
    try:
        until = "2099-01-01T00:00:00Z"
        assert (await reply(ada, "b", type="ban", nick="bob", until=until))["type"] == "ok"
        final: Status | None = None
        async with asyncio.timeout(15):
            async for event in client.events():
                if isinstance(event, Status) and event.state == "offline":
                    final = event
                    break
        assert final is not None and final.error is not None
        assert final.error.startswith("banned: ") and "2099-01-01 00:00 UTC" in final.error
    finally:
        await client.close(timeout=2)


async def test_deleting_an_account_and_resetting_a_password_are_audited_without_the_password(
    server: ServerProcess, peers: list[Peer]
) -> None:
    await account(peers, server.port, "bob")
    await account(peers, server.port, "carol")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chinwag",
        "admin",
        "--data",
        str(server.data),
        "reset-password",
        "carol",
        "--password-stdin",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    await asyncio.wait_for(proc.communicate(b"a brand new secret\n"), 60)
    assert proc.returncode == 0
    code, _, err = await admin(server.data, "delete", "bob")
    assert code == 0, err
    code, out, _ = await admin(server.data, "audit")
    assert code == 0 and "a brand new secret" not in out
    actions = [line.split()[3:5] for line in out.splitlines()[1:-1]]
    assert actions == [["reset-password", "server"], ["delete-account", "server"]]
