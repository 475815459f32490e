"""Browser tests of the web client: Debian's chromium and Playwright, a real ``chinwag serve``.

Never a browser download: Playwright is told ``executable_path=/usr/bin/chromium``
(``scripts/test`` installs Debian's package when it runs as root). Without it these
tests skip, except in CI (``CI=true``), where a missing browser fails.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Peer
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    async_playwright,
    expect,
)
from support.web import WebServer

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UI_TIMEOUT_MS = 10_000
"""How long a browser-side wait lasts (a loaded 2-core machine is slow to paint)."""

expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebServer]:
    srv = WebServer(tmp_path / "server")
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium: a skip where it is missing, a failure in CI."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test does)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(chromium), args=FLAGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context()
    ctx.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        await ctx.close()


async def open_client(context: BrowserContext, web: WebServer) -> Page:
    """A new tab on the web client, every page error collected in ``page.errors``."""
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    setattr(page, "errors", errors)  # noqa: B010 - read back by the tests
    await page.goto(web.url)
    return page


async def log_in(page: Page, nick: str, password: str = "", *, register: bool = False) -> None:
    """Log in from the form, keyboard only, and wait for the chat view to be live."""
    await page.get_by_label("Nick", exact=True).fill(nick)
    await page.get_by_label("Password", exact=True).fill(password)
    if register:
        await page.get_by_label("Register a new account", exact=False).check()
    await page.get_by_label("Password", exact=True).press("Enter")
    # "(guest)" goes once the account exists (a registration is answered after the backlog).
    done = f"Connected as {nick}" + ("" if password else " (guest)")
    status = page.get_by_role("status").filter(has_text=re.compile(f"^{re.escape(done)}$"))
    await expect(status).to_be_visible()


async def message_from(peer: Peer, nick: str) -> dict[str, Any]:
    """The next ``message`` frame ``peer`` gets from ``nick`` (others are skipped)."""
    while True:
        frame = await peer.recv_type("message")
        if frame["from"] == nick:
            return frame


def message(page: Page, text: str) -> Locator:
    """The message in the open conversation whose body holds ``text``."""
    messages = page.get_by_role("log", name="Messages")
    return messages.locator("li.message").filter(has=page.locator(".body").filter(has_text=text))


async def next_event(peer: Peer, kind: str, target: int, by: str = "alice") -> dict[str, Any]:
    """The next ``kind`` frame about message ``target`` from ``by`` that ``peer`` gets."""
    while True:
        frame = await peer.recv_type(kind)
        if frame["target"] == target and frame.get("from", frame.get("by")) == by:
            return frame
