"""Moderation in the desktop app (issue 16 item 6) in a real Tk window on Xvfb against a
real `chinwag serve`: the room header's topic and badges, the member menu offering what
the user's role allows, the room settings window, moderation said in plain words, being
kicked, banned and banned from the server, and the blocked people list. Other people are
library clients; `chinwag admin` is the real command."""

from __future__ import annotations

import subprocess
import sys
import tkinter as tk
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import ServerProcess

from chinwag.client import Changed, ChatClient, Event, Moderated, RoomDetails
from chinwag.client.gui import GuiApp
from chinwag.client.gui.chat import ChatView
from chinwag.client.gui.model import GuiModel
from chinwag.client.gui.moderation import when_text
from chinwag.client.state import Conversation

from .conftest import LoopThread, pump, settle
from .test_message_features import choose, close, entry, menu_labels, right_click, shown_id
from .test_window import FAST_RECONNECT, log_in, open_client, type_and_enter

E = TypeVar("E")
LOBBY = Conversation.room("lobby")
GAMES = Conversation.room("games")
PASSWORD = "correct horse"
ADMIN = (sys.executable, "-m", "chinwag", "admin")


@pytest.fixture
def app(root: Any, config_dir: Path) -> Iterator[GuiApp]:
    gui = GuiApp(root, config_dir=config_dir, client_options=FAST_RECONNECT)
    try:
        yield gui
    finally:
        gui.shutdown(timeout=2)


def parts(app: GuiApp) -> tuple[ChatView, GuiModel]:
    assert app.chat_view is not None and app.model is not None
    return app.chat_view, app.model


async def next_of(client: ChatClient, kind: type[E], timeout: float = 10.0) -> E:
    """The client's next event of ``kind`` (others are passed over)."""
    while True:
        event: Event = await client.next_event(timeout)
        if isinstance(event, kind):
            return event


async def account(port: int, nick: str, tmp_path: Path) -> ChatClient:
    """A library client logged in as a newly registered account."""
    client = await open_client(port, nick, tmp_path)
    await client.register(PASSWORD)
    return client


async def next_change(client: ChatClient, timeout: float = 10.0) -> RoomDetails:
    """The client's next room settings change (the join's own room_info is passed over)."""
    while True:
        details = await next_of(client, RoomDetails, timeout)
        if details.by is not None:
            return details


def member_menu(view: ChatView, nick: str) -> tk.Menu:
    """Right-click a member in the members list; returns the menu that opened."""
    pump(
        view,
        lambda: any(row.startswith(nick) for row in view.member_rows()),
        what=f"{nick} in the member list",
    )
    iid = nick.lower()
    view.members.see(iid)
    view.update_idletasks()
    box = view.members.bbox(iid)
    assert box, f"{nick}'s row is not drawn"
    x, y = box[0] + 4, box[1] + 4
    view.members.event_generate("<Button-3>", x=x, y=y, rootx=x, rooty=y)
    menu = view.member_menu
    assert menu is not None
    return menu


def submenu(menu: tk.Menu, label: str) -> tk.Menu:
    sub = menu.nametowidget(str(menu.entrycget(entry(menu, label), "menu")))
    assert isinstance(sub, tk.Menu)
    return sub


def fill_reason(app: GuiApp, reason: str) -> None:
    """The reason form of a kick, ban or mute: type and press its button."""
    dialog = pump(app.root, lambda: app.dialog, what="the reason form")
    dialog.vars["reason"].set(reason)
    dialog.submit_button.invoke()
    pump(app.root, lambda: dialog.closed, what="the form to close after the server's ok")


def hhmm(model: GuiModel, event: Moderated) -> str:
    """When it ends, as the window says it (local time; the day too if not today)."""
    assert event.until is not None
    return when_text(event.until, model.local, datetime.now(UTC))


