"""Static checks are part of the test command: ruff with the rule set chosen in
pyproject.toml, and mypy on every shipped module (the core, the CLI, the cockpit's screens/
and the agent's agents/, as the wheel installs them: tests/helpers/mypy_tree.py) with
warn_unused_ignores. Any finding fails."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
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


WRONG = 'def wrong() -> int:\n    return "not a number"\n'
LAX = '''\
def untyped(value):
    return value


number: int = "one"  # type: ignore
'''
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
# Wrong modules planted in a copy of the sources, each where one test wants mypy to look.
REACH = ["saf/commands/zz_wrong.py", "screens/zz_wrong.py", "agents/zz_wrong.py"]
STRICT = ["saf/ray/zz_lax.py", "saf/commands/zz_lax.py", "screens/zz_lax.py",
          "agents/zz_lax.py", "agents/collectors/zz_lax.py"]
STATUS = "saf/zz_misspelt.py"
SUMMARY = re.compile(r"^Found (\d+) errors? in \d+ files? \(checked (\d+) source files?\)$",
                     re.MULTILINE)


@dataclass(frozen=True)
class Mypy:
    """One mypy run on a copy of the shipped sources with every probe planted: what it said,
    and its errors as (file, line, error code)."""

    report: str
    errors: list[tuple[str, int, str]]
    checked: int  # source files mypy says it checked

    def errors_in(self, files: list[str]) -> set[tuple[str, int, str]]:
        return {error for error in self.errors if error[0] in files}


def copy_sources(into: Path) -> None:
    """The shipped source folders and pyproject.toml, copied into `into` (caches left out)."""
    def ignored(_folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in ("__pycache__", ".mypy_cache")}

    for part in ("saf", *mypy_tree.package_dirs().values()):
        shutil.copytree(ROOT / part, into / part, ignore=ignored)
    shutil.copy(ROOT / "pyproject.toml", into)


@pytest.fixture(scope="module")
def mypy(tmp_path_factory: pytest.TempPathFactory) -> Mypy:
    """mypy once for the module: a cold run costs 20-30 s of CPU, and the probes are
    separate files that import nothing of each other, so each test reads its own part of one
    report instead of running mypy again."""
    copy = tmp_path_factory.mktemp("sources")
    copy_sources(copy)
    for probes, text in ((REACH, WRONG), (STRICT, LAX), ([STATUS], MISSPELT)):
        for probe in probes:
            (copy / probe).write_text(text)
    done = mypy_tree.run(tool("mypy"), root=copy)
    report = done.stdout + done.stderr
    summary = SUMMARY.search(done.stdout)
    if done.returncode != 1 or summary is None:  # 1: errors found (the probes'); 2: mypy failed
        pytest.fail(f"mypy did not finish its check (exit {done.returncode}):\n{report}",
                    pytrace=False)
    errors = []
    for line in done.stdout.splitlines():
        if ": error:" in line:
            path, number, _rest = line.split(":", 2)
            errors.append((path, int(number), line.rsplit("[", 1)[-1].rstrip("]")))
    return Mypy(report, errors, int(summary.group(2)))


def test_mypy_finds_nothing_in_any_shipped_module(mypy: Mypy) -> None:
    """The files and settings are [tool.mypy]'s, on saf as installed; a `# type: ignore` that
    hides nothing fails. Every shipped module was checked, not only the probes."""
    shipped = [p for part in ("saf", *mypy_tree.package_dirs().values())
               for p in (ROOT / part).rglob("*.py") if "__pycache__" not in p.parts]
    planted = len(REACH) + len(STRICT) + 1
    assert mypy.checked >= len(shipped) + planted, mypy.report
    found = [e for e in mypy.errors if e[0] not in (*REACH, *STRICT, STATUS)]
    if found:
        pytest.fail(f"mypy found problems:\n{mypy.report}", pytrace=False)


def test_mypy_reaches_the_cli_the_cockpit_and_the_agent(mypy: Mypy) -> None:
    """A type error in saf/commands/, in screens/ (installed as saf.screens) or in agents/
    (saf.agents) is reported under the repository's path: none of them is left out or
    unfollowable. Checked on a copy of the sources with one wrong module in each."""
    assert {e[0] for e in mypy.errors_in(REACH)} == set(REACH), mypy.report


def test_mypy_is_strict_in_every_part(mypy: Mypy) -> None:
    """strict holds everywhere, the agent's collectors and the node-side programs included
    (no override exempts them): an unannotated function is reported, and so is a
    `# type: ignore` that names no error code. Checked on a copy of the sources with the
    same lax module in each part."""
    found = {(path, code) for path, _line, code in mypy.errors_in(STRICT)}
    wanted = {(probe, code) for probe in STRICT
              for code in ("no-untyped-def", "ignore-without-code")}
    assert found == wanted, mypy.report


def test_mypy_refuses_a_misspelt_status(mypy: Mypy) -> None:
    """Statuses are types (enums, or Literals with strict_equality): a misspelt one is an
    error the suite reports, not a branch that is never taken."""
    assert {line for _path, line, _code in mypy.errors_in([STATUS])} == {8, 9, 10, 11, 12}, \
        mypy.report
