"""The Ray screen (key 2): snapshots of a running cluster (recorded dashboard answers) and of
a head where Ray is not running, at every size; `u` opens ray-up on the Recipes screen."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.helpers import snapshots as snapshot_helpers
from tests.snapshot_apps._ray import make_ray_app

APPS = Path(__file__).parent / "snapshot_apps"
SIZES = snapshot_helpers.SIZES


async def open_ray(pilot: Pilot) -> None:
    app = pilot.app
    app.animation_level = "none"
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.press("2")
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_ray_running(snap_compare, size) -> None:
    """Ray: alpha (head), beta, gamma ALIVE with CPUs used of total, memory and object store;
    a job that succeeded and one that failed; the dashboard's URL in the summary."""
    assert snap_compare(str(APPS / "ray_running.py"), terminal_size=size, run_before=open_ray)


@pytest.mark.parametrize("size", SIZES)
def test_ray_not_running(snap_compare, size) -> None:
    """Ray: not running on the head, the reason, and `u` offering ray-up."""
    assert snap_compare(str(APPS / "ray_stopped.py"), terminal_size=size, run_before=open_ray)


async def test_u_opens_ray_up_in_recipes() -> None:
    app = make_ray_app(running=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_ray(pilot)
        assert "Ray is not running" in str(app.screen.query_one("#ray-header").render())
        await pilot.press("u")
        await pilot.pause()
        await pilot.pause()
        from saf.screens.recipe_list import RecipeList

        assert app.screen.query_one(RecipeList).current().name == "ray-up"
