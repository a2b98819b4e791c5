"""`saf run`, `saf runs` and resume as a user runs them: the CLI as a subprocess against the
loopback SSH fleet, with its own state folder."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from saf.recipe import library
from saf.recipe.events import NodeStepFinished, RunFinished, RunStarted
from saf.recipe.log import read_events, summarize
from tests.helpers import procs

NODES = ["alpha", "beta", "gamma"]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir()
    return folder


def saf(cluster, state: Path, *args: str):
    return cluster.saf(*args, SAF_STATE_DIR=str(state), SAF_CONFIG_DIR=str(state / "config"))


def recipe(tmp_path: Path, body: str) -> Path:
    scratch = tmp_path / "nodes"
    scratch.mkdir(exist_ok=True)
    for node in NODES:
        (scratch / node).mkdir(exist_ok=True)
    path = tmp_path / "recipe.toml"
    path.write_text(f'name = "cli-test"\n[vars]\ndir = "{scratch}"\n\n{body}')
    return path


def events_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_run_json_exit_codes_and_runs(cluster, tmp_path: Path, state: Path) -> None:
    path = recipe(tmp_path, """
[[steps]]
name = "hello"
run = "echo hi {node.name}"

[[steps]]
name = "fails on gamma"
run = "test {node.name} != gamma"
""")
    result = saf(cluster, state, "run", str(path), "--json")
    assert result.returncode == 1, result.stderr
    events = events_of(result.stdout)
    assert events[0]["event"] == "run_started"
    assert events[-1]["event"] == "run_finished"
    assert events[-1]["status"] == "failed"
    finished = {(e["step"], e["node"]): e["status"] for e in events
                if e["event"] == "node_step_finished"}
    assert finished[(1, "gamma")] == "failed"
    assert finished[(0, "alpha")] == "changed"
    # The log holds the same events.
    logs = list((state / "runs").glob("*.jsonl"))
    assert len(logs) == 1
    assert [e.to_json()["event"] for e in read_events(logs[0])] == [e["event"] for e in events]

    ok = saf(cluster, state, "run", str(path), "--on", "alpha,beta")
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert "run ok" in ok.stdout
    assert "hi alpha" in ok.stdout

    listed = saf(cluster, state, "runs", "--json")
    runs = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["status"] for r in runs] == ["failed", "ok"]
    shown = saf(cluster, state, "runs", "show", runs[0]["run"])
    assert shown.returncode == 0
    assert "fails on gamma" in shown.stdout
    assert "run failed" in shown.stdout

    bad_var = saf(cluster, state, "run", str(path), "--var", "nope=1")
    assert bad_var.returncode == 2
    assert "has no variable 'nope'" in bad_var.stderr


def test_resume_skips_what_succeeded(cluster, tmp_path: Path, state: Path) -> None:
    """A run fails at step 2; after the cause is fixed, --resume starts at step 2: step 1 is
    not run again."""
    path = recipe(tmp_path, """
[[steps]]
name = "count"
run = "echo {node.name} >> {dir}/count"

[[steps]]
name = "needs flag"
run = "test -f {dir}/flag"

[[steps]]
name = "after"
run = "echo after >> {dir}/{node.name}/after"
""")
    first = saf(cluster, state, "run", str(path))
    assert first.returncode == 1
    assert len((tmp_path / "nodes" / "count").read_text().split()) == 3
    (tmp_path / "nodes" / "flag").write_text("")
    resumed = saf(cluster, state, "run", "--resume", "last", "--json")
    assert resumed.returncode == 0, resumed.stderr
    events = events_of(resumed.stdout)
    assert events[0]["resumed_from"]
    assert events[0]["start_step"] == 1
    statuses = {(e["step"], e["node"]): (e["status"], e["message"]) for e in events
                if e["event"] == "node_step_finished"}
    assert statuses[(0, "beta")][0] == "skipped"
    assert statuses[(0, "beta")][1].startswith("done in run ")
    assert statuses[(1, "beta")][0] == "changed"
    assert statuses[(2, "gamma")][0] == "changed"
    assert len((tmp_path / "nodes" / "count").read_text().split()) == 3
    assert all((tmp_path / "nodes" / n / "after").exists() for n in NODES)
    again = saf(cluster, state, "run", "--resume", "last")
    assert again.returncode == 0
    assert "nothing left to do" in again.stdout


def _pgrep(marker: str) -> list[str]:
    """The processes of this test's own tree that carry `marker`."""
    return procs.describe(procs.matching(re.escape(marker)))


