"""Notices, labeled JOINs and text reactions (issue 19, ircmsg), over real sockets.

Each test runs a server with a JSON-lines and an IRC listener on loopback port 0
(``test_irc_listener.running``) and drives raw IRC clients and JSON clients.
"""

from __future__ import annotations

from pathlib import Path

from test_irc_listener import clients, irc, json_peer, make_account, running

from chinwag.protocol.irc import IrcMessage


def notice(msg: IrcMessage) -> bool:
    return msg.command == "NOTICE" and "!" in (msg.source or "")  # a person's, not the server's


async def test_a_notice_reaches_irc_as_a_notice_and_json_as_one_also_in_history(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        ann = await irc(made, irc_port)
        await ann.send("CAP LS 302", "CAP REQ :echo-message message-tags")
        await ann.register("ann", "CAP END")
        bob = await irc(made, irc_port)
        await bob.register("bob")
        cat = await json_peer(made, json_port)
        await cat.hello("cat")

        await ann.send("NOTICE #lobby :the build is green")
        echo, _ = await ann.until(notice)
        heard, _ = await bob.until(notice)
        assert (echo.params, heard.params) == (("#lobby", "the build is green"),) * 2
        assert heard.source == "ann!ann@chinwag"
        got = await cat.recv_type("message")
        assert (got["body"], got["notice"]) == ("the build is green", True)
        await ann.send("PRIVMSG #lobby :and a message")
        plain = await cat.recv_type("message")
        assert "notice" not in plain  # a message is no notice
        heard, _ = await bob.until(lambda m: m.command in ("PRIVMSG", "NOTICE"))
        assert heard.command == "PRIVMSG"

        await ann.send("NOTICE bob :just so you know")  # a DM notice
        dm, _ = await bob.until(notice)
        assert dm.params == ("bob", "just so you know")

        await cat.send(type="dm", to="bob", body="from json", notice=True, ref="n")
        assert (await cat.recv_type("ack"))["ref"] == "n"
        from_json, _ = await bob.until(notice)
        assert (from_json.source, from_json.params) == ("cat!cat@chinwag", ("bob", "from json"))

        await cat.send(type="history", room="lobby", ref="h")
        page = await cat.recv_type("history")
        kinds = [(m["body"], m.get("notice", False)) for m in page["messages"]]
        assert kinds == [("the build is green", True), ("and a message", False)]


async def test_a_notice_that_is_not_valid_is_refused_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, _), clients() as made:
        cat = await json_peer(made, json_port)
        await cat.hello("cat")
        await cat.send(type="say", room="lobby", body="x", notice="yes", ref="bad")
        refused = await cat.recv_type("error")
        assert (refused["code"], refused["ref"]) == ("bad_request", "bad")
        await cat.send(type="history", room="lobby", ref="h")
        assert (await cat.recv_type("history"))["messages"] == []


async def test_a_labeled_join_with_an_invalid_name_is_answered_in_one_batch(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, irc_auto_join="false") as (_, irc_port), clients() as made:
        foo = await irc(made, irc_port)
        await foo.send("CAP LS 302", "CAP REQ :batch labeled-response")
        await foo.register("foo", "CAP END")
        await foo.send("@label=l1 JOIN #valid,inv@lid")
        start, _ = await foo.until(lambda m: m.command == "BATCH")
        assert start.tags["label"] == "l1" and start.params[1] == "labeled-response"
        end, inside = await foo.until(lambda m: m.command == "BATCH")
        assert end.params == (f"-{start.params[0][1:]}",)
        assert {m.command for m in inside} == {"403", "JOIN", "353", "366"}
        assert all(m.tags["batch"] == start.params[0][1:] for m in inside)
        [refused] = [m for m in inside if m.command == "403"]
        assert refused.params[1] == "inv@lid"

        await foo.send("JOIN #other,bad")  # without a label: as before, one by one
        bad = await foo.command("403")
        assert bad.params[1] == "bad" and "batch" not in bad.tags


