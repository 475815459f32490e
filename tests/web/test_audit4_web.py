"""The web client's side of the audit4 fixes, in Chromium against a real server."""

from __future__ import annotations

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


async def test_a_guest_owner_making_its_room_private_is_told_to_register_and_nothing_changes(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
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
    await expect(dialog.get_by_role("alert")).to_have_text(
        "Only an account can do that: register your nick first"
        " (what a guest sets would outlast it)."
    )
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    assert (await reply(bob, "j", type="join", room="games"))["type"] == "ok"
    info = await bob.recv_type("room_info")
    assert (info["private"], info["announce"]) == (False, False)
