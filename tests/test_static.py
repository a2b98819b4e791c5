"""Static checks are part of the test command: ruff with the rule set chosen in
pyproject.toml, and mypy on every shipped module (the core, the CLI, the cockpit's screens/
and the agent's agents/, as the wheel installs them: tests/helpers/mypy_tree.py) with
warn_unused_ignores. Any finding fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import mypy_tree

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


def test_mypy_finds_nothing_in_any_shipped_module() -> None:
    """The files and settings are [tool.mypy]'s, on saf as installed; a `# type: ignore` that
    hides nothing fails."""
    done = mypy_tree.run(tool("mypy"))
    if done.returncode != 0:
        pytest.fail(f"mypy found problems:\n{done.stdout}{done.stderr}", pytrace=False)


WRONG = 'def wrong() -> int:\n    return "not a number"\n'


def copy_sources(into: Path) -> None:
    """The shipped source folders and pyproject.toml, copied into `into` (caches left out)."""
    def ignored(_folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in ("__pycache__", ".mypy_cache")}

    for part in ("saf", *mypy_tree.package_dirs().values()):
        shutil.copytree(ROOT / part, into / part, ignore=ignored)
    shutil.copy(ROOT / "pyproject.toml", into)


def test_mypy_reaches_the_cli_the_cockpit_and_the_agent(tmp_path: Path) -> None:
    """A type error in saf/commands/, in screens/ (installed as saf.screens) or in agents/
    (saf.agents) is reported under the repository's path: none of them is left out or
    unfollowable. Checked on a copy of the sources with one wrong module in each."""
    copy_sources(tmp_path)
    probes = ["saf/commands/zz_probe.py", "screens/zz_probe.py", "agents/zz_probe.py"]
    for probe in probes:
        (tmp_path / probe).write_text(WRONG)
    done = mypy_tree.run(tool("mypy"), root=tmp_path)
    flagged = {line.split(":")[0] for line in done.stdout.splitlines() if ": error:" in line}
    assert flagged == set(probes), done.stdout + done.stderr


LAX = '''\
def untyped(value):
    return value


number: int = "one"  # type: ignore
'''


def test_mypy_is_strict_in_every_part(tmp_path: Path) -> None:
    """strict holds everywhere, the agent's collectors and the node-side programs included
    (no override exempts them): an unannotated function is reported, and so is a
    `# type: ignore` that names no error code. Checked on a copy of the sources with the
    same lax module in each part."""
    copy_sources(tmp_path)
    probes = ["saf/ray/zz_probe.py", "saf/commands/zz_probe.py", "screens/zz_probe.py",
              "agents/zz_probe.py", "agents/collectors/zz_probe.py"]
    for probe in probes:
        (tmp_path / probe).write_text(LAX)
    done = mypy_tree.run(tool("mypy"), root=tmp_path)
    found = {(line.split(":")[0], line.rsplit("[", 1)[-1].rstrip("]"))
             for line in done.stdout.splitlines() if ": error:" in line}
    wanted = {(probe, code) for probe in probes
              for code in ("no-untyped-def", "ignore-without-code")}
    assert found == wanted, done.stdout + done.stderr


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
