"""Reaction chips and the emoji picker; reply quotes that jump to the message they answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, expect
from support.web import WebServer

from .conftest import log_in, message, message_from, next_event, open_client
from .test_web_render import HOSTILE

pytestmark = pytest.mark.timeout(120)

RTL = "\u202eevil.exe txt.\u202c and the rest"
LONG = "x" * 4000


async def test_reaction_chips_count_show_mine_and_toggle(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    page = await open_client(context, web)
    await log_in(page, "alice")
    await bob.send(type="say", room="lobby", body="react to me", cid="b-1")
    target = (await bob.recv_type("ack"))["id"]

    item = message(page, "react to me")
    await item.hover()
    await item.get_by_role("button", name="React", exact=True).click()
    picker = item.get_by_role("group", name="Pick a reaction")
    await expect(picker.get_by_role("button")).to_have_count(8)
    await expect(picker.get_by_role("button").first).to_be_focused()
    await picker.get_by_role("button", name="React with 👍").click()
    put = await next_event(bob, "reacted", target)
    assert (put["from"], put["emoji"], put["on"]) == ("alice", "👍", True)
    await expect(picker).to_have_count(0)
    thumbs = item.locator(".reactions").get_by_role("button", name="👍 1")
    await expect(thumbs).to_have_attribute("aria-pressed", "true")

    await bob.send(type="react", id=target, emoji="👍", cid="b-2")
    await bob.send(type="react", id=target, emoji="🎉", cid="b-3")
    chips = item.locator(".reactions").get_by_role("button")
    await expect(chips).to_have_text(["👍 2", "🎉 1"])
    await expect(chips.nth(0)).to_have_attribute("aria-pressed", "true")
    await expect(chips.nth(0)).to_have_attribute("title", "alice, bob")
    await expect(chips.nth(1)).to_have_attribute("aria-pressed", "false")

    # Clicking my chip takes my reaction off; bob's stays.
    await chips.nth(0).click()
    off = await next_event(bob, "reacted", target)
    assert (off["from"], off["emoji"], off["on"]) == ("alice", "👍", False)
    await expect(chips).to_have_text(["👍 1", "🎉 1"])
    await expect(chips.nth(0)).to_have_attribute("aria-pressed", "false")
    # Clicking someone else's chip adds mine.
    await chips.nth(1).click()
    party = await next_event(bob, "reacted", target)
    assert (party["emoji"], party["on"]) == ("🎉", True)
    await expect(chips.nth(1)).to_have_text("🎉 2")

    # Escape closes the picker without reacting.
    await item.hover()
    await item.get_by_role("button", name="React", exact=True).click()
    await expect(picker).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(picker).to_have_count(0)
    await expect(item.get_by_role("button", name="React", exact=True)).to_be_focused()
    assert [f for f in await bob.quiet() if f.get("type") == "reacted"] == []
    assert page.errors == []  # type: ignore[attr-defined]


@pytest.fixture
def busy_web(tmp_path: Path) -> Iterator[WebServer]:
    """A server where bob may post 70 messages at once."""
    srv = WebServer(tmp_path / "server", {"rate_burst": 100})
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


async def test_a_reply_carries_reply_to_and_its_quote_jumps_to_an_older_message(
    busy_web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    web = busy_web
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    await bob.send(type="say", room="lobby", body="the original\nsecond line", cid="b-0")
    original = (await bob.recv_type("ack"))["id"]
    for i in range(70):  # more than the first page the client loads
        await bob.send(type="say", room="lobby", body=f"filler {i}", cid=f"f-{i}")
        await bob.recv_type("ack")
    await bob.send(type="say", room="lobby", body="late answer", cid="b-1", reply_to=original)
    await bob.recv_type("ack")

    page = await open_client(context, web)
    await log_in(page, "alice")
    late = message(page, "late answer")
    quote = late.get_by_role("button", name="Reply to an earlier message")
    await expect(quote).to_be_visible()
    await quote.click()
    first = page.locator(f'li.message[data-id="{original}"]')
    await expect(first).to_be_focused()
    await expect(first).to_be_in_viewport()
    # Now loaded, the quote names its sender and first line.
    await expect(late.locator(".quote")).to_have_text("↪ bob: the original")

    await first.hover()
    await first.get_by_role("button", name="Reply", exact=True).click()
    await expect(page.get_by_text("Replying to bob: the original")).to_be_visible()
    box = page.get_by_role("textbox", name="Message")
    await expect(box).to_be_focused()
    await box.fill("my answer")
    await box.press("Enter")
    got = await message_from(bob, "alice")
    assert (got["body"], got["reply_to"]) == ("my answer", original)
    await expect(message(page, "my answer").locator(".quote")).to_have_text("↪ bob: the original")
    await expect(page.get_by_text("Replying to bob")).to_be_hidden()
    assert page.errors == []  # type: ignore[attr-defined]


async def test_hostile_bodies_are_text_in_quotes_and_the_delete_dialog(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    mallory = await Peer.connect(web.port)
    peers.append(mallory)
    await mallory.hello("mallory")
    page = await open_client(context, web)
    await log_in(page, "alice")
    box = page.get_by_role("textbox", name="Message")
    for i, body in enumerate([*HOSTILE, RTL, LONG]):
        shown = body if len(body) <= 120 else body[:119] + "…"
        await mallory.send(type="say", room="lobby", body=body, cid=f"m-{i}")
        target = (await mallory.recv_type("ack"))["id"]
        await mallory.send(type="say", room="lobby", body=f"re {i}", cid=f"r-{i}", reply_to=target)
        quote = message(page, f"re {i}").locator(".quote")
        await expect(quote).to_have_text(f"↪ mallory: {shown}")
        assert await quote.locator(".said").evaluate("e => getComputedStyle(e).unicodeBidi") == (
            "isolate"
        )
        # My own copy of it, in the delete dialog's preview.
        await box.fill(body)
        await box.press("Enter")
        await message_from(mallory, "alice")
        mine = page.locator("li.message.mine").last
        await mine.hover()
        await mine.get_by_role("button", name="Delete").click()
        dialog = page.get_by_role("dialog", name="Delete this message?")
        await expect(dialog.locator(".preview")).to_have_text(shown)
        await dialog.get_by_role("button", name="Cancel").click()
    assert await page.locator("#messages img, #messages script, #messages b, dialog b").count() == 0
    assert await page.evaluate("window.__xss") is None
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_jump_far_back_waits_out_the_command_budget_and_still_arrives(
    tmp_path: Path, context: BrowserContext
) -> None:
    web = WebServer(tmp_path / "server", {"rate_burst": 300})
    web.start()
    try:
        bob = await Peer.connect(web.port)
        await bob.hello("bob")
        await bob.send(type="say", room="lobby", body="far back", cid="b-0")
        original = (await bob.recv_type("ack"))["id"]
        for i in range(260):  # six pages of 50 after it
            await bob.send(type="say", room="lobby", body=f"filler {i}", cid=f"f-{i}")
            await bob.recv_type("ack")
        await bob.send(type="say", room="lobby", body="about that", cid="b-1", reply_to=original)
        await bob.recv_type("ack")
        await bob.close()
        web.kill()
        # Each history page costs a command token: now the budget runs out after a few.
        web.settings.update(rate_burst=3, rate_per_second=2)
        web.start()

        page = await open_client(context, web)
        await log_in(page, "alice")
        await message(page, "about that").locator(".quote").click()
        first = page.locator(f'li.message[data-id="{original}"]')
        await expect(first).to_be_focused()
        await expect(first.locator(".body")).to_have_text("far back")
        notices = page.get_by_role("log", name="Messages").locator("li.notice")
        await expect(notices.filter(has_text="That message")).to_have_count(0)
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        web.kill()
