"""The Models screen's endpoints table fits the terminals a cockpit is used on: a model server
that died and that nothing restarts reads `down (not kept)` in STATE, short enough that PID
and CHECKED stay beside it at 120 columns; what the cell leaves out is said beside the
endpoint (and under `saf models`' table). The endpoints are the snapshots' (issue 13's
cluster: one ready on each of two nodes, one loading, one exited)."""

from __future__ import annotations

import pytest
from rich.console import Console
from textual.widgets import Static

from saf.render.models_view import endpoints_renderable
from tests.snapshot_apps._models import ENDPOINTS, NOW, make_models_app


def _text(renderable: object, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize(("size", "shown", "left_out"), [
    ((120, 40), ("NODE", "PORT", "ENGINE", "MODEL", "STATE", "PID", "CHECKED"), 0),
    ((80, 24), ("NODE", "PORT", "MODEL", "STATE", "PID", "CHECKED"), 3),
    ((60, 40), ("NODE", "PORT", "MODEL", "STATE"), 5)])
async def test_the_endpoints_table_fits_with_a_dead_server_among_them(size, shown, left_out):
    made = make_models_app()
    async with made.run_test(size=size) as pilot:
        await pilot.press("6")
        await made.workers.wait_for_complete()
        await pilot.pause()
        screen = made.screen
        box = screen.query_one("#models-table-box")
        table = screen.query_one("#models-table", Static).content
        text = _text(table, box.content_size.width)
        lines = text.splitlines()
        assert all(title in lines[0].split() for title in shown), lines[0]
        assert ("left out" in str(box.border_title)) == bool(left_out), box.border_title
        if left_out:
            assert str(box.border_title).endswith(f"{left_out} columns left out")
        dead = next(line for line in lines if "8003" in line)
        assert "down (not kept)" in dead  # whole, never cut to "down (not k…"
        assert all(len(line.rstrip()) <= box.content_size.width for line in lines)

        for _ in range(3):  # the dead server: the detail says what its cell leaves out
            await pilot.press("down")
        await pilot.pause()
        detail = _text(screen.query_one("#models-detail", Static).content, 200)
        assert "the server died and nothing restarts it" in detail
        assert "saf models restart beta:8003" in detail


def test_saf_models_says_under_its_table_why_a_server_is_down() -> None:
    text = _text(endpoints_renderable(ENDPOINTS, {}, {}, NOW, 120), 120)
    assert "down (not kept)" in text
    assert "beta:8003: the server died and nothing restarts it" in text
