"""Version 1.1 in the web client: edit, delete, react and reply, in a real browser.

Each test drives the page the way a person does (the hover toolbar, the keyboard) and
checks both what the page shows and what a TCP peer in the same conversation receives.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Peer
from playwright.async_api import Browser, BrowserContext, Page, expect
from support.web import WebServer

from .conftest import UI_TIMEOUT_MS, log_in, message, message_from, next_event, open_client

pytestmark = pytest.mark.timeout(120)


async def bob_and_alice(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> tuple[Page, Peer]:
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    page = await open_client(context, web)
    await log_in(page, "alice")
    return page, bob


async def test_edit_in_place_escape_cancels_and_delete_shows_message_deleted(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page, bob = await bob_and_alice(web, context, peers)
    box = page.get_by_role("textbox", name="Message")
    await box.fill("first draft")
    await box.press("Enter")
    sent = await message_from(bob, "alice")

    mine = message(page, "first draft")
    await mine.hover()
    await mine.get_by_role("button", name="Edit", exact=True).click()
    editor = page.get_by_role("textbox", name="Edit message")
    await expect(editor).to_be_focused()
    await expect(editor).to_have_value("first draft")
    await editor.fill("second draft")
    await editor.press("Enter")
    edited = await next_event(bob, "edited", sent["id"])
    assert (edited["from"], edited["body"]) == ("alice", "second draft")
    await expect(message(page, "second draft").locator(".edited")).to_have_text("(edited)")
    await expect(editor).to_have_count(0)
    await expect(box).to_be_focused()

    # Up in the empty box edits my last message; Escape leaves it as it was.
    await box.press("ArrowUp")
    await expect(editor).to_have_value("second draft")
    await editor.fill("never saved")
    await editor.press("Escape")
    await expect(editor).to_have_count(0)
    await expect(message(page, "second draft")).to_have_count(1)
    await expect(page.get_by_role("log", name="Messages").get_by_text("never saved")).to_have_count(
        0
    )

    # Delete asks first, then the message shows as deleted here and for bob.
    await message(page, "second draft").hover()
    await message(page, "second draft").get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete this message?")
    await expect(dialog).to_contain_text("second draft")
    await dialog.get_by_role("button", name="Delete").click()
    deleted = await next_event(bob, "deleted", sent["id"])
    assert deleted["by"] == "alice"
    item = page.locator(f'li.message[data-id="{sent["id"]}"]')
    await expect(item).to_contain_text("message deleted")
    await expect(item).not_to_contain_text("second draft")
    await expect(item.get_by_role("button")).to_have_count(0)
    # Escape did not send "never saved": the only edit bob got was the first one.
    assert [f for f in await bob.quiet() if f.get("type") == "edited"] == []
    assert page.errors == []  # type: ignore[attr-defined]


async def test_someone_elses_edits_and_deletions_show_and_their_messages_offer_no_edit(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page, bob = await bob_and_alice(web, context, peers)
    await bob.send(type="say", room="lobby", body="typo heer", cid="b-1")
    first = await bob.recv_type("ack")
    await bob.send(type="say", room="lobby", body="regrettable", cid="b-2")
    second = await bob.recv_type("ack")
    await expect(message(page, "regrettable")).to_be_visible()
    await bob.send(type="edit", id=first["id"], body="typo here", cid="b-3")
    await bob.send(type="delete", id=second["id"], cid="b-4")
    await expect(message(page, "typo here").locator(".edited")).to_have_text("(edited)")
    gone = page.locator(f'li.message[data-id="{second["id"]}"]')
    await expect(gone).to_contain_text("message deleted")
    await expect(gone).not_to_contain_text("regrettable")

    theirs = message(page, "typo here")
    await theirs.hover()
    toolbar = theirs.get_by_role("toolbar")
    await expect(toolbar.get_by_role("button")).to_have_text(["Reply", "React"])
    assert page.errors == []  # type: ignore[attr-defined]


async def test_the_toolbar_is_reachable_by_keyboard(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page, bob = await bob_and_alice(web, context, peers)
    box = page.get_by_role("textbox", name="Message")
    await box.fill("keyboard only")
    await box.press("Enter")
    sent = await message_from(bob, "alice")
    edit = message(page, "keyboard only").get_by_role("button", name="Edit", exact=True)
    await page.get_by_role("log", name="Messages").locator("button").first.focus()
    for _ in range(10):
        if await edit.evaluate("b => b === document.activeElement"):
            break
        await page.keyboard.press("Tab")
    await expect(edit).to_be_focused()
    assert await edit.evaluate("b => getComputedStyle(b.parentElement).opacity") == "1"
    await page.keyboard.press("Enter")
    editor = page.get_by_role("textbox", name="Edit message")
    await editor.fill("keyboard edit")
    await editor.press("Enter")
    edited = await next_event(bob, "edited", sent["id"])
    assert edited["body"] == "keyboard edit"
    assert page.errors == []  # type: ignore[attr-defined]


async def test_an_edit_and_a_reaction_made_while_the_server_is_down_apply_once(
    web: WebServer, context: BrowserContext
) -> None:
    page = await open_client(context, web)
    await log_in(page, "alice", "correct horse", register=True)
    box = page.get_by_role("textbox", name="Message")
    await box.fill("before the outage")
    await box.press("Enter")
    mine = message(page, "before the outage")
    await expect(mine).to_have_count(1)
    await expect(page.locator("li.pending")).to_have_count(0)
    web.kill()
    await expect(page.get_by_role("status").filter(has_text="reconnecting")).to_be_visible()
    await box.press("ArrowUp")
    editor = page.get_by_role("textbox", name="Edit message")
    await editor.fill("after the outage")
    await editor.press("Enter")
    await mine.hover()
    await mine.get_by_role("button", name="React", exact=True).click()
    await mine.get_by_role("button", name="React with 🎉").click()
    await expect(page.get_by_role("status").filter(has_text="2 waiting to send")).to_be_visible()

    web.start()
    await expect(page.get_by_role("status").filter(has_text="Connected as alice")).to_be_visible(
        timeout=30_000
    )
    edited = message(page, "after the outage")
    await expect(edited.locator(".edited")).to_have_text("(edited)")
    await expect(edited.locator(".reactions").get_by_role("button")).to_have_text(["🎉 1"])
    carol = await Peer.connect(web.port)
    try:
        await carol.hello("carol")
        await carol.send(type="history", room="lobby", limit=10, ref="h")
        (stored,) = (await carol.recv_type("history"))["messages"]
        assert stored["body"] == "after the outage"
        assert stored["reactions"] == [{"emoji": "🎉", "nicks": ["alice"]}]
    finally:
        await carol.close()
    assert await page.evaluate("localStorage.getItem('chinwag.outbox')") == "[]"


async def test_a_refused_edit_says_why_in_plain_words_and_changes_nothing(
    tmp_path: Path, context: BrowserContext, peers: list[Peer]
) -> None:
    web = WebServer(tmp_path / "server", {"edit_window": 0.001})
    web.start()
    try:
        page, bob = await bob_and_alice(web, context, peers)
        box = page.get_by_role("textbox", name="Message")
        await box.fill("set in stone")
        await box.press("Enter")
        sent = await message_from(bob, "alice")
        await box.press("ArrowUp")
        editor = page.get_by_role("textbox", name="Edit message")
        await editor.fill("changed my mind")
        await editor.press("Enter")
        notice = page.get_by_role("log", name="Messages").locator("li.notice").last
        await expect(notice).to_have_text(
            "Too late to edit: that message is too old. Send a new one instead."
        )
        await expect(message(page, "set in stone")).to_have_count(1)
        await expect(message(page, "set in stone").locator(".edited")).to_have_count(0)
        assert [f for f in await bob.quiet() if f.get("target") == sent["id"]] == []
        assert await page.evaluate("localStorage.getItem('chinwag.outbox')") == "[]"
    finally:
        web.kill()


async def test_at_phone_width_a_tap_on_a_message_shows_its_actions(
    web: WebServer, browser: Browser, peers: list[Peer]
) -> None:
    context = await browser.new_context(viewport={"width": 360, "height": 740}, has_touch=True)
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        page, bob = await bob_and_alice(web, context, peers)
        await bob.send(type="say", room="lobby", body="tap me", cid="b-1")
        item = message(page, "tap me")
        toolbar = item.get_by_role("toolbar")
        assert await toolbar.evaluate("e => getComputedStyle(e).opacity") == "0"
        await item.locator(".body").tap()
        await expect(toolbar).to_have_css("opacity", "1")
        reply = toolbar.get_by_role("button", name="Reply")
        box = await reply.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
        await reply.tap()
        await expect(page.get_by_text("Replying to bob: tap me")).to_be_visible()
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        await context.close()


async def test_a_right_click_on_a_message_opens_its_actions_but_not_on_a_link(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page, bob = await bob_and_alice(web, context, peers)
    await bob.send(type="say", room="lobby", body="see https://example.org/x", cid="b-1")
    item = message(page, "see https://example.org/x")
    await item.locator(".body").click(button="right", position={"x": 5, "y": 5})
    reply = item.get_by_role("button", name="Reply")
    await expect(reply).to_be_focused()
    await expect(item.get_by_role("toolbar")).to_have_css("opacity", "1")
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("Replying to bob: see https://example.org/x")).to_be_visible()
    # On the link the browser's own menu stays (the page does not take the event).
    taken = await item.get_by_role("link").evaluate(
        """a => { const ev = new MouseEvent("contextmenu", {bubbles: true, cancelable: true});
                  a.dispatchEvent(ev); return ev.defaultPrevented; }"""
    )
    assert taken is False
    assert page.errors == []  # type: ignore[attr-defined]
