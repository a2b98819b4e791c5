"""The cockpit with a recipe run replayed from a recorded JSONL log (so every status, duration
and line of output is the same on every run), and only saf's shipped recipes listed."""

from __future__ import annotations

from pathlib import Path

from saf.recipe import library
from saf.recipe.log import read_events
from saf.recipe.state import replay
from saf.screens.app import SafApp
from tests.snapshot_apps._common import cockpit

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "recipes" / "runs"


def make_recipes_app(log: str) -> SafApp:
    """Press 4 to open the Recipes screen showing the run in `log`."""
    app = cockpit("healthy-3-nodes.jsonl")
    app.recipe_library = [f for f in library.available()  # type: ignore[attr-defined]
                          if f.origin == "shipped"]
    app.recipe_replay = replay(read_events(RUNS / log))  # type: ignore[attr-defined]
    return app
