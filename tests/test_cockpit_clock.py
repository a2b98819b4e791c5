"""The status line's clock moves on every screen, not only the dashboard, and says paused
when the screen's picture is (issue 22). A live cockpit (a metrics hub on an empty fleet, so
`● live`) with its clock turned by the test, read from what the status line draws."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from saf.screens.app import SafApp, make_app, replay_app
from saf.screens.widgets import StatusLine
from saf.themes import THEMES_DIR
from textual.pilot import Pilot

from saf.agentlink.node_links import NodeLinks
from saf.cockpit.context import CockpitContext
from saf.cockpit.settings import Settings
from saf.fleet import Fleet
from saf.inventory.model import Cluster, Defaults, Inventory
from saf.recording import load_recording

NOON = datetime(2025, 11, 28, 12, 0, 0).timestamp()
FRAMES = Path(__file__).parent / "fixtures" / "frames"


def live_cockpit() -> tuple[SafApp, list[float]]:
    fleet = Fleet(Inventory(Cluster(), Defaults(), ()))
    setup = CockpitContext(cluster="lab", nodes=(), settings=Settings(),
                           theme_folders=(THEMES_DIR,), inventory=fleet.inventory)
    app = make_app(setup, lambda emit: NodeLinks(fleet, (), emit))
    now = [NOON]
    app.clock = lambda: now[0]
    return app, now


def status_line(app: SafApp) -> str:
    line = app.screen.query_one(StatusLine)
    return "".join(segment.text for segment in line.render_line(0))


async def clock_moves(pilot: Pilot, app: SafApp, now: list[float]) -> None:
    assert "12:00:00" in status_line(app)
    now[0] = NOON + 3600
    await pilot.pause(1.3)  # the app's tick comes once a second
    assert "13:00:00" in status_line(app)


@pytest.mark.parametrize("key", ["1", "4", "5"])
async def test_the_clock_moves_on_every_top_level_screen(key: str) -> None:
    app, now = live_cockpit()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(key)
        await pilot.pause(0.3)
        assert "● live" in status_line(app)
        await clock_moves(pilot, app, now)


async def test_the_clock_moves_under_help() -> None:
    app, now = live_cockpit()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        under = app.screen_stack[-2]
        now[0] = NOON + 60
        await pilot.pause(1.3)
        line = under.query_one(StatusLine)
        assert "12:01:00" in "".join(s.text for s in line.render_line(0))


async def test_a_paused_picture_is_not_called_live() -> None:
    """Signals' `p` freezes its picture: the status line says paused at once, and live
    again when it resumes; the clock goes on either way."""
    app, now = live_cockpit()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await pilot.pause(0.3)
        await pilot.press("p")
        await pilot.pause()
        assert "⏸ paused" in status_line(app)
        assert "● live" not in status_line(app)
        await clock_moves(pilot, app, now)
        await pilot.press("p")
        await pilot.pause()
        assert "● live" in status_line(app)


def replay_position(app: SafApp) -> int:
    found = re.search(r"(\d\d):(\d\d)/01:00", status_line(app))
    assert found, status_line(app)
    return int(found[1]) * 60 + int(found[2])


async def test_a_playing_replays_position_moves_and_a_pause_shows_at_once() -> None:
    """A replay reports itself only when steered: while it plays, the status line reads its
    position each time the tick redraws it."""
    recording = load_recording(FRAMES / "healthy-3-nodes.jsonl")  # a minute long
    setup = CockpitContext(cluster=recording.cluster, nodes=recording.nodes, settings=Settings(),
                           theme_folders=(THEMES_DIR,))
    app = replay_app(setup, recording, speed=10.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        assert "▶ replay" in status_line(app)
        before = replay_position(app)
        # 13 s of recording pass in 1.3 s; on a loaded machine the tick that redraws the
        # line comes later, so the wait is for the line to move (the limit only ends it).
        deadline = time.monotonic() + 15
        while replay_position(app) < before + 9 and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert replay_position(app) >= before + 9
        await pilot.press("space")
        await pilot.pause()
        assert "⏸ paused" in status_line(app)
        paused_at = replay_position(app)
        await pilot.pause(1.3)
        assert replay_position(app) == paused_at
