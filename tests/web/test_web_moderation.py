"""Moderation and blocks in the web client (protocol §11, §12), in Chromium against a real server.

The room header (topic and badges), a member's actions (only those the user has rights
to), the room settings dialog, refusals in plain words, being kicked or banned, a server
ban, and the list of blocked people.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, Locator, Page, expect
from support.web import WebServer

from .conftest import log_in, open_client

pytestmark = pytest.mark.timeout(180)

PASSWORD = "correct horse battery"
HOSTILE = "<img src=x onerror=\"document.title='pwned'\"><b>bold</b>"


async def reply(peer: Peer, ref: str, **frame: Any) -> dict[str, Any]:
    """Send ``frame`` with ``ref``; the answer to it (other frames are skipped)."""
    await peer.send(ref=ref, **frame)
    while (got := await peer.recv()).get("ref") != ref:
        pass
    return got


async def registered(peers: list[Peer], port: int, nick: str) -> Peer:
    """A session of a newly registered account ``nick``."""
    peer = await Peer.connect(port)
    peers.append(peer)
    await peer.hello(nick)
    assert (await reply(peer, "reg", type="register", password=PASSWORD))["type"] == "ok"
    return peer


async def admin(data: Path, *args: str) -> None:
    """``chinwag admin --data DATA ARGS``, which must succeed (it reaches the running server)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chinwag", "admin", "--data", str(data), *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, (out, err)


async def open_room(page: Page, room: str) -> None:
    opener = page.get_by_role("textbox", name="Join a #room or talk to @someone")
    await opener.fill(f"#{room}")
    await opener.press("Enter")
    await expect(page.get_by_role("heading", name=f"#{room}")).to_be_visible()


def actions(page: Page, nick: str) -> Locator:
    """The "Actions" button of ``nick`` in the member list."""
    members = page.get_by_role("list", name="Members")
    name = re.compile(rf"^{re.escape(nick)}( \(guest\))?$")
    row = members.get_by_role("listitem").filter(has=page.get_by_role("button", name=name))
    return row.get_by_role("button", name="Actions", exact=True)


def action(page: Page, nick: str, name: str) -> Locator:
    """Button ``name`` of the open actions of ``nick``."""
    menu = page.get_by_role("group", name=f"Actions for {nick}")
    return menu.get_by_role("button", name=name, exact=True)


async def next_presence(peer: Peer, event: str) -> dict[str, Any]:
    while (got := await peer.recv_type("presence"))["event"] != event:
        pass
    return got


