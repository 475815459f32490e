"""Small forms in their own window: join a room, message someone, register, change password.

A :class:`FormDialog` never waits for the network itself: it hands the values
to ``on_submit`` and stays open; the app closes it on success or shows the
server's refusal next to the field it concerns (:meth:`FormDialog.show_error`).
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from tkinter import ttk

from chinwag.client.gui.theme import Theme

__all__ = ["Field", "FormDialog"]


@dataclass(frozen=True, slots=True)
class Field:
    """One entry of a form."""

    key: str
    label: str
    secret: bool = False
    hint: str = ""


class FormDialog(tk.Toplevel):
    """A small modal-looking form; Enter submits, Escape cancels.

    Args:
        parent: the main window.
        theme: the app's theme.
        title: the window title.
        fields: the entries, top to bottom.
        submit: the button's text.
        on_submit: called with ``{key: text}`` when the user submits.
        intro: a line of explanation above the fields.
        on_cancel: called when the user closes the form without submitting.
    """

    def __init__(
        self,
        parent: tk.Misc,
        theme: Theme,
        title: str,
        fields: Sequence[Field],
        submit: str,
        on_submit: Callable[[dict[str, str]], None],
        intro: str = "",
        on_cancel: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.withdraw()
        self.title(title)
        self.transient(parent.winfo_toplevel())
        self.resizable(False, False)
        self.configure(background=theme.palette.surface)
        self._on_submit = on_submit
        self._on_cancel = on_cancel
        px = theme.px
        frame = ttk.Frame(self, style="Surface.TFrame", padding=px(20))
        frame.pack(fill="both", expand=True)
        frame.columnconfigure(0, weight=1)
        row = 0
        ttk.Label(frame, text=title, style="Header.TLabel").grid(row=row, column=0, sticky="w")
        row += 1
        self.intro_label = ttk.Label(
            frame, text=intro, style="CardMuted.TLabel", wraplength=px(420), justify="left"
        )
        if intro:
            self.intro_label.grid(row=row, column=0, sticky="w", pady=(px(4), 0))
            row += 1
        self.vars: dict[str, tk.StringVar] = {}
        self.entries: dict[str, ttk.Entry] = {}
        self.errors: dict[str, ttk.Label] = {}
        for field in fields:
            ttk.Label(frame, text=field.label, style="CardHeading.TLabel").grid(
                row=row, column=0, sticky="w", pady=(px(12), px(4))
            )
            row += 1
            var = tk.StringVar(self)
            entry = ttk.Entry(frame, textvariable=var, width=34, show="•" if field.secret else "")
            entry.grid(row=row, column=0, sticky="ew")
            row += 1
            error = ttk.Label(frame, text=field.hint, style="CardMuted.TLabel")
            error.grid(row=row, column=0, sticky="w", pady=(px(2), 0))
            row += 1
            self.vars[field.key], self.entries[field.key], self.errors[field.key] = (
                var,
                entry,
                error,
            )
        self._hints = {f.key: f.hint for f in fields}
        self.general = ttk.Label(frame, text="", style="Error.TLabel", wraplength=px(320))
        self.general.grid(row=row, column=0, sticky="w", pady=(px(8), 0))
        row += 1
        buttons = ttk.Frame(frame, style="Surface.TFrame")
        buttons.grid(row=row, column=0, sticky="e", pady=(px(12), 0))
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.cancel)
        self.cancel_button.pack(side="right")
        self.submit_button = ttk.Button(
            buttons, text=submit, style="Accent.TButton", command=self.submit
        )
        self.submit_button.pack(side="right", padx=(0, px(8)))
        self.bind("<Return>", lambda _e: self.submit())
        self.bind("<KP_Enter>", lambda _e: self.submit())
        self.bind("<Escape>", lambda _e: self.cancel())
        self.protocol("WM_DELETE_WINDOW", self.cancel)
        self.closed = False
        self.update_idletasks()
        x = parent.winfo_rootx() + max(0, (parent.winfo_width() - self.winfo_reqwidth()) // 2)
        y = parent.winfo_rooty() + max(0, (parent.winfo_height() - self.winfo_reqheight()) // 3)
        self.geometry(f"+{x}+{y}")
        self.deiconify()
        if fields:
            self.entries[fields[0].key].focus_set()
        else:
            self.cancel_button.focus_set()  # a question: the safe answer is the default

    def values(self) -> dict[str, str]:
        """What the user typed, by field key."""
        return {key: var.get() for key, var in self.vars.items()}

    def submit(self) -> None:
        """Clear the errors and hand the values over."""
        if self.closed:
            return
        self.clear_errors()
        self._on_submit(self.values())

    def clear_errors(self) -> None:
        """Put the hints back where errors were."""
        for key, label in self.errors.items():
            label.configure(text=self._hints[key], style="CardMuted.TLabel")
        self.general.configure(text="")

    def show_error(self, key: str | None, text: str) -> None:
        """Show an error under field ``key`` (None: under the form)."""
        if key is not None and key in self.errors:
            self.errors[key].configure(text=text, style="Error.TLabel")
            self.entries[key].focus_set()
        else:
            self.general.configure(text=text)

    def set_busy(self, busy: bool) -> None:
        """Grey out the submit button while the server is asked."""
        self.submit_button.state(["disabled"] if busy else ["!disabled"])

    def cancel(self) -> None:
        """Close the form without submitting (Cancel, Escape, the window's close button)."""
        if not self.closed and self._on_cancel is not None:
            self._on_cancel()
        self.close()

    def close(self) -> None:
        """Close the form."""
        if not self.closed:
            self.closed = True
            self.destroy()
