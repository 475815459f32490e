"""The main window's widgets: sidebar, conversation, input box, members, status bar.

Thin: it draws what the model says (:mod:`chinwag.client.gui.model`) and hands
every user action to the app (:class:`ChatActions`). The conversation view is a
read-only Text widget redrawn incrementally: only the items after the first one
that changed are redrawn, so a new message costs one insertion, not a redraw.
"""

from __future__ import annotations

import bisect
import functools
import tkinter as tk
from collections.abc import Sequence
from datetime import date, datetime
from tkinter import ttk
from typing import Final, Literal, Protocol

from chinwag.client.events import Message, User, fold_nick
from chinwag.client.gui.model import (
    AwayDivider,
    Chip,
    DaySeparator,
    LoadEarlier,
    LoadNewer,
    MessageLine,
    NoticeLine,
    PendingLine,
    Quote,
    SidebarEntry,
    ViewItem,
    emoji_as_text,
    split_fences,
)
from chinwag.client.gui.theme import Theme
from chinwag.client.state import Conversation
from chinwag.client.tui import clean

__all__ = ["ChatActions", "ChatView", "StatusKind", "day_label"]

StatusKind = Literal["ok", "warn", "error"]
HEAD_SEARCH: Final = 6
"""How far the top of the conversation is searched for items that went or came."""
HINT: Final = (
    "Enter sends · Shift+Enter: new line · ↑: your last message · Ctrl+↑: edit it"
    " · right-click a message for more"
)
NARROW: Final = 880
"""Below this width (at 100 %) the members panel steps aside for the conversation."""
QUICK_REACTIONS: Final = ("👍", "❤️", "😂", "🎉", "😮", "😢")
"""The reactions offered by the React button and menu."""
FLASH_MS: Final = 1600
"""How long a message jumped to stays highlighted."""
EDIT_HINT: Final = "Enter saves · Escape cancels · Shift+Enter: new line"


def _line(index: str) -> int:
    return int(str(index).split(".", 1)[0])


class ChatActions(Protocol):
    """What the main window asks the app to do."""

    def select(self, conversation: Conversation) -> None: ...
    def send_text(self, text: str) -> bool: ...
    def user_typing(self) -> None: ...
    def ask_join(self) -> None: ...
    def ask_dm(self) -> None: ...
    def leave(self, conversation: Conversation) -> None: ...
    def open_dm(self, nick: str) -> None: ...
    def load_earlier(self) -> None: ...
    def dismiss_summary(self) -> None: ...
    def dismiss_pending(self, key: int) -> None: ...
    def recall(self) -> str | None: ...
    def last_own(self) -> int | None: ...
    def start_reply(self, message_id: int) -> None: ...
    def cancel_reply(self) -> None: ...
    def react(self, message_id: int, emoji: str, on: bool) -> None: ...
    def ask_reaction(self, message_id: int) -> None: ...
    def start_edit(self, message_id: int) -> None: ...
    def save_edit(self, message_id: int, body: str) -> None: ...
    def cancel_edit(self) -> None: ...
    def delete(self, message_id: int) -> None: ...
    def jump_to(self, message_id: int) -> None: ...
    def load_newer(self, after: int) -> None: ...
    def search(self, query: str) -> None: ...
    def open_result(self, index: int) -> None: ...
    def search_more(self) -> None: ...
    def close_search(self) -> None: ...
    def fill_member_menu(self, menu: tk.Menu, nick: str) -> None: ...
    def ask_room_settings(self) -> None: ...
    def can_delete(self, message_id: int) -> bool: ...


def day_label(day: date, today: date) -> str:
    """``Today``, ``Yesterday``, or ``Tuesday 24 November`` (with the year if not this one)."""
    delta = (today - day).days
    if delta == 0:
        return "Today"
    if delta == 1:
        return "Yesterday"
    text = f"{day:%A} {day.day} {day:%B}"
    return text if day.year == today.year else f"{text} {day.year}"


