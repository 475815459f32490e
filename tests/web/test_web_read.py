"""Read markers across an account's browsers, `caught_up.unread`, and DM read ticks."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Peer
from playwright.async_api import Browser, BrowserContext, Page, expect
from support.web import WebServer

from .conftest import UI_TIMEOUT_MS, log_in, message, open_client

pytestmark = pytest.mark.timeout(120)

PASSWORD = "alice's password"


async def second_browser(
    browser: Browser, web: WebServer
) -> tuple[BrowserContext, Page, list[str]]:
    """Another browser profile (another device of the same account), and what it receives."""
    context = await browser.new_context()
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = await open_client(context, web)
    received: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda data: received.append(str(data))))
    await log_in(page, "alice", PASSWORD)
    return context, page, received


async def test_reading_on_one_device_clears_the_badge_on_the_other_and_at_the_next_login(
    web: WebServer, context: BrowserContext, browser: Browser, peers: list[Peer]
) -> None:
    laptop = await open_client(context, web)
    await log_in(laptop, "alice", PASSWORD, register=True)
    opener = laptop.get_by_role("textbox", name="Join a #room or talk to @someone")
    await opener.fill("#games")
    await opener.press("Enter")
    await expect(laptop.get_by_role("heading", name="#games")).to_be_visible()
    lists = laptop.get_by_role("list", name="Conversations")
    await lists.get_by_role("button", name="#lobby").click()
    phone_context, phone, received = await second_browser(browser, web)
    try:
        bob = await Peer.connect(web.port)
        peers.append(bob)
        await bob.hello("bob")
        await bob.send(type="join", room="games", ref="j")
        await bob.recv_type("ok")
        await bob.send(type="dm", to="alice", body="one", cid="b-1")
        phones = phone.get_by_role("list", name="Conversations")
        for side in (lists, phones):
            await expect(side.get_by_role("button", name="@bob, 1 unread")).to_be_visible()

        # Read on the laptop: the phone's badge clears.
        await lists.get_by_role("button", name="@bob, 1 unread").click()
        await expect(message(laptop, "one")).to_be_visible()
        await expect(phones.get_by_role("button", name="@bob", exact=True)).to_be_visible()
        await expect(phone).to_have_title("chinwag")

        # Away from the laptop: what the phone reads meanwhile is not unread at the next login.
        await laptop.get_by_role("button", name="Log out").click()
        await bob.send(type="dm", to="alice", body="two", cid="b-2")
        await bob.send(type="dm", to="alice", body="three", cid="b-3")
        await bob.send(type="say", room="games", body="@alice game on", cid="b-4")
        await expect(phones.get_by_role("button", name="@bob, 2 unread")).to_be_visible()
        await expect(phones.get_by_role("button", name="#games, 1 unread")).to_be_visible()

        def reads() -> int:
            return sum('"ref":"read"' in f.replace(" ", "") for f in received)

        answered = reads()
        await phones.get_by_role("button", name="@bob, 2 unread").click()
        await expect(message(phone, "three")).to_be_visible()
        await expect(phones.get_by_role("button", name="@bob", exact=True)).to_be_visible()
        # The phone's `read` goes half a second after showing; its answer is an `ok`.
        async with asyncio.timeout(UI_TIMEOUT_MS / 1000):
            while reads() == answered:
                await asyncio.sleep(0.05)
        await log_in(laptop, "alice", PASSWORD)
        await expect(lists.get_by_role("button", name="#games, 1 unread")).to_be_visible()
        await expect(lists.get_by_role("button", name="@bob", exact=True)).to_be_visible()
        await expect(laptop).to_have_title("(1) chinwag")
        summary = laptop.get_by_role("status").filter(has_text="While you were away")
        await expect(summary).to_contain_text("1 mentions you.")
        assert laptop.errors == [] and phone.errors == []  # type: ignore[attr-defined]
    finally:
        await phone_context.close()


async def test_dm_ticks_go_sent_delivered_read_when_both_turn_receipts_on(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    await bob.send(type="register", password="bob's password", ref="r")
    await bob.recv_type("ok")
    await bob.send(type="receipts", on=True, ref="on")
    await bob.recv_type("ok")
    page = await open_client(context, web)
    await log_in(page, "alice", PASSWORD, register=True)
    opener = page.get_by_role("textbox", name="Join a #room or talk to @someone")
    await opener.fill("@bob")
    await opener.press("Enter")
    box = page.get_by_role("textbox", name="Message")
    await box.fill("before receipts")
    await box.press("Enter")
    await expect(message(page, "before receipts")).to_be_visible()
    await expect(page.locator("#messages .tick")).to_have_count(0)

    toggle = page.get_by_role("checkbox", name="Read receipts in DMs")
    await toggle.check()
    await box.fill("are you there?")
    await box.press("Enter")
    sent = await bob.recv_type("message")
    while sent["body"] != "are you there?":
        sent = await bob.recv_type("message")
    tick = message(page, "are you there?").locator(".tick")
    await expect(tick).to_have_text("✓ sent")
    await bob.send(type="seen", upto=sent["id"])
    await expect(tick).to_have_text("✓✓ delivered")
    await bob.send(type="read", upto=sent["id"], ref="rd", **{"with": "alice"})
    await expect(tick).to_have_text("✓✓ read")
    # Turned off again: no ticks are shown.
    await toggle.uncheck()
    await expect(page.locator("#messages .tick")).to_have_count(0)
    assert page.errors == []  # type: ignore[attr-defined]
