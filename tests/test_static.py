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


MISSPELT = '''\
from saf.metrics.events import NodeStatus
from saf.ray.doctor import Finding
from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import Outcome


def misspelt(finding: Finding, node: NodeStatus, outcome: Outcome) -> object:
    failed = finding.status == "fial"  # line 8
    warned = Finding("a", "ssh", "warning", "")  # line 9
    changed = outcome.status == StepStatus.FAILD  # line 10
    made = Outcome("faild")  # line 11
    return failed, warned, changed, made, node == NodeStatus.STALLED  # line 12
'''


def test_mypy_refuses_a_misspelt_status(tmp_path: Path) -> None:
    """Statuses are types (enums, or Literals with strict_equality): a misspelt one is an
    error the suite reports, not a branch that is never taken."""
    probe = tmp_path / "misspelt.py"
    probe.write_text(MISSPELT)
    done = subprocess.run([tool("mypy"), "--config-file", str(ROOT / "pyproject.toml"),
                           "--no-incremental", str(probe)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    flagged = {int(line.split(":")[1]) for line in done.stdout.splitlines()
               if line.startswith(str(probe)) and ": error:" in line}
    assert flagged == {8, 9, 10, 11, 12}, done.stdout