class ChatView(ttk.Frame):
    """The main window's content (the menu bar belongs to the app).

    Args:
        parent: the root window.
        theme: the app's theme.
        actions: the app.
        nick: our nick (sidebar header).
    """

    def __init__(self, parent: tk.Misc, theme: Theme, actions: ChatActions, nick: str) -> None:
        super().__init__(parent, style="TFrame")
        self.theme = theme
        self.actions = actions
        px = theme.px
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)

        self.panes = ttk.Panedwindow(self, orient="horizontal")
        self.panes.grid(row=0, column=0, sticky="nsew")

        # --- sidebar ----------------------------------------------------------
        side = ttk.Frame(self.panes, style="Sidebar.TFrame", width=px(210))
        self.sidebar_frame = side
        side.rowconfigure(1, weight=1)
        side.columnconfigure(0, weight=1)
        head = ttk.Frame(side, style="Sidebar.TFrame", padding=(px(14), px(14), px(14), px(8)))
        head.grid(row=0, column=0, sticky="ew")
        ttk.Label(head, text="chinwag", style="Sidebar.TLabel").pack(anchor="w")
        self.me_label = ttk.Label(head, text=nick, style="SidebarMuted.TLabel")
        self.me_label.pack(anchor="w")
        self.tree = ttk.Treeview(
            side,
            style="Sidebar.Treeview",
            show="tree",
            columns=("unread",),
            selectmode="browse",
            takefocus=True,
        )
        self.tree.column("#0", width=px(150), stretch=True)
        self.tree.column("unread", width=px(44), stretch=False, anchor="e")
        self.tree.grid(row=1, column=0, sticky="nsew", padx=(px(6), px(6)))
        self.tree.insert("", "end", iid="rooms", text="ROOMS", open=True, tags=("section",))
        self.tree.insert("", "end", iid="dms", text="DIRECT MESSAGES", open=True, tags=("section",))
        self.tree.bind("<<TreeviewSelect>>", self._tree_selected)
        self.tree.bind("<Button-3>", self._tree_menu)
        self._iids: dict[str, Conversation] = {}
        self._updating_tree = False
        buttons = ttk.Frame(side, style="Sidebar.TFrame", padding=(px(8), px(6), px(8), px(10)))
        buttons.grid(row=2, column=0, sticky="ew")
        self.join_button = ttk.Button(
            buttons, text="+  Join a room", style="Sidebar.TButton", command=actions.ask_join
        )
        self.join_button.pack(fill="x")
        self.dm_button = ttk.Button(
            buttons, text="+  Message someone", style="Sidebar.TButton", command=actions.ask_dm
        )
        self.dm_button.pack(fill="x")
        self.panes.add(side, weight=0)

        # --- conversation -----------------------------------------------------
        center = ttk.Frame(self.panes, style="Surface.TFrame")
        center.rowconfigure(2, weight=1)
        center.columnconfigure(0, weight=1)
        header = ttk.Frame(center, style="Surface.TFrame", padding=(px(18), px(12), px(12), px(10)))
        header.grid(row=0, column=0, sticky="ew")
        header.columnconfigure(0, weight=1)
        self.title_label = ttk.Label(header, text="", style="Header.TLabel")
        self.title_label.grid(row=0, column=0, sticky="w")
        self.subtitle_label = ttk.Label(header, text="", style="HeaderMuted.TLabel")
        self.subtitle_label.grid(row=1, column=0, sticky="w")
        search = ttk.Frame(header, style="Surface.TFrame")
        search.grid(row=0, column=1, rowspan=2, sticky="e", padx=(px(8), px(8)))
        ttk.Label(search, text="Search", style="HeaderMuted.TLabel").pack(side="left")
        self.search_var = tk.StringVar(self)
        self.search_entry = ttk.Entry(search, textvariable=self.search_var, width=22)
        self.search_entry.pack(side="left", padx=(px(6), 0))
        self.search_entry.bind("<Return>", self._search)
        self.search_entry.bind("<KP_Enter>", self._search)
        self.search_entry.bind("<Escape>", lambda _e: self.actions.close_search())
        self.leave_button = ttk.Button(header, text="Leave room", style="Flat.TButton")
        self.leave_button.grid(row=0, column=2, rowspan=2, sticky="e")
        self.settings_button = ttk.Button(
            header, text="Room settings", style="Flat.TButton", command=actions.ask_room_settings
        )
        self.settings_button.grid(row=0, column=3, rowspan=2, sticky="e")
        self.settings_button.grid_remove()
        ttk.Separator(center, orient="horizontal").grid(row=1, column=0, sticky="new")

        self.banner = ttk.Frame(center, style="Banner.TFrame", padding=(px(16), px(8)))
        self.banner.columnconfigure(0, weight=1)
        self.banner_label = ttk.Label(
            self.banner, text="", style="Banner.TLabel", wraplength=px(560), justify="left"
        )
        self.banner_label.grid(row=0, column=0, sticky="w")
        ttk.Button(
            self.banner, text="✕", width=2, style="Banner.TButton", command=actions.dismiss_summary
        ).grid(row=0, column=1, sticky="e")

        body = ttk.Frame(center, style="Surface.TFrame")
        body.grid(row=2, column=0, sticky="nsew")
        body.rowconfigure(0, weight=1)
        body.columnconfigure(0, weight=1)
        self.text = tk.Text(
            body,
            wrap="word",
            state="disabled",
            relief="flat",
            borderwidth=0,
            highlightthickness=0,
            padx=px(18),
            pady=px(8),
            cursor="arrow",
            font=theme.fonts["body"],
            spacing1=px(1),
            spacing3=px(1),
            takefocus=True,  # Tab reaches the messages: Up/Down pick one, keys act on it
            undo=False,
        )
        self.text.grid(row=0, column=0, sticky="nsew")
        self.scroll = ttk.Scrollbar(body, orient="vertical", command=self.text.yview)
        self.scroll.grid(row=0, column=1, sticky="ns")
        self.text.configure(yscrollcommand=self.scroll.set)
        self._items: list[ViewItem] = []
        self._starts: list[str] = []
        self._start_lines: list[int] | None = None  # _starts as line numbers, when asked
        self._pending_tags: set[str] = set()
        # Editing in place: the box is embedded in the conversation, and Tk
        # destroys it with the text around it, so a redraw keeps its text here.
        self.edit_box: tk.Text | None = None
        self._edit_id: int | None = None
        self._edit_draft = ""
        self._flash_after: str | None = None
        self._flashed: int | None = None
        self.message_menu: tk.Menu | None = None
        self.selected: int | None = None
        """The message picked with the keyboard (Up/Down in the conversation), if any."""
        self.text.bind("<FocusIn>", self._text_focus_in)
        self.text.bind("<FocusOut>", lambda _e: self._mark_selected())
        self.text.bind("<Up>", lambda _e: self._move_selection(-1))
        self.text.bind("<Down>", lambda _e: self._move_selection(1))
        for key in ("<Return>", "<KP_Enter>", "<Shift-F10>", "<Key-Menu>"):
            self.text.bind(key, self._selected_menu)
        self.text.bind("<Key-r>", lambda _e: self._selected_do("Reply"))
        self.text.bind("<Key-e>", lambda _e: self._selected_do("Edit"))
        self.text.bind("<Delete>", lambda _e: self._selected_do("Delete"))
        self.text.bind("<Escape>", lambda _e: self._back_to_input())
        self.text.bind("<Motion>", self._hover)
        self.text.bind("<Leave>", self._left_text)
        self.text.bind("<Button-3>", self._message_menu)
        self.hover_bar = ttk.Frame(self.text, style="Raised.TFrame", padding=px(2))
        self._hover_id: int | None = None
        self.hover_buttons: dict[str, ttk.Button] = {}
        for label in ("Reply", "React", "Edit", "Delete"):
            button = ttk.Button(
                self.hover_bar,
                text=label,
                style="Flat.TButton",
                command=functools.partial(self._hover_action, label),
            )
            self.hover_buttons[label] = button

        self.typing_label = ttk.Label(
            center, text="", style="Typing.TLabel", padding=(px(20), 0, px(20), px(2))
        )
        self.typing_label.grid(row=3, column=0, sticky="ew")

        compose = ttk.Frame(center, style="Surface.TFrame", padding=(px(16), px(2), px(16), px(14)))
        compose.grid(row=4, column=0, sticky="ew")
        compose.columnconfigure(0, weight=1)
        self.reply_bar = ttk.Frame(compose, style="Surface.TFrame", padding=(0, 0, 0, px(4)))
        self.reply_bar.columnconfigure(0, weight=1)
        self.reply_label = ttk.Label(self.reply_bar, text="", style="HeaderMuted.TLabel")
        self.reply_label.grid(row=0, column=0, sticky="w")
        ttk.Button(
            self.reply_bar, text="✕", width=2, style="Flat.TButton", command=actions.cancel_reply
        ).grid(row=0, column=1, sticky="e")
        self.input_frame = ttk.Frame(compose, style="Field.TFrame", borderwidth=1, padding=px(1))
        self.input_frame.grid(row=1, column=0, sticky="ew")
        self.input_frame.columnconfigure(0, weight=1)
        self.input = tk.Text(
            self.input_frame,
            height=2,
            wrap="word",
            relief="flat",
            borderwidth=0,
            highlightthickness=0,
            padx=px(10),
            pady=px(8),
            font=theme.fonts["body"],
            undo=True,
            maxundo=200,
        )
        self.input.grid(row=0, column=0, sticky="ew")
        self.placeholder = tk.Label(
            self.input,
            text="",
            padx=0,
            pady=0,
            borderwidth=0,
            highlightthickness=0,
            font=theme.fonts["body"],
            anchor="nw",
        )
        self.placeholder.bind("<Button-1>", lambda _e: self.input.focus_set())
        self.send_button = ttk.Button(
            compose, text="Send", style="Accent.TButton", command=self._send
        )
        self.send_button.grid(row=1, column=1, sticky="se", padx=(px(10), 0))
        self.hint_label = ttk.Label(
            compose, text=HINT, style="HeaderMuted.TLabel", wraplength=px(560), justify="left"
        )
        self.hint_label.grid(row=2, column=0, columnspan=2, sticky="w", pady=(px(4), 0))
        # Text that must be read wraps to the space it has, never cut at the edge.
        _wrap_to_width(self.hint_label, compose, px(32))
        _wrap_to_width(self.banner_label, self.banner, px(32) + px(40))
        self.input.bind("<Return>", self._on_return)
        self.input.bind("<KP_Enter>", self._on_return)
        self.input.bind("<Shift-Return>", self._on_shift_return)
        self.input.bind("<Up>", self._on_up)
        self.input.bind("<Control-Up>", self._edit_last)
        self.input.bind("<Escape>", lambda _e: self.actions.cancel_reply())
        self.input.bind("<KeyPress>", self._on_key, add=True)
        self.input.bind("<KeyRelease>", lambda _e: self._placeholder())
        self.input.bind("<Configure>", lambda _e: self._placeholder())
        self.input.bind(
            "<FocusIn>", lambda _e: self.input_frame.configure(style="FieldFocus.TFrame")
        )
        self.input.bind("<FocusOut>", lambda _e: self.input_frame.configure(style="Field.TFrame"))
        self.panes.add(center, weight=1)

        # --- members -------------------------------------------------------------
        members = ttk.Frame(self.panes, style="Sidebar.TFrame", width=px(170))
        members.rowconfigure(1, weight=1)
        members.columnconfigure(0, weight=1)
        self.members_frame = members
        self.members_label = ttk.Label(
            members, text="ONLINE", style="Members.TLabel", padding=(px(14), px(16), px(14), px(6))
        )
        self.members_label.grid(row=0, column=0, sticky="ew")
        _wrap_to_width(self.members_label, members, px(28))
        self.members = ttk.Treeview(
            members, style="Members.Treeview", show="tree", selectmode="browse"
        )
        self.members.column("#0", width=px(160), stretch=True)
        self.members.grid(row=1, column=0, sticky="nsew", padx=(px(6), px(6)))
        self.members.bind("<Double-Button-1>", self._member_activated)
        self.members.bind("<Return>", self._member_activated)
        self.members.bind("<Button-3>", self._member_menu)
        self.members.bind("<Shift-F10>", self._member_menu)
        self.member_menu: tk.Menu | None = None
        ttk.Label(
            members,
            text="Double-click someone to message them",
            style="SidebarMuted.TLabel",
            wraplength=px(160),
            padding=(px(14), px(6), px(14), px(12)),
        ).grid(row=2, column=0, sticky="ew")
        self.panes.add(members, weight=0)

        # --- search results (in the members panel's place while shown) -----------------
        results = ttk.Frame(self.panes, style="Sidebar.TFrame", width=px(260))
        results.rowconfigure(1, weight=1)
        results.columnconfigure(0, weight=1)
        self.results_frame = results
        self.results_label = ttk.Label(
            results, text="", style="Members.TLabel", padding=(px(14), px(16), px(14), px(6))
        )
        self.results_label.grid(row=0, column=0, sticky="ew")
        _wrap_to_width(self.results_label, results, px(28))
        self.results_list = tk.Listbox(
            results,
            activestyle="none",
            relief="flat",
            borderwidth=0,
            highlightthickness=0,
            font=theme.fonts["small"],
            exportselection=False,
        )
        self.results_list.grid(row=1, column=0, sticky="nsew", padx=(px(6), px(6)))
        self.results_list.bind("<<ListboxSelect>>", self._result_chosen)
        self.results_list.bind("<Return>", self._result_chosen)
        self.more_results = ttk.Button(
            results, text="More results", style="Sidebar.TButton", command=actions.search_more
        )
        self.more_results.grid(row=2, column=0, sticky="ew", padx=px(8), pady=(px(8), 0))
        ttk.Button(
            results, text="Close search", style="Sidebar.TButton", command=actions.close_search
        ).grid(row=3, column=0, sticky="ew", padx=px(8), pady=px(8))
        self.results_shown = False
        self._member_nicks: dict[str, str] = {}
        self.members_shown = True
        self.members_wanted = True
        self.bind("<Configure>", self._resized, add=True)

        # --- status bar -------------------------------------------------------------
        status = ttk.Frame(self, style="Status.TFrame", padding=(px(12), px(5)))
        status.grid(row=1, column=0, sticky="ew")
        size = px(10)
        self.status_dot = tk.Canvas(status, width=size, height=size, highlightthickness=0)
        self.status_dot.pack(side="left", padx=(0, px(8)))
        self._dot = self.status_dot.create_oval(1, 1, size - 1, size - 1, width=0)
        self.status_label = ttk.Label(status, text="", style="Status.TLabel")
        self.status_label.pack(side="left")
        self._status_kind: StatusKind = "warn"

        self._conversation: Conversation | None = None
        theme.subscribe(self._restyle)
        self._restyle()

    # --- theme ----------------------------------------------------------------------

    def _restyle(self) -> None:
        p, f, px = self.theme.palette, self.theme.fonts, self.theme.px
        self.text.configure(
            background=p.surface,
            foreground=p.fg,
            selectbackground=p.select,
            selectforeground=p.fg,
            inactiveselectbackground=p.select,
            insertbackground=p.fg,
        )
        self.input.configure(
            background=p.surface,
            foreground=p.fg,
            insertbackground=p.fg,
            selectbackground=p.select,
            selectforeground=p.fg,
        )
        self.status_dot.configure(background=p.raised)
        self.placeholder.configure(background=p.surface, foreground=p.muted)
        t = self.text
        t.tag_configure(
            "day",
            justify="center",
            foreground=p.muted,
            font=f["small_bold"],
            spacing1=px(14),
            spacing3=px(6),
        )
        t.tag_configure(
            "away",
            justify="center",
            foreground=p.divider,
            font=f["small_bold"],
            spacing1=px(10),
            spacing3=px(6),
        )
        for link in ("earlier", "newer"):
            t.tag_configure(
                link,
                justify="center",
                foreground=p.accent,
                font=f["small"],
                underline=True,
                spacing1=px(6),
                spacing3=px(6),
            )
        t.tag_configure("header", spacing1=px(9))
        t.tag_configure("time", foreground=p.muted, font=f["small"])
        t.tag_configure("you", foreground=p.muted, font=f["small"])
        t.tag_configure(
            "notice", foreground=p.muted, font=f["italic"], spacing1=px(3), spacing3=px(3)
        )
        t.tag_configure(
            "notice_error", foreground=p.error, font=f["italic"], spacing1=px(3), spacing3=px(3)
        )
        t.tag_configure("own", background=p.own, lmargincolor=p.own, rmargincolor=p.own)
        t.tag_configure(
            "mention", background=p.mention, lmargincolor=p.mention, rmargincolor=p.mention
        )
        t.tag_configure("pending", foreground=p.muted)
        t.tag_configure("state", foreground=p.muted, font=f["italic"])
        t.tag_configure("failed", foreground=p.error, font=f["italic"])
        t.tag_configure("dismiss", foreground=p.accent, font=f["small"], underline=True)
        t.tag_configure(
            "code",
            font=f["mono"],
            background=p.code_bg,
            foreground=p.code_fg,
            lmargin1=px(12),
            lmargin2=px(12),
            rmargin=px(12),
            spacing1=0,
            spacing3=0,
            lmargincolor=p.code_bg,
            rmargincolor=p.code_bg,
            wrap="none",
        )
        t.tag_configure("quote", foreground=p.muted, font=f["small"], lmargin1=px(10))
        t.tag_configure("edited", foreground=p.muted, font=f["small"])
        t.tag_configure("tick", foreground=p.muted, font=f["small"])
        t.tag_configure("tick_read", foreground=p.accent, font=f["small"])
        t.tag_configure("deleted", foreground=p.muted, font=f["italic"])
        t.tag_configure("edit_hint", foreground=p.muted, font=f["small"])
        t.tag_configure(
            "chip", background=p.code_bg, foreground=p.fg, font=f["small"], relief="raised",
            borderwidth=1,
        )  # fmt: skip
        t.tag_configure(
            "chip_mine", background=p.select, foreground=p.accent, font=f["small_bold"],
            relief="raised", borderwidth=1,
        )  # fmt: skip
        t.tag_configure("found", background=p.select, lmargincolor=p.select)
        t.tag_configure(
            "selected", background=p.select, lmargincolor=p.accent, rmargincolor=p.select
        )
        for tag in ("quote", "chip", "chip_mine"):
            t.tag_bind(tag, "<Enter>", lambda _e: t.configure(cursor="hand2"))
            t.tag_bind(tag, "<Leave>", lambda _e: t.configure(cursor="arrow"))
        t.tag_bind("quote", "<Button-1>", self._quote_clicked)
        t.tag_bind("chip", "<Button-1>", self._chip_clicked)
        t.tag_bind("chip_mine", "<Button-1>", self._chip_clicked)
        self.results_list.configure(
            background=p.sidebar,
            foreground=p.fg,
            selectbackground=p.select,
            selectforeground=p.fg,
        )
        t.tag_configure("nick_me", foreground=p.accent, font=f["bold"])
        for i, colour in enumerate(p.nicks):
            t.tag_configure(f"nick{i}", foreground=colour, font=f["bold"])
        t.tag_raise("code")
        t.tag_raise("chip")
        t.tag_raise("chip_mine")
        t.tag_raise("found")
        t.tag_raise("selected")
        t.tag_raise("sel")
        t.tag_bind("earlier", "<Button-1>", lambda _e: self.actions.load_earlier())
        t.tag_bind("earlier", "<Enter>", lambda _e: t.configure(cursor="hand2"))
        t.tag_bind("earlier", "<Leave>", lambda _e: t.configure(cursor="arrow"))
        t.tag_bind("newer", "<Button-1>", lambda _e: self._load_newer())
        t.tag_bind("newer", "<Enter>", lambda _e: t.configure(cursor="hand2"))
        t.tag_bind("newer", "<Leave>", lambda _e: t.configure(cursor="arrow"))
        self.tree.tag_configure("section", foreground=p.muted, font=f["small_bold"])
        self.tree.tag_configure("unread", foreground=p.fg, font=f["bold"])
        self.tree.tag_configure("read", foreground=p.fg, font=f["body"])
        self.members.tag_configure("me", foreground=p.fg, font=f["bold"])
        self.members.tag_configure("user", foreground=p.fg, font=f["body"])
        self.members.tag_configure("guest", foreground=p.muted, font=f["body"])
        self.set_status(self.status_label.cget("text"), self._status_kind)
        if self._items:
            self.render(self._items, reset=True)

    # --- sidebar -----------------------------------------------------------------------

    def set_sidebar(
        self, rooms: Sequence[SidebarEntry], dms: Sequence[SidebarEntry], active: Conversation
    ) -> None:
        """Show rooms and DMs with their unread counts; select the active one."""
        wanted: list[tuple[str, str, SidebarEntry]] = []
        for parent, entries in (("rooms", rooms), ("dms", dms)):
            for entry in entries:
                iid = f"{entry.conversation.kind}:{entry.conversation.name}"
                wanted.append((parent, iid, entry))
        self._updating_tree = True
        try:
            keep = {iid for _, iid, _ in wanted}
            for iid in list(self._iids):
                if iid not in keep:
                    self.tree.delete(iid)
                    del self._iids[iid]
            index = {"rooms": 0, "dms": 0}
            for parent, iid, entry in wanted:
                prefix = "#" if parent == "rooms" else "@"
                text = f"{prefix}  {clean(entry.name)}"
                values = (f"{entry.unread}  " if entry.unread else "",)
                tags = ("unread",) if entry.unread else ("read",)
                if iid in self._iids:
                    self.tree.item(iid, text=text, values=values, tags=tags)
                    self.tree.move(iid, parent, index[parent])
                else:
                    self.tree.insert(
                        parent, index[parent], iid=iid, text=text, values=values, tags=tags
                    )
                    self._iids[iid] = entry.conversation
                index[parent] += 1
            active_iid = f"{active.kind}:{active.name}"
            if active_iid in self._iids and self.tree.selection() != (active_iid,):
                self.tree.selection_set(active_iid)
                self.tree.see(active_iid)
        finally:
            self._updating_tree = False

    def sidebar_rows(self) -> list[tuple[str, str]]:
        """(name, unread) of every sidebar row, top to bottom (for tests and screen readers)."""
        rows = []
        for parent in ("rooms", "dms"):
            for iid in self.tree.get_children(parent):
                text = str(self.tree.item(iid, "text"))
                values = self.tree.item(iid, "values")
                rows.append((text.replace("  ", " ", 1), str(values[0]).strip() if values else ""))
        return rows

    def select_row(self, conversation: Conversation) -> None:
        """Select a conversation's row as a click would (the app then shows it)."""
        iid = f"{conversation.kind}:{conversation.name}"
        self.tree.selection_set(iid)
        self.tree.focus(iid)

    def _tree_selected(self, _event: object = None) -> None:
        if self._updating_tree:
            return
        selection = self.tree.selection()
        if not selection:
            return
        conv = self._iids.get(selection[0])
        if conv is None:  # a section heading: keep the current row selected
            if self._conversation is not None:
                self._updating_tree = True
                iid = f"{self._conversation.kind}:{self._conversation.name}"
                if iid in self._iids:
                    self.tree.selection_set(iid)
                self._updating_tree = False
            return
        if conv != self._conversation:
            self.actions.select(conv)

    def _tree_menu(self, event: tk.Event[ttk.Treeview]) -> None:
        iid = self.tree.identify_row(event.y)
        conv = self._iids.get(iid)
        if conv is None:
            return
        menu = tk.Menu(self, tearoff=False)
        self.theme.style_menu(menu)
        if conv.kind == "room":
            menu.add_command(
                label=f"Leave #{conv.name}",
                command=lambda: self.actions.leave(conv),
                state="disabled" if conv.name == "lobby" else "normal",
            )
        else:
            menu.add_command(label="Close conversation", command=lambda: self.actions.leave(conv))
        menu.tk_popup(event.x_root, event.y_root)

    # --- conversation -------------------------------------------------------------------

    def set_header(
        self, conversation: Conversation, title: str, subtitle: str, *, settings: bool = False
    ) -> None:
        """The conversation's name above it, the Leave/Close button, and Room settings
        (``settings``: the user may change some of them)."""
        self._conversation = conversation
        if settings:
            self.settings_button.grid()
        else:
            self.settings_button.grid_remove()
        self.title_label.configure(text=clean(title))
        self.subtitle_label.configure(text=clean(subtitle))
        if conversation.kind == "room" and conversation.name != "lobby":
            self.leave_button.configure(
                text="Leave room", command=lambda: self.actions.leave(conversation)
            )
            self.leave_button.grid()
        elif conversation.kind == "dm":
            self.leave_button.configure(
                text="Close", command=lambda: self.actions.leave(conversation)
            )
            self.leave_button.grid()
        else:
            self.leave_button.grid_remove()
        self._placeholder()

    def set_summary(self, text: str | None) -> None:
        """Show (or hide) the caught-up summary above the conversation."""
        if text:
            self.banner_label.configure(text=text)
            self.banner.grid(row=1, column=0, sticky="ew")
        else:
            self.banner.grid_remove()

    def render(
        self, items: Sequence[ViewItem], *, reset: bool = False, scroll: bool = False
    ) -> None:
        """Show ``items``; only those after the first change are redrawn.

        The view stays scrolled to the bottom if it was there (or ``scroll``).
        """
        today = datetime.now().astimezone().date()
        if scroll:
            self._flashed = None  # the user sent something: the bottom matters now
        if not reset:
            self._realign_head(items, today)
        old = self._items
        k = 0
        if not reset:
            limit = min(len(old), len(items))
            while k < limit and old[k] == items[k]:
                k += 1
            if k == len(old) == len(items):
                if scroll:
                    self.text.see("end")
                return
        at_bottom = self.text.yview()[1] >= 0.999
        t = self.text
        self._keep_edit_draft()
        self.hide_hover()
        t.configure(state="normal")
        if k < len(self._starts):
            t.delete(self._starts[k], "end-1c")
        else:
            k = min(k, len(self._starts))
        del self._starts[k:]
        self._start_lines = None
        if k == 0:
            t.delete("1.0", "end")
            for tag in self._pending_tags:
                t.tag_delete(tag)
            self._pending_tags.clear()
        for i in range(k, len(items)):
            self._starts.append(t.index("end-1c"))
            self._draw(items[i], items[i - 1] if i else None, today)
        t.configure(state="disabled")
        self._items = list(items)
        if at_bottom or scroll or reset:
            t.see("end")
        self._forget_gone_edit_box()
        self._mark_selected()
        if self._flashed is not None:
            self._show_flashed()  # a page loaded under a jump: stay on the message

    def _realign_head(self, items: Sequence[ViewItem], today: date) -> None:
        """Redraw only a small change near the top, when items went or came there.

        A conversation at its cap drops its oldest message as each new one
        arrives; without this, every new message would redraw the whole view.
        """
        old = self._items
        p = 0
        while p < min(len(old), len(items)) and old[p] == items[p]:
            p += 1
        if p >= HEAD_SEARCH or p >= len(old) or p >= len(items):
            return
        found = None
        for d in range(min(HEAD_SEARCH, len(old) - p)):
            for e in range(min(HEAD_SEARCH, len(items) - p)):
                if not (d or e) or old[p + d] != items[p + e]:
                    continue
                nxt_old, nxt_new = p + d + 1, p + e + 1
                if nxt_old < len(old) and nxt_new < len(items) and old[nxt_old] != items[nxt_new]:
                    continue
                found = (d, e)
                break
            if found:
                break
        if found is None:
            return
        d, e = found
        t = self.text
        self._keep_edit_draft()
        t.configure(state="normal")
        top = self._starts[p]
        removed = _line(self._starts[p + d]) - _line(top)
        t.delete(top, self._starts[p + d])
        t.mark_set("edit", top)
        t.mark_gravity("edit", "right")
        drawn: list[str] = []
        for i in range(p, p + e):
            drawn.append(t.index("edit"))
            self._draw(items[i], items[i - 1] if i else None, today, at="edit")
        added = _line(t.index("edit")) - _line(top)
        t.mark_unset("edit")
        t.configure(state="disabled")
        shifted = [f"{_line(s) - removed + added}.0" for s in self._starts[p + d :]]
        self._starts = self._starts[:p] + drawn + shifted
        self._start_lines = None
        self._items = list(items[: p + e]) + old[p + d :]
        self._forget_gone_edit_box()

    def _load_newer(self) -> None:
        """The "Load newer messages" link under the pointer was clicked (its ``gapN`` tag)."""
        for tag in self.text.tag_names("current"):
            if tag.startswith("gap") and tag[3:].isdigit():
                self.actions.load_newer(int(tag[3:]))
                return

    def shown_items(self) -> list[ViewItem]:
        """The items on screen (for tests)."""
        return list(self._items)

    def shown_text(self) -> str:
        """The conversation's text as drawn (for tests)."""
        return self.text.get("1.0", "end-1c")

    def _draw(self, item: ViewItem, prev: ViewItem | None, today: date, at: str = "end") -> None:
        t = self.text
        if isinstance(item, DaySeparator):
            t.insert(at, f"{day_label(item.day, today)}\n", ("day",))
        elif isinstance(item, AwayDivider):
            t.insert(at, "──────  new since you were away  ──────\n", ("away",))
        elif isinstance(item, LoadEarlier):
            label = "Loading…" if item.loading else "Load earlier messages"
            t.insert(at, f"{label}\n", ("earlier",))
        elif isinstance(item, LoadNewer):
            # Issue 15: below a jump's page, the newer messages not loaded yet.
            label = "Loading…" if item.loading else "Load newer messages"
            t.insert(at, f"{label}\n", ("newer", f"gap{item.after}"))
        elif isinstance(item, NoticeLine):
            tag = "notice_error" if item.kind == "error" else "notice"
            t.insert(at, f"{clean(item.text)}\n", (tag,))
        elif isinstance(item, MessageLine):
            m = item.message
            band: tuple[str, ...] = ("own",) if m.own else ("mention",) if item.mention else ()
            if item.header:
                nick_tag = "nick_me" if m.own else f"nick{self._nick_index(m.sender)}"
                who = f"-{clean(m.sender)}-" if m.notice else clean(m.sender)  # -nick-: a notice
                t.insert(at, who, (nick_tag, "header", *band))
                t.insert(at, "   " + m.ts.astimezone().strftime("%H:%M"), ("time", "header", *band))
                if m.own:
                    t.insert(at, "   you", ("you", "header", *band))
                t.insert(at, "\n", ("header", *band))
            if item.quote is not None:
                self._draw_quote(item.quote, band, at)
            if item.editing:
                self._draw_editor(m, band, at)
            elif m.deleted:
                t.insert(at, "message deleted\n", ("deleted", *band))
            else:
                open_line = self._draw_body(m.body, band, at, end=False)
                if m.edited:
                    t.insert(at, "  (edited)", ("edited", *band))
                    open_line = True
                if item.tick is not None:
                    mark = {"sent": "✓ sent", "delivered": "✓✓ delivered", "read": "✓✓ read"}
                    tick_tag = "tick_read" if item.tick == "read" else "tick"
                    t.insert(at, "  " + mark[item.tick], (tick_tag, *band))
                    open_line = True
                if open_line:
                    t.insert(at, "\n", band)
            if item.chips:
                self._draw_chips(item.chips, band, at)
        elif isinstance(item, PendingLine):
            joined = isinstance(prev, PendingLine) or (
                isinstance(prev, MessageLine) and prev.message.own
            )
            if not joined:
                t.insert(at, "you", ("nick_me", "header", "own"))
                t.insert(at, "   not sent yet\n", ("time", "header", "own"))
            if item.quote is not None:
                self._draw_quote(item.quote, ("own",), at)
            self._draw_body(item.body, ("own", "pending"), at)
            tag = f"pending{item.key}"
            if item.state == "failed":
                t.insert(at, f"{clean(item.error or 'not sent')}   ", ("failed", "own"))
                t.insert(at, "dismiss", ("dismiss", tag, "own"))
                t.insert(at, "\n", ("own",))
                if tag not in self._pending_tags:
                    self._pending_tags.add(tag)
                    key = item.key
                    t.tag_bind(tag, "<Button-1>", lambda _e: self.actions.dismiss_pending(key))
            else:
                state = (
                    "sending…"
                    if item.state == "sending"
                    else ("queued — will be sent when the connection is back")
                )
                t.insert(at, f"{state}\n", ("state", "own"))

    def _draw_body(
        self, body: str, band: tuple[str, ...], at: str = "end", *, end: bool = True
    ) -> bool:
        """Draw a body; without ``end`` its last line is left open (for "(edited)"...).

        Returns:
            Whether the last line was left open: a code block always ends its
            line, so that its background reaches the edge.
        """
        t = self.text
        runs = split_fences(body)
        open_line = False
        for i, (text, is_code) in enumerate(runs):
            open_line = i == len(runs) - 1 and not end and not is_code
            shown = clean(emoji_as_text(text), multiline=True) + ("" if open_line else "\n")
            t.insert(at, shown, ("code", *band) if is_code else band)
        return open_line or (not runs and not end)

    def _draw_quote(self, quote: Quote, band: tuple[str, ...], at: str) -> None:
        who = f"{clean(quote.sender)}: " if quote.sender else ""
        text = clean(emoji_as_text(quote.text))
        self.text.insert(at, f"↪ {who}{text}\n", ("quote", *band))

    def _draw_chips(self, chips: Sequence[Chip], band: tuple[str, ...], at: str) -> None:
        t = self.text
        for i, chip in enumerate(chips):
            if i:
                t.insert(at, " ", band)
            label = f" {emoji_as_text(chip.emoji)} {chip.count} "
            t.insert(at, label, ("chip_mine" if chip.mine else "chip", *band))
        t.insert(at, "\n", band)

    def _draw_editor(self, message: Message, band: tuple[str, ...], at: str) -> None:
        """The message's text in a box of its own: Enter saves, Escape cancels."""
        t = self.text
        if self._edit_id != message.id:
            self._edit_id, self._edit_draft = message.id, message.body
        lines = self._edit_draft.count("\n") + 1
        box = tk.Text(
            t,
            height=min(max(lines, 1), 8),
            width=60,
            wrap="word",
            font=self.theme.fonts["body"],
            relief="solid",
            borderwidth=1,
            padx=self.theme.px(6),
            pady=self.theme.px(4),
            undo=True,
        )
        p = self.theme.palette
        box.configure(background=p.surface, foreground=p.fg, insertbackground=p.fg)
        box.insert("1.0", self._edit_draft)
        box.mark_set("insert", "end-1c")
        mid = message.id
        box.bind("<Return>", lambda e: self._edit_return(e, mid))
        box.bind("<KP_Enter>", lambda e: self._edit_return(e, mid))
        box.bind("<Escape>", lambda _e: self._edit_escape())
        t.window_create(at, window=box, padx=self.theme.px(2), pady=self.theme.px(2))
        t.insert(at, "\n", band)
        t.insert(at, EDIT_HINT + "\n", ("edit_hint", *band))
        self.edit_box = box
        box.focus_set()

    def _keep_edit_draft(self) -> None:
        """Before a redraw: keep the edit box's text (Tk destroys the box with its line)."""
        box = self.edit_box
        if box is not None and box.winfo_exists():
            self._edit_draft = box.get("1.0", "end-1c")

    def _forget_gone_edit_box(self) -> None:
        """After a redraw: drop the box if its line went (and no new one was drawn)."""
        if self.edit_box is not None and not self.edit_box.winfo_exists():
            self.edit_box = None

    def _edit_return(self, event: tk.Event[tk.Text], message_id: int) -> str:
        box = self.edit_box
        if box is None:
            return "break"
        if isinstance(event.state, int) and event.state & 0x0001:
            box.insert("insert", "\n")
            return "break"
        self.actions.save_edit(message_id, box.get("1.0", "end-1c"))
        return "break"

    def _edit_escape(self) -> str:
        self.actions.cancel_edit()
        return "break"

    def resume_edit(self, message_id: int, text: str) -> None:
        """Edit a message again, starting from ``text`` (an edit the server refused)."""
        self._edit_id, self._edit_draft = message_id, text

    def stop_editing(self) -> None:
        """Forget the edit box's text (the edit was saved or cancelled)."""
        self._edit_id, self._edit_draft = None, ""

    # --- finding what is under the pointer ------------------------------------------

    def item_at(self, index: str) -> tuple[int, ViewItem] | None:
        """The item drawn at a text index (``@x,y`` or ``line.col``), with its position."""
        if not self._starts:
            return None
        line = _line(self.text.index(index))
        if self._start_lines is None:  # once per redraw, not at every pointer motion
            self._start_lines = [_line(s) for s in self._starts]
        i = bisect.bisect_right(self._start_lines, line) - 1
        if 0 <= i < len(self._items):
            return i, self._items[i]
        return None

    def message_at(self, index: str) -> Message | None:
        """The message drawn at a text index, if one is."""
        found = self.item_at(index)
        if found is not None and isinstance(found[1], MessageLine):
            return found[1].message
        return None

    def message_index(self, message_id: int) -> str | None:
        """Where a message starts in the conversation's text (None: not shown)."""
        for i, item in enumerate(self._items):
            if isinstance(item, MessageLine) and item.message.id == message_id:
                return self._starts[i]
        return None

    def _quote_clicked(self, event: tk.Event[tk.Text]) -> str:
        found = self.item_at(f"@{event.x},{event.y}")
        if found is not None:
            item = found[1]
            quote = item.quote if isinstance(item, MessageLine | PendingLine) else None
            if quote is not None:
                self.actions.jump_to(quote.target)
        return "break"

    def _chip_clicked(self, event: tk.Event[tk.Text]) -> str:
        index = self.text.index(f"@{event.x},{event.y}")
        found = self.item_at(index)
        if found is None or not isinstance(found[1], MessageLine):
            return "break"
        item = found[1]
        # Which chip: count the chips drawn on that line before the click.
        line = index.split(".", 1)[0]
        n = -1
        for tag in ("chip", "chip_mine"):
            ranges = self.text.tag_ranges(tag)
            for start, _end in zip(ranges[::2], ranges[1::2], strict=True):
                if str(start).split(".", 1)[0] == line and self.text.compare(start, "<=", index):
                    n += 1
        if 0 <= n < len(item.chips):
            chip = item.chips[n]
            self.actions.react(item.message.id, chip.emoji, not chip.mine)
        return "break"

    def chip_index(self, message_id: int, n: int) -> str | None:
        """Where chip ``n`` of a message is drawn (for tests and keyboard users)."""
        start = self.message_index(message_id)
        if start is None:
            return None
        i = next(
            i
            for i, it in enumerate(self._items)
            if isinstance(it, MessageLine) and it.message.id == message_id
        )
        end = self._starts[i + 1] if i + 1 < len(self._starts) else "end"
        found: list[str] = []
        for tag in ("chip", "chip_mine"):
            ranges = self.text.tag_ranges(tag)
            for a, _b in zip(ranges[::2], ranges[1::2], strict=True):
                if self.text.compare(a, ">=", start) and self.text.compare(a, "<", end):
                    found.append(str(a))
        found.sort(key=lambda x: tuple(int(v) for v in x.split(".")))
        return found[n] if n < len(found) else None

    # --- message actions from the keyboard ---------------------------------------------

    def _selectable(self) -> list[int]:
        return [
            i.message.id
            for i in self._items
            if isinstance(i, MessageLine) and not i.message.deleted
        ]

    def _text_focus_in(self, _event: object = None) -> None:
        ids = self._selectable()
        if self.selected not in ids:
            self.selected = ids[-1] if ids else None
        self._mark_selected()

    def _mark_selected(self) -> None:
        """Highlight the keyboard's message while the conversation has the focus."""
        t = self.text
        t.tag_remove("selected", "1.0", "end")
        if self.selected is None or self.focus_get() is not t:
            return
        start = self.message_index(self.selected)
        if start is None:
            return
        found = self.item_at(start)
        assert found is not None
        i = found[0]
        end = self._starts[i + 1] if i + 1 < len(self._starts) else "end-1c"
        t.tag_add("selected", start, end)
        t.see(end)
        t.see(start)

    def _move_selection(self, step: int) -> str:
        ids = self._selectable()
        if ids:
            i = ids.index(self.selected) + step if self.selected in ids else len(ids) - 1
            self.selected = ids[max(0, min(i, len(ids) - 1))]
        self._mark_selected()
        return "break"

    def _selected_message(self) -> Message | None:
        for item in self._items:
            if isinstance(item, MessageLine) and item.message.id == self.selected:
                return None if item.message.deleted else item.message
        return None

    def _selected_do(self, name: str) -> str:
        message = self._selected_message()
        if message is not None and (
            message.own
            or name == "Reply"
            or (name == "Delete" and self.actions.can_delete(message.id))
        ):
            self._do(name, message.id)
        return "break"

    def _selected_menu(self, _event: object = None) -> str:
        message = self._selected_message()
        start = self.message_index(message.id) if message is not None else None
        box = self.text.bbox(start) if start is not None else None
        if message is None or box is None:
            return "break"
        self.message_menu = self.message_menu_for(message)
        x, y = self.text.winfo_rootx() + box[0], self.text.winfo_rooty() + box[1] + box[3]
        self.message_menu.tk_popup(x, y)
        return "break"

    def _back_to_input(self) -> str:
        self.input.focus_set()
        return "break"

    def _edit_last(self, _event: object = None) -> str | None:
        if self.input_text().strip():
            return None  # moving in the text, as usual
        mid = self.actions.last_own()
        if mid is not None:
            self.actions.start_edit(mid)
        return "break"

    # --- message actions: hover bar and right-click menu ----------------------------

    def _hover(self, event: tk.Event[tk.Text]) -> None:
        message = self.message_at(f"@{event.x},{event.y}")
        if message is None or message.deleted:
            self.hide_hover()
            return
        if message.id == self._hover_id:
            return
        start = self.message_index(message.id)
        info = self.text.dlineinfo(start) if start is not None else None
        if info is None:
            self.hide_hover()
            return
        self._hover_id = message.id
        for button in self.hover_buttons.values():
            button.pack_forget()
        names = ["Reply", "React"] + (["Edit", "Delete"] if message.own else [])
        if not message.own and self.actions.can_delete(message.id):
            names.append("Delete")  # a moderator's delete (§12)
        for name in names:
            self.hover_buttons[name].pack(side="left")
        self.hover_bar.place(in_=self.text, relx=1.0, x=-self.theme.px(20), y=info[1], anchor="ne")
        self.hover_bar.lift()

    def _left_text(self, _event: object = None) -> None:
        """The pointer left the conversation: the bar goes, unless the pointer is on it."""

        def check() -> None:
            x, y = self.winfo_pointerxy()
            under = self.winfo_containing(x, y)
            on_bar = under is not None and str(under).startswith(str(self.hover_bar))
            if not on_bar:
                self.hide_hover()

        self.after(50, check)

    def hide_hover(self) -> None:
        """Take the message actions bar away."""
        if self._hover_id is not None:
            self._hover_id = None
            self.hover_bar.place_forget()

    def hovered(self) -> tuple[int, list[str]] | None:
        """The message the actions bar is over and its buttons (None: not shown)."""
        if self._hover_id is None:
            return None
        shown = [n for n, b in self.hover_buttons.items() if b.winfo_manager()]
        return self._hover_id, shown

    def _hover_action(self, name: str) -> None:
        mid = self._hover_id
        if mid is None:
            return
        if name == "React":
            button = self.hover_buttons["React"]
            menu = self._react_menu(mid)
            self.message_menu = menu
            menu.tk_popup(button.winfo_rootx(), button.winfo_rooty() + button.winfo_height())
            return
        self.hide_hover()
        self._do(name, mid)

    def _do(self, name: str, message_id: int) -> None:
        if name == "Reply":
            self.actions.start_reply(message_id)
        elif name == "Edit":
            self.actions.start_edit(message_id)
        elif name == "Delete":
            self.actions.delete(message_id)

    def _react_menu(self, message_id: int, parent: tk.Misc | None = None) -> tk.Menu:
        menu = tk.Menu(parent or self, tearoff=False)
        self.theme.style_menu(menu)
        for emoji in QUICK_REACTIONS:
            menu.add_command(
                label=emoji_as_text(emoji),
                command=functools.partial(self.actions.react, message_id, emoji, True),
            )
        menu.add_separator()
        menu.add_command(
            label="Other…", command=functools.partial(self.actions.ask_reaction, message_id)
        )
        return menu

    def message_menu_for(self, message: Message) -> tk.Menu:
        """The right-click menu of a message: reply, react, and edit/delete for ours."""
        menu = tk.Menu(self, tearoff=False)
        self.theme.style_menu(menu)
        mid = message.id
        menu.add_command(label="Reply", command=lambda: self._do("Reply", mid))
        menu.add_cascade(label="React", menu=self._react_menu(mid, menu))
        if message.own:
            menu.add_separator()
            menu.add_command(label="Edit", command=lambda: self._do("Edit", mid))
            menu.add_command(label="Delete", command=lambda: self._do("Delete", mid))
        elif message.sender:
            if self.actions.can_delete(mid):
                menu.add_separator()
                menu.add_command(
                    label="Delete as moderator", command=lambda: self._do("Delete", mid)
                )
            people = tk.Menu(menu, tearoff=False)
            self.theme.style_menu(people)
            self.actions.fill_member_menu(people, message.sender)
            menu.add_separator()
            menu.add_cascade(label=clean(message.sender), menu=people)
        menu.add_separator()
        menu.add_command(label="Copy text", command=lambda: self._copy(message.body))
        return menu

    def _message_menu(self, event: tk.Event[tk.Text]) -> str | None:
        message = self.message_at(f"@{event.x},{event.y}")
        if message is None or message.deleted:
            return None
        self.message_menu = self.message_menu_for(message)
        self.message_menu.tk_popup(event.x_root, event.y_root)
        return "break"

    def _copy(self, text: str) -> None:
        self.clipboard_clear()
        self.clipboard_append(text)

    def flash(self, message_id: int) -> bool:
        """Scroll to a message and highlight it for a moment; False if it is not shown."""
        if self.message_index(message_id) is None:
            return False
        self._flashed = message_id
        self._show_flashed()
        if self._flash_after is not None:
            self.after_cancel(self._flash_after)

        def unflash() -> None:
            self._flash_after = None
            self._flashed = None
            self.text.tag_remove("found", "1.0", "end")

        self._flash_after = self.after(FLASH_MS, unflash)
        return True

    def _show_flashed(self) -> None:
        """Highlight the message jumped to and keep it in view (also after a redraw)."""
        t = self.text
        t.tag_remove("found", "1.0", "end")
        start = self.message_index(self._flashed) if self._flashed is not None else None
        if start is None:
            return
        found = self.item_at(start)
        assert found is not None
        i = found[0]
        end = self._starts[i + 1] if i + 1 < len(self._starts) else "end-1c"
        t.tag_add("found", start, end)
        t.see(end)
        t.see(start)

    def flashed(self) -> str:
        """The text highlighted by the last jump ("" if none; for tests)."""
        ranges = self.text.tag_ranges("found")
        return self.text.get(ranges[0], ranges[1]) if ranges else ""

    # --- replying ------------------------------------------------------------------------

    def set_reply(self, quote: Quote | None) -> None:
        """Show (or hide) "Replying to bob: …" above the input box."""
        if quote is None:
            self.reply_bar.grid_remove()
            return
        who = clean(quote.sender) or "a message"
        text = f"Replying to {who}: {clean(emoji_as_text(quote.text))}"
        if self.reply_label.cget("text") != text:
            self.reply_label.configure(text=text)
        self.reply_bar.grid(row=0, column=0, columnspan=2, sticky="ew")

    # --- search --------------------------------------------------------------------------

    def _search(self, _event: object = None) -> str:
        query = self.search_var.get().strip()
        if query:
            self.actions.search(query)
        return "break"

    def show_results(self, title: str, rows: Sequence[str], *, more: bool = False) -> None:
        """Show search results in the members panel's place (``more``: older ones exist)."""
        self.results_label.configure(text=title)
        self.results_list.delete(0, "end")
        for row in rows:
            self.results_list.insert("end", row)
        if more:
            self.more_results.grid()
        else:
            self.more_results.grid_remove()
        if not self.results_shown:
            self.results_shown = True
            if self.members_shown:
                self.members_shown = False
                self.panes.forget(self.members_frame)
            self.panes.add(self.results_frame, weight=0)

    def hide_results(self) -> None:
        """Put the members panel back in the search results' place."""
        if self.results_shown:
            self.results_shown = False
            self.panes.forget(self.results_frame)
            self._place_members()

    def result_rows(self) -> list[str]:
        """The search results as listed (for tests)."""
        return [str(r) for r in self.results_list.get(0, "end")]

    def _result_chosen(self, _event: object = None) -> None:
        chosen: tuple[int, ...] = self.results_list.curselection()  # type: ignore[no-untyped-call]
        if chosen:
            self.actions.open_result(int(chosen[0]))

    def _nick_index(self, nick: str) -> int:
        return self.theme.palette.nicks.index(self.theme.nick_color(nick))

    # --- typing, members, status -----------------------------------------------------

    def set_typing(self, text: str) -> None:
        """``bob is typing…`` under the conversation ("" hides it)."""
        if self.typing_label.cget("text") != text:
            self.typing_label.configure(text=text)

    def set_members(
        self, users: Sequence[User] | None, me: str, title: str = "Online", *, live: bool = True
    ) -> None:
        """The online members of the current room (None: not known yet).

        Not ``live`` (the connection is down): the list is the last one known,
        titled "Last seen", with grey dots instead of green ones.
        """
        self.members.delete(*self.members.get_children())
        self._member_nicks = {}
        if not live:
            title = "Last seen"
        if users is None:
            self.members_label.configure(text=title.upper())
            return
        self.members_label.configure(text=f"{title.upper()} — {len(users)}")
        p = self.theme.palette
        dot = self.theme.dot(p.ok if live else p.muted)
        for user in users:
            is_me = fold_nick(user.nick) == fold_nick(me)
            text = clean(user.nick) + ("  (you)" if is_me else "")
            if not user.account and not is_me:
                text += "  · guest"
            tag = "me" if is_me else "user" if user.account else "guest"
            self.members.insert(
                "",
                "end",
                iid=fold_nick(user.nick),
                text=text,
                tags=(tag,),
                image=dot,
            )
        self._member_nicks = {fold_nick(u.nick): u.nick for u in users}

    def member_rows(self) -> list[str]:
        """The member list's rows (for tests)."""
        return [str(self.members.item(i, "text")) for i in self.members.get_children()]

    def show_members(self, shown: bool) -> None:
        """Show or hide the members panel (it also steps aside in a narrow window)."""
        self.members_wanted = shown
        self._place_members()

    def _resized(self, _event: object = None) -> None:
        self._place_members()

    def _place_members(self) -> None:
        width = self.winfo_width()
        roomy = width <= 1 or width >= self.theme.px(NARROW)
        shown = self.members_wanted and roomy and not self.results_shown
        if shown == self.members_shown:
            return
        self.members_shown = shown
        if shown:
            self.panes.add(self.members_frame, weight=0)
        else:
            self.panes.forget(self.members_frame)

    def _member_activated(self, event: tk.Event[ttk.Treeview] | None = None) -> str:
        iid = ""
        if event is not None and event.type == tk.EventType.ButtonPress:
            iid = self.members.identify_row(event.y)
        if not iid:
            focus = self.members.focus() or next(iter(self.members.selection()), "")
            iid = str(focus)
        nick = self._member_nicks.get(iid)
        if nick:
            self.actions.open_dm(nick)
        return "break"

    def _member_menu(self, event: tk.Event[ttk.Treeview]) -> str:
        """Right-click on a member (or Shift+F10): what the user may do to them."""
        iid = ""
        if event.type == tk.EventType.ButtonPress:
            iid = self.members.identify_row(event.y)
        if not iid:
            iid = str(self.members.focus() or next(iter(self.members.selection()), ""))
        nick = self._member_nicks.get(iid)
        if nick is None:
            return "break"
        self.members.selection_set(iid)
        menu = tk.Menu(self, tearoff=False)
        self.theme.style_menu(menu)
        menu.add_command(label=f"Message {clean(nick)}", command=lambda: self.actions.open_dm(nick))
        self.actions.fill_member_menu(menu, nick)
        self.member_menu = menu
        menu.tk_popup(event.x_root, event.y_root)
        return "break"

    def set_status(self, text: str, kind: StatusKind) -> None:
        """The status bar: a coloured dot and the truth about the connection."""
        p = self.theme.palette
        self._status_kind = kind
        colour = {"ok": p.ok, "warn": p.warn, "error": p.error}[kind]
        self.status_dot.itemconfigure(self._dot, fill=colour)
        if self.status_label.cget("text") != text:
            self.status_label.configure(text=text)

    # --- input ---------------------------------------------------------------------------

    def input_text(self) -> str:
        """What the input box holds."""
        return self.input.get("1.0", "end-1c")

    def set_input(self, text: str) -> None:
        """Replace what the input box holds (cursor at the end)."""
        self.input.delete("1.0", "end")
        if text:
            self.input.insert("1.0", text)
        self.input.edit_reset()
        self.input.mark_set("insert", "end-1c")
        self._placeholder()

    def focus_input(self) -> None:
        """Put the keyboard focus in the input box."""
        self.input.focus_set()

    def _placeholder(self) -> None:
        self._grow()
        if self.input_text():
            self.placeholder.place_forget()
            return
        where = self.title_label.cget("text").replace(" ", "", 1)
        self.placeholder.configure(text=f"Message {where}" if where else "Message")
        # Exactly where the first character would be drawn.
        box = self.input.bbox("1.0")
        x, y = (box[0], box[1]) if box else (self.theme.px(10), self.theme.px(8))
        self.placeholder.place(x=x, y=y, bordermode="outside")

    def _grow(self) -> None:
        """Fit the input box to its text: 2 to 8 lines."""
        counted = self.input.count("1.0", "end", "displaylines")
        lines = counted[0] if isinstance(counted, tuple) else counted or 1
        height = min(max(int(lines), 2), 8)
        if int(self.input.cget("height")) != height:
            self.input.configure(height=height)

    def _send(self) -> None:
        if self.actions.send_text(self.input_text()):
            self.set_input("")
        self.input.focus_set()

    def _on_return(self, event: tk.Event[tk.Text]) -> str:
        if (
            isinstance(event.state, int) and event.state & 0x0001
        ):  # Shift held: a new line, not a send
            return self._on_shift_return(event)
        self._send()
        return "break"

    def _on_shift_return(self, _event: object = None) -> str:
        self.input.insert("insert", "\n")
        self.input.see("insert")
        self._placeholder()
        return "break"

    def _on_up(self, event: tk.Event[tk.Text] | None = None) -> str | None:
        modified = event is not None and isinstance(event.state, int) and event.state & 0x000C
        if modified or self.input_text().strip():
            return None  # Alt/Ctrl+Up, or moving the cursor in the text: as usual
        last = self.actions.recall()
        if last:
            self.set_input(last)
        return "break"

    def _on_key(self, event: tk.Event[tk.Text]) -> None:
        if event.char and event.char.isprintable():
            self.placeholder.place_forget()
            self.actions.user_typing()

    def destroy(self) -> None:
        self.theme.unsubscribe(self._restyle)
        super().destroy()


def _wrap_to_width(label: ttk.Label, container: tk.Misc, reserve: int) -> None:
    """Keep ``label`` wrapped to ``container``'s width less ``reserve`` pixels."""

    def resized(event: tk.Event[tk.Misc]) -> None:
        width = max(event.width - reserve, 40)
        if str(label.cget("wraplength")) != str(width):
            label.configure(wraplength=width)

    container.bind("<Configure>", resized, add=True)
