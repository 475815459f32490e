"""The shared session worker (server/session_task.py), seen from a client on a real socket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Peer, ServerProcess


def line(**frame: Any) -> bytes:
    return json.dumps(frame).encode() + b"\n"


async def test_a_message_refused_in_a_pipelined_run_stays_refused_though_the_budget_refills(
    tmp_path: Path, peers: list[Peer]
) -> None:
    # Flood control refuses a message when the worker reaches it. The messages
    # ahead of it are in flight, and their commit waits commit_delay (writes
    # are flowing), long enough for the budget to refill: the refusal must
    # still be what the client hears, and the message must not be stored.
    srv = ServerProcess(
        tmp_path / "srv",
        {"rate_per_second": 4, "rate_burst": 4, "commit_delay": 1.0, "argon2_memory_kib": 8192},
    ).start()
    try:
        alice = await Peer.connect(srv.port)
        peers.append(alice)
        await alice.hello("alice")
        bob = await Peer.connect(srv.port)
        peers.append(bob)
        await bob.hello("bob")
        await alice.send(type="say", room="lobby", body="warm-up", ref="w")
        assert (await alice.recv_type("ack"))["ref"] == "w"  # writes flow from here on
        await alice.send_raw(
            b"".join(line(type="say", room="lobby", body=f"m{i}", ref=f"r{i}") for i in range(5))
        )
        got: list[dict[str, Any]] = []
        while len(got) < 5:
            frame = await alice.recv(10)
            if "ref" in frame:
                got.append(frame)
        assert [f["ref"] for f in got] == [f"r{i}" for i in range(5)]
        types = [f["type"] for f in got]
        # Three or four fit the budget (it refills a little during the warm-up);
        # the next is refused at once, not acked after the ones ahead commit.
        first_refusal = types.index("error")
        assert first_refusal in (3, 4), got
        assert types[:first_refusal] == ["ack"] * first_refusal
        assert got[first_refusal]["code"] == "rate_limited"
        acked = {f"m{i}" for i, f in enumerate(got) if f["type"] == "ack"}
        # Bob receives what was acked, and nothing that was refused.
        seen: set[str] = set()
        while len(seen) < len(acked) + 1:
            seen.add((await bob.recv_type("message", 10))["body"])
        assert seen == acked | {"warm-up"}
        assert [f for f in await bob.quiet(0.3) if f["type"] == "message"] == []
    finally:
        srv.kill()


@pytest.mark.parametrize(
    ("last", "code"),
    [(b"not json\n", "bad_frame"), (b'{"type":"ping","pad":"' + b"x" * 70_000 + b'"}\n', None)],
    ids=["bad-frame-limit", "overlong-line"],
)
async def test_a_close_behind_a_pipelined_run_comes_after_its_acks(
    tmp_path: Path, peers: list[Peer], last: bytes, code: str | None
) -> None:
    srv = ServerProcess(
        tmp_path / "srv", {"max_bad_frames": 1, "rate_burst": 100, "argon2_memory_kib": 8192}
    ).start()
    try:
        alice = await Peer.connect(srv.port)
        peers.append(alice)
        await alice.hello("alice")
        run = b"".join(line(type="say", room="lobby", body=f"m{i}", ref=f"r{i}") for i in range(20))
        await alice.send_raw(run + last)
        frames = [f for f in await alice.expect_closed() if f["type"] != "message"]
        assert [(f["type"], f.get("ref")) for f in frames[:-1]] == [
            ("ack", f"r{i}") for i in range(20)
        ]
        assert frames[-1]["type"] == "error"
        assert frames[-1]["code"] == (code or "frame_too_large")
    finally:
        srv.kill()
