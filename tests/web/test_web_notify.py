"""Desktop notifications while the tab is hidden: DMs and mentions only, the count in the title.

The browser's own ``Notification`` is kept and observed: an init script records each
(title, body) the page asks it to show, then lets the real constructor run. The page is
made hidden the way a browser reports it, ``document.hidden`` plus a ``visibilitychange``.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Peer
from playwright.async_api import BrowserContext, Page, expect
from support.web import WebServer

from .conftest import UI_TIMEOUT_MS, log_in, open_client

pytestmark = pytest.mark.timeout(120)

OBSERVE = """
(() => {
  const Real = window.Notification;
  window.__shown = [];
  class Observed extends Real {
    constructor(title, options) {
      window.__shown.push({ title: String(title), body: String((options || {}).body ?? "") });
      super(title, options);
    }
  }
  window.Notification = Observed;
  let hidden = false;
  Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
  Object.defineProperty(document, "visibilityState", {
    configurable: true, get: () => (hidden ? "hidden" : "visible"),
  });
  window.__setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();
"""


async def shown(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await page.evaluate("window.__shown")
    return result


async def test_dms_and_mentions_notify_only_while_the_tab_is_hidden(
    web: WebServer, context: BrowserContext, peers: list[Peer]
) -> None:
    await context.grant_permissions(["notifications"], origin=web.url.rstrip("/"))
    await context.add_init_script(OBSERVE)
    bob = await Peer.connect(web.port)
    peers.append(bob)
    await bob.hello("bob")
    page = await open_client(context, web)
    await log_in(page, "alice")
    assert await page.evaluate("Notification.permission") == "granted"

    await page.evaluate("window.__setHidden(true)")
    # Sent in this order over one connection: the plain message arrives first, so
    # had it notified, its notification would be first in the list.
    await bob.send(type="say", room="lobby", body="plain talk, nobody named", cid="b-1")
    await bob.send(type="dm", to="alice", body="<b>psst</b> & alice", cid="b-2")
    await bob.send(type="say", room="lobby", body="@alice look at this", cid="b-3")
    await expect(page).to_have_title("(3) chinwag")
    await page.wait_for_function("window.__shown.length >= 2", timeout=UI_TIMEOUT_MS)
    assert await shown(page) == [
        {"title": "bob (direct message)", "body": "<b>psst</b> & alice"},
        {"title": "bob in #lobby", "body": "@alice look at this"},
    ]

    # Visible again: the open room counts as read, the DM stays unread, nothing notifies.
    await page.evaluate("window.__setHidden(false)")
    await expect(page).to_have_title("(1) chinwag")
    await bob.send(type="dm", to="alice", body="still there?", cid="b-4")
    await bob.send(type="say", room="lobby", body="@alice back now?", cid="b-5")
    messages = page.get_by_role("log", name="Messages")
    await expect(messages.get_by_text("@alice back now?")).to_be_visible()
    await expect(page).to_have_title("(2) chinwag")
    assert len(await shown(page)) == 2
    assert page.errors == []  # type: ignore[attr-defined]