async def test_an_owner_sets_a_hostile_topic_as_text_and_acts_on_a_member(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page = await open_client(context, web)
    await log_in(page, "alice", PASSWORD, register=True)  # a guest may not make it private
    await open_room(page, "games")  # alice made #games: she owns it
    badges = page.get_by_label("Room badges")
    await expect(badges.get_by_text("you: owner")).to_be_visible()
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    assert (await reply(bob, "j", type="join", room="games"))["type"] == "ok"
    members = page.get_by_role("list", name="Members")
    await expect(members.get_by_role("button", name="bob", exact=True)).to_be_visible()

    # The settings dialog: a topic that looks like HTML stays text; private and announce.
    await page.get_by_role("button", name="Room settings").click()
    dialog = page.get_by_role("dialog", name="#games settings")
    await dialog.get_by_label("Topic").fill(HOSTILE)
    await dialog.get_by_label("Private", exact=False).check()
    await dialog.get_by_label("Announcements", exact=False).check()
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    while (info := await bob.recv_type("room_info"))["by"] is None:
        pass  # the answer to bob's own join
    assert (info["topic"], info["private"], info["announce"], info["by"]) == (
        HOSTILE,
        True,
        True,
        "alice",
    )
    await expect(page.locator("#room-topic")).to_have_text(HOSTILE)
    assert await page.locator("header img, header b").count() == 0
    await expect(badges.get_by_text("private")).to_be_visible()
    await expect(badges.get_by_text("announcements")).to_be_visible()
    assert await page.title() != "pwned"

    # The room's own retention (issue 17): whole days, or empty for the server's setting.
    await page.get_by_role("button", name="Room settings").click()
    keep = dialog.get_by_label("Keep messages for", exact=False)
    await expect(keep).to_have_value("")
    await keep.fill("a week")
    await dialog.get_by_role("button", name="Save").click()
    await expect(page.locator("#settings-error")).to_have_text(
        "Keep messages for: a whole number of days, or empty for the server's setting."
    )
    await keep.fill("7")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    assert (await bob.recv_type("room_info"))["retention_days"] == 7
    await expect(
        page.get_by_role("log", name="Messages").get_by_text(
            "alice set the room to keep messages 7 days."
        )
    ).to_be_visible()

    # ircmodes: a key to join and a member limit; bob, a member, is told there is a key.
    await page.get_by_role("button", name="Room settings").click()
    limit = dialog.get_by_label("At most", exact=False)
    await dialog.get_by_label("Key to join", exact=False).fill("b33r")
    await limit.fill("lots")
    await dialog.get_by_role("button", name="Save").click()
    await expect(page.locator("#settings-error")).to_have_text(
        "At most: a whole number of people, or empty for no limit."
    )
    await limit.fill("5")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    info = await bob.recv_type("room_info")
    assert (info["keyed"], info.get("key"), info["limit"]) == (True, None, 5)
    await expect(
        page.get_by_role("log", name="Messages").get_by_text(
            "alice set a key to join, let at most 5 be in the room at once."
        )
    ).to_be_visible()
    await page.get_by_role("button", name="Room settings").click()
    await expect(dialog.get_by_label("Key to join", exact=False)).to_have_value("b33r")
    await dialog.get_by_label("Key to join", exact=False).fill("")
    await limit.fill("")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    info = await bob.recv_type("room_info")
    assert ("keyed" in info, "limit" in info) == (False, False), "emptied: none"

    # bob's actions: what an owner may do to a member, a guest included.
    await actions(page, "bob").click()
    menu = members.get_by_role("group", name="Actions for bob")
    for name in ("Kick", "Ban…", "Mute…", "Unmute", "Make mod", "Block"):
        await expect(menu.get_by_role("button", name=name, exact=True)).to_be_visible()
    await expect(menu.get_by_role("button")).to_have_count(6)
    # A guest may be made a mod, for its session (ircroles), and a member again.
    await menu.get_by_role("button", name="Make mod").click()
    granted = await next_presence(bob, "grant")
    assert (granted["nick"], granted["role"]) == ("bob", "mod")
    await actions(page, "bob").click()
    await action(page, "bob", "Make member").click()
    assert (await next_presence(bob, "grant"))["role"] == "member"
    log = page.get_by_role("log", name="Messages")

    await actions(page, "bob").click()
    await action(page, "bob", "Mute…").click()
    mute = page.get_by_role("dialog", name="Mute bob in #games")
    await mute.get_by_label("For how long").select_option(label="10 minutes")
    await mute.get_by_label("Reason", exact=False).fill("spam")
    await mute.get_by_role("button", name="Mute", exact=True).click()
    muted = await next_presence(bob, "mute")
    assert (muted["nick"], muted["by"], muted["reason"]) == ("bob", "alice", "spam")
    assert muted["until"] is not None
    await expect(log.get_by_text("bob was muted by alice: spam")).to_be_visible()
    said = await reply(bob, "s", type="say", room="games", body="can I talk?")
    assert (said["code"], said["reason"]) == ("forbidden", "muted")  # before announce

    await actions(page, "bob").click()
    await action(page, "bob", "Kick").click()
    kick = page.get_by_role("dialog", name="Kick bob from #games")
    await expect(kick.get_by_label("For how long")).to_be_hidden()
    await kick.get_by_role("button", name="Kick", exact=True).click()
    kicked = await next_presence(bob, "kick")
    assert (kicked["room"], kicked["by"]) == ("games", "alice")
    await expect(members.get_by_role("button", name="bob", exact=True)).to_have_count(0)
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_room_with_a_key_is_joined_with_join_room_key_and_refused_without(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    """ircmodes (protocol §12.6): the refusal in the server's words, then ``/join ROOM KEY``."""
    olga = await registered(peers, web.port, "olga")
    assert (await reply(olga, "j", type="join", room="den"))["type"] == "ok"
    assert (await reply(olga, "k", type="room", room="den", key="b33r"))["type"] == "ok"
    page = await open_client(context, web)
    await log_in(page, "alice")
    box = page.get_by_role("textbox", name="Message")
    await box.fill("/join den")
    await box.press("Enter")
    refusal = page.get_by_role("status").get_by_text("#den needs a key to join", exact=False)
    await expect(refusal).to_be_visible()
    await box.fill("/join den b33r")
    await box.press("Enter")
    await expect(page.get_by_role("heading", name="#den")).to_be_visible()
    while (joined := await next_presence(olga, "join"))["room"] != "den":
        pass  # alice's join of the lobby
    assert joined["nick"] == "alice"


async def test_a_member_gets_only_block_and_sees_mute_and_ban_in_plain_words(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    olga = await registered(peers, web.port, "olga")
    assert (await reply(olga, "j", type="join", room="games"))["type"] == "ok"
    carol = await Peer.connect(web.port)
    peers.append(carol)
    await carol.hello("carol")
    assert (await reply(carol, "j", type="join", room="games"))["type"] == "ok"

    page = await open_client(context, web)
    await log_in(page, "alice")
    await open_room(page, "games")
    members = page.get_by_role("list", name="Members")
    await actions(page, "carol").click()
    menu = members.get_by_role("group", name="Actions for carol")
    await expect(menu.get_by_role("button", name="Block", exact=True)).to_be_visible()
    await expect(menu.get_by_role("button")).to_have_count(1)  # nothing but Block
    await expect(page.get_by_role("button", name="Room settings")).to_be_hidden()
    await expect(page.get_by_label("Room badges").locator("span")).to_have_count(0)

    # olga mutes alice until 14:05-ish: the refusal of a message names the local time.
    until = "2099-01-01T14:05:00Z"
    assert (await reply(olga, "m", type="mute", room="games", nick="alice", until=until))[
        "type"
    ] == "ok"
    log = page.get_by_role("log", name="Messages")
    await expect(log.get_by_text("alice was muted by olga")).to_be_visible()
    local = await page.evaluate(
        "u => new Date(u).toLocaleDateString() + ' '"
        " + new Date(u).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'})",
        until,
    )
    await expect(
        page.get_by_label("Room badges").get_by_text(f"you are muted until {local}")
    ).to_be_visible()
    box = page.get_by_role("textbox", name="Message")
    await box.fill("let me speak")
    await box.press("Enter")
    await expect(
        log.get_by_text(f"not sent: You are muted in #games until {local}.")
    ).to_be_visible()

    # A ban takes the room out of the list, and the lobby says why.
    ban = await reply(olga, "b", type="ban", room="games", nick="alice", until=None, reason="rude")
    assert ban["type"] == "ok"
    await expect(page.get_by_role("heading", name="#lobby")).to_be_visible()
    conversations = page.get_by_role("list", name="Conversations")
    await expect(conversations.get_by_role("button", name="#games")).to_have_count(0)
    await expect(
        log.get_by_text("You were banned from #games by olga until it is lifted: rude.")
    ).to_be_visible()
    # Joining again is refused in plain words.
    await open_room_refused(page, "games")
    await expect(
        page.get_by_role("status").filter(
            has_text="You are banned from #games until a moderator lifts it."
        )
    ).to_be_visible()


async def open_room_refused(page: Page, room: str) -> None:
    opener = page.get_by_role("textbox", name="Join a #room or talk to @someone")
    await opener.fill(f"#{room}")
    await opener.press("Enter")


async def test_a_server_ban_shows_why_and_does_not_reconnect(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    ada = await registered(peers, web.port, "ada")
    await admin(web.data, "grant", "ada", "admin")
    page = await open_client(context, web)
    await log_in(page, "alice", PASSWORD, register=True)
    ban = await reply(ada, "b", type="ban", nick="alice", until=None, reason="spam")
    assert ban["type"] == "ok"
    error = page.locator("#login-error")
    await expect(error).to_have_text(
        "This account is banned from this server. Ask its admin if you think this is a mistake."
    )
    await expect(page.get_by_role("button", name="Connect")).to_be_visible()
    await page.wait_for_timeout(2000)  # a reconnect would have come by now (backoff ≤ 0.75 s)
    await expect(error).to_have_text(
        "This account is banned from this server. Ask its admin if you think this is a mistake."
    )
    await expect(page.locator("#chat")).to_be_hidden()

    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Password", exact=True).press("Enter")
    await expect(error).to_have_text(
        "“alice” is banned from this server until its admin lifts the ban (spam)."
        " Ask the server's admin if you think this is a mistake."
    )


async def test_blocking_from_the_people_list_and_unblocking_from_blocked_people(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page = await open_client(context, web)
    await log_in(page, "alice", PASSWORD, register=True)
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    await actions(page, "bob").click()
    await action(page, "bob", "Block").click()
    log = page.get_by_role("log", name="Messages")
    await expect(log.get_by_text("You blocked bob", exact=False)).to_be_visible()

    await page.get_by_role("button", name="Blocked people").click()
    dialog = page.get_by_role("dialog", name="Blocked people")
    await expect(
        dialog.get_by_role("list", name="Blocked people").get_by_text("bob")
    ).to_be_visible()
    await reply(bob, "s1", type="say", room="lobby", body="you cannot see this", cid="b1")
    carol = await Peer.connect(web.port)
    peers.append(carol)
    await carol.hello("carol")
    await reply(carol, "s2", type="say", room="lobby", body="carol is seen", cid="c1")
    await dialog.get_by_role("button", name="Close").click()
    await expect(log.get_by_text("carol is seen")).to_be_visible()
    await expect(log.get_by_text("you cannot see this")).to_have_count(0)

    # The menu now offers Unblock; the dialog unblocks too.
    await actions(page, "bob").click()
    await expect(action(page, "bob", "Unblock")).to_be_visible()
    await actions(page, "bob").click()
    await page.get_by_role("button", name="Blocked people").click()
    await dialog.get_by_role("button", name="Unblock bob", exact=True).click()
    await expect(dialog.get_by_text("You block nobody.", exact=False)).to_be_visible()
    await dialog.get_by_role("button", name="Close").click()
    await reply(bob, "s3", type="say", room="lobby", body="seen again", cid="b3")
    await expect(log.get_by_text("seen again")).to_be_visible()


async def test_a_mod_gets_a_mods_actions_and_a_kick_while_away_drops_the_room(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    olga = await registered(peers, web.port, "olga")
    assert (await reply(olga, "j", type="join", room="games"))["type"] == "ok"
    page = await open_client(context, web)
    await log_in(page, "alice", PASSWORD, register=True)
    await open_room(page, "games")
    assert (await reply(olga, "g", type="grant", room="games", nick="alice", role="mod"))[
        "type"
    ] == "ok"
    log = page.get_by_role("log", name="Messages")
    await expect(log.get_by_text("alice was given a new role by olga")).to_be_visible()
    await expect(page.get_by_label("Room badges").get_by_text("you: mod")).to_be_visible()

    carol = await registered(peers, web.port, "carol")
    assert (await reply(carol, "j", type="join", room="games"))["type"] == "ok"
    await actions(page, "carol").click()
    menu = page.get_by_role("group", name="Actions for carol")
    for name in ("Kick", "Ban…", "Mute…", "Unmute", "Block"):
        await expect(menu.get_by_role("button", name=name, exact=True)).to_be_visible()
    await expect(menu.get_by_role("button")).to_have_count(5)  # a mod cannot grant
    await actions(page, "carol").click()
    # The owner is above a mod, and `who` says olga is the owner (rooms4): only Block.
    await actions(page, "olga").click()
    olgas = page.get_by_role("group", name="Actions for olga")
    await expect(olgas.get_by_role("button")).to_have_count(1)
    await expect(olgas.get_by_role("button", name="Block", exact=True)).to_be_visible()
    await actions(page, "olga").click()

    # A mod sets the topic but not the flags; slash commands do the same.
    await page.get_by_role("button", name="Room settings").click()
    dialog = page.get_by_role("dialog", name="#games settings")
    await expect(dialog.get_by_label("Private", exact=False)).to_be_disabled()
    await expect(dialog.get_by_label("Announcements", exact=False)).to_be_disabled()
    await dialog.get_by_role("button", name="Close").click()
    box = page.get_by_role("textbox", name="Message")
    await box.fill("/topic chess only")
    await box.press("Enter")
    while (info := await olga.recv_type("room_info"))["topic"] != "chess only":
        pass
    assert info["by"] == "alice"
    await expect(page.locator("#room-topic")).to_have_text("chess only")
    await expect(log.get_by_text("alice set the topic to “chess only”.")).to_be_visible()

    # Kicked while the page is away (the server down, `chinwag admin` on its data): the room
    # is gone from the list when the page is back.
    web.kill()
    await expect(page.get_by_role("status").filter(has_text="reconnecting")).to_be_visible()
    await admin(web.data, "kick", "alice", "--room", "games")
    web.start()
    await expect(page.get_by_role("status").filter(has_text="Connected as alice")).to_be_visible(
        timeout=30_000
    )
    conversations = page.get_by_role("list", name="Conversations")
    await expect(conversations.get_by_role("button", name="#games")).to_have_count(0)
    await expect(page.get_by_role("heading", name="#lobby")).to_be_visible()
    errors = [e for e in page.errors if "ERR_CONNECTION_REFUSED" not in e]  # type: ignore[attr-defined]
    assert errors == []  # the refused reconnects while the server was down are expected


async def test_a_page_opened_later_knows_everyones_role_and_the_topic_from_who(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    """rooms4: roles granted before the page was opened are shown (the page learnt roles
    only from the grants it saw, and its own by joining again)."""
    alice = await registered(peers, web.port, "alice")
    assert (await reply(alice, "j", type="join", room="games"))["type"] == "ok"  # the owner
    assert (await reply(alice, "t", type="room", room="games", topic="chess"))["type"] == "ok"
    for nick in ("bob", "carol"):
        peer = await registered(peers, web.port, nick)
        assert (await reply(peer, "j", type="join", room="games"))["type"] == "ok"
    assert (await reply(alice, "g", type="grant", room="games", nick="bob", role="mod"))[
        "type"
    ] == "ok"

    page = await open_client(context, web)
    await log_in(page, "alice", PASSWORD)
    conversations = page.get_by_role("list", name="Conversations")
    await conversations.get_by_role("button", name="#games").click()
    await expect(page.get_by_role("heading", name="#games")).to_be_visible()
    await expect(page.get_by_label("Room badges").get_by_text("you: owner")).to_be_visible()
    await expect(page.locator("#room-topic")).to_have_text("chess")
    await actions(page, "bob").click()
    await expect(action(page, "bob", "Make member")).to_be_visible()
    await expect(action(page, "bob", "Make mod")).to_have_count(0)
    await actions(page, "bob").click()
    await actions(page, "carol").click()
    await expect(action(page, "carol", "Make mod")).to_be_visible()
