"""``chinwag admin backup`` and ``restore`` (issue 17, item 3) against a real running server.

The backup is taken while clients keep sending: every message acked before it
began is in it, and it is one consistent moment (no message missing below the
newest it holds). ``restore --verify`` checks a file before it replaces
anything, refuses a damaged one, and never runs under a live server.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import Peer, ServerProcess
from ops_support import NEWEST, SETTINGS, ack, admin, history_ids, log_in, register


def _ids(db: Path) -> set[int]:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {int(r[0]) for r in conn.execute("SELECT id FROM messages WHERE room = 'lobby'")}
    finally:
        conn.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_backup_under_write_load_restores_every_message_acked_before_it(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "server", SETTINGS)
    srv.start()
    backup = tmp_path / "backup.db"
    try:
        await register(peers, srv.port, "alice")
        writers = [await log_in(peers, srv.port, f"writer{n}") for n in range(3)]
        acked: list[int] = []
        stop = asyncio.Event()

        async def write(peer: Peer, name: str) -> None:
            n = 0
            while not stop.is_set():
                await peer.send(type="say", room="lobby", body=f"{name} {n}", ref=f"r{n}")
                acked.append(await ack(peer))
                n += 1

        tasks = [asyncio.create_task(write(p, f"w{i}")) for i, p in enumerate(writers)]
        try:
            async with asyncio.timeout(60):
                while len(acked) < 100:
                    await asyncio.sleep(0.01)
            before = set(acked)
            code, out, err = await admin(srv.data, "backup", str(backup))
            during = len(acked) - len(before)
        finally:
            stop.set()
            async with asyncio.timeout(30):
                await asyncio.gather(*tasks)
        assert code == 0, err
        assert "backed up" in out and "integrity checked" in out
        assert during > 0, "no message was acked while the backup ran: there was no load"
        assert backup.stat().st_mode & 0o777 == 0o600  # it holds password hashes
        assert not (tmp_path / "backup.db-wal").exists()  # one self-contained file

        # While the server runs, restore refuses and replaces nothing.
        live = _ids(srv.data / "chinwag.db")
        code, _, err = await admin(srv.data, "restore", str(backup), "--verify")
        assert code == 1
        assert "stop it first" in err and "nothing was replaced" in err
        assert srv.stop() == 0
        assert _ids(srv.data / "chinwag.db") >= live

        code, out, err = await admin(srv.data, "restore", str(backup), "--verify")
        assert code == 0, err
        assert f"integrity checked, schema version {NEWEST}" in out and "messages" in out
        kept = list(srv.data.glob("chinwag.db.replaced-*"))
        assert len(kept) == 1 and _ids(kept[0]) >= live  # the replaced database is kept

        srv.start()
        alice = await log_in(peers, srv.port, "alice", password="alice-password")
        restored = set(await history_ids(alice, "lobby"))
        assert before <= restored, sorted(before - restored)[:10]
        # One moment: every acked message up to the newest restored one is there.
        assert restored == {i for i in acked if i <= max(restored)}
        # Messages acked after the backup are gone, and so are their ids: never reused.
        await alice.send(type="say", room="lobby", body="after the restore", ref="new")
        assert await ack(alice) > max(acked)
    finally:
        srv.kill()


async def test_backup_and_restore_work_with_no_server_running(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "server", SETTINGS)
    srv.start()
    try:
        bob = await register(peers, srv.port, "bob")
        await bob.send(type="say", room="lobby", body="kept", ref="k")
        kept_id = await ack(bob)
        assert srv.stop() == 0
        backup = tmp_path / "offline.db"
        code, out, err = await admin(srv.data, "backup", str(backup))
        assert code == 0, err
        assert "1 accounts" in out and "1 messages" in out

        code, _, err = await admin(srv.data, "backup", str(backup))
        assert code == 1 and "exists" in err and "name a new one" in err

        # A new, empty data directory (the disk died): restore fills it.
        fresh = tmp_path / "fresh"
        code, out, err = await admin(fresh, "restore", str(backup), "--verify")
        assert code == 0, err
        assert "kept as" not in out  # nothing was there to replace
        assert kept_id in _ids(fresh / "chinwag.db")

        # The database went bad (the usual reason to restore): restore still replaces it.
        (srv.data / "chinwag.db").write_bytes(b"\0garbage" * 4096)
        code, out, err = await admin(srv.data, "restore", str(backup), "--verify")
        assert code == 0, err
        assert "may be given out again" in err  # the bad file's ids could not be read
        assert kept_id in _ids(srv.data / "chinwag.db")
        srv.start()
        await log_in(peers, srv.port, "bob", password="bob-password")
    finally:
        srv.kill()


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("truncated", "nothing was replaced"),
        ("garbage", "nothing was replaced"),
        ("flipped", "malformed; nothing was replaced"),
        ("not-chinwag", "no chinwag schema"),
    ],
)
async def test_a_damaged_backup_is_refused_and_nothing_is_replaced(
    tmp_path: Path, peers: list[Peer], damage: str, words: str
) -> None:
    srv = ServerProcess(tmp_path / "server", SETTINGS)
    srv.start()
    try:
        carol = await register(peers, srv.port, "carol")
        for n in range(300):  # enough pages for damage in the middle of the file
            await carol.send(type="say", room="lobby", body=f"message {n} " + "x" * 400, ref="m")
            await ack(carol)
        backup = tmp_path / "good.db"
        code, _, err = await admin(srv.data, "backup", str(backup))
        assert code == 0, err
        assert srv.stop() == 0
    finally:
        srv.kill()
    bad = tmp_path / "bad.db"
    data = backup.read_bytes()
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        bad.write_bytes(b"this is not a database\n" * 500)
    elif damage == "flipped":  # one page of the messages table overwritten
        page = 4096
        middle = (len(data) // page // 2) * page
        bad.write_bytes(data[:middle] + b"\xff" * page + data[middle + page :])
    else:
        conn = sqlite3.connect(bad)
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.commit()
        conn.close()
    db = srv.data / "chinwag.db"
    digest = _digest(db)
    started = time.time()
    code, out, err = await admin(srv.data, "restore", str(bad), "--verify")
    assert code == 1, (out, err)
    assert words in err, err
    assert _digest(db) == digest and db.stat().st_mtime < started
    assert not list(srv.data.glob("chinwag.db.re*"))  # no staged copy, nothing set aside
