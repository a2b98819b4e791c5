"""The cursor row reads in every theme `t` steps through (issue 17): its text against its
background, by WCAG 2's contrast ratio, drawn by the real dashboard; and what `t` steps
through (saf's own themes first, then a chosen few; the palette's "Theme" has them all)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.color import Color as RichColor
from rich.segment import Segment
from saf.screens.app import SafApp, replay_app
from saf.screens.contrast import MIN_CONTRAST, contrast_ratio, cursor_colours
from saf.screens.node_table import NodeTable
from saf.screens.theming import CHOSEN_THEMES, DEFAULT_DARK, DEFAULT_LIGHT
from saf.themes import THEMES_DIR
from textual.color import Color
from textual.events import AppBlur, AppFocus

from saf.cockpit.context import CockpitContext
from saf.cockpit.settings import Settings
from saf.recording import load_recording

FRAMES = Path(__file__).parent / "fixtures" / "frames"


def dashboard(theme: str, theme_folders: tuple[Path, ...] = (THEMES_DIR,)) -> SafApp:
    # GPU over temperature: every cell style is on screen (title, good, warn, alert, dim).
    recording = load_recording(FRAMES / "gpu-over-temp.jsonl")
    setup = CockpitContext(cluster=recording.cluster, nodes=recording.nodes,
                           settings=Settings(theme=theme), theme_folders=theme_folders)
    return replay_app(setup, recording, instant=True)


CYCLE = dashboard(DEFAULT_DARK).theme_order()


def test_contrast_ratio_is_wcags() -> None:
    assert contrast_ratio(Color(0, 0, 0), Color(255, 255, 255)) == pytest.approx(21.0)
    assert contrast_ratio(Color(43, 179, 163), Color(43, 179, 163)) == pytest.approx(1.0)
    # WebAIM's checker: #777777 on white is 4.48:1, just short of AA.
    assert contrast_ratio(Color.parse("#777777"), Color(255, 255, 255)) == pytest.approx(
        4.48, abs=0.01)


def test_t_steps_through_safs_themes_then_a_chosen_few() -> None:
    assert CYCLE == [DEFAULT_DARK, DEFAULT_LIGHT, *CHOSEN_THEMES]
    assert 5 <= len(CYCLE) <= 12  # not all of Textual's ~20: those are in the palette


def test_a_persons_own_theme_comes_after_safs(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text('name = "mine"\nprimary = "#ff8800"\n')
    order = dashboard(DEFAULT_DARK, (THEMES_DIR, tmp_path)).theme_order()
    assert order[:3] == [DEFAULT_DARK, DEFAULT_LIGHT, "mine"]


@pytest.mark.parametrize("theme", CYCLE)
async def test_the_cursor_row_reads_in_each_theme(theme: str) -> None:
    """Every character of the selected row, as the table draws it, against its background."""
    app = dashboard(theme)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.theme == theme
        table = app.screen.query_one(NodeTable)
        assert table.has_focus
        for row in range(len(table.rows)):
            table.cursor = row
            await pilot.pause()
            drawn = [s for s in table.render_line(1 + row) if s.text.strip()]
            assert drawn
            for segment in drawn:
                style = segment.style
                assert style is not None
                assert style.color
                assert style.bgcolor
                assert not style.dim, segment.text
                fg, bg = (_rgb(style.color), _rgb(style.bgcolor))
                ratio = contrast_ratio(fg, bg)
                assert ratio >= MIN_CONTRAST, (theme, segment.text, fg.hex, bg.hex, ratio)


def test_a_theme_whose_cursor_text_would_vanish_gets_readable_text() -> None:
    """saf-dark's old failure: the cursor's text in the cursor's own colour."""
    colours = cursor_colours({"background": "#11161c", "primary": "#2bb3a3",
                              "block-cursor-background": "#2bb3a3",
                              "block-cursor-foreground": "#2bb3a3"})
    assert colours.contrast >= MIN_CONTRAST


def _rgb(colour: RichColor) -> Color:
    triplet = colour.get_truecolor()
    return Color(triplet.red, triplet.green, triplet.blue)


# Every theme the palette offers but textual-ansi, whose colours are the terminal's own.
ALL_THEMES = sorted(t for t in dashboard(DEFAULT_DARK).available_themes if t != "textual-ansi")


def drawn_row(app: SafApp, y: int) -> list[Segment]:
    """Line `y` of the screen as the terminal is sent it (the compositor's strips)."""
    return list(app.screen._compositor.render_strips()[y])


def unreadable(segments: list[Segment]) -> list[str]:
    """What in a drawn line a person could not read: a cell left in the terminal's default
    colours (which the theme does not know: a light theme's text on a dark terminal's
    background, or white on the theme's grey in a browser), dimmed text, or text below
    WCAG AA against its background."""
    faults = []
    for segment in segments:
        style = segment.style
        if style is None or style.bgcolor is None or style.bgcolor.is_default:
            faults.append(f"{segment.text!r}: the terminal's default background")
            continue
        if not segment.text.strip():
            continue
        if style.color is None or style.color.is_default:
            faults.append(f"{segment.text!r}: the terminal's default text colour")
            continue
        fg, bg = _rgb(style.color), _rgb(style.bgcolor)
        ratio = contrast_ratio(fg, bg)
        if style.dim or ratio < MIN_CONTRAST:
            faults.append(f"{segment.text!r}: {fg.hex} on {bg.hex}, {ratio:.2f}:1"
                          + (" dimmed" if style.dim else ""))
    return faults


@pytest.mark.parametrize("theme", ALL_THEMES)
async def test_the_selected_row_reads_focused_and_blurred_in_every_theme(theme: str) -> None:
    """The selected row as the terminal gets it, in every theme: with the table focused, with
    the filter's input focused (the table keeps its cursor, blurred), and with the app
    blurred (a browser tab or a terminal window that lost focus: Textual blurs the table)."""
    app = dashboard(theme)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(NodeTable)
        table.cursor = 1
        await pilot.pause()
        y = table.region.y + 2  # the header line, then row 0, then the selected row
        assert drawn_row(app, y)[0].text.startswith(table.selected)
        faults = {"focused": unreadable(drawn_row(app, y))}
        app.post_message(AppBlur())
        await pilot.pause()
        await pilot.pause()
        assert not table.has_focus
        faults["app blurred"] = unreadable(drawn_row(app, y))
        app.post_message(AppFocus())
        await pilot.pause()
        await pilot.press("slash")
        await pilot.pause()
        assert not table.has_focus
        y = table.region.y + 2
        faults["filtering"] = unreadable(drawn_row(app, y))
        assert not any(faults.values()), (theme, faults)
