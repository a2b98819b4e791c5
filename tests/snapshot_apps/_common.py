"""Shared by the snapshot scenarios: the cockpit on a recorded frame stream, replayed at once
to a fixed moment (so the clock, and every figure, is the same on every run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from saf.screens.app import SafApp
from saf.themes import THEMES_DIR

from saf.cockpit.context import READONLY_FLAG, CockpitContext
from saf.cockpit.settings import Settings
from saf.recording import Recording, Replayer, load_recording

FRAMES = Path(__file__).resolve().parents[1] / "fixtures" / "frames"


def cockpit(recording: str, **options: Any) -> SafApp:
    """The cockpit on a recording of this folder; `options` as `cockpit_on`."""
    return cockpit_on(load_recording(FRAMES / recording), **options)


def cockpit_on(played: Recording, *, until: float | None = None, theme: str = "saf-dark",
               readonly: bool = False, app_class: type[SafApp] = SafApp,
               **context: Any) -> SafApp:
    """`context`: more CockpitContext fields (inventory, signal_feed, recipe_library, ...)."""
    setup = CockpitContext(cluster=played.cluster, nodes=played.nodes,
                           settings=Settings(theme=theme), theme_folders=(THEMES_DIR,),
                           readonly_because=READONLY_FLAG if readonly else None, **context)
    return app_class(setup, lambda emit: Replayer(played, emit, instant=True, until=until))
