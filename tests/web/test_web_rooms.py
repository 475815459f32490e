"""The room list: rooms and online counts, joined from a dialog by keyboard at phone width."""

from __future__ import annotations

import re

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, expect
from support.web import WebServer

from .conftest import log_in, open_client

pytestmark = pytest.mark.timeout(120)


async def test_the_room_list_shows_online_counts_and_joins_by_keyboard_at_phone_width(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    for room in ("games", "music"):
        await bob.send(type="join", room=room, ref=room)
        await bob.recv_type("ok")

    page = await open_client(context, web)
    await page.set_viewport_size({"width": 360, "height": 640})
    await log_in(page, "alice")
    await page.get_by_role("button", name="Menu").click()
    await page.get_by_role("button", name="Browse rooms").click()

    dialog = page.get_by_role("dialog", name="Rooms")
    await expect(dialog).to_be_visible()
    rooms = dialog.get_by_role("list", name="Room list")
    buttons = rooms.get_by_role("button")
    await expect(buttons).to_have_count(3)
    await expect(buttons.nth(0)).to_have_text(re.compile(r"^#games\s*1 online$"))
    await expect(buttons.nth(1)).to_have_text(re.compile(r"^#lobby\s*2 online, joined$"))
    await expect(buttons.nth(2)).to_have_text(re.compile(r"^#music\s*1 online$"))
    box = await dialog.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360  # fits the phone

    # Keyboard only: the first room has the focus; Tab moves on, Enter joins.
    await expect(buttons.nth(0)).to_be_focused()
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(buttons.nth(2)).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_role("heading", name="#music")).to_be_visible()
    seen = await bob.recv_type("presence")
    while (seen["room"], seen["nick"], seen["event"]) != ("music", "alice", "join"):
        seen = await bob.recv_type("presence")

    # The count follows: reopened, #music has two people online; Escape closes it.
    await page.get_by_role("button", name="Menu").click()
    await page.get_by_role("button", name="Browse rooms").click()
    await expect(buttons.nth(2)).to_have_text(re.compile(r"^#music\s*2 online, joined$"))
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_role("textbox", name="Message")).to_be_focused()
    assert page.errors == []  # type: ignore[attr-defined]
