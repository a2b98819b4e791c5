"""End to end: `saf demo` in a real terminal (tmux), as a person would run it. Three nodes come
up with live, changing figures; `q` quits; nothing it started is left running."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^(alpha|beta|gamma)\s+● up\s+(?:[a-z]+\s+)?(\d+%)")


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def _rows(session: str) -> dict[str, str]:
    rows = {}
    for line in _tmux("capture-pane", "-p", "-t", session).splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group(1)] = line
    return rows


def _wait(predicate, seconds: float):  # a deadline so a broken cockpit fails, not hangs
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def test_saf_demo_shows_three_live_nodes_and_quits_clean(tmp_path):
    session = f"saf-e2e-{uuid.uuid4().hex[:8]}"
    env = {"SAF_CONFIG_DIR": str(tmp_path / "config"), "SAF_STATE_DIR": str(tmp_path / "state"),
           "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    command = f"cd {ROOT} && env {exports} {sys.executable} -m saf demo"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
                    command], check=True)
    try:
        pane_pid = int(_tmux("display", "-p", "-t", session, "#{pane_pid}").strip())
        first = _wait(lambda: (r := _rows(session)) and len(r) == 3 and r, 90)
        screen = _tmux("capture-pane", "-p", "-t", session)
        assert first, screen
        assert len(first) == 3, screen
        assert "3/3 up" in screen
        changed = _wait(lambda: (r := _rows(session)) and len(r) == 3 and r != first, 30)
        assert changed, "the figures did not change"
        procs = [psutil.Process(pane_pid), *psutil.Process(pane_pid).children(recursive=True)]
        assert len(procs) > 1  # the cockpit and the agents it started
        _tmux("send-keys", "-t", session, "q")
        gone, alive = psutil.wait_procs(procs, timeout=30)
        assert not alive, [p.cmdline() for p in alive if p.is_running()]
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
