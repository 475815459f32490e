"""DNS rebinding in Chromium: a name that leads to the server is refused unless it is its own.

Chromium's ``--host-resolver-rules`` makes ``rebind.test`` and ``chat.test``
resolve to 127.0.0.1, as an attacker's DNS (or the operator's) would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from support.web import WebServer

from .conftest import FLAGS, UI_TIMEOUT_MS, log_in

pytestmark = pytest.mark.timeout(120)

RULES = "--host-resolver-rules=MAP rebind.test 127.0.0.1, MAP chat.test 127.0.0.1"


@pytest.fixture
async def resolving(chromium: Path) -> AsyncIterator[Browser]:
    """Chromium in which rebind.test and chat.test are names of 127.0.0.1."""
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(chromium), args=[*FLAGS, RULES])
        try:
            yield b
        finally:
            await b.close()


async def _page(browser: Browser) -> Page:
    context = await browser.new_context()
    context.set_default_timeout(UI_TIMEOUT_MS)
    return await context.new_page()


async def test_a_rebound_name_gets_the_refusal_and_localhost_gets_the_client(
    tmp_path: Path, resolving: Browser
) -> None:
    srv = WebServer(tmp_path / "s").start()
    try:
        page = await _page(resolving)
        answer = await page.goto(f"http://rebind.test:{srv.http_port}/")
        assert answer is not None and answer.status == 421
        await expect(page.locator("body")).to_contain_text("adds it to the web_hosts setting")
        await expect(page.get_by_role("button", name="Connect")).to_have_count(0)
        # The README's quick start: the same server by localhost, in the same browser.
        await page.goto(f"http://localhost:{srv.http_port}/")
        await log_in(page, "alice")
    finally:
        srv.kill()


async def test_a_name_listed_in_web_hosts_gets_the_client_and_its_websocket(
    tmp_path: Path, resolving: Browser
) -> None:
    srv = WebServer(tmp_path / "s", {"web_hosts": "chat.test"}).start()
    try:
        page = await _page(resolving)
        answer = await page.goto(f"http://chat.test:{srv.http_port}/")
        assert answer is not None and answer.status == 200
        await log_in(page, "bob")  # the page's /ws, by the same name, is answered too
    finally:
        srv.kill()
