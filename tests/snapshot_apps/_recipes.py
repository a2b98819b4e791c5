"""The cockpit with a recipe run replayed from a recorded JSONL log (so every status, duration
and line of output is the same on every run), and three of saf's shipped recipes listed
(PICTURED)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from saf.screens.app import SafApp
from saf.screens.recipes import RecipesScreen

from saf.recipe import library
from saf.recipe.log import read_events
from saf.recipe.state import replay
from tests.snapshot_apps._common import cockpit

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "recipes" / "runs"


# The shipped recipes the pictures show: a fixed few, so that adding a recipe to saf does not
# redraw every Recipes snapshot (and move which recipe is selected first).
PICTURED = ("check-python", "hello", "python-venv")


def shipped_recipes() -> list[library.Found]:
    return [f for f in library.available() if f.origin == "shipped" and f.name in PICTURED]


def make_recipes_app(log: str | None, **context: Any) -> SafApp:
    """Press 4 to open the Recipes screen, showing the run in `log` (None: no run).
    `context`: more CockpitContext fields (an inventory to run recipes on, ...)."""
    context.setdefault("recipe_library", shipped_recipes)
    if log is None:
        return cockpit("healthy-3-nodes.jsonl", **context)
    run = replay(read_events(RUNS / log))

    class OnRecordedRun(SafApp):
        """The cockpit whose Recipes screen opens on the recorded run."""

        MODES = {**SafApp.MODES, "recipes": lambda: RecipesScreen(run)}

    return cockpit("healthy-3-nodes.jsonl", app_class=OnRecordedRun, **context)
