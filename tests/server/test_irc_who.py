"""IRC ban lists, creation times, WHO and QUIT (issue 19, ircwho), over real sockets.

Each test runs a server with a JSON-lines and an IRC listener on loopback port 0
(``test_irc_listener.running``) and drives raw IRC and JSON clients: what IRC
shows comes from the same core the JSON side asks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from test_irc_listener import clients, irc, json_peer, make_account, running

from chinwag.protocol.irc import IrcMessage


def numeric(code: str) -> Callable[[IrcMessage], bool]:
    return lambda m: m.command == code


async def test_the_ban_list_is_the_room_s_bans_on_irc_and_json_for_its_mods(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_account(json_port, "carl", "correct horse")
        carl = await irc(made, irc_port)
        await carl.register("carl", "PASS :correct horse")
        await carl.send("JOIN #pit")
        await carl.until(lambda m: m.command == "366" and m.params[1] == "#pit")
        await carl.send("MODE #pit +b")  # none yet: only the end
        empty, before = await carl.until(numeric("368"))
        assert empty.params[1] == "#pit"
        assert [m for m in before if m.command == "367"] == []

        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        await ann.send(type="join", room="pit", ref="j")
        await ann.recv_type("room_info")
        dee = await json_peer(made, json_port)
        await dee.hello("dee")
        await dee.send(type="join", room="pit", ref="j")
        await dee.recv_type("room_info")

        began = int(time.time())
        await carl.send("MODE #pit +b ann!*@*")
        seen = [await ann.recv_type("presence") for _ in range(3)]  # dee's joins came first
        assert [(p["event"], p["by"]) for p in seen if p["event"] != "join"] == [("ban", "carl")]
        await carl.until(lambda m: m.command == "KICK")
        for line in ("MODE #pit +b", "MODE #pit b"):
            await carl.send(line)
            end, rows = await carl.until(numeric("368"))
            listed = [m.params[1:] for m in rows if m.command == "367"]
            assert [row[:3] for row in listed] == [("#pit", "ann!*@*", "carl")]
            assert began <= int(listed[0][3]) <= int(time.time())
            assert end.params[1] == "#pit"

        await dee.send(type="bans", room="pit", ref="b")  # a member may not look
        refused = await dee.recv_type("error")
        assert (refused["code"], refused["ref"]) == ("forbidden", "b")
        assert "owner or a mod" in refused["message"]

        await carl.send("MODE #pit -b ann")
        await carl.until(lambda m: m.command == "MODE" and m.params[1] == "-b")
        await carl.send("MODE #pit +b")
        _, after = await carl.until(numeric("368"))
        assert [m for m in after if m.command == "367"] == []  # lifted: gone from the list


async def test_a_json_owner_asks_for_the_bans_of_its_room(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, _), clients() as made:
        olga = await json_peer(made, json_port)
        await olga.hello("olga")
        await olga.send(type="register", password="correct horse battery", ref="r")
        assert (await olga.recv_type("ok", timeout=30))["ref"] == "r"
        await olga.send(type="join", room="den", ref="j")
        assert (await olga.recv_type("room_info"))["role"] == "owner"
        bob = await json_peer(made, json_port)
        await bob.hello("Bob")
        await bob.send(type="join", room="den", ref="j")
        await bob.recv_type("room_info")
        await olga.send(type="ban", room="den", nick="bob", reason="spam", ref="ban")
        assert (await olga.recv_type("ok"))["ref"] == "ban"

        await olga.send(type="bans", room="den", ref="list")
        listed = await olga.recv_type("bans")
        assert (listed["room"], listed["ref"]) == ("den", "list")
        [row] = listed["bans"]
        assert (row["nick"], row["by"], row["reason"], row["until"]) == (
            "Bob",
            "olga",
            "spam",
            None,
        )
        assert row["ts"].endswith("Z")

        await olga.send(type="bans", ref="no room")  # what is missing is said
        missing = await olga.recv_type("error")
        assert "room" in missing["message"]


async def test_a_channel_s_modes_come_with_its_creation_time(tmp_path: Path) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        began = int(time.time())
        dora = await irc(made, irc_port)
        await dora.register("dora")
        await dora.send("JOIN #den", "MODE #den")
        modes, _ = await dora.until(numeric("324"))
        created = await dora.command("329")  # straight after 324
        assert modes.params[1:] == ("#den", "+nt")
        assert created.params[1] == "#den"
        assert began <= int(created.params[2]) <= int(time.time())
        await dora.send("TOPIC #den :chess")  # a change keeps the time
        await dora.until(lambda m: m.command == "TOPIC")
        await dora.send("MODE #den")
        await dora.until(numeric("324"))
        assert (await dora.command("329")).params[1:] == created.params[1:]

        ann = await json_peer(made, json_port)  # JSON has it on the join's room_info
        await ann.hello("ann")
        await ann.send(type="join", room="den", ref="j")
        info = await ann.recv_type("room_info")
        assert info["created"].endswith("Z") and info["created"][:4].isdigit()


async def test_who_a_nick_or_a_mask_lists_anyone_online(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        cool = await irc(made, irc_port)
        await cool.register("coolNick")
        await cool.send("JOIN #chan")
        await cool.until(lambda m: m.command == "366")
        other = await irc(made, irc_port)
        await other.register("otherNick")
        await other.send("JOIN #chan")
        await other.until(lambda m: m.command == "366")
        ann = await json_peer(made, json_port)  # online, in no channel with them (ircoper)
        await ann.hello("annie")
        await ann.send(type="away", message="lunch", ref="a")
        await ann.recv_type("ok")

        async def who(mask: str) -> tuple[list[tuple[str, ...]], IrcMessage]:
            await other.send(f"WHO {mask}")
            end, rows = await other.until(numeric("315"))
            return [m.params[1:] for m in rows if m.command == "352"], end

        # channel (none named), user, host, server (skipped), nick, flags, hops and real name
        cool_row = ("*", "coolNick", "chinwag", "coolNick", "H", "0 coolNick")
        for mask in ("coolNick", "COOLNICK", "coolni*", "c??lNick", "coolNick!*@*"):
            rows, end = await who(mask)
            assert rows[0][:3] + rows[0][4:] == cool_row, mask
            assert len(rows) == 1, mask
            assert end.params[1] == mask  # the mask as sent, case kept
        rows, _ = await who("*")
        assert [row[4] for row in rows] == ["annie", "coolNick", "otherNick"]
        rows, _ = await who("0")
        assert [row[4] for row in rows] == ["annie", "coolNick", "otherNick"]
        rows, _ = await who("ann*")
        assert [(row[4], row[5]) for row in rows] == [("annie", "G")]  # away: gone
        await ann.send(type="block", nick="otherNick", ref="b")
        await ann.recv_type("ok")
        # A block does not hide the blocker (the blocked one is never told, protocol §11).
        rows, _ = await who("ann*")
        assert [row[4] for row in rows] == ["annie"]
        rows, end = await who("nobody")
        assert (rows, end.params[1]) == ([], "nobody")

        many = await irc(made, irc_port)  # a mask that a regular expression would try
        await many.register("o" * 32)  # C(32, 16) ways before saying no: answered at once
        await many.send("JOIN #chan")
        await many.until(lambda m: m.command == "366")
        rows, _ = await who("*o" * 16 + "x")
        assert rows == []
        rows, _ = await who("*o" * 16)
        assert [row[4] for row in rows] == ["o" * 32]

        lone = await irc(made, irc_port)  # in no channel: still sees who is online
        await lone.register("lone")
        await lone.send("WHO cool*")
        end, lines = await lone.until(numeric("315"))
        assert [m.params[5] for m in lines if m.command == "352"] == ["coolNick"]
        assert end.params[1] == "cool*"


async def test_someone_who_quits_is_one_quit_line_on_irc_and_a_leave_per_room_on_json(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        bar = await irc(made, irc_port)
        await bar.register("bar")
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        for room in ("chan", "den"):
            await bar.send(f"JOIN #{room}")
            await bar.until(lambda m: m.command == "366")
            await ann.send(type="join", room=room, ref=room)
            await ann.recv_type("room_info")
        for _ in range(2):
            qux = await irc(made, irc_port)
            await qux.register("qux")
            await qux.send("JOIN #chan,#den")
            await qux.until(lambda m: m.command == "366" and m.params[1] == "#den")
            await qux.send("QUIT :qux out")
            quit_, _ = await bar.until(lambda m: m.command in ("QUIT", "PART"))
            assert (quit_.command, quit_.source) == ("QUIT", "qux!qux@chinwag")
            assert "qux out" in quit_.params[0]
            await bar.send("PING :after")  # nothing more of qux came before the PONG
            _, between = await bar.until(lambda m: m.command == "PONG")
            assert [m for m in between if m.command in ("QUIT", "PART")] == []
            left = [await ann.recv_type("presence") for _ in range(4)]  # 2 joins, 2 leaves
            quits = sorted((p["room"], p["quit"]) for p in left if p["event"] == "leave")
            assert quits == [("chan", "qux out"), ("den", "qux out")]

        await ann.send(type="leave", room="den", ref="l")  # leaving a room is not quitting
        part, _ = await bar.until(lambda m: m.command in ("QUIT", "PART"))
        assert (part.command, part.params) == ("PART", ("#den",))
        await ann.close()  # a connection that ends without a word is a quit too
        gone, _ = await bar.until(lambda m: m.command in ("QUIT", "PART"))
        assert (gone.command, gone.source, gone.params) == ("QUIT", "ann!ann@chinwag", ("Quit",))


async def test_an_irc_user_s_username_and_real_name_show_in_who_and_whois(tmp_path: Path) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        cool = await irc(made, irc_port)
        await cool.send("NICK coolNick", "USER myusernam@laptop 0 * :My UniqueReal Name")
        await cool.until(numeric("001"))
        await cool.send("JOIN #chan")
        await cool.until(lambda m: m.command == "366")
        ann = await json_peer(made, json_port)  # other transports show the nick
        await ann.hello("ann")
        await ann.send(type="join", room="chan", ref="j")
        await ann.recv_type("room_info")

        await cool.send("WHO #chan")
        _, lines = await cool.until(numeric("315"))
        rows = {m.params[5]: m.params for m in lines if m.command == "352"}
        assert (rows["coolNick"][2], rows["coolNick"][7]) == ("myusernam", "0 My UniqueReal Name")
        assert (rows["ann"][2], rows["ann"][7]) == ("ann", "0 ann")
        await cool.send("WHO coolni*")
        row = await cool.command("352")
        assert (row.params[2], row.params[7]) == ("myusernam", "0 My UniqueReal Name")
        await cool.send("WHOIS coolNick")
        whois = await cool.command("311")
        assert whois.params[1:] == ("coolNick", "myusernam", "chinwag", "*", "My UniqueReal Name")

        await ann.send(type="who", room="chan", ref="w")  # JSON sees the same
        users = {u["nick"]: u for u in (await ann.recv_type("who"))["users"]}
        assert (users["coolNick"]["user"], users["coolNick"]["real_name"]) == (
            "myusernam",
            "My UniqueReal Name",
        )
        assert "user" not in users["ann"]
