"""DNS rebinding: the web listener answers only to its own host names (``web_hosts``).

A page of a site whose name its owner points at the server's address sends
``Host`` and ``Origin`` of that name; real HTTP and WebSocket requests with
such a forged ``Host`` stand for that browser here.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from conftest import RECV_TIMEOUT
from support.web import WebServer

from chinwag.config import SettingsError, build
from chinwag.server.webhosts import WebHosts, host_name, machine_names


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=RECV_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


async def _status(http: aiohttp.ClientSession, srv: WebServer, host: str, path: str = "/") -> int:
    async with http.get(f"{srv.base}{path}", headers={"Host": host}) as answer:
        return answer.status


async def _chat(http: aiohttp.ClientSession, srv: WebServer, host: str, nick: str) -> None:
    """A browser's page at ``host`` logs in over /ws (Host and Origin of that name) and pings."""
    ws = await http.ws_connect(f"{srv.base}/ws", headers={"Host": host}, origin=f"http://{host}")
    try:
        await ws.send_str(json.dumps({"type": "hello", "proto": 1, "nick": nick}))
        assert json.loads((await ws.receive(RECV_TIMEOUT)).data)["type"] == "welcome"
    finally:
        await ws.close()


async def test_a_foreign_name_is_refused_on_every_path_and_addresses_and_localhost_are_not(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    srv = WebServer(tmp_path / "s").start()
    try:
        rebound = f"rebind.example:{srv.http_port}"
        async with http.get(f"{srv.base}/", headers={"Host": rebound}) as page:
            text = await page.text()
            assert page.status == 421, text
            assert "'rebind.example'" in text and "web_hosts" in text and "IP address" in text
            assert "<" not in text  # plain words, not the web client
        for path in ("/app.js", "/healthz", "/readyz", "/metrics", "/nothing-here"):
            assert await _status(http, srv, rebound, path) == 421, path
        # The attack itself: Host and Origin of the attacker's name match each other.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await _chat(http, srv, rebound, "mallory")
        assert refused.value.status == 421
        # A request by address, by localhost or by this machine's name is answered.
        port = srv.http_port
        here = socket.gethostname()
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"{here}:{port}"):
            assert await _status(http, srv, host) == 200, host
            assert await _status(http, srv, host, "/healthz") == 200, host
        for host in (f"[::1]:{port}", f"192.0.2.7:{port}", f"localhost.:{port}"):
            assert await _status(http, srv, host) == 200, host
        await _chat(http, srv, f"127.0.0.1:{port}", "ann")
        await _chat(http, srv, f"localhost:{port}", "bob")
        # Names that only look like an address are names: nip.io is how rebinding is done.
        for host in ("127.0.0.1.nip.io", "localhost.rebind.example", "0x7f.0.0.1", "a:b:c"):
            assert await _status(http, srv, host) == 421, host
        # The refused name is logged once, however often it is asked for.
        assert await _status(http, srv, rebound) == 421
        assert srv.log().count("host name 'rebind.example'") == 1, srv.log()
    finally:
        srv.kill()


async def test_listed_names_and_domains_are_answered_and_their_neighbours_are_not(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    settings = {"web_hosts": "Chat.Example.org,.example.net", "web_hosts_logged_max": 2}
    srv = WebServer(tmp_path / "s", settings).start()
    try:
        port = srv.http_port
        for host in (
            "chat.example.org",
            f"CHAT.example.org.:{port}",
            "example.net",
            "a.b.example.net",
        ):
            assert await _status(http, srv, host) == 200, host
        await _chat(http, srv, f"chat.example.org:{port}", "ann")
        await _chat(http, srv, f"team.example.net:{port}", "bob")
        refused = (
            "evil.chat.example.org",
            "chat.example.org.evil",
            "badexample.net",
            "example.org",
        )
        for host in refused:
            assert await _status(http, srv, host) == 421, host
        with pytest.raises(aiohttp.WSServerHandshakeError) as ws_refused:
            await _chat(http, srv, f"badexample.net:{port}", "mallory")
        assert ws_refused.value.status == 421
        # web_hosts_logged_max = 2: two names logged, then one line, then nothing.
        log = srv.log()
        assert [f"'{name}'" in log for name in refused] == [True, True, False, False], log
        assert log.count("further ones are not logged (web_hosts_logged_max)") == 1
    finally:
        srv.kill()


async def test_a_star_answers_to_any_name_and_ws_origins_names_are_the_servers(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    srv = WebServer(tmp_path / "s", {"web_hosts": "*"}).start()
    try:
        assert await _status(http, srv, "anything.example") == 200
        await _chat(http, srv, f"anything.example:{srv.http_port}", "ann")
    finally:
        srv.kill()
    proxied = WebServer(tmp_path / "p", {"ws_origins": "https://chat.example.org"}).start()
    try:
        assert await _status(http, proxied, "chat.example.org") == 200
        assert await _status(http, proxied, "other.example.org") == 421
    finally:
        proxied.kill()


def test_host_headers_are_read_as_names_addresses_or_nothing() -> None:
    assert host_name("Chat.Example.ORG:8080") == "chat.example.org"
    assert host_name("chat.example.org.") == "chat.example.org"
    assert host_name("[::1]:8080") == "::1"
    assert host_name("[::1]") == "::1"
    assert host_name("127.0.0.1:80") == "127.0.0.1"
    for bad in ("", ":80", "::1", "[::1", "[nope]:80", "[::1]x", "name:port", "a:b:80"):
        assert host_name(bad) is None, bad


def test_the_default_answers_to_this_machines_names_and_the_listeners() -> None:
    settings = build(listen=("http://chat.lan.example:8080", "tcp://0.0.0.0:5050"))
    hosts = WebHosts(settings, machine={"box", "box.local"})
    assert all(hosts.allows(n) for n in ("box", "box.local", "chat.lan.example", "localhost"))
    assert all(hosts.allows(n) for n in ("10.1.2.3", "::1", "fe80::1"))
    assert not any(hosts.allows(n) for n in ("box.example", "lan.example", "evil"))
    assert hosts.refused(None) is None  # no Host: not a browser
    assert hosts.refused("x" * 9000) == "x" * 253
    full = socket.gethostname().lower()
    assert full in machine_names() and f"{full.split('.')[0]}.local" in machine_names()


@pytest.mark.parametrize(
    "value",
    [
        "http://chat.example.org",
        "chat.example.org:443",
        "*.example.org",
        "chat example",
        "a/b",
        ".",
    ],
)
def test_a_web_hosts_entry_that_is_no_name_is_refused_saying_what_to_write(value: str) -> None:
    with pytest.raises(SettingsError, match=r"web_hosts has .*e\.g\. chat\.example\.org"):
        build(overrides=[f"web_hosts=ok.example,{value}"])
    assert build(overrides=["web_hosts= A.example , .b.example. ,*"]).web_hosts
