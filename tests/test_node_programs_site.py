"""saf's stdlib-only programs on a node start without the node's site-packages (python -S):
the serving node script (each model's list, start and stop; `saf up`'s plan lists every
model's node) and the supervisor (each service's status, stop and start). A venv's
site-packages and .pth files cost 0.1-0.3 s of start-up each time on a loaded node.

The node script also leaves urllib (http.client, email, ssl: most of its own start-up) until
it probes a server, which a list with none (`saf up`'s plan from nothing) or a stop never does.

This machine is the node: each command line runs under sh with HOME in the test's folder,
and PYTHONPATH names a folder whose sitecustomize (imported by site, and only by it) notes
every python that loads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from saf.cluster import detached
from saf.cluster.units import ServiceSpec
from saf.inference.node import script_command
from saf.inference.records import BadLines, read_answers

NOTE = """import os, sys
with open(os.environ["SITE_NOTES"], "a") as f:
    f.write(repr(sys.argv[:2]) + "\\n")
"""


def _node(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "home").mkdir()
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(NOTE)
    return {**os.environ, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(tmp_path / "site"),
            "SITE_NOTES": str(tmp_path / "notes")}


def _sh(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True,
                          timeout=60)


def _notes(tmp_path: Path) -> list[str]:
    path = tmp_path / "notes"
    return path.read_text().splitlines() if path.exists() else []


def test_the_control_python_loads_site(tmp_path: Path) -> None:
    """Without -S the note is written: the probe can see what the others do not."""
    env = _node(tmp_path)
    assert _sh(f"{sys.executable} -c pass", env).returncode == 0
    assert len(_notes(tmp_path)) == 1


def test_the_node_script_answers_without_site(tmp_path: Path) -> None:
    env = _node(tmp_path)
    for request in ({"op": "list", "probe": True}, {"op": "stop", "port": 1, "grace": 1}):
        done = _sh(script_command(sys.executable, request), env)
        assert done.returncode == 0, done.stderr
        bad = BadLines()
        read_answers("here", done.stdout, bad)  # each line one of its events
        assert not bad.total, done.stdout
    assert "no server on this port" in done.stdout  # the stop answered
    assert _notes(tmp_path) == []


def test_the_supervisor_starts_reports_and_stops_without_site(tmp_path: Path) -> None:
    env = _node(tmp_path)
    spec = ServiceSpec(name="quiet", argv=("/bin/sleep", "300"), restart="always")
    python = sys.executable
    try:
        for command in detached.install(spec, python, write=True):
            done = _sh(command, env)
            assert done.returncode == 0, (command[:80], done.stderr)
        seen = _sh(detached.read(spec, python, "MARK"), env).stdout
        assert detached.status(spec.name, seen.split("MARK")[-1]).active, seen
    finally:
        for command in detached.remove(spec, python):
            _sh(command, env)
    assert _notes(tmp_path) == []


def test_the_node_script_loads_urllib_only_to_probe(tmp_path: Path) -> None:
    env = _node(tmp_path)
    for request in ({"op": "list", "probe": True}, {"op": "stop", "port": 1, "grace": 1}):
        command = script_command(sys.executable, request)
        done = _sh(command.replace(" -S -c ", " -S -X importtime -c "), env)
        assert done.returncode == 0, done.stderr
        assert "| encodings" in done.stderr  # importtime spoke
        assert "urllib" not in done.stderr, request
