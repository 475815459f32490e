"""IRC channels, modes and moderation (issue 19, ircchan), over real sockets.

Each test runs a server with a JSON-lines and an IRC listener on loopback port 0
(``test_irc_listener.running``) and drives raw IRC clients, and JSON clients
where moderation must cross from one protocol to the other.
"""

from __future__ import annotations

from pathlib import Path

from test_irc_listener import clients, irc, json_peer, privmsg, running

from chinwag.config import build


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
