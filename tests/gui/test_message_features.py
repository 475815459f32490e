"""The desktop app's message features (issue 15) in a real Tk window on Xvfb against a
real `chinwag serve`: message actions, edit in place, reaction chips, reply quotes,
mentions, the search box, read markers and read ticks. Other people are library clients."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerProcess

from chinwag.client import Changed, ChatClient, Event, Message, ReadMarker, Sent
from chinwag.client.gui import GuiApp
from chinwag.client.gui.chat import ChatView
from chinwag.client.gui.model import Chip, MessageLine
from chinwag.client.state import Conversation

from .conftest import LoopThread, pump, settle
from .test_window import FAST_RECONNECT, log_in, open_client, shown_messages, type_and_enter

LOBBY = Conversation.room("lobby")
WAIT = 10.0


@pytest.fixture
def app(root: Any, config_dir: Path) -> Iterator[GuiApp]:
    gui = GuiApp(root, config_dir=config_dir, client_options=FAST_RECONNECT)
    try:
        yield gui
    finally:
        gui.shutdown(timeout=2)


def chat(app: GuiApp) -> ChatView:
    assert app.chat_view is not None
    return app.chat_view


def shown_line(app: GuiApp, message_id: int) -> MessageLine | None:
    """The message's line as the window shows it now (None: not shown)."""
    for item in chat(app).shown_items():
        if isinstance(item, MessageLine) and item.message.id == message_id:
            return item
    return None


def line_of(app: GuiApp, message_id: int) -> MessageLine:
    """The message's line as the window shows it now; it must be shown."""
    line = shown_line(app, message_id)
    assert line is not None, f"message {message_id} is not shown"
    return line


def shown_id(app: GuiApp, body: str) -> int:
    """The id of the message shown with this body (waits for it)."""

    def find() -> int | None:
        for item in chat(app).shown_items():
            if isinstance(item, MessageLine) and item.message.body == body:
                return item.message.id
        return None

    found: int = pump(app.root, find, what=f"{body!r} on screen")
    return found


def point_at(view: ChatView, index: str) -> tuple[int, int]:
    """Window coordinates of a text index (scrolled into view first)."""
    view.text.see(index)
    view.update_idletasks()
    box = view.text.bbox(index)
    assert box is not None, index
    return box[0] + 2, box[1] + 2


def hover(view: ChatView, message_id: int) -> tuple[int, list[str]] | None:
    start = view.message_index(message_id)
    assert start is not None
    x, y = point_at(view, start)
    view.text.event_generate("<Motion>", x=x, y=y)
    return view.hovered()


def right_click(view: ChatView, message_id: int) -> tk.Menu:
    start = view.message_index(message_id)
    assert start is not None
    x, y = point_at(view, start)
    view.text.event_generate("<Button-3>", x=x, y=y, rootx=x, rooty=y)
    menu = view.message_menu
    assert menu is not None
    return menu


def menu_labels(menu: tk.Menu) -> list[str]:
    last = menu.index("end")
    assert last is not None
    return [str(menu.entrycget(i, "label")) for i in range(last + 1) if menu.type(i) != "separator"]


def close(menu: tk.Menu) -> None:
    """Take a posted menu down, as a click elsewhere would."""
    menu.unpost()
    menu.grab_release()
    menu.update()


def entry(menu: tk.Menu, label: str) -> int:
    index = menu.index(label)
    assert index is not None, label
    return index


def choose(menu: tk.Menu, label: str) -> None:
    close(menu)
    menu.invoke(entry(menu, label))


def click(view: ChatView, index: str) -> None:
    x, y = point_at(view, index)
    view.text.event_generate("<Motion>", x=x, y=y)  # the pointer moves there first
    view.text.event_generate("<ButtonPress-1>", x=x, y=y)
    view.text.event_generate("<ButtonRelease-1>", x=x, y=y)


async def stored(client: ChatClient, send: Callable[[], str]) -> Sent:
    """Send on the client's own loop and wait for the server's ack."""
    return await client.wait_sent(send(), WAIT)


async def wait_for(
    client: ChatClient, done: Callable[[Event], bool], timeout: float = WAIT
) -> Event:
    while True:
        event = await client.next_event(timeout)
        if done(event):
            return event


