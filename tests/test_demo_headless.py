"""`saf demo --headless COMMAND`: the demo cluster for any saf command, and nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from saf.signals.demo import DEMO_SYMBOLS

REPO = Path(__file__).resolve().parent.parent
STATE = Path(tempfile.mkdtemp(prefix="saf-test-demo-state-"))  # never the user's own


def _saf(popen, *args: str, state: Path | None = None) -> subprocess.Popen[str]:
    """`saf demo --headless ARGS`, started with the `popen` fixture: stopped with its demo
    cluster after the test even when the test fails."""
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="120", LINES="40",
               SAF_STATE_DIR=str(state or STATE))
    env.pop("SAF_INVENTORY", None)
    return popen([sys.executable, "-m", "saf", "demo", "--headless", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_headless_demo_runs_a_command_and_cleans_up(popen) -> None:
    proc = _saf(popen, "nodes")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["alpha", "beta", "gamma"]
    root = Path(err.split("demo cluster up: ")[1].split()[0]).parent
    assert not root.exists()


def test_sigterm_ends_the_headless_demo_and_removes_its_keys(popen) -> None:
    """A terminal closed or `kill PID` on `saf demo --headless top`: the demo's folder (with
    its throwaway keys) is removed and its agents stop, as after Ctrl-C."""
    proc = _saf(popen, "top")
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "demo cluster up: " in line, line
    root = Path(line.split("demo cluster up: ")[1].split()[0]).parent
    deadline = time.monotonic() + 60
    agents: list[psutil.Process] = []
    while time.monotonic() < deadline and len(agents) < 3:
        agents = [p for p in psutil.Process(proc.pid).children(recursive=True)
                  if any("agent-" in part for part in p.cmdline())]
        time.sleep(0.2)
    assert len(agents) == 3  # the three nodes' agents are up
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert not root.exists()
    gone, alive = psutil.wait_procs(agents, timeout=30)  # generous: a loaded CI machine
    assert not alive


def test_the_headless_demo_has_its_signal_stream(popen) -> None:
    """The demo's signal stream is the cluster's, so every face sees it, not only the
    cockpit: `saf demo --headless signals tail --json` receives demo frames."""
    proc = _saf(popen, "signals", "tail", "--json", "--count", "5")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    frames = [json.loads(line) for line in out.splitlines()]
    assert len(frames) == 5
    assert {f["symbol"] for f in frames} <= set(DEMO_SYMBOLS)


def test_the_demo_keeps_its_nodes_between_runs(tmp_path: Path, popen) -> None:
    """Two demos, one after the other: the second finds what a recipe left on the nodes in
    the first (hello's marker step is skipped), and `saf runs` lists both demo runs, the
    demo's history being its own cluster's."""
    def run_hello() -> dict[tuple[int, str], str]:
        proc = _saf(popen, "run", "hello", "--json", state=tmp_path)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        return {(e["step"], e["node"]): e["status"] for e in map(json.loads, out.splitlines())
                if e["event"] == "node_step_finished"}

    first, second = run_hello(), run_hello()
    nodes = ("alpha", "beta", "gamma")
    assert {first[(1, n)] for n in nodes} == {"changed"}
    assert {second[(1, n)] for n in nodes} == {"skipped"}
    listed = _saf(popen, "runs", "--json", state=tmp_path)
    out, _ = listed.communicate(timeout=120)
    assert [json.loads(line)["cluster"] for line in out.splitlines()] == ["saf-demo"] * 2
