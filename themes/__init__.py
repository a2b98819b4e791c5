"""saf's themes and the cockpit's stylesheet, shipped as data files.

A theme is a TOML file whose keys are those of `textual.theme.Theme` (name, primary,
secondary, accent, warning, error, success, foreground, background, surface, panel, boost,
dark, luminosity_spread, text_alpha, and a [variables] table). `cockpit.tcss` styles every
screen with theme variables only, so each theme works everywhere.
"""

from pathlib import Path

THEMES_DIR = Path(__file__).parent
STYLESHEET = THEMES_DIR / "cockpit.tcss"