def test_ctrl_c_leaves_nothing_running(cluster, tmp_path: Path, state: Path,
                                       marker: str) -> None:
    """SIGINT mid-step: exit 130, no remote process left, and a log that says which nodes were
    cancelled and that the run was."""
    path = recipe(tmp_path, f"""
[[steps]]
name = "quick"
run = "true"

[[steps]]
name = "long"
run = "echo started; sleep 60 # {marker}"
""")
    proc = subprocess.Popen([sys.executable, "-m", "saf", "run", str(path), "--json"],
                            env=cluster.env(SAF_STATE_DIR=str(state)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        started = 0
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "step_output" and event["line"] == "started":
                started += 1
                if started == 3:
                    break
        assert started == 3
        assert len(_pgrep(marker)) >= 3
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10
    while _pgrep(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pgrep(marker) == [], "a remote command outlived Ctrl-C"
    log = next((state / "runs").glob("*.jsonl"))
    events = read_events(log)
    assert isinstance(events[-1], RunFinished)
    assert events[-1].status == "cancelled"
    finished = {(e.step, e.node): e.status for e in events if isinstance(e, NodeStepFinished)}
    assert finished == {**{(0, n): "changed" for n in NODES},
                        **{(1, n): "cancelled" for n in NODES}}
    assert summarize(log).first_unfinished_step() == 1


def test_a_killed_run_logs_how_long_it_really_ran(cluster, tmp_path: Path, state: Path,
                                                  marker: str) -> None:
    """SIGKILL during a quiet 4 s step: the run reads interrupted with about the time it ran
    (its log is touched every second), not the 0.1 s to its last event."""
    path = recipe(tmp_path, f"""
[[steps]]
name = "quiet"
run = "sleep 30 # {marker}"
on = "alpha"
""")
    proc = subprocess.Popen([sys.executable, "-m", "saf", "run", str(path), "--json"],
                            env=cluster.env(SAF_STATE_DIR=str(state)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not _pgrep(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _pgrep(marker)
        time.sleep(4)
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = subprocess.run([sys.executable, "-m", "saf", "runs", "--json"], capture_output=True,
                          text=True, env=cluster.env(SAF_STATE_DIR=str(state)), timeout=60)
    [run] = [json.loads(line) for line in done.stdout.splitlines()]
    assert run["status"] == "interrupted", run
    print(f"\nkilled after ~4 s in a quiet step: logged {run['duration']:.1f} s")
    assert run["duration"] >= 3.0


def test_check_mode_says_would_change_everywhere(cluster, tmp_path: Path, state: Path) -> None:
    """Under --check nothing changes: each line, the summary table and the counts say
    `would change`, never `changed`; the JSON keeps the status word and the check flag."""
    path = recipe(tmp_path, """
[[steps]]
name = "make"
creates = "{dir}/{node.name}/made"
run = "touch {dir}/{node.name}/made"
""")
    shown = saf(cluster, state, "run", str(path), "--check")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout + shown.stderr
    assert "--check: nothing will be changed" in text
    assert "changed" not in text.replace("nothing will be changed", "")
    assert text.count("would change") == 2 * len(NODES) + 1  # lines, table cells, counts
    assert "(3 would change)" in text
    assert not list((tmp_path / "nodes").rglob("made"))
    # `saf runs` lists it as a check: what would change, not what changed.
    listed = saf(cluster, state, "runs")
    row = next(line for line in listed.stdout.splitlines() if "cli-test" in line)
    assert "(check)" in row, row
    assert "3 would change" in row, row
    assert "3 changed" not in row, row


def test_check_mode_never_says_a_read_only_step_would_change(cluster, tmp_path: Path,
                                                            state: Path) -> None:
    """check-python only reads: under --check its steps run (they are the check) and end ok;
    a wait that would wait is skipped, not "would change"."""
    done = saf(cluster, state, "run", "check-python", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout.replace("nothing will be changed", "")
    assert "would change" not in text, text
    assert "changed" not in text, text
    assert "(9 ok)" in text
    path = recipe(tmp_path, """
[[steps]]
name = "probe"
kind = "wait"
command = "test -e {dir}/{node.name}/never"
tries = 2
interval = 0.1
""")
    waited = saf(cluster, state, "run", str(path), "--check")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "would change" not in waited.stdout
    assert "(3 skipped)" in waited.stdout


def test_model_check_without_a_model_fails_with_the_reason(cluster, state: Path) -> None:
    """A value the step needs is missing: the step fails in --check too, and says why."""
    done = saf(cluster, state, "run", "models", "--check", "--var", "engine=llama-server")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.count("no model: pass --var model=") == len(NODES), done.stdout
    assert "would change" not in done.stdout


def test_the_old_recipe_name_serve_runs_models_with_a_notice(cluster, state: Path) -> None:
    """`saf run serve` (model serving's old name) still runs the models recipe, saying once on
    stderr that the name changed; a user's own recipe called serve is theirs, no notice."""
    done = saf(cluster, state, "run", "serve", "--check", "--var", "engine=llama-server")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.count("no model: pass --var model=") == len(NODES), done.stdout
    assert done.stderr.count("saf: recipe 'serve' is now 'models'; the old name will go") == 1
    own = state / "config" / "recipes"
    own.mkdir(parents=True)
    (own / "serve.toml").write_text('name = "serve"\n[[steps]]\nrun = "true"\n')
    mine = saf(cluster, state, "run", "serve", "--check")
    assert mine.returncode == 0, mine.stdout + mine.stderr
    assert "is now" not in mine.stderr


def test_dead_run_is_marked_interrupted(tmp_path: Path) -> None:
    """A log without run_finished whose saf is gone reads as interrupted, and says so in the
    file from then on."""
    runs = tmp_path / "runs"
    runs.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)
    started = RunStarted(run="r1", recipe="x", path=None, pid=int(dead.stdout), pid_started=1.0,
                         steps=[{"index": 0, "name": "a", "nodes": ["alpha"]}],
                         nodes=["alpha"])
    (runs / "r1.jsonl").write_text(json.dumps(started.to_json()) + "\n")
    summary = summarize(runs / "r1.jsonl")
    assert summary.status == "interrupted"
    assert read_events(runs / "r1.jsonl")[-1].status == "interrupted"
    # This very process is alive: its run reads as running.
    from saf.recipe.log import process_started
    live = RunStarted(run="r2", recipe="x", path=None, pid=os.getpid(),
                      pid_started=process_started())
    (runs / "r2.jsonl").write_text(json.dumps(live.to_json()) + "\n")
    assert summarize(runs / "r2.jsonl").status == "running"


def test_history_is_per_cluster(cluster, tmp_path: Path, state: Path) -> None:
    """`saf runs` lists this inventory's cluster's runs; --all every cluster's, with a
    CLUSTER column; --resume last is this cluster's newest."""
    path = recipe(tmp_path, '[[steps]]\nname = "one"\nrun = "true"\non = "alpha"\n')
    ours = saf(cluster, state, "run", str(path), "--json")
    assert ours.returncode == 0, ours.stderr
    ours_id = json.loads(ours.stdout.splitlines()[0])["run"]
    other_inv = tmp_path / "other.toml"
    other_inv.write_text(cluster.inventory.read_text().replace('name = "test"',
                                                               'name = "other-lab"'))
    theirs = cluster.saf("run", str(path), "--json", SAF_STATE_DIR=str(state),
                         SAF_INVENTORY=str(other_inv))
    assert theirs.returncode == 0, theirs.stderr
    theirs_id = json.loads(theirs.stdout.splitlines()[0])["run"]

    listed = saf(cluster, state, "runs", "--json")
    assert [json.loads(line)["run"] for line in listed.stdout.splitlines()] == [ours_id]
    every = saf(cluster, state, "runs", "--json", "--all")
    assert {json.loads(line)["run"]: json.loads(line)["cluster"]
            for line in every.stdout.splitlines()} == {ours_id: "test", theirs_id: "other-lab"}
    table = saf(cluster, state, "runs", "--all")
    assert "CLUSTER" in table.stdout
    assert "other-lab" in table.stdout
    assert "CLUSTER" not in saf(cluster, state, "runs").stdout


def test_a_huge_variable_is_refused_up_front_with_its_size(cluster, tmp_path: Path,
                                                           state: Path) -> None:
    """A 2 MB value would end as 'connection reset' mid-run (SSH servers drop an oversize
    request); it is refused before anything runs, saying how big it is."""
    path = tmp_path / "big.toml"
    path.write_text('name = "big"\n[vars]\nblob = "' + "x" * 2_000_000 + '"\n\n'
                    '[[steps]]\nname = "echo"\nrun = "echo {blob} | wc -c"\n')
    done = saf(cluster, state, "run", str(path))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "saf: variable 'blob' is 1.9M: a value reaches the node inside a command line, at "
        "most 128K; put it in a file and send that with an upload step")
    assert not (state / "runs").exists() or not list((state / "runs").iterdir())


def test_the_summary_of_a_run_on_fifty_nodes_is_readable(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    """Fifty nodes do not fit as columns: the summary becomes a line per step with counts and
    the nodes that did not end well, instead of a grid of `…`; three nodes keep the matrix."""
    from saf.recipe.events import NodeStepFinished, RunFinished, RunStarted
    from saf.render.run_view import RunView

    def render(nodes: list[str]) -> str:
        monkeypatch.setenv("COLUMNS", "120")
        view = RunView(live=False)
        steps = [{"index": 0, "name": "install", "nodes": nodes},
                 {"index": 1, "name": "verify", "nodes": nodes}]
        view(RunStarted(run="r", recipe="x", path=None, steps=steps, nodes=nodes))
        for node in nodes:
            view(NodeStepFinished(step=0, node=node, status="changed"))
            bad = node in ("n07", "n33")
            view(NodeStepFinished(step=1, node=node, status="failed" if bad else "ok"))
        view(RunFinished(run="r", status="failed", counts={"changed": len(nodes)}))
        capsys.readouterr()
        view.summary()
        return capsys.readouterr().out

    many = render([f"n{i:02d}" for i in range(50)])
    assert "…" not in many
    assert "1. install  50 changed" in many
    assert "2. verify   48 ok, 2 failed (n07, n33)" in many
    few = render(["alpha", "beta", "gamma"])
    assert "alpha" in few.splitlines()[1]
    assert "…" not in few


def test_a_recipes_own_selector_matching_nothing_skips_its_steps(cluster, tmp_path: Path,
                                                                 state: Path) -> None:
    """apple-check and macos-tuning on a cluster without Macs: each step is skipped with the
    reason and the run ends 0; the same selector given by the user with --on is an error."""
    for name in ("apple-check", "macos-tuning"):
        done = saf(cluster, state, "run", name)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "bad selector" not in done.stdout + done.stderr
        assert "no nodes: no node matches os:macos, skipped" in done.stdout
    as_json = saf(cluster, state, "run", "apple-check", "--json")
    started = [e for e in events_of(as_json.stdout) if e["event"] == "step_started"]
    steps = len(library.load("apple-check").steps)  # every step of it, each skipped
    assert [e["reason"] for e in started] == ["no node matches os:macos"] * steps
    asked = saf(cluster, state, "run", "hello", "--on", "os:macos")
    assert asked.returncode == 2
    assert "--on: 'os:macos' matches no node" in asked.stderr


def test_recipes_show_prints_a_recipes_words_as_written(tmp_path: Path) -> None:
    """A recipe's description and its variables' descriptions are text, not Rich markup:
    python-match's "ray[default]" lost its "[default]" to the markup parser."""
    path = tmp_path / "words.toml"
    path.write_text('name = "words"\ndescription = "installs ray[default] and [bold]x[/bold]"\n'
                    '[vars]\nextra = { default = "", description = "beside [red]ray[/red]" }\n'
                    '[[steps]]\nname = "one"\nrun = "true"\n')
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    shown = subprocess.run([sys.executable, "-m", "saf", "recipes", "show", str(path)],
                           capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "installs ray[default] and [bold]x[/bold]" in shown.stdout
    assert "# beside [red]ray[/red]" in shown.stdout
    shipped = subprocess.run([sys.executable, "-m", "saf", "recipes", "show", "python-match"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert "beside ray[default]" in shipped.stdout
