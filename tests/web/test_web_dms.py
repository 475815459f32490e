"""An account's DMs from before this login are listed again, their history a click away."""

from __future__ import annotations

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, expect
from support.web import WebServer

from .conftest import log_in, message_from, open_client

pytestmark = pytest.mark.timeout(120)


async def test_an_accounts_dms_come_back_at_the_next_login_with_their_history(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    page = await open_client(context, web)
    await log_in(page, "carol", "carol's password", register=True)
    opener = page.get_by_role("textbox", name="Join a #room or talk to @someone")
    await opener.fill("@bob")
    await opener.press("Enter")
    box = page.get_by_role("textbox", name="Message")
    await box.fill("see you tomorrow")
    await box.press("Enter")
    await message_from(bob, "carol")
    messages = page.get_by_role("log", name="Messages")
    await expect(messages.locator(".pending")).to_have_count(0)

    await page.get_by_role("button", name="Log out").click()
    await log_in(page, "carol", "carol's password")
    # Nothing new came: the server replays nothing, yet the DM is listed.
    await expect(page.get_by_text("While you were away: nothing new.")).to_be_visible()
    conversations = page.get_by_role("list", name="Conversations")
    await conversations.get_by_role("button", name="@bob").click()
    await expect(page.get_by_role("heading", name="@bob")).to_be_visible()
    await expect(messages.get_by_text("see you tomorrow")).to_be_visible()

    # A guest's DMs are not kept: the next holder of a guest nick is someone else.
    await page.get_by_role("button", name="Log out").click()
    await log_in(page, "dave")
    await opener.fill("@bob")
    await opener.press("Enter")
    await expect(conversations.get_by_role("button", name="@bob")).to_be_visible()
    await page.get_by_role("button", name="Log out").click()
    await log_in(page, "dave")
    await expect(conversations.get_by_role("button", name="#lobby")).to_be_visible()
    await expect(conversations.get_by_role("button", name="@bob")).to_have_count(0)
    assert page.errors == []  # type: ignore[attr-defined]
