"""Zero-config across a real (virtual) LAN: two network namespaces joined by a veth pair.

The test makes both namespaces itself, gives the link the link-local addresses
169.254.199.1 (the server's side) and 169.254.199.2 (the client's side), and
deletes everything at the end. Nothing in the namespaces can reach any other
network, so the multicast announcements and the chat traffic stay on that link.
Needs root and ``ip netns`` (as in CI); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest
from conftest import ServerProcess

from chinwag.net.tls import parse_fingerprint

FAST = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}
SERVER_IP = "169.254.199.1"
CLIENT_IP = "169.254.199.2"


@dataclass
class Lan:
    server_ns: str
    client_ns: str

    def run(self, *args: str, config: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """``chinwag ARGS`` in the client's namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.client_ns, sys.executable, "-m", "chinwag", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "CHINWAG_CONFIG_DIR": str(config)},
        )


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture
def lan() -> Iterator[Lan]:
    if shutil.which("ip") is None:
        pytest.skip("needs the ip command (iproute2) for network namespaces")
    if os.geteuid() != 0:
        pytest.skip("needs root to make network namespaces (ip netns add)")
    tag = f"cw{os.getpid() % 100_000}{secrets.token_hex(2)}"  # interface names: <= 15 chars
    server_ns, client_ns = f"{tag}s", f"{tag}c"
    try:
        _ip("netns", "add", server_ns)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"ip netns add is not allowed here: {exc.stderr.strip()}")
    try:
        _ip("netns", "add", client_ns)
        _ip("link", "add", f"{tag}vs", "type", "veth", "peer", "name", f"{tag}vc")
        for ns, dev, addr in (
            (server_ns, f"{tag}vs", SERVER_IP),
            (client_ns, f"{tag}vc", CLIENT_IP),
        ):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield Lan(server_ns, client_ns)
    finally:
        for ns in (server_ns, client_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", f"{tag}vs"], capture_output=True, timeout=30)


def _wait_for_log(srv: ServerProcess, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in srv.log():
        assert time.monotonic() < deadline, f"no {text!r} in:\n{srv.log()}"
        time.sleep(0.05)


def test_a_server_in_one_namespace_is_found_and_joined_from_the_other(
    lan: Lan, tmp_path: Path
) -> None:
    srv = ServerProcess(
        tmp_path / "srv",
        {**FAST, "server_name": "lan party"},
        args=["--host", "0.0.0.0", "--tls"],
        wrapper=["ip", "netns", "exec", lan.server_ns],
    )
    srv.start()
    config = tmp_path / "client"
    try:
        _wait_for_log(srv, "announced on the LAN")
        assert f"at {SERVER_IP}" in srv.log()  # the link's address, not loopback
        fp = re.search(r"fingerprint ([0-9A-F:]{95})", srv.log())
        assert fp

        out = lan.run("servers", "--json", "--timeout", "3", config=config)
        assert out.returncode == 0, out
        (found,) = json.loads(out.stdout)  # only ours can be on this link
        assert (found["host"], found["port"]) == (SERVER_IP, srv.port)
        assert found["name"] == "lan party" and found["tls"] is True
        assert found["fingerprint"] == fp.group(1)

        # `chinwag chat` with no address, in a terminal: pick 1, and it pins
        # the announced fingerprint without asking.
        argv = ["netns", "exec", lan.client_ns, sys.executable, "-m", "chinwag"]
        child = pexpect.spawn(
            "ip",
            [*argv, "chat", "--nick", "bob"],
            env={
                **os.environ,
                "CHINWAG_CONFIG_DIR": str(config),
                "TERM": "dumb",
                "PROMPT_TOOLKIT_NO_CPR": "1",
            },
            encoding="utf-8",
            codec_errors="replace",
            timeout=20,
            dimensions=(50, 200),
        )
        try:
            child.expect("lan party")
            child.expect(r"connect to which\? \[1-1")
            child.sendline("1")
            child.expect(f"pinned {re.escape(SERVER_IP)}:{srv.port} \\(from the discovery\\)")
            child.expect(f"connected to {re.escape(SERVER_IP)}:{srv.port} over TLS as bob")
            child.sendline("hello across the link")
            child.expect("<bob> hello across the link")
            child.sendline("/quit")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == 0, child.before
        pins = (config / "known_hosts").read_text()
        assert f"{SERVER_IP}:{srv.port} {fp.group(1)}" in pins
        assert parse_fingerprint(fp.group(1))

        # Without a terminal, the only server found is taken as it is; already pinned.
        out = lan.run("chat", "--nick", "carl", config=config, stdin="/quit\n")
        assert out.returncode == 0, out
        assert f"connected to {SERVER_IP}:{srv.port} over TLS as carl" in out.stdout
        assert "pinned" not in out.stdout
    finally:
        srv.kill()
