"""saf serve --web in a real headless Chromium (Debian's `chromium`), driven over the DevTools
protocol on the demo cluster: the page loads, the dashboard shows the nodes, a key typed into
the page changes the screen, a closed tab leaves no cockpit behind, another site's page is
refused, and Ctrl-C ends every tab's cockpit. One saf serve and one Chromium for the module.

What the page shows is read from what its websocket carried (the cockpit's terminal output),
replayed into a VT100 screen (pyte): the page draws it on a canvas, which has no text to read.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import psutil
import pyte
import pytest
import pytest_asyncio
from saf.screens.contrast import MIN_CONTRAST, contrast_ratio
from saf.screens.theming import CHOSEN_THEMES, DEFAULT_DARK, DEFAULT_LIGHT
from textual.color import Color

from saf.demo.cluster import DemoCluster
from saf.serve.faces import Bind
from saf.serve.web_face import reachable_names, refusal
from tests.helpers.browser import CHROMIUM, Browser, Tab
from tests.helpers.png import read_png
from tests.helpers.servers import free_port

# Async tests share one event loop, the module's: the browser (a module fixture) lives on it.
CYCLE = [DEFAULT_DARK, DEFAULT_LIGHT, *CHOSEN_THEMES]  # what `t` steps through
in_chromium = pytest.mark.skipif(CHROMIUM is None,
                                 reason="needs Debian's chromium (CI installs it)")
on_module_loop = pytest.mark.asyncio(loop_scope="module")


def screen_text(data: bytes) -> str:
    screen = pyte.Screen(300, 100)
    pyte.ByteStream(screen).feed(data)
    return "\n".join(line.rstrip() for line in screen.display).rstrip()


async def until_screen(tab: Tab, wanted, seconds: float = 40) -> str:
    deadline = time.monotonic() + seconds
    text = ""
    while time.monotonic() < deadline:
        text = screen_text(tab.websocket_bytes())
        if wanted(text):
            return text
        await asyncio.sleep(0.3)
    raise AssertionError(f"the page never showed what was wanted; it showed:\n{text}")


def cockpits(saf: subprocess.Popen) -> list[psutil.Process]:
    """The cockpit processes saf serve started (one per tab)."""
    try:
        children = psutil.Process(saf.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for child in children:
        try:
            if "--hub" in child.cmdline():
                out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out


async def until(predicate, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.2)
    return predicate()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("web")
    with DemoCluster(homes=tmp / "homes") as demo:
        port = free_port()
        # Its own config folder too: `t` in a tab remembers the theme there.
        env = {**os.environ, "SAF_STATE_DIR": str(tmp / "state"),
               "SAF_CONFIG_DIR": str(tmp / "config")}
        log = open(tmp / "saf.log", "w")
        saf = subprocess.Popen(
            [sys.executable, "-m", "saf", "-i", str(demo.inventory_path), "serve",
             "--web", f"127.0.0.1:{port}", "--max-sessions", "2"],
            env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while "web: http" not in (tmp / "saf.log").read_text():
                assert saf.poll() is None, (tmp / "saf.log").read_text()
                assert time.monotonic() < deadline, "saf serve --web never listened"
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}/", saf, tmp / "saf.log"
        finally:
            if saf.poll() is None:
                saf.send_signal(signal.SIGINT)
                try:
                    saf.wait(30)
                except subprocess.TimeoutExpired:
                    saf.kill()
                    saf.wait()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    b = Browser(1000, 700)
    await b.start()
    yield b
    await b.close()


@pytest_asyncio.fixture(loop_scope="module")
async def tab(browser):
    t = await browser.new_tab()
    yield t
    with contextlib.suppress(RuntimeError):
        await t.close()


@in_chromium
@on_module_loop
async def test_the_page_shows_the_dashboard_and_a_key_opens_a_node(served, tab, tmp_path):
    """The page loads, the dashboard shows the demo's nodes, Enter typed into the page opens
    the selected node's screen; closing the tab ends its cockpit."""
    url, saf, _ = served
    await tab.open(url)
    # Every node listed and up (on a busy machine a node may read stale for a moment).
    text = await until_screen(tab, lambda t: "nodes 3/3 up" in t and all(
        f"\n{n} " in t for n in ("alpha", "beta", "gamma")))
    assert "saf-demo" in text
    assert "NODE" in text
    assert "MEMORY" in text
    assert len(cockpits(saf)) == 1  # the tab's own cockpit, fed from the hub
    # A person clicks into the page and presses Enter: the selected node's screen opens.
    await tab.click(500, 350)
    await tab.press("Enter", "Enter", 13, "\r")
    text = await until_screen(tab, lambda t: "╭─ CPU" in t and "esc" in t)
    assert text.splitlines()[0].split()[:2] == ["alpha", "up"], text
    await tab.screenshot(tmp_path / "node.png")
    assert (tmp_path / "node.png").stat().st_size > 1000
    await tab.close()
    assert await until(lambda: not cockpits(saf)), [p.cmdline() for p in cockpits(saf)]


