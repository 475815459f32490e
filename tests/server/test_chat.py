"""Chat flows over real sockets against a real server process (protocol v1 §2-§5)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from conftest import Peer, ServerProcess
from support.peers import login


async def register(
    peers: list[Peer], port: int, nick: str, password: str = "correct horse"
) -> Peer:
    peer = await login(peers, port, nick)
    await peer.send(type="register", password=password, ref="reg")
    assert await peer.recv_type("ok") == {"type": "ok", "ref": "reg"}
    return peer


async def relogin(
    peers: list[Peer], port: int, nick: str, password: str = "correct horse", **extra: object
) -> tuple[Peer, list[dict[str, object]], dict[str, object]]:
    """Log in as an account; return the peer, the replayed messages and caught_up."""
    peer = await Peer.connect(port)
    peers.append(peer)
    await peer.send(type="hello", proto=1, nick=nick, password=password, **extra)
    welcome = await peer.recv()
    assert welcome["type"] == "welcome", welcome
    replay = []
    while (frame := await peer.recv())["type"] == "message":
        assert frame["replay"] is True
        replay.append(frame)
    assert frame["type"] == "caught_up", frame
    return peer, replay, frame


async def close_all(peers: list[Peer]) -> None:
    for peer in peers:
        await peer.close()
    peers.clear()


async def bye(peer: Peer) -> None:
    await peer.send(type="bye")
    frames = await peer.expect_closed()
    assert frames[-1] == {"type": "bye"}


async def test_lobby_message_reaches_everyone_with_ack_first(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await login(peers, server.port, "bob")
    carol = await login(peers, server.port, "carol")
    await alice.send(type="say", room="lobby", body="hello all", cid="c-1", ref="r1")
    ack = await alice.recv_type("ack")
    assert ack["ref"] == "r1" and ack["cid"] == "c-1" and ack["id"] >= 1
    own = await alice.recv_type("message")
    assert own["id"] == ack["id"] and own["cid"] == "c-1" and own["ts"] == ack["ts"]
    for peer in (bob, carol):
        msg = await peer.recv_type("message")
        assert msg["body"] == "hello all" and msg["from"] == "alice" and msg["room"] == "lobby"
        assert "cid" not in msg, "only the sender's copies carry cid"


async def test_dm_reaches_both_parties_and_never_a_third(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await login(peers, server.port, "bob")
    eve = await login(peers, server.port, "eve")
    await alice.send(type="dm", to="BOB", body="psst", cid="d1")
    await alice.recv_type("ack")
    mine = await alice.recv_type("message")
    assert mine["to"] == "bob" and mine["cid"] == "d1"
    theirs = await bob.recv_type("message")
    assert theirs["from"] == "alice" and theirs["to"] == "bob" and theirs["body"] == "psst"
    assert [f for f in await eve.quiet(0.4) if f["type"] == "message"] == []
    await eve.send(type="history", **{"with": "bob"}, ref="h")
    page = await eve.recv_type("history")
    assert page["messages"] == []


async def test_rooms_join_say_leave_presence_who(server: ServerProcess, peers: list[Peer]) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await login(peers, server.port, "bob")
    await alice.send(type="join", room="Games", ref="j")
    assert await alice.recv_type("ok") == {"type": "ok", "ref": "j"}
    await bob.send(type="say", room="games", body="x", ref="s")
    assert (await bob.recv_type("error"))["code"] == "not_member"
    await bob.send(type="join", room="games")
    await bob.recv_type("ok")
    presence = await alice.recv_type("presence")
    assert presence == {"type": "presence", "room": "games", "nick": "bob", "event": "join"}
    await bob.send(type="join", room="games", ref="again")
    assert await bob.recv_type("ok") == {"type": "ok", "ref": "again"}
    await bob.send(type="who", room="games", ref="w")
    who = await bob.recv_type("who")
    assert who["users"] == [  # alice made #games: its owner (rooms4)
        {"nick": "alice", "account": False, "role": "owner"},
        {"nick": "bob", "account": False},
    ]
    await bob.send(type="rooms", ref="r")
    rooms = await bob.recv_type("rooms")
    assert {"name": "games", "online": 2} in rooms["rooms"]
    await alice.send(type="say", room="games", body="gg", cid="g1")
    assert (await bob.recv_type("message"))["body"] == "gg"
    await bob.send(type="leave", room="games", ref="l")
    await bob.recv_type("ok")
    presence = await alice.recv_type("presence")
    assert presence["event"] == "leave" and presence["nick"] == "bob"
    await alice.send(type="say", room="games", body="alone", cid="g2")
    await alice.recv_type("ack")
    assert [f for f in await bob.quiet(0.3) if f["type"] == "message"] == []
    await bob.send(type="leave", room="lobby", ref="ll")
    assert (await bob.recv_type("error"))["code"] == "forbidden"
    await bob.send(type="join", room="no spaces", ref="bad")
    assert (await bob.recv_type("error"))["code"] == "bad_room"
    await bob.send(type="who", room="games", ref="w2")
    assert (await bob.recv_type("error"))["code"] == "not_member"


async def test_leave_then_join_in_one_write_ends_in_the_room(
    server: ServerProcess, peers: list[Peer]
) -> None:
    # As IRC's PART then JOIN (/cycle): the frames are carried out in the order sent.
    alice = await login(peers, server.port, "alice")
    bob = await login(peers, server.port, "bob")
    for peer in (alice, bob):
        await peer.send(type="join", room="games", ref="j")
        await peer.recv_type("ok")
    leave = {"type": "leave", "room": "games", "ref": "l"}
    join = {"type": "join", "room": "games", "ref": "j2"}
    await bob.send_raw(json.dumps(leave).encode() + b"\n" + json.dumps(join).encode() + b"\n")
    assert (await bob.recv_type("ok"))["ref"] == "l"
    assert (await bob.recv_type("ok"))["ref"] == "j2"
    seen = [(p["nick"], p["event"]) for p in [await alice.recv_type("presence") for _ in "123"]]
    assert seen == [("bob", "join"), ("bob", "leave"), ("bob", "join")]
    await alice.send(type="say", room="games", body="still here?", cid="g1")
    assert (await bob.recv_type("message"))["body"] == "still here?"

    # The other order: out of the room at the end.
    await bob.send_raw(json.dumps(join).encode() + b"\n" + json.dumps(leave).encode() + b"\n")
    assert (await bob.recv_type("ok"))["ref"] == "j2"
    assert (await bob.recv_type("ok"))["ref"] == "l"
    await alice.send(type="say", room="games", body="gone?", cid="g2")
    await alice.recv_type("ack")
    assert [f for f in await bob.quiet(0.3) if f["type"] == "message"] == []


async def test_typing_is_forwarded_not_stored(server: ServerProcess, peers: list[Peer]) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await login(peers, server.port, "bob")
    await alice.send(type="typing", room="lobby")
    assert await bob.recv_type("typing") == {"type": "typing", "from": "alice", "room": "lobby"}
    await alice.send(type="typing", to="bob")
    assert await bob.recv_type("typing") == {"type": "typing", "from": "alice", "to": "bob"}
    await alice.send(type="typing", room="nowhere")
    await alice.send(type="history", room="lobby", ref="h")
    assert (await alice.recv_type("history"))["messages"] == []
    assert await alice.quiet(0.2) == []


async def test_away_summary_then_backlog_then_live(
    server: ServerProcess, peers: list[Peer]
) -> None:
    """The issue's story: Bob registers, leaves; Alice writes; Bob comes back."""
    alice = await login(peers, server.port, "alice")
    bob = await register(peers, server.port, "bob")
    await bye(bob)
    for i in range(3):
        await alice.send(type="dm", to="bob", body=f"dm {i}", cid=f"d{i}")
        await alice.recv_type("ack")
    await alice.send(type="say", room="lobby", body="while you were out", cid="l1")
    await alice.recv_type("ack")
    bob, replay, caught_up = await relogin(peers, server.port, "Bob")
    assert [m["body"] for m in replay] == ["dm 0", "dm 1", "dm 2", "while you were out"]
    assert caught_up == {
        "type": "caught_up",
        "missed": 4,
        "rooms": {"lobby": 1},
        "dms": {"alice": 3},
        "truncated": False,
        "mentions": 0,
        "unread": {"lobby": 1, "@alice": 3},
    }
    await alice.send(type="say", room="lobby", body="live", cid="l2")
    live = await bob.recv_type("message")
    assert live["body"] == "live" and "replay" not in live


