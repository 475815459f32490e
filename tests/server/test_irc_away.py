"""AWAY on IRC and ``away`` on JSON lines (issue 19): one state, over real sockets.

A server in this process with a ``tcp://`` and an ``irc://`` listener on
loopback port 0 (`test_irc_listener.running`); raw IRC and JSON-lines peers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_irc_listener import clients, irc, json_peer, running

from chinwag.config import SettingsError, build


def test_away_max_length_is_a_setting_of_at_least_one() -> None:
    assert build(None, ["away_max_length=1"]).away_max_length == 1
    with pytest.raises(SettingsError, match="away_max_length must be at least 1"):
        build(None, ["away_max_length=0"])


async def test_irc_away_numerics_notify_who_whois_userhost_and_301(tmp_path: Path) -> None:
    async with running(tmp_path) as (_json_port, irc_port), clients() as made:
        bar = await irc(made, irc_port)
        await bar.register("bar")
        assert "AWAYLEN=300" in (await bar.command("005")).params
        qux = await irc(made, irc_port)
        await qux.send("CAP LS 302", "CAP REQ :away-notify")
        ack, _ = await qux.until(lambda m: m.command == "CAP" and m.params[1] != "LS")
        assert ack.params[1:] == ("ACK", "away-notify")
        await qux.register("qux", "CAP END")
        await bar.command("JOIN")
        await qux.command("366")  # the lobby's names: both are there

        await bar.send("AWAY :I'm not here right now")
        nowaway = await bar.command("306")
        assert nowaway.params[0] == "bar"
        notice = await qux.command("AWAY")
        assert (notice.source, notice.params) == ("bar!bar@chinwag", ("I'm not here right now",))

        await qux.send("PRIVMSG bar :what's up")
        away = await qux.command("301")
        assert away.params == ("qux", "bar", "I'm not here right now")
        await qux.send("WHOIS bar")
        whois_away, _ = await qux.until(lambda m: m.command in ("301", "318"))
        assert whois_away.params == ("qux", "bar", "I'm not here right now")
        await qux.send("WHO #lobby")
        rows: dict[str, str] = {}
        while True:
            row = await qux.recv()
            if row.command == "315":
                break
            if row.command == "352":
                rows[row.params[5]] = row.params[6]
        assert rows == {"bar": "G", "qux": "H"}
        await qux.send("USERHOST bar qux nobody")
        userhost = await qux.command("302")
        assert userhost.params == ("qux", "bar=-bar@chinwag qux=+qux@chinwag")

        await bar.send("AWAY")
        assert (await bar.command("305")).params[0] == "bar"
        back = await qux.command("AWAY")
        assert (back.source, back.params) == ("bar!bar@chinwag", ())
        await qux.send("PRIVMSG bar :now?", "USERHOST bar")
        _, before = await qux.until(lambda m: m.command == "302")
        assert [m for m in before if m.command == "301"] == []


async def test_away_crosses_between_json_and_irc(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        bob = await irc(made, irc_port)  # no away-notify: no AWAY lines
        await bob.register("bob")
        await bob.command("366")

        await ann.send(type="away", message="in a meeting", ref="a")
        assert await ann.recv_type("ok") == {"type": "ok", "ref": "a"}
        await bob.send("PRIVMSG ann :ping?")
        assert (await bob.command("301")).params == ("bob", "ann", "in a meeting")
        await ann.recv_type("message")

        await bob.send("AWAY :biking home")
        await bob.command("306")
        notice = await ann.recv_type("away")
        assert notice == {"type": "away", "nick": "bob", "message": "biking home"}
        await ann.send(type="who", room="lobby", ref="w")
        who = await ann.recv_type("who")
        assert {u["nick"]: u.get("away") for u in who["users"]} == {
            "ann": "in a meeting",
            "bob": "biking home",
        }
        await ann.send(type="dm", to="bob", body="ride safe", ref="d")
        assert (await ann.recv_type("ack"))["away"] == "biking home"

        await bob.send("AWAY :" + "x" * 301)  # over away_max_length (300): refused
        fail = await bob.command("FAIL")
        assert fail.params[:2] == ("AWAY", "BAD_REQUEST")
        await ann.send(type="away", ref="back")  # no message: back
        await ann.recv_type("ok")
        await bob.send("PING :sync")
        _, before = await bob.until(lambda m: m.command == "PONG")
        assert [m for m in before if m.command == "AWAY"] == [], "bob asked for no away-notify"
        await ann.send(type="who", room="lobby", ref="w2")
        who = await ann.recv_type("who")
        assert {u["nick"]: u.get("away") for u in who["users"]}["bob"] == "biking home"


async def test_an_away_user_joining_a_channel_is_told_with_away_notify(tmp_path: Path) -> None:
    async with running(tmp_path) as (_json_port, irc_port), clients() as made:
        foo = await irc(made, irc_port)
        await foo.send("CAP LS 302", "CAP REQ :away-notify")
        await foo.register("foo", "CAP END")
        await foo.send("JOIN #chan")
        await foo.until(lambda m: m.command == "366" and m.params[1] == "#chan")
        bar = await irc(made, irc_port)
        await bar.register("bar")
        await bar.send("AWAY :i'm already away")
        await bar.command("306")
        await foo.command("AWAY")  # told in the lobby they share
        await bar.send("JOIN #chan")
        joined, _ = await foo.until(lambda m: m.command == "JOIN" and m.params == ("#chan",))
        assert joined.source == "bar!bar@chinwag"
        away = await foo.command("AWAY")
        assert (away.source, away.params) == ("bar!bar@chinwag", ("i'm already away",))
        await bar.send("PING :x")
        _, before = await bar.until(lambda m: m.command == "PONG")
        assert not any(m.command == "AWAY" for m in before)
