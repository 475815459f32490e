"""Make the README's screenshots of the web client from a real browser session.

Starts ``chinwag serve`` (with the game bot) on loopback in a temporary directory,
has two people talk over TCP, logs in as alice in Debian's chromium (Playwright,
never a browser download), plays a move against the bot, and saves
``docs/screenshots/{desktop,phone}-{light,dark}.png``.

Run it from the repository:  .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.async_api import Page, ViewportSize, async_playwright, expect

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SIZES: dict[str, ViewportSize] = {
    "desktop": {"width": 1200, "height": 720},
    "phone": {"width": 360, "height": 740},
}
PASSWORD = "correct horse battery"
WAIT = 20.0  # seconds any one step may take


class Peer:
    """A JSON-lines client over TCP, every wait bounded."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def login(cls, port: int, nick: str) -> Peer:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), WAIT)
        peer = cls(reader, writer)
        await peer.send(type="hello", proto=1, nick=nick, device="screenshots")
        await peer.until("caught_up")
        return peer

    async def send(self, **frame: Any) -> None:
        self.writer.write(json.dumps(frame).encode() + b"\n")
        await self.writer.drain()

    async def until(self, kind: str) -> dict[str, Any]:
        while True:
            line = await asyncio.wait_for(self.reader.readline(), WAIT)
            if not line:
                raise EOFError("the server closed the connection")
            frame: dict[str, Any] = json.loads(line)
            if frame["type"] == kind:
                return frame

    async def say(self, body: str, **where: str) -> None:
        kind = "dm" if "to" in where else "say"
        await self.send(type=kind, body=body, cid=f"s-{time.monotonic_ns()}", **where)
        await self.until("ack")

    async def close(self) -> None:
        self.writer.close()


def start_server(data: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    log_path = data / "server.log"
    args = [sys.executable, "-m", "chinwag", "serve", "--data", str(data), "--no-announce"]
    args += ["--listen", "tcp://127.0.0.1:0", "--listen", "http://127.0.0.1:0", "--with-gamebot"]
    args += ["--set", "argon2_memory_kib=8192", "--set", "argon2_time_cost=1"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        chat = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
        web = re.search(r"open http://127\.0\.0\.1:(\d+)/ in a browser", text)
        if chat and web:
            return proc, int(chat.group(1)), int(web.group(1))
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{text}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the server did not start in {WAIT} s:\n{log_path.read_text()}")


async def log_in(page: Page, url: str, *, register: bool) -> None:
    await page.goto(url)
    await page.get_by_label("Nick", exact=True).fill("alice")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    if register:
        await page.get_by_label("Register a new account").check()
    await page.get_by_role("button", name="Connect").click()
    await expect(page.get_by_role("status").filter(has_text="Connected as alice")).to_be_visible()


async def session(tcp: int, http: int) -> None:
    url = f"http://127.0.0.1:{http}/"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        # First alice registers and plays a move against the bot, then goes away.
        context = await browser.new_context(viewport=SIZES["desktop"])
        context.set_default_timeout(WAIT * 1000)
        page = await context.new_page()
        await log_in(page, url, register=True)
        await expect(page.get_by_role("status").filter(has_text="(guest)")).to_have_count(0)
        bob = await Peer.login(tcp, "bob")
        carol = await Peer.login(tcp, "carol")
        await bob.say("morning all — release notes are up: https://example.org/notes", room="lobby")
        await page.get_by_role("textbox", name="Message").fill("thanks bob, reading now")
        await page.get_by_role("button", name="Send").click()
        box = page.get_by_role("textbox", name="Message")
        await page.get_by_role("textbox", name="Join a #room or talk to @someone").fill("@gamebot")
        await page.get_by_role("button", name="Open").click()
        for move in ("play tictactoe", "5"):
            await box.fill(move)
            await box.press("Enter")
            await asyncio.sleep(1.0)
        await expect(page.get_by_role("log", name="Messages").locator("pre").last).to_be_visible()
        await page.get_by_role("button", name="Log out").click()
        await expect(page.get_by_role("button", name="Connect")).to_be_visible()
        await context.close()
        # While alice is away.
        await carol.say("@alice the demo went fine, see you at 3?", room="lobby")
        await bob.say("lunch?\n(the usual place)", to="alice")
        for scheme in ("light", "dark"):
            for size, viewport in SIZES.items():
                context = await browser.new_context(
                    viewport=viewport,
                    color_scheme=scheme,
                    device_scale_factor=1,
                )
                context.set_default_timeout(WAIT * 1000)
                page = await context.new_page()
                await log_in(page, url, register=False)
                await asyncio.sleep(0.5)  # the history page and the member list arrive
                if size == "phone":
                    # A past DM comes back from the server's history when opened.
                    await page.get_by_role("button", name="Menu").click()
                    opener = page.get_by_role("textbox", name="Join a #room or talk to @someone")
                    await opener.fill("@gamebot")
                    await opener.press("Enter")
                    board = page.get_by_role("log", name="Messages").locator("pre").last
                    await expect(board).to_be_visible()
                target = OUT / f"{size}-{scheme}.png"
                await page.screenshot(path=str(target))
                print(f"saved {target.relative_to(ROOT)}")
                await context.close()
        await bob.close()
        await carol.close()
        await browser.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chinwag-shots-") as tmp:
        proc, tcp, http = start_server(Path(tmp))
        try:
            asyncio.run(session(tcp, http))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


if __name__ == "__main__":
    main()
