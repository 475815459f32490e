"""MONITOR, extended-monitor and extended-join (irccaps), over real sockets.

A server in this process with a ``tcp://`` and an ``irc://`` listener on
loopback port 0 (`test_irc_listener.running`); raw IRC and JSON-lines peers.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from conftest import Peer
from test_irc_listener import IrcPeer, clients, irc, json_peer, make_account, running

from chinwag.config import SettingsError, build
from chinwag.protocol.irc import IrcMessage


def test_monitor_max_is_a_setting_of_at_least_one() -> None:
    assert build(None, []).monitor_max == 100
    assert build(None, ["monitor_max=1"]).monitor_max == 1
    with pytest.raises(SettingsError, match="monitor_max must be at least 1"):
        build(None, ["monitor_max=0"])


async def synced(peer: IrcPeer, token: str = "sync") -> list[IrcMessage]:
    """Every line the server sent ``peer`` before the answer to a PING sent now."""
    await peer.send(f"PING :{token}")
    _, before = await peer.until(lambda m: m.command == "PONG" and m.params[-1] == token)
    return before


async def test_monitor_tells_of_a_nick_coming_and_going_without_a_shared_channel(
    tmp_path: Path,
) -> None:
    async with (
        running(tmp_path, irc_auto_join="false") as (_json_port, irc_port),
        clients() as made,
    ):
        foo = await irc(made, irc_port)
        welcome = await foo.register("foo")
        isupport = [p for m in welcome if m.command == "005" for p in m.params]
        assert "MONITOR=100" in isupport or "MONITOR=100" in (await foo.command("005")).params
        await foo.send("MONITOR + bar,Baz")
        offline = await foo.command("731")
        assert offline.params == ("foo", "bar,Baz")

        bar = await irc(made, irc_port)  # in no channel: foo is told all the same
        await bar.register("bar")
        online = await foo.command("730")
        assert online.params == ("foo", "bar!bar@chinwag")

        await foo.send("MONITOR S")
        status = [m for m in await synced(foo) if m.command in ("730", "731")]
        assert [(m.command, m.params[1]) for m in status] == [
            ("730", "bar!bar@chinwag"),
            ("731", "Baz"),
        ]
        await foo.send("MONITOR L")
        listed, _ = await foo.until(lambda m: m.command == "733")
        assert listed.params[0] == "foo"
        await foo.send("MONITOR L")
        _, rows = await foo.until(lambda m: m.command == "733")
        assert {n for m in rows if m.command == "732" for n in m.params[1].split(",")} == {
            "bar",
            "Baz",
        }

        await bar.send("QUIT :bye")
        await bar.lines_to_eof()
        gone = await foo.command("731")
        assert gone.params == ("foo", "bar")

        await foo.send("MONITOR - bar")
        assert [m for m in await synced(foo) if m.command.startswith("73")] == []
        again = await irc(made, irc_port)
        await again.register("bar")  # no longer monitored: nothing
        await foo.send("MONITOR C", "MONITOR L")
        _, before = await foo.until(lambda m: m.command == "733")
        assert [m.command for m in before if m.command.startswith("73")] == []
        assert [m for m in await synced(foo, "after") if m.command.startswith("73")] == []


async def test_a_guest_s_rename_is_the_old_nick_going_and_the_new_one_coming(
    tmp_path: Path,
) -> None:
    async with (
        running(tmp_path, irc_auto_join="false") as (_json_port, irc_port),
        clients() as made,
    ):
        bar = await irc(made, irc_port)
        await bar.register("bar")
        await bar.send("MONITOR + qux")
        assert (await bar.command("731")).params == ("bar", "qux")
        baz = await irc(made, irc_port)
        await baz.register("baz")
        await baz.send("NICK qux")
        await baz.command("NICK")
        assert (await bar.command("730")).params == ("bar", "qux!qux@chinwag")
        await baz.send("NICK QUX")  # a change of case: the same nick, nothing to tell
        await baz.command("NICK")
        assert not [m for m in await synced(bar) if m.command in ("730", "731")]
        await baz.send("NICK bazbat")
        await baz.command("NICK")
        assert (await bar.command("731")).params == ("bar", "QUX")


async def test_an_account_is_offline_only_when_its_last_session_ends_on_any_transport(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_account(json_port, "ann", "ann's long password")
        watcher = await json_peer(made, json_port)
        await watcher.hello("watcher")
        await watcher.send(type="monitor", add=["ann", "nobody"], ref="m")
        reply = await watcher.recv_type("monitor")
        assert reply == {"type": "monitor", "online": [], "offline": ["ann", "nobody"], "ref": "m"}

        phone = await irc(made, irc_port)
        await phone.register("ann", "PASS :ann's long password")
        came = await watcher.recv_type("monitored")
        assert came == {"type": "monitored", "nick": "ann", "online": True}
        laptop = await json_peer(made, json_port)
        await laptop.hello("ann", password="ann's long password", device="laptop")
        await phone.send("QUIT")
        await phone.lines_to_eof()
        await watcher.send(type="monitor", ref="s")  # nothing to change: the whole list
        status = await watcher.recv_type("monitor")
        assert (status["online"], status["offline"]) == (["ann"], ["nobody"])
        assert [f for f in await watcher.quiet() if f["type"] == "monitored"] == []

        await laptop.send(type="bye")
        await laptop.recv_type("bye")
        went = await watcher.recv_type("monitored")
        assert went == {"type": "monitored", "nick": "ann", "online": False}


async def test_a_monitor_list_is_bounded_and_bad_input_changes_nothing(tmp_path: Path) -> None:
    async with (
        running(tmp_path, monitor_max=2) as (json_port, irc_port),
        clients() as made,
    ):
        foo = await irc(made, irc_port)
        await foo.register("foo")
        assert "MONITOR=2" in (await foo.command("005")).params
        await foo.send("MONITOR + a,b")  # at the limit: taken
        assert (await foo.command("731")).params == ("foo", "a,b")
        await foo.send("MONITOR + c")  # one over: refused, nothing added
        full = await foo.command("734")
        assert full.params[:3] == ("foo", "2", "c")
        await foo.send("MONITOR + d,*!user@host")  # not a nick: refused, d not added
        bad = await foo.command("432")
        assert bad.params[1] == "d,*!user@host"
        await foo.send("MONITOR L")
        _, rows = await foo.until(lambda m: m.command == "733")
        assert {n for m in rows if m.command == "732" for n in m.params[1].split(",")} == {
            "a",
            "b",
        }
        await foo.send("MONITOR + a,b")  # already there: still two
        await foo.command("731")

        ann = await json_peer(made, json_port)
        await ann.hello("ann")
        await ann.send(type="monitor", add=["x", "y", "z"], ref="m")
        refused = await ann.recv_type("error")
        assert (refused["code"], refused["reason"], refused["limit"]) == (
            "bad_request",
            "monitor_max",
            2,
        )
        await ann.send(type="monitor", add="x", ref="n")
        assert (await ann.recv_type("error"))["code"] == "bad_request"
        await ann.send(type="monitor", ref="l")
        assert (await ann.recv_type("monitor"))["offline"] == []


async def test_extended_monitor_tells_a_monitored_nick_s_away_and_real_name(
    tmp_path: Path,
) -> None:
    async with (
        running(tmp_path, irc_auto_join="false") as (json_port, irc_port),
        clients() as made,
    ):
        foo = await irc(made, irc_port)
        await foo.send("CAP LS 302", "CAP REQ :extended-monitor away-notify setname")
        ack, _ = await foo.until(lambda m: m.command == "CAP" and m.params[1] == "ACK")
        assert ack.params[2] == "extended-monitor away-notify setname"
        await foo.register("foo", "CAP END")
        plain = await irc(made, irc_port)  # away-notify, no extended-monitor
        await plain.send("CAP LS 302", "CAP REQ :away-notify setname")
        await plain.register("plain", "CAP END")
        await foo.send("MONITOR + bar")
        await plain.send("MONITOR + bar")
        await foo.command("731")
        await plain.command("731")

        bar = await json_peer(made, json_port)  # in the lobby; foo and plain are not
        await bar.hello("bar")
        await foo.command("730")
        await plain.command("730")
        await bar.send(type="away", message="afk", ref="a")
        await bar.recv_type("ok")
        away = await foo.command("AWAY")
        assert (away.source, away.params) == ("bar!bar@chinwag", ("afk",))
        await bar.send(type="away", ref="b")
        await bar.recv_type("ok")
        back = await foo.command("AWAY")
        assert (back.source, back.params) == ("bar!bar@chinwag", ())
        await bar.send(type="setname", real_name="Bar Barson", ref="s")
        await bar.recv_type("ok")
        renamed = await foo.command("SETNAME")
        assert (renamed.source, renamed.params) == ("bar!bar@chinwag", ("Bar Barson",))
        assert [m for m in await synced(plain) if m.command in ("AWAY", "SETNAME")] == []


async def chan_join(peer: IrcPeer) -> IrcMessage:
    join, _ = await peer.until(lambda m: m.command == "JOIN" and m.params[0] == "#chan")
    return join


async def test_extended_join_carries_the_account_and_the_real_name(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_account(json_port, "jilles", "jilles's long password")
        foo = await irc(made, irc_port)
        await foo.send("CAP LS 302", "CAP REQ :extended-join")
        welcome = await foo.register("foo", "CAP END")
        own = [m for m in welcome if m.command == "JOIN"]
        if not own:
            own = [await foo.command("JOIN")]
        assert own[0].params == ("#lobby", "*", "foo")  # a guest: no account
        await foo.send("JOIN #chan")
        mine = await foo.command("JOIN")
        assert mine.params == ("#chan", "*", "foo")
        await foo.command("366")

        guest = await irc(made, irc_port)
        await guest.send("NICK bar", "USER bar 0 * :Bar Barson")
        await guest.command("001")
        await guest.send("JOIN #chan")
        joined = await chan_join(foo)
        assert (joined.source, joined.params) == ("bar!bar@chinwag", ("#chan", "*", "Bar Barson"))

        account = await irc(made, irc_port)
        await account.send(
            "PASS :jilles's long password", "NICK jilles", "USER j 0 * :Jilles Realname"
        )
        await account.command("001")
        await account.send("JOIN #chan")
        joined = await chan_join(foo)
        assert joined.params == ("#chan", "jilles", "Jilles Realname")

        plain = await irc(made, irc_port)  # without the cap: a plain JOIN
        await plain.register("plain")
        await plain.send("JOIN #chan")
        await plain.until(lambda m: m.command == "366" and m.params[1] == "#chan")
        assert (await chan_join(foo)).params == ("#chan", "*", "plain")
        web = await json_peer(made, json_port)
        await web.hello("webby")
        await web.send(type="join", room="chan", ref="j")
        seen = await chan_join(plain)
        assert (seen.source, seen.params) == ("webby!webby@chinwag", ("#chan",))
        joined = await chan_join(foo)
        assert joined.params == ("#chan", "*", "webby")  # no real name: the nick


async def test_setname_changes_the_real_name_and_tells_those_with_the_cap(tmp_path: Path) -> None:
    async with (
        running(tmp_path, real_name_max=20) as (json_port, irc_port),
        clients() as made,
    ):
        foo = await irc(made, irc_port)
        await foo.send("CAP LS 302", "CAP REQ :setname")
        welcome = await foo.register("foo", "CAP END")
        assert (
            "NAMELEN=20" in [p for m in welcome for p in m.params]
            or "NAMELEN=20" in (await foo.command("005")).params
        )
        await foo.command("366")
        peer = await irc(made, irc_port)
        await peer.send("CAP LS 302", "CAP REQ :setname")
        await peer.register("peer", "CAP END")
        await peer.command("366")
        plain = await irc(made, irc_port)  # no setname cap: no SETNAME lines
        await plain.register("plain")
        await plain.command("366")
        web = await json_peer(made, json_port)
        await web.hello("web")

        await foo.send("SETNAME :Foo Fooson")
        echo = await foo.command("SETNAME")
        assert (echo.source, echo.params) == ("foo!foo@chinwag", ("Foo Fooson",))
        told = await peer.command("SETNAME")
        assert (told.source, told.params) == ("foo!foo@chinwag", ("Foo Fooson",))
        assert await web.recv_type("setname") == {
            "type": "setname",
            "nick": "foo",
            "real_name": "Foo Fooson",
        }
        assert [m for m in await synced(plain) if m.command == "SETNAME"] == []
        await web.send(type="who", room="lobby", ref="w")
        rows = {u["nick"]: u.get("real_name") for u in (await web.recv_type("who"))["users"]}
        assert rows["foo"] == "Foo Fooson"

        await foo.send("SETNAME :" + "x" * 21)  # over real_name_max (20): refused
        fail = await foo.command("FAIL")
        assert fail.params[:2] == ("SETNAME", "INVALID_REALNAME")
        await foo.send("SETNAME :" + "y" * 20)  # at the limit: taken
        assert (await foo.command("SETNAME")).params == ("y" * 20,)
        await web.send(type="setname", real_name="bad\x07bell", ref="b")
        refused = await web.recv_type("error")
        assert (refused["code"], refused["reason"]) == ("bad_request", "real_name")


async def test_the_real_name_of_user_after_sasl_is_the_session_s(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_account(json_port, "jilles", "sesame's long password")
        foo = await irc(made, irc_port)
        await foo.send("CAP LS 302", "CAP REQ :extended-join")
        await foo.register("foo", "CAP END")
        await foo.send("JOIN #chan")
        await foo.until(lambda m: m.command == "366" and m.params[1] == "#chan")

        bar = await irc(made, irc_port)
        await bar.send("CAP LS 302", "CAP REQ :sasl", "AUTHENTICATE PLAIN")
        await bar.command("AUTHENTICATE")
        token = base64.b64encode(b"jilles\0jilles\0sesame's long password").decode()
        await bar.send(f"AUTHENTICATE {token}")
        await bar.command("903")
        await bar.send("USER f * * :Realname", "NICK jilles", "CAP END")
        await bar.command("001")
        await bar.send("JOIN #chan")
        joined = await chan_join(foo)
        assert joined.params == ("#chan", "jilles", "Realname")


async def test_register_makes_the_nick_an_account_with_the_password_rules(
    tmp_path: Path,
) -> None:
    async with (
        running(tmp_path, min_password=10) as (json_port, irc_port),
        clients() as made,
    ):
        bar = await irc(made, irc_port)
        await bar.send("CAP LS 302")
        ls = await bar.command("CAP")
        assert "draft/account-registration" in ls.params[-1].split()
        await bar.send("CAP REQ :draft/account-registration")
        await bar.send("NICK bar", "REGISTER * * shivarampassphrase")
        early = await bar.command("FAIL")
        assert early.params[:3] == ("REGISTER", "COMPLETE_CONNECTION_REQUIRED", "*")
        await bar.register("bar", "CAP END")

        await bar.send("REGISTER foo * shivarampassphrase")
        other = await bar.command("FAIL")
        assert other.params[:3] == ("REGISTER", "ACCOUNT_NAME_MUST_BE_NICK", "foo")
        await bar.send("REGISTER * * 123456789")  # one under min_password (10)
        weak = await bar.command("FAIL")
        assert weak.params[:3] == ("REGISTER", "WEAK_PASSWORD", "bar")
        await bar.send("REGISTER bar * 1234567890")  # at the limit: taken
        done = await bar.command("REGISTER")
        assert done.params[:2] == ("SUCCESS", "bar")
        logged_in = await bar.command("900")
        assert logged_in.params[1:3] == ("bar!bar@chinwag", "bar")
        await bar.send("REGISTER * * 1234567890")
        again = await bar.command("FAIL")
        assert again.params[:2] == ("REGISTER", "ALREADY_AUTHENTICATED")

        phone = await json_peer(made, json_port)  # the account logs in elsewhere
        await phone.hello("bar", password="1234567890", device="phone")  # welcome, or it fails


async def test_register_is_not_offered_where_accounts_are_not_open(tmp_path: Path) -> None:
    for mode, code in (("closed", "REGISTRATION_CLOSED"), ("invite", "INVITE_REQUIRED")):
        async with (
            running(tmp_path / mode, registration=mode) as (_json_port, irc_port),
            clients() as made,
        ):
            bar = await irc(made, irc_port)
            await bar.send("CAP LS 302")
            assert "draft/account-registration" not in (await bar.command("CAP")).params[-1]
            await bar.send("CAP REQ :draft/account-registration")
            assert (await bar.command("CAP")).params[1] == "NAK"
            await bar.register("bar", "CAP END")
            await bar.send("REGISTER * * shivarampassphrase")
            refused = await bar.command("FAIL")
            assert refused.params[:3] == ("REGISTER", code, "bar")


async def who_bots(peer: Peer) -> dict[str, bool]:
    await peer.send(type="who", room="lobby")
    return {u["nick"]: u.get("bot", False) for u in (await peer.recv_type("who"))["users"]}


async def test_mode_plus_b_makes_a_bot_shown_in_who_whois_and_the_bot_tag(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        bot = await irc(made, irc_port)
        await bot.send("CAP LS 302", "CAP REQ :echo-message message-tags")
        welcome = await bot.register("botnick", "CAP END")
        isupport = [p for m in welcome if m.command == "005" for p in m.params]
        assert "BOT=B" in isupport or "BOT=B" in (await bot.command("005")).params
        await bot.command("366")
        user = await irc(made, irc_port)
        await user.send("CAP LS 302", "CAP REQ :message-tags")
        await user.register("usernick", "CAP END")
        await user.command("366")
        plain = await irc(made, irc_port)  # no message-tags: no tag
        await plain.register("plain")
        await plain.command("366")
        web = await json_peer(made, json_port)
        await web.hello("web")

        await bot.send("MODE usernick +B")
        assert (await bot.command("502")).params[0] == "botnick"
        await bot.send("MODE botnick")
        assert (await bot.command("221")).params == ("botnick", "+")
        await bot.send("MODE botnick +B")
        mode = await bot.command("MODE")
        assert (mode.source, mode.params) == ("botnick!botnick@chinwag", ("botnick", "+B"))
        await bot.send("MODE botnick")
        assert (await bot.command("221")).params == ("botnick", "+B")
        assert (await who_bots(web))["botnick"] is True
        await user.send("WHO #lobby")
        _, rows = await user.until(lambda m: m.command == "315")
        flags = {m.params[5]: m.params[6] for m in rows if m.command == "352"}
        assert flags["botnick"] == "HB" and flags["usernick"] == "H"
        await user.send("WHOIS botnick")
        _, whois = await user.until(lambda m: m.command == "318")
        assert [m.params for m in whois if m.command == "335"] == [
            ("usernick", "botnick", "is a bot")
        ]

        await bot.send("PRIVMSG #lobby :beep boop", "PRIVMSG usernick :beep")
        echo, _ = await bot.until(lambda m: m.command == "PRIVMSG")
        assert "bot" in echo.tags
        seen, _ = await user.until(lambda m: m.command == "PRIVMSG")
        assert (seen.params, "bot" in seen.tags) == (("#lobby", "beep boop"), True)
        dm, _ = await user.until(lambda m: m.command == "PRIVMSG")
        assert (dm.params, "bot" in dm.tags) == (("usernick", "beep"), True)
        untagged, _ = await plain.until(lambda m: m.command == "PRIVMSG")
        assert untagged.tags == {}

        await bot.send("MODE botnick -B")
        assert (await bot.command("MODE")).params == ("botnick", "-B")
        assert (await who_bots(web))["botnick"] is False
        await bot.send("PRIVMSG #lobby :human now")
        human, _ = await user.until(lambda m: m.command == "PRIVMSG")
        assert (human.params[1], "bot" in human.tags) == ("human now", False)


async def test_an_account_s_bot_flag_is_kept_for_its_next_login(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_account(json_port, "helper", "helper's long password")
        watcher = await json_peer(made, json_port)
        await watcher.hello("watcher")
        helper = await json_peer(made, json_port)
        await helper.hello("helper", password="helper's long password")
        await helper.send(type="bot", on="yes", ref="x")
        assert (await helper.recv_type("error"))["code"] == "bad_request"
        await helper.send(type="bot", on=True, ref="b")
        assert await helper.recv_type("ok") == {"type": "ok", "ref": "b"}
        await helper.send(type="bye")
        await helper.recv_type("bye")

        again = await irc(made, irc_port)
        await again.register("helper", "PASS :helper's long password")
        await again.send("MODE helper")
        assert (await again.command("221")).params == ("helper", "+B")
        assert (await who_bots(watcher))["helper"] is True


async def test_account_notify_tells_that_a_guest_registered(tmp_path: Path) -> None:
    async with (
        running(tmp_path, irc_auto_join="false") as (json_port, irc_port),
        clients() as made,
    ):
        peer = await irc(made, irc_port)  # shares #chan with ann
        await peer.send("CAP LS 302", "CAP REQ :account-notify")
        await peer.register("peer", "CAP END")
        await peer.send("JOIN #chan")
        await peer.until(lambda m: m.command == "366")
        watcher = await irc(made, irc_port)  # in no channel; monitors ann
        await watcher.send("CAP LS 302", "CAP REQ :account-notify extended-monitor")
        await watcher.register("watcher", "CAP END")
        plain = await irc(made, irc_port)  # shares #chan, no account-notify
        await plain.register("plain")
        await plain.send("JOIN #chan")
        await plain.until(lambda m: m.command == "366")
        web = await json_peer(made, json_port)
        await web.hello("web")
        await web.send(type="join", room="chan", ref="j")
        await web.recv_type("ok")

        ann = await irc(made, irc_port)
        await ann.register("ann")
        await ann.send("JOIN #chan")
        await ann.until(lambda m: m.command == "366")
        await watcher.send("MONITOR + ann")
        await watcher.command("730")
        await ann.send("PRIVMSG NickServ :REGISTER annslongpassword")
        registered = await ann.command("NOTICE")
        assert "is registered" in registered.params[1]
        told = await peer.command("ACCOUNT")
        assert (told.source, told.params) == ("ann!ann@chinwag", ("ann",))
        seen = await watcher.command("ACCOUNT")
        assert (seen.source, seen.params) == ("ann!ann@chinwag", ("ann",))
        assert await web.recv_type("account") == {"type": "account", "nick": "ann"}
        assert [m for m in await synced(plain) if m.command == "ACCOUNT"] == []
        assert [m for m in await synced(ann) if m.command == "ACCOUNT"] == []
