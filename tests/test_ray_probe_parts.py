"""The Ray probe's facts run as saf runs them on a node (saf.ray.facts.probe_command, this
machine's Python, which has Ray): asked for Ray's parts "unless_running", it leaves out the
import check (most of a second) where the node's raylet runs, and does it where none does;
`true` (saf doctor) does it always."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from saf.ray.answers import decode, marked_line
from saf.ray.facts import NodeFacts, probe_command
from tests.helpers import procs


def facts(temp_dir: Path, parts: object) -> NodeFacts:
    args = {"temp_dir": str(temp_dir), "node_name": "alpha", "ports": [], "record": None,
            "probe": [], "tools": False, "node_dir": None, "parts": parts, "arc_ids": []}
    done = subprocess.run(["/bin/sh", "-c", probe_command(sys.executable, "facts", args)],
                          capture_output=True, text=True, timeout=60)
    line = marked_line(done.stdout)
    assert line is not None, done.stdout + done.stderr
    return decode(line, NodeFacts, "alpha")


@pytest.fixture
def raylet(tmp_path: Path) -> Iterator[Path]:
    """A process whose command line is a raylet's of `tmp_path`'s Ray, as the probe finds
    one: its program named raylet, a session folder under the temp folder, --node-name."""
    temp_dir = tmp_path / "ray"
    session = temp_dir / "session_2026-12-08_00-00-00_000000_1"
    argv = ["bash", "-c", f"exec -a {session}/raylet {sys.executable} -c "
            "'import time; time.sleep(120)' --node-name=alpha"]
    proc = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not facts(temp_dir, False).raylet_running:
            time.sleep(0.05)
        yield temp_dir
    finally:
        procs.kill_tree([psutil.Process(proc.pid)])
        proc.wait(timeout=10)


def test_parts_are_checked_unless_the_nodes_raylet_runs(raylet: Path, tmp_path: Path) -> None:
    running = facts(raylet, "unless_running")
    assert running.raylet_running
    assert running.ray
    assert running.ray_parts is None
    assert facts(raylet, True).ray_parts is not None  # saf doctor still asks

    idle = facts(tmp_path / "no-ray-here", "unless_running")
    assert not idle.raylet_running
    assert idle.ray_parts is not None
