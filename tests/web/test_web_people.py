"""Presence and the member list, typing, joining a room and scrolling back through history."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, expect
from support.web import WebServer

from .conftest import log_in, message_from, open_client

pytestmark = pytest.mark.timeout(120)


async def test_members_presence_and_typing_follow_the_room(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page = await open_client(context, web)
    await log_in(page, "alice")
    members = page.get_by_role("list", name="Members")
    await expect(members.get_by_role("button", name="alice (guest)")).to_be_visible()

    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    await expect(members.get_by_role("button", name="bob")).to_be_visible()
    messages = page.get_by_role("log", name="Messages")
    await expect(messages.get_by_text("bob joined")).to_be_visible()

    await bob.send(type="typing", room="lobby")
    await expect(page.get_by_text("bob is typing…")).to_be_visible()
    await bob.send(type="say", room="lobby", body="done typing", cid="b-1")
    await expect(messages.get_by_text("done typing")).to_be_visible()
    await expect(page.get_by_text("bob is typing…")).to_be_hidden()

    # Typing in the box tells the room; bob sees it, then the message.
    await page.get_by_role("textbox", name="Message").press_sequentially("hel")
    typing = await bob.recv_type("typing")
    assert (typing["from"], typing["room"]) == ("alice", "lobby")

    await bob.close()
    await expect(members.get_by_role("button", name="bob")).to_have_count(0)
    await expect(messages.get_by_text("bob left")).to_be_visible()

    # Clicking a member opens a DM with them.
    carol = await Peer.connect(web.port)
    peers.append(carol)
    await carol.hello("carol")
    await members.get_by_role("button", name="carol").click()
    await expect(page.get_by_role("heading", name="@carol")).to_be_visible()
    await page.get_by_role("textbox", name="Message").fill("hi carol")
    await page.get_by_role("textbox", name="Message").press("Enter")
    got = await message_from(carol, "alice")
    assert (got["to"], got["body"]) == ("carol", "hi carol")


async def test_join_a_room_and_scroll_back_through_its_history(
    tmp_path: Path, context: BrowserContext, peers: list[Peer]
) -> None:
    web = WebServer(tmp_path / "server")
    web.settings["rate_burst"] = 100  # bob posts 70 messages at once
    web.start()
    try:
        await _scroll_back(web, context, peers)
    finally:
        web.kill()


async def _scroll_back(web: WebServer, context: BrowserContext, peers: list[Peer]) -> None:
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    await bob.send(type="join", room="games", ref="j")
    await bob.recv_type("ok")
    for i in range(70):  # one history page is 50
        await bob.send(type="say", room="games", body=f"old message {i}", cid=f"b-{i}")
        await bob.recv_type("ack")

    page = await open_client(context, web)
    await log_in(page, "alice")
    opener = page.get_by_role("textbox", name="Join a #room or talk to @someone")
    await opener.fill("#games")
    await opener.press("Enter")
    await expect(page.get_by_role("heading", name="#games")).to_be_visible()
    conversations = page.get_by_role("list", name="Conversations")
    await expect(conversations.get_by_role("button", name="#games")).to_be_visible()

    messages = page.get_by_role("log", name="Messages")
    lines = messages.locator("li.message")
    await expect(lines).to_have_count(50)
    await expect(lines.last.locator(".body")).to_have_text("old message 69")
    await messages.hover()
    await page.mouse.wheel(0, -100_000)  # scrolling to the top loads the page before
    await expect(lines).to_have_count(70)
    await expect(lines.first.locator(".body")).to_have_text("old message 0")
    await expect(page.get_by_role("button", name="Load earlier messages")).to_be_hidden()

    await page.get_by_role("button", name="Leave room").click()
    await expect(page.get_by_role("heading", name="#lobby")).to_be_visible()
    await expect(conversations.get_by_role("button", name="#games")).to_have_count(0)
    while (seen := await bob.recv_type("presence"))["event"] != "leave":
        pass  # alice's joins of the lobby and of games came first
    assert (seen["room"], seen["nick"]) == ("games", "alice")
    await expect(page.get_by_role("button", name="Leave room")).to_be_hidden()  # not the lobby


async def test_a_mute_is_said_in_the_room_and_leaves_the_member_listed(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    owner = await Peer.connect(web.port)
    peers.append(owner)
    await owner.hello("olga")
    await owner.send(type="register", password="correct horse battery", ref="reg")
    assert (await owner.recv_type("ok", timeout=30))["ref"] == "reg"
    await owner.send(type="join", room="games", ref="j")
    assert (await owner.recv_type("ok"))["ref"] == "j"
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    await bob.send(type="join", room="games", ref="j")
    assert (await bob.recv_type("ok"))["ref"] == "j"

    page = await open_client(context, web)
    await log_in(page, "alice")
    opener = page.get_by_role("textbox", name="Join a #room or talk to @someone")
    await opener.fill("#games")
    await opener.press("Enter")
    await expect(page.get_by_role("heading", name="#games")).to_be_visible()
    members = page.get_by_role("list", name="Members")
    await expect(members.get_by_role("button", name="bob")).to_be_visible()

    await owner.send(type="mute", room="games", nick="bob", until=None, reason="spam", ref="m")
    assert (await owner.recv_type("ok"))["ref"] == "m"
    messages = page.get_by_role("log", name="Messages")
    await expect(messages.get_by_text("bob was muted by olga: spam")).to_be_visible()
    await expect(members.get_by_role("button", name="bob")).to_be_visible()

    await owner.send(type="kick", room="games", nick="bob", reason="", ref="k")
    assert (await owner.recv_type("ok"))["ref"] == "k"
    await expect(messages.get_by_text("bob was kicked by olga")).to_be_visible()
    await expect(members.get_by_role("button", name="bob")).to_have_count(0)
