"""Loading themes from data files: saf's own (in `themes/`) and the user's (in the
`themes` folder of saf's config folder). A bad file is reported, never fatal."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from saf.themes import THEMES_DIR
from textual.color import Color, ColorParseError
from textual.theme import Theme

from saf.paths import config_dir
from saf.tomlpos import loads as toml_loads

DEFAULT_DARK = "saf-dark"
DEFAULT_LIGHT = "saf-light"
# What `t` steps through after saf's own themes and the person's: a few of Textual's, dark
# and light, chosen for readable tables (every one passes the cursor-row contrast test). The
# command palette's "Theme" lists them all.
CHOSEN_THEMES = ("textual-dark", "textual-light", "nord", "gruvbox", "tokyo-night",
                 "catppuccin-latte", "solarized-light")
_COLOUR_KEYS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground",
                "background", "surface", "panel", "boost")
_KNOWN = {f.name for f in dataclasses.fields(Theme)}


@dataclass(frozen=True)
class ThemeProblem:
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def load_theme_file(path: Path) -> Theme:
    """One theme file into a Theme; ValueError says what is wrong."""
    try:
        data = toml_loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}")
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise ValueError("a theme needs a name")
    if not isinstance(data.get("primary"), str):
        raise ValueError("a theme needs a primary colour")
    for key in _COLOUR_KEYS:
        if key in data:
            try:
                Color.parse(data[key])
            except (ColorParseError, TypeError):
                raise ValueError(f"{key} = {data[key]!r} is not a colour") from None
    if "variables" in data and not isinstance(data["variables"], dict):
        raise ValueError("[variables] must be a table")
    try:
        theme = Theme(**data)
        theme.to_color_system()  # resolves every colour, so a bad one fails here, not on paint
    except Exception as exc:  # noqa: BLE001 - Theme/ColorSystem raise assorted errors on bad input
        raise ValueError(str(exc)) from None
    return theme


def theme_dirs() -> list[Path]:
    return [THEMES_DIR, config_dir() / "themes"]


def load_themes(dirs: list[Path] | None = None) -> tuple[list[Theme], list[ThemeProblem]]:
    """Every theme file in the folders (later folders may override earlier names)."""
    themes: dict[str, Theme] = {}
    problems: list[ThemeProblem] = []
    for folder in dirs if dirs is not None else theme_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ValueError as exc:
                problems.append(ThemeProblem(path, str(exc)))
                continue
            themes[theme.name] = theme
    return list(themes.values()), problems


def theme_cycle(loaded: Iterable[str], available: Iterable[str]) -> list[str]:
    """What `t` steps through: saf's two themes, the other theme files (`loaded`: a person's
    own), then the chosen few of Textual's that are `available`."""
    there = set(available)
    own = [DEFAULT_DARK, DEFAULT_LIGHT]
    order = own + sorted(set(loaded) - set(own)) + list(CHOSEN_THEMES)
    return [name for i, name in enumerate(order) if name in there and name not in order[:i]]
