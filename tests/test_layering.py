"""The import direction of DESIGN.md holds: each layer imports only what it may."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "chinwag"

# package -> chinwag modules it may import (prefixes)
ALLOWED = {
    "protocol": ("chinwag.protocol", "chinwag.errors"),
    "core": (
        "chinwag.core",
        "chinwag.protocol",
        "chinwag.errors",
        "chinwag.config",
        "chinwag.storage.base",
        "chinwag.bus.base",
        "chinwag",
    ),
    "storage": ("chinwag.storage", "chinwag.errors"),
    "bus": ("chinwag.bus", "chinwag.storage.base"),
    "server": (
        "chinwag.server",
        "chinwag.protocol",
        "chinwag.core",
        "chinwag.errors",
        "chinwag.config",
        "chinwag.bus",
        "chinwag.storage",
    ),
    "client": ("chinwag.client", "chinwag.protocol", "chinwag.errors", "chinwag"),
    # LAN discovery, TLS and invites: used by the CLI (the composition root), which
    # hands server and client what they need; net itself sees no server internals
    # but the Server/Service types it plugs into.
    "net": ("chinwag.net", "chinwag.client", "chinwag.errors", "chinwag.server.app", "chinwag"),
    "bot": (
        "chinwag.bot",
        "chinwag.client",
        "chinwag.errors",
        "chinwag.net.connect",
        "chinwag.net.pins",
        "chinwag",
    ),
}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return [n for n in names if n == "chinwag" or n.startswith("chinwag.")]


def test_each_layer_imports_only_what_it_may() -> None:
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in (SRC / package).rglob("*.py"):
            for name in _imports(path):
                ok = any(name == a or name.startswith(a + ".") for a in allowed)
                if name == "chinwag" and "chinwag" not in allowed:
                    ok = False
                if not ok:
                    wrong.append(f"{path.relative_to(SRC)} imports {name}")
    assert wrong == []


def test_only_server_app_and_cli_pick_concrete_backends() -> None:
    users = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if any(n in ("chinwag.storage.sqlite", "chinwag.bus.local") for n in _imports(p))
        and "storage" not in p.parts
        and "bus" not in p.parts
    )
    assert users == ["admin.py", "server/app.py"]
