"""The web client in a real browser against a real server: log in, rooms, DMs, the away summary."""

from __future__ import annotations

import re

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, expect
from support.web import WebServer

from .conftest import log_in, message_from, open_client

pytestmark = pytest.mark.timeout(120)


async def test_log_in_send_and_receive_in_a_room_keyboard_only(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page = await open_client(context, web)
    await expect(page.get_by_role("button", name="Connect")).to_be_visible()
    await log_in(page, "alice")
    conversations = page.get_by_role("list", name="Conversations")
    await expect(conversations.get_by_role("button", name="#lobby")).to_be_visible()

    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    await bob.send(type="say", room="lobby", body="hi alice", cid="b-1")
    messages = page.get_by_role("log", name="Messages")
    await expect(messages.get_by_text("hi alice")).to_be_visible()

    box = page.get_by_role("textbox", name="Message")
    await expect(box).to_be_focused()
    await box.fill("hello bob")
    await box.press("Enter")
    got = await message_from(bob, "alice")
    assert (got["from"], got["room"], got["body"]) == ("alice", "lobby", "hello bob")
    await expect(messages.get_by_text("hello bob")).to_be_visible()
    await expect(messages.locator(".pending")).to_have_count(0)
    await expect(box).to_have_value("")

    # The Send button does the same as Enter, and a bot's board keeps its spacing in monospace.
    await box.fill("```\n X | O\n---+---\n   | X\n```")
    await page.get_by_role("button", name="Send").click()
    got = await message_from(bob, "alice")
    assert got["body"].startswith("```")
    board = messages.locator("pre").first
    await expect(board).to_have_text(" X | O\n---+---\n   | X")
    font = await board.evaluate("el => getComputedStyle(el).fontFamily")
    assert "mono" in font.lower()
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_dm_from_a_tcp_client_shows_with_an_unread_count(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page = await open_client(context, web)
    await log_in(page, "alice")
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    await bob.send(type="dm", to="alice", body="psst, alice", cid="b-1")
    await bob.send(type="dm", to="alice", body="are you there?", cid="b-2")

    conversations = page.get_by_role("list", name="Conversations")
    entry = conversations.get_by_role("button", name="@bob, 2 unread")
    await expect(entry).to_be_visible()
    await expect(page).to_have_title("(2) chinwag")
    # Still in the lobby: the DM is not shown there.
    await expect(page.get_by_role("log", name="Messages").get_by_text("psst")).to_have_count(0)

    await entry.click()
    messages = page.get_by_role("log", name="Messages")
    await expect(messages.get_by_text("psst, alice")).to_be_visible()
    await expect(messages.get_by_text("are you there?")).to_be_visible()
    await expect(conversations.get_by_role("button", name="@bob", exact=True)).to_be_visible()
    await expect(page).to_have_title("chinwag")

    # The answer goes back as a DM to bob.
    await page.get_by_role("textbox", name="Message").fill("yes")
    await page.get_by_role("button", name="Send").click()
    got = await message_from(bob, "alice")
    assert (got["from"], got["to"], got["body"]) == ("alice", "bob", "yes")


async def test_relogin_shows_the_away_summary_and_divider(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page = await open_client(context, web)
    await log_in(page, "alice", "correct horse", register=True)
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    await bob.send(type="say", room="lobby", body="before you left", cid="b-1")
    messages = page.get_by_role("log", name="Messages")
    await expect(messages.get_by_text("before you left")).to_be_visible()
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("button", name="Connect")).to_be_visible()

    await bob.send(type="say", room="lobby", body="while you were out", cid="b-2")
    await bob.send(type="say", room="lobby", body="and another", cid="b-3")
    await bob.recv_type("ack")
    await bob.recv_type("ack")

    # The nick is remembered, the password is not.
    await expect(page.get_by_label("Nick", exact=True)).to_have_value("alice")
    await expect(page.get_by_label("Password", exact=True)).to_have_value("")
    stored = await page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
    assert "correct horse" not in stored
    await log_in(page, "alice", "correct horse")
    summary = page.get_by_text("While you were away: 2 new messages — 2 in #lobby.")
    await expect(summary).to_be_visible()
    await expect(messages.get_by_text("while you were out")).to_be_visible()
    items = messages.locator("li")
    texts = await items.all_inner_texts()
    divider = texts.index("New since you were away")
    assert [t for t in texts[divider + 1 :] if "you were out" in t or "another" in t]
    assert any("before you left" in t for t in texts[:divider])
    assert not any("before you left" in t for t in texts[divider:])


async def test_slash_commands_join_dm_and_help_and_a_double_slash_is_sent(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page = await open_client(context, web)
    await log_in(page, "alice")
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    box = page.get_by_role("textbox", name="Message")
    messages = page.get_by_role("log", name="Messages")

    await box.fill("/frobnicate")
    await box.press("Enter")
    await expect(messages.get_by_text("/frobnicate is not a command here.")).to_be_visible()
    await box.fill("//frobnicate is sent as it is")
    await box.press("Enter")
    got = await message_from(bob, "alice")
    assert got["body"] == "/frobnicate is sent as it is"

    await box.fill("/join Games")
    await box.press("Enter")
    await expect(page.get_by_role("heading", name="#games")).to_be_visible()
    await box.fill("/dm bob one for you")
    await box.press("Enter")
    await expect(page.get_by_role("heading", name="@bob")).to_be_visible()
    got = await message_from(bob, "alice")
    assert (got["to"], got["body"]) == ("bob", "one for you")


async def test_the_next_nick_on_the_same_page_sees_nothing_of_the_last_one(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page = await open_client(context, web)
    await log_in(page, "alice")
    carol = await Peer.connect(web.port)
    peers.append(carol)
    await carol.hello("carol")
    await carol.send(type="dm", to="alice", body="for alice only", cid="c-1")
    conversations = page.get_by_role("list", name="Conversations")
    await expect(conversations.get_by_role("button", name="@carol, 1 unread")).to_be_visible()
    await page.get_by_role("button", name="Log out").click()

    await log_in(page, "dave")
    await expect(conversations.get_by_role("button", name="#lobby")).to_be_visible()
    await expect(conversations.get_by_role("button", name=re.compile("carol"))).to_have_count(0)
    await expect(page.get_by_text("for alice only")).to_have_count(0)
    await expect(page).to_have_title("chinwag")
