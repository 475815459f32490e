"""Room roles for guests, voice, topic lock, secret rooms and nick bans (issue 19,
branch ircroles), over real sockets: IRC clients and JSON clients in one server."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from test_irc_channels import numeric
from test_irc_listener import clients, irc, json_peer, privmsg, running

from chinwag.protocol.irc import IrcMessage


def mode(*params: str) -> Callable[[IrcMessage], bool]:
    def accept(m: IrcMessage) -> bool:
        return m.command == "MODE" and m.params == params

    return accept


async def test_voice_lets_a_member_speak_in_a_moderated_channel_and_shows_as_plus(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        foo = await irc(made, irc_port)
        await foo.register("foo", "CAP REQ :multi-prefix", "CAP END")
        isupport, _ = await foo.until(lambda m: m.command == "005" and "PREFIX=(ov)@+" in m.params)
        assert "CHANMODES=b,k,l,imnst" in isupport.params
        await foo.send("JOIN #chan", "MODE #chan +m")
        await foo.until(mode("#chan", "+m"))
        baz = await irc(made, irc_port)
        await baz.register("baz")
        await baz.send("JOIN #chan")
        await baz.until(numeric("366"))
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        await ann.send(type="join", room="chan", ref="j")
        await ann.recv_type("room_info")

        await baz.send("PRIVMSG #chan :hi from baz")
        refused, _ = await baz.until(numeric("404"))
        assert "voiced" in refused.params[-1]
        await foo.send("MODE #chan +v baz")
        await foo.until(mode("#chan", "+v", "baz"))
        voiced, _ = await baz.until(lambda m: m.command == "MODE")
        assert (voiced.source, voiced.params) == ("foo!foo@chinwag", ("#chan", "+v", "baz"))
        told = await ann.recv_type("presence")
        assert (told["event"], told["nick"], told["by"]) == ("voice", "baz", "foo")
        await baz.send("PRIVMSG #chan :hi again from baz")
        said, _ = await foo.until(privmsg)
        assert said.params == ("#chan", "hi again from baz")

        await foo.send("MODE #chan +v foo", "NAMES #chan")  # the owner voiced too: @+ (multi)
        names, _ = await foo.until(numeric("353"))
        assert names.params[-1].split() == ["ann", "+baz", "@+foo"]
        await foo.send("WHO #chan")
        rows, _ = await foo.until(numeric("315"))
        flags = {m.params[5]: m.params[6] for m in [*_, rows] if m.command == "352"}
        assert flags == {"ann": "H", "baz": "H+", "foo": "H@+"}
        await baz.send("NAMES #chan")  # without multi-prefix: the highest alone
        names, _ = await baz.until(numeric("353"))
        assert names.params[-1].split() == ["ann", "+baz", "@foo"]
        await ann.send(type="who", room="chan", ref="w")
        who = await ann.recv_type("who")
        assert {u["nick"]: u.get("voiced", False) for u in who["users"]} == {
            "ann": False,
            "baz": True,
            "foo": True,
        }

        await foo.send("MODE #chan -v baz")
        await baz.until(mode("#chan", "-v", "baz"))
        await baz.send("PRIVMSG #chan :still?")
        assert (await baz.until(numeric("404")))[0].params[1] == "#chan"
        await baz.send("MODE #chan +v baz")  # a member gives no voice
        assert (await baz.until(numeric("482")))[0].params[1] == "#chan"
        await foo.send("MODE #chan -v baz")  # not voiced: said, nothing changes
        assert (
            (await foo.until(lambda m: m.command == "FAIL"))[0]
            .params[-1]
            .endswith("baz is not voiced in #chan")
        )


async def test_the_topic_lock_is_a_mode_and_unlocked_any_member_sets_the_topic(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, irc_auto_join="false") as (_, irc_port), clients() as made:
        foo = await irc(made, irc_port)
        await foo.register("foo")
        await foo.send("JOIN #chan", "MODE #chan")
        assert (await foo.until(numeric("324")))[0].params[1:] == ("#chan", "+nt")
        bar = await irc(made, irc_port)
        await bar.register("bar")
        await bar.send("JOIN #chan")
        await bar.until(numeric("366"))
        await bar.send("TOPIC #chan :T0P1C")  # +t, as every new room
        assert (await bar.until(numeric("482")))[0].params[1] == "#chan"
        await bar.send("MODE #chan -t")  # the owner's to change
        assert (await bar.until(numeric("482")))[0].params[1] == "#chan"
        await foo.send("MODE #chan -t")
        await bar.until(mode("#chan", "-t"))
        await bar.send("TOPIC #chan :T0P1C")
        topic, _ = await foo.until(lambda m: m.command == "TOPIC")
        assert (topic.source, topic.params) == ("bar!bar@chinwag", ("#chan", "T0P1C"))
        await foo.send("MODE #chan")
        assert (await foo.until(numeric("324")))[0].params[1:] == ("#chan", "+n")
        qux = await irc(made, irc_port)
        await qux.register("qux")
        await qux.send("JOIN #chan")
        shown, _ = await qux.until(numeric("332"))
        assert shown.params[1:] == ("#chan", "T0P1C")
        when = await qux.recv()  # 333: who set it, and when
        assert (when.command, when.params[1:3]) == ("333", ("#chan", "bar"))
        assert abs(int(when.params[3]) - time.time()) < 600
        await qux.send("TOPIC #chan")
        await qux.until(numeric("332"))
        assert (await qux.recv()).command == "333"
        await foo.send("MODE #chan +t")
        await bar.until(mode("#chan", "+t"))
        await bar.send("TOPIC #chan :again")
        assert (await bar.until(numeric("482")))[0].params[1] == "#chan"
        await foo.send("MODE #chan -n")  # only members speak, always
        refused, _ = await foo.until(numeric("472"))
        assert refused.params[1] == "n" and "only a room's members speak" in refused.params[-1]


async def test_a_secret_channel_is_listed_only_to_its_members_and_anyone_may_join(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        first = await irc(made, irc_port)
        await first.register("first")
        await first.send("JOIN #gen", "MODE #gen +s")
        await first.until(mode("#gen", "+s"))
        await first.send("NAMES #gen", "LIST")
        names, _ = await first.until(numeric("353"))
        assert names.params[1:] == ("@", "#gen", "@first")
        _, rows = await first.until(numeric("323"))
        assert [m.params[1] for m in rows if m.command == "322"] == ["#gen"]
        second = await irc(made, irc_port)
        await second.register("second")
        await second.send("LIST")
        _, rows = await second.until(numeric("323"))
        assert [m for m in rows if m.command == "322"] == []
        eve = await json_peer(made, json_port)
        await eve.hello("eve")
        await eve.send(type="rooms", ref="r")
        assert "gen" not in [r["name"] for r in (await eve.recv_type("rooms"))["rooms"]]
        await second.send("JOIN #gen")  # secret, not closed
        names, _ = await second.until(numeric("353"))
        assert names.params[1:3] == ("@", "#gen")
        await second.send("LIST")
        _, rows = await second.until(numeric("323"))
        assert [m.params[1] for m in rows if m.command == "322"] == ["#gen", "#lobby"]  # eve's
        await eve.send(type="join", room="gen", ref="j")
        info = await eve.recv_type("room_info")
        assert (info["secret"], info["private"]) == (True, False)


async def test_a_ban_of_a_nick_nobody_has_stops_whoever_takes_it(tmp_path: Path) -> None:
    async with running(tmp_path, irc_auto_join="false") as (_, irc_port), clients() as made:
        chanop = await irc(made, irc_port)
        await chanop.register("chanop")
        await chanop.send("JOIN #chan")
        await chanop.until(numeric("366"))
        await chanop.send("MODE #chan +b bar!*@*")
        ban, _ = await chanop.until(lambda m: m.command == "MODE")
        assert ban.params == ("#chan", "+b", "bar!*@*")
        await chanop.send("MODE #chan +b")
        listed, before = await chanop.until(numeric("367"))
        assert listed.params[1:4] == ("#chan", "bar!*@*", "chanop")
        assert before == []  # no KICK: nobody by that nick was in the channel
        bar = await irc(made, irc_port)
        await bar.register("Bar")
        await bar.send("JOIN #chan")
        assert (await bar.until(numeric("474")))[0].params[1] == "#chan"
        await chanop.send("MODE #chan -b bar!*@*")
        await chanop.until(mode("#chan", "-b", "Bar!*@*"))  # the nick online now
        await bar.send("JOIN #chan")
        joined, _ = await bar.until(lambda m: m.command == "JOIN")
        assert joined.params == ("#chan",)


async def test_a_guests_roles_voices_and_locks_end_with_its_session(tmp_path: Path) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        foo = await irc(made, irc_port)
        await foo.register("foo")
        await foo.send("JOIN #chan")
        await foo.until(numeric("366"))
        baz = await irc(made, irc_port)
        await baz.register("baz")
        qux = await irc(made, irc_port)
        await qux.register("qux")
        for peer in (baz, qux):
            await peer.send("JOIN #chan")
            await peer.until(numeric("366"))
        await foo.send("MODE #chan +o baz")  # a guest made a mod by a guest owner
        await baz.until(mode("#chan", "+o", "baz"))
        await foo.send("MODE #chan +o nobody")
        assert (await foo.until(numeric("401")))[0].params[1] == "nobody"
        outsider = await irc(made, irc_port)
        await outsider.register("outsider")
        await foo.send("MODE #chan +o outsider")  # a guest's role is for a room it is in
        assert (await foo.until(numeric("441")))[0].params[1:3] == ("outsider", "#chan")
        await foo.send("MODE #chan +imst-t+v qux")
        await qux.until(mode("#chan", "+v", "qux"))
        await baz.send("KICK #chan outsider")
        assert (await baz.until(numeric("441")))[0].params[1] == "outsider"

        await foo.send("QUIT :bye")
        await baz.until(lambda m: m.command == "QUIT")
        changes: list[tuple[str, ...]] = []
        while len(changes) < 6:
            line = await baz.command("MODE")
            changes.append(line.params)
        assert sorted(changes) == sorted(
            [
                ("#chan", "-o", "baz"),
                ("#chan", "-v", "qux"),
                ("#chan", "-i"),
                ("#chan", "-m"),
                ("#chan", "-s"),
                ("#chan", "+t"),
            ]
        )
        await baz.send("MODE #chan +v qux")  # a mod no more
        assert (await baz.until(numeric("482")))[0].params[1] == "#chan"
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        await ann.send(type="join", room="chan", ref="j")  # open again
        info = await ann.recv_type("room_info")
        assert (info["private"], info["announce"], info["role"]) == (False, False, "member")


async def test_a_guest_that_registers_keeps_its_locks_as_the_account(tmp_path: Path) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, _), clients() as made:
        dan = await json_peer(made, json_port)
        await dan.hello("dan")
        await dan.send(type="join", room="den", ref="j")
        await dan.recv_type("room_info")
        await dan.send(type="room", room="den", private=True, ref="p")
        assert (await dan.recv_type("ok"))["ref"] == "p"
        await dan.send(type="register", password="correct horse", ref="r")
        assert (await dan.recv_type("ok"))["ref"] == "r"
        await dan.send(type="bye")
        await dan.recv_type("bye")
        eve = await json_peer(made, json_port)
        await eve.hello("eve")
        await eve.send(type="join", room="den", ref="j")
        refused = await eve.recv_type("error")
        assert (refused["code"], refused["reason"]) == ("forbidden", "private")