@in_chromium
@on_module_loop
async def test_another_sites_page_and_a_foreign_host_are_refused(served):
    url, saf, log = served
    ws = url.replace("http", "ws") + "ws"
    async with aiohttp.ClientSession() as session:
        for headers in ({"Origin": "http://evil.example"},
                        {"Host": "evil.example:80", "Origin": "http://evil.example:80"}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(ws, headers=headers)
            assert refused.value.status == 403
    assert not cockpits(saf)
    assert "web: refused GET /ws" in log.read_text()


@in_chromium
@on_module_loop
async def test_tabs_past_max_sessions_are_turned_away(served):
    """saf serve runs with --max-sessions 2: a third tab is told so (503); closing the two
    ends their cockpits."""
    url, saf, _ = served
    ws = url.replace("http", "ws") + "ws?width=80&height=24"
    async with aiohttp.ClientSession() as session:
        first = await session.ws_connect(ws)
        second = await session.ws_connect(ws)
        assert await until(lambda: len(cockpits(saf)) == 2)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(ws)
        assert refused.value.status == 503
        await first.close()
        await second.close()
    assert await until(lambda: not cockpits(saf)), [p.cmdline() for p in cockpits(saf)]


def test_refusal_rules():
    loop = reachable_names(Bind("127.0.0.1", 8000))
    lan = reachable_names(Bind("192.168.1.5", 8000), ["tablet.example"])
    assert refusal(loop, "127.0.0.1:8000", "http://127.0.0.1:8000") is None
    assert refusal(loop, "localhost:8000", None) is None
    assert refusal(loop, "[::1]:8000", "http://[::1]:8000") is None
    assert "Origin" in refusal(loop, "127.0.0.1:8000", "http://evil.example")
    assert "reachable by" in refusal(loop, "evil.example:8000", "http://evil.example:8000")
    assert refusal(lan, "192.168.1.5:8000", "http://192.168.1.5:8000") is None
    assert refusal(lan, "Tablet.Example.:8000", None) is None
    assert "reachable by" in refusal(lan, "evil.example:8000", "http://evil.example:8000")
    assert "reachable by" in refusal(lan, "localhost:8000", None)  # not on this bind
    assert "Origin" in refusal(lan, "192.168.1.5:8000", "http://192.168.1.5:9999")
    assert "Origin" in refusal(lan, "192.168.1.5:8000", "null")
    assert refusal(lan, None, None) == "no Host header"
    # What reaches the log is escaped: no header can write a line of its own.
    why = refusal(lan, "evil\x1b]0;owned\x07:8000", None)
    assert "\x1b" not in why
    assert "\\x1b]0;owned\\x07" in why


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None
                    or shutil.which("ip") is None,
                    reason="needs root, unshare and ip for a network namespace of its own")
def test_a_bind_beyond_loopback_refuses_a_foreign_host_and_origin(tmp_path):
    """DNS rebinding: on 0.0.0.0 a request with Host and Origin `evil.example:PORT` got a
    cockpit. Run in a network namespace of the test's own (an address like a LAN's, no way
    out): real HTTP and websocket clients with chosen Host and Origin headers."""
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.helpers.web_netns_probe",
         str(tmp_path)], capture_output=True, text=True, timeout=180,
        cwd=Path(__file__).resolve().parents[1])
    log = (tmp_path / "saf.log").read_text() if (tmp_path / "saf.log").exists() else ""
    assert done.returncode == 0, done.stderr + log
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {
        "page, Host evil": 403, "page, Host the address": 200,
        "page, Host a --web-host name": 200, "page, Host localhost": 200,
        "ws, Host and Origin evil": 403, "ws, Origin evil": 403,
        "ws, Host and Origin the address": 101}, log
    assert "Host evil.example:8000 is not a name this server is reachable by" in log


@in_chromium
@on_module_loop
async def test_a_huge_terminal_is_clamped(served):
    """`/ws?width=10000&height=10000` (no login needed) made a cockpit of 478 MB in 2 s; a
    resize message to the same did the same. The tab's cockpit gets 500x200, and the log
    says what was asked."""
    url, saf, log = served
    ws_url = url.replace("http", "ws") + "ws?width=10000&height=10000"
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(ws_url, max_msg_size=0)
        try:
            assert await until(lambda: len(cockpits(saf)) == 1)
            env = cockpits(saf)[0].environ()
            assert (env.get("COLUMNS"), env.get("ROWS")) == ("500", "200"), env
            # The line is written once the cockpit has started: wait for it, do not race it.
            assert await until(lambda: "at 500x200 (asked for 10000x10000, the most is "
                               "500x200)" in log.read_text()), log.read_text()
            await ws.send_json(["resize", {"width": 10000, "height": 70000}])
            assert await until(lambda: "resized (asked for 10000x70000" in log.read_text())
        finally:
            await ws.close()
    assert await until(lambda: not cockpits(saf)), [p.cmdline() for p in cockpits(saf)]


async def page_says(tab: Tab, expression: str):
    answer = await tab.send("Runtime.evaluate", expression=expression, returnByValue=True)
    return answer["result"].get("value")


