"""The two files of events saf writes and reads back, a recipe run's log and a cockpit
recording, read their lines one way (saf.events.EventTypes): a kind this saf does not know is
an UnknownEvent (the run log skips the line, a recording names it), and a field a newer saf
added is left out, so an older saf reads a newer file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saf.errors import ConfigError
from saf.events import UnknownEvent
from saf.metrics import events as agent_events
from saf.metrics.events import AgentStatus
from saf.recipe import events as recipe_events
from saf.recipe.events import NodeStepFinished, RunFinished, RunStarted, RunStatus, StepStatus
from saf.recipe.log import read_events
from saf.recording import load_recording


@pytest.mark.parametrize("decode", [agent_events.event_from_json, recipe_events.from_json],
                         ids=["recording", "run log"])
def test_an_unknown_kind_is_refused_alike(decode) -> None:
    for line in ({"event": "from_a_newer_saf", "node": "a"}, {"node": "a"}, [1, 2], "x"):
        with pytest.raises(UnknownEvent, match="not an? .*event"):
            decode(line)


def test_a_field_a_newer_saf_added_is_left_out_alike() -> None:
    status = AgentStatus(node="a", status="up", time=1.0).to_json()
    assert agent_events.event_from_json(dict(status, added_later=1)) == \
        AgentStatus(node="a", status="up", time=1.0)
    finished = RunFinished(run="r", status="ok", time=2.0).to_json()
    assert recipe_events.from_json(dict(finished, added_later=1)) == \
        RunFinished(run="r", status="ok", time=2.0)


def test_a_run_log_skips_a_line_it_does_not_know(tmp_path: Path) -> None:
    started = RunStarted(run="r", recipe="hello", path=None, time=1.0)
    finished = RunFinished(run="r", status="ok", time=3.0)
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in (
        started.to_json(), {"event": "from_a_newer_saf", "time": 2.0}, finished.to_json())))
    assert read_events(path) == [started, finished]


def test_a_recording_names_the_line_it_does_not_know(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_text(json.dumps({"saf_recording": 1, "started": 0.0, "nodes": []}) + "\n"
                    + json.dumps(AgentStatus(node="a", status="up", time=1.0).to_json()) + "\n"
                    + json.dumps({"event": "from_a_newer_saf", "time": 2.0}) + "\n")
    with pytest.raises(ConfigError, match=r"rec\.jsonl:3: not a recorded event: not an agent "
                                          r"event: 'from_a_newer_saf'"):
        load_recording(path)


def test_statuses_are_enums_written_and_read_as_the_same_words(tmp_path: Path) -> None:
    """A run log written before statuses were enums loads with enums; what is written is
    the same words; a status word this saf does not know makes its line unreadable."""
    path = tmp_path / "old.jsonl"
    lines = [RunStarted(run="r", recipe="hello", path=None, time=1.0).to_json(),
             {"event": "node_step_finished", "time": 2.0, "step": 0, "node": "a",
              "status": "changed"},
             {"event": "node_step_finished", "time": 2.5, "step": 0, "node": "b",
              "status": "exploded"},
             {"event": "run_finished", "time": 3.0, "run": "r", "status": "interrupted"}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    started, step, finished = read_events(path)
    assert isinstance(step, NodeStepFinished)
    assert step.status is StepStatus.CHANGED
    assert isinstance(finished, RunFinished)
    assert finished.status is RunStatus.INTERRUPTED
    assert json.loads(json.dumps(step.to_json()))["status"] == "changed"
    assert json.dumps(finished.to_json()).count('"status": "interrupted"') == 1
