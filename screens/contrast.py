"""Readable colours: WCAG contrast, and the dashboard cursor's colours resolved from a theme.

A theme names the cursor's colours as CSS values that Rich cannot draw as they are ("#2bb3a3
35%" in saf's themes, "auto 87%" in most of Textual's), so they are resolved here the way
Textual's CSS resolves them: an alpha blends onto what lies under it, `auto` is the text colour
that contrasts with the background it sits on. A foreground that still reads below WCAG's
4.5:1 for body text gives way to black or white, whichever reads better: every theme, a
person's own included, keeps the cursor row readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rich.style import Style
from textual.color import BLACK, WHITE, Color, ColorParseError

MIN_CONTRAST = 4.5  # WCAG 2 AA for body text


def relative_luminance(colour: Color) -> float:
    """WCAG 2's relative luminance of an opaque colour, 0 (black) to 1 (white)."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = colour.rgb
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def contrast_ratio(one: Color, other: Color) -> float:
    """WCAG 2's contrast ratio of two opaque colours, 1 to 21."""
    lighter, darker = sorted((relative_luminance(one), relative_luminance(other)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def resolve(value: str, under: Color) -> Color | None:
    """A theme variable's colour as drawn on `under`: "#rrggbb", "#rrggbb 35%" (blended onto
    `under`), "auto 87%" (the contrasting text colour); None for what is not a colour."""
    text, _, percent = value.strip().partition(" ")
    alpha = 1.0
    if percent:
        try:
            alpha = float(percent.rstrip("%")) / 100
        except ValueError:
            return None
    if text == "auto":
        return under.blend(under.get_contrast_text(1.0), alpha)
    try:
        colour = Color.parse(text)
    except ColorParseError:
        return None
    return under.blend(colour, colour.a * alpha)


@dataclass(frozen=True)
class CursorColours:
    foreground: Color
    background: Color

    @property
    def contrast(self) -> float:
        return contrast_ratio(self.foreground, self.background)


def cursor_colours(variables: Mapping[str, str]) -> CursorColours:
    """The focused cursor row's text and background for a theme's variables."""
    base = resolve(variables.get("background", "#000000"), BLACK) or BLACK
    background = (resolve(variables.get("block-cursor-background", ""), base)
                  or resolve(variables.get("primary", ""), base) or base)
    foreground = resolve(variables.get("block-cursor-foreground", "auto"), background)
    return CursorColours(readable_on(background, foreground), background)


def readable_on(background: Color, wanted: Color | None) -> Color:
    """`wanted` where it reads on `background` (WCAG AA), else black or white."""
    if wanted is None or contrast_ratio(wanted, background) < MIN_CONTRAST:
        return max((WHITE, BLACK), key=lambda c: contrast_ratio(c, background))
    return wanted


def blurred_cursor_colours(variables: Mapping[str, str]) -> CursorColours:
    """The cursor row while the table is not focused (the filter is being typed, or the
    terminal window or browser tab lost focus): the theme's text on its panel colour. One
    colour for the whole row, as focused: a cell's own colour (a title's primary, an up
    state's green) on the panel reads below AA in most themes."""
    base = resolve(variables.get("background", "#000000"), BLACK) or BLACK
    background = resolve(variables.get("panel", ""), base) or base
    return CursorColours(readable_on(background, resolve(variables.get("foreground", ""),
                                                          background)), background)


def _as_style(colours: CursorColours) -> Style:
    return Style(color=colours.foreground.hex6, bgcolor=colours.background.hex6, dim=False)


def cursor_style(variables: Mapping[str, str]) -> Style:
    """The focused cursor row as a Rich style laid over its cells: the cursor's colours, and
    no dimming (a dimmed cell would read fainter than its contrast says)."""
    return _as_style(cursor_colours(variables))


def blurred_cursor_style(variables: Mapping[str, str]) -> Style:
    """The unfocused cursor row as a Rich style laid over its cells."""
    return _as_style(blurred_cursor_colours(variables))
