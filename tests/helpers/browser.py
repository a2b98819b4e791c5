"""A real headless Chromium (Debian's `chromium`) driven over the Chrome DevTools protocol, for
the tests of `saf serve --web`: one browser per test module, a tab per test, keys and clicks
sent as a person's, what the tab's websockets carried read back, screenshots.

Started with the flags a closed network needs (no background connections, no first-run or
component updates) and a fresh profile folder, removed by `close()`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1"]


class Browser:
    def __init__(self, width: int = 1000, height: int = 700) -> None:
        assert CHROMIUM is not None, "no chromium"
        self.profile = Path(tempfile.mkdtemp(prefix="saf-chromium-"))
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.size = (width, height)
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.events: list[dict[str, Any]] = []

    def _port(self, seconds: float = 30) -> int:
        """Chromium writes the port it chose to DevToolsActivePort in its profile."""
        path = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            if path.exists() and path.read_text().strip():
                return int(path.read_text().split()[0])
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its debugging port")

    async def start(self) -> None:
        port = await asyncio.to_thread(self._port)
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{port}/json/version") as answer:
            url = (await answer.json())["webSocketDebuggerUrl"]
        self.ws = await self.session.ws_connect(url, max_msg_size=0)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._replies.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, session: str | None = None,
                   **params: Any) -> dict[str, Any]:
        assert self.ws is not None
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[ident] = future
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self.ws.send_json(message)
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def new_tab(self) -> Tab:
        target = (await self.send("Target.createTarget", url="about:blank"))["targetId"]
        session = (await self.send("Target.attachToTarget", targetId=target,
                                   flatten=True))["sessionId"]
        tab = Tab(self, target, session)
        await tab.send("Page.enable")
        await tab.send("Network.enable")
        await tab.send("Emulation.setDeviceMetricsOverride", width=self.size[0],
                       height=self.size[1], deviceScaleFactor=1, mobile=False)
        return tab

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
        shutil.rmtree(self.profile, ignore_errors=True)


class Tab:
    """One browser tab (a page target, attached as a session of the browser's connection)."""

    def __init__(self, browser: Browser, target: str, session: str) -> None:
        self.browser, self.target, self.session = browser, target, session

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, self.session, **params)

    def events(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.browser.events
                if e.get("sessionId") == self.session and e.get("method") == method]

    async def open(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def click(self, x: float, y: float) -> None:
        """A left click at (x, y) CSS pixels: what gives the page's terminal the focus."""
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                            clickCount=1)

    async def press(self, key: str, code: str, key_code: int, text: str = "") -> None:
        """A key typed as a person would: down (with its text), then up."""
        common = {"key": key, "code": code, "windowsVirtualKeyCode": key_code,
                  "nativeVirtualKeyCode": key_code}
        await self.send("Input.dispatchKeyEvent", type="keyDown", text=text, **common)
        await self.send("Input.dispatchKeyEvent", type="keyUp", **common)

    def websocket_bytes(self, url_part: str = "/ws") -> bytes:
        """The binary frames the tab received, in order, on the last websocket it opened whose
        URL contains `url_part`."""
        ids = [e["requestId"] for e in self.events("Network.webSocketCreated")
               if url_part in e["url"]]
        if not ids:
            return b""
        out = bytearray()
        for e in self.events("Network.webSocketFrameReceived"):
            if e["requestId"] == ids[-1] and e["response"]["opcode"] == 2:
                out += base64.b64decode(e["response"]["payloadData"])
        return bytes(out)

    async def screenshot(self, path: Path) -> None:
        result = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(result["data"]))

    async def close(self) -> None:
        await self.browser.send("Target.closeTarget", targetId=self.target)
