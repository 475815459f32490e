"""Light and dark themes: a ttk ``clam`` style of our own, fonts, nick colours, scaling.

Everything is sized in points (fonts) or in :meth:`Theme.px` (padding), so the
whole window grows with ``scale`` (1.5 for 150 %) and stays readable. Views
read colours from :attr:`Theme.palette` for the classic Tk widgets that ttk
styles do not reach (Text, Canvas, Menu) and re-read them when the theme
changes (:meth:`Theme.subscribe`).
"""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from tkinter import ttk
from typing import Any, Final

from chinwag.client.events import fold_nick
from chinwag.client.gui.prefs import ThemeName

__all__ = ["DARK", "LIGHT", "Palette", "Theme"]


@dataclass(frozen=True, slots=True)
class Palette:
    """The colours of one theme."""

    name: ThemeName
    window: str
    sidebar: str
    surface: str
    raised: str
    fg: str
    muted: str
    border: str
    accent: str
    accent_fg: str
    accent_active: str
    select: str
    own: str
    mention: str
    code_bg: str
    code_fg: str
    error: str
    ok: str
    warn: str
    divider: str
    nicks: tuple[str, ...]


LIGHT: Final = Palette(
    name="light",
    window="#f4f5f7",
    sidebar="#eceef2",
    surface="#ffffff",
    raised="#f7f8fa",
    fg="#1d2127",
    muted="#687080",
    border="#d5d9e0",
    accent="#2f6fed",
    accent_fg="#ffffff",
    accent_active="#245bd0",
    select="#d9e5fd",
    own="#f2f6ff",
    mention="#fff4d1",
    code_bg="#f1f3f6",
    code_fg="#1d2127",
    error="#c4302b",
    ok="#1f9d55",
    warn="#c77700",
    divider="#d6336c",
    nicks=(
        "#c0392b",
        "#b35c00",
        "#8a6d00",
        "#2b8a3e",
        "#0b7a75",
        "#1c64d4",
        "#6741d9",
        "#a61e6e",
        "#5c7a0f",
        "#0c6f8a",
    ),
)

DARK: Final = Palette(
    name="dark",
    window="#1b1e24",
    sidebar="#15171c",
    surface="#22252c",
    raised="#2a2e36",
    fg="#e4e7eb",
    muted="#98a1ad",
    border="#363b45",
    accent="#5b8def",
    accent_fg="#ffffff",
    accent_active="#7aa2f3",
    select="#2e3a52",
    own="#262c38",
    mention="#3b3423",
    code_bg="#17191e",
    code_fg="#dfe3e8",
    error="#ff7b72",
    ok="#3fb950",
    warn="#e3a008",
    divider="#ff6b8b",
    nicks=(
        "#ff8a80",
        "#ffab61",
        "#e6c35c",
        "#69db7c",
        "#4fd1c5",
        "#74a9ff",
        "#b197fc",
        "#f783ac",
        "#a9d46f",
        "#66d9e8",
    ),
)

PALETTES: Final = {"light": LIGHT, "dark": DARK}

UI_FAMILIES: Final = (
    "Inter",
    "Cantarell",
    "Noto Sans",
    "Segoe UI",
    "SF Pro Text",
    "Ubuntu",
    "DejaVu Sans",
    "Helvetica",
)
MONO_FAMILIES: Final = (
    "JetBrains Mono",
    "Cascadia Mono",
    "DejaVu Sans Mono",
    "Noto Sans Mono",
    "Consolas",
    "Menlo",
    "Courier",
)
BASE_PT: Final = 10


def _pick(available: set[str], wanted: tuple[str, ...], fallback: str) -> str:
    for family in wanted:
        if family in available:
            return family
    return fallback


