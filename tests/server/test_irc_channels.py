"""IRC channels, modes and moderation (issue 19, ircchan), over real sockets.

Each test runs a server with a JSON-lines and an IRC listener on loopback port 0
(``test_irc_listener.running``) and drives raw IRC clients, and JSON clients
where moderation must cross from one protocol to the other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from test_irc_listener import clients, irc, json_peer, make_account, privmsg, running

from chinwag.config import build
from chinwag.protocol.irc import IrcMessage


def test_irc_auto_join_is_a_setting_on_by_default() -> None:
    assert build(None, None).irc_auto_join is True
    assert build(None, ["irc_auto_join=false"]).irc_auto_join is False


async def test_without_auto_join_an_irc_client_is_only_in_what_it_joins(tmp_path: Path) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        bob = await irc(made, irc_port)
        lines = await bob.register("bob")
        await bob.send("JOIN #den")
        joined, before = await bob.until(lambda m: m.command == "JOIN")
        assert joined.params == ("#den",)
        assert [m for m in [*lines, *before] if m.command == "JOIN"] == []  # no #lobby

        await ann.send(type="say", room="lobby", body="lobby only", cid="c1")
        await ann.recv_type("ack")
        await ann.send(type="join", room="den", ref="j")
        await ann.send(type="say", room="den", body="in the den", cid="c2")
        heard, _ = await bob.until(privmsg)
        assert heard.params == ("#den", "in the den")  # nothing of the lobby came first
        await ann.send(type="who", room="lobby", ref="w")
        who = await ann.recv_type("who")
        assert [u["nick"] for u in who["users"]] == [
            "ann"
        ]  # JSON keeps its lobby; bob is not in it

        await bob.send("JOIN #lobby")  # the lobby is there for whoever joins it
        assert (await bob.command("JOIN")).params == ("#lobby",)


def numeric(code: str) -> Callable[[IrcMessage], bool]:
    return lambda m: m.command == code


async def test_moderation_from_json_reaches_irc_members_as_irc_lines(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        olga = await json_peer(made, json_port)
        await olga.hello("olga")
        await olga.send(type="register", password="correct horse battery", ref="r")
        assert (await olga.recv_type("ok", timeout=30))["ref"] == "r"
        await olga.send(type="join", room="den", ref="j")
        assert (await olga.recv_type("room_info"))["role"] == "owner"
        await olga.send(type="room", room="den", topic="chess at noon", ref="t")
        assert (await olga.recv_type("ok"))["ref"] == "t"

        bob = await irc(made, irc_port)
        await bob.register("bob")
        await bob.send("JOIN #den")
        topic, _ = await bob.until(numeric("332"))  # the topic comes with the join
        assert topic.params[1:] == ("#den", "chess at noon")
        names, _ = await bob.until(numeric("353"))
        assert names.params[-1].split() == ["bob", "@olga"]  # the owner is an op

        await olga.send(type="room", room="den", topic="go at two", announce=True, ref="a")
        assert (await olga.recv_type("ok"))["ref"] == "a"
        changed, _ = await bob.until(lambda m: m.command == "TOPIC")
        assert (changed.source, changed.params) == ("olga!olga@chinwag", ("#den", "go at two"))
        mode, _ = await bob.until(lambda m: m.command == "MODE")
        assert mode.params == ("#den", "+m")
        await bob.send("MODE #den")
        assert (await bob.until(numeric("324")))[0].params[1:] == ("#den", "+ntm")
        await bob.send("PRIVMSG #den :may I?")
        refused, _ = await bob.until(numeric("404"))  # an announce room: not a member's say
        assert "announce" in refused.params[-1]
        await bob.send("TOPIC #den :mine now")
        assert (await bob.until(numeric("482")))[0].params[1] == "#den"

        await olga.send(type="ban", room="den", nick="bob", reason="spam", ref="b")
        assert (await olga.recv_type("ok"))["ref"] == "b"
        ban, _ = await bob.until(lambda m: m.command == "MODE")
        assert (ban.source, ban.params) == ("olga!olga@chinwag", ("#den", "+b", "bob!*@*"))
        kick, _ = await bob.until(lambda m: m.command == "KICK")
        assert kick.params == ("#den", "bob", "spam")
        await bob.send("JOIN #den")
        banned, _ = await bob.until(numeric("474"))
        assert "banned" in banned.params[-1]


async def test_moderation_from_irc_is_the_same_moderation_json_members_see(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        # A guest owner makes its room private, for its session (ircroles).
        dan = await irc(made, irc_port)
        await dan.register("dan")
        await dan.send("JOIN #den")
        await dan.until(lambda m: m.command == "366" and m.params[1] == "#den")
        await dan.send("MODE #den +i")
        locked, _ = await dan.until(lambda m: m.command == "MODE")
        assert (locked.source, locked.params) == ("dan!dan@chinwag", ("#den", "+i"))

        await make_account(json_port, "carl", "correct horse")
        carl = await irc(made, irc_port)
        await carl.register("carl", "PASS :correct horse")
        await carl.send("JOIN #pit")
        names, _ = await carl.until(lambda m: m.command == "353" and m.params[2] == "#pit")
        assert names.params[-1] == "@carl"  # whoever makes a room owns it
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        await ann.send(type="join", room="pit", ref="j")
        await ann.recv_type("room_info")

        await carl.send("TOPIC #pit :welcome")
        info = await ann.recv_type("room_info")
        assert (info["topic"], info["by"]) == ("welcome", "carl")
        echoed, _ = await carl.until(lambda m: m.command == "TOPIC")  # to the setter too
        assert echoed.params == ("#pit", "welcome")
        await carl.send("MODE #pit +i")
        info = await ann.recv_type("room_info")
        assert (info["private"], info["by"]) == (True, "carl")

        await carl.send("KICK #pit ann :out you go")
        kick = await ann.recv_type("presence")
        assert (kick["event"], kick["by"], kick["reason"]) == ("kick", "carl", "out you go")
        await ann.send(type="join", room="pit", ref="again")
        refused = await ann.recv_type("error")
        assert (refused["code"], refused["reason"]) == ("forbidden", "private")
        await carl.send("INVITE ann #pit")
        inviting, _ = await carl.until(numeric("341"))
        assert inviting.params[1:] == ("ann", "#pit")
        invite = await ann.recv_type("presence")
        assert (invite["event"], invite["by"]) == ("invite", "carl")
        await ann.send(type="join", room="pit", ref="invited")
        assert (await ann.recv_type("ok"))["ref"] == "invited"

        await carl.send("MODE #pit +o ann")  # a guest's role, for its session (ircroles)
        opped = await ann.recv_type("presence")
        assert (opped["event"], opped["by"], opped["role"]) == ("grant", "carl", "mod")
        mode, _ = await carl.until(lambda m: m.command == "MODE" and m.params[1] == "+o")
        assert mode.params == ("#pit", "+o", "ann")
        await carl.send("MODE #pit +b ann!*@*")
        ban = await ann.recv_type("presence")
        assert (ban["event"], ban["by"]) == ("ban", "carl")
        await carl.send("MODE #pit -b ann")
        unban = await ann.recv_type("presence")
        assert unban["event"] == "unban"


async def test_channel_queries_and_refusals_are_the_numerics_irc_clients_expect(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, irc_auto_join="false") as (_, irc_port), clients() as made:
        dora = await irc(made, irc_port)
        await dora.register("dora")
        await dora.send("LIST")
        _, before = await dora.until(numeric("323"))
        assert [m for m in before if m.command == "322"] == []  # an empty lobby is not listed
        await dora.send("JOIN #den", "TOPIC #den")
        assert (await dora.until(numeric("331")))[0].params[1] == "#den"
        await dora.send("MODE #den")
        assert (await dora.until(numeric("324")))[0].params[1:] == ("#den", "+nt")
        await dora.send("MODE #den +z")
        unknown, _ = await dora.until(numeric("472"))
        assert unknown.params[1] == "z"

        eve = await irc(made, irc_port)
        await eve.register("eve")
        await eve.send("TOPIC #nowhere")
        assert (await eve.until(numeric("403")))[0].params[1] == "#nowhere"
        await eve.send("TOPIC #den")  # there, but eve is not in it
        assert (await eve.until(numeric("442")))[0].params[1] == "#den"
        await eve.send("KICK #nowhere dora")
        assert (await eve.until(numeric("403")))[0].params[1] == "#nowhere"
        await eve.send("LIST #den,#nowhere")
        _, rows = await eve.until(numeric("323"))
        assert [m.params[1] for m in rows if m.command == "322"] == ["#den"]  # those asked for
        await eve.send("JOIN #den")
        await eve.until(lambda m: m.command == "JOIN")
        await dora.until(lambda m: m.command == "JOIN")
        await eve.send("KICK #den dora")
        assert (await eve.until(numeric("482")))[0].params[1] == "#den"
        await dora.send("KICK #den fred")
        assert (await dora.until(numeric("401")))[0].params[1] == "fred"
        await eve.send("PART #den :see you")
        part, _ = await dora.until(lambda m: m.command == "PART")
        assert (part.source, part.params) == ("eve!eve@chinwag", ("#den", "see you"))
        await dora.send("KICK #den eve")
        assert (await dora.until(numeric("441")))[0].params[1:3] == ("eve", "#den")


async def test_a_join_refused_for_a_private_room_or_a_room_cap_is_473_or_405(
    tmp_path: Path,
) -> None:
    async with (
        running(tmp_path, max_rooms_per_guest=2) as (json_port, irc_port),
        clients() as made,
    ):
        await make_account(json_port, "olga", "correct horse")
        olga = await json_peer(made, json_port)
        await olga.hello("olga", password="correct horse")
        await olga.send(type="join", room="den", ref="j")
        await olga.recv_type("room_info")
        await olga.send(type="room", room="den", private=True, ref="p")
        assert (await olga.recv_type("ok"))["ref"] == "p"

        bob = await irc(made, irc_port)
        await bob.register("bob")  # in #lobby: one of his two rooms
        await bob.send("JOIN #den")
        private, _ = await bob.until(numeric("473"))
        assert private.params[1] == "#den" and "Cannot join channel" in private.params[-1]
        await bob.send("JOIN #attic")
        await bob.until(lambda m: m.command == "366" and m.params[1] == "#attic")
        await bob.send("JOIN #cellar")  # a third room: over max_rooms_per_guest
        capped, _ = await bob.until(numeric("405"))
        assert capped.params[1] == "#cellar"


async def test_part_then_join_in_one_write_leaves_and_joins_again(tmp_path: Path) -> None:
    # irssi's /cycle, bouncers and scripts send both lines at once (no answer between).
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        await ann.send(type="join", room="den", ref="j")
        await ann.recv_type("room_info")
        await ann.send(type="room", room="den", topic="chess at noon", ref="t")
        assert (await ann.recv_type("ok"))["ref"] == "t"
        bob = await irc(made, irc_port)
        await bob.register("bob")
        await bob.send("JOIN #den")
        await bob.until(lambda m: m.command == "366" and m.params[1] == "#den")

        await bob.send(b"PART #den :brb\r\nJOIN #den")
        part, _ = await bob.until(lambda m: m.command in ("PART", "JOIN"))
        assert (part.command, part.params) == ("PART", ("#den", "brb"))
        joined, _ = await bob.until(lambda m: m.command == "JOIN")
        assert joined.params == ("#den",)
        topic, _ = await bob.until(numeric("332"))
        assert topic.params[1:] == ("#den", "chess at noon")
        names, _ = await bob.until(lambda m: m.command == "353")
        assert sorted(names.params[-1].split()) == ["@ann", "bob"]
        await ann.send(type="say", room="den", body="still there?", cid="c1")
        heard, _ = await bob.until(privmsg)
        assert heard.params == ("#den", "still there?")  # he is in the channel again

        # The other order: joined and then out.
        await bob.send(b"JOIN #attic\r\nPART #attic")
        joined, _ = await bob.until(lambda m: m.command in ("PART", "JOIN"))
        assert (joined.command, joined.params) == ("JOIN", ("#attic",))
        parted, _ = await bob.until(lambda m: m.command == "PART")
        assert parted.params == ("#attic",)
        await bob.send("TOPIC #attic")  # no longer in it (the room is gone with him)
        assert (await bob.until(lambda m: m.command in ("403", "442")))[0].params[1] == "#attic"
        # A JOIN of a channel one is in is still nothing; PART, JOIN, JOIN: one join.
        await bob.send(b"JOIN #den\r\nPART #den\r\nJOIN #den\r\nJOIN #den\r\nPING :done")
        _, lines = await bob.until(lambda m: m.command == "PONG")
        lines += (await bob.until(lambda m: m.command == "366"))[1]
        assert [m.command for m in lines if m.command in ("JOIN", "PART")] == ["PART", "JOIN"]


async def test_a_refused_part_of_the_lobby_then_a_join_is_the_refusal_only(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (_, irc_port), clients() as made:
        bob = await irc(made, irc_port)
        await bob.register("bob")
        await bob.until(lambda m: m.command == "366" and m.params[1] == "#lobby")
        await bob.send(b"PART #lobby\r\nJOIN #lobby\r\nPING :done")
        _, lines = await bob.until(lambda m: m.command == "PONG")
        assert [(m.command, m.params[:2]) for m in lines] == [("FAIL", ("PART", "FORBIDDEN"))]
        await bob.send("PING :again")  # nor does anything come after the JOIN's answer
        assert [m.command for m in (await bob.until(lambda m: m.command == "PONG"))[1]] == []