def test_message_actions_edit_in_place_delete_chips_and_reply_quotes(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    bob = others.run(open_client(server.port, "bob", tmp_path))
    log_in(app, server.port, "alice")
    view = chat(app)
    others.call(lambda: bob.say("lobby", "the quokka is out"), root)
    theirs = shown_id(app, "the quokka is out")
    type_and_enter(app, "hello bob")
    mine = shown_id(app, "hello bob")

    # Hovering a message offers its actions: edit and delete on our own only.
    assert hover(view, theirs) == (theirs, ["Reply", "React"])
    assert hover(view, mine) == (mine, ["Reply", "React", "Edit", "Delete"])
    menu = right_click(view, theirs)
    assert menu_labels(menu) == ["Reply", "React", "bob", "Copy text"]  # bob: his menu
    close(menu)
    menu = right_click(view, mine)
    assert menu_labels(menu) == ["Reply", "React", "Edit", "Delete", "Copy text"]

    # Edit in place: Enter saves; everyone sees the new text, marked "(edited)".
    choose(menu, "Edit")
    box = pump(root, lambda: view.edit_box, what="the edit box")
    assert box.get("1.0", "end-1c") == "hello bob"
    box.delete("1.0", "end")
    box.insert("1.0", "hello bob, again")
    box.event_generate("<Return>")
    edit = others.run(wait_for(bob, lambda e: isinstance(e, Changed)), root)
    assert isinstance(edit, Changed) and (edit.target, edit.body) == (mine, "hello bob, again")
    pump(root, lambda: "hello bob, again  (edited)\n" in view.shown_text(), what="(edited)")
    assert view.edit_box is None

    # Escape cancels: nothing is sent, the text stays.
    assert hover(view, mine) is not None
    view.hover_buttons["Edit"].invoke()
    box = pump(root, lambda: view.edit_box, what="the edit box again")
    box.insert("end", " and more")
    box.event_generate("<Escape>")
    pump(root, lambda: view.edit_box is None, what="the edit box gone")
    assert line_of(app, mine).message.body == "hello bob, again"

    # Reaction chips: bob's shows with its count; a click puts ours on, another takes it off.
    others.run(bob.react(theirs, "👍"), root)
    pump(root, lambda: line_of(app, theirs).chips == (Chip("👍", 1, False),), what="a chip")
    assert " :thumbs up sign: 1 " in view.shown_text()
    chip = view.chip_index(theirs, 0)
    assert chip is not None
    click(view, chip)
    pump(root, lambda: line_of(app, theirs).chips == (Chip("👍", 2, True),), what="ours on")
    got = others.run(wait_for(bob, lambda e: isinstance(e, Changed) and e.by == "alice"), root)
    assert isinstance(got, Changed) and (got.emoji, got.on) == ("👍", True)
    assert "chip_mine" in view.text.tag_names(view.chip_index(theirs, 0))
    click(view, view.chip_index(theirs, 0) or "")
    pump(root, lambda: line_of(app, theirs).chips == (Chip("👍", 1, False),), what="ours off")
    # The React menu puts a new one on.
    menu = right_click(view, theirs)
    react = menu.nametowidget(str(menu.entrycget(entry(menu, "React"), "menu")))
    close(menu)
    react.invoke(entry(react, ":party popper:"))
    pump(
        root,
        lambda: line_of(app, theirs).chips == (Chip("👍", 1, False), Chip("🎉", 1, True)),
        what="the party popper",
    )
    # "Other…" takes any emoji, typed or by its name (Tk draws none).
    menu = right_click(view, theirs)
    react = menu.nametowidget(str(menu.entrycget(entry(menu, "React"), "menu")))
    close(menu)
    react.invoke(entry(react, "Other…"))
    dialog = pump(root, lambda: app.dialog, what="the React dialog")
    dialog.vars["emoji"].set("no such emoji")
    dialog.submit_button.invoke()
    assert "Type an emoji, or its name" in dialog.errors["emoji"].cget("text")
    dialog.vars["emoji"].set("kangaroo")
    dialog.submit_button.invoke()
    pump(root, lambda: Chip("🦘", 1, True) in line_of(app, theirs).chips, what="the kangaroo")
    assert " :kangaroo: 1 " in view.shown_text()

    # Reply: the composer says what it answers; the reply shows a quote that jumps to it.
    assert hover(view, theirs) is not None
    view.hover_buttons["Reply"].invoke()
    pump(
        root,
        lambda: (
            view.reply_label.winfo_ismapped()
            and view.reply_label.cget("text") == "Replying to bob: the quokka is out"
        ),
        what="the reply bar",
    )
    type_and_enter(app, "so it is")
    answer = others.run(wait_for(bob, lambda e: isinstance(e, Message) and e.body == "so it is"))
    assert isinstance(answer, Message) and answer.reply_to == theirs
    reply = shown_id(app, "so it is")
    pump(root, lambda: not view.reply_label.winfo_ismapped(), what="the reply bar gone")
    assert "↪ bob: the quokka is out\nso it is" in view.shown_text()
    quote = view.text.tag_nextrange("quote", view.message_index(reply) or "1.0")
    assert quote
    view.text.yview_moveto(1.0)
    click(view, str(quote[0]))
    pump(root, lambda: "the quokka is out" in view.flashed(), what="the original highlighted")

    # Delete, after saying yes: the text is gone for everyone; "message deleted" stays.
    choose(right_click(view, mine), "Delete")
    dialog = pump(root, lambda: app.dialog, what="the question")
    assert "“hello bob, again” will be erased for everyone" in dialog.intro_label.cget("text")
    dialog.cancel_button.invoke()
    settle(root, 0.3)
    assert not line_of(app, mine).message.deleted  # "Cancel" keeps it
    choose(right_click(view, mine), "Delete")
    pump(root, lambda: app.dialog, what="the question again").submit_button.invoke()
    gone = others.run(wait_for(bob, lambda e: isinstance(e, Changed) and e.kind == "deleted"))
    assert isinstance(gone, Changed) and gone.target == mine
    pump(root, lambda: line_of(app, mine).message.deleted, what="the deletion")
    assert "hello bob" not in view.shown_text()
    assert "message deleted\n" in view.shown_text()
    assert hover(view, mine) is None  # a deleted message has no actions
    others.run(bob.close(), root)


def test_mentions_stand_out_and_notify_also_when_an_edit_adds_one(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    rings: list[int] = []
    root.bell = lambda *args, **kwargs: rings.append(1)  # type: ignore[method-assign]
    bob = others.run(open_client(server.port, "bob", tmp_path))
    log_in(app, server.port, "alice")
    app.set_focused(False)
    others.call(lambda: bob.say("lobby", "lunch, anyone?"), root)
    plain = shown_id(app, "lunch, anyone?")
    assert rings == [] and not line_of(app, plain).mention
    others.call(lambda: bob.say("lobby", "@alice the build is red"), root)
    mention = shown_id(app, "@alice the build is red")
    assert line_of(app, mention).mention
    assert "mention" in chat(app).text.tag_names(chat(app).message_index(mention))
    assert rings == [1]
    assert app.model is not None and app.model.alert == "bob mentioned you in #lobby"
    pump(root, lambda: root.title().startswith("✉ bob mentioned you"), what="the title")

    app.set_focused(True)
    others.run(bob.edit(plain, "lunch, anyone? @alice?"), root)
    pump(root, lambda: line_of(app, plain).mention, what="the edit's mention")
    assert rings == [1]  # focused: the line stands out, nothing rings
    app.set_focused(False)
    others.run(bob.edit(plain, "lunch, anyone? @alice? @alice!"), root)
    settle(root, 0.5)
    assert rings == [1]  # she was mentioned already: this edit tells nobody new

    # An edited code block keeps its background to the end of its last line.
    code = others.run(stored(bob, lambda: bob.say("lobby", "```\nx = 1\n```")), root).id
    others.run(bob.edit(code, "```\nx = 2\n```"), root)
    view = chat(app)
    pump(
        root,
        lambda: (line := shown_line(app, code)) is not None and line.message.edited,
        what="the edited code",
    )
    where = view.text.search("x = 2", "1.0")
    assert where and "code" in view.text.tag_names(f"{where} lineend")
    assert view.text.get(f"{where} +1 line linestart", f"{where} +1 line lineend") == "  (edited)"
    others.run(bob.close(), root)


def test_search_lists_results_and_jumps_to_an_older_message(
    app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    server = ServerProcess(
        tmp_path / "server",
        {"argon2_memory_kib": 8192, "argon2_time_cost": 1, "rate_burst": 500},
    ).start()
    try:
        bob = others.run(open_client(server.port, "bob", tmp_path))
        others.run(bob.join("zoo"), root)
        others.run(stored(bob, lambda: bob.say("zoo", "an okapi at the Zoo")), root)
        fillers = [f"filler {i}" for i in range(80)]  # more than the window's first page
        others.call(lambda: [bob.say("zoo", body) for body in fillers], root)
        others.run(bob.wait_flushed(WAIT), root)
        log_in(app, server.port, "alice")
        others.run(stored(bob, lambda: bob.dm("alice", "the OKAPI photo")), root)
        app.join_room("zoo")
        view = chat(app)
        pump(root, lambda: app.model is not None and app.model.active.name == "zoo")
        app.select(LOBBY)

        view.search_entry.focus_force()  # a click in the search box
        view.search_var.set("okapi")
        view.search_entry.event_generate("<Return>")
        pump(root, lambda: len(view.result_rows()) == 2, what="two results")
        assert view.results_label.cget("text") == "2 found for “okapi”"
        assert view.result_rows()[0].startswith("@bob · bob · ")
        assert view.result_rows()[0].endswith(" — the OKAPI photo")
        assert view.result_rows()[1].startswith("#zoo · bob · ")
        assert view.results_shown and not view.members_shown

        view.results_list.selection_set(1)
        view.results_list.event_generate("<<ListboxSelect>>")
        pump(root, lambda: "an okapi at the Zoo" in view.flashed(), what="the old one shown")
        assert app.model is not None and app.model.active == Conversation.room("zoo")
        assert ("bob", "filler 0") in shown_messages(app)

        view.results_list.selection_clear(0, "end")
        view.results_list.selection_set(0)
        view.results_list.event_generate("<<ListboxSelect>>")
        pump(root, lambda: "the OKAPI photo" in view.flashed(), what="the DM shown")
        assert app.model.active == Conversation.dm("bob")
        view.render(app.model.items(app.model.active), reset=True)  # as a page arriving does
        assert "the OKAPI photo" in view.flashed()  # still highlighted, still in view

        # Many results come a page at a time.
        view.search_entry.focus_force()
        view.search_var.set("filler")
        view.search_entry.event_generate("<Return>")
        pump(root, lambda: view.results_label.cget("text") == "20+ found for “filler”")
        assert view.result_rows()[0].endswith(" — filler 79")
        assert view.more_results.winfo_manager() == "grid"
        view.more_results.invoke()
        pump(root, lambda: view.results_label.cget("text") == "40+ found for “filler”")
        assert view.result_rows()[20].endswith(" — filler 59")

        view.search_entry.focus_force()
        view.search_var.set("giraffe")
        view.search_entry.event_generate("<Return>")
        pump(root, lambda: view.results_label.cget("text") == "Nothing found for “giraffe”")
        assert view.result_rows() == []
        assert not view.more_results.winfo_manager()
        view.search_var.set("a" * 1001)
        view.search_entry.event_generate("<Return>")
        pump(root, lambda: view.results_label.cget("text").startswith("Search failed: "))
        view.search_entry.event_generate("<Escape>")
        pump(root, lambda: not view.results_shown and view.members_shown, what="members back")
        others.run(bob.close(), root)
    finally:
        server.kill()


def test_read_markers_sync_and_read_ticks_follow_a_dm(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    bob = others.run(open_client(server.port, "bob", tmp_path))
    others.run(bob.register("bob's password"), root)
    others.run(bob.set_receipts(True), root)
    log_in(app, server.port, "alice", "correct horse", register=True)
    view = chat(app)
    model = app.model
    assert model is not None
    phone = others.run(
        open_client(server.port, "alice", tmp_path, password="correct horse", device="phone")
    )
    # Receipts on, from the Account menu (an account's setting; kept for the next login).
    assert app.menu_account.entrycget(3, "state") == "normal"
    app.menu_account.invoke(3)
    pump(root, lambda: model.receipts, what="receipts on")
    assert app.prefs.receipts

    app.open_dm("bob")
    type_and_enter(app, "are you there?")
    mine = shown_id(app, "are you there?")
    pump(root, lambda: line_of(app, mine).tick in ("sent", "delivered"), what="sent")
    got = others.run(wait_for(bob, lambda e: isinstance(e, Message) and e.id == mine), root)
    assert isinstance(got, Message)  # bob's client took it: his device has it
    pump(root, lambda: line_of(app, mine).tick == "delivered", what="delivered")
    assert "are you there?  ✓✓ delivered\n" in view.shown_text()
    others.run(bob.mark_read(mine, with_="alice"), root)
    pump(root, lambda: line_of(app, mine).tick == "read", what="read")
    assert "are you there?  ✓✓ read\n" in view.shown_text()

    # Viewing the DM marks what comes in read, on every device of the account.
    sent = others.run(stored(bob, lambda: bob.dm("alice", "yes, here")), root)
    marker = others.run(
        wait_for(phone, lambda e: isinstance(e, ReadMarker) and e.upto == sent.id), root
    )
    assert marker == ReadMarker(sent.id, with_="bob")

    # Read on another device: the count here follows.
    news = others.run(stored(bob, lambda: bob.say("lobby", "news in the lobby")), root)
    pump(root, lambda: ("# lobby", "1") in view.sidebar_rows(), what="1 unread in the lobby")
    others.run(wait_for(phone, lambda e: isinstance(e, Message) and e.id == news.id), root)
    others.run(phone.mark_read(news.id, room="lobby"), root)
    pump(root, lambda: ("# lobby", "") in view.sidebar_rows(), what="read on the phone")

    # Away: two DMs come, the phone reads the first; back here, one is unread.
    app.logout()
    pump(root, lambda: app.connect_view is not None and not app.connect_view.busy, what="logout")
    first = others.run(stored(bob, lambda: bob.dm("alice", "one")), root)
    others.run(stored(bob, lambda: bob.dm("alice", "two")), root)
    others.run(wait_for(phone, lambda e: isinstance(e, Message) and e.body == "two"), root)
    others.run(phone.mark_read(first.id, with_="bob"), root)
    log_in(app, server.port, "alice", "correct horse")
    view = chat(app)
    pump(root, lambda: ("@ bob", "1") in view.sidebar_rows(), what="1 unread from bob")
    others.run(phone.close(), root)
    others.run(bob.close(), root)


def test_the_keyboard_reaches_every_action_and_a_refused_edit_keeps_its_text(
    app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    server = ServerProcess(
        tmp_path / "server", {"argon2_memory_kib": 8192, "argon2_time_cost": 1, "edit_window": 1}
    ).start()
    try:
        bob = others.run(open_client(server.port, "bob", tmp_path))
        log_in(app, server.port, "alice")
        view = chat(app)
        type_and_enter(app, "first")
        type_and_enter(app, "second")
        second = shown_id(app, "second")
        others.run(stored(bob, lambda: bob.say("lobby", "from bob")), root)
        theirs = shown_id(app, "from bob")

        # Ctrl+Up in the empty input box edits our last message; Escape leaves it.
        view.input.focus_force()
        view.input.event_generate("<Control-Up>")
        box = pump(root, lambda: view.edit_box, what="the edit box")
        assert box.get("1.0", "end-1c") == "second"
        box.event_generate("<Escape>")
        pump(root, lambda: view.edit_box is None and root.focus_get() is view.input)

        # Tab to the conversation: the newest message is picked; keys act on it.
        view.text.focus_force()
        pump(root, lambda: view.selected == theirs, what="the newest message picked")
        assert "from bob" in view.text.get(*view.text.tag_ranges("selected"))
        view.text.event_generate("<Key-e>")  # not ours: nothing
        settle(root, 0.2)
        assert view.edit_box is None
        view.text.event_generate("<Key-r>")
        pump(root, lambda: view.reply_label.cget("text") == "Replying to bob: from bob")
        view.text.focus_force()
        view.text.event_generate("<Up>")
        assert view.selected == second
        view.text.event_generate("<Return>")  # the message's menu
        menu = view.message_menu
        assert menu is not None and "Edit" in menu_labels(menu)
        close(menu)

        # Past the edit window the server refuses; the box comes back with the text.
        settle(root, 1.2)
        view.text.focus_force()
        view.text.event_generate("<Key-e>")
        box = pump(root, lambda: view.edit_box, what="the edit box")
        box.delete("1.0", "end")
        box.insert("1.0", "second, changed")
        box.event_generate("<Return>")
        pump(
            root,
            lambda: "Not edited: it is too late to edit that message" in view.shown_text(),
            what="the refusal",
        )
        box = pump(root, lambda: view.edit_box, what="the edit box back")
        assert box.get("1.0", "end-1c") == "second, changed"
        assert line_of(app, second).message.body == "second"
        box.event_generate("<Escape>")

        view.text.focus_force()
        view.text.event_generate("<Delete>")
        dialog = pump(root, lambda: app.dialog, what="the question")
        assert "“second” will be erased" in dialog.intro_label.cget("text")
        dialog.cancel_button.invoke()
        others.run(bob.close(), root)
    finally:
        server.kill()
