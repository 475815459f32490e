"""The client's files as shipped: in budget, nothing a strict CSP blocks, no HTML sinks."""

from __future__ import annotations

import gzip
import re
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

STATIC = Path(str(resources.files("chinwag") / "web" / "static"))
BUDGET = 150 * 1024
"""The whole first load, gzipped (issue 14)."""


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.loads: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        values = dict(attrs)
        if "style" in names or tag == "style":
            self.problems.append(f"inline style on <{tag}>")
        self.problems += [f"inline handler {n} on <{tag}>" for n in names if n.startswith("on")]
        if tag == "script":
            if not values.get("src"):
                self.problems.append("inline <script>")
            self.loads.append(values.get("src") or "")
        if tag == "link" and values.get("href"):
            self.loads.append(values["href"] or "")


def test_the_first_load_fits_the_budget_and_comes_from_the_package() -> None:
    files = [p for p in STATIC.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"index.html", "main.js", "chat.js", "text.js", "style.css"}
    total = sum(len(gzip.compress(p.read_bytes(), 9)) for p in files)
    assert total <= BUDGET, f"{total} bytes gzipped"
    page = _Page()
    page.feed((STATIC / "index.html").read_text())
    assert page.problems == []
    for url in page.loads:  # nothing from a CDN: every file is one of ours
        assert "//" not in url and (STATIC / url).is_file(), url
    for js in STATIC.glob("*.js"):
        for imported in re.findall(r'from "([^"]+)"', js.read_text()):
            assert imported.startswith("./") and (STATIC / imported).is_file(), imported


def test_no_script_writes_html_or_evaluates_strings() -> None:
    sinks = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"setTimeout\(\s*[\"'`]|\.style\.|setAttribute\(\s*[\"']on"
    )
    found = {js.name: sinks.findall(js.read_text()) for js in STATIC.glob("*.js")}
    assert found == {name: [] for name in found}
