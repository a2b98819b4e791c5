"""`saf models fit MODEL` as a user runs it, on the loopback cluster (real agents report this
machine's memory) and on a recording of GPU and Mac nodes; the model is a real GGUF file
written by the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from saf.metrics.store import MetricsStore
from saf.recording import load_recording
from tests.helpers.tiny_gguf import write_corrupt, write_tiny_llama

FRAMES = Path(__file__).parent / "fixtures" / "frames"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("fit") / "tiny.gguf", layers=4)


def test_a_small_model_fits_on_every_node(asyncssh_cluster, model):
    result = asyncssh_cluster.saf("models", "fit", str(model), COLUMNS="200")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{model}: gguf, 4 layers, context 512: needs ")
    assert lines[1].split()[:4] == ["node", "memory", "free", "headroom"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert sorted(rows) == ["alpha", "beta", "gamma"]
    for row in rows.values():
        assert row[1] == "ram"   # no GPU here: llama.cpp on the CPU, in RAM
        assert row[-1] == "yes"


def test_the_figures_as_json_and_a_headroom_that_leaves_nothing(asyncssh_cluster, model):
    result = asyncssh_cluster.saf("models", "fit", str(model), "--json", "--on", "alpha",
                                  "--ctx", "1000", "--headroom", "99%")
    assert result.returncode == 1, result.stderr
    first, *rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert first["model"]["ctx"] == 1000
    assert first["model"]["layers"] == 4
    assert first["headroom"] == "99 %"
    (alpha,) = rows
    total = psutil.virtual_memory().total
    assert alpha["node"] == "alpha"
    assert alpha["memory"] == "ram"
    assert 0 < alpha["free"] <= total
    assert alpha["headroom"] == int(0.99 * total)
    assert alpha["needed"] == first["model"]["total"]
    assert alpha["fits"] is False


def test_a_context_too_big_for_any_node(asyncssh_cluster, model):
    result = asyncssh_cluster.saf("models", "fit", str(model), "--ctx", "100000000",
                                  COLUMNS="200")
    assert result.returncode == 1, result.stderr
    assert result.stdout.count("no: short by") == 3


@pytest.mark.parametrize(("args", "why"), [
    (["--headroom", "lots"], "headroom 'lots'"),
    (["--ctx", "0"], "--ctx"),
])
def test_bad_options_are_refused_before_connecting(asyncssh_cluster, model, args, why):
    result = asyncssh_cluster.saf("models", "fit", str(model), *args)
    assert result.returncode in (1, 2)
    assert why in result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_that_is_not_a_model(asyncssh_cluster, tmp_path):
    bad = write_corrupt(tmp_path / "bad.gguf")
    result = asyncssh_cluster.saf("models", "fit", str(bad))
    assert result.returncode == 1
    assert f"{bad}: not a GGUF model saf can read" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_node_that_does_not_answer_holds_nothing(asyncssh_cluster, model, tmp_path):
    """A node whose port answers nothing has no reading: its row says why, nothing fits
    there, and the model still fits on the others (exit 0)."""
    import tomllib
    from dataclasses import replace

    import tomli_w

    from tests.helpers.servers import free_port
    data = tomllib.loads(asyncssh_cluster.inventory.read_text())
    data["nodes"].append({"name": "ghost", "host": "127.0.0.1", "port": free_port()})
    inv = tmp_path / "saf.toml"
    inv.write_text(tomli_w.dumps(data))
    result = replace(asyncssh_cluster, inventory=inv).saf("models", "fit", str(model),
                                                          "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["node"]: r for r in map(json.loads, result.stdout.splitlines()[1:])}
    assert rows["ghost"]["memory"] == "none"
    assert rows["ghost"]["fits"] is False
    assert "refused" in rows["ghost"]["why"]
    assert rows["alpha"]["fits"] is True


def _saf(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "SAF_STATE_DIR": str(tmp_path / "state"),
           "SAF_CONFIG_DIR": str(tmp_path / "config")}
    return subprocess.run([sys.executable, "-m", "saf", *args], capture_output=True, text=True,
                          env=env, timeout=60, cwd=tmp_path)


def test_gpu_and_unified_memory_from_a_recording(model, tmp_path):
    """The recorded Mac Studios (unified memory) and NVIDIA node (its GPU's own memory): the
    table uses the same readings the cockpit showed, no cluster needed."""
    recording = FRAMES / "healthy-3-nodes.jsonl"
    result = _saf("models", "fit", str(model), "--recording", str(recording), "--json",
                  tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {r["node"]: r for r in map(json.loads, result.stdout.splitlines()[1:])}
    store = MetricsStore()
    for event in load_recording(recording).events:
        store.apply(event)
    gamma = store.node("gamma").sample_sent["gpus"]
    assert rows["gamma"]["memory"] == "gpu"
    assert rows["gamma"]["free"] == sum(g["mem_total"] - g["mem_used"] for g in gamma)
    for mac in ("alpha", "beta"):
        assert rows[mac]["memory"] == "unified"
        assert rows[mac]["free"] == store.node(mac).sample_sent["memory"]["available"]
    assert all(r["fits"] for r in rows.values())
    # A context whose KV cache and compute outgrow the GPU's 24 GiB but not the Macs' memory.
    result = _saf("models", "fit", str(model), "--recording", str(recording), "--ctx",
                  "1500000", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert lines["alpha"].endswith("yes")
    assert "no: short by" in lines["gamma"]
    result = _saf("models", "fit", str(model), "--recording", str(recording), "--on",
                  "tag:nvidia", "--ctx", "1500000", tmp_path=tmp_path)
    assert result.returncode == 1
    assert "alpha" not in result.stdout
