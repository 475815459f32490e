"""The search box: results of what I may see, as text; a click jumps to the message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, expect
from support.web import WebServer

from .conftest import log_in, open_client

pytestmark = pytest.mark.timeout(120)

HOSTILE = '<img src=x onerror="window.__xss = 1"> cafe <b>bold?</b>'


@pytest.fixture
def busy_web(tmp_path: Path) -> Iterator[WebServer]:
    """A server where bob may post 80 messages at once."""
    srv = WebServer(tmp_path / "server", {"rate_burst": 100})
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


async def test_search_finds_what_i_may_see_and_jumps_to_it(
    busy_web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    web = busy_web
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    await bob.send(type="say", room="lobby", body="the Café is open", cid="b-0")
    old = (await bob.recv_type("ack"))["id"]
    await bob.send(type="say", room="lobby", body=HOSTILE, cid="b-h")
    await bob.recv_type("ack")
    for i in range(70):  # the first page the client loads does not reach it
        await bob.send(type="say", room="lobby", body=f"filler {i}", cid=f"f-{i}")
        await bob.recv_type("ack")
    await bob.send(type="join", room="hidden", ref="j")
    await bob.recv_type("ok")
    await bob.send(type="say", room="hidden", body="cafe elsewhere", cid="b-x")
    await bob.recv_type("ack")

    page = await open_client(context, web)
    await log_in(page, "alice")
    await bob.send(type="dm", to="alice", body="secret cafe plans", cid="b-d")
    dm = (await bob.recv_type("ack"))["id"]
    conversations = page.get_by_role("list", name="Conversations")
    await expect(conversations.get_by_role("button", name="@bob, 1 unread")).to_be_visible()

    search = page.get_by_role("searchbox", name="Search messages")
    await search.fill("CAFE")
    await search.press("Enter")
    dialog = page.get_by_role("dialog", name="Search results")
    results = dialog.get_by_role("list", name="Results").get_by_role("button")
    await expect(results).to_have_count(3)
    await expect(dialog.get_by_role("status")).to_have_text("3 messages with “CAFE”, newest first.")
    bodies = await results.locator(".body").all_inner_texts()
    assert bodies == ["secret cafe plans", HOSTILE, "the Café is open"]
    await expect(results.nth(0)).to_contain_text("@bob · bob")
    await expect(results.nth(2)).to_contain_text("#lobby · bob")
    await expect(results.first).to_be_focused()
    assert await dialog.locator("img, b").count() == 0

    await results.nth(2).click()
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_role("heading", name="#lobby")).to_be_visible()
    found = page.locator(f'li.message[data-id="{old}"]')
    await expect(found).to_be_focused()
    await expect(found).to_be_in_viewport()
    await expect(found.locator(".body")).to_have_text("the Café is open")

    await search.fill("plans")
    await search.press("Enter")
    await expect(results).to_have_count(1)
    await results.first.press("Enter")
    await expect(page.get_by_role("heading", name="@bob")).to_be_visible()
    await expect(page.locator(f'li.message[data-id="{dm}"]')).to_be_focused()

    await search.fill("nothingmatches")
    await search.press("Enter")
    await expect(dialog.get_by_role("status")).to_have_text("Nothing found for “nothingmatches”.")
    await expect(results).to_have_count(0)
    await dialog.get_by_role("button", name="Close").click()
    assert await page.evaluate("window.__xss") is None
    assert page.errors == []  # type: ignore[attr-defined]


async def test_older_results_page_on_and_long_bodies_are_clipped_as_text(
    busy_web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    web = busy_web
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    long = "needle " + "y" * 3993
    rtl = "needle \u202egnp.exe"
    for i, body in enumerate([long, rtl] + [f"needle {i}" for i in range(23)]):
        await bob.send(type="say", room="lobby", body=body, cid=f"b-{i}")
        await bob.recv_type("ack")
    page = await open_client(context, web)
    await log_in(page, "alice")
    search = page.get_by_role("searchbox", name="Search messages")
    await search.fill("needle")
    await search.press("Enter")
    dialog = page.get_by_role("dialog", name="Search results")
    results = dialog.get_by_role("list", name="Results").get_by_role("button")
    await expect(results).to_have_count(20)
    await expect(results.first.locator(".body")).to_have_text("needle 22")
    await dialog.get_by_role("button", name="Older results").click()
    await expect(results).to_have_count(25)
    await expect(dialog.get_by_role("button", name="Older results")).to_be_hidden()
    bodies = await results.locator(".body").all_inner_texts()
    assert bodies[-2:] == [rtl, long[:299] + "…"]
    assert (
        await results.last.locator(".body").evaluate("e => getComputedStyle(e).unicodeBidi")
        == "isolate"
    )
    assert page.errors == []  # type: ignore[attr-defined]
