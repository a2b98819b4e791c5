"""The Signals screen: snapshots at a desktop and a tablet size on a scripted stream, and the
screen's behaviour (filter, pause, feed made from the inventory, live frames from a real
publisher). SVGs live in tests/snapshots/; update them with `pytest --snapshot-update` on
Python 3.11 only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from saf.inventory import load_inventory
from saf.signals.codec import AISignal, encode
from tests.helpers import snapshots as snapshot_helpers
from tests.helpers.servers import free_port
from tests.helpers.snapshots import screen_lines
from tests.snapshot_apps._common import cockpit
from tests.snapshot_apps._signals import make_signals_app, scripted_book

APPS = Path(__file__).parent / "snapshot_apps"
SIZES = snapshot_helpers.SIZES


async def open_signals(pilot: Pilot, *keys: str) -> None:
    """Open the Signals screen (key 5), press `keys`, then settle: no animation, no blinking
    cursor, every message handled."""
    app = pilot.app
    app.animation_level = "none"
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.press("5", *keys)
    await pilot.pause()
    for box in app.screen.query(Input):
        box.cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_signals_stream(snap_compare, size) -> None:
    """Signals: eight symbols with rates and ages, TSLA's flash anomaly in the log, ETH-USD
    marked as a gap, latency percentiles with the skew caveat, bad frames by reason."""
    assert snap_compare(str(APPS / "signals_stream.py"), terminal_size=size,
                        run_before=open_signals)


@pytest.mark.parametrize("size", SIZES)
def test_signals_filtered_and_paused(snap_compare, size) -> None:
    """Signals: filtered to symbols containing 'USD' (BTC-USD, ETH-USD, EURUSD) and paused."""

    async def run_before(pilot: Pilot) -> None:
        await open_signals(pilot, "slash", *"usd", "enter", "p")

    assert snap_compare(str(APPS / "signals_stream.py"), terminal_size=size,
                        run_before=run_before)


def test_signals_light_theme(snap_compare) -> None:
    """Signals in saf-light: the screen's styles are theme variables only."""
    assert snap_compare(str(APPS / "signals_light.py"), terminal_size=(120, 40),
                        run_before=open_signals)


@pytest.mark.parametrize("size", [pytest.param((60, 40), id="60x40"),
                                  pytest.param((80, 24), id="80x24")])
def test_signals_busy(snap_compare, size) -> None:
    """Signals as `saf demo` shows it, with more anomalies than the log's panel holds: at
    60x40 the header leaves the frame count out rather than wrap; at 80x24 the log shows the
    newest entries that fit whole ("newest 3 of 9" under it), its border on screen."""
    assert snap_compare(str(APPS / "signals_busy.py"), terminal_size=size,
                        run_before=open_signals)


@pytest.mark.parametrize("size", [(60, 40), (80, 24), (100, 30), (120, 40)])
async def test_header_and_log_stay_on_screen(size: tuple[int, int]) -> None:
    """The header's first line is one line (the rate's history under it, then the rule), and
    every lower panel ends in its own bottom border above the status line: the log never runs
    past the bottom of the screen."""
    app = make_signals_app(scripted_book(busy=True), endpoint="tcp://127.0.0.1:49693")
    async with app.run_test(size=size) as pilot:
        await open_signals(pilot)
        await pilot.pause()
        lines = screen_lines(app)
        assert lines[0].startswith(" Signals "), lines[:3]
        assert "41.8/s" in lines[0], lines[:3]
        assert lines[1].startswith(" rate "), lines[:3]
        assert lines[2].startswith("─"), lines[:3]
        log = app.screen.query_one("#signals-log-box")
        bottom = log.region.bottom - 1
        assert bottom < size[1] - 2, "the log's panel runs under the status line"
        assert lines[bottom][log.region.x] == "╰"
        assert lines[bottom][log.region.right - 1] == "╯"
        assert "newest" in lines[bottom]  # it says more are held than shown
        status_row = size[1] - 2
        assert lines[status_row - 1].rstrip().endswith("╯"), lines[status_row - 1]


def table_text(app) -> str:  # type: ignore[no-untyped-def]
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(app.screen.query_one("#signals-table", Static).content)
    return console.export_text()


async def test_filter_pause_and_back() -> None:
    """`/` filters by symbol (any case), `p` freezes the picture while the book counts on,
    escape closes the filter and then the screen."""
    app = make_signals_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        screen = app.screen
        assert type(screen).__name__ == "SignalsScreen"
        assert "AAPL" in table_text(app)
        assert "EURUSD" in table_text(app)
        await pilot.press("slash", *"ap", "enter")
        await pilot.pause()
        assert screen.filter == "ap"  # type: ignore[attr-defined]
        text = table_text(app)
        assert "AAPL" in text
        assert "EURUSD" not in text
        await pilot.press("p")
        assert screen.paused  # type: ignore[attr-defined]
        drawn = screen.redraws  # type: ignore[attr-defined]
        await pilot.pause(0.35)
        assert screen.redraws == drawn  # type: ignore[attr-defined]
        await pilot.press("p")
        await pilot.pause(0.35)
        assert screen.redraws > drawn  # type: ignore[attr-defined]
        await pilot.press("slash")
        await pilot.press("escape")  # closes the filter box
        assert type(app.screen).__name__ == "SignalsScreen"
        await pilot.press("escape")
        assert type(app.screen).__name__ != "SignalsScreen"


async def test_live_feed_from_inventory(tmp_path: Path) -> None:
    """Opened with no feed, the screen subscribes to the context's inventory's [signals]
    endpoint and shows what a real publisher sends; the subscription outlives the screen."""
    import zmq

    port = free_port()
    inv = tmp_path / "saf.toml"
    inv.write_text('[[nodes]]\nname = "alpha"\nhost = "127.0.0.1"\nroles = ["head"]\n\n'
                   f'[signals]\nendpoint = "tcp://127.0.0.1:{port}"\n')
    app = cockpit("healthy-3-nodes.jsonl", inventory=load_inventory(inv))
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.bind(f"tcp://127.0.0.1:{port}")
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("5")
            feed = app.signal_feed()
            for _ in range(200):
                pub.send(encode(AISignal(time.time_ns(), "LIVE-1", 0.5, 0.5, 0.0, 0.0, 0, 3)))
                await asyncio.sleep(0.02)
                if feed.book.total_count() >= 5:
                    break
            await pilot.pause(0.25)
            assert "LIVE-1" in table_text(app)
            assert feed.label == f"tcp://127.0.0.1:{port}"
            await pilot.press("escape")
            await pilot.press("5")  # the same feed again, not a second subscription
            assert app.signal_feed() is feed
    finally:
        pub.close(0)
