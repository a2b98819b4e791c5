"""Shared by the snapshot scenarios: the cockpit on a recorded frame stream, replayed at once
to a fixed moment (so the clock, and every figure, is the same on every run)."""

from __future__ import annotations

from pathlib import Path

from saf.screens.app import SafApp, replay_app
from saf.screens.settings import Settings
from saf.themes import THEMES_DIR

FRAMES = Path(__file__).resolve().parents[1] / "fixtures" / "frames"


def cockpit(recording: str, *, until: float | None = None, theme: str = "saf-dark",
            **options: object) -> SafApp:
    return replay_app(FRAMES / recording, instant=True, until=until,
                      settings=Settings(theme=theme), theme_folders=[THEMES_DIR],
                      **options)  # type: ignore[arg-type]
