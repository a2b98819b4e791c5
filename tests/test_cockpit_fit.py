"""Every screen read as a person reads it at the sizes saf supports, above all a tablet held
upright (60x40): a header is one line (parts left out, never wrapped), and a table's cells
are whole (columns left out, never a figure cut). The snapshots show the same pictures; these
say in words what must hold, so a regression fails with its reason."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot

from tests.helpers.snapshots import screen_lines
from tests.snapshot_apps._common import cockpit
from tests.snapshot_apps._ray import make_ray_app

SIZES = [(60, 40), (80, 24), (100, 30), (120, 40)]


async def settle(pilot: Pilot, *keys: str) -> list[str]:
    """Press `keys` with the replay applied and every worker done; the screen's lines."""
    app = pilot.app
    app.animation_level = "none"
    await app.workers.wait_for_complete()
    await pilot.pause()
    for key in keys:
        await pilot.press(key)
        await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    return screen_lines(app)


@pytest.mark.parametrize("size", SIZES)
async def test_a_lost_nodes_title_is_one_line(size: tuple[int, int]) -> None:
    """The node screen of a lost node (the longest title: state, reason, the agent's message,
    address, role, age): one line, its name and state always there, then the rule."""
    app = cockpit("lost-node.jsonl", until=40)
    async with app.run_test(size=size) as pilot:
        lines = await settle(pilot, "end", "enter")
        assert lines[0].startswith(" gamma   lost: exited"), lines[:2]
        assert set(lines[1]) == {"─"}, lines[:2]


@pytest.mark.parametrize("size", SIZES)
async def test_the_ray_summary_is_one_line(size: tuple[int, int]) -> None:
    """The Ray screen's totals: one line, the nodes alive and CPUs always there; what does
    not fit is left out whole (no "object st…")."""
    app = make_ray_app(running=True)
    async with app.run_test(size=size) as pilot:
        lines = await settle(pilot, "2")
        assert lines[0].startswith(" 3/3 nodes alive  CPU 0/6"), lines[:2]
        assert set(lines[1]) == {"─"}, lines[:2]
        assert "…" not in lines[0]
