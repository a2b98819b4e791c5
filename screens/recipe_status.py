"""A run status in the theme's colours, for the Recipes screen's list, matrix and output."""

from __future__ import annotations

from saf.recipe.events import RunStatus, StepStatus


def status_style(status: StepStatus | RunStatus, v: dict[str, str]) -> str:
    """The Rich style of a run or cell status, from the palette `v` (widgets.palette)."""
    styles: dict[str, str] = {
        StepStatus.OK: v.get("success", "green"), StepStatus.CHANGED: v.get("warning", "yellow"),
        StepStatus.SKIPPED: "dim", StepStatus.FAILED: f"bold {v.get('error', 'red')}",
        StepStatus.CANCELLED: v.get("secondary", "magenta"),
        StepStatus.RUNNING: v.get("accent", "cyan"), StepStatus.PENDING: "dim",
        RunStatus.INTERRUPTED: v.get("secondary", "magenta")}
    return styles.get(status, "")
