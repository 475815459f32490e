"""The command budget against a real server process (issue 10, item 5).

Every command a session sends is paid from one token bucket per session, and an
account's sessions also share one bucket; typing notices are coalesced per
sender and conversation; rooms per guest, per account and per server are
capped; `who` and `rooms` replies are bounded. Every frame received goes
through `check_frame`.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

from conftest import RECV_TIMEOUT, Peer, ServerProcess
from server_checks import CheckedPeer, check_frame
from support.peers import PeerMaker

CHEAP = {"argon2_memory_kib": 8192, "argon2_time_cost": 1}
UNLIMITED = {**CHEAP, "rate_per_second": 1e6, "rate_burst": 10**6}
PASSWORD = "correct horse battery"


class Client(CheckedPeer):
    """A checked peer with the helpers of this module."""

    async def ask(self, ref: str, **frame: Any) -> dict[str, Any]:
        """Send a request; return its reply (messages, presence and typing skipped)."""
        await self.send(ref=ref, **frame)
        while (reply := await self.reply())["type"] == "message":
            pass
        assert reply.get("ref") == ref, reply
        return reply


_maker = PeerMaker(Client)
login = _maker.login


def line(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame).encode() + b"\n"


async def test_a_typing_flood_reaches_each_member_at_most_once_per_interval(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "typing", CHEAP).start()  # typing_interval: 3 s
    try:
        typist = await login(peers, srv.port, "typist")
        members = [await login(peers, srv.port, f"member{i}") for i in range(3)]
        started = time.monotonic()
        await typist.send_raw(
            b"".join(line({"type": "typing", "room": "lobby"}) for _ in range(1000))
            + b"".join(line({"type": "typing", "to": "member0"}) for _ in range(1000))
        )
        # Typing has no reply, not even when dropped: the say's ack comes next.
        ack = await typist.ask("done", type="say", room="lobby", body="done")
        assert ack["type"] == "ack", ack
        window = time.monotonic() - started
        most = math.ceil(window / 3.0) + 1
        for member in members:
            in_room = in_dm = 0
            while (frame := await member.recv())["type"] != "message":
                if frame["type"] == "typing":
                    assert frame["from"] == "typist", frame
                    if "room" in frame:
                        in_room += 1
                    else:
                        in_dm += 1
            assert frame["body"] == "done", frame
            assert 1 <= in_room <= most, (in_room, window)
            if member is members[0]:
                assert 1 <= in_dm <= most, (in_dm, window)
            else:
                assert in_dm == 0
    finally:
        srv.kill()


async def test_typing_is_forwarded_again_after_the_interval(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "typing2", {**CHEAP, "typing_interval": 0.5}).start()
    try:
        typist = await login(peers, srv.port, "typist")
        reader = await login(peers, srv.port, "reader")
        await typist.send(type="typing", room="lobby")
        assert await reader.recv_type("typing") == {
            "type": "typing",
            "from": "typist",
            "room": "lobby",
        }
        await typist.send(type="typing", room="lobby")  # within the interval: dropped
        assert await reader.quiet(0.2) == []
        await asyncio.sleep(0.4)  # 0.6 s after the first
        await typist.send(type="typing", room="lobby")
        assert (await reader.recv_type("typing"))["from"] == "typist"
    finally:
        srv.kill()


async def test_a_message_ends_the_typing_notice_so_the_next_one_goes_out(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "typing3", CHEAP).start()  # typing_interval: 3 s
    try:
        typist = await login(peers, srv.port, "typist")
        reader = await login(peers, srv.port, "reader")
        for target in ({"room": "lobby"}, {"to": "reader"}):
            notice = {"type": "typing", "from": "typist", **target}
            await typist.send(type="typing", **target)
            assert await reader.recv_type("typing") == notice
            if "room" in target:
                said = await typist.ask("s", type="say", room="lobby", body="hi")
            else:
                said = await typist.ask("d", type="dm", to="reader", body="hi")
            assert said["type"] == "ack", said
            assert (await reader.recv_type("message"))["body"] == "hi"
            await typist.send(type="typing", **target)  # at once: forwarded again
            assert await reader.recv_type("typing") == notice
    finally:
        srv.kill()


async def test_a_who_flood_is_rate_limited_and_its_output_bounded(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "who", CHEAP).start()  # the default budget
    try:
        members = [await login(peers, srv.port, f"member{i:02d}") for i in range(30)]
        flooder = await login(peers, srv.port, "flooder")
        n = 3000
        flood = b"".join(line({"type": "who", "room": "lobby"}) for _ in range(n))
        flood += line({"type": "ping", "ref": "end"})

        async def drain() -> tuple[int, int, int]:
            received = whos = limited = 0
            while True:
                raw = await asyncio.wait_for(flooder.reader.readline(), RECV_TIMEOUT)
                assert raw, "the flooder was disconnected"
                received += len(raw)
                frame = json.loads(raw)
                check_frame(frame)
                if frame["type"] == "who":
                    assert len(frame["users"]) == 31, frame
                    whos += 1
                elif frame["type"] == "error":
                    assert frame["code"] == "rate_limited", frame
                    assert frame["retry_after"] > 0, frame
                    limited += 1
                elif frame["type"] == "pong":
                    return received, whos, limited

        reading = asyncio.create_task(drain())
        await flooder.send_raw(flood)
        received, whos, limited = await reading
        assert whos + limited == n
        assert whos >= 1 and limited > n // 2, (whos, limited)
        # Without a budget each of those 3,000 replies would be ~1 KB: ~35x the input.
        assert received / len(flood) < 5, (received, len(flood))
        # Someone honest in the same room is still heard by everyone, the flooder too.
        said = await members[0].ask("h", type="say", room="lobby", body="still here")
        assert said["type"] == "ack", said
        for peer in [*members[1:], flooder]:
            frame = await peer.recv_type("message")
            assert frame["from"] == "member00" and frame["body"] == "still here", frame
    finally:
        srv.kill()


async def test_history_pays_for_the_size_of_its_reply(tmp_path: Path, peers: list[Peer]) -> None:
    # 40 tokens, nothing refilled in the test; 10 messages of 4,000 bytes: a page of
    # ~41 KB costs 1 + ~10 tokens, so the fourth page is refused.
    srv = ServerProcess(
        tmp_path / "history", {**CHEAP, "rate_per_second": 0.01, "rate_burst": 40}
    ).start()
    try:
        reader = await login(peers, srv.port, "reader")
        for i in range(10):
            said = await reader.ask(f"s{i}", type="say", room="lobby", body="x" * 4000)
            assert said["type"] == "ack", said
        replies = []
        for i in range(50):
            replies.append(await reader.ask(f"h{i}", type="history", room="lobby"))
        pages = [r for r in replies if r["type"] == "history"]
        assert len(pages) == 3 and all(len(p["messages"]) == 10 for p in pages), len(pages)
        assert all(r["type"] == "error" and r["code"] == "rate_limited" for r in replies[3:])
        assert await reader.ask("p", type="ping") == {"type": "pong", "ref": "p"}
    finally:
        srv.kill()


async def test_an_accounts_sessions_share_one_budget(tmp_path: Path, peers: list[Peer]) -> None:
    # Each session: 5 tokens, nothing refilled in the test; the account: twice that.
    srv = ServerProcess(
        tmp_path / "shared", {**CHEAP, "rate_per_second": 0.01, "rate_burst": 5}
    ).start()
    try:
        owner = await login(peers, srv.port, "sharer")
        assert (await owner.ask("reg", type="register", password=PASSWORD))["type"] == "ok"
        first = await login(peers, srv.port, "sharer", password=PASSWORD, device="laptop")
        second = await login(peers, srv.port, "sharer", password=PASSWORD, device="phone")
        third = await login(peers, srv.port, "sharer", password=PASSWORD, device="tablet")
        bystander = await login(peers, srv.port, "guest")

        async def say(client: Client, ref: str) -> dict[str, Any]:
            return await client.ask(ref, type="say", room="lobby", body=ref, cid=ref)

        for i in range(5):
            assert (await say(first, f"a{i}"))["type"] == "ack"
        for i in range(5):
            assert (await say(second, f"b{i}"))["type"] == "ack"
        # The third session has spent nothing, but its account has spent it all.
        over = await say(third, "c0")
        assert over["type"] == "error" and over["code"] == "rate_limited", over
        assert over["retry_after"] > 0
        who = await third.ask("w", type="who", room="lobby")
        assert who["type"] == "error" and who["code"] == "rate_limited", who
        assert await third.ask("p", type="ping") == {"type": "pong", "ref": "p"}  # free
        # Another person's budget is their own.
        assert (await say(bystander, "g0"))["type"] == "ack"
        page = await bystander.ask("h", type="history", room="lobby")
        bodies = [m["body"] for m in page["messages"]]
        assert bodies == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)] + ["g0"]
    finally:
        srv.kill()


async def test_joins_beyond_the_room_caps_are_refused_and_change_nothing(
    tmp_path: Path, peers: list[Peer]
) -> None:
    # 20 per guest, 100 per account; the rooms made per hour (rooms4) are not what is tested
    srv = ServerProcess(tmp_path / "caps", {**UNLIMITED, "rooms_made_max": 1000}).start()
    try:
        guest = await login(peers, srv.port, "roamer")
        for i in range(1, 20):  # and the lobby: 20
            assert (await guest.ask(f"j{i}", type="join", room=f"r{i:02d}"))["type"] == "ok"
        before = await guest.ask("l1", type="rooms")
        refused = await guest.ask("j20", type="join", room="r20")
        assert refused["type"] == "error" and refused["code"] == "forbidden", refused
        assert refused["reason"] == "room_limit", refused
        assert "leave" in refused["message"], refused
        assert await guest.ask("l2", type="rooms") == {**before, "ref": "l2"}
        who = await guest.ask("w", type="who", room="r20")
        assert who["type"] == "error" and who["code"] == "not_member", who
        # One room left, one room joined.
        assert (await guest.ask("x", type="leave", room="r01"))["type"] == "ok"
        assert (await guest.ask("j20b", type="join", room="r20"))["type"] == "ok"

        member = await login(peers, srv.port, "settler")
        assert (await member.ask("reg", type="register", password=PASSWORD))["type"] == "ok"
        for i in range(1, 100):
            assert (await member.ask(f"j{i}", type="join", room=f"s{i:02d}"))["type"] == "ok"
        refused = await member.ask("j100", type="join", room="s100")
        assert refused["type"] == "error" and refused["reason"] == "room_limit", refused
        # Nothing was stored either: the next session has the same 100 rooms.
        await member.close()
        again = await Client.connect(srv.port)
        peers.append(again)
        await again.send(type="hello", proto=1, nick="settler", password=PASSWORD)
        welcome = await again.recv()
        assert welcome["type"] == "welcome", welcome
        assert len(welcome["rooms"]) == 100 and "s100" not in welcome["rooms"], welcome
    finally:
        srv.kill()


async def test_the_server_wide_room_cap(tmp_path: Path, peers: list[Peer]) -> None:
    srv = ServerProcess(tmp_path / "global", {**UNLIMITED, "max_rooms": 4}).start()
    try:
        one = await login(peers, srv.port, "one")
        two = await login(peers, srv.port, "two")
        for room in ("a", "b", "c"):  # and the lobby: 4
            assert (await one.ask(room, type="join", room=room))["type"] == "ok"
        refused = await two.ask("d", type="join", room="d")
        assert refused["type"] == "error" and refused["code"] == "forbidden", refused
        assert refused["reason"] == "server_room_limit", refused
        # Joining a room that exists is still fine.
        assert (await two.ask("a", type="join", room="a"))["type"] == "ok"
        rooms = await two.ask("r", type="rooms")
        assert [r["name"] for r in rooms["rooms"]] == ["a", "b", "c", "lobby"]
    finally:
        srv.kill()


async def test_the_rooms_reply_is_bounded(tmp_path: Path, peers: list[Peer]) -> None:
    srv = ServerProcess(tmp_path / "rooms", UNLIMITED).start()  # rooms_reply_max: 200
    try:
        made = 1  # the lobby
        guests: list[Client] = []
        while made < 200:
            guest = await login(peers, srv.port, f"maker{len(guests)}")
            guests.append(guest)
            for _ in range(min(19, 200 - made)):
                made += 1
                assert (await guest.ask("j", type="join", room=f"room{made:03d}"))["type"] == "ok"
        full = await guests[0].ask("all", type="rooms")
        assert len(full["rooms"]) == 200 and full["truncated"] is False, full
        assert (await guests[-1].ask("j", type="join", room="room201"))["type"] == "ok"
        cut = await guests[0].ask("cut", type="rooms")
        assert len(cut["rooms"]) == 200 and cut["truncated"] is True, cut
        names = [r["name"] for r in cut["rooms"]]
        assert names == sorted(names) and "lobby" in names  # the busiest stays listed
    finally:
        srv.kill()


async def test_the_who_reply_is_bounded(tmp_path: Path, peers: list[Peer]) -> None:
    srv = ServerProcess(tmp_path / "whomax", {**CHEAP, "who_reply_max": 5}).start()
    try:
        people = [await login(peers, srv.port, f"p{i}") for i in range(5)]
        full = await people[0].ask("w1", type="who", room="lobby")
        assert [u["nick"] for u in full["users"]] == [f"p{i}" for i in range(5)], full
        assert full["truncated"] is False
        await login(peers, srv.port, "a-late-one")
        cut = await people[0].ask("w2", type="who", room="lobby")
        assert [u["nick"] for u in cut["users"]] == ["a-late-one", *(f"p{i}" for i in range(4))]
        assert cut["truncated"] is True
    finally:
        srv.kill()
