"""IRC operators, WALLOPS, KILL, WHOIS/USERHOST of anyone online, WHOWAS details and
INVITE's account tag (issue 19, ircoper), over real sockets.

A server runs in this process with a JSON-lines and an IRC listener on loopback
port 0 (``running`` of test_irc_listener); an account is made an admin the way an
operator does it, with ``chinwag admin grant`` reaching the running server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from test_irc_listener import IrcPeer, clients, irc, json_peer, make_account, running
from test_operator import admin

from chinwag.config import SettingsError, build
from chinwag.protocol.irc import IrcMessage


def numeric(code: str) -> Callable[[IrcMessage], bool]:
    return lambda m: m.command == code


async def make_admin(data: Path, json_port: int, nick: str, password: str) -> None:
    await make_account(json_port, nick, password)
    code, _, err = await admin(data, "grant", nick, "admin")
    assert code == 0, err


async def whois(peer: IrcPeer, nick: str) -> list[IrcMessage]:
    """The numerics of one WHOIS, up to its 318 (what came before them left out)."""
    await peer.send(f"WHOIS {nick}")
    end, lines = await peer.until(lambda m: m.command == "318")
    return [*(m for m in lines if m.command in _WHOIS_NUMERICS), end]


_WHOIS_NUMERICS = frozenset({"311", "312", "313", "330", "335", "301", "401"})


async def test_oper_makes_the_session_act_as_the_admin_until_mode_minus_o(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_admin(tmp_path, json_port, "operuser", "operpassword")
        await make_account(json_port, "plain", "plainpassword")
        baz = await irc(made, irc_port)
        await baz.register("baz")
        alice = await irc(made, irc_port)
        await alice.register("alice")
        bob = await irc(made, irc_port)
        await bob.register("bob")

        await baz.send("OPER operuser")
        assert (await baz.command("461")).params[1] == "OPER"
        await baz.send("OPER operuser wrongpassword")
        assert "Password incorrect" in (await baz.command("464")).params[-1]
        await baz.send("OPER nosuchaccount operpassword")  # the same answer: nothing told
        await baz.command("464")
        await baz.send("OPER plain plainpassword")  # right password, but no admin
        assert "not a server admin" in (await baz.command("491")).params[-1]
        await alice.send("KILL bob :no right")
        assert (await alice.command("481")).params[0] == "alice"
        await alice.send("WALLOPS :no right")
        await alice.command("481")

        await baz.send("OPER operuser operpassword")
        _, before = await baz.until(numeric("381"))
        assert all(m.command not in ("464", "491") for m in before)
        mode = await baz.command("MODE")
        assert (mode.source, mode.params) == ("baz!baz@chinwag", ("baz", "+o"))
        await baz.send("MODE baz")
        assert (await baz.command("221")).params[1] == "+o"
        lines = await whois(alice, "baz")
        assert [m.params[1] for m in lines if m.command == "313"] == ["baz"]
        await alice.send("WHO baz")
        row = await alice.command("352")
        assert row.params[6] == "H*"
        await alice.send("USERHOST baz")
        assert (await alice.command("302")).params[1] == "baz*=+baz@chinwag"

        await baz.send("KILL alice :some arbitrary reason")
        error, _ = await alice.until(lambda m: m.command == "ERROR")
        assert "an admin ended your session" in error.params[0]
        await alice.lines_to_eof()  # closed (a bounded wait otherwise)
        await baz.send("KILL nobody :who?")
        assert (await baz.command("401")).params[1] == "nobody"

        await baz.send("MODE baz -o")
        mode = await baz.command("MODE")
        assert mode.params == ("baz", "-o")
        await baz.send("KILL bob :not any more")
        await baz.command("481")
        await bob.send("PING :still here")  # the KILL did nothing
        assert (await bob.command("PONG")).params[-1] == "still here"

        code, out, _ = await admin(tmp_path, "audit")
        assert code == 0
        assert "baz" in out and "oper" in out and "operuser" in out  # baz opered as operuser
        assert "kick" in out and "alice" in out


async def test_wallops_reach_the_listening_sessions_and_the_operators_only(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, wallops_max_length=20) as (json_port, irc_port), clients() as made:
        await make_admin(tmp_path, json_port, "operuser", "operpassword")
        one, two, three = [await irc(made, irc_port) for _ in range(3)]
        await one.register("nick1")
        await two.register("nick2")
        await three.register("nick3")
        listener = await json_peer(made, json_port)
        await listener.hello("jason")
        await listener.send(type="wallops_listen", on=True, ref="w")
        assert (await listener.recv_type("ok"))["ref"] == "w"

        await two.send("MODE nick2 -w")  # already so: nothing changes
        await three.send("MODE nick3 +w")
        assert (await three.command("MODE")).params == ("nick3", "+w")
        await three.send("MODE nick3")
        assert (await three.command("221")).params[1] == "+w"
        await three.send("MODE nick3 +x")
        assert "i, o, w and B" in (await three.command("501")).params[-1]
        await three.send("MODE nick1 +w")
        await three.command("502")

        await one.send("OPER operuser operpassword")
        await one.command("381")
        await one.send("WALLOPS :hi everyone")
        got = await three.command("WALLOPS")
        assert (got.source, got.params) == ("nick1!nick1@chinwag", ("hi everyone",))
        assert (await one.command("WALLOPS")).params == ("hi everyone",)  # an operator gets it
        frame = await listener.recv_type("wallops")
        assert (frame["from"], frame["text"]) == ("nick1", "hi everyone")
        await one.send("WALLOPS :" + "x" * 20)  # at the limit
        assert (await three.command("WALLOPS")).params == ("x" * 20,)
        await one.send("WALLOPS :" + "x" * 21)  # over it: refused, sent to nobody
        fail = await one.command("FAIL")
        assert fail.params[:2] == ("WALLOPS", "BAD_REQUEST")
        await one.send("WALLOPS :ring \x07 bell")  # a control character: refused too
        fail = await one.command("FAIL")
        assert fail.params[:2] == ("WALLOPS", "BAD_REQUEST") and "one line" in fail.params[-1]
        await two.send("PING :nothing for me")
        _, before = await two.until(numeric("PONG"))
        assert [m for m in before if m.command == "WALLOPS"] == []
        await three.send("PING :one only")
        _, before = await three.until(numeric("PONG"))
        assert [m for m in before if m.command == "WALLOPS"] == []


async def test_oper_over_json_lines_kicks_from_the_server_and_ends_with_oper_alone(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_admin(tmp_path, json_port, "operuser", "operpassword")
        ops = await json_peer(made, json_port)
        await ops.hello("guestop")
        victim = await irc(made, irc_port)
        await victim.register("victim")
        await ops.send(type="oper", account="operuser", ref="o0")
        assert (await ops.recv_type("error"))["code"] == "bad_request"  # no password
        await ops.send(type="oper", account="operuser", password="nope", ref="o1")
        assert (await ops.recv_type("error"))["code"] == "bad_password"
        await ops.send(type="kick", nick="victim", reason="spam", ref="k0")
        assert (await ops.recv_type("error"))["code"] == "forbidden"
        await ops.send(type="oper", account="operuser", password="operpassword", ref="o2")
        assert (await ops.recv_type("ok"))["ref"] == "o2"
        await ops.send(type="whois", mask="guestop", ref="w")
        reply = await ops.recv_type("whois")
        assert reply["users"] == [{"nick": "guestop", "account": False, "oper": True}]
        await ops.send(type="oper", ref="o3")  # back to its own rights
        assert (await ops.recv_type("ok"))["ref"] == "o3"
        await ops.send(type="kick", nick="victim", reason="spam", ref="k1")
        assert (await ops.recv_type("error"))["code"] == "forbidden"
        await ops.send(type="oper", account="operuser", password="operpassword", ref="o4")
        await ops.recv_type("ok")
        await ops.send(type="kick", nick="victim", reason="spam", ref="k2")
        assert (await ops.recv_type("ok"))["ref"] == "k2"
        await victim.command("ERROR")
        code, _, err = await admin(tmp_path, "grant", "operuser", "member")  # no admin now
        assert code == 0, err
        await ops.send(type="wallops", text="still?", ref="w2")
        error = await ops.recv_type("error")
        assert (error["code"], error["ref"]) == ("forbidden", "w2")
        await ops.send(type="whois", mask="guestop", ref="w3")  # no operator flag either
        assert (await ops.recv_type("whois"))["users"] == [{"nick": "guestop", "account": False}]


async def test_whois_and_userhost_find_anyone_online_even_who_blocks_the_asker(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        cool = await irc(made, irc_port)
        await cool.send("NICK coolNick", "USER myusernam 0 * :My User Name")
        await cool.command("001")
        other = await irc(made, irc_port)
        await other.register("otherNick")  # in no channel with coolNick
        lines = await whois(other, "My.Little.Server coolNick")
        assert lines[0].command == "311"
        assert lines[0].params[1:] == ("coolNick", "myusernam", "chinwag", "*", "My User Name")
        assert [m.command for m in lines] == ["311", "312", "318"]
        await cool.send("AWAY :lunch")
        await cool.command("306")
        lines = await whois(other, "coolnick")  # case-folded
        assert [m.params[1:] for m in lines if m.command == "301"] == [("coolNick", "lunch")]
        await other.send("USERHOST coolNick otherNick nobody c*")
        reply = await other.command("302")
        assert reply.params[1] == "coolNick=-myusernam@chinwag otherNick=+otherNick@chinwag"
        lines = await whois(other, "otherNick")  # oneself
        assert lines[0].params[1] == "otherNick"

        jay = await json_peer(made, json_port)
        await jay.hello("jay")
        lines = await whois(other, "jay")
        assert [m.command for m in lines] == ["311", "312", "318"]
        await jay.send(type="block", nick="otherNick", ref="b")
        await jay.recv_type("ok")
        # A block is not told to the blocked one (protocol §11): jay is found as before.
        lines = await whois(other, "jay")
        assert [m.command for m in lines] == ["311", "312", "318"]
        await other.send("USERHOST jay")
        assert (await other.command("302")).params[1] == "jay=+jay@chinwag"
        await jay.send(type="whois", mask="*nick", ref="w")  # JSON: the same command
        found = await jay.recv_type("whois")
        assert [u["nick"] for u in found["users"]] == ["coolNick", "otherNick"]
        assert found["users"][0]["user"] == "myusernam"
        assert found["users"][0]["away"] == "lunch"
        assert found["truncated"] is False


async def test_whois_lists_at_most_who_reply_max(tmp_path: Path) -> None:
    async with running(tmp_path, who_reply_max=2) as (json_port, _), clients() as made:
        for nick in ("aa", "ab", "ac"):
            peer = await json_peer(made, json_port)
            await peer.hello(nick)
        asker = await json_peer(made, json_port)
        await asker.hello("zed")
        await asker.send(type="whois", mask="a?", ref="w")
        reply = await asker.recv_type("whois")
        assert ([u["nick"] for u in reply["users"]], reply["truncated"]) == (["aa", "ab"], True)
        await asker.send(type="whois", mask="a[", ref="w")  # no wildcard but * and ?
        assert (await asker.recv_type("whois"))["users"] == []
        long = await json_peer(made, json_port)
        await long.hello("o" * 32)
        # A regular expression would try C(32, 16) ways before saying no: answered at once.
        await asker.send(type="whois", mask="*o" * 16 + "x", ref="slow")
        assert (await asker.recv_type("whois", timeout=5))["users"] == []
        await asker.send(type="whois", mask="*o" * 16, ref="fast")
        assert [u["nick"] for u in (await asker.recv_type("whois", timeout=5))["users"]] == [
            "o" * 32
        ]


async def test_invisible_people_are_left_out_of_masks_but_found_by_nick_and_by_roommates(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        evan = await irc(made, irc_port)
        await evan.register("evan")
        await evan.send("MODE evan +i")
        assert (await evan.command("MODE")).params == ("evan", "+i")
        await evan.send("MODE evan")
        assert (await evan.command("221")).params[1] == "+i"
        shiv = await irc(made, irc_port)
        await shiv.register("shivaram")

        async def who(mask: str) -> list[str]:
            await shiv.send(f"WHO {mask}")
            _, lines = await shiv.until(numeric("315"))
            return [m.params[5] for m in lines if m.command == "352"]

        assert await who("eva*") == []
        assert await who("evan") == ["evan"]  # a nick, not a mask: found
        assert [m.command for m in await whois(shiv, "evan")] == ["311", "312", "318"]
        jay = await json_peer(made, json_port)  # JSON: the same state
        await jay.hello("jay")  # in the lobby, as every JSON session: not in a room with evan
        await jay.send(type="whois", mask="*", ref="w")
        assert "evan" not in [u["nick"] for u in (await jay.recv_type("whois"))["users"]]
        await evan.send("JOIN #test")
        await evan.command("366")
        await shiv.send("JOIN #test")
        await shiv.command("366")
        assert await who("eva*") == ["evan"]  # in a room together: seen
        await jay.send(type="invisible", on=True, ref="i")
        await jay.recv_type("ok")
        assert await who("ja*") == []
        await jay.send(type="invisible", on=False, ref="v")
        await jay.recv_type("ok")
        assert await who("ja*") == ["jay"]
        await evan.send("MODE evan -i")
        assert (await evan.command("MODE")).params == ("evan", "-i")


async def test_whowas_tells_the_username_and_real_name_given_in_user(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        gone = await irc(made, irc_port)
        await gone.send("NICK nick2", "USER myusernam 0 * :My Real Name")
        await gone.command("001")
        await gone.send("QUIT :bye")
        await gone.lines_to_eof()
        asker = await irc(made, irc_port)
        await asker.register("nick1")
        await asker.send("WHOWAS nick2")
        reply = await asker.command("314")
        assert reply.params[1:] == ("nick2", "myusernam", "chinwag", "*", "My Real Name")
        peer = await json_peer(made, json_port)
        await peer.hello("jay")
        await peer.send(type="whowas", nick="nick2", ref="w")
        (entry,) = (await peer.recv_type("whowas"))["entries"]
        assert (entry["user"], entry["real_name"]) == ("myusernam", "My Real Name")


async def test_invite_carries_the_inviters_account_where_account_tag_is_on(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, irc_auto_join="false") as (json_port, irc_port), clients() as made:
        foo = await irc(made, irc_port)
        await foo.send("CAP LS 302", "CAP REQ :account-tag")
        await foo.register("foo", "CAP END")
        plain = await irc(made, irc_port)
        await plain.register("plain")
        await make_account(json_port, "jilles", "sesame-pass")
        bar = await irc(made, irc_port)
        await bar.send("PASS sesame-pass")
        await bar.register("jilles")
        await bar.send("JOIN #chan")
        await bar.command("366")
        await bar.send("INVITE foo #chan", "INVITE plain #chan")
        got = await foo.command("INVITE")
        assert (got.params, got.tags) == (("foo", "#chan"), {"account": "jilles"})
        got = await plain.command("INVITE")  # without account-tag: no tag
        assert got.tags == {}
        guest = await irc(made, irc_port)
        await guest.register("guest")
        await guest.send("JOIN #den")
        await guest.command("366")
        await guest.send("INVITE foo #den")
        got = await foo.command("INVITE")
        assert (got.params, got.tags) == (("foo", "#den"), {})  # a guest has no account


async def lusers(peer: IrcPeer) -> dict[str, tuple[str, ...]]:
    """The numerics of one LUSERS, by code (up to its 266)."""
    await peer.send("LUSERS")
    end, lines = await peer.until(numeric("266"))
    return {m.command: m.params[1:] for m in [*lines, end] if m.command.isdigit()}


async def test_lusers_counts_invisible_people_and_operators_online(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_admin(tmp_path, json_port, "operuser", "operpassword")
        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        baz = await irc(made, irc_port)
        await baz.register("baz")
        evan = await irc(made, irc_port)
        await evan.register("evan")
        got = await lusers(baz)
        assert got["251"] == ("There are 3 users and 0 invisible on 1 servers",)
        assert "252" not in got  # nobody acts as an operator

        await evan.send("MODE evan +i")
        assert (await evan.command("MODE")).params == ("evan", "+i")
        await baz.send("OPER operuser operpassword")
        await baz.until(numeric("381"))
        assert (await baz.command("MODE")).params == ("baz", "+o")
        got = await lusers(evan)
        assert got["251"] == ("There are 2 users and 1 invisible on 1 servers",)
        assert got["252"] == ("1", "operator(s) online")
        assert got["266"] == ("Current global users: 3",)
        await ann.send(type="stats", ref="s")
        stats = await ann.recv_type("stats")
        assert (stats["online"], stats["invisible"], stats["operators"]) == (3, 1, 1)

        await baz.send("MODE baz -o")
        assert (await baz.command("MODE")).params == ("baz", "-o")
        await evan.send("MODE evan -i")
        assert (await evan.command("MODE")).params == ("evan", "-i")
        got = await lusers(evan)
        assert got["251"] == ("There are 3 users and 0 invisible on 1 servers",)
        assert "252" not in got


def test_wallops_max_length_is_at_least_one() -> None:
    assert build(None, ["wallops_max_length=1"]).wallops_max_length == 1
    with pytest.raises(SettingsError, match="wallops_max_length"):
        build(None, ["wallops_max_length=0"])
