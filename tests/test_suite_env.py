"""What a test runs in is the same however the suite was started: serially or on xdist
workers, in the foreground or as a background job (tests/conftest.py, tests/helpers/workers.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import workers

REPO = Path(__file__).resolve().parent.parent

INNER = '''
import os, signal, subprocess

def test_what_a_test_and_its_processes_see():
    status = subprocess.run(["grep", "SigIgn", "/proc/self/status"], capture_output=True,
                            text=True).stdout
    assert not int(status.split()[1], 16) & (1 << (signal.SIGINT - 1)), status
    assert [k for k in ("COLUMNS", "LINES") if k in os.environ] == []
'''


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `pytest &` in a script starts it


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_background_run_on_workers_starts_processes_as_a_foreground_one(
        tmp_path: Path, workers: str) -> None:
    """Started with SIGINT ignored, the suite's own conftest still gives what a test starts
    the default Ctrl-C (the tests that press it on a saf rely on that), and a worker's
    environment has no COLUMNS or LINES that the command's did not have (saf's tables would
    be cut to 80 columns)."""
    (tmp_path / "test_inner.py").write_text(INNER)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "tests.conftest", "-n", workers, str(tmp_path / "test_inner.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=_ignore_sigint)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout, done.stdout


class _Item:
    """As much of a collected test as the ordering hook reads: one with no shared fixture."""

    _fixtureinfo = None

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid

    def get_closest_marker(self, _name: str) -> None:
        return None


def test_the_long_single_tests_are_handed_out_first() -> None:
    """workers.LONG_SINGLES names modules that exist (a renamed one would quietly go back to
    the end of the run), and the collection hook puts their tests first, each module and
    every other test keeping its own order."""
    assert sorted(m for m in workers.LONG_SINGLES if not (REPO / m).is_file()) == []
    names = ["tests/test_a.py::one", "tests/test_up.py::x", "tests/test_b.py::two",
             "tests/test_up_ray.py::y", "tests/test_up.py::z"]
    items = [_Item(n) for n in names]
    workers.pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == [
        "tests/test_up.py::x", "tests/test_up_ray.py::y", "tests/test_up.py::z",
        "tests/test_a.py::one", "tests/test_b.py::two"]
