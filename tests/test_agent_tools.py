"""agents/tools.py: the tools the Intel and Apple collectors run, started and stopped one
way. Real processes (this Python, sleeping or ignoring SIGTERM), each stopped in a finalizer."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest
from saf.agents import tools
from saf.agents.context import Context


class Recorded(Context):
    """A Context that keeps every process it starts, so the test can see and end them."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[subprocess.Popen] = []

    def popen(self, argv):
        proc = super().popen(argv)
        self.started.append(proc)
        return proc


@pytest.fixture
def machine():
    recorded = Recorded()
    yield recorded
    for proc in recorded.started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]
STUBBORN = [sys.executable, "-c", "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)"]


def test_a_check_that_does_not_end_in_time_is_killed(machine: Recorded) -> None:
    """The Apple collector's `sudo -n -l powermetrics` check: a sudo that hangs (asking
    something, a slow directory service) used to be left running."""
    with pytest.raises(subprocess.TimeoutExpired):
        tools.run(machine, SLEEP, timeout=0.5)
    (proc,) = machine.started
    assert proc.wait(10) < 0  # ended by saf's signal, not left sleeping its 60 s


def test_a_check_says_its_exit_status(machine: Recorded) -> None:
    assert tools.run(machine, [sys.executable, "-c", "raise SystemExit(3)"], timeout=30) == 3


def test_a_reading_tool_is_read_and_stopped(machine: Recorded) -> None:
    said = threading.Event()

    def read(proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            if line.strip() == b"ready":
                said.set()

    proc = tools.start_reading(machine, STUBBORN, read)
    assert said.wait(60), "the tool's line was not read"
    tools.stop(proc, wait=1.0)  # it ignores SIGTERM: killed after the wait
    assert proc.wait(10) == -signal.SIGKILL
    tools.stop(proc)  # stopping a stopped tool does nothing


def test_a_tool_that_is_not_there_cannot_start(machine: Recorded) -> None:
    with pytest.raises(FileNotFoundError):
        tools.start_reading(machine, ["/nonexistent/intel_gpu_top"], lambda p: None)
