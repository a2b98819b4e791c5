"""The cockpit's settings: theme, read-only switch, key map and colour thresholds.

They come from `cockpit.toml` in saf's config folder and from the inventory's `[cockpit]`
table (the inventory wins: it is the cluster's own policy, e.g. `readonly = true` on a
production cluster). The theme chosen at run time is remembered in `cockpit-state.toml` next to
it, a file saf writes, so the one a person edits by hand is never rewritten.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from saf.errors import ConfigError
from saf.metrics.thresholds import Thresholds
from saf.paths import config_dir
from saf.tomlpos import load_toml, loads as toml_loads

SETTINGS_FILE = "cockpit.toml"
STATE_FILE = "cockpit-state.toml"


@dataclass(frozen=True)
class Settings:
    theme: str | None = None
    readonly: bool = False
    readonly_reason: str = ""
    keymap: dict[str, str] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)
    # Where the run-time theme choice is remembered; None: not remembered (tests, replays).
    state_path: Path | None = None


_TOP_KEYS = {"theme", "readonly", "readonly_reason", "keymap", "thresholds"}


def _parse(data: Mapping[str, Any], path: Path | None, line: Any, base: Settings) -> Settings:
    """Merge one `[cockpit]`-shaped mapping into `base`, rejecting unknown keys."""
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(path, f"unknown cockpit setting {key!r} (known: "
                              f"{', '.join(sorted(_TOP_KEYS))})", line=line(key))
    changes: dict[str, Any] = {}
    if "theme" in data:
        if not isinstance(data["theme"], str):
            raise ConfigError(path, "theme must be a theme name", line=line("theme"))
        changes["theme"] = data["theme"]
    if "readonly" in data:
        if not isinstance(data["readonly"], bool):
            raise ConfigError(path, "readonly must be true or false", line=line("readonly"))
        changes["readonly"] = data["readonly"]
        changes["readonly_reason"] = f"read-only by {path.name if path else 'configuration'}"
    if "readonly_reason" in data:
        changes["readonly_reason"] = str(data["readonly_reason"])
    if "keymap" in data:
        keymap = data["keymap"]
        if not isinstance(keymap, dict) or not all(isinstance(v, str) for v in keymap.values()):
            raise ConfigError(path, 'keymap must be a table of binding id = "keys"',
                              line=line("keymap"))
        changes["keymap"] = {**base.keymap, **keymap}
    if "thresholds" in data:
        table = data["thresholds"]
        known = {f.name for f in dataclasses.fields(Thresholds)}
        if not isinstance(table, dict):
            raise ConfigError(path, "thresholds must be a table", line=line("thresholds"))
        values = {}
        for key, value in table.items():
            if key not in known:
                raise ConfigError(path, f"unknown threshold {key!r} (known: "
                                  f"{', '.join(sorted(known))})", line=line("thresholds", key))
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(path, f"threshold {key} must be a number",
                                  line=line("thresholds", key))
            values[key] = float(value)
        changes["thresholds"] = dataclasses.replace(base.thresholds, **values)
    return dataclasses.replace(base, **changes)


def load_settings(path: Path | None = None, *, inventory_extra: Mapping[str, Any] | None = None,
                  inventory_path: Path | None = None, remember: bool = True) -> Settings:
    """Read the cockpit settings. `path` defaults to cockpit.toml in saf's config folder (a
    missing file is fine); `inventory_extra` is `Inventory.extra` (its "cockpit" table)."""
    folder = config_dir()
    path = path or folder / SETTINGS_FILE
    settings = Settings(state_path=folder / STATE_FILE if remember else None)
    if path.exists():
        data, positions = load_toml(path)
        settings = _parse(data, path, lambda *keys: positions.line(*keys), settings)
    cockpit = (inventory_extra or {}).get("cockpit")
    if cockpit is not None:
        if not isinstance(cockpit, dict):
            raise ConfigError(inventory_path, "[cockpit] must be a table")
        settings = _parse(cockpit, inventory_path, lambda *keys: None, settings)
    remembered = remembered_theme(settings.state_path)
    if remembered:
        settings = dataclasses.replace(settings, theme=remembered)
    return settings


def remembered_theme(state_path: Path | None) -> str | None:
    """The theme last chosen at run time, or None. A damaged state file is ignored: it is
    saf's own cache of a choice, not something a person wrote."""
    if state_path is None or not state_path.exists():
        return None
    try:
        theme = toml_loads(state_path.read_text()).get("theme")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return theme if isinstance(theme, str) else None


def remember_theme(state_path: Path | None, theme: str) -> None:
    if state_path is None:
        return
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(tomli_w.dumps({"theme": theme}))
    except OSError:
        pass  # a read-only home must not break the cockpit; the choice is just not kept
