"""The Ray probe run as saf runs it on a node (saf.ray.facts.probe_command, this machine's
Python, which has Ray). Its facts, asked for Ray's parts "unless_running", leave out the
import check (most of a second) where the node's raylet runs, and do it where none does;
`true` (saf doctor) does it always, and takes an earlier answer saf gives back while nothing
on the node's import path changed. Its stop also ends a Ray process forked while the others
were being stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from saf.connect.base import RunResult
from saf.ray.answers import Stopped, decode, marked_line
from saf.ray.facts import NodeFacts, probe_command
from saf.ray.node_call import node_facts
from tests.helpers import procs

A = TypeVar("A")


def probe(action: str, args: dict[str, object], expected: type[A],
          env: dict[str, str] | None = None) -> A:
    done = subprocess.run(["/bin/sh", "-c", probe_command(sys.executable, action, args)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})
    line = marked_line(done.stdout)
    assert line is not None, done.stdout + done.stderr
    return decode(line, expected, "alpha")


def facts(temp_dir: Path, parts: object, known: object = None,
          env: dict[str, str] | None = None) -> NodeFacts:
    return probe("facts", {"temp_dir": str(temp_dir), "node_name": "alpha", "ports": [],
                           "record": None, "probe": [], "tools": False, "node_dir": None,
                           "parts": parts, "arc_ids": [], "parts_known": known},
                 NodeFacts, env)


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


def test_an_earlier_parts_answer_holds_until_the_import_path_changes(tmp_path: Path) -> None:
    """The facts' answer on Ray's parts comes with the node's import key. Given back with
    that key (a `saf up`'s apply after its plan), it stands without the parts imported again;
    once a package is installed in a folder of the path, they are imported again."""
    path = tmp_path / "site"
    path.mkdir()
    env = {"PYTHONPATH": str(path)}
    first = facts(tmp_path / "ray", True, env=env)
    assert first.ray_parts is not None
    assert first.parts_key
    told = {"key": first.parts_key, "parts": {"dashboard": "as told", "client": None}}
    again = facts(tmp_path / "ray", True, told, env=env)
    assert again.parts_key == first.parts_key
    assert again.ray_missing == {"dashboard": "as told"}
    (path / "newly_installed").mkdir()
    after = facts(tmp_path / "ray", True, told, env=env)
    assert after.parts_key != first.parts_key
    assert after.ray_parts == first.ray_parts  # imported again, not as told


async def test_a_second_facts_call_gives_the_node_its_first_parts_answer(
        tmp_path: Path) -> None:
    """saf.ray.node_call keeps each node's answer on Ray's parts and sends it with the next
    facts call of that node and Python, for the node to take where nothing changed."""
    sent: list[str] = []

    async def run(command: str, *, quiet: bool = True) -> RunResult:
        sent.append(command)
        done = await asyncio.to_thread(subprocess.run, ["/bin/sh", "-c", command],
                                       capture_output=True, text=True, timeout=60)
        return RunResult(node="alpha", command=command, exit_status=done.returncode,
                         stdout=done.stdout, stderr=done.stderr, duration=0.0)

    node = f"alpha-{tmp_path.name}"  # a name no other test's call has used
    first = await node_facts(run, node, sys.executable, temp_dir=str(tmp_path), ports=[],
                             parts="unless_running")
    second = await node_facts(run, node, sys.executable, temp_dir=str(tmp_path), ports=[],
                              parts="unless_running")
    assert "parts_known" not in sent[0]
    assert "parts_known" in sent[1]
    assert str(first.parts_key) in sent[1]
    assert second.ray_parts == first.ray_parts
    assert second.parts_key == first.parts_key


# A Ray process that, told to stop, forks one more (as a raylet may start a worker, or an
# agent a child, while it is being stopped), in a session of its own, then exits.
FORKS_ON_TERM = """import os, signal, subprocess, sys, time
def stop(*_):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                              sys.argv[1] + "/session_1/late"], start_new_session=True)
    open(sys.argv[2], "w").write(str(child.pid))
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
open(sys.argv[3], "w").write("ready")
time.sleep(120)
"""


def test_stop_ends_a_ray_process_forked_while_stopping(tmp_path: Path) -> None:
    temp_dir, late, ready = tmp_path / "ray", tmp_path / "late.pid", tmp_path / "ready"
    parent = subprocess.Popen([sys.executable, "-c", FORKS_ON_TERM, str(temp_dir), str(late),
                               str(ready), f"{temp_dir}/session_1/raylet"],
                              start_new_session=True)
    started = [psutil.Process(parent.pid)]
    try:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        stopped = probe("stop", {"temp_dir": str(temp_dir), "node_name": "alpha",
                                 "sweep": True, "grace": 2}, Stopped)
        parent.wait(timeout=10)
        assert late.exists(), "the parent was not stopped by SIGTERM"
        with contextlib.suppress(psutil.NoSuchProcess):
            started.append(psutil.Process(int(late.read_text())))
        assert not [p for p in started[1:] if procs.alive(p)], \
            f"the process forked while stopping is left: {stopped}"
        assert stopped.stopped == 2
    finally:
        procs.kill_tree([p for p in started if procs.alive(p)])
