"""What saf reads from model servers and nodes, checked against real answers (vLLM's SSE and
/v1/models, captured on real machines: tests/fixtures/models/) and against hostile ones."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import get_args

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saf.inference import node_script
from saf.inference.checks import read as read_checks
from saf.inference.engines import ENGINES, ModelServerSpec, split_args
from saf.inference.measure import CheckReport, RequestResult, Stats, percentile
from saf.inference.records import (
    STATES,
    BadLines,
    Engine,
    ModelServerError,
    ServerSeen,
    State,
    read_answers,
)
from saf.inference.sse import SSEReader, read_chunk, read_models

FIXTURES = Path(__file__).parent / "fixtures" / "models"


def events(text: str, bad: BadLines) -> list[str]:
    reader = SSEReader(bad)
    found = [d for line in text.splitlines() if (d := reader.line(line)) is not None]
    if (last := reader.close()) is not None:
        found.append(last)
    return found


def test_vllm_05_stream_role_first_then_text():
    """vLLM ~0.5: the first chunk's delta has the role and no content (no token), then one
    piece of text per chunk."""
    bad = BadLines()
    text = (FIXTURES / "vllm-sse-chat-completions_v0.5-2024_qwen_issue6083_TRUNC.txt").read_text()
    chunks = [read_chunk(d, bad) for d in events(text, bad)]
    assert bad.total == 0
    assert [c.text for c in chunks if c] == ["", "我是", "阿里", "云", "开发", "的一款"]
    assert all(c and c.model == "Qwen-v" for c in chunks)


def test_vllm_066_stream_empty_contents():
    bad = BadLines()
    text = (FIXTURES / "vllm-sse-chat-completions_v0.6.6_llama3.3-70b-awq_issue13087_TRUNC.txt"
            ).read_text()
    chunks = [read_chunk(d, bad) for d in events(text, bad)]
    assert bad.total == 0
    assert len(chunks) == 3
    assert all(c is not None and c.text == "" and c.finish_reason is None for c in chunks)


def test_chunks_without_blank_lines_are_still_separate_events():
    bad = BadLines()
    text = ('data: {"choices":[{"text":"a"}]}\ndata: {"choices":[{"text":"b"}]}\n'
            'data: [DONE]\n')
    reader = SSEReader(bad)
    got = [d for line in text.splitlines() if (d := reader.line(line)) is not None]
    assert [read_chunk(d, bad).text for d in got[:2]] == ["a", "b"]  # type: ignore[union-attr]
    assert reader.done


@pytest.mark.parametrize(("name", "ids", "max_len"), [
    ("vllm-v1-models_apertus-8b_recent.json", ["swiss-ai/Apertus-8B-Instruct-2509"], 65536),
    ("vllm-v1-models_2023-old-no-max_model_len_mistral7b.json", ["Mistral-7B-Instruct-v0.1/"],
     None),
    ("vllm-v1-models_served-model-name-vs-root_qwen3-1.7b.json", ["prompt_model"], 16384),
])
def test_vllm_models_answers(name, ids, max_len):
    bad = BadLines()
    models = read_models(json.loads((FIXTURES / name).read_text()), bad)
    assert [m.id for m in models] == ids
    assert models[0].max_model_len == max_len
    assert bad.total == 0


def test_served_name_keeps_its_root():
    models = read_models(json.loads(
        (FIXTURES / "vllm-v1-models_served-model-name-vs-root_qwen3-1.7b.json").read_text()),
        BadLines())
    assert models[0].root == "/weights/Qwen3-1.7B"


@pytest.mark.parametrize(("data", "reason"), [
    ("not json", "not_json"), ("[1, 2]", "bad_type"), ('{"choices": 3}', "no_choices"),
    ('{"choices": [{"text": 5}]}', "bad_text"), ('{"choices": ["x"]}', "bad_choice"),
    ('{"error": {"message": "boom"}}', "error_event"),
])
def test_bad_chunks_are_counted(data, reason):
    bad = BadLines()
    assert read_chunk(data, bad) is None
    assert bad.counts == {reason: 1}


def test_usage_and_llama_server_timings():
    bad = BadLines()
    chunk = read_chunk(json.dumps({
        "choices": [{"text": "x", "finish_reason": "length"}],
        "usage": {"completion_tokens": 32, "prompt_tokens": 12},
        "timings": {"prompt_n": 12, "prompt_ms": 3.5, "predicted_n": 32,
                    "predicted_per_token_ms": 0.9, "predicted_per_second": 1111.1,
                    "junk": "x", "neg": -1, "nan": float("nan")}}), bad)
    assert chunk is not None
    assert chunk.completion_tokens == 32
    assert chunk.prompt_tokens == 12
    assert chunk.timings == {"prompt_n": 12.0, "prompt_ms": 3.5, "predicted_n": 32.0,
                             "predicted_per_token_ms": 0.9, "predicted_per_second": 1111.1}


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["choices", "text", "delta", "content",
                                                       "usage", "timings", "model",
                                                       "completion_tokens", "data", "id"]),
                                      inner, max_size=5), max_leaves=20))
def test_hostile_json_never_crashes(value):
    bad = BadLines()
    read_chunk(json.dumps(value), bad)
    read_models(value, bad)
    for line in (value, {"event": "server", "record": value, "state": "ready", "uptime": 1}):
        try:
            read_answers("n", json.dumps(line), bad)
        except ModelServerError as exc:  # the one way a node's answer may fail: saying why
            said = str(exc)
        else:
            continue
        assert said.startswith("n: line 1 of the serve helper's answer is not what ")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=80), max_size=30))
def test_hostile_lines_never_crash(lines):
    bad = BadLines()
    reader = SSEReader(bad)
    for line in lines:
        data = reader.line(line)
        if data is not None and not reader.done:
            read_chunk(data, bad)
    said = ""
    try:
        read_answers("n", "\n".join(lines), bad)
    except ModelServerError as exc:
        said = str(exc)
    assert not said or said.startswith("n: line "), said


def test_percentiles_are_numpys_linear():
    """numpy.percentile's default is the 'inclusive' method of statistics.quantiles."""
    values = [5.0, 1.0, 9.5, 3.25, 7.0, 2.0, 11.0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for q in (50, 90, 99):
        assert percentile(values, q) == pytest.approx(cuts[q - 1])
    assert percentile([4.0], 99) == 4.0


def test_tpot_and_report_figures():
    r = RequestResult(ok=True, ttft=0.010, itl=[0.002] * 9, e2el=0.028, output_tokens=10)
    assert r.tpot == pytest.approx(0.002)
    report = CheckReport("a:1", "m", [], 2, 1, 10, 0.1, [r, RequestResult(ok=False, error="x")],
                         BadLines())
    stats = report.stats()
    assert stats["ttft"] == Stats(10.0, 10.0, 10.0, 10.0, 1)
    assert report.tokens_per_s == pytest.approx(100.0)
    assert report.failed == 1
    assert report.to_json()["itl"]["n"] == 9


GOOD = {"saf_serve": 1, "port": 8000, "pid": 1234, "engine": "vllm", "model": "m",
        "host": "127.0.0.1", "log": "/x", "argv": ["vllm"], "started": 1.0, "pid_start": None}


def test_a_good_listing_is_read_and_other_output_is_counted():
    bad = BadLines()
    text = ("Welcome to node1 (a login script's echo)\n\n"
            + json.dumps({"event": "server", "record": GOOD, "state": "ready", "uptime": 5.0})
            + "\n" + json.dumps({"event": "bad", "port": 8001, "why": "unreadable"}) + "\n")
    seen, unreadable = read_answers("n", text, bad)
    assert isinstance(seen, ServerSeen)
    assert seen.record.port == 8000
    assert seen.uptime == 5.0
    assert seen.record.argv == ("vllm",)
    assert unreadable.why == "unreadable"
    assert bad.counts == {"not_json": 1}


def test_the_words_of_states_and_engines_are_defined_once():
    """STATES and ENGINES are read off the Literals the node's answers are checked against;
    the node script (stdlib only, it runs on the node) keeps its own copy of the engines."""
    assert STATES == get_args(State)
    assert ENGINES == get_args(Engine)
    assert node_script.ENGINES == ENGINES


@pytest.mark.parametrize(("change", "where"), [
    ({"port": 0}, "Expected `int` >= 1 - at `$.record.port`"),
    ({"pid": True}, "Expected `int`, got `bool` - at `$.record.pid`"),
    ({"engine": "rm -rf"}, "Invalid enum value 'rm -rf' - at `$.record.engine`"),
    ({"argv": "vllm serve"}, "Expected `array`, got `str` - at `$.record.argv`"),
    ({"started": 1e300}, "at `$.record.started`"),
    ({"surprise": 1}, "unknown field `surprise` - at `$.record`"),
    ({"state": "weird"}, "Invalid enum value 'weird' - at `$.state`"),
    ({"uptime": -1e6}, "at `$.uptime`"),
])
def test_a_malformed_answer_fails_naming_the_node_line_and_field(change, where):
    """A node's answer is checked whole at one gate (saf.inference.records.read_answers): a
    record or a state that is not what saf declares fails the call naming the node, the line
    and the field, instead of being skipped half-read."""
    line = {"event": "server", "record": GOOD, "state": "ready", "uptime": 5.0}
    if set(change) <= {"state", "uptime"}:
        line.update(change)
    else:
        line["record"] = {**GOOD, **change}
    text = json.dumps({"event": "bad", "port": 8001, "why": "x"}) + "\n" + json.dumps(line)
    with pytest.raises(ModelServerError) as failed:
        read_answers("node1", text, BadLines())
    message = str(failed.value)
    assert message.startswith("node1: line 2 of the serve helper's answer is not what saf "
                              "expects: "), message
    assert where in message, message


def test_engine_command_lines():
    assert ModelServerSpec("vllm", "Qwen/Q", 8000, tensor_parallel=2, ray=True).argv() == [
        "vllm", "serve", "Qwen/Q", "--host", "127.0.0.1", "--port", "8000",
        "--tensor-parallel-size", "2", "--distributed-executor-backend", "ray"]
    assert ModelServerSpec("mlx", "mlx-community/x", 8001, bin_dir="/v/bin").argv()[:3] == [
        "/v/bin/mlx_lm.server", "--model", "mlx-community/x"]
    assert ModelServerSpec("llama-server", "/m/a.gguf", 8002,
                           args=split_args("-c 4096")).argv() == [
        "llama-server", "-m", "/m/a.gguf", "--host", "127.0.0.1", "--port", "8002", "-c", "4096"]
    assert ModelServerSpec("llama-cpp-python", "a b.gguf", 9, python="/p/python").argv() == [
        "/p/python", "-m", "llama_cpp.server", "--model", "a b.gguf", "--host", "127.0.0.1",
        "--port", "9", "--interrupt_requests", "False"]


PY39 = Path("/root/.pyenv/versions/3.9.18/bin/python")


def test_node_script_needs_no_python_newer_than_3_9(tmp_path):
    """The node script runs on the nodes' Python (3.9 or newer): vermin finds nothing newer,
    and under 3.9 (where installed) it lists, reads a broken record as `bad`, and refuses a
    program that is not there, with the reason."""
    import shutil
    import subprocess
    import sys

    from saf.inference.node import SCRIPT

    vermin = shutil.which("vermin") or str(Path(sys.executable).parent / "vermin")
    script = Path(__file__).resolve().parent.parent / "saf" / "inference" / "node_script.py"
    found = subprocess.run([vermin, "-t=3.9-", "--no-tips", "--violations", str(script)],
                           capture_output=True, text=True)
    assert found.returncode == 0, found.stdout + found.stderr
    python = str(PY39) if PY39.exists() else sys.executable
    folder = tmp_path / ".saf" / "serve"
    folder.mkdir(parents=True)
    (folder / "8000.json").write_text("{not json")
    (folder / "8001.json").write_text(json.dumps({"saf_serve": 1, "port": 9999}))
    # Well typed but for argv's words: the node says so (the operator would refuse the line).
    (folder / "8003.json").write_text(json.dumps({**GOOD, "port": 8003, "argv": ["vllm", 1]}))

    def call(request: dict) -> list[dict]:
        done = subprocess.run([python, "-c", SCRIPT, json.dumps(request)], capture_output=True,
                              text=True, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                              timeout=60)
        return [json.loads(line) for line in done.stdout.splitlines()]

    listed = call({"op": "list"})
    assert [(e["event"], e["port"]) for e in listed] == [("bad", 8000), ("bad", 8001),
                                                         ("bad", 8003)]
    assert "unreadable" in listed[0]["why"]
    assert "missing" in listed[1]["why"]
    assert listed[2]["why"] == "field 'argv' is not a list of strings"
    (answer,) = call({"op": "start", "port": 8002, "host": "127.0.0.1", "engine": "vllm",
                      "model": "m", "argv": ["no-such-vllm", "serve"], "timeout": 5})
    assert answer["event"] == "failed"
    assert "not installed" in answer["why"]
    assert not (folder / "8002.json").exists()


def test_llama_server_stream_with_reasoning_and_timings():
    """llama-server (b6097-b6881): a role delta with content null, a reasoning delta, text,
    then an empty delta carrying usage and llama-server's own timings."""
    bad = BadLines()
    text = (FIXTURES / "llama-server-sse-chat_b6881-b6097_gpt-oss_QUOTED.txt").read_text()
    chunks = [read_chunk(d, bad) for d in events(text, bad)]
    assert bad.total == 0
    assert [c.text for c in chunks if c] == ["", "We", "<|channel|>", ""]
    last = chunks[-1]
    assert last is not None
    assert last.finish_reason == "stop"
    assert last.completion_tokens == 247
    assert last.prompt_tokens == 1085
    assert last.timings is not None
    assert last.timings["predicted_per_second"] == \
        pytest.approx(264.5587652496171)
    assert last.timings["prompt_ms"] == 203.378


def test_llama_perf_log_blocks():
    """llama.cpp's own timings from a real llama-cpp-python server's log: one block per
    completed request (an interrupted one prints none)."""
    from saf.inference.engine_log import perf_blocks, summarize

    log = FIXTURES / "llama-cpp-python-server_tiny-llama.log"
    blocks = perf_blocks(log.read_text().splitlines())
    assert [(b["prompt_n"], b["eval_n"], b["eval_ms"]) for b in blocks] == [
        (21.0, 15.0, 2.26), (5.0, 4.0, 1.73)]
    summary = summarize(blocks)
    assert summary["predicted_per_token_ms"] == pytest.approx((2.26 / 15 + 1.73 / 4) / 2)
    assert summary["prompt_ms"] == pytest.approx((0.04 + 1620.51) / 2)
    assert summarize([]) == {}


def test_a_port_answered_by_another_program_is_not_ours(tmp_path):
    """Readiness asks who listens: a server whose port is answered by another process (two
    nodes of one machine, a leftover server) is not ready, however well the port answers."""
    import subprocess
    import sys
    import time

    from saf.inference import node_script
    from tests.helpers.servers import free_port

    port = free_port()
    web = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                            "127.0.0.1"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        for _ in range(100):
            if node_script.http(f"http://127.0.0.1:{port}/") == 200:
                break
            time.sleep(0.05)
        theirs = {"port": port, "pid": other.pid, "host": "127.0.0.1", "engine": "vllm"}
        ours = {**theirs, "pid": web.pid, "engine": "llama-cpp-python"}
        assert node_script.listeners(port) == {web.pid}
        assert node_script.owns_port(ours)
        assert not node_script.owns_port(theirs)
        assert node_script.probe({**ours, "engine": "llama-cpp-python"}) == "loading"  # 404
        (tmp_path / "v1").mkdir()
        (tmp_path / "v1" / "models").write_text("{}")
        assert node_script.probe(ours) == "ready"
        assert node_script.probe({**theirs, "engine": "llama-cpp-python"}) == "starting"
    finally:
        web.kill()
        other.kill()
        web.wait()
        other.wait()


def test_saved_checks_read_back_typed_and_a_bad_entry_is_left_out() -> None:
    """The last-checks file (saf.inference.checks) is read into SavedCheck Structs, the same
    fields in the same order as CheckReport.to_json() wrote them, so `saf models --json`
    prints them as saved; an entry whose figures are not of their type is left out (never
    checked) instead of crashing a screen or showing half of it."""
    from tests.snapshot_apps._models import CHECKS

    saved = {**CHECKS, "beta:8002": {**CHECKS["gamma:8000"], "ttft": {"mean": "fast"}},
             "beta:8003": "not a check"}
    checks = read_checks(json.loads(json.dumps(saved)))
    assert sorted(checks) == ["alpha:8001", "gamma:8000"]
    gamma = checks["gamma:8000"]
    assert gamma.tokens_per_s == 208.9
    assert gamma.stats("ttft") is not None
    assert gamma.stats("ttft").p99 == 71.9
    assert msgspec.to_builtins(gamma) == json.loads(json.dumps(CHECKS["gamma:8000"]))
    assert checks["alpha:8001"].bad == {"no_choices": 1}


def test_a_saved_check_declares_every_field_a_report_saves() -> None:
    from saf.inference.checks import SavedCheck
    from saf.inference.records import BadLines

    report = CheckReport(endpoint="a:1", model="m", models=[], requests=1, concurrency=1,
                         max_tokens=1, duration=1.0, results=[], bad=BadLines())
    assert list(SavedCheck.__struct_fields__) == list(report.to_json())
