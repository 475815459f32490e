"""IRC chathistory, redaction and multiline rules (issue 19), over real sockets.

A server in this process with a ``tcp://`` and an ``irc://`` listener on
loopback port 0 (`test_irc_listener.running`); raw IRC and JSON-lines peers.
"""

from __future__ import annotations

from pathlib import Path

from test_irc_listener import IrcPeer, clients, irc, json_peer, privmsg, running

HISTORY_CAPS = "batch message-tags server-time echo-message labeled-response draft/chathistory"


async def history(peer: IrcPeer, line: str) -> list[tuple[str, tuple[str, ...]]]:
    """The PRIVMSGs of the chathistory batch that answers ``line``."""
    await peer.send(line)
    start, _ = await peer.until(lambda m: m.command in ("BATCH", "FAIL"))
    assert start.command == "BATCH", start
    rows = []
    while (m := await peer.recv()).command != "BATCH":
        if m.command == "PRIVMSG":
            rows.append((m.tags["msgid"], m.params))
    return rows


async def test_a_dm_to_oneself_is_delivered_beside_its_echo_and_kept_in_history(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (_json_port, irc_port), clients() as made:
        bar = await irc(made, irc_port)
        await bar.send("CAP LS 302", "CAP REQ :batch message-tags server-time draft/chathistory")
        await bar.register("bar", "CAP END")
        await bar.send("PRIVMSG bar :a note to self")
        delivery, _ = await bar.until(privmsg)  # no echo-message: the delivery alone
        assert (delivery.source, delivery.params) == ("bar!bar@chinwag", ("bar", "a note to self"))
        await bar.send("CAP REQ echo-message", "PRIVMSG bar :second note")
        first, _ = await bar.until(privmsg)
        second, _ = await bar.until(privmsg)
        assert first.params == second.params == ("bar", "second note")
        assert first.tags["msgid"] == second.tags["msgid"]
        rows = await history(bar, "CHATHISTORY LATEST bar * 10")
        assert [params for _, params in rows] == [
            ("bar", "a note to self"),
            ("bar", "second note"),
        ]


async def test_history_of_a_channel_one_is_not_in_is_invalid_target(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        cat = await json_peer(made, json_port)
        await cat.hello("cat")
        await cat.send(type="join", room="den", ref="j")
        await cat.recv_type("ok")
        bar = await irc(made, irc_port)
        await bar.send("CAP LS 302", f"CAP REQ :{HISTORY_CAPS}")
        await bar.register("bar", "CAP END")
        for target in ("#den", "#nosuchroom", "#bad!name"):
            await bar.send(f"CHATHISTORY LATEST {target} * 10")
            fail = await bar.command("FAIL")
            assert fail.params[:4] == ("CHATHISTORY", "INVALID_TARGET", "LATEST", target)
        await bar.send("JOIN #den")
        await bar.command("366")
        assert await history(bar, "CHATHISTORY LATEST #den * 10") == []


async def test_an_owner_redacts_anothers_message_with_a_reason_and_it_leaves_history(
    tmp_path: Path,
) -> None:
    caps = f"{HISTORY_CAPS} draft/message-redaction"
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        alys = await irc(made, irc_port)
        await alys.send("CAP LS 302", f"CAP REQ :{caps}")
        await alys.register("alys", "CAP END")
        await alys.send("JOIN #den")  # the first to join a new room owns it
        await alys.command("366")
        bob = await irc(made, irc_port)
        await bob.send("CAP LS 302", f"CAP REQ :{caps}")
        await bob.register("bob", "CAP END")
        await bob.send("JOIN #den")
        await bob.command("366")
        cat = await json_peer(made, json_port)
        await cat.hello("cat")
        await cat.send(type="join", room="den", ref="j")
        await cat.recv_type("ok")

        await bob.send("PRIVMSG #den :buy cheap watches", "PRIVMSG #den :hello all")
        spam, _ = await bob.until(privmsg)
        await bob.until(privmsg)
        msgid = spam.tags["msgid"]
        assert len(await history(alys, "CHATHISTORY LATEST #den * 10")) == 2

        await alys.send(f"REDACT #den {msgid} :spam")
        echo = await alys.command("REDACT")
        told = await bob.command("REDACT")
        for line in (echo, told):
            assert (line.source, line.params) == ("alys!alys@chinwag", ("#den", msgid, "spam"))
        deleted = await cat.recv_type("deleted")
        assert (deleted["target"], deleted["by"], deleted["reason"]) == (int(msgid), "alys", "spam")
        rows = await history(bob, "CHATHISTORY LATEST #den * 10")
        assert [params for _, params in rows] == [("#den", "hello all")]

        await cat.send(type="say", room="den", body="oops", ref="s")
        mine = (await cat.recv_type("ack"))["id"]
        await cat.send(type="delete", id=mine, reason="x" * 301, ref="d")  # over 300
        assert (await cat.recv_type("error"))["code"] == "bad_request"
        await cat.send(type="delete", id=mine, reason="typo", ref="d2")
        redacted = await bob.command("REDACT")
        assert redacted.params == ("#den", str(mine), "typo")


async def test_the_concat_tag_on_a_blank_line_refuses_the_whole_batch(tmp_path: Path) -> None:
    async with running(tmp_path) as (_json_port, irc_port), clients() as made:
        alice = await irc(made, irc_port)
        await alice.send("CAP LS 302", "CAP REQ :batch draft/multiline echo-message")
        await alice.register("alice", "CAP END")
        await alice.command("366")
        await alice.send(
            "BATCH +m draft/multiline #lobby",
            "@batch=m PRIVMSG #lobby :hi",
            "@batch=m;draft/multiline-concat PRIVMSG #lobby :",
            "BATCH -m",
            "PING :after",
        )
        fail, _ = await alice.until(lambda m: m.command == "FAIL")
        assert fail.params[:2] == ("BATCH", "MULTILINE_INVALID")
        assert "draft/multiline-concat on a blank line" in fail.params[-1]
        _, between = await alice.until(lambda m: m.command == "PONG")
        assert not any(privmsg(m) for m in between), "nothing of the batch was sent"


async def test_a_redact_sent_with_the_join_before_it_is_carried_out(tmp_path: Path) -> None:
    caps = f"{HISTORY_CAPS} draft/message-redaction"
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        cat = await json_peer(made, json_port)
        await cat.hello("cat")
        await cat.send(type="join", room="den", ref="j")
        await cat.recv_type("ok")
        bar = await irc(made, irc_port)
        await bar.send("CAP LS 302", f"CAP REQ :{caps}")
        await bar.register("bar", "CAP END")
        await bar.send("JOIN #den")
        await bar.command("366")
        await bar.send("PRIVMSG #den :a typo")
        said, _ = await bar.until(privmsg)
        msgid = said.tags["msgid"]
        await bar.send("PART #den")
        await bar.command("PART")
        # One write: the REDACT follows a JOIN whose answer has not come yet.
        await bar.send("JOIN #den", f"REDACT #den {msgid} :typo")
        echo = await bar.command("REDACT")
        assert echo.params == ("#den", msgid, "typo")
        deleted = await cat.recv_type("deleted")
        assert (deleted["target"], deleted["by"]) == (int(msgid), "bar")
