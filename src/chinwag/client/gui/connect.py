"""The connect window: server, nick, password, "register this nick", and the LAN list.

Thin: it shows what the app tells it (errors next to their field, servers on
the LAN, "connecting…") and hands the form to ``on_connect``.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Sequence
from tkinter import ttk
from typing import Final, Literal

from chinwag.client.gui.session import LanServer
from chinwag.client.gui.theme import Theme

__all__ = ["ConnectView", "FieldName"]

FieldName = Literal["server", "nick", "password", "form"]

PASSWORD_HINT: Final = "Leave empty to join as a guest."
REGISTER_HINT: Final = "At least 8 characters. It protects your nick."


class ConnectView(ttk.Frame):
    """The form shown before a login.

    Args:
        parent: the root window.
        theme: the app's theme.
        on_connect: called with (server, nick, password, register) on Connect.
        recent: recent servers, the most recent first (the first fills the field).
        nick: the nick to fill in.
        lan: whether a LAN source is wired in (else the LAN list says so).
    """

    def __init__(
        self,
        parent: tk.Misc,
        theme: Theme,
        on_connect: Callable[[str, str, str, bool], None],
        *,
        recent: Sequence[str] = (),
        nick: str = "",
        lan: bool = False,
    ) -> None:
        super().__init__(parent, style="TFrame")
        self.theme = theme
        self._on_connect = on_connect
        px = theme.px
        self.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        card = ttk.Frame(self, style="Card.TFrame", padding=(px(36), px(28)), borderwidth=1)
        card.grid(row=0, column=0, padx=px(24), pady=px(24))
        card.columnconfigure(0, weight=1, minsize=px(340))
        self.card = card

        self.server_var = tk.StringVar(self, value=recent[0] if recent else "localhost:5050")
        self.nick_var = tk.StringVar(self, value=nick)
        self.password_var = tk.StringVar(self)
        self.register_var = tk.BooleanVar(self, value=False)

        row = 0

        def place(widget: tk.Widget, **kw: object) -> None:
            nonlocal row
            widget.grid(row=row, column=0, sticky="ew", **kw)  # type: ignore[arg-type]
            row += 1

        place(ttk.Label(card, text="chinwag", style="CardTitle.TLabel"))
        place(
            ttk.Label(card, text="Connect to a chat server", style="CardMuted.TLabel"),
            pady=(0, px(14)),
        )

        place(ttk.Label(card, text="Server", style="CardHeading.TLabel"), pady=(0, px(4)))
        self.server_box = ttk.Combobox(card, textvariable=self.server_var, values=list(recent))
        place(self.server_box)
        self.errors: dict[FieldName, ttk.Label] = {}
        self.errors["server"] = ttk.Label(card, text="", style="Error.TLabel", wraplength=px(340))
        place(self.errors["server"], pady=(px(2), px(6)))

        place(ttk.Label(card, text="On your network", style="CardHeading.TLabel"), pady=(0, px(4)))
        lan_frame = ttk.Frame(card, style="Field.TFrame", borderwidth=1)
        place(lan_frame)
        self.lan_list = tk.Listbox(
            lan_frame,
            height=3,
            activestyle="none",
            exportselection=False,
            relief="flat",
            borderwidth=0,
            highlightthickness=0,
            font=theme.fonts["body"],
        )
        self.lan_list.pack(fill="both", expand=True, padx=px(2), pady=px(2))
        self.lan_list.bind("<<ListboxSelect>>", self._lan_selected)
        self.lan_list.bind("<Double-Button-1>", lambda _e: self.submit())
        self._lan_servers: list[LanServer] = []
        self._lan_enabled = lan
        self.set_lan(())

        place(ttk.Label(card, text="Nick", style="CardHeading.TLabel"), pady=(px(14), px(4)))
        self.nick_entry = ttk.Entry(card, textvariable=self.nick_var)
        place(self.nick_entry)
        self.errors["nick"] = ttk.Label(card, text="", style="Error.TLabel", wraplength=px(340))
        place(self.errors["nick"], pady=(px(2), px(6)))

        place(ttk.Label(card, text="Password", style="CardHeading.TLabel"), pady=(0, px(4)))
        self.password_entry = ttk.Entry(card, textvariable=self.password_var, show="•")
        place(self.password_entry)
        self.errors["password"] = ttk.Label(
            card, text=PASSWORD_HINT, style="CardMuted.TLabel", wraplength=px(340)
        )
        place(self.errors["password"], pady=(px(2), px(6)))

        self.register_check = ttk.Checkbutton(
            card,
            text="Register this nick (first time only)",
            variable=self.register_var,
            command=self._register_toggled,
        )
        place(self.register_check, pady=(px(2), px(16)))

        self.connect_button = ttk.Button(
            card, text="Connect", style="Accent.TButton", command=self.submit
        )
        place(self.connect_button)
        self.errors["form"] = ttk.Label(
            card, text="", style="CardMuted.TLabel", wraplength=px(340), anchor="center"
        )
        place(self.errors["form"], pady=(px(8), 0))

        for widget in (self.server_box, self.nick_entry, self.password_entry):
            widget.bind("<Return>", lambda _e: self.submit())
            widget.bind("<KP_Enter>", lambda _e: self.submit())
        self._busy = False
        self._locked = False
        theme.subscribe(self._restyle)
        self._restyle()

    @property
    def busy(self) -> bool:
        """Whether a login (or logout) is under way."""
        return self._busy

    # --- what the app shows --------------------------------------------------------

    def focus_first(self) -> None:
        """Put the cursor in the first empty field."""
        if not self.nick_var.get():
            self.nick_entry.focus_set()
        else:
            self.password_entry.focus_set()

    def show_error(self, field: FieldName, text: str) -> None:
        """Show an error next to a field (``form``: under the Connect button)."""
        self.errors[field].configure(text=text, style="Error.TLabel")

    def clear_errors(self) -> None:
        """Remove every error (the password hint comes back)."""
        for name, label in self.errors.items():
            if name == "password":
                label.configure(text=self._password_hint(), style="CardMuted.TLabel")
            else:
                label.configure(text="", style="Error.TLabel")

    def set_busy(self, busy: bool, text: str = "Connecting…") -> None:
        """Show that a login is under way (the button is disabled meanwhile)."""
        self._busy = busy
        self._update_button()
        if busy:
            self.errors["form"].configure(text=text, style="CardMuted.TLabel")
        elif self.errors["form"].cget("style") == "CardMuted.TLabel":
            self.errors["form"].configure(text="")

    def lock(self, locked: bool) -> None:
        """Keep Connect disabled (while a ``rate_limited`` wait runs)."""
        self._locked = locked
        self._update_button()

    def set_lan(self, servers: Sequence[LanServer]) -> None:
        """Show the servers found on the LAN."""
        self._lan_servers = list(servers)
        self.lan_list.delete(0, "end")
        if not self._lan_enabled:
            self.lan_list.insert("end", "  LAN discovery is not available in this build")
            self.lan_list.itemconfigure(0, foreground=self.theme.palette.muted)
            return
        if not servers:
            self.lan_list.insert("end", "  Looking for servers…")
            self.lan_list.itemconfigure(0, foreground=self.theme.palette.muted)
            return
        for server in servers:
            tls = "   · TLS" if server.tls else ""
            self.lan_list.insert("end", f"  {server.name}   {server.address}{tls}")

    # --- the user's actions ----------------------------------------------------------

    def submit(self) -> None:
        """Hand the form to the app (ignored while busy or locked)."""
        if self._busy or self._locked:
            return
        self._on_connect(
            self.server_var.get().strip(),
            self.nick_var.get().strip(),
            self.password_var.get(),
            bool(self.register_var.get()),
        )

    def _lan_selected(self, _event: object = None) -> None:
        chosen: tuple[int, ...] = self.lan_list.curselection()  # type: ignore[no-untyped-call]
        if chosen and chosen[0] < len(self._lan_servers):
            self.server_var.set(self._lan_servers[chosen[0]].address)

    def _register_toggled(self) -> None:
        label = self.errors["password"]
        if label.cget("style") == "CardMuted.TLabel":
            label.configure(text=self._password_hint())

    def _password_hint(self) -> str:
        return REGISTER_HINT if self.register_var.get() else PASSWORD_HINT

    def _update_button(self) -> None:
        blocked = self._busy or self._locked
        self.connect_button.state(["disabled"] if blocked else ["!disabled"])

    def _restyle(self) -> None:
        p = self.theme.palette
        self.lan_list.configure(
            background=p.surface,
            foreground=p.fg,
            selectbackground=p.select,
            selectforeground=p.fg,
        )
        self.set_lan(self._lan_servers)

    def destroy(self) -> None:
        self.theme.unsubscribe(self._restyle)
        super().destroy()
