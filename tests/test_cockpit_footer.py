"""The footer at tablet and phone widths: the keys that fit, whole, the least needed left out
first, and the fit redone when the terminal is resized (a tablet rotated)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from saf.screens.app import replay_app
from saf.screens.footer import FittingFooter, Key, fit

from saf.recording import load_recording
from tests.test_cockpit_app import context

FRAMES = Path(__file__).parent / "fixtures" / "frames"


def key(ident: str, display: str, description: str, action: str) -> Key:
    return Key(ident, display, display, description, action, True, "")


KEYS = [key("node.back", "esc", "Back", "back"),
        key("node.signal", "s", "Signal process", "signal"),
        key("app.quit", "q", "Quit", "app.quit"), key("app.help", "?", "Help", "app.help"),
        key("app.theme", "t", "Theme", "next_theme"), key("app.record", "R", "Record", "record"),
        key("replay.pause", "space", "Pause", "replay_pause"),
        key("<palette>", "^p", "palette", "command_palette")]


def names(keys: list[Key]) -> list[str]:
    return [k.description for k in keys]


def test_everything_fits_wide():
    shown, compact = fit(KEYS, 88)
    assert names(shown) == names(KEYS)
    assert not compact


def test_record_then_theme_then_palette_then_pause_go_first():
    assert names(fit(KEYS, 87)[0]) == ["Back", "Signal process", "Quit", "Help", "Theme",
                                       "Pause", "palette"]
    assert names(fit(KEYS, 70)[0]) == ["Back", "Signal process", "Quit", "Help", "Pause",
                                       "palette"]
    assert names(fit(KEYS, 60)[0]) == ["Back", "Signal process", "Quit", "Help", "Pause"]
    assert names(fit(KEYS, 50)[0]) == ["Back", "Signal process", "Quit", "Help"]


def test_essential_keys_stay_and_close_up_when_nothing_else_is_left():
    shown, compact = fit(KEYS, 30)
    assert names(shown) == ["Back", "Quit", "Help"]
    assert not compact
    shown, compact = fit(KEYS, 24)
    assert names(shown) == ["Back", "Quit", "Help"]
    assert compact


def footer_text(app) -> str:
    footer = app.screen.query_one(FittingFooter)
    return " ".join(f"{k.key_display} {k.description}" for k in footer.query("FooterKey"))


@pytest.mark.parametrize("size", [(120, 40), (100, 30), (80, 24), (60, 40)])
async def test_footer_fits_the_terminal_and_keeps_quit_and_help(size):
    recording = load_recording(FRAMES / "healthy-3-nodes.jsonl")
    app = replay_app(context(recording), recording, instant=True)
    async with app.run_test(size=size) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")  # the node screen: the most keys of the node-side screens
        await pilot.pause()
        footer = app.screen.query_one(FittingFooter)
        row = sum(k.outer_size.width for k in footer.query("FooterKey"))
        assert row <= size[0], footer_text(app)
        for needed in ("esc Back", "q Quit", "? Help"):
            assert needed in footer_text(app)


async def test_footer_fits_again_when_the_terminal_is_resized():
    recording = load_recording(FRAMES / "healthy-3-nodes.jsonl")
    app = replay_app(context(recording), recording, instant=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "R Record" in footer_text(app)
        await pilot.resize_terminal(60, 40)
        await pilot.pause()
        await pilot.pause()
        assert "R Record" not in footer_text(app)
        assert "? Help" in footer_text(app)
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        await pilot.pause()
        assert "R Record" in footer_text(app)


def test_every_screen_uses_the_fitting_footer():
    """A screen that yields Textual's own Footer runs its keys off the edge at 80 columns
    ('space Pa'): every screen module yields saf.screens.footer.FittingFooter instead."""
    screens = Path(__file__).resolve().parent.parent / "screens"
    offenders = [p.name for p in sorted(screens.glob("*.py"))
                 if re.search(r"\bFooter\(", p.read_text(encoding="utf-8"))
                 and p.name != "footer.py"]
    assert not offenders, f"use FittingFooter() (saf.screens.footer) in {offenders}"
