"""The web client's time to interactive: page load and Connect-to-chat, cold, in Chromium.

``python -m bench --only webload`` starts one chinwag server with an HTTP listener
on loopback and Debian's ``/usr/bin/chromium`` (driven by Playwright, the launch
flags of tests/web; never a browser download). ``--web-loads`` times it opens the
page in a new browser context (no cache, no storage), then:

- page load: navigation start to the end of the ``load`` event
  (``performance.getEntriesByType("navigation")``);
- interactive: from pressing Connect as a guest to the chat view shown with the
  message box enabled and focused (the client's ``welcome`` handler has run),
  timed in the page with ``performance.now()`` and a ``MutationObserver``.

It reports p50/p99/max of both, in ms, and the bytes of the first load: as the
server sends them, and gzipped here (level 6), which is what they would weigh
if the server compressed them. The machine's load average is reported at the
start and the end, because Chromium and the server share the machine's cores
(nothing is pinned).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.loadgen import percentiles
from bench.wsfanout import _start

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""The launch flags of tests/web/conftest.py."""
TIMEOUT_MS = 30_000
"""How long one page load or one login may take before the run fails."""

_CONNECT = """
() => new Promise((resolve, reject) => {
  const chat = document.getElementById("chat");
  const box = document.getElementById("message");
  const ready = () => !chat.hidden && !box.disabled && document.activeElement === box;
  const t0 = performance.now();
  const watch = new MutationObserver(() => {
    if (ready()) { watch.disconnect(); resolve(performance.now() - t0); }
  });
  watch.observe(document.body, { attributes: true, subtree: true, childList: true });
  setTimeout(() => { watch.disconnect(); reject(new Error("no chat view in 30 s")); }, 30000);
  document.getElementById("connect").click();
})
"""


async def _loads(url: str, n: int) -> dict[str, Any]:
    from playwright.async_api import Response, async_playwright

    load_ms: list[float] = []
    ready_ms: list[float] = []
    raw = packed = 0
    first: list[Response] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            for i in range(n):
                context = await browser.new_context()
                context.set_default_timeout(TIMEOUT_MS)
                try:
                    page = await context.new_page()
                    if i == 0:
                        page.on("response", lambda r: first.append(r))
                    await page.goto(url, wait_until="load")
                    nav = await page.evaluate(
                        "performance.getEntriesByType('navigation')[0].loadEventEnd"
                    )
                    load_ms.append(float(nav))
                    for response in first:
                        body = await response.body()
                        raw += len(body)
                        packed += len(gzip.compress(body, compresslevel=6))
                    first.clear()
                    await page.fill("#nick", f"load{i}")
                    ready_ms.append(float(await page.evaluate(_CONNECT)))
                finally:
                    await context.close()
        finally:
            await browser.close()
    return {
        "page_load_ms": percentiles(load_ms, scale=1.0),
        "interactive_ms": percentiles(ready_ms, scale=1.0),
        "runs_ms": {
            "page_load": [round(x, 1) for x in load_ms],
            "interactive": [round(x, 1) for x in ready_ms],
        },
        "first_load_bytes": raw,
        "first_load_gzip_bytes": packed,
    }


def run(args: argparse.Namespace) -> int:
    """``--only webload``: the table (and the JSON report with ``--json``); the exit status."""
    n = args.web_loads or (5 if args.quick else 30)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
        return 1
    from playwright.async_api import Error as PlaywrightError

    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="bench-webload-"))
    proc, ports = _start(workdir, pin=False)
    error = ""
    measured: dict[str, Any] = {}
    try:
        measured = asyncio.run(_loads(f"http://127.0.0.1:{ports['http']}/", n))
    except (OSError, RuntimeError, TimeoutError, PlaywrightError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if error:
        error += f" (the server's log: {workdir / 'server.log'})"
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    report: dict[str, Any] = {
        "scenario": "webload",
        "loads": n,
        "ok": not error,
        "error": error,
        "loadavg_1min": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
        **measured,
    }
    table = f"web client load: {n} cold loads, load average {report['loadavg_1min']}"
    if measured:
        page, ready = measured["page_load_ms"], measured["interactive_ms"]
        table += (
            f"\n  page load (ms): p50 {page['p50']}, p99 {page['p99']}, max {page['max']}"
            f"\n  Connect to interactive (ms): p50 {ready['p50']}, p99 {ready['p99']},"
            f" max {ready['max']}"
            f"\n  first load: {measured['first_load_bytes']} bytes as sent,"
            f" {measured['first_load_gzip_bytes']} gzipped"
        )
    if error:
        table += f"\n  FAILED: {error}"
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(table)
    return 0 if not error else 1


def _loads_count(text: str) -> int:
    """``--web-loads``: a whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of loads, 1 or more")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("web client load (--only webload)")
    g.add_argument("--web-loads", type=_loads_count, help="cold page loads (default 30; --quick 5)")