async def test_a_short_text_reaction_crosses_between_irc_and_json(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        caps = "message-tags echo-message"
        ann = await irc(made, irc_port)
        await ann.send("CAP LS 302", f"CAP REQ :{caps}")
        await ann.register("ann", "CAP END")
        cat = await json_peer(made, json_port)
        await cat.hello("cat")
        await cat.send(type="say", room="lobby", body="ship it?", ref="s")
        msgid = (await cat.recv_type("ack"))["id"]

        await ann.send(f"@label=L1;+draft/reply={msgid};+draft/react=l😃l TAGMSG #lobby")
        got = await cat.recv_type("reacted")
        assert (got["from"], got["emoji"], got["target"]) == ("ann", "l😃l", msgid)
        echo, _ = await ann.until(lambda m: m.command == "TAGMSG")  # echo-message: its echo
        assert (echo.source, echo.params) == ("ann!ann@chinwag", ("#lobby",))
        assert (echo.tags["+draft/react"], echo.tags["msgid"]) == ("l😃l", str(got["id"]))
        await cat.send(type="react", id=msgid, emoji="+1", ref="r")
        relayed, before = await ann.until(lambda m: m.command == "TAGMSG")
        assert relayed.source == "cat!cat@chinwag" and relayed.tags["+draft/react"] == "+1"
        assert before == []  # the hub's copy of her own reaction was not shown again
        await ann.send(f"@+draft/reply={msgid};+draft/react=a\\sb TAGMSG #lobby")  # "a b"
        refused = await ann.command("FAIL")
        assert refused.params[0] == "TAGMSG"
        await cat.send(type="history", room="lobby", ref="h")
        [shown] = (await cat.recv_type("history"))["messages"]
        assert shown["reactions"] == [
            {"emoji": "l😃l", "nicks": ["ann"]},
            {"emoji": "+1", "nicks": ["cat"]},
        ]


async def test_a_guest_renames_and_everyone_sharing_a_room_sees_it_on_each_protocol(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        ann = await irc(made, irc_port)
        await ann.send("CAP LS 302", "CAP REQ :batch labeled-response")
        await ann.register("ann", "CAP END")
        bob = await irc(made, irc_port)
        await bob.register("bob")
        cat = await json_peer(made, json_port)
        await cat.hello("cat")
        await ann.until(lambda m: m.command == "JOIN" and m.source == "cat!cat@chinwag")

        await bob.send("NICK ann")  # taken: refused, bob is still bob
        taken = await bob.command("433")
        assert taken.params[:2] == ("bob", "ann")
        await bob.send("NICK Ann")  # the same nick in another case: taken too
        assert (await bob.command("433")).params[1] == "Ann"

        await ann.send("@label=n1 NICK Anna")
        mine = await ann.command("NICK")
        assert (mine.source, mine.params, mine.tags["label"]) == (
            "ann!ann@chinwag",
            ("Anna",),
            "n1",
        )
        seen = await bob.command("NICK")
        assert (seen.source, seen.params) == ("ann!ann@chinwag", ("Anna",))
        told = await cat.recv_type("presence")
        assert told == {"type": "presence", "event": "nick", "nick": "ann", "new": "Anna"}

        await ann.send("NICK anna")  # a change of case only
        assert (await ann.command("NICK")).params == ("anna",)
        assert (await bob.command("NICK")).source == "Anna!Anna@chinwag"
        await ann.send("NICK anna", "PRIVMSG #lobby :still me")  # the same: nothing
        said, before = await bob.until(lambda m: m.command == "PRIVMSG")
        assert (said.source, before) == ("anna!anna@chinwag", [])
        assert (await cat.recv_type("message"))["from"] == "anna"

        dan = await irc(made, irc_port)  # the old nick is free at once
        lines = await dan.register("ann")
        assert lines[-1].params[0] == "ann"
        await cat.send(type="dm", to="anna", body="hi anna", ref="d")
        assert (await ann.command("PRIVMSG")).params == ("anna", "hi anna")


async def test_a_json_guest_renames_and_an_account_cannot(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        bob = await irc(made, irc_port)
        await bob.register("bob")
        cat = await json_peer(made, json_port)
        await cat.hello("cat")
        await cat.send(type="nick", nick="bob", ref="t")
        assert (await cat.recv_type("error"))["code"] == "nick_taken"
        await cat.send(type="nick", nick="b@d", ref="b")
        assert (await cat.recv_type("error"))["code"] == "bad_nick"
        await cat.send(type="nick", nick="kit", ref="k")
        answer = await cat.recv_type("presence")
        assert answer == {
            "type": "presence",
            "event": "nick",
            "nick": "cat",
            "new": "kit",
            "ref": "k",
        }
        assert (await bob.command("NICK")).params == ("kit",)

        await cat.send(type="register", password="correct horse", ref="r")
        assert (await cat.recv_type("ok", timeout=30))["ref"] == "r"
        await cat.send(type="nick", nick="kat", ref="a")
        refused = await cat.recv_type("error")
        assert (refused["code"], refused["reason"]) == ("forbidden", "account")
        await bob.send("NICK kit")  # an account's nick, though it was a guest's first
        assert (await bob.command("433")).params[1] == "kit"


async def test_without_auto_join_an_account_s_lobby_is_not_shown_until_it_joins(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        await make_account(json_port, "ann", "correct horse")  # a lobby member (§4)
        ann = await irc(made, irc_port)
        lines = await ann.register("ann", "PASS :correct horse")
        cat = await json_peer(made, json_port)
        await cat.hello("cat")
        await cat.send(type="say", room="lobby", body="in the lobby", ref="s")
        await cat.recv_type("ack")
        await cat.send(type="dm", to="ann", body="to ann", ref="d")
        heard, before = await ann.until(lambda m: m.command == "PRIVMSG")
        assert heard.params == ("ann", "to ann")  # the DM; nothing of the lobby
        assert [m for m in [*lines, *before] if "#lobby" in m.params] == []

        await ann.send("JOIN #lobby")
        joined = await ann.command("JOIN")
        assert joined.params == ("#lobby",)
        names = await ann.command("353")
        assert names.params[-1].split() == ["ann", "cat"]
        await cat.send(type="say", room="lobby", body="now you see it", ref="t")
        said, _ = await ann.until(lambda m: m.command == "PRIVMSG")
        assert said.params == ("#lobby", "now you see it")
        await cat.send(type="who", room="lobby", ref="w")
        who = await cat.recv_type("who")
        assert {u["nick"] for u in who["users"]} == {"ann", "cat"}  # a member all along
