"""A run status in the theme's colours, for the Recipes screen's list, matrix and output."""

from __future__ import annotations


def status_style(status: str, v: dict[str, str]) -> str:
    """The Rich style of a run or cell status, from the palette `v` (widgets.palette)."""
    return {"ok": v.get("success", "green"), "changed": v.get("warning", "yellow"),
            "skipped": "dim", "failed": f"bold {v.get('error', 'red')}",
            "cancelled": v.get("secondary", "magenta"), "running": v.get("accent", "cyan"),
            "pending": "dim", "interrupted": v.get("secondary", "magenta")}.get(status, "")