async def test_offline_dms_survive_a_restart(server: ServerProcess, peers: list[Peer]) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await register(peers, server.port, "bob")
    await bob.send(type="join", room="games")
    await bob.recv_type("ok")
    await bye(bob)
    await alice.send(type="dm", to="bob", body="before restart", cid="x1")
    await alice.recv_type("ack")
    server.kill()
    server.start()
    await close_all(peers)
    bob, replay, caught_up = await relogin(peers, server.port, "bob")
    assert [m["body"] for m in replay] == ["before restart"]
    assert caught_up["dms"] == {"alice": 1}
    await bob.send(type="who", room="games", ref="w")
    assert (await bob.recv_type("who"))["users"] == [
        {"nick": "bob", "account": True, "role": "owner"}
    ]


async def test_each_device_catches_up_on_its_own(server: ServerProcess, peers: list[Peer]) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await register(peers, server.port, "bob", password="pw-12345678")
    await bye(bob)
    phone, _, _ = await relogin(peers, server.port, "bob", "pw-12345678", device="phone")
    desk, _, _ = await relogin(peers, server.port, "bob", "pw-12345678", device="desk")
    await alice.send(type="dm", to="bob", body="one", cid="1")
    await alice.recv_type("ack")
    for dev in (phone, desk):
        assert (await dev.recv_type("message"))["body"] == "one"
    await bye(desk)  # desk's cursor moves past "one"; phone just drops
    await phone.close()
    await alice.send(type="dm", to="bob", body="two", cid="2")
    await alice.recv_type("ack")
    _, desk_replay, _ = await relogin(peers, server.port, "bob", "pw-12345678", device="desk")
    _, phone_replay, _ = await relogin(peers, server.port, "bob", "pw-12345678", device="phone")
    assert [m["body"] for m in desk_replay] == ["two"]
    assert [m["body"] for m in phone_replay] == ["one", "two"], (
        "at least once: phone never said seen"
    )


