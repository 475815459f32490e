"""The web client's side of the audit4 fixes, in Chromium against a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, expect
from support.web import WebServer

from .conftest import log_in, open_client

pytestmark = pytest.mark.timeout(180)


async def reply(peer: Peer, ref: str, **frame: Any) -> dict[str, Any]:
    await peer.send(ref=ref, **frame)
    while (got := await peer.recv()).get("ref") != ref:
        pass
    return got


async def test_a_guest_owners_private_room_opens_again_when_its_session_ends(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    """ircroles (§12.6): a guest owner makes its room private from the web client; what it
    set ends with its session, so the room is open again once its page is closed."""
    page = await open_client(context, web)
    await log_in(page, "alice")  # a guest
    opener = page.get_by_role("textbox", name="Join a #room or talk to @someone")
    await opener.fill("#games")
    await opener.press("Enter")
    await expect(page.get_by_role("heading", name="#games")).to_be_visible()
    await page.get_by_role("button", name="Room settings").click()
    dialog = page.get_by_role("dialog", name="#games settings")
    await dialog.get_by_label("Private", exact=False).check()
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_label("Room badges").get_by_text("private")).to_be_visible()
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    refused = await reply(bob, "j", type="join", room="games")
    assert (refused["code"], refused["reason"]) == ("forbidden", "private")
    await page.close()  # alice's session ends
    for attempt in range(100):
        joined = await reply(bob, f"j{attempt}", type="join", room="games")
        if joined["type"] == "ok":
            break
        await asyncio.sleep(0.05)
    info = await bob.recv_type("room_info")
    assert (info["private"], info["announce"]) == (False, False)
