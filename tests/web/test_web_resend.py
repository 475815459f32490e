"""What is typed while the server is down waits, shown pending, and is delivered once."""

from __future__ import annotations

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, expect
from support.web import WebServer

from .conftest import log_in, open_client

pytestmark = pytest.mark.timeout(120)


async def _lobby_bodies(web: WebServer, nick: str) -> list[str]:
    peer = await Peer.connect(web.port)
    try:
        await peer.hello(nick)
        await peer.send(type="history", room="lobby", limit=200, ref="h")
        page = await peer.recv_type("history")
        return [m["body"] for m in page["messages"]]
    finally:
        await peer.close()


async def test_kill_9_while_typing_the_message_waits_pending_and_is_delivered_once(
    web: WebServer, context: BrowserContext
) -> None:
    page = await open_client(context, web)
    await log_in(page, "alice", "correct horse", register=True)
    status = page.get_by_role("status").filter(has_text="reconnecting")
    box = page.get_by_role("textbox", name="Message")
    await box.fill("typed while the server")
    web.kill()
    await expect(status).to_be_visible()
    await box.press_sequentially(" was down")
    await box.press("Enter")
    pending = page.get_by_role("log", name="Messages").locator("li.pending")
    await expect(pending).to_have_count(1)
    await expect(pending).to_contain_text("typed while the server was down")
    await expect(pending).to_contain_text("pending")

    web.start()
    await expect(page.get_by_role("status").filter(has_text="Connected as alice")).to_be_visible(
        timeout=30_000
    )
    await expect(pending).to_have_count(0)
    sent = page.get_by_role("log", name="Messages").locator("li.message")
    await expect(sent.filter(has_text="typed while the server was down")).to_have_count(1)
    assert (await _lobby_bodies(web, "carol")).count("typed while the server was down") == 1


async def test_a_queued_message_survives_a_reload_and_is_sent_after_logging_in_again(
    web: WebServer, context: BrowserContext
) -> None:
    page = await open_client(context, web)
    await log_in(page, "alice", "correct horse", register=True)
    web.kill()
    await expect(page.get_by_role("status").filter(has_text="reconnecting")).to_be_visible()
    await page.get_by_role("textbox", name="Message").fill("kept across a reload")
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_role("status").filter(has_text="1 waiting to send")).to_be_visible()

    web.start()
    await page.reload()
    await expect(page.get_by_label("Nick", exact=True)).to_have_value("alice")
    await log_in(page, "alice", "correct horse")
    messages = page.get_by_role("log", name="Messages")
    await expect(messages.locator("li.message", has_text="kept across a reload")).to_have_count(1)
    await expect(messages.locator("li.pending")).to_have_count(0)
    assert (await _lobby_bodies(web, "carol")).count("kept across a reload") == 1
    # Sent once: a second reload and login sends nothing again.
    await page.reload()
    await log_in(page, "alice", "correct horse")
    await expect(messages.locator("li.message", has_text="kept across a reload")).to_have_count(1)
    assert (await _lobby_bodies(web, "dave")).count("kept across a reload") == 1


async def test_a_message_refused_for_good_stays_with_the_reason_until_dismissed(
    web: WebServer, context: BrowserContext
) -> None:
    page = await open_client(context, web)
    await log_in(page, "alice")
    box = page.get_by_role("textbox", name="Message")
    await box.fill("/dm nobody are you there?")
    await box.press("Enter")
    failed = page.get_by_role("log", name="Messages").locator("li.failed")
    await expect(failed).to_contain_text("are you there?")
    await expect(failed).to_contain_text("not sent:")
    await expect(page.get_by_role("status").filter(has_text="waiting to send")).to_have_count(0)
    await failed.get_by_role("button", name="Dismiss").click()
    await expect(failed).to_have_count(0)
    outbox = await page.evaluate("localStorage.getItem('chinwag.outbox')")
    assert "are you there?" not in outbox
