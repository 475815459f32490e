"""The desktop app in a real Tk window (on Xvfb) against a real `chinwag serve` on loopback.

The test thread is Tk's main thread: it fills in the forms, presses keys with
``event_generate`` and pumps Tk until what a user would see is on screen. The
other people are library clients on a loop of their own.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerProcess

from chinwag.client import ChatClient, Message
from chinwag.client.gui import Ask, GuiApp, Prepared, Say
from chinwag.client.gui.dialogs import FormDialog
from chinwag.client.gui.model import AwayDivider, MessageLine, PendingLine
from chinwag.client.state import Conversation

from .conftest import LoopThread, pump, settle

FAST_RECONNECT = {"reconnect_min": 0.1, "reconnect_max": 0.4, "seen_delay": 0.1}
LOBBY = Conversation.room("lobby")


@pytest.fixture
def app(root: Any, config_dir: Path) -> Iterator[GuiApp]:
    gui = GuiApp(root, config_dir=config_dir, client_options=FAST_RECONNECT)
    try:
        yield gui
    finally:
        gui.shutdown(timeout=2)


def log_in(
    app: GuiApp, port: int, nick: str, password: str = "", *, register: bool = False
) -> None:
    """Fill in the connect window, press Connect, wait for the login's backlog."""
    view = pump(app.root, lambda: app.connect_view, what="the connect window")
    view.server_var.set(f"127.0.0.1:{port}")
    view.nick_var.set(nick)
    view.password_var.set(password)
    view.register_var.set(register)
    view.connect_button.invoke()
    pump(
        app.root,
        lambda: app.chat_view is not None and app.model is not None and app.model.caught_up,
        what="the main window, caught up",
    )


def type_and_enter(app: GuiApp, text: str) -> None:
    """Type into the input box and press Enter, as a user would."""
    view = app.chat_view
    assert view is not None
    view.input.focus_force()
    view.input.insert("insert", text)
    view.input.event_generate("<Return>")


def shown_messages(app: GuiApp) -> list[tuple[str, str]]:
    assert app.chat_view is not None
    return [
        (i.message.sender, i.message.body)
        for i in app.chat_view.shown_items()
        if isinstance(i, MessageLine)
    ]


async def open_client(port: int, nick: str, tmp_path: Path, **kwargs: Any) -> ChatClient:
    client = ChatClient(
        "127.0.0.1", port, nick=nick, config_dir=tmp_path / "others" / nick, **kwargs
    )
    await client.connect()
    return client


async def next_message(client: ChatClient, body: str, timeout: float = 10.0) -> Message:
    while True:
        event = await client.next_event(timeout)
        if isinstance(event, Message) and event.body == body:
            return event


