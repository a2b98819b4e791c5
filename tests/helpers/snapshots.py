"""What the snapshot tests share: the sizes every screen is shot at, and where SVGs live."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_textual_snapshot

# A desktop, a tablet held sideways (100x30: an iPad in Blink at a readable font), a small
# laptop or phone held sideways (80x24), and a tablet held upright.
SIZES = [pytest.param((120, 40), id="120x40"), pytest.param((100, 30), id="100x30"),
         pytest.param((80, 24), id="80x24"), pytest.param((60, 40), id="60x40")]
SNAPSHOTS = Path(__file__).resolve().parent.parent / "snapshots"


class SnapshotsInTestsFolder(pytest_textual_snapshot.SVGImageExtension):
    """Keep SVGs in tests/snapshots/<test module>/ rather than beside each test module."""

    @classmethod
    def dirname(cls, *, test_location) -> str:  # type: ignore[no-untyped-def]
        return str(SNAPSHOTS / test_location.basename)


def screen_lines(app) -> list[str]:  # type: ignore[no-untyped-def]
    """The running app's screen as a person reads it: one string per terminal line."""
    return [strip.text for strip in app.screen._compositor.render_strips()]
