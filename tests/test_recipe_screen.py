"""The Recipes screen: snapshots of a run mid-way and finished (replayed from recorded JSONL
logs, so they are deterministic) at a desktop and a tablet size, and a real run from the
screen against the loopback fleet. SVGs live in tests/snapshots/; update them with
`pytest --snapshot-update` on Python 3.11 only."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from saf.recipe.log import list_runs
from tests.snapshot_apps._recipes import make_recipes_app
from tests.helpers import snapshots as snapshot_helpers

APPS = Path(__file__).parent / "snapshot_apps"
SIZES = snapshot_helpers.SIZES


async def open_recipes(pilot: Pilot) -> None:
    app = pilot.app
    app.animation_level = "none"
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.press("4")
    await pilot.pause()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_recipe_run_midway(snap_compare, size) -> None:
    """Recipes: the steps x nodes matrix mid-run: step 1 done everywhere, step 2 changed on
    alpha and running on beta and gamma, later steps pending; the log follows a running cell."""
    assert snap_compare(str(APPS / "recipes_midrun.py"), terminal_size=size,
                        run_before=open_recipes)


@pytest.mark.parametrize("size", SIZES)
def test_recipe_run_finished(snap_compare, size) -> None:
    """Recipes: a finished run: changed, skipped (marker on alpha) and failed (gamma's driver
    check, its stderr in the log pane); the last step runs on workers only."""
    assert snap_compare(str(APPS / "recipes_finished.py"), terminal_size=size,
                        run_before=open_recipes)


async def test_run_from_the_screen(asyncssh_cluster, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Enter on `hello` runs it on the fleet: the matrix fills in, and the run is logged where
    `saf runs` finds it."""
    monkeypatch.setenv("SAF_INVENTORY", str(asyncssh_cluster.inventory))
    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path))
    app = make_recipes_app("finished.jsonl")
    app.recipe_replay = None  # type: ignore[attr-defined]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        screen = app.screen
        options = screen.query_one("#recipes-list")
        names = [options.get_option_at_index(i).id for i in range(options.option_count)]
        options.highlighted = names.index("hello")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        # It asks first, showing the steps it will run.
        from saf.screens.confirm import ConfirmScreen
        assert isinstance(app.screen, ConfirmScreen)
        assert "1. say hello" in app.screen.command
        assert screen.state is None or screen.state.status != "running"
        await pilot.click("#run")
        await pilot.pause()
        await screen.workers.wait_for_complete()
        await pilot.pause(0.3)
        state = screen.state
        assert state is not None and state.status == "ok"
        assert {state.cells[(0, n)].status for n in state.nodes} == {"changed"}
        assert [line for _, line in state.cells[(0, "beta")].output] == [
            "hello from beta (Linux x86_64) in cluster test"] or \
            state.cells[(0, "beta")].output[0][1].startswith("hello from beta")
    runs = list_runs(tmp_path / "runs")
    assert [r.status for r in runs] == ["ok"] and runs[0].started.recipe == "hello"
