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
from typing import Annotated, Any

import msgspec
import tomli_w
from msgspec import Meta, Struct

from saf.config_model import Source, decode, dotted
from saf.metrics.thresholds import Thresholds
from saf.paths import config_dir
from saf.renamed import OLD_BINDING_IDS, renamed
from saf.tomlpos import load_toml
from saf.tomlpos import loads as toml_loads

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


# [thresholds] holds any of Thresholds' fields, each a (finite) number; one set of names.
ThresholdsTable = msgspec.defstruct(
    "ThresholdsTable", [(f.name, float | None, None) for f in dataclasses.fields(Thresholds)],
    forbid_unknown_fields=True, frozen=True)


class CockpitTable(Struct, forbid_unknown_fields=True, frozen=True):
    """The shape of cockpit.toml and of the inventory's [cockpit] (saf.config_model)."""

    theme: Annotated[str, Meta(description="a theme name")] | None = None
    readonly: bool | None = None
    readonly_reason: str | None = None
    keymap: Annotated[dict[str, str], Meta(description='a table of binding id = "keys"')
                      ] | None = None
    # ThresholdsTable is built by msgspec.defstruct at import: a class mypy cannot see.
    thresholds: ThresholdsTable | None = None  # type: ignore[valid-type]


def _keymap(keymap: dict[str, str], source: Source) -> dict[str, str]:
    """The keymap with each old binding id (saf.renamed) read as its new one, with a notice."""
    return {renamed("keymap id", key, OLD_BINDING_IDS[key], source.path,
                    source.line(("keymap", key))) if key in OLD_BINDING_IDS else key: keys
            for key, keys in keymap.items()}


def _merge(table: CockpitTable, source: Source, base: Settings) -> Settings:
    """One file's settings over `base`: only the keys it sets change."""
    path = source.path
    changes: dict[str, Any] = {}
    if table.theme is not None:
        changes["theme"] = table.theme
    if table.readonly is not None:
        changes["readonly"] = table.readonly
        changes["readonly_reason"] = f"read-only by {path.name if path else 'configuration'}"
    if table.readonly_reason is not None:
        changes["readonly_reason"] = table.readonly_reason
    if table.keymap is not None:
        changes["keymap"] = {**base.keymap, **_keymap(table.keymap, source)}
    if table.thresholds is not None:
        values = {name: float(getattr(table.thresholds, name))
                  for name in table.thresholds.__struct_fields__
                  if getattr(table.thresholds, name) is not None}
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
        source = Source.of_positions(path, positions, table=lambda where: f"[{dotted(where)}]"
                                     if where else "the cockpit settings")
        settings = _merge(decode(data, CockpitTable, source), source, settings)
    cockpit = (inventory_extra or {}).get("cockpit")
    if cockpit is not None:
        # The inventory's lines are read again only when there is an error to place.
        source = Source.of_file(inventory_path, ("cockpit",),
                                table=lambda where: f"[{dotted(('cockpit', *where))}]",
                                key=lambda where: dotted(("cockpit", *where)))
        settings = _merge(decode(cockpit, CockpitTable, source), source, settings)
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
