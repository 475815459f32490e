"""``chinwag admin export`` (issue 17, item 4): one account's data, or one room's history."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import Peer, ServerProcess
from ops_support import SETTINGS, ack, admin, log_in, register

from chinwag.admin import EXPORT_PAGE


async def test_an_export_holds_the_accounts_messages_and_nothing_of_others(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "server", SETTINGS)
    srv.start()
    try:
        alice = await register(peers, srv.port, "Alice")
        bob = await register(peers, srv.port, "bob")
        carol = await register(peers, srv.port, "carol")
        await alice.send(type="bye")
        await alice.expect_closed()
        alice = await log_in(peers, srv.port, "alice", password="Alice-password", device="desk")
        for peer in (alice, carol):
            await peer.send(type="join", room="games", ref="j")
            await peer.recv_type("ok")
        sent = [
            (alice, {"type": "say", "room": "lobby", "body": "alice in the lobby"}),
            (alice, {"type": "say", "room": "games", "body": "alice in games", "cid": "c-1"}),
            (alice, {"type": "dm", "to": "bob", "body": "alice to bob"}),
            (bob, {"type": "dm", "to": "alice", "body": "bob to alice", "cid": "bob-cid"}),
            (bob, {"type": "say", "room": "lobby", "body": "bob in the lobby"}),
            (carol, {"type": "dm", "to": "bob", "body": "carol to bob"}),
            (carol, {"type": "say", "room": "games", "body": "carol in games"}),
        ]
        ids = {}
        for peer, frame in sent:
            await peer.send(**frame, ref="m")
            ids[frame["body"]] = await ack(peer)

        out = tmp_path / "alice.json"
        code, said, err = await admin(srv.data, "export", "ALICE", "--out", str(out))
        assert code == 0, err
        assert "exported" in said
        assert out.stat().st_mode & 0o777 == 0o600
        text = out.read_text(encoding="utf-8")
        export = json.loads(text)
        assert export["account"]["nick"] == "Alice"
        assert "argon2" not in text and "password" not in text
        assert {d["device"] for d in export["devices"]} >= {"desk"}
        assert {m["room"] for m in export["memberships"]} == {"lobby", "games"}
        bodies = [m["body"] for m in export["messages"]]
        assert bodies == ["alice in the lobby", "alice in games", "alice to bob", "bob to alice"]
        by_body = {m["body"]: m for m in export["messages"]}
        assert by_body["alice in games"]["cid"] == "c-1" and by_body["alice in games"]["sent"]
        assert by_body["bob to alice"] == {
            "id": ids["bob to alice"],
            "ts_ms": by_body["bob to alice"]["ts_ms"],
            "from": "bob",
            "to": "Alice",
            "body": "bob to alice",
            "sent": False,  # and not bob's cid
        }

        code, said, err = await admin(srv.data, "export", "--room", "Games")
        assert code == 0, err
        room = json.loads(said)
        assert room["room"] == "games"
        assert [m["body"] for m in room["messages"]] == ["alice in games", "carol in games"]
    finally:
        srv.kill()


async def test_export_refuses_what_it_cannot_do_and_writes_nothing(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "server", SETTINGS)
    srv.start()
    try:
        await register(peers, srv.port, "dave")
        taken = tmp_path / "taken.json"
        taken.write_text("mine")
        code, _, err = await admin(srv.data, "export", "dave", "--out", str(taken))
        assert code == 1 and "exists" in err and "nothing was written" in err
        assert taken.read_text() == "mine"
        code, out, err = await admin(srv.data, "export", "nobody")
        assert (code, out) == (1, "") and "no account called 'nobody'" in err
        code, _, err = await admin(srv.data, "export", "dave", "--room", "lobby")
        assert code == 2 and "one of the two" in err
        code, _, err = await admin(srv.data, "export", "--room", "no room!")
        assert code == 2 and "not a room name" in err
        assert sorted(os.listdir(tmp_path)) == ["server", "taken.json"]
    finally:
        srv.kill()


async def test_a_room_export_longer_than_one_page_holds_every_message_once(
    tmp_path: Path, peers: list[Peer]
) -> None:
    srv = ServerProcess(tmp_path / "server", SETTINGS)
    srv.start()
    try:
        erin = await register(peers, srv.port, "erin")
        count = EXPORT_PAGE + 1  # pages of EXPORT_PAGE: the last holds one message
        for n in range(count):
            await erin.send(type="say", room="lobby", body=f"m{n}", ref=f"r{n}")
        acked = [await ack(erin) for _ in range(count)]
        code, out, err = await admin(srv.data, "export", "--room", "lobby")
        assert code == 0, err
        messages = json.loads(out)["messages"]
        assert [m["id"] for m in messages] == acked
        assert [m["body"] for m in messages] == [f"m{n}" for n in range(count)]
    finally:
        srv.kill()