STABLE_COLUMNS = 24  # "alpha  ● up       head  ": the row's name, state and role


async def worst_letter(tab: Tab, starts: str, tmp_path: Path) -> tuple[str, Color, Color]:
    """The letter the page drew least readably on the terminal line that starts with
    `starts`, its text colour and its background, from a screenshot of that line: the
    line's background is its commonest pixel, a letter's colour the pixel of its cell that
    contrasts with that most (a stem, not an anti-aliased edge). Letters only: a thin `·` or
    `▁` may never reach its full colour at one pixel per point."""
    lines = screen_text(tab.websocket_bytes()).splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(starts))
    columns = max(len(line) for line in lines)  # the header's rule spans the terminal
    rect = await page_says(tab, "(() => { const r = document.querySelector('.xterm-screen')"
                                ".getBoundingClientRect(); return [r.x, r.y, r.width, r.height];"
                                " })()")
    x, y, width, height = rect
    cell_h, cell_w = height / len(lines), width / columns  # the footer is the last line
    shot = tmp_path / "row.png"
    result = await tab.send("Page.captureScreenshot", format="png", clip={
        "x": x, "y": y + row * cell_h + 1, "width": width, "height": cell_h - 2, "scale": 1})
    shot.write_bytes(base64.b64decode(result["data"]))
    png = read_png(shot)
    seen = Counter(png.pixel(i, j) for j in range(png.height) for i in range(png.width))
    background = Color(*seen.most_common(1)[0][0])
    worst = ("", background, background, 99.0)
    for column, char in enumerate(lines[row]):
        # Letters of the columns that do not move (name, state, role): a figure can change
        # between the text read above and the screenshot, leaving only background in its cell.
        if not char.isalpha() or column >= STABLE_COLUMNS:
            continue
        left, right = int(column * cell_w) + 1, int((column + 1) * cell_w) - 1
        pixels = {png.pixel(i, j) for j in range(png.height) for i in range(left, right)}
        text = max((Color(*p) for p in pixels), key=lambda c: contrast_ratio(c, background))
        ratio = contrast_ratio(text, background)
        if ratio < worst[3]:
            worst = (char, text, background, ratio)
    return worst[:3]


@in_chromium
@on_module_loop
async def test_the_selected_row_reads_in_the_page_in_every_theme(served, tab, tmp_path):
    """Each theme `t` steps through, in the page as a person sees it (pixels of a
    screenshot: the page's terminal draws on a canvas), with the page focused and after it
    lost the focus (textual-serve tells the cockpit, which blurs the table): the selected
    row's text against its background reads at WCAG AA. saf-light's blurred row was the
    terminal's default white on the theme's light grey."""
    url, _, _ = served
    await tab.open(url)
    await until_screen(tab, lambda t: "nodes 3/3 up" in t)
    await tab.click(500, 650)  # below the rows: the focus, not a new selection
    faults = []
    for step, theme in enumerate(CYCLE):
        if step:
            await tab.press("t", "KeyT", 84, "t")
        for state in ("focused", "blurred"):
            if state == "blurred":
                await page_says(tab, "document.activeElement.blur()")
            await asyncio.sleep(1.5)  # the cockpit redraws, the page paints
            letter, text, background = await worst_letter(tab, "alpha ", tmp_path)
            ratio = contrast_ratio(text, background)
            if ratio < MIN_CONTRAST:
                faults.append(f"{theme} {state}: {letter!r} {text.hex} on {background.hex}, "
                              f"{ratio:.2f}:1")
        await tab.click(500, 650)
    assert not faults, faults


@in_chromium
@on_module_loop
async def test_keys_typed_fast_in_the_page_all_reach_the_filter(served, tab):
    """Keys typed in the page as fast as the browser takes them (each one down and up, no
    pause between): every character reaches the dashboard's filter (a Textual Input)."""
    url, _, _ = served
    await tab.open(url)
    await until_screen(tab, lambda t: "nodes 3/3 up" in t)
    await tab.click(500, 650)
    await tab.press("/", "Slash", 191, "/")
    await until_screen(tab, lambda t: "filter nodes" in t)
    burst = "gammaxyzzy0123456789qwerty"
    for char in burst:
        code = f"Digit{char}" if char.isdigit() else f"Key{char.upper()}"
        await tab.press(char, code, ord(char.upper()), char)
    text = await until_screen(tab, lambda t: burst in t, 20)
    assert burst in text, text
    await tab.press("Escape", "Escape", 27)


@in_chromium
@on_module_loop
async def test_ctrl_c_ends_every_tabs_cockpit(served, tab):
    """Last in the module: it stops the module's saf serve."""
    url, saf, _ = served
    await tab.open(url)
    await until_screen(tab, lambda t: "nodes 3/3 up" in t)
    assert await until(lambda: len(cockpits(saf)) == 1)
    pids = [p.pid for p in cockpits(saf)]
    saf.send_signal(signal.SIGINT)
    assert await asyncio.to_thread(saf.wait, 30) in (0, 130)
    assert not [pid for pid in pids if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
