"""Running the tools a collector reads (intel_gpu_top, macmon, powermetrics, sudo): what the
Intel and Apple collectors share, so a tool never outlives its collector and a check of one
never hangs the agent.

Python >= 3.9, standard library only, like the rest of the agent.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from .context import Context

STOP_WAIT = 2.0  # seconds a tool has to exit after SIGTERM before it is killed


def interval_ms(seconds: float) -> str:
    """A sampling interval as the tools take it: whole milliseconds, at least 100."""
    return str(max(100, int(seconds * 1000)))


def silent_for(since: float, interval: float) -> bool:
    """Whether a tool that printed last at `since` (time.monotonic) has been quiet too long
    for one sampling every `interval` seconds."""
    return time.monotonic() - since > max(5.0, 3 * interval)


def start_reading(machine: Context, argv: Sequence[str],
                  read: Callable[[subprocess.Popen[bytes]], object]) -> subprocess.Popen[bytes]:
    """Start a tool that prints until stopped, with `read(proc)` on its output in a thread.
    The process; OSError when it cannot start."""
    proc = machine.popen(argv)
    threading.Thread(target=read, args=(proc,), daemon=True).start()
    return proc


def run(machine: Context, argv: Sequence[str], timeout: float) -> int:
    """Run a tool to its end within `timeout` seconds: its exit status. A tool still running
    then is killed (and reaped) and subprocess.TimeoutExpired raised; OSError when it
    cannot start."""
    proc = machine.popen(argv)
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, wait=0)
        raise
    return proc.returncode


def stop(proc: subprocess.Popen[bytes] | None, wait: float = STOP_WAIT) -> None:

    """End a tool: SIGTERM, then SIGKILL when it has not exited within `wait` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
