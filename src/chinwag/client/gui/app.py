"""``chinwag gui``: the desktop app's controller.

:class:`GuiApp` owns the Tk root's content, the :class:`AsyncBridge` to the
network thread, the current :class:`NetSession` and its :class:`GuiModel`. It
turns the user's actions into coroutines for the network thread and the
network's events into model updates and redraws. It never waits for the
network: every request is handed over with a callback, and the window keeps
drawing meanwhile.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import gc
import os
import sys
import threading
import time
import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from tkinter import messagebox
from typing import Any, Final

from chinwag.client.events import (
    CaughtUp,
    Changed,
    ErrorReceived,
    HistoryPage,
    Message,
    Moderated,
    Presence,
    ReadMarker,
    Receipt,
    Renamed,
    RoomDetails,
    SendFailed,
    Sent,
    SettingsChanged,
    Status,
    Typing,
    User,
    Welcome,
)
from chinwag.client.gui.bridge import AsyncBridge, Outcome
from chinwag.client.gui.chat import ChatView, StatusKind
from chinwag.client.gui.connect import ConnectView
from chinwag.client.gui.dialogs import Field, FormDialog
from chinwag.client.gui.model import (
    LOBBY,
    GuiModel,
    emoji_from_text,
    explain_login_error,
    rate_limited_text,
)
from chinwag.client.gui.moderation import (
    DURATIONS,
    GOVERNORS,
    BlockedDialog,
    MemberAction,
    RoomSettingsDialog,
    refusal_text,
)
from chinwag.client.gui.prefs import Prefs, ThemeName
from chinwag.client.gui.session import (
    LanServers,
    LanSource,
    NetEvent,
    NetSession,
    Prepare,
    poll_lan,
)
from chinwag.client.gui.theme import Theme
from chinwag.client.state import Conversation
from chinwag.client.tui import parse_server
from chinwag.errors import ChatError

__all__ = ["GuiApp", "run_gui"]

TICK_MS: Final = 250
TYPING_EVERY: Final = 3.0
"""Seconds between two "typing" notices we send while the user types."""
FLASH_TICKS: Final = 4
"""The title alternates every FLASH_TICKS ticks (1 s) while an alert waits."""
JUMP_AROUND: Final = 25
"""Messages loaded each side of a message that is not loaded here (a reply's original, a
search result): the page around it (issue 15)."""
GAP_PAGE: Final = 100
"""Messages per page that fills the gap after a jump's page ("Load newer messages")."""


def collect_tk_garbage() -> None:
    """Collect unreachable objects now, on the Tk thread.

    Widgets, variables, fonts and images sit in reference cycles, so the cycle
    collector frees them, on whichever thread happens to trigger it; their
    ``__del__`` then calls Tcl. Collecting here, right after views or dialogs
    are dropped, keeps those calls on the Tk thread rather than the network's.
    """
    gc.collect()


QUESTION_TIMEOUT: Final = 600.0
"""Seconds a worker waits for the user to answer a question before giving up."""


@dataclass(eq=False)
class _Question:
    """A question from a worker thread (``prepare``), answered on the Tk thread."""

    prompt: str
    said: tuple[str, ...]
    answer: str | None = None
    answered: threading.Event = field(default_factory=threading.Event)

    def settle(self, answer: str | None) -> None:
        if not self.answered.is_set():
            self.answer = answer
            self.answered.set()


