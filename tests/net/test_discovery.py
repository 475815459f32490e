"""DNS-SD/mDNS announce and browse for real, on the loopback interface only.

Every server here listens on 127.0.0.1, so it announces on loopback only, and
every browse asks on 127.0.0.1 only: no packet leaves the machine. Other
chinwag servers on this machine may answer too; tests look only for their own
(by port and a random server name).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from pathlib import Path
from types import SimpleNamespace

from conftest import ServerProcess
from support.cli import chinwag

from chinwag.net.discovery import SERVICE_TYPE, Announcer, browse
from chinwag.net.invites import parse_invite
from chinwag.net.tls import parse_fingerprint

FAST = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}
LOOPBACK = ["127.0.0.1"]


def wait_for_log(srv: ServerProcess, text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in srv.log():
        assert time.monotonic() < deadline, f"no {text!r} in:\n{srv.log()}"
        time.sleep(0.05)


def test_a_tls_server_is_announced_on_loopback_and_found(tmp_path: Path) -> None:
    name = f"test-{secrets.token_hex(4)}"
    srv = ServerProcess(
        tmp_path / "srv",
        {**FAST, "server_name": name},
        args=["--tls", "--registration", "invite"],
    )
    srv.start()
    try:
        wait_for_log(srv, "announced on the LAN")
        fp = re.search(r"fingerprint ([0-9A-F:]{95})", srv.log())
        assert fp
        out = chinwag("servers", "--json", "--interface", "127.0.0.1", "--timeout", "2")
        assert out.returncode == 0, out
        mine = [s for s in json.loads(out.stdout) if s["port"] == srv.port]
        assert len(mine) == 1, out.stdout
        (found,) = mine
        assert found["name"] == name and found["instance"].startswith(f"{name} on ")
        assert found["host"] == "127.0.0.1" and found["addresses"] == ["127.0.0.1"]
        assert found["tls"] is True and found["fingerprint"] == fp.group(1)
        assert found["registration"] == "invite" and found["users"] == 0
        assert found["proto"] == "1" and found["version"]
        invite = parse_invite(found["link"])
        assert invite is not None and invite.fingerprint == parse_fingerprint(fp.group(1))

        out = chinwag("servers", "--interface", "127.0.0.1", "--timeout", "2")
        line = next(x for x in out.stdout.splitlines() if f"127.0.0.1:{srv.port}" in x)
        assert name in line and "TLS" in line and "registration: invite" in line
    finally:
        srv.kill()


def test_no_announce_keeps_the_server_off_the_lan(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "srv", FAST, args=["--no-announce"])
    srv.start()
    try:
        out = chinwag("servers", "--json", "--interface", "127.0.0.1", "--timeout", "2.5")
        assert out.returncode == 0, out
        assert all(s["port"] != srv.port for s in json.loads(out.stdout))
        assert "announced" not in srv.log()
    finally:
        srv.kill()


async def test_a_stopping_server_says_goodbye(tmp_path: Path) -> None:
    from zeroconf import IPVersion, ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

    name = f"bye-{secrets.token_hex(4)}"
    srv = ServerProcess(tmp_path / "srv", {**FAST, "server_name": name})
    srv.start()
    events: list[tuple[str, ServiceStateChange]] = []
    azc = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
    try:
        browser = AsyncServiceBrowser(
            azc.zeroconf,
            [SERVICE_TYPE],
            handlers=[lambda **kw: events.append((kw["name"], kw["state_change"]))],
        )
        mine = f"{name} on "

        async def seen(change: ServiceStateChange) -> None:
            async with asyncio.timeout(15):
                while not any(n.startswith(mine) and c is change for n, c in events):
                    await asyncio.sleep(0.05)

        await seen(ServiceStateChange.Added)
        code = await asyncio.to_thread(srv.stop)
        assert code == 0
        await seen(ServiceStateChange.Removed)  # goodbye packets, not a TTL running out
        await browser.async_cancel()
    finally:
        srv.kill()
        await azc.async_close()


async def test_the_users_count_is_refreshed() -> None:
    online = [0]
    server = SimpleNamespace(
        address=("127.0.0.1", 1),  # nothing needs to listen: only the announcement is checked
        tls=False,
        hub=SimpleNamespace(online_count=lambda: online[0]),
    )
    name = f"users-{secrets.token_hex(4)}"
    announcer = Announcer(name=name, fingerprint=bytes(32), registration="open", refresh=0.2)
    await announcer.start(server)  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(15):
            await announcer.announced.wait()

        async def users() -> int | None:
            """The count announced, or None when this browse missed the answer.

            Browsed by another process, as a user's client does (`chinwag servers`):
            on some machines a browser in the announcer's own process hears nothing
            (the multicast loop between two sockets of one process)."""
            args = ("servers", "--json", "--interface", "127.0.0.1", "--timeout", "2")
            out = await asyncio.to_thread(chinwag, *args)
            assert out.returncode == 0, out
            found = [f for f in json.loads(out.stdout) if f["name"] == name]
            if not found:  # on a loaded machine an answer can come after the browse ends
                return None
            assert len(found) == 1, found
            assert found[0]["tls"] is False and found[0]["fingerprint"] is None  # no TLS, no fp
            count = found[0]["users"]
            assert count is None or isinstance(count, int)
            return count

        async with asyncio.timeout(15):
            while (first := await users()) is None:
                pass
        assert first == 0
        online[0] = 3
        async with asyncio.timeout(15):
            while await users() != 3:
                pass
    finally:
        await announcer.close()


async def test_the_announced_users_count_follows_a_login_within_seconds(tmp_path: Path) -> None:
    from chinwag.client import ChatClient

    name = f"count-{secrets.token_hex(4)}"
    srv = ServerProcess(tmp_path / "srv", FAST, args=["--name", name]).start()
    client = ChatClient("127.0.0.1", srv.port, nick="gamebot", config_dir=tmp_path / "c")
    try:
        await asyncio.to_thread(wait_for_log, srv, "announced on the LAN")
        await asyncio.wait_for(client.connect(), 15)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 9
        users = None
        while users != 1 and loop.time() < deadline:
            found = [f for f in await browse(1.0, interfaces=LOOPBACK) if f.name == name]
            users = found[0].users if found else None
        assert users == 1  # "chinwag servers" no longer says "0 online" for half a minute
    finally:
        await client.close(timeout=2)
        srv.kill()