class Theme:
    """The app's look: fonts, colours and the ttk style, switchable at run time.

    Args:
        root: the Tk root.
        name: ``light`` or ``dark``.
        scale: 1.0 for 100 %, 1.5 for 150 % (fonts and padding grow with it).
    """

    def __init__(self, root: tk.Tk, name: ThemeName = "light", scale: float = 1.0) -> None:
        self.root = root
        self.scale = max(0.5, min(scale, 4.0))
        self.palette = PALETTES[name]
        self._listeners: list[Callable[[], None]] = []
        self._dots: dict[tuple[str, int], tk.PhotoImage] = {}
        # Points are 1/72 inch; Tk's default assumes 96 dpi.
        root.tk.call("tk", "scaling", 96 / 72 * self.scale)
        available = set(tkfont.families(root))
        ui = _pick(available, UI_FAMILIES, "TkDefaultFont")
        mono = _pick(available, MONO_FAMILIES, "TkFixedFont")
        self.fonts = {
            "body": tkfont.Font(root, family=ui, size=BASE_PT),
            "bold": tkfont.Font(root, family=ui, size=BASE_PT, weight="bold"),
            "small": tkfont.Font(root, family=ui, size=BASE_PT - 1),
            "small_bold": tkfont.Font(root, family=ui, size=BASE_PT - 1, weight="bold"),
            "italic": tkfont.Font(root, family=ui, size=BASE_PT - 1, slant="italic"),
            "title": tkfont.Font(root, family=ui, size=BASE_PT + 8, weight="bold"),
            "heading": tkfont.Font(root, family=ui, size=BASE_PT + 2, weight="bold"),
            "mono": tkfont.Font(root, family=mono, size=BASE_PT),
        }
        for named in ("TkDefaultFont", "TkTextFont", "TkMenuFont", "TkHeadingFont"):
            tkfont.nametofont(named, root).configure(family=ui, size=BASE_PT)
        tkfont.nametofont("TkFixedFont", root).configure(family=mono, size=BASE_PT)
        self.style = ttk.Style(root)
        self.style.theme_use("clam")
        self._configure()

    @property
    def name(self) -> ThemeName:
        """``light`` or ``dark``."""
        return self.palette.name

    def px(self, n: float) -> int:
        """A length in pixels at this scale."""
        return round(n * self.scale)

    def nick_color(self, nick: str) -> str:
        """A stable colour for a nick, readable on this theme's background."""
        nicks = self.palette.nicks
        return nicks[zlib.crc32(fold_nick(nick).encode()) % len(nicks)]

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every theme change."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener``."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def use(self, name: ThemeName) -> None:
        """Switch to the light or dark theme."""
        self.palette = PALETTES[name]
        self._configure()
        for listener in list(self._listeners):
            listener()

    def dot(self, colour: str, size: int = 8) -> tk.PhotoImage:
        """A small filled circle (presence dots), made once per colour and size."""
        key = (colour, self.px(size))
        image = self._dots.get(key)
        if image is None:
            n = key[1]
            image = tk.PhotoImage(master=self.root, width=n + 4, height=n)
            r = n / 2
            rows = []
            for y in range(n):
                row = []
                for x in range(n + 4):
                    inside = (x - r + 0.5) ** 2 + (y - r + 0.5) ** 2 <= r * r
                    row.append(colour if inside and x < n else "")
                rows.append(row)
            for y, row in enumerate(rows):
                for x, pixel in enumerate(row):
                    if pixel:
                        image.put(pixel, (x, y))
            self._dots[key] = image
        return image

    def style_menu(self, menu: tk.Menu) -> None:
        """Colour a classic Tk menu like the theme."""
        p = self.palette
        menu.configure(
            background=p.surface,
            foreground=p.fg,
            activebackground=p.select,
            activeforeground=p.fg,
            selectcolor=p.accent,
            relief="flat",
            borderwidth=1,
            font=self.fonts["body"],
        )

    def _configure(self) -> None:
        p, s, px = self.palette, self.style, self.px
        body = self.fonts["body"]
        self.root.configure(background=p.window)
        s.configure(
            ".",
            background=p.window,
            foreground=p.fg,
            fieldbackground=p.surface,
            bordercolor=p.border,
            lightcolor=p.surface,
            darkcolor=p.surface,
            troughcolor=p.window,
            selectbackground=p.select,
            selectforeground=p.fg,
            insertcolor=p.fg,
            focuscolor=p.accent,
            font=body,
        )
        s.map(".", foreground=[("disabled", p.muted)])
        for name, bg in (
            ("TFrame", p.window),
            ("Sidebar.TFrame", p.sidebar),
            ("Surface.TFrame", p.surface),
            ("Raised.TFrame", p.raised),
        ):
            s.configure(name, background=bg)
        s.configure("Card.TFrame", background=p.surface, bordercolor=p.border, relief="solid")
        s.configure("Field.TFrame", background=p.surface, bordercolor=p.border, relief="solid")
        s.configure("FieldFocus.TFrame", background=p.surface, bordercolor=p.accent, relief="solid")
        labels = {
            "TLabel": (p.window, p.fg, body),
            "Surface.TLabel": (p.surface, p.fg, body),
            "Card.TLabel": (p.surface, p.fg, body),
            "CardMuted.TLabel": (p.surface, p.muted, self.fonts["small"]),
            "CardTitle.TLabel": (p.surface, p.fg, self.fonts["title"]),
            "CardHeading.TLabel": (p.surface, p.fg, self.fonts["small_bold"]),
            "Error.TLabel": (p.surface, p.error, self.fonts["small"]),
            "Muted.TLabel": (p.window, p.muted, self.fonts["small"]),
            "Sidebar.TLabel": (p.sidebar, p.fg, self.fonts["bold"]),
            "SidebarMuted.TLabel": (p.sidebar, p.muted, self.fonts["small"]),
            "Header.TLabel": (p.surface, p.fg, self.fonts["heading"]),
            "HeaderMuted.TLabel": (p.surface, p.muted, self.fonts["small"]),
            "Typing.TLabel": (p.surface, p.muted, self.fonts["italic"]),
            "Banner.TLabel": (p.select, p.fg, body),
            "Status.TLabel": (p.raised, p.muted, self.fonts["small"]),
            "Members.TLabel": (p.sidebar, p.muted, self.fonts["small_bold"]),
        }
        for name, (bg, fg, font) in labels.items():
            s.configure(name, background=bg, foreground=fg, font=font)
        s.configure("Banner.TFrame", background=p.select)
        s.configure("Status.TFrame", background=p.raised)
        pad = (px(12), px(6))
        s.configure(
            "TButton",
            background=p.raised,
            foreground=p.fg,
            bordercolor=p.border,
            lightcolor=p.raised,
            darkcolor=p.raised,
            padding=pad,
            relief="flat",
            focusthickness=1,
        )
        s.map(
            "TButton",
            background=[("disabled", p.window), ("pressed", p.select), ("active", p.select)],
            lightcolor=[("active", p.select)],
            darkcolor=[("active", p.select)],
        )
        s.configure(
            "Accent.TButton",
            background=p.accent,
            foreground=p.accent_fg,
            bordercolor=p.accent,
            lightcolor=p.accent,
            darkcolor=p.accent,
            font=self.fonts["bold"],
            padding=(px(16), px(8)),
        )
        s.map(
            "Accent.TButton",
            background=[
                ("disabled", p.border),
                ("pressed", p.accent_active),
                ("active", p.accent_active),
            ],
            lightcolor=[("active", p.accent_active)],
            darkcolor=[("active", p.accent_active)],
            bordercolor=[("disabled", p.border)],
            foreground=[("disabled", p.muted)],
        )
        for name, bg in (
            ("Sidebar.TButton", p.sidebar),
            ("Flat.TButton", p.surface),
            ("Banner.TButton", p.select),
        ):
            s.configure(
                name,
                background=bg,
                foreground=p.muted,
                bordercolor=bg,
                lightcolor=bg,
                darkcolor=bg,
                padding=(px(8), px(4)),
                anchor="w",
            )
            s.map(
                name,
                background=[("active", p.select)],
                foreground=[("active", p.fg)],
                bordercolor=[("active", p.select)],
                lightcolor=[("active", p.select)],
                darkcolor=[("active", p.select)],
            )
        field_opts: dict[str, Any] = {
            "fieldbackground": p.surface,
            "foreground": p.fg,
            "bordercolor": p.border,
            "lightcolor": p.surface,
            "darkcolor": p.surface,
            "insertcolor": p.fg,
            "padding": (px(8), px(6)),
        }
        s.configure("TEntry", **field_opts)
        s.map(
            "TEntry",
            bordercolor=[("focus", p.accent)],
            lightcolor=[("focus", p.accent)],
            darkcolor=[("focus", p.accent)],
        )
        s.configure(
            "TCombobox",
            **field_opts,
            background=p.surface,
            arrowcolor=p.muted,
            selectbackground=p.surface,
            selectforeground=p.fg,
        )
        s.map(
            "TCombobox",
            fieldbackground=[("readonly", p.surface)],
            bordercolor=[("focus", p.accent)],
            lightcolor=[("focus", p.accent)],
            darkcolor=[("focus", p.accent)],
            background=[("active", p.surface)],
            arrowcolor=[("active", p.fg)],
        )
        self.root.option_add("*TCombobox*Listbox.background", p.surface)
        self.root.option_add("*TCombobox*Listbox.foreground", p.fg)
        self.root.option_add("*TCombobox*Listbox.selectBackground", p.select)
        self.root.option_add("*TCombobox*Listbox.selectForeground", p.fg)
        self.root.option_add("*TCombobox*Listbox.font", body)
        for menu_opt, value in (
            ("background", p.surface),
            ("foreground", p.fg),
            ("activeBackground", p.select),
            ("activeForeground", p.fg),
        ):
            self.root.option_add(f"*Menu.{menu_opt}", value)
        s.configure(
            "TCheckbutton",
            background=p.surface,
            foreground=p.fg,
            indicatorbackground=p.surface,
            indicatorforeground=p.accent_fg,
            indicatormargin=(0, 0, px(8), 0),
            indicatorsize=px(14),
            upperbordercolor=p.muted,
            lowerbordercolor=p.muted,
        )
        s.map(
            "TCheckbutton",
            background=[("active", p.surface)],
            indicatorbackground=[("selected", p.accent), ("active", p.select)],
            upperbordercolor=[("selected", p.accent)],
            lowerbordercolor=[("selected", p.accent)],
        )
        row = self.fonts["body"].metrics("linespace") + px(12)
        for name, bg in (("Sidebar.Treeview", p.sidebar), ("Members.Treeview", p.sidebar)):
            s.configure(
                name,
                background=bg,
                fieldbackground=bg,
                foreground=p.fg,
                bordercolor=bg,
                lightcolor=bg,
                darkcolor=bg,
                borderwidth=0,
                rowheight=row,
                font=body,
                indent=px(12),
            )
            s.map(
                name,
                background=[("selected", p.select)],
                foreground=[("selected", p.fg)],
            )
        item: Any = [
            (
                "Treeitem.padding",
                {
                    "sticky": "nswe",
                    "children": [
                        ("Treeitem.image", {"side": "left", "sticky": ""}),
                        ("Treeitem.text", {"sticky": "nswe"}),
                    ],
                },
            )
        ]
        for name in ("Sidebar.Treeview", "Members.Treeview"):
            s.layout(name, [("Treeview.treearea", {"sticky": "nswe"})])
            s.layout(f"{name}.Item", item)  # no disclosure triangles
            s.configure(f"{name}.Item", padding=(px(8), 0, px(4), 0))
        s.layout(
            "Vertical.TScrollbar",  # a slim bar without arrows
            [
                (
                    "Vertical.Scrollbar.trough",
                    {
                        "sticky": "ns",
                        "children": [("Vertical.Scrollbar.thumb", {"sticky": "nswe"})],
                    },
                )
            ],
        )
        s.configure(
            "Vertical.TScrollbar",
            background=p.border,
            troughcolor=p.surface,
            bordercolor=p.surface,
            lightcolor=p.border,
            darkcolor=p.border,
            arrowcolor=p.muted,
            gripcount=0,
            arrowsize=px(8),
        )
        s.map(
            "Vertical.TScrollbar",
            background=[("active", p.muted)],
            lightcolor=[("active", p.muted)],
            darkcolor=[("active", p.muted)],
        )
        s.configure("TSeparator", background=p.border)
        s.configure("TPanedwindow", background=p.border)
        s.configure("Sash", sashthickness=px(1), gripcount=0, background=p.border)
