"""The rooms of docs/architecture.md stay apart: the core and the agent never import the UI."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
NOT_CORE = ("saf.commands", "saf.cli", "saf.screens", "saf.agents", "saf.recipes", "saf.themes")


def core_modules() -> list[str]:
    import saf

    names = []
    for info in pkgutil.walk_packages(saf.__path__, "saf."):
        if not info.name.startswith(NOT_CORE) and info.name != "saf.__main__":
            names.append(info.name)
    return names


def test_importing_the_whole_core_loads_no_textual():
    code = ("import importlib, sys\n"
            f"for name in {core_modules()!r}:\n"
            "    importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules\n"
            "             if m.split('.')[0] == 'textual' or m.startswith('saf.screens'))\n"
            "print(bad)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_headless_commands_do_not_pay_for_the_cockpit():
    code = ("import sys\nfrom saf.cli import main\n"
            "try:\n    main(['exec', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('textual' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "False"


def layers_contract() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return contract


def names_in(layer: str) -> list[str]:
    """'a | b', 'a : b' or 'a' -> the parts it names ('(a)' is an optional part)."""
    return [name.strip().strip("()") for name in re.split(r"[|:]", layer)]


def parts_of_saf() -> set[str]:
    """saf's children: the modules and packages in saf/, and the root folders that install
    inside it (package-dir: screens/ is saf.screens)."""
    import saf

    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    inside = {name.split(".")[1] for name in mapped["package-dir"]}
    return {info.name for info in pkgutil.iter_modules(saf.__path__)} | inside


def test_the_layers_name_every_part_of_saf():
    """The layers contract is `exhaustive` over saf, so lint-imports (run on the wheel by
    tests/test_packaging.py) fails on a part of saf no layer names; this says the same at once,
    without a wheel, and that no part is waved through (`exhaustive_ignores`)."""
    contract = layers_contract()
    assert contract["containers"] == ["saf"]
    assert contract["exhaustive"] is True
    assert not contract.get("exhaustive_ignores")
    named = [name for layer in contract["layers"] for name in names_in(layer)]
    assert len(named) == len(set(named))
    assert set(named) == parts_of_saf()


def test_the_core_is_every_layer_below_the_cockpit():
    """What the first test imports as the core is what the layers put below saf.screens, above
    the agent's program and the data folders: a new core module is in both or in neither."""
    layers = layers_contract()["layers"]
    below = layers[layers.index("screens") + 1:-1]
    assert names_in(layers[-1]) == ["agents", "recipes", "themes"]
    tops = {name.split(".")[1] for name in core_modules()}
    assert tops == {name for layer in below for name in names_in(layer)}