class GuiApp:
    """The desktop app in a Tk root: the connect window, then the main window.

    Args:
        root: the Tk root (the app fills it; the caller runs ``mainloop``).
        server: ``host:port`` to fill in (default: the most recent one).
        nick: the nick to fill in (default: the last one used).
        config_dir: the client's config directory (device id, ``gui.json``).
        theme: ``light`` or ``dark`` (default: the remembered one).
        scale: 1.5 for 150 % (fonts and spacing).
        lan_source: where the connect window's LAN list comes from (see
            :data:`~chinwag.client.gui.session.LanSource`); None: no LAN list.
        prepare: turns the server field into where and how to connect (TLS,
            invites; see :data:`~chinwag.client.gui.session.Prepare`); None:
            plain TCP to ``host[:port]``.
        client_options: more :class:`~chinwag.client.ChatClient` arguments.
        clock: a monotonic clock (for countdowns and typing notices).
    """

    def __init__(
        self,
        root: tk.Tk,
        *,
        server: str | None = None,
        nick: str | None = None,
        config_dir: str | os.PathLike[str] | None = None,
        theme: ThemeName | None = None,
        scale: float = 1.0,
        lan_source: LanSource | None = None,
        prepare: Prepare | None = None,
        client_options: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.config_dir = config_dir
        self.prefs = Prefs.load(config_dir)
        if theme is not None:
            self.prefs.theme = theme
        self.theme = Theme(root, self.prefs.theme, scale)
        self.client_options = dict(client_options or {})
        self.clock = clock
        self.bridge = AsyncBridge(root, self._on_item)
        self.model: GuiModel | None = None
        self.session: NetSession | None = None
        self.connect_view: ConnectView | None = None
        self.chat_view: ChatView | None = None
        self.dialog: FormDialog | None = None
        self.room_settings: RoomSettingsDialog | None = None
        self.blocked_dialog: BlockedDialog | None = None
        self._sessions = 0
        self._login: NetSession | None = None
        self._login_form: tuple[str, str, bool] = ("", "", False)
        self._locked_until: float | None = None
        self._last_typing = 0.0
        self._tick_no = 0
        self._flash = False
        self._refresh_due = False
        self._closed = False
        self._lan_source = lan_source
        self._prepare = prepare
        self._questions: list[_Question] = []
        self._lan_task: concurrent.futures.Future[None] | None = None
        self._recent = list(self.prefs.recent)
        if server:
            self._recent = [server] + [s for s in self._recent if s != server]
        self._nick = nick if nick is not None else self.prefs.nick

        root.title("chinwag")
        px = self.theme.px
        root.minsize(px(720), px(480))
        # A comfortable size, but never larger than the screen.
        width = min(px(1040), max(px(720), int(root.winfo_screenwidth() * 0.9)))
        height = min(px(700), max(px(480), int(root.winfo_screenheight() * 0.85)))
        root.geometry(f"{width}x{height}")
        root.protocol("WM_DELETE_WINDOW", self.quit)
        root.bind("<FocusIn>", self._focus_in, add=True)
        root.bind("<FocusOut>", self._focus_out, add=True)
        root.bind_all("<Control-q>", lambda _e: self.quit())
        root.bind_all("<Alt-Up>", lambda _e: self._cycle(-1))
        root.bind_all("<Alt-Down>", lambda _e: self._cycle(1))
        self._build_menu()
        self.theme.subscribe(self._restyle_menus)
        self.show_connect()
        self._tick_after: str | None = root.after(TICK_MS, self._tick)

    # --- menus ---------------------------------------------------------------------------

    def _build_menu(self) -> None:
        bar = tk.Menu(self.root, tearoff=False)
        self.menu_chat = tk.Menu(bar, tearoff=False)
        self.menu_chat.add_command(label="Join a room…", command=self.ask_join)
        self.menu_chat.add_command(label="Message someone…", command=self.ask_dm)
        self.menu_chat.add_command(label="Leave this room", command=self._leave_active)
        self.menu_chat.add_separator()
        self.menu_chat.add_command(label="Log out", command=self.logout)
        self.menu_chat.add_command(label="Quit", accelerator="Ctrl+Q", command=self.quit)
        self.menu_account = tk.Menu(bar, tearoff=False)
        self.menu_account.add_command(label="Register this nick…", command=self.ask_register)
        self.menu_account.add_command(label="Change password…", command=self.ask_passwd)
        self.menu_account.add_separator()
        self.receipts_var = tk.BooleanVar(self.root, value=self.prefs.receipts)
        self._receipts_told = False  # whether the last welcome said the account's setting
        self.menu_account.add_checkbutton(
            label="Read receipts in direct messages",
            variable=self.receipts_var,
            command=self._toggle_receipts,
        )
        self.menu_account.add_separator()
        self.menu_account.add_command(label="Blocked people…", command=self.ask_blocked)
        self.menu_view = tk.Menu(bar, tearoff=False)
        self.theme_var = tk.StringVar(self.root, value=self.theme.name)
        self.menu_view.add_radiobutton(
            label="Light theme",
            value="light",
            variable=self.theme_var,
            command=lambda: self.set_theme("light"),
        )
        self.menu_view.add_radiobutton(
            label="Dark theme",
            value="dark",
            variable=self.theme_var,
            command=lambda: self.set_theme("dark"),
        )
        self.menu_view.add_separator()
        self.members_var = tk.BooleanVar(self.root, value=True)
        self.menu_view.add_checkbutton(
            label="Show online members", variable=self.members_var, command=self._toggle_members
        )
        bar.add_cascade(label="Chat", menu=self.menu_chat)
        bar.add_cascade(label="Account", menu=self.menu_account)
        bar.add_cascade(label="View", menu=self.menu_view)
        self.menubar = bar
        self.root.configure(menu=bar)
        self._restyle_menus()

    def _restyle_menus(self) -> None:
        for menu in (self.menubar, self.menu_chat, self.menu_account, self.menu_view):
            self.theme.style_menu(menu)

    def _update_menus(self) -> None:
        logged_in = self.chat_view is not None and self.model is not None
        state = "normal" if logged_in else "disabled"
        for index in (0, 1, 4):
            self.menu_chat.entryconfigure(index, state=state)
        room = self.model.active if self.model is not None else LOBBY
        can_leave = logged_in and room.kind == "room" and room.name != "lobby"
        self.menu_chat.entryconfigure(2, state="normal" if can_leave else "disabled")
        account = self.model is not None and self.model.state.account
        self.menu_account.entryconfigure(
            0, state="normal" if logged_in and not account else "disabled"
        )
        self.menu_account.entryconfigure(1, state="normal" if logged_in and account else "disabled")
        self.menu_account.entryconfigure(3, state="normal" if logged_in and account else "disabled")
        self.menu_account.entryconfigure(5, state=state)

    # --- the connect window --------------------------------------------------------------

    def show_connect(self, error: str | None = None) -> None:
        """Show the connect window (after start-up or log-out)."""
        for window in (self.room_settings, self.blocked_dialog):
            if window is not None:
                window.close()
        self.room_settings = self.blocked_dialog = None
        if self.chat_view is not None:
            self.chat_view.destroy()
            self.chat_view = None
            collect_tk_garbage()
        if self.connect_view is None:
            self.connect_view = ConnectView(
                self.root,
                self.theme,
                self.connect,
                recent=self._recent,
                nick=self._nick,
                lan=self._lan_source is not None,
            )
            self.connect_view.pack(fill="both", expand=True)
        if error:
            self.connect_view.show_error("form", error)
        self.root.title("chinwag — connect")
        self.connect_view.focus_first()
        self._update_menus()
        if self._lan_source is not None and self._lan_task is None:
            # Only while the connect window shows: it is the only place the list is seen.
            self._lan_task = self.bridge.submit(poll_lan(self._lan_source, self.bridge.post))

    def _stop_lan(self) -> None:
        if self._lan_task is not None:
            self._lan_task.cancel()
            self._lan_task = None

    def connect(self, server: str, nick: str, password: str, register: bool) -> None:
        """Log in with the connect window's form (the Connect button)."""
        view = self.connect_view
        if view is None or self._login is not None:
            return
        view.clear_errors()
        if not server:
            view.show_error("server", "Type the server's address, e.g. localhost:5050.")
            return
        if self._prepare is None:
            try:
                parse_server(server)
            except ValueError:
                view.show_error(
                    "server", "Type the server as host or host:port, e.g. localhost:5050."
                )
                return
        if not nick:
            view.show_error("nick", "Choose a nick.")
            return
        if register and len(password) < 8:
            view.show_error("password", "To register, choose a password of at least 8 characters.")
            return
        self._sessions += 1
        session = NetSession(
            self._sessions,
            self.bridge.post,
            server,
            nick,
            password or None,
            register=register,
            config_dir=self.config_dir,
            options=self.client_options,
            prepare=self._prepare,
            ask=self._ask_from_worker,
        )
        self._login = session
        self._login_form = (server, nick, register)
        view.set_busy(True, "Registering…" if register else "Connecting…")
        self.bridge.call(session.login(), lambda outcome: self._login_done(session, outcome))

    def _login_done(self, session: NetSession, outcome: Outcome[Welcome]) -> None:
        server, nick, register = self._login_form
        if session is not self._login:
            return
        self._login = None
        view = self.connect_view
        if view is not None:
            view.set_busy(False)
        if outcome.error is not None or outcome.value is None:
            problem = explain_login_error(
                outcome.error or RuntimeError("no welcome"),
                server=server,
                nick=nick,
                register=register,
            )
            if view is not None:
                view.show_error(problem.field, problem.text)
                if problem.retry_after is not None:
                    self._locked_until = self.clock() + problem.retry_after
                    view.lock(True)
            return
        welcome = outcome.value
        address = session.address  # an invite link resolved to host:port: no token kept
        self._recent = [address] + [s for s in self._recent if s != address]
        self._nick = nick
        self.prefs.remember_server(address, nick)
        self.session = session
        self.model = GuiModel(welcome.nick, address)
        self.model.tls = session.tls
        self.model.state.account = welcome.account
        self.model.on_status(Status("connected"), self.clock())  # it is: the login just succeeded
        self.show_chat()

    # --- the main window -----------------------------------------------------------------

    def show_chat(self) -> None:
        """Replace the connect window with the main window."""
        assert self.model is not None
        self._stop_lan()
        if self.connect_view is not None:
            self.connect_view.destroy()
            self.connect_view = None
            collect_tk_garbage()
        self.chat_view = ChatView(self.root, self.theme, self, self.model.nick)
        self.chat_view.pack(fill="both", expand=True)
        self.chat_view.show_members(bool(self.members_var.get()))
        self.chat_view.focus_input()
        self._refresh(full=True)
        self._update_menus()

    def _schedule_refresh(self) -> None:
        if not self._refresh_due:
            self._refresh_due = True
            self.root.after_idle(self._refresh)

    def _refresh(self, full: bool = False) -> None:
        """Redraw what changed (called once after a batch of events)."""
        self._refresh_due = False
        view, model = self.chat_view, self.model
        if view is None or model is None:
            return
        rooms, dms = model.sidebar()
        view.set_sidebar(rooms, dms, model.active)
        conv = model.active
        settings = False
        if conv.kind == "room":
            members = model.members(conv.name)
            subtitle = model.rules.subtitle(
                conv.name, len(members) if members is not None else None
            )
            title = f"# {conv.name}"
            settings = model.rules.can_edit_settings(conv.name)
        else:
            subtitle = "Direct messages"
            title = f"@ {model.target(conv)}"
        view.set_header(conv, title, subtitle, settings=settings)
        view.set_summary(model.summary)
        view.render(model.items(conv), reset=full)
        view.set_reply(model.replying(conv))
        self._mark_read()
        self._refresh_status()
        self._update_title()
        self._update_menus()

    def _mark_read(self) -> None:
        """The conversation on screen is read: move the account's marker (all devices see it)."""
        model, session = self.model, self.session
        if model is None or session is None:
            return
        due = model.read_due()
        if due is None:
            return
        conv, upto = due
        model.read_sent(conv, upto)

        def done(outcome: Outcome[None]) -> None:
            if self.model is model:
                model.read_done(conv, upto, outcome.error is None)
                self._schedule_refresh()

        self.bridge.call(session.mark_read(conv, model.target(conv), upto), done)

    def _refresh_status(self) -> None:
        view, model = self.chat_view, self.model
        if view is None or model is None:
            return
        now = self.clock()
        state = model.status.state
        kind: StatusKind = (
            "ok" if state == "connected" else "warn" if state == "reconnecting" else "error"
        )
        view.set_status(model.status_text(now), kind)
        view.set_typing(model.typing_text(model.active, now))

    def _refresh_members(self) -> None:
        view, model = self.chat_view, self.model
        if view is None or model is None:
            return
        conv = model.active
        live = model.status.state == "connected"
        if conv.kind == "room":
            view.set_members(model.members(conv.name), model.nick, live=live)
        else:
            peer = model.target(conv)
            users = [User(model.nick, model.state.account), User(peer, True)]
            if model.state.is_me(peer):
                users = users[:1]
            view.set_members(users, model.nick, "In this chat", live=live)

    def _update_title(self) -> None:
        if self.model is None or self.chat_view is None:
            return
        flash = self._flash and self.model.alert is not None and not self.model.focused
        title = self.model.title(flash)
        if self.root.title() != title:
            self.root.title(title)

    # --- events from the network thread --------------------------------------------------

    def _on_item(self, item: object) -> None:
        if isinstance(item, _Question):
            self._ask_user(item)
            return
        if isinstance(item, LanServers):
            if self.connect_view is not None:
                self.connect_view.set_lan(item.servers)
            return
        if not isinstance(item, NetEvent):
            return
        session, model = self.session, self.model
        if session is None or model is None or item.session != session.number:
            return  # a session we logged out of
        event = item.event
        now = self.clock()
        match event:
            case None:
                model.on_status(Status("offline", error=model.status.error), now)
            case Message():
                arrival = model.on_message(event)
                if arrival is not None and arrival.alert:
                    self._alert()
            case Welcome():
                model.on_welcome(event)
                if event.resumed:
                    model.add_notice(model.active, "Reconnected.")
                self._receipts_told = event.receipts is not None
                if event.receipts is not None:  # issue 15: as the server keeps it
                    self._adopt_receipts(event.receipts)
            case SettingsChanged():
                self._adopt_receipts(event.receipts)  # changed on another device
            case CaughtUp():
                model.on_caught_up(event)
                if not event.resumed:
                    self._after_login()
                elif model.active.kind == "room":  # who came and went during the outage
                    self._load_members(model.active.name)
            case Status():
                model.on_status(event, now)
                self._refresh_members()
                if event.state == "offline" and event.error:
                    if event.error.startswith("banned: "):
                        # A server ban (§12): the library tried once and was refused.
                        text = event.error.removeprefix("banned: ")
                        text = f"Disconnected: {text[:1].upper()}{text[1:]}. Not reconnecting."
                    else:
                        text = (
                            f"Disconnected for good: {event.error}. "
                            "Log out and in again to continue."
                        )
                    model.add_notice(model.active, text, "error")
            case Sent():
                model.on_sent(event)
            case SendFailed():
                restored = model.on_send_failed(event)
                view = self.chat_view
                if restored == model.active and view and not view.input_text().strip():
                    view.set_input(model.draft(restored))
            case Renamed():
                model.on_renamed(event)
                self._refresh_members()
            case Presence():
                if model.on_presence(event):
                    self._load_members(event.room.lower())
                self._refresh_members()
            case Typing():
                model.on_typing(event, now)
            case Changed():
                arrival = model.on_change(event)
                if arrival is not None and arrival.alert:
                    self._alert()
                if model.editing is None and self.chat_view is not None:
                    self.chat_view.stop_editing()
            case ReadMarker():
                model.on_read_marker(event)
            case Receipt():
                model.on_receipt(event)
            case RoomDetails():
                model.on_room_details(event)
            case Moderated():
                model.on_moderated(event)
                self._refresh_members()
            case ErrorReceived():
                error = event.error
                model.add_notice(model.active, f"The server said: {error.message}", "error")
            case _:
                pass
        self._schedule_refresh()

    def _after_login(self) -> None:
        """The login's backlog is in: fetch the active conversation's history and members."""
        model = self.model
        if model is None:
            return
        self._load_history(model.active)
        if model.active.kind == "room":
            self._load_members(model.active.name)
        if model.state.account and not self._receipts_told:  # a server that does not say
            self._send_receipts(bool(self.receipts_var.get()), quiet=True)
        self._load_blocks()

    def _adopt_receipts(self, on: bool) -> None:
        """The account's receipts setting, as the server says it is (issue 15)."""
        if self.model is not None:
            self.model.receipts = on
        self.receipts_var.set(on)
        if self.prefs.receipts != on:
            self.prefs.receipts = on
            self.prefs.save()

    def _toggle_receipts(self) -> None:
        on = bool(self.receipts_var.get())
        self.prefs.receipts = on
        self.prefs.save()
        self._send_receipts(on)

    def _send_receipts(self, on: bool, *, quiet: bool = False) -> None:
        """Tell the server this account's receipts setting (the server keeps it)."""
        model, session = self.model, self.session
        if model is None or session is None:
            return

        def done(outcome: Outcome[None]) -> None:
            if self.model is not model:
                return
            if outcome.error is None:
                model.receipts = on
                if not quiet:
                    state = "on: people who turned them on too" if on else "off"
                    model.add_notice(model.active, f"Read receipts are {state}.")
            else:
                error = outcome.error
                text = error.message if isinstance(error, ChatError) else "not connected"
                model.add_notice(
                    model.active, f"Read receipts were not changed: {text}. Try again.", "error"
                )
            self._schedule_refresh()

        self.bridge.call(session.set_receipts(on), done)

    def _load_history(self, conversation: Conversation, *, earlier: bool = False) -> None:
        model, session = self.model, self.session
        if model is None or session is None:
            return
        if not earlier and not model.needs_history(conversation):
            return
        model.history_started(conversation)
        before = model.oldest_id(conversation)

        def done(outcome: Outcome[HistoryPage]) -> None:
            if self.model is not model:
                return
            if outcome.value is not None:
                model.add_history(conversation, outcome.value)
            else:
                model.history_failed(conversation)
            if model.active == conversation:
                self._refresh(full=True)

        self.bridge.call(session.history(conversation, model.target(conversation), before), done)

    def _load_members(self, room: str) -> None:
        model, session = self.model, self.session
        if model is None or session is None:
            return

        def done(outcome: Outcome[list[User]]) -> None:
            if self.model is model and outcome.value is not None:
                model.set_members(room, outcome.value)
                self._refresh_members()
                self._schedule_refresh()

        self.bridge.call(session.who(room), done)

    def _alert(self) -> None:
        """A DM or a mention while the window is not focused: ring and flash."""
        with contextlib.suppress(tk.TclError):
            self.root.bell()
        self._flash = True
        self._update_title()

    # --- ChatActions: what the main window asks for --------------------------------------

    def select(self, conversation: Conversation) -> None:
        """Show a conversation (a click in the sidebar)."""
        view, model = self.chat_view, self.model
        if view is None or model is None:
            return
        draft = model.switch(conversation, view.input_text())
        view.set_input(draft)
        self._refresh(full=True)
        self._refresh_members()
        self._load_history(conversation)
        if conversation.kind == "room":
            self._load_members(conversation.name)
        view.focus_input()

    def send_text(self, text: str) -> bool:
        """Send what the input box holds to the active conversation; True if it was taken."""
        model, session = self.model, self.session
        if model is None or session is None:
            return False
        body = text.strip("\n").rstrip()
        if not body.strip():
            return False
        conv = model.active
        if conv.kind == "room" and conv.name not in model.state.rooms:
            model.add_notice(conv, f"You are not in #{conv.name}; join it first.", "error")
            self._schedule_refresh()
            return False
        item = model.queue(conv, body)
        reply_to = item.reply_to

        def done(outcome: Outcome[str]) -> None:
            if self.model is not model:
                return
            if outcome.value is not None:
                model.bind_cid(item.key, outcome.value)
            else:
                error = outcome.error
                reason = error.message if isinstance(error, ChatError) else "the app is offline"
                model.refuse(item.key, reason)
                view = self.chat_view
                if view is not None and model.active == conv and not view.input_text().strip():
                    view.set_input(model.draft(conv))
            self._schedule_refresh()

        self.bridge.call(session.send(conv, model.target(conv), body, reply_to), done)
        self._last_typing = 0.0
        self._schedule_refresh()
        if self.chat_view is not None:
            self.chat_view.render(model.items(conv), scroll=True)
        return True

    # --- message actions -------------------------------------------------------------

    def _failed(self, what: str) -> Callable[[Outcome[int]], None]:
        """A callback that says in the conversation why ``what`` did not happen."""
        model = self.model

        def done(outcome: Outcome[int]) -> None:
            if self.model is not model or model is None or outcome.error is None:
                return
            why = _why(outcome.error)
            error = outcome.error
            if isinstance(error, ChatError) and error.extra.get("reason") in ("muted", "announce"):
                room = model.active.name if model.active.kind == "room" else None
                why = refusal_text(error, room, local=model.local, now=datetime.now(UTC))
            model.add_notice(model.active, f"{what}: {why}", "error")
            self._schedule_refresh()

        return done

    def start_reply(self, message_id: int) -> None:
        """Answer a message: the next one sent here quotes it."""
        if self.model is not None and self.model.start_reply(message_id):
            self._refresh()
            if self.chat_view is not None:
                self.chat_view.focus_input()

    def cancel_reply(self) -> None:
        """Send the next message as no reply after all."""
        if self.model is not None:
            self.model.cancel_reply()
            self._refresh()

    def react(self, message_id: int, emoji: str, on: bool) -> None:
        """Put a reaction on a message (or take ours off)."""
        if self.session is not None:
            self.bridge.call(
                self.session.react(message_id, emoji, on), self._failed("Reaction not changed")
            )

    def ask_reaction(self, message_id: int) -> None:
        """Ask for any emoji (or its name) to react with."""

        def submit(values: dict[str, str]) -> None:
            emoji = emoji_from_text(values["emoji"])
            if emoji is None:
                dialog.show_error(
                    "emoji", "Type an emoji, or its name such as “kangaroo” or “thumbs up sign”."
                )
                return
            self._close_dialog(dialog)
            self.react(message_id, emoji, True)

        made = self._open_dialog(
            lambda: FormDialog(
                self.root,
                self.theme,
                "React",
                [Field("emoji", "Emoji", hint="An emoji, or its name: “kangaroo”.")],
                "React",
                submit,
            )
        )
        if made is None:
            return
        dialog = made

    def start_edit(self, message_id: int) -> None:
        """Edit one of our messages in place."""
        if self.model is not None and self.model.start_edit(message_id):
            self._refresh()

    def cancel_edit(self) -> None:
        """Leave the message as it was."""
        if self.model is not None:
            self.model.stop_edit()
        if self.chat_view is not None:
            self.chat_view.stop_editing()
            self._refresh()
            self.chat_view.focus_input()

    def save_edit(self, message_id: int, body: str) -> None:
        """Send the edited text; the message shows it when the server's ``edited`` comes."""
        model, session = self.model, self.session
        if model is None or session is None:
            return
        text = body.strip("\n").rstrip()
        old = model.message(message_id)
        if not text.strip():
            model.add_notice(
                model.active, "A message cannot be empty: use Delete to remove it.", "error"
            )
            self._refresh()
            return
        self.cancel_edit()
        if old is None or old.body == text:
            return
        said = self._failed("Not edited")

        def done(outcome: Outcome[int]) -> None:
            said(outcome)
            if outcome.error is None or self.model is not model or model.editing is not None:
                return
            # Refused: the box comes back with what was typed, so nothing is lost.
            if model.start_edit(message_id) and self.chat_view is not None:
                self.chat_view.resume_edit(message_id, text)
                self._refresh()

        self.bridge.call(session.edit(message_id, text), done)

    def delete(self, message_id: int) -> None:
        """Ask, then delete one of our messages, or as a moderator someone else's in a
        room we moderate (its text is erased on the server)."""
        model = self.model
        if model is None or not model.can_delete(message_id):
            return
        quote = model.quote(message_id)
        theirs = "" if model.can_edit(message_id) else f" by {quote.sender}"
        logged = "" if not theirs else " As a moderator's action, it is logged."

        def submit(_values: dict[str, str]) -> None:
            self._close_dialog(dialog)
            if self.session is not None:
                self.bridge.call(self.session.delete(message_id), self._failed("Not deleted"))

        made = self._open_dialog(
            lambda: FormDialog(
                self.root,
                self.theme,
                "Delete this message?",
                [],
                "Delete",
                submit,
                intro=f"“{quote.text}”{theirs} will be erased for everyone. "
                f"This cannot be undone.{logged}",
            )
        )
        if made is None:
            return
        dialog = made

    def jump_to(self, message_id: int) -> None:
        """Show a message of the conversation on screen, loading the page around it if needed."""
        model = self.model
        if model is None or self.chat_view is None:
            return
        self._jump(model.active, message_id)

    def _jump(self, conversation: Conversation, message_id: int) -> None:
        model, session, view = self.model, self.session, self.chat_view
        if model is None or session is None or view is None:
            return
        if model.holds(conversation, message_id):
            self._refresh()
            view.flash(message_id)
            return

        def done(outcome: Outcome[tuple[HistoryPage, HistoryPage]]) -> None:
            if self.model is not model:
                return
            if outcome.value is None:
                model.add_notice(conversation, "Could not load that message: try again.", "error")
                self._schedule_refresh()
                return
            model.add_around(conversation, *outcome.value)
            if not model.holds(conversation, message_id):
                model.add_notice(conversation, "That message is not available here.", "error")
            if model.active == conversation:
                self._refresh(full=True)
                if self.chat_view is not None and model.holds(conversation, message_id):
                    self.chat_view.flash(message_id)
            self._schedule_refresh()

        # Issue 15: two pages however far back, not every page between the newest and it.
        target = model.target(conversation)
        self.bridge.call(session.around(conversation, target, message_id, JUMP_AROUND), done)

    def load_newer(self, after: int) -> None:
        """Fill the gap below message ``after`` (left by a jump) with the next page."""
        model, session = self.model, self.session
        if model is None or session is None:
            return
        conversation = model.active
        model.gap_started(after)

        def done(outcome: Outcome[HistoryPage]) -> None:
            if self.model is not model:
                return
            model.add_newer(conversation, after, outcome.value)
            if outcome.value is None:
                model.add_notice(conversation, "Could not load newer messages: try again.", "error")
            if model.active == conversation:
                self._refresh(full=True)

        target = model.target(conversation)
        self.bridge.call(session.history(conversation, target, None, GAP_PAGE, after=after), done)
        self._schedule_refresh()

    def search(self, query: str, before: int | None = None) -> None:
        """Search every message we may see; the results replace the members panel."""
        model, session = self.model, self.session
        if model is None or session is None:
            return

        def done(outcome: Outcome[HistoryPage]) -> None:
            if self.model is not model or self.chat_view is None:
                return
            if outcome.value is None:
                error = outcome.error
                text = _why(error) if error is not None else "no answer"
                self.chat_view.show_results(f"Search failed: {text}", [])
                return
            model.set_results(query, outcome.value, more_of=before is not None)
            self.chat_view.show_results(
                model.results_title(), model.result_rows(), more=model.results_more
            )

        if self.chat_view is not None and before is None:
            self.chat_view.show_results(f"Searching for “{query}”…", [])
        self.bridge.call(session.search(query, before), done)

    def search_more(self) -> None:
        """The next page of the search's results (older matches)."""
        model = self.model
        if model is not None and model.results and model.results_more:
            self.search(model.results_query, before=model.results[-1].id)

    def open_result(self, index: int) -> None:
        """Show a search result in its conversation."""
        model = self.model
        if model is None or not 0 <= index < len(model.results):
            return
        message = model.results[index]
        conv = Conversation.of(message)
        if conv != model.active:
            self.select(
                model.open_dm(message.peer or message.sender) if conv.kind == "dm" else conv
            )
        self._jump(conv, message.id)

    def close_search(self) -> None:
        """Close the search results; the members panel comes back."""
        if self.model is not None:
            self.model.clear_results()
        if self.chat_view is not None:
            self.chat_view.hide_results()
            self.chat_view.search_var.set("")
            self.chat_view.focus_input()

    def user_typing(self) -> None:
        """The user pressed a key in the input box: tell the others, at most every 3 s."""
        model, session = self.model, self.session
        if model is None or session is None or model.status.state != "connected":
            return
        now = self.clock()
        if now - self._last_typing < TYPING_EVERY:
            return
        self._last_typing = now
        conv = model.active
        self.bridge.submit(session.typing(conv, model.target(conv)))

    def last_own(self) -> int | None:
        """The id of our newest live message in the conversation on screen (Ctrl+Up edits it)."""
        model = self.model
        return model.last_own(model.active) if model is not None else None

    def recall(self) -> str | None:
        """The last message sent to the active conversation (the Up key)."""
        return self.model.recall(self.model.active) if self.model is not None else None

    def open_dm(self, nick: str) -> None:
        """Open (and show) the DM conversation with ``nick``."""
        if self.model is None:
            return
        nick = nick.strip().lstrip("@")
        if nick:
            self.select(self.model.open_dm(nick))

    def join_room(
        self, name: str, on_error: Callable[[str], None] | None = None, key: str | None = None
    ) -> None:
        """Join a room and show it (``key``: the room's, if it has one)."""
        model, session = self.model, self.session
        if model is None or session is None:
            return
        room = name.strip().lstrip("#").lower()

        def done(outcome: Outcome[list[User]]) -> None:
            if self.model is not model:
                return
            if outcome.value is None:
                error = outcome.error
                text = error.message if isinstance(error, ChatError) else "not connected; try again"
                if isinstance(error, ChatError) and error.code == "bad_room":
                    text = "Room names are 1–32 of a–z, 0–9, _ and -."
                elif isinstance(error, ChatError) and error.code == "forbidden":
                    text = refusal_text(error, room, local=model.local, now=datetime.now(UTC))
                if on_error is not None:
                    on_error(text)
                else:
                    model.add_notice(model.active, f"Cannot join #{room}: {text}", "error")
                    self._schedule_refresh()
                return
            model.state.joined(room)
            model.set_members(room, outcome.value)
            self._close_dialog(self.dialog)
            self.select(Conversation.room(room))

        self.bridge.call(session.join(room, key), done)

    def leave(self, conversation: Conversation) -> None:
        """Leave a room, or close a DM conversation."""
        model, session = self.model, self.session
        if model is None or session is None:
            return
        if conversation.kind == "dm":
            model.close_dm(conversation)
            self.select(model.active)
            return
        if conversation.name == "lobby":
            return
        room = conversation.name

        def done(outcome: Outcome[None]) -> None:
            if self.model is not model:
                return
            if outcome.error is not None:
                error = outcome.error
                text = error.message if isinstance(error, ChatError) else "not connected"
                model.add_notice(conversation, f"Cannot leave #{room}: {text}", "error")
            else:
                model.state.left(room)
                if model.active == conversation:
                    self.select(LOBBY)
            self._schedule_refresh()

        self.bridge.call(session.leave(room), done)

    def _leave_active(self) -> None:
        if self.model is not None:
            self.leave(self.model.active)

    def load_earlier(self) -> None:
        """Fetch the page of messages before the oldest one shown."""
        if self.model is not None:
            self._load_history(self.model.active, earlier=True)
            self._schedule_refresh()

    def dismiss_summary(self) -> None:
        """Hide the caught-up summary."""
        if self.model is not None:
            self.model.dismiss_summary()
            self._schedule_refresh()

    def dismiss_pending(self, key: int) -> None:
        """Forget a message that could not be sent."""
        if self.model is not None:
            self.model.dismiss(key)
            self._schedule_refresh()

    def set_focused(self, focused: bool) -> None:
        """The window gained or lost the keyboard focus."""
        if self.model is None or self.model.focused == focused:
            return
        self.model.set_focused(focused)
        if focused:
            self._flash = False
        self._schedule_refresh()

    def _focus_in(self, _event: object) -> None:
        self.set_focused(True)

    def _focus_out(self, _event: object) -> None:
        def check() -> None:
            with contextlib.suppress(tk.TclError, KeyError):
                if self.root.focus_displayof() is None:
                    self.set_focused(False)

        self.root.after(50, check)

    def _cycle(self, step: int) -> None:
        model = self.model
        if model is None:
            return
        rooms, dms = model.sidebar()
        convs = [e.conversation for e in rooms + dms]
        if model.active in convs:
            self.select(convs[(convs.index(model.active) + step) % len(convs)])

    def _toggle_members(self) -> None:
        if self.chat_view is not None:
            self.chat_view.show_members(bool(self.members_var.get()))

    def set_theme(self, name: ThemeName) -> None:
        """Switch to the light or dark theme (and remember it)."""
        self.theme_var.set(name)
        if name != self.theme.name:
            self.theme.use(name)
            self.prefs.theme = name
            self.prefs.save()

    # --- dialogs -------------------------------------------------------------------------

    def _open_dialog(self, dialog_factory: Callable[[], FormDialog]) -> FormDialog | None:
        if self.chat_view is None:
            return None
        self._close_dialog(self.dialog)
        self.dialog = dialog_factory()
        return self.dialog

    def _close_dialog(self, dialog: FormDialog | None) -> None:
        if dialog is None:
            return
        dialog.close()
        if self.dialog is dialog:
            self.dialog = None
        collect_tk_garbage()

    def ask_join(self) -> None:
        """Ask for a room to join."""

        def submit(values: dict[str, str]) -> None:
            name = values["room"].strip().lstrip("#")
            if not name:
                dialog.show_error("room", "Type a room name.")
                return
            dialog.set_busy(True)

            def failed(text: str) -> None:
                dialog.set_busy(False)
                dialog.show_error("room", text)

            self.join_room(name, failed, values["key"].strip() or None)

        made = self._open_dialog(
            lambda: FormDialog(
                self.root,
                self.theme,
                "Join a room",
                [
                    Field("room", "Room", hint="A room is made the first time someone joins it."),
                    Field("key", "Key", hint="Only for a room that has a key to join."),
                ],
                "Join",
                submit,
            )
        )
        if made is None:
            return
        dialog = made

    def ask_dm(self) -> None:
        """Ask for a nick to message."""

        def submit(values: dict[str, str]) -> None:
            nick = values["nick"].strip().lstrip("@")
            if not nick:
                dialog.show_error("nick", "Type a nick.")
                return
            self._close_dialog(dialog)
            self.open_dm(nick)

        made = self._open_dialog(
            lambda: FormDialog(
                self.root, self.theme, "Message someone", [Field("nick", "Nick")], "Open", submit
            )
        )
        if made is None:
            return
        dialog = made

    def ask_register(self) -> None:
        """Ask for a password to register the nick with."""
        model, session = self.model, self.session
        if model is None or session is None:
            return

        def submit(values: dict[str, str]) -> None:
            password = values["password"]
            if len(password) < 8:
                dialog.show_error("password", "At least 8 characters, please.")
                return
            if values["again"] != password:
                dialog.show_error("again", "The two passwords differ.")
                return
            dialog.set_busy(True)

            def done(outcome: Outcome[None]) -> None:
                if outcome.error is not None:
                    dialog.set_busy(False)
                    error = outcome.error
                    if isinstance(error, ChatError) and error.code == "weak_password":
                        dialog.show_error("password", "Too short: at least 8 characters.")
                    else:
                        text = error.message if isinstance(error, ChatError) else str(error)
                        dialog.show_error(None, text or "Not connected; try again.")
                    return
                self._close_dialog(dialog)
                model.state.account = True
                model.add_notice(model.active, f"{model.nick} is now registered.")
                self._send_receipts(bool(self.receipts_var.get()), quiet=True)
                self._schedule_refresh()

            self.bridge.call(session.register(password), done)

        made = self._open_dialog(
            lambda: FormDialog(
                self.root,
                self.theme,
                "Register this nick",
                [
                    Field("password", "Password", secret=True, hint="At least 8 characters."),
                    Field("again", "Password again", secret=True),
                ],
                "Register",
                submit,
                intro=f"Only you will be able to log in as “{model.nick}”.",
            )
        )
        if made is None:
            return
        dialog = made

    def ask_passwd(self) -> None:
        """Ask for the old and new passwords."""
        model, session = self.model, self.session
        if model is None or session is None:
            return

        def submit(values: dict[str, str]) -> None:
            if len(values["new"]) < 8:
                dialog.show_error("new", "At least 8 characters, please.")
                return
            if values["again"] != values["new"]:
                dialog.show_error("again", "The two passwords differ.")
                return
            dialog.set_busy(True)

            def done(outcome: Outcome[None]) -> None:
                if outcome.error is not None:
                    dialog.set_busy(False)
                    error = outcome.error
                    code = error.code if isinstance(error, ChatError) else ""
                    if code == "bad_password":
                        dialog.show_error("old", "That is not your current password.")
                    elif code == "weak_password":
                        dialog.show_error("new", "Too short: at least 8 characters.")
                    elif code == "rate_limited":
                        wait = float(getattr(error, "retry_after", 1.0))
                        dialog.show_error("old", rate_limited_text(wait))
                    else:
                        text = error.message if isinstance(error, ChatError) else str(error)
                        dialog.show_error(None, text or "Not connected; try again.")
                    return
                self._close_dialog(dialog)
                model.add_notice(model.active, "Your password was changed.")
                self._schedule_refresh()

            self.bridge.call(session.passwd(values["old"], values["new"]), done)

        made = self._open_dialog(
            lambda: FormDialog(
                self.root,
                self.theme,
                "Change password",
                [
                    Field("old", "Current password", secret=True),
                    Field("new", "New password", secret=True, hint="At least 8 characters."),
                    Field("again", "New password again", secret=True),
                ],
                "Change",
                submit,
            )
        )
        if made is None:
            return
        dialog = made

    # --- questions from the network thread (trust this certificate?) -----------------

    def _ask_from_worker(self, prompt: str, said: list[str]) -> str | None:
        """Ask the user a yes/no question; blocks the calling worker thread, never Tk's."""
        question = _Question(prompt, tuple(said))
        self.bridge.post(question)
        question.answered.wait(QUESTION_TIMEOUT)
        return question.answer

    def _ask_user(self, question: _Question) -> None:
        if self._closed:
            question.settle(None)
            return
        self._questions.append(question)

        def settle(answer: str | None) -> None:
            if question in self._questions:
                self._questions.remove(question)
            question.settle(answer)

        dialog: FormDialog | None = None

        def trust(_values: dict[str, str]) -> None:
            settle("y")
            if dialog is not None:
                dialog.close()

        dialog = FormDialog(
            self.root,
            self.theme,
            "Trust this server?",
            [],
            "Trust and connect",
            trust,
            intro="\n".join(question.said) or question.prompt,
            on_cancel=lambda: settle("n"),
        )

    # --- leaving -------------------------------------------------------------------------

    def _confirm_unsent(self, verb: str) -> bool:
        model = self.model
        queued = model.queued if model is not None else 0
        if not queued:
            return True
        noun = "message has" if queued == 1 else "messages have"
        return bool(
            messagebox.askyesno(
                f"{verb} now?",
                f"{queued} {noun} not been sent yet. If you {verb.lower()} now, "
                f"the app waits a few seconds for the server, then gives up on them.",
                parent=self.root,
            )
        )

    def logout(self, *, confirm: bool = True) -> None:
        """Log out and go back to the connect window."""
        session = self.session
        if session is None or (confirm and not self._confirm_unsent("Log out")):
            return
        self.session = None
        self.model = None
        self._close_dialog(self.dialog)
        self.show_connect()
        view = self.connect_view
        if view is not None:
            view.set_busy(True, "Logging out…")

        def done(_outcome: Outcome[None]) -> None:
            if self.connect_view is not None:
                self.connect_view.set_busy(False)
                self.connect_view.focus_first()

        self.bridge.call(session.close(), done)

    def quit(self) -> None:
        """Close the window (after asking, if messages are still unsent)."""
        if not self._confirm_unsent("Quit"):
            return
        with contextlib.suppress(tk.TclError):
            self.root.withdraw()
        self.shutdown()
        with contextlib.suppress(tk.TclError):
            self.root.destroy()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Log out (waiting up to ``timeout`` s for the outbox) and stop the network thread."""
        if self._closed:
            return
        self._closed = True
        if self._tick_after is not None:
            with contextlib.suppress(tk.TclError):
                self.root.after_cancel(self._tick_after)
            self._tick_after = None
        self._stop_lan()
        for session in (self.session, self._login):
            if session is not None:
                future = self.bridge.submit(session.close(timeout))
                with contextlib.suppress(Exception):
                    future.result(timeout + 3)
        self.session = None
        self._login = None
        for question in list(self._questions):
            question.settle(None)
        self.bridge.close()
        self.theme.unsubscribe(self._restyle_menus)

    # --- moderation and blocks (issue 16) ------------------------------------------------

    def fill_member_menu(self, menu: tk.Menu, nick: str) -> None:
        """Add what the user may do to ``nick`` (in the room on screen) to ``menu``."""
        model = self.model
        if model is None or model.state.is_me(nick):
            return
        conv = model.active
        room = conv.name if conv.kind == "room" else None
        actions = model.rules.member_actions(
            room, nick, my_rooms=sorted(model.state.rooms), guest=model.known_guest(nick)
        )
        if actions:
            menu.add_separator()
        for action in actions:
            if action.action in ("ban", "mute"):
                sub = tk.Menu(menu, tearoff=False)
                self.theme.style_menu(sub)
                for label, length in DURATIONS:
                    sub.add_command(
                        label=f"{label}…",
                        command=functools.partial(self.ask_moderation, action, nick, length),
                    )
                menu.add_cascade(label=action.label, menu=sub)
            elif action.asks:
                ask = functools.partial(self.ask_moderation, action, nick, None)
                menu.add_command(label=action.label, command=ask)
            elif action.action in ("block", "unblock"):
                block = functools.partial(self.block, nick, action.action == "block")
                menu.add_command(label=action.label, command=block)
            else:
                menu.add_command(
                    label=action.label, command=functools.partial(self.moderate, action, nick)
                )

    def can_delete(self, message_id: int) -> bool:
        """Whether the user may delete this message (theirs, or as a moderator)."""
        return self.model is not None and self.model.can_delete(message_id)

    def ask_moderation(self, action: MemberAction, nick: str, length: timedelta | None) -> None:
        """Ask for the reason (optional) of a kick, ban or mute, then do it."""
        verb = {"kick": "Kick", "ban": "Ban", "mute": "Mute"}[action.action]
        span = ""
        if action.action in ("ban", "mute"):
            span = next(label for label, d in DURATIONS if d == length)
        intro = f"{verb} {nick} in #{action.room} {span}".rstrip() + "."

        def submit(values: dict[str, str]) -> None:
            until = None if length is None else datetime.now(UTC) + length
            assert dialog is not None
            dialog.set_busy(True)
            self.moderate(action, nick, until=until, reason=values["reason"].strip(), form=dialog)

        dialog = self._open_dialog(
            lambda: FormDialog(
                self.root,
                self.theme,
                f"{verb} {nick}",
                [Field("reason", "Reason (optional)", hint="Said to the room and to them.")],
                verb,
                submit,
                intro=intro,
            )
        )

    def moderate(
        self,
        action: MemberAction,
        nick: str,
        *,
        until: datetime | None = None,
        reason: str = "",
        form: FormDialog | None = None,
    ) -> None:
        """Carry out a member action in its room; a refusal is said in plain words."""
        model, session = self.model, self.session
        if model is None or session is None or action.room is None:
            return
        room = action.room

        def done(outcome: Outcome[None]) -> None:
            if self.model is not model:
                return
            if outcome.error is None:
                self._close_dialog(form)
                return
            why = refusal_text(outcome.error, room, local=model.local, now=datetime.now(UTC))
            if form is not None and not form.closed:
                form.set_busy(False)
                form.show_error(None, f"Not done: {why}.")
            else:
                model.add_notice(model.active, f"{action.label} {nick}: {why}", "error")
                self._schedule_refresh()

        self.bridge.call(session.moderate(action.action, room, nick, until, reason), done)

    def ask_room_settings(self) -> None:
        """Open the room settings of the room on screen (for its owner and mods)."""
        model, session = self.model, self.session
        if model is None or session is None or self.chat_view is None:
            return
        conv = model.active
        details = model.rules.details.get(conv.name) if conv.kind == "room" else None
        if details is None or not model.rules.can_edit_settings(conv.name):
            return
        if self.room_settings is not None:
            self.room_settings.close()
        room = conv.name

        def submit(
            topic: str | None,
            private: bool | None,
            announce: bool | None,
            days: int | None,
            key: str | None,
            limit: int | None,
        ) -> None:
            def done(outcome: Outcome[None]) -> None:
                if outcome.error is None:
                    window.close()
                elif not window.closed:
                    why = refusal_text(
                        outcome.error, room, local=model.local, now=datetime.now(UTC)
                    )
                    window.show_error(f"Not saved: {why}.")

            change = session.set_room(room, topic, private, announce, days, key, limit)
            self.bridge.call(change, done)

        window = RoomSettingsDialog(
            self.root,
            self.theme,
            details,
            governs=model.rules.role(room) in GOVERNORS,
            on_submit=submit,
        )
        self.room_settings = window

    def _load_blocks(self) -> None:
        model, session = self.model, self.session
        if model is None or session is None:
            return

        def done(outcome: Outcome[list[str]]) -> None:
            if self.model is model and outcome.value is not None:
                model.rules.set_blocked(outcome.value)
                if self.blocked_dialog is not None and not self.blocked_dialog.closed:
                    self.blocked_dialog.set_nicks(outcome.value)

        self.bridge.call(session.blocks(), done)

    def block(self, nick: str, on: bool) -> None:
        """Block or unblock ``nick`` (on every device of the account)."""
        model, session = self.model, self.session
        if model is None or session is None:
            return

        def done(outcome: Outcome[list[str]]) -> None:
            if self.model is not model:
                return
            if outcome.value is None:
                why = refusal_text(
                    outcome.error or RuntimeError(), None, local=model.local, now=datetime.now(UTC)
                )
                text = f"Could not {'block' if on else 'unblock'} {nick}: {why}"
                if self.blocked_dialog is not None and not self.blocked_dialog.closed:
                    self.blocked_dialog.show_error(text)
                model.add_notice(model.active, text, "error")
            else:
                model.rules.set_blocked(outcome.value)
                if self.blocked_dialog is not None and not self.blocked_dialog.closed:
                    self.blocked_dialog.set_nicks(outcome.value)
                model.add_notice(
                    model.active,
                    f"You block {nick}: nothing they send reaches you, and they are not told."
                    if on
                    else f"You no longer block {nick}.",
                )
            self._schedule_refresh()

        self.bridge.call(session.block(nick, on), done)

    def ask_blocked(self) -> None:
        """Account → Blocked people…: the list, with Unblock."""
        if self.model is None or self.session is None:
            return
        if self.blocked_dialog is not None:
            self.blocked_dialog.close()
        self.blocked_dialog = BlockedDialog(
            self.root, self.theme, lambda nick: self.block(nick, False)
        )
        self._load_blocks()

    # --- the clock -----------------------------------------------------------------------

    def _tick(self) -> None:
        self._tick_after = None
        try:
            self._tick_no += 1
            now = self.clock()
            if self._locked_until is not None and self.connect_view is not None:
                left = self._locked_until - now
                if left <= 0:
                    self._locked_until = None
                    self.connect_view.lock(False)
                    self.connect_view.clear_errors()
                else:
                    self.connect_view.show_error("password", rate_limited_text(left))
            if self.model is not None and self.chat_view is not None:
                if self.model.alert is not None and not self.model.focused:
                    if self._tick_no % FLASH_TICKS == 0:
                        self._flash = not self._flash
                else:
                    self._flash = False
                self._refresh_status()
                self._update_title()
        finally:
            if not self._closed:
                self._tick_after = self.root.after(TICK_MS, self._tick)


def _why(error: BaseException) -> str:
    """A refusal in plain words."""
    if isinstance(error, ChatError):
        reason = error.extra.get("reason")
        reasons = {
            "not_sender": "only its sender can do that",
            "deleted": "the message was deleted",
            "edit_window": "it is too late to edit that message",
        }
        if isinstance(reason, str) and reason in reasons:
            return reasons[reason]
        return error.message or error.code
    if isinstance(error, TimeoutError):
        return "the server did not answer in time; try again"
    return "not connected; try again when the connection is back"


def run_gui(
    server: str | None = None,
    nick: str | None = None,
    *,
    theme: ThemeName | None = None,
    scale: float | None = None,
    lan_source: LanSource | None = None,
    prepare: Prepare | None = None,
) -> int:
    """Open the desktop app and run it until the window is closed; returns the exit status."""
    try:
        root = tk.Tk(className="Chinwag")
    except tk.TclError as exc:
        print(f"chinwag gui: cannot open a window: {exc}", file=sys.stderr)
        return 1
    if scale is None:
        env = os.environ.get("CHINWAG_GUI_SCALE")
        try:
            # The screen's own density, in quarter steps, never below 100 %.
            scale = float(env) if env else max(1.0, round(root.winfo_fpixels("1i") / 96 * 4) / 4)
        except ValueError:
            scale = 1.0
    app = GuiApp(
        root,
        server=server,
        nick=nick,
        theme=theme,
        scale=scale,
        lan_source=lan_source,
        prepare=prepare,
    )
    try:
        root.mainloop()
    except KeyboardInterrupt:
        pass
    finally:
        app.shutdown()
        with contextlib.suppress(tk.TclError):
            root.destroy()
    return 0
