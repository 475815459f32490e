"""Issue 15 in the web client: a jump far back loads a page around its message (and a
gap to fill), and a new browser shows stored DM receipts and the true receipts setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, expect
from support.web import WebServer

from .conftest import log_in, message, open_client

pytestmark = pytest.mark.timeout(120)


async def test_a_jump_far_back_loads_a_page_around_the_message_and_the_gap_fills_on_demand(
    tmp_path: Path, context: BrowserContext
) -> None:
    web = WebServer(tmp_path / "server", {"rate_burst": 400})
    web.start()
    try:
        bob = await Peer.connect(web.port)
        await bob.hello("bob")
        await bob.send(type="say", room="lobby", body="far back", cid="b-0")
        original = (await bob.recv_type("ack"))["id"]
        for i in range(300):  # six pages of 50 after it
            await bob.send(type="say", room="lobby", body=f"filler {i}", cid=f"f-{i}")
            await bob.recv_type("ack")
        await bob.send(type="say", room="lobby", body="about that", cid="b-1", reply_to=original)
        await bob.recv_type("ack")
        await bob.close()

        page = await open_client(context, web)
        sent: list[str] = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda data: sent.append(str(data))))
        await log_in(page, "alice")
        await message(page, "about that").locator(".quote").click()
        first = page.locator(f'li.message[data-id="{original}"]')
        await expect(first).to_be_focused()
        await expect(first.locator(".body")).to_have_text("far back")
        await expect(message(page, "filler 24")).to_be_visible()  # the page after it
        histories = [f for f in sent if '"history"' in f]
        assert len(histories) <= 3, "the first page, then one page each side of the message"
        shown = page.get_by_role("log", name="Messages").locator("li.message")
        assert await shown.count() < 150, "not every page between the newest and it"
        gap = page.get_by_role("button", name="Load the messages after this one")
        await expect(gap).to_have_count(1)
        for _ in range(8):  # 250 messages at 50 a page close the gap
            if await gap.count() == 0:
                break
            before = await shown.count()
            await gap.click()
            await expect(shown).not_to_have_count(before)  # the next page came
        await expect(gap).to_have_count(0)
        await expect(shown).to_have_count(302)
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        web.kill()


async def test_a_new_browser_shows_stored_dm_ticks_and_the_accounts_receipts_setting(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    accounts = {}
    for nick in ("alice", "bob"):
        peer = await Peer.connect(web.port)
        peers.append(peer)
        await peer.hello(nick)
        await peer.send(type="register", password=f"{nick}'s password", ref="r")
        await peer.recv_type("ok")
        await peer.send(type="receipts", on=True, ref="on")
        await peer.recv_type("ok")
        accounts[nick] = peer
    alice, bob = accounts["alice"], accounts["bob"]
    for body in ("read this", "only got this"):
        await alice.send(type="dm", to="bob", body=body, cid=body)
        got = await bob.recv_type("message")
        if body == "read this":
            await bob.send(type="read", upto=got["id"], ref="rd", **{"with": "alice"})
            await bob.recv_type("ok")
    await bob.send(type="seen", upto=got["id"])
    states = [(await alice.recv_type("receipt"))["state"] for _ in range(2)]
    assert states == ["read", "delivered"]
    await alice.close()

    page = await open_client(context, web)
    await log_in(page, "alice", "alice's password")
    toggle = page.get_by_role("checkbox", name="Read receipts in DMs")
    await expect(toggle).to_be_checked()  # the server's setting, never chosen in this browser
    opener = page.get_by_role("textbox", name="Join a #room or talk to @someone")
    await opener.fill("@bob")
    await opener.press("Enter")
    await expect(message(page, "read this").locator(".tick")).to_have_text("✓✓ read")
    await expect(message(page, "only got this").locator(".tick")).to_have_text("✓✓ delivered")
    # Turned off on another device: this browser follows.
    other = await Peer.connect(web.port)
    peers.append(other)
    await other.hello("alice", password="alice's password", device="phone")
    await other.send(type="receipts", on=False, ref="off")
    await other.recv_type("ok")
    await expect(toggle).not_to_be_checked()
    await expect(page.locator("#messages .tick")).to_have_count(0)
    assert page.errors == []  # type: ignore[attr-defined]
