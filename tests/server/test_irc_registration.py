"""IRC registration, labels, SASL and server queries (issue 19), over real sockets.

A server runs in this process with a JSON-lines and an IRC listener on loopback
port 0 (``running`` of test_irc_listener); the IRC side is a raw line client.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from test_irc_listener import clients, irc, json_peer, make_account, running

from chinwag.config import SettingsError, build
from chinwag.protocol.irc import MAX_LINE


async def test_a_labeled_pong_is_answered_by_a_labeled_ack(tmp_path: Path) -> None:
    async with running(tmp_path) as (_, irc_port), clients() as made:
        bob = await irc(made, irc_port)
        await bob.send("CAP LS 302", "CAP REQ :batch labeled-response")
        await bob.register("bob", "CAP END")
        await bob.send("@label=98765 PONG adhoctestline")
        ack, before = await bob.until(lambda m: m.command == "ACK")
        assert ack.tags == {"label": "98765"}
        assert all(m.command != "ACK" for m in before)


async def test_a_line_that_fit_the_senders_limit_reaches_the_reader_whole(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (_, irc_port), clients() as made:
        one, two = await irc(made, irc_port), await irc(made, irc_port)
        await one.register("nick1")
        await two.register("nick2")
        line = "PRIVMSG nick2 :"
        payload = "a" * (MAX_LINE - len(line) - 2 - 4) + "😃"  # exactly 512 bytes sent
        await one.send(line + payload)
        got = await two.command("PRIVMSG")
        assert got.params == ("nick2", payload)
        whole = "b" * (MAX_LINE - len("PRIVMSG nick2 ") - 2)  # no colon: one byte more
        await one.send(f"PRIVMSG nick2 {whole}")
        assert (await two.command("PRIVMSG")).params == ("nick2", whole)
        await one.send("PRIVMSG nick2 :after")
        assert (await two.command("PRIVMSG")).params == ("nick2", "after")  # nothing split off


async def test_sasl_answers_what_the_spec_asks_for_each_bad_exchange(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_account(json_port, "ann", "correct horse")
        ann = await irc(made, irc_port)
        await ann.send("CAP LS 302", "CAP REQ :sasl", "AUTHENTICATE FOO")
        mechs = await ann.command("908")
        assert mechs.params[1] == "PLAIN"
        assert "not offered" in (await ann.command("904")).params[-1]
        await ann.send("AUTHENTICATE PLAIN")
        assert (await ann.command("AUTHENTICATE")).params == ("+",)
        await ann.send("AUTHENTICATE " + "A" * 450)  # one chunk is at most 400 bytes
        assert "chunks of 400" in (await ann.command("905")).params[-1]
        await ann.send("AUTHENTICATE PLAIN")
        await ann.command("AUTHENTICATE")
        await ann.send(*["AUTHENTICATE " + "A" * 400] * 3)  # more than 800 in all
        assert "at most 800" in (await ann.command("904")).params[-1]
        # Still a fresh exchange works: the failures changed nothing.
        await ann.send("AUTHENTICATE PLAIN")
        await ann.command("AUTHENTICATE")
        await ann.send("AUTHENTICATE " + base64.b64encode(b"\0ann\0correct horse").decode())
        assert (await ann.command("900")).params[2] == "ann"
        lines = await ann.register("ann", "CAP END")
        assert lines[-1].params[0] == "ann"


async def test_sasl_after_registration_is_refused_as_a_reregistration(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_account(json_port, "ann", "correct horse")
        guest = await irc(made, irc_port)
        await guest.send("CAP LS 302", "CAP REQ :sasl")
        await guest.register("foo", "CAP END")
        await guest.send("AUTHENTICATE PLAIN")
        refused = await guest.command("462")
        assert "reconnect to log in" in refused.params[-1]
        await guest.send("PING :alive")  # the connection goes on as it was
        assert (await guest.command("PONG")).params[-1] == "alive"


async def test_an_empty_username_or_real_name_is_461_and_registration_waits(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (_, irc_port), clients() as made:
        peer = await irc(made, irc_port)
        await peer.send("NICK foo", "USER username * * :")
        refused = await peer.command("461")
        assert refused.params[:2] == ("*", "USER")
        await peer.send("USER username * * :Real Name")
        assert (await peer.command("001")).params[0] == "foo"


async def test_time_and_info_answer_for_this_server_and_402_for_another(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, server_name="My.Little.Server") as (_, irc_port), clients() as m:
        user = await irc(m, irc_port)
        await user.register("user")
        await user.send("TIME")
        now = await user.command("391")
        assert now.source == "My.Little.Server" and now.params[:2] == ("user", "My.Little.Server")
        assert "UTC" in now.params[2]
        await user.send("INFO My.Little.Server")
        end, before = await user.until(lambda msg: msg.command == "374")
        assert end.params[0] == "user"
        assert [msg.command for msg in before if msg.command.isdigit()] == ["371", "371"]
        await user.send("TIME other.example")
        other = await user.command("402")
        assert other.params[1] == "other.example"


async def test_a_labeled_join_is_one_batch_with_its_names(tmp_path: Path) -> None:
    async with running(tmp_path) as (_, irc_port), clients() as made:
        bar = await irc(made, irc_port)
        await bar.send("CAP LS 302", "CAP REQ :batch labeled-response message-tags")
        await bar.register("bar", "CAP END")
        await bar.send("@label=12345 JOIN #xyz")
        start = await bar.command("BATCH")
        assert start.tags == {"label": "12345"}
        assert start.params[0].startswith("+") and start.params[1] == "labeled-response"
        batch = start.params[0][1:]
        end, inside = await bar.until(lambda m: m.command == "BATCH")
        assert end.params == (f"-{batch}",)
        assert [m.command for m in inside] == ["JOIN", "353", "366"]
        assert all(m.tags == {"batch": batch} for m in inside)


async def test_a_labeled_join_with_read_markers_tells_the_marker_after_the_join(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (_, irc_port), clients() as made:
        bar = await irc(made, irc_port)
        caps = "batch labeled-response message-tags draft/read-marker"
        await bar.send("CAP LS 302", f"CAP REQ :{caps}")
        await bar.register("bar", "CAP END")
        await bar.send("@label=777 JOIN #xyz")
        start, before = await bar.until(lambda m: m.command == "BATCH")
        assert start.tags == {"label": "777"}
        assert not any(m.command == "MARKREAD" and m.params[0] == "#xyz" for m in before)
        _, inside = await bar.until(lambda m: m.command == "BATCH")
        assert [m.command for m in inside] == ["JOIN", "353", "366"]
        marker = await bar.command("MARKREAD")
        assert marker.params == ("#xyz", "*")


async def test_a_dm_to_oneself_arrives_and_is_echoed_with_the_label_once(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (_, irc_port), clients() as made:
        foo = await irc(made, irc_port)
        await foo.send("CAP LS 302", "CAP REQ :echo-message batch labeled-response")
        await foo.register("foo", "CAP END")
        await foo.send("@label=12345 PRIVMSG foo :hi")
        first = await foo.command("PRIVMSG")
        second = await foo.command("PRIVMSG")
        assert first.params == second.params == ("foo", "hi")
        assert [m.tags.get("label") for m in (first, second)].count("12345") == 1
        plain = await irc(made, irc_port)
        await plain.register("plain")
        await plain.send("PRIVMSG plain :note to self")
        note, _ = await plain.until(lambda m: m.command == "PRIVMSG")
        assert note.params == ("plain", "note to self")
        await plain.send("PRIVMSG plain :again")
        _, between = await plain.until(lambda m: m.command == "PRIVMSG" and m.params[1] == "again")
        assert between == []  # once, without echo-message
        await plain.send("PING :after")
        _, between = await plain.until(lambda m: m.command == "PONG")
        assert all(m.command != "PRIVMSG" for m in between)  # once, without echo-message


async def test_whowas_tells_who_went_offline_newest_first_and_406_otherwise(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        nick1 = await irc(made, irc_port)
        await nick1.register("nick1")
        await nick1.send("WHOWAS")
        assert (await nick1.command("461")).params[1] == "WHOWAS"
        await nick1.send("WHOWAS nick2")
        end, before = await nick1.until(lambda m: m.command == "369")
        assert end.params[:2] == ("nick1", "nick2")
        assert [m.command for m in before] == ["406"]
        for _ in range(2):
            nick2 = await irc(made, irc_port)
            await nick2.register("nick2")
            await nick2.send("QUIT :bye")
            await nick2.command("ERROR")
            await nick2.close()
        await nick1.send("WHOWAS Nick2 1")  # nicks are case-insensitive
        end, before = await nick1.until(lambda m: m.command == "369")
        before = [m for m in before if m.command.isdigit()]  # not nick2's JOIN and PART
        assert [(m.command, m.params[1]) for m in before] == [("314", "nick2"), ("312", "nick2")]
        assert before[0].params[2:] == ("nick2", "chinwag", "*", "nick2")
        assert before[1].params[-1].startswith("went offline 20")
        assert end.params[1] == "Nick2"
        await nick1.send("WHOWAS nick2 0")  # 0: every entry remembered
        _, before = await nick1.until(lambda m: m.command == "369")
        assert [m.command for m in before if m.command.isdigit()] == ["314", "312", "314", "312"]
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        await ann.send(type="whowas", nick="nick2", limit=5, ref="w")
        reply = await ann.recv_type("whowas")
        assert [(e["nick"], e["account"]) for e in reply["entries"]] == [("nick2", False)] * 2
        assert reply["entries"][0]["ts"] >= reply["entries"][1]["ts"]  # newest first


async def test_whowas_history_is_a_setting_at_most_that_many_and_0_keeps_none(
    tmp_path: Path,
) -> None:
    with pytest.raises(SettingsError, match="whowas_history cannot be negative"):
        build(None, ["whowas_history=-1"])
    for history, expected in ((1, ["alpha"]), (0, [])):
        async with (
            running(tmp_path / str(history), whowas_history=history) as (json_port, _),
            clients() as made,
        ):
            for nick in ("gamma", "alpha"):
                gone = await json_peer(made, json_port)
                await gone.hello(nick)
                await gone.send(type="bye")
                await gone.recv_type("bye")
            ann = await json_peer(made, json_port)
            await ann.hello("ann")
            remembered = []
            for nick in ("gamma", "alpha"):
                await ann.send(type="whowas", nick=nick, ref=nick)
                reply = await ann.recv_type("whowas")
                remembered += [e["nick"] for e in reply["entries"]]
            assert remembered == expected  # gamma, the oldest, was forgotten first


async def test_lusers_and_stats_count_the_people_online_as_they_come_and_go(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        bar = await irc(made, irc_port)
        await bar.register("bar")
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        await ann.send(type="join", room="games", ref="j")
        await ann.recv_type("ok")
        await ann.send(type="stats", ref="s")
        stats = await ann.recv_type("stats")
        assert (stats["online"], stats["here"], stats["rooms"], stats["nodes"]) == (2, 2, 2, 1)
        await bar.send("LUSERS")
        end, before = await bar.until(lambda m: m.command == "266")
        got = {m.command: m.params for m in [*before, end] if m.command.isdigit()}
        assert got["251"][1] == "There are 2 users and 0 invisible on 1 servers"
        assert got["254"][1:] == ("2", "channels formed")
        assert got["255"][1] == "I have 2 clients and 0 servers"
        await ann.send(type="bye")
        await ann.recv_type("bye")
        await bar.until(lambda m: m.command == "PART" or m.command == "QUIT")
        await bar.send("LUSERS")
        one = await bar.command("251")
        assert one.params[1] == "There are 1 users and 0 invisible on 1 servers"
        assert (await bar.command("254")).params[1] == "1"  # games is empty now


async def test_clienttagdeny_says_which_client_tags_are_relayed_and_they_are(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (_, irc_port), clients() as made:
        alice, bob = await irc(made, irc_port), await irc(made, irc_port)
        await bob.send("CAP LS 302", "CAP REQ :message-tags")
        await bob.register("bob", "CAP END")
        isupport = await bob.command("005")  # after 001
        assert "CLIENTTAGDENY=*,-typing,-draft/react,-draft/unreact,-draft/reply" in isupport.params
        await alice.register("alice")
        await alice.send("@+baz=bat TAGMSG bob", "@+typing=active TAGMSG bob")
        typing = await bob.command("TAGMSG")
        assert typing.tags == {"+typing": "active"}  # +baz was not relayed
