"""The desktop app, ``chinwag gui``: tkinter on the main thread, the client library on an
asyncio loop in a worker thread, and a queue between them (see :mod:`.bridge`).

Modules: :mod:`.model` (what the window shows, as plain data), :mod:`.bridge`
(Tk <-> asyncio), :mod:`.session` (the network side of one login),
:mod:`.connect`, :mod:`.chat` and :mod:`.dialogs` (thin views), :mod:`.theme`,
:mod:`.prefs`, and :mod:`.app` (the controller and :func:`run_gui`).
"""

from __future__ import annotations

from chinwag.client.gui.app import GuiApp, run_gui
from chinwag.client.gui.model import GuiModel
from chinwag.client.gui.session import Ask, LanServer, LanSource, Prepare, Prepared, Say

__all__ = [
    "Ask",
    "GuiApp",
    "GuiModel",
    "LanServer",
    "LanSource",
    "Prepare",
    "Prepared",
    "Say",
    "run_gui",
]
