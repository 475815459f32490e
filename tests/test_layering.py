"""The import direction of DESIGN.md holds: each layer imports only what it may.

Every module under ``src/chinwag`` belongs to a unit: its package (``core``,
``server``…) or, for a top-level module, itself (``errors``, ``config``, ``cli``…).
Every import is checked, relative ones resolved, those inside functions too;
an import under ``if TYPE_CHECKING:`` is checked against the unit's type-only
allowances as well. ``chinwag`` itself (``__version__``) is an exact name, never a
prefix of everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "chinwag"

ANY = ("chinwag",)  # composition roots: prefix "chinwag." allows every module

# unit -> modules (and packages: prefixes) it may import; "chinwag" alone is exact.
ALLOWED: dict[str, tuple[str, ...]] = {
    "errors": (),
    "protocol": ("chinwag.protocol", "chinwag.errors"),
    "storage": ("chinwag.storage", "chinwag.errors"),
    "bus": ("chinwag.bus", "chinwag.storage.base"),
    "core": (
        "chinwag",
        "chinwag.core",
        "chinwag.protocol",
        "chinwag.errors",
        "chinwag.config",
        "chinwag.storage.base",
        "chinwag.bus.base",
    ),
    # config checks reserved_nicks with the nick rules and room_retention with the
    # room rules (imported inside build()).
    "config": ("chinwag.errors", "chinwag.core.accounts", "chinwag.core.rules"),
    "server": (
        "chinwag.server",
        "chinwag.protocol",
        "chinwag.core",
        "chinwag.errors",
        "chinwag.config",
        "chinwag.bus",
        "chinwag.storage",
    ),
    "client": ("chinwag", "chinwag.client", "chinwag.protocol", "chinwag.errors"),
    # LAN discovery, TLS and invites: used by the CLI, which hands them what they
    # need (the invite token's storage, the server to announce).
    "net": ("chinwag", "chinwag.net", "chinwag.client", "chinwag.errors", "chinwag.config"),
    "bot": (
        "chinwag",
        "chinwag.bot",
        "chinwag.client",
        "chinwag.errors",
        "chinwag.net.connect",
        "chinwag.net.pins",
    ),
    "cli": ANY,
    "admin": ANY,
    "__main__": ANY,
    "__init__": (),
}

# Imports only for type checking (never at run time): the types net plugs into.
TYPE_ONLY: dict[str, tuple[str, ...]] = {"net": ("chinwag.server.app",)}

# Only the composition roots pick concrete backends.
CONCRETE = (
    "chinwag.storage.sqlite",
    "chinwag.storage.postgres",
    "chinwag.bus.local",
    "chinwag.bus.redis",
)
ROOTS = {"admin.py", "server/app.py"}


def _unit(rel: Path) -> str:
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _module(rel: Path) -> str:
    parts = ["chinwag", *rel.with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(source: str, rel: Path) -> list[tuple[str, bool]]:
    """(absolute chinwag module, under TYPE_CHECKING?) for every import in ``source``."""
    tree = ast.parse(source)
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            type_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    package = _module(rel).split(".")
    if rel.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names = [".".join([*base, *([node.module] if node.module else [])])]
            elif node.module:
                names = [node.module]
        for name in names:
            if name == "chinwag" or name.startswith("chinwag."):
                found.append((name, id(node) in type_only))
    return found


def _allows(allowed: tuple[str, ...], name: str) -> bool:
    return any(
        name == a or ((a != "chinwag" or allowed is ANY) and name.startswith(a + "."))
        for a in allowed
    )


def violations(src: Path) -> list[str]:
    """Every import under ``src`` (a chinwag source tree) that its unit may not make."""
    wrong = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        unit = _unit(rel)
        allowed = ALLOWED.get(unit)
        if allowed is None:
            wrong.append(f"{rel}: unit {unit!r} has no import rules (add it to ALLOWED)")
            continue
        for name, type_only in imports(path.read_text(), rel):
            if name.startswith(f"chinwag.{unit}.") or name == f"chinwag.{unit}":
                continue  # within its own package
            if _allows(allowed, name):
                continue
            if type_only and _allows(TYPE_ONLY.get(unit, ()), name):
                continue
            wrong.append(f"{rel} imports {name}")
        if str(rel) not in ROOTS and unit not in ("storage", "bus", "cli"):
            for name, _ in imports(path.read_text(), rel):
                if name in CONCRETE:
                    wrong.append(f"{rel} picks a concrete backend: {name}")
    return wrong


def test_each_layer_imports_only_what_it_may() -> None:
    assert violations(SRC) == []


def test_every_top_level_module_and_package_has_rules() -> None:
    units = {_unit(p.relative_to(SRC)) for p in SRC.rglob("*.py")}
    assert units <= set(ALLOWED), units - set(ALLOWED)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "chinwag"
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "core/rules.py",
            "from chinwag.server.app import Server\n",
            "core/rules.py imports chinwag.server.app",
        ),
        (
            "client/state.py",
            "def f():\n    from chinwag.core.hub import Hub\n",
            "client/state.py imports chinwag.core.hub",
        ),
        (
            "core/rules.py",
            "from ..server import app\n",
            "core/rules.py imports chinwag.server",
        ),
        ("errors.py", "import chinwag.core.hub\n", "errors.py imports chinwag.core.hub"),
        (
            "net/invites.py",
            "from chinwag.server.app import open_store\n",
            "net/invites.py imports chinwag.server.app",
        ),
        (
            "core/hub.py",
            "from chinwag.storage.sqlite import SqliteStore\n",
            "core/hub.py imports chinwag.storage.sqlite",
        ),
        (
            "server/connection.py",
            "from chinwag.storage.sqlite import SqliteStore\n",
            "server/connection.py picks a concrete backend: chinwag.storage.sqlite",
        ),
        ("newthing.py", "x = 1\n", "newthing.py: unit 'newthing' has no import rules"),
    ],
    ids=[
        "core-imports-server",
        "client-imports-core-in-a-function",
        "relative-import",
        "top-level-module",
        "net-imports-server-at-run-time",
        "core-imports-a-backend",
        "a-backend-outside-the-roots",
        "unknown-unit",
    ],
)
def test_the_check_catches_an_injected_violation(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    src = _tree(tmp_path, {name: text})
    found = violations(src)
    assert any(v.startswith(expected) for v in found), found


def test_the_check_allows_what_the_layers_may_do(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "core/hub.py": (
                "from chinwag import __version__\nfrom chinwag.storage.base import Store\n"
            ),
            "net/serving.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from chinwag.server.app import Service\n"
            ),
            "server/app.py": "from chinwag.storage.sqlite import SqliteStore\n",
            "cli.py": "from chinwag.server.app import Server\n",
        },
    )
    assert violations(src) == []


def _module_level_imports(path: Path, known: set[str]) -> set[str]:
    """The chinwag modules ``path`` imports when it is loaded (type-only ones too)."""
    deps: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    deps.add(full if full in known else node.module)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)

    visit(ast.parse(path.read_text()).body)
    return deps & known


def cycles(src: Path) -> list[list[str]]:
    """Import cycles among the modules under ``src`` (imports inside functions aside)."""
    paths = {_module(p.relative_to(src)): p for p in src.rglob("*.py")}
    graph = {m: _module_level_imports(p, set(paths)) - {m} for m, p in paths.items()}
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                found.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                walk(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert cycles(SRC) == []


def test_the_cycle_check_catches_an_injected_cycle(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "server/app.py": "from chinwag.server.connection import Connection\n",
            "server/connection.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from chinwag.server.app import Server\n"
            ),
        },
    )
    assert cycles(src) == [
        ["chinwag.server.app", "chinwag.server.connection", "chinwag.server.app"]
    ]