async def test_seen_moves_the_cursor_and_is_clamped(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await register(peers, server.port, "bob")
    await alice.send(type="say", room="lobby", body="m1", cid="1")
    first = (await alice.recv_type("ack"))["id"]
    await bob.recv_type("message")
    await bob.send(type="seen", upto=first + 1000)  # clamped to what bob received
    await bob.close()
    await alice.send(type="say", room="lobby", body="m2", cid="2")
    await alice.recv_type("ack")
    _, replay, _ = await relogin(peers, server.port, "bob")
    assert [m["body"] for m in replay] == ["m2"]


async def test_a_new_device_starts_at_the_accounts_highest_cursor(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await register(peers, server.port, "bob")
    await alice.send(type="say", room="lobby", body="old", cid="1")
    await alice.recv_type("ack")
    await bob.recv_type("message")
    await bye(bob)
    _, replay, caught_up = await relogin(peers, server.port, "bob", device="brand-new")
    assert replay == [] and caught_up["missed"] == 0


async def test_other_devices_get_my_own_dms_in_backlog(
    server: ServerProcess, peers: list[Peer]
) -> None:
    await login(peers, server.port, "carol")
    bob = await register(peers, server.port, "bob")
    await bye(bob)
    desk, _, _ = await relogin(peers, server.port, "bob", device="desk")
    await desk.send(type="dm", to="carol", body="from the desk", cid="c")
    await desk.recv_type("ack")
    _, replay, caught_up = await relogin(peers, server.port, "bob", device="default")
    assert [(m["body"], m["to"], m.get("cid")) for m in replay] == [("from the desk", "carol", "c")]
    assert caught_up["dms"] == {"carol": 1}


async def test_resend_with_same_cid_makes_no_second_message(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await login(peers, server.port, "alice", device="laptop")
    await alice.send(type="say", room="lobby", body="once", cid="same")
    first = await alice.recv_type("ack")
    await alice.close()
    await close_all(peers)
    # A guest reconnecting with the same nick from the same device is the same
    # sender for dedupe (another guest who takes the nick is not: test_small_gaps).
    alice = await login(peers, server.port, "alice", device="laptop")
    await alice.send(type="say", room="lobby", body="different body", cid="same", ref="again")
    again = await alice.recv_type("ack")
    assert again["id"] == first["id"] and again["ts"] == first["ts"] and again["ref"] == "again"
    await alice.send(type="history", room="lobby", ref="h")
    page = await alice.recv_type("history")
    assert [m["body"] for m in page["messages"]] == ["once"]


async def test_dedupe_survives_a_restart(server: ServerProcess, peers: list[Peer]) -> None:
    alice = await register(peers, server.port, "alice")
    await alice.send(type="say", room="lobby", body="once", cid="k")
    first = await alice.recv_type("ack")
    server.kill()
    server.start()
    await close_all(peers)
    alice, _, _ = await relogin(peers, server.port, "alice")
    await alice.send(type="say", room="lobby", body="once", cid="k")
    assert (await alice.recv_type("ack"))["id"] == first["id"]


async def test_register_keeps_rooms_and_marks_account(
    server: ServerProcess, peers: list[Peer]
) -> None:
    bob = await login(peers, server.port, "bob")
    await bob.send(type="join", room="chess")
    await bob.recv_type("ok")
    await bob.send(type="register", password="short", ref="w")
    assert (await bob.recv_type("error"))["code"] == "weak_password"
    await bob.send(type="register", password="x" * 1025, ref="l")
    assert (await bob.recv_type("error"))["code"] == "bad_request"
    await bob.send(type="register", password="long enough", ref="ok")
    await bob.recv_type("ok")
    await bob.send(type="register", password="long enough", ref="twice")
    assert (await bob.recv_type("error"))["code"] == "nick_registered"
    await bye(bob)
    bob, _, _ = await relogin(peers, server.port, "bob", "long enough")
    await bob.send(type="who", room="chess", ref="w")
    assert (await bob.recv_type("who"))["users"] == [
        {"nick": "bob", "account": True, "role": "owner"}
    ]


async def test_passwd(server: ServerProcess, peers: list[Peer]) -> None:
    guest = await login(peers, server.port, "guest")
    await guest.send(type="passwd", old="a", new="bbbbbbbbbb", ref="g")
    assert (await guest.recv_type("error"))["code"] == "forbidden"
    bob = await register(peers, server.port, "bob", password="first-password")
    await bob.send(type="passwd", old="wrong-password", new="second-password", ref="x")
    assert (await bob.recv_type("error"))["code"] == "bad_password"
    await bob.send(type="passwd", old="first-password", new="second-password", ref="y")
    assert await bob.recv_type("ok") == {"type": "ok", "ref": "y"}
    await bye(bob)
    await relogin(peers, server.port, "bob", "second-password")


async def test_guest_dms_belong_to_the_session_not_the_nick(
    server: ServerProcess, peers: list[Peer]
) -> None:
    alice = await login(peers, server.port, "alice")
    guest = await login(peers, server.port, "temp")
    await alice.send(type="dm", to="temp", body="secret for the first temp", cid="s")
    await alice.recv_type("ack")
    await guest.recv_type("message")
    await bye(guest)
    await alice.send(type="dm", to="temp", body="anyone?", cid="t", ref="gone")
    assert (await alice.recv_type("error"))["code"] == "no_such_user"
    later = await login(peers, server.port, "temp")
    await later.send(type="history", **{"with": "alice"}, ref="h")
    assert (await later.recv_type("history"))["messages"] == []


async def test_history_paging_and_errors(server: ServerProcess, peers: list[Peer]) -> None:
    alice = await login(peers, server.port, "alice")
    ids = []
    for i in range(7):
        await alice.send(type="say", room="lobby", body=f"m{i}", cid=f"h{i}")
        ids.append((await alice.recv_type("ack"))["id"])
    await alice.send(type="history", room="lobby", limit=3, ref="p1")
    page = await alice.recv_type("history")
    assert [m["body"] for m in page["messages"]] == ["m4", "m5", "m6"] and page["more"] is True
    assert page["room"] == "lobby" and page["ref"] == "p1"
    await alice.send(type="history", room="lobby", limit=3, before=ids[4])
    page = await alice.recv_type("history")
    assert [m["body"] for m in page["messages"]] == ["m1", "m2", "m3"] and page["more"] is True
    await alice.send(type="history", room="lobby", limit=3, before=ids[1])
    page = await alice.recv_type("history")
    assert [m["body"] for m in page["messages"]] == ["m0"] and page["more"] is False
    await alice.send(type="history", room="secret", ref="nm")
    assert (await alice.recv_type("error"))["code"] == "not_member"
    await alice.send(type="history", **{"with": "nobody"}, ref="nu")
    assert (await alice.recv_type("error"))["code"] == "no_such_user"
    await alice.send(type="history", room="lobby", **{"with": "alice"}, ref="both")
    assert (await alice.recv_type("error"))["code"] == "bad_request"


async def test_dm_errors_and_self_dm(server: ServerProcess, peers: list[Peer]) -> None:
    alice = await login(peers, server.port, "alice")
    await alice.send(type="dm", to="ghost", body="hi", cid="1", ref="g")
    assert (await alice.recv_type("error"))["code"] == "no_such_user"
    await alice.send(type="dm", to="alice", body="note to self", cid="2")
    ack = await alice.recv_type("ack")
    msg = await alice.recv_type("message")
    assert msg["id"] == ack["id"] and msg["to"] == "alice" and msg["from"] == "alice"
    assert [f for f in await alice.quiet(0.3) if f["type"] == "message"] == [], "one copy only"
    await alice.send(type="say", room="lobby", body="", cid="3", ref="e")
    assert (await alice.recv_type("error"))["code"] == "bad_body"
    await alice.send(type="say", room="lobby", body="x" * 4001, cid="4", ref="l")
    assert (await alice.recv_type("error"))["code"] == "bad_body"


async def test_offline_quota(tmp_path: Path, peers: list[Peer]) -> None:
    srv = ServerProcess(tmp_path / "q", {"offline_quota": 3, "argon2_memory_kib": 8192})
    srv.start()
    try:
        alice = await login(peers, srv.port, "alice")
        bob = await register(peers, srv.port, "bob")
        await bye(bob)
        for i in range(3):
            await alice.send(type="dm", to="bob", body=f"{i}", cid=f"q{i}")
            await alice.recv_type("ack")
        await alice.send(type="dm", to="bob", body="one too many", cid="q9", ref="full")
        err = await alice.recv_type("error")
        assert err["code"] == "quota_exceeded" and err["ref"] == "full"
        _, replay, _ = await relogin(peers, srv.port, "bob")
        assert [m["body"] for m in replay] == ["0", "1", "2"]
    finally:
        srv.kill()


async def test_backlog_live_seam_has_no_gap_duplicate_or_reordering(
    tmp_path: Path, peers: list[Peer]
) -> None:
    server = ServerProcess(tmp_path / "seam", {"rate_per_second": 1e6, "rate_burst": 10**6})
    server.start()
    try:
        await _seam(server, peers)
    finally:
        server.kill()


async def _seam(server: ServerProcess, peers: list[Peer]) -> None:
    alice = await login(peers, server.port, "alice")
    bob = await register(peers, server.port, "bob")
    await bye(bob)
    for i in range(300):
        await alice.send(type="say", room="lobby", body=f"old {i}", cid=f"o{i}")
    for _ in range(300):
        await alice.recv_type("ack")

    async def keep_talking() -> None:
        for i in range(200):
            await alice.send(type="say", room="lobby", body=f"live {i}", cid=f"n{i}")
            await asyncio.sleep(0.002)

    talker = asyncio.create_task(keep_talking())
    bob, replay, caught_up = await relogin(peers, server.port, "bob")
    await talker
    assert caught_up["missed"] == len(replay)
    live: list[dict[str, Any]] = []
    while len(replay) + len(live) < 500:
        frame = await bob.recv_type("message")
        assert "replay" not in frame
        live.append(frame)
    ids = [m["id"] for m in replay + live]
    assert ids == sorted(set(ids)), "strictly increasing: no duplicate, no reordering"
    bodies = [m["body"] for m in replay + live]
    assert bodies == [f"old {i}" for i in range(300)] + [f"live {i}" for i in range(200)]


async def test_a_bot_account_is_marked_in_who(server: ServerProcess, peers: list[Peer]) -> None:
    bot = await login(peers, server.port, "helperbot")
    await bot.send(type="register", password="bot password", bot=True, ref="r")
    await bot.recv_type("ok")
    await bot.send(type="register", password="x", bot="yes", ref="bad")
    assert (await bot.recv_type("error"))["code"] == "bad_request"
    await bye(bot)
    await relogin(peers, server.port, "helperbot", "bot password")
    human = await register(peers, server.port, "human")
    await human.send(type="who", room="lobby", ref="w")
    assert (await human.recv_type("who"))["users"] == [
        {"nick": "helperbot", "account": True, "bot": True},
        {"nick": "human", "account": True},
    ]


async def test_pipelined_bursts_arrive_whole_in_order_with_cid_only_on_own_copies(
    tmp_path: Path, peers: list[Peer]
) -> None:
    """Messages fanned out together in one loop turn still arrive one by one, in order."""
    server = ServerProcess(tmp_path / "burst", {"rate_per_second": 1e6, "rate_burst": 10**6})
    server.start()
    try:
        ann = await login(peers, server.port, "ann")
        ben = await login(peers, server.port, "ben")
        eve = await login(peers, server.port, "eve")
        for sender, name in ((ann, "a"), (ben, "b")):
            sender.writer.write(
                b"".join(
                    f'{{"type":"say","room":"lobby","body":"{name}{i}","cid":"{name}{i}"}}\n'.encode()
                    for i in range(50)
                )
            )
        got: dict[str, list[dict[str, object]]] = {"ann": [], "ben": [], "eve": []}
        for peer, nick in ((ann, "ann"), (ben, "ben"), (eve, "eve")):
            while len(got[nick]) < 100:
                got[nick].append(await peer.recv_type("message"))
        for nick, msgs in got.items():
            ids = [int(str(m["id"])) for m in msgs]
            assert ids == sorted(set(ids)), f"{nick}: ids must strictly increase"
            for m in msgs:
                own = m["from"] == nick
                assert ("cid" in m) == own, (nick, m)
                if own:
                    assert m["cid"] == m["body"]
        assert [m["body"] for m in got["eve"] if m["from"] == "ann"] == [f"a{i}" for i in range(50)]
        assert [m["body"] for m in got["eve"] if m["from"] == "ben"] == [f"b{i}" for i in range(50)]
    finally:
        server.kill()
