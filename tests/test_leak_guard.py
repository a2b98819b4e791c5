"""The suite's own guards: a process a test leaves running fails that test and is stopped
(tests/helpers/leaks.py), and the helpers that find a test's processes look only at what the
test started (tests/helpers/procs.py), never at a look-alike elsewhere on the machine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import leaks, procs
from tests.helpers.serve import agents

REPO = Path(__file__).resolve().parent.parent

INNER_CONFTEST = """
from tests.helpers import leaks
leaks.install()
pytest_plugins = ["tests.helpers.leaks"]
"""

INNER_TESTS = '''
import subprocess, threading, time
from pathlib import Path
import pytest

OUT = Path(__file__).parent

@pytest.fixture(scope="module")
def shared():
    """Long-lived on purpose: a process from its setup, and a thread of its own that starts
    one later, during a test: neither is a test's leak."""
    first = subprocess.Popen(["sleep", "321"])
    later = []
    server = threading.Timer(0.2, lambda: later.append(subprocess.Popen(["sleep", "322"])))
    server.start()
    yield
    server.join()
    for proc in [first, *later]:
        proc.kill()
        proc.wait()

def test_uses_the_shared_fixture(shared):
    time.sleep(0.5)

def test_leaks_a_sleeper(shared):
    proc = subprocess.Popen(["sh", "-c", "sleep 323 & wait"])
    (OUT / "leaked.pid").write_text(str(proc.pid))

def test_clean(shared):
    subprocess.run(["true"])

def test_starts_something_after_it_ends():
    threading.Timer(0.5, lambda: subprocess.Popen(["sleep", "324"])).start()

def test_finds_what_the_previous_test_left():
    time.sleep(1.5)
'''


def test_the_guard_fails_the_leaking_test_and_names_it(tmp_path: Path) -> None:
    """A test that leaves `sh -c 'sleep 323 & wait'` running errors at teardown, naming
    itself and the process, which is stopped with its child; a process a test's thread starts
    after that test ended is reported by the next test as the earlier test's; a module
    fixture's processes (from its setup, or from its own thread later) are nobody's leak."""
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:randomly", str(tmp_path / "test_inner.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 1, out
    assert re.search(r"\b5 passed\b.* 2 errors", out), out
    assert "ERROR at teardown of test_leaks_a_sleeper" in out, out
    assert ("processes still running after test_inner.py::test_leaks_a_sleeper, now stopped"
            in out), out
    assert "'sh -c sleep 323 & wait' (started by test_inner.py::test_leaks_a_sleeper)" in out
    assert "ERROR at teardown of test_finds_what_the_previous_test_left" in out, out
    assert "'sleep 324' (started by test_inner.py::test_starts_something_after_it_ends)" in out
    # The shared fixture's sleeps, by their command (a bare "322" matched pid 32298 once).
    assert "sleep 321" not in out, out
    assert "sleep 322" not in out, out
    leaked = int((tmp_path / "leaked.pid").read_text())
    assert not psutil.pid_exists(leaked)


XDIST_CONFTEST = """
from tests.helpers import leaks, workers
leaks.install()
pytest_plugins = ["tests.helpers.leaks", "tests.helpers.workers"]
"""

XDIST_SHARED = '''
import os, subprocess
from pathlib import Path
import pytest

OUT = Path(__file__).parent

@pytest.fixture(scope="module")
def shared():
    """Made once for the module, whatever the workers; its process is never stopped."""
    proc = subprocess.Popen(["sleep", "325"])
    (OUT / f"shared-made-{proc.pid}").write_text(os.environ["PYTEST_XDIST_WORKER"])
    yield proc

@pytest.mark.parametrize("i", range(6))
def test_shared(shared, request, i):
    assert request.node.get_closest_marker("xdist_group").args == ("test_shared.py",)
'''

XDIST_ALONE = '''
import pytest

@pytest.mark.parametrize("i", range(6))
def test_alone(tmp_path, request, i):
    assert request.node.get_closest_marker("xdist_group") is None
'''


def test_under_xdist_a_shared_module_stays_on_one_worker_and_leftovers_are_reported(
        tmp_path: Path) -> None:
    """With workers (tests/helpers/workers.py), the tests of a module that shares a module
    fixture stay together (the fixture is made once) while function-scoped tests go one by one;
    a process still running when a worker's session ends is reported by the controller, which
    fails the run, and is stopped."""
    (tmp_path / "conftest.py").write_text(XDIST_CONFTEST)
    (tmp_path / "test_shared.py").write_text(XDIST_SHARED)
    (tmp_path / "test_alone.py").write_text(XDIST_ALONE)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-n", "2", "--dist", "loadgroup", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert re.search(r"\b12 passed\b", out), out
    made = list(tmp_path.glob("shared-made-*"))
    assert len(made) == 1, out
    assert "processes still running when the session ended, now stopped" in out, out
    assert "'sleep 325' (started by fixture shared (module scope))" in out, out
    assert done.returncode == 1, out
    assert not psutil.pid_exists(int(made[0].name.rsplit("-", 1)[1]))


def test_sleepers_ignore_a_look_alike_outside_the_test(sleep_tag: str) -> None:
    """`sleep TAG` started outside this test's process tree (handed to PID 1, as another
    session's or a leftover's would be) is not counted; one of the test's own is."""
    decoy = int(subprocess.run(["sh", "-c", f"sleep {sleep_tag} >/dev/null 2>&1 & echo $!"],
                               capture_output=True, text=True, check=True).stdout)
    try:
        deadline = time.monotonic() + 10  # the forked shell execs sleep in its own time
        while psutil.Process(decoy).cmdline() != ["sleep", sleep_tag]:
            assert time.monotonic() < deadline, psutil.Process(decoy).cmdline()
            time.sleep(0.02)
        assert procs.sleepers(sleep_tag) == []
        own = subprocess.Popen(["sleep", sleep_tag])
        try:
            assert [p.pid for p in procs.sleepers(sleep_tag)] == [own.pid]
        finally:
            procs.stop(own)
    finally:
        procs.kill_tree([psutil.Process(decoy)])


def test_agents_counts_only_its_own_clusters_agents(tmp_path: Path, popen) -> None:
    """An agent-like process of another demo cluster, a child of this pytest process too (as
    an earlier failed test's leftover cluster is), is not counted as this cluster's."""
    mine, other = tmp_path / "mine", tmp_path / "other"
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    popen([*argv, f"{other}/alpha/.cache/saf/agent-x.pyz", "--interval", "1"])
    assert agents(mine) == []
    popen([*argv, f"{mine}/alpha/.cache/saf/agent-x.pyz", "--interval", "1"])
    assert len(agents(mine)) == 1
    assert str(mine) in agents(mine)[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="psutil's Linux boot time")
def test_a_clock_step_leaves_a_fixture_s_process_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module fixture's process stays the fixture's when the system clock is stepped (NTP)
    after it started: psutil's create_time() adds the boot time /proc/stat says at each call,
    which moves with the clock. The clock cannot be stepped on a shared machine: psutil's
    reading of the boot time is what moves here, by the second a step gives."""
    from psutil import _pslinux

    guard = leaks.LeakGuard()
    fixture = leaks.Owner("fixture stack (module scope)", True)
    proc = subprocess.Popen(["sleep", "327"])
    try:
        guard.fixtures.append(fixture)
        guard.record(proc.pid)
        guard.fixtures.pop()
        booted = _pslinux.boot_time()
        monkeypatch.setattr(_pslinux, "boot_time", lambda: booted + 1.0)
        assert guard.owner_of(psutil.Process(proc.pid)) == fixture
    finally:
        proc.kill()
        proc.wait()
