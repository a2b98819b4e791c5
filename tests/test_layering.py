"""The rooms of docs/architecture.md stay apart: the core and the agent never import the UI."""

from __future__ import annotations

import pkgutil
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


def test_the_contracts_name_every_core_module():
    """A core module the contracts do not list would escape them (the contracts live in
    pyproject.toml and are run on the installed tree by tests/test_packaging.py)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (core,) = [c["source_modules"] for c in config["contracts"] if "UI-free" in c["name"]]
    tops = {".".join(name.split(".")[:2]) for name in core_modules()}
    assert tops == set(core)
