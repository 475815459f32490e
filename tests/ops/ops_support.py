"""What the operations tests share: ``chinwag admin`` runs and peers on a real server."""

from __future__ import annotations

import asyncio
import importlib.resources
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import Peer

# Cheap hashing; flood control out of the way of the writers that load the server.
MIGRATIONS = importlib.resources.files("chinwag.storage").joinpath("migrations")
# The schema version this chinwag migrates to: one per numbered migration file.
NEWEST = sum(1 for f in MIGRATIONS.iterdir() if f.name.endswith(".sql"))

SETTINGS: dict[str, Any] = {
    "argon2_memory_kib": 8192,
    "argon2_time_cost": 1,
    "rate_per_second": 10_000,
    "rate_burst": 10_000,
}


async def admin(data: Path, *args: str) -> tuple[int, str, str]:
    """``chinwag admin --data DATA ARGS`` in a subprocess: (exit code, stdout, stderr)."""
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


async def log_in(peers: list[Peer], port: int, nick: str, **extra: Any) -> Peer:
    peer = await Peer.connect(port)
    peers.append(peer)
    await peer.hello(nick, **extra)
    return peer


async def register(peers: list[Peer], port: int, nick: str) -> Peer:
    """A new account ``nick`` (password ``NICK-password``), logged in."""
    peer = await log_in(peers, port, nick)
    await peer.send(type="register", password=f"{nick}-password", ref="reg")
    assert (await peer.recv_type("ok", timeout=30))["ref"] == "reg"
    return peer


async def ack(peer: Peer) -> int:
    """The id in the next ack (copies of messages are skipped); fails on an error."""
    while True:
        frame = await peer.recv(timeout=30)
        if frame["type"] == "ack":
            return int(frame["id"])
        assert frame["type"] != "error", frame


async def history_ids(peer: Peer, room: str) -> list[int]:
    """The ids of every message in ``room``'s history, paging back to the first."""
    ids: list[int] = []
    before: int | None = None
    while True:
        ask: dict[str, Any] = {"type": "history", "room": room, "limit": 200, "ref": "h"}
        if before is not None:
            ask["before"] = before
        await peer.send(**ask)
        page = await peer.recv_type("history", timeout=30)
        got = [int(m["id"]) for m in page["messages"]]
        ids = got + ids
        if not page["more"] or not got:
            return ids
        before = got[0]
