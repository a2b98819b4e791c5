"""cockpit.toml and the inventory's [cockpit]: what they set, and every mistake named with the
file, the line, the key and what it must be."""

from __future__ import annotations

from pathlib import Path

import pytest

from saf.cockpit.settings import load_settings
from saf.errors import ConfigError
from saf.inventory import load_inventory

NODES = '[[nodes]]\nname = "a"\nhost = "h"\n'


def test_the_inventory_wins_over_cockpit_toml(tmp_path: Path) -> None:
    own = tmp_path / "cockpit.toml"
    own.write_text('theme = "saf-light"\n[keymap]\na = "b"\n[thresholds]\ncpu_warn = 50\n')
    inventory = tmp_path / "saf.toml"
    inventory.write_text(NODES + '[cockpit]\nreadonly = true\n[cockpit.keymap]\nc = "d"\n')
    settings = load_settings(own, inventory_extra=load_inventory(inventory).extra,
                             inventory_path=inventory, remember=False)
    assert settings.theme == "saf-light"
    assert settings.readonly
    assert settings.readonly_reason == "read-only by saf.toml"
    assert settings.keymap == {"a": "b", "c": "d"}
    assert settings.thresholds.cpu_warn == 50.0
    assert settings.thresholds.cpu_alert == 97.0


def test_an_old_keymap_id_of_the_models_screen_still_binds_with_a_notice(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The Models screen was Serving: a keymap naming `serving.check` binds `models.check`,
    and stderr names the file and line; the new ids need no notice."""
    own = tmp_path / "cockpit.toml"
    own.write_text('[keymap]\n"models.stop" = "x"\n"serving.check" = "k"\n')
    settings = load_settings(own, remember=False)
    assert settings.keymap == {"models.stop": "x", "models.check": "k"}
    assert capsys.readouterr().err == (f"saf: {own}:3: keymap id 'serving.check' is now "
                                       "'models.check'; the old name will go\n")


def test_a_quoted_key_with_a_dot_is_named_at_its_own_line(tmp_path: Path) -> None:
    """Binding ids hold dots, so keymap keys are quoted: a mistake in one points at its line
    (saf.tomlpos split the quoted name at the dot, and named the [keymap] line)."""
    own = tmp_path / "cockpit.toml"
    own.write_text('[keymap]\n"app.quit" = "q"\n"models.check" = 1\n')
    with pytest.raises(ConfigError) as failed:
        load_settings(own, remember=False)
    assert failed.value.line == 3


@pytest.mark.parametrize(('text', 'line', 'words'), [
    ('theme = 3\n', 1, "theme must be a theme name, not 3"),
    ('\ncolour = 1\n', 2, "unknown key 'colour' in the cockpit settings (known keys: keymap, "
     "readonly, readonly_reason, theme, thresholds)"),
    ('readonly = "yes"\n', 1, "readonly must be true or false, not 'yes'"),
    ('[thresholds]\ncpu_warn = "x"\n', 2, "thresholds.cpu_warn must be a number, not 'x'"),
    # TOML reads nan as a number, which compares false with every limit: refused.
    ('[thresholds]\ncpu_warn = nan\n', 2, "thresholds.cpu_warn must be a number, not nan"),
    ('[keymap]\nfilter = 1\n', 2, "keymap.filter must be a string, not 1"),
])
def test_cockpit_toml_mistakes_name_the_line(tmp_path: Path, text: str, line: int,
                                             words: str) -> None:
    path = tmp_path / "cockpit.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, remember=False)
    assert str(info.value) == f"{path}:{line}: {words}"


@pytest.mark.parametrize(('table', 'line', 'words'), [
    ('[cockpit]\nreadonly = true\nbogus = 2\n', 6, "unknown key 'bogus' in [cockpit]"),
    ('[cockpit.thresholds]\ncpu_warn = true\n', 5,
     "cockpit.thresholds.cpu_warn must be a number, not True"),
])
def test_inventory_cockpit_mistakes_name_the_inventory_line(tmp_path: Path, table: str,
                                                            line: int, words: str) -> None:
    """The [cockpit] table is read after the inventory loaded; its lines are found again."""
    inventory = tmp_path / "saf.toml"
    inventory.write_text(NODES + table)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "none.toml", inventory_extra=load_inventory(inventory).extra,
                      inventory_path=inventory, remember=False)
    assert str(info.value).startswith(f"{inventory}:{line}: {words}"), str(info.value)
