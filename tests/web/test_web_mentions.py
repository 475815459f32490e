"""Mentions: @-completion in the composer, the highlight, a notification when an edit names me."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, expect
from support.web import WebServer

from .conftest import UI_TIMEOUT_MS, log_in, message, message_from, open_client
from .test_web_notify import OBSERVE, shown

pytestmark = pytest.mark.timeout(120)


async def test_tab_completes_nicks_after_an_at_sign_and_cycles(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    for nick in ("bobby", "bob", "carol"):
        peer = await Peer.connect(web.port)
        peers.append(peer)
        await peer.hello(nick)
    bob = peers[1]
    page = await open_client(context, web)
    await log_in(page, "alice")
    members = page.get_by_role("list", name="Members")
    await expect(members.get_by_role("listitem")).to_have_count(4)

    box = page.get_by_role("textbox", name="Message")
    await box.fill("thanks @BO")
    await box.press("Tab")
    await expect(box).to_have_value("thanks @bob ")
    await expect(box).to_be_focused()
    await box.press("Tab")
    await expect(box).to_have_value("thanks @bobby ")
    await box.press_sequentially("and @ca")
    await box.press("Tab")
    await expect(box).to_have_value("thanks @bobby and @carol ")
    await box.press("Enter")
    got = await message_from(bob, "alice")
    assert got["body"] == "thanks @bobby and @carol"
    assert got["mentions"] == ["bobby", "carol"]
    sent = message(page, "thanks @bobby and @carol")
    await expect(sent.locator("mark.at")).to_have_text(["@bobby", "@carol"])

    # Without an @ before the caret, Tab leaves the box as usual.
    await box.fill("no nick here")
    await box.press("Tab")
    await expect(box).not_to_be_focused()
    await expect(box).to_have_value("no nick here")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_an_edit_that_mentions_me_highlights_and_notifies(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    await context.grant_permissions(["notifications"], origin=web.url.rstrip("/"))
    await context.add_init_script(OBSERVE)
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    page = await open_client(context, web)
    await log_in(page, "alice")
    await bob.send(type="say", room="lobby", body="who can help?", cid="b-1")
    target = (await bob.recv_type("ack"))["id"]
    await expect(message(page, "who can help?")).not_to_have_class("message mention")

    await page.evaluate("window.__setHidden(true)")
    hostile = "<img src=x onerror=window.__xss=1> who can help, @alice?"
    await bob.send(type="edit", id=target, body=hostile, cid="b-2")
    # Polled from here: the page's CSP forbids the eval that wait_for_function polls with.
    async with asyncio.timeout(UI_TIMEOUT_MS / 1000):
        while not await shown(page):
            await asyncio.sleep(0.05)
    assert await shown(page) == [{"title": "bob in #lobby", "body": hostile}]
    edited = message(page, "who can help, @alice?")
    await expect(edited).to_have_class("message mention")
    await expect(edited.locator(".body")).to_have_text(hostile)
    await expect(edited.locator("mark.me")).to_have_text("@alice")
    assert await page.evaluate("window.__xss") is None
    assert page.errors == []  # type: ignore[attr-defined]
