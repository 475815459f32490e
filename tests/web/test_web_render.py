"""Bodies are text, never HTML; the phone-width layout; dark mode; an invite link; the CSP holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import Peer
from playwright.async_api import Browser, BrowserContext, expect
from support.cli import chinwag
from support.web import WebServer

from .conftest import UI_TIMEOUT_MS, log_in, open_client

pytestmark = pytest.mark.timeout(120)

HOSTILE = [
    '<img src=x onerror="window.__xss = 1">',
    "[click me](javascript:window.__xss=2) javascript:window.__xss=2",
    "</script><script>window.__xss = 3</script>",
    '<a href="javascript:window.__xss=4">a link</a> <b>bold?</b>',
]


async def test_hostile_bodies_render_as_text_and_only_http_links_are_links(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page = await open_client(context, web)
    await log_in(page, "alice")
    mallory = await Peer.connect(web.port)
    peers.append(mallory)
    await mallory.hello("mallory")
    for i, body in enumerate([*HOSTILE, "see https://example.org/a?b=1&c=2, ok"]):
        await mallory.send(type="say", room="lobby", body=body, cid=f"m-{i}")
    messages = page.get_by_role("log", name="Messages")
    await expect(messages.locator("li.message")).to_have_count(len(HOSTILE) + 1)
    bodies = await messages.locator("li.message .body").all_inner_texts()
    assert bodies[: len(HOSTILE)] == HOSTILE
    assert await messages.locator("img, script, b").count() == 0
    links = messages.get_by_role("link")
    await expect(links).to_have_count(1)
    await expect(links).to_have_attribute("href", "https://example.org/a?b=1&c=2")
    await expect(links).to_have_attribute("rel", re.compile(r"\bnoopener\b"))
    await links.click(modifiers=["Shift"], trial=True)  # a real, clickable link
    assert await page.evaluate("window.__xss") is None
    assert page.errors == []  # type: ignore[attr-defined]


async def test_the_phone_width_layout_fits_360_px_and_opens_the_lists_over_the_chat(
    web: WebServer, browser: Browser
) -> None:
    context = await browser.new_context(viewport={"width": 360, "height": 740})
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        page = await open_client(context, web)
        await log_in(page, "alice")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360
        for control in (
            page.get_by_role("textbox", name="Message"),
            page.get_by_role("button", name="Send"),
        ):
            box = await control.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
        conversations = page.get_by_role("list", name="Conversations")
        await expect(conversations).to_be_hidden()
        await page.get_by_role("button", name="Menu").click()
        await expect(conversations).to_be_visible()
        await conversations.get_by_role("button", name="#lobby").click()
        await expect(conversations).to_be_hidden()
        await expect(page.get_by_role("textbox", name="Message")).to_be_focused()
    finally:
        await context.close()


def _luminance(css_color: str) -> float:
    r, g, b = (int(x) for x in re.findall(r"\d+", css_color)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_theme_follows_the_system(web: WebServer, browser: Browser, scheme: str) -> None:
    context = await browser.new_context(color_scheme=scheme)  # type: ignore[arg-type]
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        page = await open_client(context, web)
        await log_in(page, "alice")
        colors = await page.evaluate(
            "[getComputedStyle(document.body).backgroundColor,"
            " getComputedStyle(document.body).color]"
        )
        background, text = (_luminance(c) for c in colors)
        if scheme == "dark":
            assert background < 0.2 and text > 0.7
        else:
            assert background > 0.9 and text < 0.2
    finally:
        await context.close()


async def test_an_invite_link_opens_the_client_ready_to_register(
    tmp_path: Path, browser: Browser
) -> None:
    web = WebServer(tmp_path / "server")
    web.settings["registration"] = "invite"
    web.start()
    context = await browser.new_context()
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        made = chinwag(
            "invite", "--data", str(web.data), "--plain", "--host", "127.0.0.1",
            "--port", str(web.port),
        )  # fmt: skip
        token = re.search(r"[?&]t=([a-z2-7]+)", made.stdout)
        assert token, made.stdout + made.stderr
        page = await context.new_page()
        await page.goto(f"{web.url}#invite={token.group(1)}")
        await expect(page.get_by_label("Register a new account")).to_be_checked()
        await log_in(page, "newbie", "a long password")
        await expect(page).to_have_url(web.url)  # the used token leaves the address bar
        peer = await Peer.connect(web.port)
        try:
            await peer.send(type="hello", proto=1, nick="newbie")
            refused = await peer.recv()
            assert refused["code"] == "password_required"  # the account exists
        finally:
            await peer.close()
    finally:
        await context.close()
        web.kill()
