"""The rooms of DESIGN.md stay apart: the core and the agent never import the UI."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def core_modules() -> list[str]:
    import saf

    names = []
    for info in pkgutil.walk_packages(saf.__path__, "saf."):
        if not info.name.startswith("saf.commands") and info.name != "saf.__main__":
            names.append(info.name)
    return names


def test_importing_the_whole_core_loads_no_textual():
    code = ("import importlib, sys\n"
            f"for name in {core_modules()!r}:\n"
            "    importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'screens'))\n"
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


def test_import_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    done = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
