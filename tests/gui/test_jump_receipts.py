"""Issue 15 in the desktop app, in a real Tk window on Xvfb against a real `chinwag
serve`: a jump far back loads a page around its message and fills the gap on demand;
stored DM ticks and the account's receipts setting come from the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import ServerProcess

from chinwag.client import Message, Receipt
from chinwag.client.gui import GuiApp
from chinwag.client.gui.model import LoadNewer, MessageLine
from chinwag.client.state import Conversation

from .conftest import LoopThread, pump
from .test_message_features import app, chat, click, line_of, shown_line, stored, wait_for
from .test_window import log_in, open_client

__all__ = ["app"]  # the fixture, imported for pytest

ZOO = Conversation.room("zoo")


def message_lines(app: GuiApp) -> list[MessageLine]:
    return [i for i in chat(app).shown_items() if isinstance(i, MessageLine)]


def tick(app: GuiApp, message_id: int) -> str | None:
    """The tick of a message as shown ("not shown" while it is not)."""
    line = shown_line(app, message_id)
    return "not shown" if line is None else line.tick


def gaps(app: GuiApp) -> list[LoadNewer]:
    return [i for i in chat(app).shown_items() if isinstance(i, LoadNewer)]


def test_a_search_result_far_back_opens_a_page_around_it_and_the_gap_fills(
    app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    server = ServerProcess(
        tmp_path / "server",
        {"argon2_memory_kib": 8192, "argon2_time_cost": 1, "rate_burst": 800},
    ).start()
    try:
        bob = others.run(open_client(server.port, "bob", tmp_path))
        others.run(bob.join("zoo"), root)
        okapi = others.run(stored(bob, lambda: bob.say("zoo", "an okapi at the Zoo")), root)
        others.call(lambda: [bob.say("zoo", f"filler {i}") for i in range(300)], root)
        others.run(bob.wait_flushed(30), root)
        log_in(app, server.port, "alice")
        app.join_room("zoo")
        view = chat(app)
        pump(root, lambda: app.model is not None and app.model.active == ZOO)
        pump(root, lambda: any(m.message.body == "filler 299" for m in message_lines(app)))

        view.search_entry.focus_force()
        view.search_var.set("okapi")
        view.search_entry.event_generate("<Return>")
        pump(root, lambda: len(view.result_rows()) == 1, what="one result")
        view.results_list.selection_set(0)
        view.results_list.event_generate("<<ListboxSelect>>")
        pump(root, lambda: "an okapi at the Zoo" in view.flashed(), what="the old one shown")
        assert line_of(app, okapi.id).message.body == "an okapi at the Zoo"
        shown = [m.message.body for m in message_lines(app)]
        assert "filler 24" in shown and len(shown) < 150, "a page around it, not every page"
        pump(root, lambda: len(gaps(app)) == 1, what="a gap below the page")
        assert "Load newer messages" in view.shown_text()

        for _ in range(4):  # 300 messages: the gap closes in a few pages of 100
            if not gaps(app):
                break
            ranges = view.text.tag_ranges("newer")
            count = len(message_lines(app))
            click(view, str(ranges[0]))
            pump(root, lambda: len(message_lines(app)) > count, what="the next page")  # noqa: B023
        assert gaps(app) == []
        bodies = [m.message.body for m in message_lines(app)]
        assert bodies == ["an okapi at the Zoo", *[f"filler {i}" for i in range(300)]]
        others.run(bob.close(), root)
    finally:
        server.kill()


def test_stored_ticks_and_the_receipts_setting_come_from_the_server(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    alice = others.run(open_client(server.port, "alice", tmp_path / "a"))
    others.run(alice.register("correct horse"), root)
    others.run(alice.set_receipts(True), root)
    bob = others.run(open_client(server.port, "bob", tmp_path / "b"))
    others.run(bob.register("bob's password"), root)
    others.run(bob.set_receipts(True), root)
    read = others.run(stored(alice, lambda: alice.dm("bob", "read this")), root)
    got = others.run(stored(alice, lambda: alice.dm("bob", "only got this")), root)
    others.run(wait_for(bob, lambda e: isinstance(e, Message) and e.id == got.id), root)
    others.run(wait_for(alice, lambda e: e == Receipt("bob", got.id, "delivered")), root)
    others.run(bob.mark_read(read.id, with_="alice"), root)
    others.run(wait_for(alice, lambda e: e == Receipt("bob", read.id, "read")), root)
    others.run(alice.close(), root)

    assert not app.prefs.receipts  # this window never chose
    log_in(app, server.port, "alice", "correct horse")
    model = app.model
    assert model is not None
    pump(root, lambda: model.receipts and app.receipts_var.get(), what="the server's setting")
    app.open_dm("bob")
    pump(root, lambda: tick(app, read.id) == "read", what="read, from before")
    assert line_of(app, got.id).tick == "delivered"
    assert "only got this  ✓✓ delivered\n" in chat(app).shown_text()

    phone: Any = others.run(
        open_client(server.port, "alice", tmp_path / "p", password="correct horse")
    )
    others.run(phone.set_receipts(False), root)
    pump(root, lambda: not model.receipts and not app.receipts_var.get(), what="off elsewhere")
    pump(root, lambda: tick(app, got.id) is None, what="no ticks")
    others.run(phone.close(), root)
    others.run(bob.close(), root)