def test_a_room_with_a_key_is_joined_from_the_join_window_with_its_key(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    """ircmodes (protocol §12.6): without the key the window says the server's words and
    stays open; with it, the room opens."""
    olga = others.run(account(server.port, "olga", tmp_path))
    others.run(olga.join("den"))
    others.run(olga.set_room("den", key="b33r"))
    root = app.root
    log_in(app, server.port, "frank")
    _, model = parts(app)
    app.menu_chat.invoke(0)  # Join a room…
    dialog = pump(root, lambda: app.dialog, what="the join dialog")
    dialog.vars["room"].set("#den")
    dialog.submit_button.invoke()
    pump(root, lambda: "needs a key to join" in dialog.errors["room"].cget("text"))
    dialog.vars["key"].set("b33r")
    dialog.submit_button.invoke()
    pump(root, lambda: model.active == Conversation.room("den"), what="#den")
    assert app.dialog is None


def test_the_owner_sees_badges_changes_settings_and_moderates_from_the_member_menu(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    log_in(app, server.port, "olga", PASSWORD, register=True)
    view, model = parts(app)
    app.join_room("games")
    pump(root, lambda: model.active == GAMES, what="#games")
    pump(root, lambda: view.subtitle_label.cget("text") == "you own it · 1 online")
    assert view.settings_button.winfo_manager() == "grid"
    bob = others.run(open_client(server.port, "bob", tmp_path))
    others.run(bob.join("games"), root)
    pump(root, lambda: "bob  · guest" in view.member_rows(), what="bob in the list")

    # The room settings window: topic and announce-only; the header follows room_info.
    view.settings_button.invoke()
    window = app.room_settings
    assert window is not None
    assert "disabled" not in window.private_check.state()
    window.topic_var.set("chess tonight")
    window.announce_var.set(True)
    window.save_button.invoke()
    pump(root, lambda: window.closed, what="the settings window to close")
    changed = others.run(next_change(bob), root)
    assert (changed.topic, changed.announce, changed.private, changed.by) == (
        "chess tonight",
        True,
        False,
        "olga",
    )
    pump(
        root,
        lambda: (
            view.subtitle_label.cget("text")
            == "chess tonight · announce only · you own it · 2 online"
        ),
    )
    assert "olga set the topic to “chess tonight” and made the room announce-only" in (
        view.shown_text()
    )

    # The room's own retention (issue 17): a wrong number is refused in the window.
    view.settings_button.invoke()
    keep = app.room_settings
    assert keep is not None and keep.retention_var.get() == ""
    keep.retention_var.set("a week")
    keep.save_button.invoke()
    assert "a whole number of days" in keep.general.cget("text") and not keep.closed
    keep.retention_var.set("7")
    keep.save_button.invoke()
    pump(root, lambda: keep.closed, what="the settings window to close")
    assert others.run(next_change(bob), root).retention_days == 7
    pump(root, lambda: model.rules.details["games"].retention_days == 7, what="room_info here")
    view.settings_button.invoke()
    shown = app.room_settings
    assert shown is not None and shown.retention_var.get() == "7", "the room's retention shown"
    shown.close()

    # ircmodes: a key and a member limit; a limit that is no number is refused in the window.
    view.settings_button.invoke()
    lock = app.room_settings
    assert lock is not None and (lock.key_var.get(), lock.limit_var.get()) == ("", "")
    lock.key_var.set("b33r")
    lock.limit_var.set("lots")
    lock.save_button.invoke()
    assert "a whole number of people" in lock.general.cget("text") and not lock.closed
    lock.limit_var.set("5")
    lock.save_button.invoke()
    pump(root, lambda: lock.closed, what="the settings window to close")
    locked = others.run(next_change(bob), root)
    assert (locked.keyed, locked.key, locked.limit) == (True, None, 5), "bob: not the key"
    pump(root, lambda: model.rules.details["games"].key == "b33r", what="room_info here")
    view.settings_button.invoke()
    shown = app.room_settings
    assert shown is not None and (shown.key_var.get(), shown.limit_var.get()) == ("b33r", "5")
    shown.key_var.set("")
    shown.limit_var.set("")
    shown.save_button.invoke()
    pump(root, lambda: shown.closed, what="the settings window to close")
    opened = others.run(next_change(bob), root)
    assert (opened.keyed, opened.limit) == (False, None), "emptied: no key, no limit"

    # An owner gets every room action on a guest, but no "make a moderator" (a guest has no role).
    menu = member_menu(view, "bob")
    assert menu_labels(menu) == [
        "Message bob",
        "Kick from #games…",
        "Ban from #games",
        "Mute in #games",
        "Block bob",
    ]
    assert menu_labels(submenu(menu, "Mute in #games")) == [
        "for 10 minutes…",
        "for 1 hour…",
        "for 1 day…",
        "for ever…",
    ]
    close(menu)
    choose(submenu(menu, "Mute in #games"), "for 10 minutes…")
    fill_reason(app, "spam")
    muted = others.run(next_of(bob, Moderated), root)
    assert (muted.action, muted.nick, muted.by, muted.reason) == ("mute", "bob", "olga", "spam")
    said = f"bob was muted in #games by olga until {hhmm(model, muted)}: spam"
    pump(root, lambda: said in view.shown_text(), what=said)

    # Now the menu offers to lift the mute; lifting it is said too.
    menu = member_menu(view, "bob")
    assert "Unmute in #games" in menu_labels(menu) and "Mute in #games" not in menu_labels(menu)
    choose(menu, "Unmute in #games")
    assert others.run(next_of(bob, Moderated), root).action == "unmute"
    pump(root, lambda: "bob may speak in #games again: olga lifted the mute" in view.shown_text())

    # A kick takes bob out of the list, and says so.
    choose(member_menu(view, "bob"), "Kick from #games…")
    fill_reason(app, "")
    kicked = others.run(next_of(bob, Moderated), root)
    assert (kicked.action, kicked.room, kicked.reason) == ("kick", "games", "")
    assert "games" not in bob.rooms
    pump(root, lambda: "bob was kicked out of #games by olga" in view.shown_text())
    pump(root, lambda: not any(row.startswith("bob") for row in view.member_rows()))

    # A kicked one may come back; a ban for an hour keeps him out until lifted from the lobby.
    others.run(bob.join("games"), root)
    menu = member_menu(view, "bob")
    close(menu)
    choose(submenu(menu, "Ban from #games"), "for 1 hour…")
    fill_reason(app, "flooding")
    banned = others.run(next_of(bob, Moderated), root)
    assert (banned.action, banned.reason) == ("ban", "flooding")
    said = f"bob was banned from #games by olga until {hhmm(model, banned)}: flooding"
    pump(root, lambda: said in view.shown_text(), what=said)
    view.select_row(LOBBY)
    pump(root, lambda: model.active == LOBBY, what="the lobby")
    menu = member_menu(view, "bob")
    assert menu_labels(menu) == ["Message bob", "Unban from #games", "Block bob"]
    choose(menu, "Unban from #games")
    assert others.run(next_of(bob, Moderated), root).action == "unban"
    others.run(bob.join("games"), root)
    assert "games" in bob.rooms


def test_a_member_is_offered_only_blocking_and_hears_mutes_refusals_and_a_ban_in_plain_words(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    olga = others.run(account(server.port, "olga", tmp_path), root)
    others.run(olga.join("games"), root)
    log_in(app, server.port, "bob")
    view, model = parts(app)
    app.join_room("games")
    pump(root, lambda: model.active == GAMES, what="#games")
    pump(root, lambda: view.subtitle_label.cget("text") == "2 online")
    assert view.settings_button.winfo_manager() == ""
    menu = member_menu(view, "olga")
    assert menu_labels(menu) == ["Message olga", "Block olga"]
    close(menu)

    others.run(olga.set_room("games", topic="no spoilers", private=True), root)
    pump(root, lambda: view.subtitle_label.cget("text") == "no spoilers · private · 2 online")
    assert "olga set the topic to “no spoilers” and made the room private" in view.shown_text()

    until = datetime.now(UTC) + timedelta(hours=1)
    others.run(olga.moderate("mute", "bob", room="games", until=until, reason="spam"), root)
    at = when_text(until, model.local, datetime.now(UTC))
    said = f"You were muted in #games by olga until {at}: spam"
    pump(root, lambda: said in view.shown_text(), what=said)
    type_and_enter(app, "let me speak")
    refused = f"not sent: you are muted in #games until {at}"
    pump(root, lambda: refused in view.shown_text(), what=refused)

    others.run(olga.moderate("ban", "bob", room="games", reason="enough"), root)
    pump(root, lambda: model.active == LOBBY, what="back in the lobby")
    pump(root, lambda: "You were banned from #games by olga for ever: enough" in view.shown_text())
    assert [name for name, _ in view.sidebar_rows()] == ["# lobby"]
    pump(root, lambda: view.member_rows() == ["bob  (you)", "olga"], what="the lobby's members")
    app.join_room("games")
    pump(
        root,
        lambda: (
            "Cannot join #games: you are banned from #games until it is lifted" in view.shown_text()
        ),
    )
    assert model.active == LOBBY


def test_a_moderator_sets_the_topic_only_is_told_about_rank_deletes_and_invites(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    olga = others.run(account(server.port, "olga", tmp_path), root)
    others.run(olga.join("games"), root)
    bob = others.run(open_client(server.port, "bob", tmp_path))
    others.run(bob.join("games"), root)
    carol = others.run(open_client(server.port, "carol", tmp_path))
    log_in(app, server.port, "milo", PASSWORD, register=True)
    view, model = parts(app)
    app.join_room("games")
    pump(root, lambda: view.subtitle_label.cget("text") == "3 online", what="#games, a member")
    assert view.settings_button.winfo_manager() == ""
    others.run(olga.grant("milo", "mod", room="games"), root)
    pump(root, lambda: "You were made a moderator of #games by olga" in view.shown_text())
    pump(root, lambda: view.subtitle_label.cget("text") == "you moderate it · 3 online")
    assert view.settings_button.winfo_manager() == "grid"

    # A mod changes the topic; privacy and announce-only are the owner's.
    view.settings_button.invoke()
    window = app.room_settings
    assert window is not None
    assert "disabled" in window.private_check.state()
    assert "disabled" in window.announce_check.state()
    window.topic_var.set("tournament")
    window.save_button.invoke()
    pump(root, lambda: window.closed, what="the settings window to close")
    pump(
        root, lambda: view.subtitle_label.cget("text") == "tournament · you moderate it · 3 online"
    )
    assert others.run(next_change(olga), root).topic == "tournament"

    # A mod may act on a member but not make mods; the owner outranks them (said in words).
    menu = member_menu(view, "bob")
    assert menu_labels(menu) == [
        "Message bob",
        "Kick from #games…",
        "Ban from #games",
        "Mute in #games",
        "Block bob",
    ]
    close(menu)
    menu = member_menu(view, "olga")
    assert menu.entrycget(0, "label") == "Message olga"
    choose(menu, "Kick from #games…")
    dialog = pump(root, lambda: app.dialog, what="the reason form")
    dialog.submit_button.invoke()
    pump(root, lambda: dialog.general.cget("text") != "", what="the refusal")
    assert dialog.general.cget("text") == (
        "Not done: they rank as high as you or higher: ask the room's owner or an admin."
    )
    assert not dialog.closed
    dialog.cancel()
    assert any(row.startswith("olga") for row in view.member_rows())

    # A moderator's delete of someone else's message.
    others.call(lambda: bob.say("games", "the butler did it"), root)
    spoiler = shown_id(app, "the butler did it")
    menu = right_click(view, spoiler)
    choose(menu, "Delete as moderator")
    confirm = pump(root, lambda: app.dialog, what="the delete question")
    assert "by bob will be erased for everyone" in confirm.intro_label.cget("text")
    confirm.submit_button.invoke()
    deleted = others.run(next_of(bob, Changed), root)
    assert (deleted.kind, deleted.target, deleted.by) == ("deleted", spoiler, "milo")
    pump(root, lambda: "the butler did it" not in view.shown_text(), what="the message erased")
    assert "message deleted" in view.shown_text()

    # The owner makes the room private; the mod invites carol from the lobby's member list.
    others.run(olga.set_room("games", private=True), root)
    pump(root, lambda: "private" in view.subtitle_label.cget("text"))
    view.select_row(LOBBY)
    pump(root, lambda: model.active == LOBBY, what="the lobby")
    menu = member_menu(view, "carol")
    assert menu_labels(menu) == ["Message carol", "Invite to #games", "Block carol"]
    choose(menu, "Invite to #games")
    invited = others.run(next_of(carol, Moderated), root)
    assert (invited.action, invited.room, invited.by) == ("invite", "games", "milo")
    others.run(carol.join("games"), root)
    assert "games" in carol.rooms


def test_blocking_from_a_message_and_unblocking_in_the_blocked_people_list(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    bob = others.run(open_client(server.port, "bob", tmp_path))
    log_in(app, server.port, "alice")
    view, _ = parts(app)
    others.call(lambda: bob.say("lobby", "hello alice"), root)
    message = right_click(view, shown_id(app, "hello alice"))
    people = submenu(message, "bob")
    assert menu_labels(people) == ["Block bob"]
    close(message)
    choose(people, "Block bob")
    pump(root, lambda: "You block bob" in view.shown_text())
    others.call(lambda: bob.say("lobby", "can you hear me"), root)
    settle(root, 1.0)
    assert "can you hear me" not in view.shown_text()

    app.menu_account.invoke(entry(app.menu_account, "Blocked people…"))
    window = app.blocked_dialog
    assert window is not None
    pump(root, lambda: window.rows() == ["bob"], what="bob in the blocked list")
    window.listbox.selection_set(0)
    window.unblock_button.invoke()
    pump(root, lambda: window.rows() == [], what="an empty blocked list")
    assert window.general.cget("text") == "You block nobody."
    others.call(lambda: bob.say("lobby", "back again"), root)
    shown_id(app, "back again")
    assert "You no longer block bob." in view.shown_text()


def test_a_server_ban_ends_the_session_with_a_clear_message_and_no_reconnecting(
    server: ServerProcess, app: GuiApp, tmp_path: Path
) -> None:
    root = app.root
    log_in(app, server.port, "bob", PASSWORD, register=True)
    view, model = parts(app)
    done = subprocess.run(
        [*ADMIN, "--data", str(server.data), "ban", "bob", "--reason", "abuse"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pump(root, lambda: "banned from this server" in view.shown_text(), what="the ban notice")
    text = view.shown_text()
    assert "Disconnected: You are banned from this server" in text and "abuse" in text
    assert "Not reconnecting." in text
    settle(root, 1.5)
    assert model.status.state == "offline"
    assert view.shown_text().count("banned from this server") == 1
