"""The server's log (issue 17, item 5): text or one JSON object per line, never a secret."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Peer, ServerProcess
from ops_support import SETTINGS, log_in, register

SECRETS = ("first-Secret-4711", "wrong-Secret-0815", "reset-Secret-2342")


@pytest.mark.parametrize(
    ("log_format", "args"),
    [("text", []), ("json", ["--log-format", "json"]), ("json", ["--set", "log_format=json"])],
    ids=["text", "json-flag", "json-setting"],
)
async def test_registering_logging_in_and_a_reset_leave_no_password_in_the_log(
    tmp_path: Path, peers: list[Peer], log_format: str, args: list[str]
) -> None:
    srv = ServerProcess(tmp_path / "server", {**SETTINGS, "log_level": "debug"}, args)
    srv.start()
    try:
        first, wrong, reset = SECRETS
        bob = await log_in(peers, srv.port, "bob")
        await bob.send(type="register", password=first, ref="reg")
        await bob.recv_type("ok")
        failed = await Peer.connect(srv.port)
        peers.append(failed)
        await failed.send(type="hello", proto=1, nick="bob", password=wrong)
        assert (await failed.recv_type("error"))["code"] == "bad_password"
        await log_in(peers, srv.port, "bob", password=first, device="phone")
        await register(peers, srv.port, "carol")
        proc = await admin_reset(srv.data, "bob", reset)
        assert proc.returncode == 0, proc.stderr
        await log_in(peers, srv.port, "bob", password=reset)
        assert srv.stop() == 0
    finally:
        srv.kill()
    log = srv.log()
    for secret in (*SECRETS, "carol-password"):
        assert secret not in log
    assert "logged in as bob" in log and "new password set for bob" in log
    lines = log.splitlines()
    if log_format == "json":
        events = [json.loads(line) for line in lines]  # every line is one JSON object
        assert all(set(e) >= {"ts", "level", "logger", "msg"} for e in events)
        assert any("listening on" in e["msg"] and e["level"] == "info" for e in events)
        assert events[-1]["msg"] == "stopped" and events[-1]["logger"] == "chinwag.server"
    else:
        assert all(not line.startswith("{") for line in lines)
        assert lines[-1].endswith("INFO chinwag.server: stopped")


async def admin_reset(data: Path, nick: str, password: str) -> subprocess.CompletedProcess[str]:
    """``chinwag admin reset-password NICK --password-stdin`` (through the control socket)."""
    command = [sys.executable, "-m", "chinwag", "admin", "--data", str(data)]
    command += ["reset-password", nick, "--password-stdin"]
    return await asyncio.to_thread(
        subprocess.run,
        command,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unknown_log_format_is_refused_in_plain_words() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chinwag", "serve", "--set", "log_format=xml", "--print-settings"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "log_format is one of text, json" in out.stderr
