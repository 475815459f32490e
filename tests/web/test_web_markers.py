"""The web client in a real browser: the account's read markers at login (issue 15).

What another device read while this page was logged out is not "new since you
were away": ``caught_up.markers`` puts the line after it.
"""

from __future__ import annotations

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, expect
from support.web import WebServer

from .conftest import log_in, open_client

pytestmark = pytest.mark.timeout(120)


async def test_the_away_divider_goes_after_what_another_device_read(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    page = await open_client(context, web)
    await log_in(page, "alice", "correct horse", register=True)
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("button", name="Connect")).to_be_visible()

    phone = await Peer.connect(web.port)
    peers.append(phone)
    await phone.hello("alice", password="correct horse", device="phone")
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    ids = []
    for body in ("read on the phone", "also read there", "not read anywhere"):
        await bob.send(type="say", room="lobby", body=body, ref=body)
        ids.append((await bob.recv_type("ack"))["id"])
    for _ in ids:
        await phone.recv_type("message")
    await phone.send(type="read", room="lobby", upto=ids[1], ref="r")
    assert (await phone.recv_type("ok"))["ref"] == "r"

    await log_in(page, "alice", "correct horse")
    messages = page.get_by_role("log", name="Messages")
    await expect(messages.get_by_text("not read anywhere")).to_be_visible()
    texts = await messages.locator("li").all_inner_texts()
    divider = texts.index("New since you were away")
    assert any("also read there" in t for t in texts[:divider])
    assert [t for t in texts[divider + 1 :] if "read" in t] == [
        t for t in texts if "not read anywhere" in t
    ]