def test_log_in_and_talk_in_the_lobby(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    """Log in as a guest, send in the lobby with Enter; Shift+Enter, Up and drafts work."""
    root = app.root
    bob = others.run(open_client(server.port, "bob", tmp_path))
    log_in(app, server.port, "alice")
    view, model = app.chat_view, app.model
    assert view is not None and model is not None
    assert root.title() == "#lobby — chinwag"
    pump(root, lambda: "Connected to" in view.status_label.cget("text"))
    status = view.status_label.cget("text")
    assert status == f"Connected to 127.0.0.1:{server.port} as alice (guest)"
    pump(root, lambda: len(view.member_rows()) == 2, what="the member list")
    assert view.member_rows() == ["alice  (you)", "bob  · guest"]

    view.input.focus_force()
    view.input.insert("insert", "first line")
    view.input.event_generate("<Shift-Return>")
    view.input.insert("insert", "second line")
    assert view.input_text() == "first line\nsecond line"
    view.input.event_generate("<Return>")
    assert view.input_text() == ""
    got = others.run(next_message(bob, "first line\nsecond line"), root)
    assert got.sender == "alice" and got.room == "lobby"
    pump(root, lambda: shown_messages(app) == [("alice", "first line\nsecond line")])
    assert not model.pending()
    assert "alice   " in view.shown_text() and "   you\n" in view.shown_text()

    others.run(bob.join("games"), root)
    others.call(lambda: bob.say("lobby", "hi alice"), root)
    pump(root, lambda: ("bob", "hi alice") in shown_messages(app))
    assert shown_messages(app) == [("alice", "first line\nsecond line"), ("bob", "hi alice")]

    # Up recalls the last message; the input box is kept per conversation.
    view.input.event_generate("<Up>")
    assert view.input_text() == "first line\nsecond line"
    view.set_input("a draft for the lobby")
    app.join_room("games")
    pump(root, lambda: model.active == Conversation.room("games"), what="#games")
    assert view.input_text() == ""
    assert view.sidebar_rows()[:2] == [("# lobby", ""), ("# games", "")]
    view.select_row(LOBBY)
    pump(root, lambda: model.active == LOBBY)
    assert view.input_text() == "a draft for the lobby"
    app.leave(Conversation.room("games"))
    pump(root, lambda: view.sidebar_rows() == [("# lobby", "")], what="#games gone")
    others.run(bob.close(), root)


def test_a_dm_from_another_client_shows_an_unread_count_and_rings(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    rings: list[int] = []
    root.bell = lambda *args, **kwargs: rings.append(1)  # type: ignore[method-assign]
    log_in(app, server.port, "alice")
    view, model = app.chat_view, app.model
    assert view is not None and model is not None
    bob = others.run(open_client(server.port, "bob", tmp_path))

    app.set_focused(False)  # the user is in another window
    others.call(lambda: bob.typing(to="alice"), root)
    others.call(lambda: bob.dm("alice", "psst, alice"), root)
    pump(root, lambda: ("@ bob", "1") in view.sidebar_rows(), what="@bob with 1 unread")
    assert root.title() in ("(1) #lobby — chinwag", "✉ bob sent you a message — chinwag")
    assert rings == [1]
    pump(root, lambda: root.title().startswith("✉"), timeout=3, what="the title to flash")
    others.call(lambda: bob.say("lobby", "hello everyone"), root)  # not a mention: no bell
    pump(root, lambda: ("bob", "hello everyone") in shown_messages(app))
    assert rings == [1]

    app.set_focused(True)
    pump(root, lambda: root.title() == "(1) #lobby — chinwag", what="the unread title")
    view.select_row(Conversation.dm("bob"))
    pump(root, lambda: shown_messages(app) == [("bob", "psst, alice")], what="the DM")
    assert view.sidebar_rows() == [("# lobby", ""), ("@ bob", "")]
    assert root.title() == "@bob — chinwag"
    others.call(lambda: bob.typing(to="alice"), root)
    pump(root, lambda: view.typing_label.cget("text") == "bob is typing…", what="typing")
    type_and_enter(app, "hi bob")
    got = others.run(next_message(bob, "hi bob"), root)
    assert got.to == "alice" or got.sender == "alice"

    # Double-clicking someone in the member list opens a DM with them.
    view.select_row(LOBBY)
    pump(root, lambda: "bob  · guest" in view.member_rows(), what="bob in the member list")
    box = view.members.bbox("bob")
    assert isinstance(box, tuple), box
    x, y, _, _ = box
    for _ in range(2):
        view.members.event_generate("<ButtonPress-1>", x=x + 4, y=y + 4)
        view.members.event_generate("<ButtonRelease-1>", x=x + 4, y=y + 4)
    pump(root, lambda: model.active == Conversation.dm("bob"), what="the DM opened")
    others.run(bob.close(), root)


def test_the_away_divider_and_summary_after_logging_back_in(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path, config_dir: Path
) -> None:
    root = app.root
    log_in(app, server.port, "alice", "correct horse", register=True)
    model = app.model
    assert model is not None and model.state.account
    type_and_enter(app, "before the break")
    pump(root, lambda: ("alice", "before the break") in shown_messages(app))
    app.logout()
    pump(root, lambda: app.connect_view is not None and not app.connect_view.busy, what="logout")
    assert root.title() == "chinwag — connect"

    bob = others.run(open_client(server.port, "bob", tmp_path))
    others.call(lambda: bob.say("lobby", "you missed this"), root)
    others.call(lambda: bob.dm("alice", "and this"), root)
    others.run(bob.wait_flushed(5), root)

    view = app.connect_view
    assert view is not None
    assert view.nick_var.get() == "alice"  # remembered
    assert view.server_var.get() == f"127.0.0.1:{server.port}"
    log_in(app, server.port, "alice", "correct horse")
    chat = app.chat_view
    assert chat is not None
    pump(root, lambda: ("bob", "you missed this") in shown_messages(app), what="the backlog")
    pump(root, lambda: ("alice", "before the break") in shown_messages(app), what="history")
    items = chat.shown_items()
    kinds = [
        "divider" if isinstance(i, AwayDivider) else i.message.body
        for i in items
        if isinstance(i, AwayDivider | MessageLine)
    ]
    assert kinds == ["before the break", "divider", "you missed this"]
    assert "new since you were away" in chat.shown_text()
    assert chat.banner_label.cget("text") == (
        "While you were away: 2 new messages — 1 from bob, 1 in #lobby."
    )
    assert chat.banner.winfo_ismapped()
    assert ("@ bob", "1") in chat.sidebar_rows()
    # The password was never written to disk.
    files = [p for p in config_dir.rglob("*") if p.is_file()]
    assert files and all(b"correct horse" not in p.read_bytes() for p in files)
    prefs = json.loads((config_dir / "gui.json").read_text())
    assert prefs["nick"] == "alice"
    others.run(bob.close(), root)


def test_a_message_typed_while_the_server_restarts_is_delivered_once(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    log_in(app, server.port, "alice", "correct horse", register=True)
    view, model = app.chat_view, app.model
    assert view is not None and model is not None
    view.input.focus_force()
    view.input.insert("insert", "typed while the server was down")

    server.kill()
    pump(
        root,
        lambda: "reconnecting" in view.status_label.cget("text"),
        what="the status bar to say reconnecting",
    )
    view.input.event_generate("<Return>")
    pump(root, lambda: model.pending(), what="the pending message")
    assert isinstance(view.shown_items()[-1], PendingLine)
    assert "queued — will be sent when the connection is back" in view.shown_text()
    pump(root, lambda: "1 message queued" in view.status_label.cget("text"), what="1 queued")

    server.start()
    pump(
        root,
        lambda: (
            ("alice", "typed while the server was down") in shown_messages(app)
            and not model.pending()
        ),
        what="the message stored and shown",
    )
    pump(root, lambda: view.status_label.cget("text").startswith("Connected"))
    settle(root, 0.5)
    assert shown_messages(app).count(("alice", "typed while the server was down")) == 1

    async def stored() -> list[str]:
        carol = await open_client(server.port, "carol", tmp_path)
        page = await carol.history("lobby")
        await carol.close()
        return [m.body for m in page.messages]

    assert others.run(stored(), root).count("typed while the server was down") == 1


def test_login_errors_are_shown_next_to_their_field(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    dave = others.run(open_client(server.port, "dave", tmp_path))
    others.run(dave.register("dave's password"), root)
    view = app.connect_view
    assert view is not None

    def attempt(nick: str, password: str = "", server_text: str = "") -> None:
        view.server_var.set(server_text or f"127.0.0.1:{server.port}")
        view.nick_var.set(nick)
        view.password_var.set(password)
        view.connect_button.invoke()
        pump(root, lambda: not view.busy, what="the login attempt")
        settle(root, 0.05)
        assert app.chat_view is None

    attempt("dave", "not the password")
    assert view.errors["password"].cget("text") == "Wrong password for “dave”."
    assert str(view.errors["password"].cget("style")) == "Error.TLabel"
    attempt("dave")
    assert view.errors["password"].cget("text") == "“dave” is registered: enter its password."
    view.register_var.set(True)
    attempt("dave", "a new password")
    assert view.errors["nick"].cget("text").startswith("“dave” is already registered.")
    view.register_var.set(False)
    attempt("dave", "", "127.0.0.1:bad")
    assert view.errors["server"].cget("text").startswith("Type the server as host")
    others.run(dave.close(), root)
    server.kill()
    attempt("erin")
    assert (
        view.errors["server"]
        .cget("text")
        .startswith(f"Nobody is answering at 127.0.0.1:{server.port}.")
    )


def test_themes_and_scaling(root: Any, config_dir: Path) -> None:
    """Dark and light switch at run time and are remembered; 150 % scales the window."""
    gui = GuiApp(root, config_dir=config_dir, theme="dark", scale=1.5)
    try:
        root.update()
        assert gui.theme.name == "dark"
        assert root.minsize() == (1080, 720)
        assert gui.theme.fonts["body"].metrics("linespace") >= 18
        gui.set_theme("light")
        root.update()
        assert json.loads((config_dir / "gui.json").read_text())["theme"] == "light"
        assert str(gui.connect_view.lan_list.cget("background")) == "#ffffff"  # type: ignore[union-attr]
    finally:
        gui.shutdown(timeout=1)


def test_menus_dialogs_and_refused_messages(server: ServerProcess, app: GuiApp) -> None:
    """Join a room, register and change the password from the menus; a refused DM comes back."""
    root = app.root
    log_in(app, server.port, "frank")
    view, model = app.chat_view, app.model
    assert view is not None and model is not None

    app.menu_chat.invoke(0)  # Join a room…
    dialog = pump(root, lambda: app.dialog, what="the join dialog")
    dialog.vars["room"].set("Not A Room!")
    dialog.submit_button.invoke()
    pump(root, lambda: dialog.errors["room"].cget("text").startswith("Room names are"))
    dialog.vars["room"].set("#Chess")
    dialog.entries["room"].event_generate("<Return>")
    pump(root, lambda: model.active == Conversation.room("chess"), what="#chess")
    assert app.dialog is None
    assert view.title_label.cget("text") == "# chess"

    app.menu_account.invoke(0)  # Register this nick…
    dialog = pump(root, lambda: app.dialog, what="the register dialog")
    dialog.vars["password"].set("frank's secret")
    dialog.vars["again"].set("franks secret")
    dialog.submit_button.invoke()
    assert dialog.errors["again"].cget("text") == "The two passwords differ."
    dialog.vars["again"].set("frank's secret")
    dialog.submit_button.invoke()
    pump(root, lambda: model.state.account and app.dialog is None, what="registered")
    pump(root, lambda: "(account)" in view.status_label.cget("text"))
    assert "frank is now registered." in view.shown_text()

    app.menu_account.invoke(1)  # Change password…
    dialog = pump(root, lambda: app.dialog, what="the password dialog")
    dialog.vars["old"].set("not it")
    dialog.vars["new"].set("a brand new one")
    dialog.vars["again"].set("a brand new one")
    dialog.submit_button.invoke()
    pump(root, lambda: dialog.errors["old"].cget("text") == "That is not your current password.")
    dialog.vars["old"].set("frank's secret")
    dialog.submit_button.invoke()
    pump(root, lambda: app.dialog is None, what="the password changed")

    # A DM to nobody is refused: the refusal shows, and the text returns to the input box.
    app.open_dm("nobody-here")
    type_and_enter(app, "hello?")
    pump(root, lambda: "not sent:" in view.shown_text(), what="the refusal")
    assert view.input_text() == "hello?"


def test_a_prepare_hook_can_ask_the_user_to_trust_a_server(
    server: ServerProcess, root: Any, config_dir: Path
) -> None:
    """The connect window's hook (TLS pinning in `chinwag gui`) asks its question in a dialog."""
    asked: list[tuple[str, str]] = []

    def prepare(text: str, say: Say, ask: Ask) -> Prepared:
        say(f"{text} is not known yet. Its fingerprint is")
        say("  AB:CD:EF")
        answer = ask("trust this server? [y/N] ")
        asked.append((text, str(answer)))
        if answer != "y":
            raise ValueError("not trusted; chinwag did not connect")
        return Prepared("127.0.0.1", server.port)

    app = GuiApp(root, config_dir=config_dir, prepare=prepare, client_options=FAST_RECONNECT)
    try:
        view = app.connect_view
        assert view is not None
        view.server_var.set("chat.example")
        view.nick_var.set("gina")
        for n, answer in enumerate(("n", "y"), 1):
            view.connect_button.invoke()
            dialog = pump(root, lambda: _trust_dialog(root), what="the trust question")
            assert "chat.example is not known yet" in str(dialog.intro_label.cget("text"))
            if answer == "y":
                dialog.submit_button.invoke()
            else:
                dialog.cancel_button.focus_force()
                dialog.cancel_button.event_generate("<Escape>")
            pump(root, functools.partial(_answered, asked, n), what=f"answer {n}")
            if answer == "n":
                pump(root, lambda: not view.busy, what="the refused attempt")
                assert view.errors["server"].cget("text") == "not trusted; chinwag did not connect"
        pump(root, lambda: app.model is not None and app.model.caught_up, what="logged in")
        assert asked == [("chat.example", "n"), ("chat.example", "y")]
        assert app.prefs.recent[0] == f"127.0.0.1:{server.port}"
    finally:
        app.shutdown(timeout=2)


def _answered(asked: list[tuple[str, str]], n: int) -> bool:
    return len(asked) == n


def _trust_dialog(root: Any) -> Any:
    for child in root.winfo_children():
        if isinstance(child, FormDialog) and not child.closed:
            return child
    return None


class _NoActions:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def test_the_conversation_view_redraws_only_what_changed_and_stays_right(root: Any) -> None:
    """Appends, a trimmed head and a changed tail draw the same text as a full redraw."""
    from datetime import UTC, datetime, timedelta

    from chinwag.client.gui.chat import ChatView
    from chinwag.client.gui.model import DaySeparator, NoticeLine
    from chinwag.client.gui.theme import Theme

    theme = Theme(root)
    live = ChatView(root, theme, _NoActions(), "alice")
    fresh = ChatView(root, theme, _NoActions(), "alice")
    t0 = datetime(2026, 11, 24, 9, tzinfo=UTC)

    def line(n: int, header: bool = True) -> MessageLine:
        m = Message(
            n, t0 + timedelta(hours=n), "bob" if n % 2 else "alice", f"m{n}\n```\nb{n}\n```"
        )
        return MessageLine(m, header)

    def day(n: int) -> DaySeparator:
        return DaySeparator((t0 + timedelta(hours=n)).date())

    steps: list[list[Any]] = [
        [day(1), line(1), line(2)],
        [day(1), line(1), line(2), line(3)],  # an append
        [day(1), line(2), line(3), line(4)],  # the oldest went, a new one came
        [line(3, header=True), line(4), NoticeLine("bob left")],  # the day went too
        [line(3), line(4), NoticeLine("bob left"), PendingLine(1, "hi", "queued")],
        [line(3), line(4), NoticeLine("bob left"), line(5)],  # the pending one was stored
        [day(1), line(0), line(3), line(4), NoticeLine("bob left"), line(5)],  # history came
    ]
    for items in steps:
        live.render(items)
        fresh.render(items, reset=True)
        root.update()
        assert live.shown_text() == fresh.shown_text()
        assert live.shown_items() == items
        starts = [live.text.get(i, f"{i} lineend") for i in live._starts]
        assert starts == [fresh.text.get(i, f"{i} lineend") for i in fresh._starts]


def test_an_account_that_leaves_and_comes_back_is_not_shown_as_a_guest(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    bob = others.run(open_client(server.port, "bob", tmp_path))
    others.run(bob.register("bob-password"), root)
    log_in(app, server.port, "alice")
    view = app.chat_view
    assert view is not None
    pump(root, lambda: view.member_rows() == ["alice  (you)", "bob"], what="bob, an account")
    others.run(bob.close(), root)
    pump(root, lambda: view.member_rows() == ["alice  (you)"], what="bob gone")
    again = others.run(open_client(server.port, "bob", tmp_path, password="bob-password"))
    pump(root, lambda: len(view.member_rows()) == 2, what="bob back")
    settle(root, 0.5)
    assert view.member_rows() == ["alice  (you)", "bob"]
    others.run(again.close(), root)


def test_members_are_not_shown_online_during_an_outage_and_are_fetched_again(
    server: ServerProcess, app: GuiApp, others: LoopThread, tmp_path: Path
) -> None:
    root = app.root
    bob = others.run(open_client(server.port, "bob", tmp_path))
    log_in(app, server.port, "alice")
    view = app.chat_view
    assert view is not None
    pump(root, lambda: len(view.member_rows()) == 2, what="the member list")
    assert view.members_label.cget("text") == "ONLINE — 2"
    green = str(app.theme.dot(app.theme.palette.ok))
    assert all(str(view.members.item(i, "image")[0]) == green for i in view.members.get_children())

    server.kill()
    pump(root, lambda: "reconnecting" in view.status_label.cget("text"), what="reconnecting")
    assert view.members_label.cget("text") == "LAST SEEN — 2"
    assert not any(
        str(view.members.item(i, "image")[0]) == green for i in view.members.get_children()
    )
    others.run(bob.close(timeout=0.5), root)  # bob leaves while the server is down

    server.start()
    pump(root, lambda: view.status_label.cget("text").startswith("Connected"), what="back")
    pump(root, lambda: view.member_rows() == ["alice  (you)"], what="bob gone from the list")
    assert view.members_label.cget("text") == "ONLINE — 1"


def test_a_narrow_window_wraps_the_banner_hints_and_panel_header(root: Any) -> None:
    """Nothing a user must read is cut off at the window's edge."""
    from chinwag.client.gui.chat import ChatView
    from chinwag.client.gui.theme import Theme

    theme = Theme(root)
    view = ChatView(root, theme, _NoActions(), "alice")
    view.grid(row=0, column=0, sticky="nsew")
    root.columnconfigure(0, weight=1)
    root.rowconfigure(0, weight=1)
    try:
        root.geometry("420x560")
        view.set_summary(
            "While you were away: 12 messages from bob, 3 in #games, 40 in #lobby and "
            "7 from carol. They are marked below with a line."
        )
        view.set_members([], "alice", "In this chat")
        settle(root, 0.3)
        assert view.winfo_width() <= 430
        for label in (view.banner_label, view.hint_label):
            parent = root.nametowidget(label.winfo_parent())
            assert label.winfo_reqwidth() <= parent.winfo_width(), label.cget("text")
        # The panel steps aside in a narrow window; shown, its header still fits.
        root.geometry("1000x560")
        settle(root, 0.3)
        assert view.members_label.winfo_reqwidth() <= view.members_frame.winfo_width()
    finally:
        view.destroy()
        root.geometry("")


def test_a_plain_address_of_a_tls_server_says_what_to_do(app: GuiApp, tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "tls", {}, args=["--tls", "--no-announce"]).start()
    try:
        view = pump(app.root, lambda: app.connect_view, what="the connect window")
        view.server_var.set(f"127.0.0.1:{srv.port}")
        view.nick_var.set("ann")
        view.connect_button.invoke()
        pump(app.root, lambda: not view.busy and view.errors["server"].cget("text"))
        assert "This server speaks TLS" in view.errors["server"].cget("text")
    finally:
        srv.kill()
