"""IRC ``draft/read-marker`` on chinwag's read markers (issue 19), over real sockets.

An account on IRC (SASL) and the same account on JSON lines share one marker:
``MARKREAD`` by time moves it to the latest message at or before that time,
and a JSON ``read`` reaches the IRC session as ``MARKREAD``.
"""

from __future__ import annotations

import base64
from pathlib import Path

from test_irc_listener import IrcPeer, clients, irc, json_peer, make_account, running

from chinwag.protocol.irc import IrcMessage

CAPS = "sasl draft/read-marker server-time message-tags batch"


async def sasl(peer: IrcPeer, nick: str, password: str) -> None:
    token = base64.b64encode(f"\0{nick}\0{password}".encode()).decode()
    await peer.send("CAP LS 302", f"CAP REQ :{CAPS}", "AUTHENTICATE PLAIN")
    await peer.command("AUTHENTICATE")
    await peer.send(f"AUTHENTICATE {token}")
    await peer.register(nick, "CAP END")


def markread(m: IrcMessage) -> bool:
    return m.command == "MARKREAD"


async def test_markread_by_time_moves_the_accounts_marker_both_ways(tmp_path: Path) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_account(json_port, "ann", "correct horse")
        bob = await json_peer(made, json_port)
        await bob.hello("bob")
        times: list[str] = []
        ids: list[int] = []
        for i in range(3):
            await bob.send(type="say", room="lobby", body=f"news {i}", ref=f"s{i}")
            ack = await bob.recv_type("ack")
            ids.append(ack["id"])
            times.append(ack["ts"])

        ann_irc = await irc(made, irc_port)
        await sasl(ann_irc, "ann", "correct horse")
        # The lobby (joined at login) comes with its marker, before its NAMES end.
        first, _ = await ann_irc.until(lambda m: markread(m) or m.command == "366")
        assert first.params == ("#lobby", "*")
        ann_json = await json_peer(made, json_port)
        await ann_json.hello("ann", password="correct horse", device="laptop")

        await ann_irc.send(f"MARKREAD #lobby timestamp={times[1]}")
        answer = await ann_irc.command("MARKREAD")
        assert answer.params == ("#lobby", f"timestamp={times[1]}")
        echo = await ann_json.recv_type("read")
        assert (echo["room"], echo["upto"]) == ("lobby", ids[1])

        # Never back: an older time answers with the marker as it is.
        await ann_irc.send("MARKREAD #lobby timestamp=2001-01-01T00:00:00.000Z")
        assert (await ann_irc.command("MARKREAD")).params == ("#lobby", f"timestamp={times[1]}")

        await ann_json.send(type="read", room="lobby", upto=ids[2], ref="r")
        await ann_json.recv_type("ok")
        moved = await ann_irc.command("MARKREAD")
        assert moved.params == ("#lobby", f"timestamp={times[2]}")
        await ann_irc.send("MARKREAD #lobby")
        assert (await ann_irc.command("MARKREAD")).params == ("#lobby", f"timestamp={times[2]}")

        for bad in ("MARKREAD", "MARKREAD #lobby *", "MARKREAD #lobby timestamp=soon"):
            await ann_irc.send(bad)
            fail = await ann_irc.command("FAIL")
            code = "NEED_MORE_PARAMS" if bad == "MARKREAD" else "INVALID_PARAMS"
            assert fail.params[:2] == ("MARKREAD", code), fail


async def test_a_guest_s_marker_is_kept_while_it_is_online_and_joining_tells_it(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (_json_port, irc_port), clients() as made:
        gus = await irc(made, irc_port)
        await gus.send("CAP LS 302", "CAP REQ :draft/read-marker")
        await gus.register("gus", "CAP END")
        await gus.send("JOIN #den")
        marker, before = await gus.until(lambda m: markread(m) and m.params[0] == "#den")
        assert marker.params == ("#den", "*")
        assert any(m.command == "JOIN" for m in before)
        _, between = await gus.until(lambda m: m.command == "366" and m.params[1] == "#den")
        assert not any(markread(m) for m in between)
        # ircmsg: a time with no message at it is kept as given, for this session's life.
        at = "timestamp=2030-01-01T00:00:00.000Z"
        await gus.send(f"MARKREAD #den {at}")
        assert (await gus.command("MARKREAD")).params == ("#den", at)
        await gus.send("MARKREAD #den timestamp=2029-01-01T00:00:00.000Z")  # never back
        assert (await gus.command("MARKREAD")).params == ("#den", at)
        await gus.send("PART #den")
        await gus.command("PART")
        await gus.send("JOIN #den")
        assert (await gus.command("MARKREAD")).params == ("#den", at)
        await gus.send(f"MARKREAD zed {at}")  # a DM partner who is not there: nobody
        assert (await gus.command("FAIL")).params[:2] == ("MARKREAD", "INVALID_TARGET")


async def test_a_marker_by_time_is_kept_across_logins_and_told_to_other_sessions(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (json_port, irc_port), clients() as made:
        await make_account(json_port, "ann", "correct horse")
        bob = await json_peer(made, json_port)
        await bob.hello("bob")
        one = await irc(made, irc_port)
        await sasl(one, "ann", "correct horse")
        assert (await one.command("MARKREAD")).params == ("#lobby", "*")  # with its JOIN
        two = await irc(made, irc_port)
        await sasl(two, "ann", "correct horse")
        assert (await two.command("MARKREAD")).params == ("#lobby", "*")
        at = "timestamp=2022-11-11T11:11:11.111Z"
        await one.send(f"MARKREAD #lobby {at}", f"MARKREAD bob {at}")
        assert (await one.command("MARKREAD")).params == ("#lobby", at)
        assert (await one.command("MARKREAD")).params == ("bob", at)
        assert (await two.command("MARKREAD")).params == ("#lobby", at)
        assert (await two.command("MARKREAD")).params == ("bob", at)
        await one.close()
        await two.close()

        again = await irc(made, irc_port)
        await sasl(again, "ann", "correct horse")
        rejoined, _ = await again.until(markread)
        assert rejoined.params == ("#lobby", at)
        await again.send("MARKREAD bob")
        assert (await again.command("MARKREAD")).params == ("bob", at)
