"""Static checks are part of the test command: ruff with the rule set chosen in
pyproject.toml, and mypy on the core with warn_unused_ignores. Any finding fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tool(name: str) -> str:
    """The tool next to this Python (the venv's), else on PATH; skipped when neither."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def check(argv: list[str]) -> None:
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        name = Path(argv[0]).name
        pytest.fail(f"{name} found problems:\n{done.stdout}{done.stderr}", pytrace=False)


def test_ruff_finds_nothing() -> None:
    check([tool("ruff"), "check", "--no-cache", "."])


def test_mypy_finds_nothing_in_the_core() -> None:
    """The files and settings are [tool.mypy]'s; a `# type: ignore` that hides nothing fails."""
    check([tool("mypy")])
