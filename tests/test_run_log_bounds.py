"""Run logs of chatty steps (issue 22, item 13: a step printing 20 MB wrote an 80 MB log of
571,435 lines, and `saf runs` read it whole). `saf run` on the loopback fleet as a user runs
it: the log keeps each step's first and last lines on a node and counts what it left out;
`saf runs show` says so; `saf runs` reads a summary without parsing the output lines."""

from __future__ import annotations

import json
from pathlib import Path

from saf.recipe import log as run_log
from saf.recipe.events import StepOutput, StepOutputDropped
from tests.test_recipe_cli import recipe, saf

LINES = 200_000  # 20 bytes each (seq -f '%019g'): about 4 MB from each node


def test_a_chatty_step_keeps_head_and_tail_and_counts_the_rest(cluster, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = recipe(tmp_path, f"""
[[steps]]
name = "chatty"
run = "seq -f '%019g' 1 {LINES}"
""")
    done = saf(cluster, state, "run", str(path), "--on", "alpha")
    assert done.returncode == 0, done.stderr[-2000:]
    logs = list((state / "runs").glob("*.jsonl"))
    assert len(logs) == 1
    assert logs[0].stat().st_size < 2 * 1024 * 1024  # not the 4 MB x 4 the step printed
    events = run_log.read_events(logs[0])
    kept = [int(e.line) for e in events if isinstance(e, StepOutput)]
    head, tail = run_log.HEAD_LINES, run_log.TAIL_LINES
    assert kept == [*range(1, head + 1), *range(LINES - tail + 1, LINES + 1)]
    [dropped] = [e for e in events if isinstance(e, StepOutputDropped)]
    assert (dropped.node, dropped.lines) == ("alpha", LINES - head - tail)
    assert dropped.bytes == dropped.lines * 20

    shown = saf(cluster, state, "runs", "show", "last")
    assert shown.returncode == 0, shown.stderr
    assert f"{LINES - head - tail:,} lines ({dropped.bytes:,} bytes) of output not kept" \
        in shown.stdout
    listed = saf(cluster, state, "runs", "--json")
    [run] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert run["status"] == "ok"


def test_a_summary_parses_no_output_line(tmp_path: Path, monkeypatch) -> None:
    """`saf runs` costs what its records do, not the log's size: summarize never parses a
    step_output line (counted through the JSON parser it uses)."""
    log = run_log.RunLog(tmp_path / "r.jsonl")
    from saf.recipe.events import NodeStepFinished, RunFinished, RunStarted
    log(RunStarted(run="r", recipe="x", path=None, cluster="c"))
    for n in range(5000):
        log(StepOutput(step=0, node="a", stream="stdout", line=f"line {n}"))
    log(NodeStepFinished(step=0, node="a", status="ok"))
    log(RunFinished(run="r", status="ok"))
    log.close()
    parsed: list[str] = []
    real = run_log.json.loads
    monkeypatch.setattr(run_log.json, "loads", lambda s: parsed.append(s) or real(s))
    summary = run_log.summarize(tmp_path / "r.jsonl")
    assert summary is not None
    assert summary.status == "ok"
    assert not [s for s in parsed if '"step_output"' in s]
    assert len(parsed) == 4  # started, dropped, finished on the node, run finished


def test_a_run_logs_steps_are_read_typed_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    """A run's first line lists its steps; read back they are StepInfo, checked whole: a step
    without its nodes is a ValueError naming the field (the reader skips the line as a torn
    one), not a KeyError later in whichever screen reads it."""
    import pytest

    from saf.recipe.events import RunStarted, StepInfo, from_json

    good = RunStarted(run="r1", recipe="x", path=None,
                      steps=[StepInfo(index=0, name="a", nodes=["alpha"])], nodes=["alpha"])
    line = json.dumps(good.to_json())
    back = from_json(json.loads(line))
    assert isinstance(back, RunStarted)
    assert back.steps == [StepInfo(index=0, name="a", nodes=["alpha"])]
    assert json.loads(line)["steps"][0]["nodes"] == ["alpha"]  # the log's form is unchanged
    damaged = json.loads(line)
    del damaged["steps"][0]["nodes"]
    with pytest.raises(ValueError, match=r"run_started: Object missing required field "
                                         r"`nodes` - at `\$\[0\]`"):
        from_json(damaged)
    log = tmp_path / "r1.jsonl"
    log.write_text(json.dumps(damaged) + "\n")
    assert run_log.read_events(log) == []
