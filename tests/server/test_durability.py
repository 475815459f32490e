"""kill -9 during a burst of sends: nothing acked is lost, nothing is stored twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import Peer, ServerProcess

BURST = 1500
KILL_AFTER_ACKS = [1, 40, 250, 700, 1200]


async def _send_until_killed(
    server: ServerProcess, port: int, kill_after: int, prefix: str
) -> dict[str, int]:
    """Pipeline BURST says; kill -9 the server once ``kill_after`` acks are in.

    Returns cid -> acked id for every ack that arrived before the connection died.
    """
    peer = await Peer.connect(port)
    await peer.hello("writer", password="durable-pw")
    acked: dict[str, int] = {}

    async def pump() -> None:
        for i in range(BURST):
            peer.writer.write(
                f'{{"type":"say","room":"lobby","body":"m{i}","cid":"{prefix}{i}"}}\n'.encode()
            )
            if i % 50 == 0:
                await peer.writer.drain()
        await peer.writer.drain()

    sender = asyncio.create_task(pump())
    try:
        while True:
            try:
                frame = await peer.recv(10)
            except (EOFError, ConnectionError):
                break
            if frame["type"] == "ack":
                acked[frame["cid"]] = frame["id"]
                if len(acked) == kill_after:
                    server.kill()
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        await peer.close()
    return acked


async def _all_lobby_messages(peer: Peer) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = []
    before = None
    while True:
        request: dict[str, object] = {"type": "history", "room": "lobby", "limit": 200}
        if before is not None:
            request["before"] = before
        await peer.send(**request)
        page = await peer.recv_type("history")
        messages = page["messages"] + messages
        if not page["more"]:
            return messages
        before = page["messages"][0]["id"]


# Both settings promise that an ack survives kill -9 of the server ("os" only
# gives up power loss and kernel crashes, which this test cannot stage).
@pytest.mark.parametrize("durability", ["fsync", "os"])
async def test_kill_9_during_a_burst_loses_nothing_acked_and_stores_nothing_twice(
    tmp_path: Path, durability: str
) -> None:
    settings = {"rate_per_second": 1e6, "rate_burst": 10**6, "argon2_memory_kib": 8192}
    server = ServerProcess(tmp_path / "durable", {**settings, "durability": durability})
    server.start()
    totals = {"acked": 0, "lost": 0, "duplicated": 0, "resent": 0}
    try:
        setup = await Peer.connect(server.port)
        await setup.hello("writer")
        await setup.send(type="register", password="durable-pw")
        await setup.recv_type("ok")
        await setup.send(type="bye")
        await setup.expect_closed()
        await setup.close()
        for round_no, kill_after in enumerate(KILL_AFTER_ACKS):
            prefix = f"r{round_no}-"
            acked = await _send_until_killed(server, server.port, kill_after, prefix)
            assert len(acked) >= kill_after
            server.start()
            # The client resends everything it has no ack for, with the same cid.
            peer = await Peer.connect(server.port)
            await peer.hello("writer", password="durable-pw")
            unacked = [i for i in range(BURST) if f"{prefix}{i}" not in acked]
            for i in unacked:
                await peer.send(type="say", room="lobby", body=f"m{i}", cid=f"{prefix}{i}")
            resent_ids: dict[str, int] = {}
            while len(resent_ids) < len(unacked):
                ack = await peer.recv_type("ack")
                resent_ids[ack["cid"]] = ack["id"]
            messages = await _all_lobby_messages(peer)
            await peer.close()
            mine = [m for m in messages if str(m["cid"]).startswith(prefix)]
            by_cid: dict[str, list[int]] = {}
            for m in mine:
                by_cid.setdefault(str(m["cid"]), []).append(int(str(m["id"])))
            lost = [cid for cid, msg_id in acked.items() if by_cid.get(cid) != [msg_id]]
            doubled = [cid for cid, ids in by_cid.items() if len(ids) > 1]
            totals["lost"] += len(lost)
            totals["duplicated"] += len(doubled)
            assert lost == [], f"round {round_no}: acked but lost or changed: {lost[:5]}"
            assert doubled == [], f"round {round_no}: stored twice: {doubled[:5]}"
            assert len(by_cid) == BURST, "every message is stored once after the resend"
            assert all(by_cid[c] == [i] for c, i in resent_ids.items())
            totals["acked"] += len(acked)
            totals["resent"] += len(unacked)
        print(f"\nkill -9 rounds={len(KILL_AFTER_ACKS)} burst={BURST} {totals}")
    finally:
        server.kill()
