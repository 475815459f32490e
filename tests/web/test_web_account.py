"""The account from the chat view: a guest registers its nick, an account changes its password."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, Locator, Page, expect
from support.cli import chinwag
from support.web import WebServer

from .conftest import log_in, open_client

pytestmark = pytest.mark.timeout(120)


async def _refused(web: WebServer, nick: str, **hello: str) -> str:
    """The error code a TCP login as ``nick`` gets (``""`` when it gets in)."""
    peer = await Peer.connect(web.port)
    try:
        await peer.send(type="hello", proto=1, nick=nick, **hello)
        reply = await peer.recv()
        return "" if reply["type"] == "welcome" else str(reply["code"])
    finally:
        await peer.close()


def _status(page: Page, text: str) -> Locator:
    """The status line when it reads exactly ``text``."""
    return page.get_by_role("status").filter(has_text=re.compile(f"^{re.escape(text)}$"))


async def test_a_guest_registers_its_nick_and_the_page_shows_an_account(
    tmp_path: Path, context: BrowserContext
) -> None:
    web = WebServer(tmp_path / "server")
    web.settings["min_password"] = 12
    web.start()
    try:
        page = await open_client(context, web)
        await log_in(page, "alice")
        members = page.get_by_role("list", name="Members")
        await expect(members.get_by_role("button", name="alice (guest)")).to_be_visible()
        await page.get_by_role("button", name="Register this nick").click()
        dialog = page.get_by_role("dialog", name="Register this nick")
        await expect(dialog).to_be_visible()
        password = dialog.get_by_label("Choose a password")
        await expect(password).to_be_focused()

        # Too short for the page, then too short for this server: plain words, nothing changes.
        await password.fill("short")
        await password.press("Enter")
        alert = dialog.get_by_role("alert")
        await expect(alert).to_have_text("Too short: a password needs at least 8 characters.")
        await password.fill("ten chars!")
        await password.press("Enter")
        await expect(alert).to_have_text("Too short: passwords need at least 12 characters.")
        await expect(page.get_by_role("status").first).to_have_text("Connected as alice (guest)")

        await password.fill("a long enough password")
        await password.press("Enter")
        await expect(dialog).to_be_hidden()
        await expect(_status(page, "Connected as alice")).to_be_visible()
        messages = page.get_by_role("log", name="Messages")
        await expect(messages.get_by_text("“alice” is now registered")).to_be_visible()
        await expect(members.get_by_role("button", name="alice", exact=True)).to_be_visible()
        await expect(page.get_by_role("button", name="Change password")).to_be_visible()
        await expect(page.get_by_role("textbox", name="Message")).to_be_focused()

        # The account is real: the nick now needs its password, and that password works.
        await page.get_by_role("button", name="Log out").click()
        assert await _refused(web, "alice") == "password_required"
        await log_in(page, "alice", "a long enough password")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        web.kill()


async def test_registering_on_an_invite_only_server_asks_for_the_invite_link(
    tmp_path: Path, context: BrowserContext
) -> None:
    web = WebServer(tmp_path / "server")
    web.settings["registration"] = "invite"
    web.start()
    try:
        page = await open_client(context, web)
        await log_in(page, "bob")
        await page.get_by_role("button", name="Register this nick").click()
        dialog = page.get_by_role("dialog", name="Register this nick")
        await dialog.get_by_label("Choose a password").fill("a long password")
        await dialog.get_by_role("button", name="Register").click()
        await expect(dialog.get_by_role("alert")).to_have_text(
            "This server needs an invite to register: paste the invite code or link,"
            " or ask its admin for one."
        )
        assert await _refused(web, "bob2") == ""  # guests still get in
        await expect(page.get_by_role("status").first).to_have_text("Connected as bob (guest)")

        made = chinwag(
            "invite", "--data", str(web.data), "--plain", "--host", "127.0.0.1",
            "--port", str(web.port), "--http-port", str(web.http_port),
        )  # fmt: skip
        link = re.search(r"http://\S+#invite=\S+", made.stdout)
        assert link, made.stdout + made.stderr
        await dialog.get_by_label("Invite code or link").fill(link.group(0))
        await dialog.get_by_role("button", name="Register").click()
        await expect(dialog).to_be_hidden()
        await expect(_status(page, "Connected as bob")).to_be_visible()
        await page.get_by_role("button", name="Log out").click()
        assert await _refused(web, "bob") == "password_required"
    finally:
        web.kill()


async def test_an_account_changes_its_password_and_a_wrong_one_changes_nothing(
    web: WebServer, context: BrowserContext
) -> None:
    page = await open_client(context, web)
    await log_in(page, "carol", "first password", register=True)
    await page.get_by_role("button", name="Change password").click()
    dialog = page.get_by_role("dialog", name="Change password")
    current, new = dialog.get_by_label("Current password"), dialog.get_by_label("New password")
    await expect(current).to_be_focused()
    alert = dialog.get_by_role("alert")

    await current.fill("not my password")
    await new.fill("second password")
    await new.press("Enter")
    await expect(alert).to_have_text(
        "The current password is wrong, so nothing changed. Type it again."
    )
    await expect(current).to_be_focused()
    await current.fill("first password")
    await new.fill("short")
    await new.press("Enter")
    await expect(alert).to_have_text("Too short: a new password needs at least 8 characters.")

    await new.fill("second password")
    await new.press("Enter")
    await expect(dialog).to_be_hidden()
    messages = page.get_by_role("log", name="Messages")
    await expect(messages.get_by_text("Password changed")).to_be_visible()

    await page.get_by_role("button", name="Log out").click()
    assert await _refused(web, "carol", password="first password") == "bad_password"
    await log_in(page, "carol", "second password")
    assert page.errors == []  # type: ignore[attr-defined]
