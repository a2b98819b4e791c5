"""Model serving end to end with a real engine: llama.cpp (llama-cpp-python's OpenAI-compatible
server, built from source by pip) serving a tiny GGUF model the test writes itself, on nodes
of a loopback fleet (real SSH servers), driven through the saf CLI as a person would.

One engine for the whole module (it is started by the first test, through `saf run models`,
and found again by every later saf process); a second engine is started only by the
restart, the never-ready and the corrupt-model tests. Every server is stopped at the end.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.servers import AsyncsshServers, ClientKeys, free_port, write_inventory

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed "
                    "(pip install -e '.[test]' builds it)")
pytest.importorskip("gguf", reason="gguf is not installed (pip install -e '.[test]')")

from tests.helpers.tiny_gguf import write_corrupt, write_tiny_llama


@dataclass
class Fleet:
    inventory: Path
    homes: dict[str, Path]
    model: Path
    port: int
    env: dict[str, str]

    def saf(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """A new saf process, as a person would run it."""
        return subprocess.run([sys.executable, "-m", "saf", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def record(self, node: str, port: int) -> Path:
        return self.homes[node] / ".saf" / "serve" / f"{port}.json"

    def run_models(self, node: str, model: Path, port: int, *extra: str,
                   args: str = "", timeout: float = 180
                   ) -> tuple[subprocess.CompletedProcess[str], dict]:
        done = self.saf("run", "models", "--on", node, "--json", "--var",
                        "engine=llama-cpp-python", "--var", f"model={model}", "--var",
                        f"port={port}", *(("--var", f"args={args}") if args else ()), *extra,
                        timeout=timeout)
        finished = [e for e in map(json.loads, done.stdout.splitlines())
                    if e.get("event") == "node_step_finished"]
        assert len(finished) == 1, done.stdout + done.stderr
        return done, finished[0]


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not running; our test process is not its parent, so it is reaped by init.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill_recorded(homes: dict[str, Path]) -> None:
    """Whatever a failed test left running, stopped by the pid saf recorded."""
    for home in homes.values():
        for record in (home / ".saf" / "serve").glob("*.json"):
            try:
                pid = json.loads(record.read_text())["pid"]
                os.killpg(pid, signal.SIGKILL)
            except (OSError, ValueError, KeyError):
                pass


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("models")
    keys = ClientKeys(root / "operator")
    names = ["alpha", "beta"]
    servers = AsyncsshServers(root, keys, names)
    inventory = write_inventory(root / "saf.toml", keys, [
        {"name": n, "host": "127.0.0.1", "port": servers.port(n),
         "roles": ["head" if n == "alpha" else "worker"]} for n in names])
    (root / "models").mkdir()
    model = write_tiny_llama(root / "models" / "tiny-llama.gguf")
    env = {**os.environ, "SAF_INVENTORY": str(inventory), "SAF_STATE_DIR": str(root / "state"),
           "SAF_CONFIG_DIR": str(root / "config"), "COLUMNS": "160"}
    homes = {n: servers.home(n) for n in names}
    try:
        yield Fleet(inventory, homes, model, free_port(), env)
    finally:
        kill_recorded(homes)
        servers.stop()


@pytest.fixture(scope="module")
def served(fleet: Fleet) -> dict:
    """The module's one engine: `saf run models` on alpha, and what it said."""
    began = time.monotonic()
    done, finished = fleet.run_models("alpha", fleet.model, fleet.port)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"finished": finished, "seconds": time.monotonic() - began,
            "record": json.loads(fleet.record("alpha", fleet.port).read_text())}


def test_serve_starts_the_engine_detached(fleet: Fleet, served: dict):
    """The step ends `changed` once the server answers; the server runs in a session of its
    own (so neither saf's guard nor the SSH channel's end reaches it) and outlived the saf
    process that started it."""
    assert served["finished"]["status"] == "changed"
    assert "llama-cpp-python ready" in served["finished"]["message"]
    record = served["record"]
    pid = record["pid"]
    assert running(pid)
    assert os.getsid(pid) == pid
    assert os.getpgid(pid) == pid
    assert record["engine"] == "llama-cpp-python"
    assert record["model"] == str(fleet.model)
    assert (fleet.homes["alpha"] / ".saf" / "serve" / f"{fleet.port}.log").is_file()


def test_models_lists_it_from_a_new_saf(fleet: Fleet, served: dict):
    done = fleet.saf("models", "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    (row,) = rows
    assert (row["node"], row["port"], row["engine"], row["state"]) == (
        "alpha", fleet.port, "llama-cpp-python", "ready")
    assert row["pid"] == served["record"]["pid"]
    assert row["uptime"] >= 0
    table = fleet.saf("models")
    assert table.returncode == 0
    for word in ("NODE", "PORT", "ENGINE", "STATE", "PID", "UPTIME", "alpha",
                 str(fleet.port), "llama-cpp-python", "ready"):
        assert word in table.stdout


def test_check_measures_real_figures_beside_the_engines_own(fleet: Fleet, served: dict):
    done = fleet.saf("models", "check", f"alpha:{fleet.port}", "--requests", "4",
                     "--concurrency", "2", "--max-tokens", "16", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["completed"] == 4
    assert report["failed"] == 0
    assert report["output_tokens"] == 4 * 16
    assert report["model"]  # what /v1/models listed
    for metric in ("ttft", "tpot", "itl", "e2el"):
        stats = report[metric]
        assert stats["n"] > 0
        assert 0 < stats["p50"] <= stats["p99"]
    assert report["e2el"]["mean"] > report["ttft"]["mean"]
    assert report["tokens_per_s"] > 0
    assert report["bad"] == {}
    engine = report["engine"]
    assert report["engine_source"] == "engine log", report
    assert engine["predicted_per_token_ms"] > 0
    assert engine["prompt_ms"] > 0
    # The figures saf keeps for `saf models` and the Models screen.
    listed = json.loads(fleet.saf("models", "--json").stdout.splitlines()[0])
    assert listed["last_check"]["tokens_per_s"] == report["tokens_per_s"]


def test_check_prints_saf_and_engine_side_by_side(fleet: Fleet, served: dict):
    done = fleet.saf("models", "check", "alpha", "--requests", "2")
    assert done.returncode == 0, done.stderr
    for words in ("ttft", "tpot", "itl", "e2el", "P99", "tok/s", "saf vs the engine's own",
                  "engine log"):
        assert words in done.stdout


async def test_the_models_screen_shows_and_checks_the_live_endpoint(
        fleet: Fleet, served: dict, monkeypatch: pytest.MonkeyPatch):
    """The cockpit's Models screen (6) on the live cluster: the endpoint, ready, with its pid;
    `c` measures it and the figures appear as its last check."""
    from saf.screens.models import ModelsScreen

    from saf.inventory import load_inventory
    from tests.snapshot_apps._common import cockpit

    monkeypatch.setenv("SAF_STATE_DIR", fleet.env["SAF_STATE_DIR"])
    app = cockpit("healthy-3-nodes.jsonl", inventory=load_inventory(fleet.inventory))
    key = f"alpha:{fleet.port}"
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("6")
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        for _ in range(300):
            await pilot.pause(0.05)
            if screen.servers is not None:
                break
        (endpoint,) = screen.endpoints
        assert (endpoint.key, endpoint.state, endpoint.pid) == (key, "ready",
                                                                served["record"]["pid"])
        before = screen.checks[key].at if key in screen.checks else None
        await pilot.press("c")
        for _ in range(600):
            await pilot.pause(0.05)
            if key in screen.checks and screen.checks[key].at != before and not screen.busy:
                break
        check = screen.checks[key]  # a SavedCheck, read back from the file the check wrote
        assert check.completed == 4
        assert check.ttft is not None
        assert check.ttft.mean is not None
        assert check.ttft.mean > 0
        from rich.console import Console
        from saf.screens.widgets import palette

        shown = Console(width=120, record=True, file=io.StringIO())
        shown.print(screen._detail(screen.current(), palette(app)))
        text = shown.export_text()
        assert "ttft" in text
        assert "tok/s" in text
        assert "engine's own (engine log)" in text


def test_a_second_serve_is_skipped(fleet: Fleet, served: dict):
    done, finished = fleet.run_models("alpha", fleet.model, fleet.port)
    assert done.returncode == 0, finished
    assert finished["status"] == "skipped", finished
    assert json.loads(fleet.record("alpha", fleet.port).read_text())["pid"] == \
        served["record"]["pid"]


def test_check_mode_starts_nothing(fleet: Fleet, served: dict):
    done = fleet.saf("run", "models", "--check", "--json", "--on", "alpha", "--var",
                     "engine=llama-cpp-python", "--var", f"model={fleet.model}", "--var",
                     f"port={fleet.port + 1}")
    finished = [e for e in map(json.loads, done.stdout.splitlines())
                if e.get("event") == "node_step_finished"]
    assert finished[0]["status"] == "changed"
    assert "would start" in finished[0]["message"]
    assert not fleet.record("alpha", fleet.port + 1).exists()


def test_logs(fleet: Fleet, served: dict):
    done = fleet.saf("models", "logs", f"alpha:{fleet.port}", "-n", "5000")
    assert done.returncode == 0, done.stderr
    assert f"{fleet.port}.log" in done.stdout
    assert "saf: starting" in done.stdout
    assert "llama_perf_context_print" in done.stdout  # the checks' requests
    last = fleet.saf("models", "logs", f"alpha:{fleet.port}", "-n", "3")
    assert len(last.stdout.splitlines()) == 1 + 3


def test_never_ready_fails_in_its_timeout_with_the_log_tail(fleet: Fleet):
    """A server that runs but never answers on its port (told to listen elsewhere) is given
    up after ready_timeout, stopped, and the failure shows its log."""
    port, elsewhere = free_port(), free_port()
    began = time.monotonic()
    done, finished = fleet.run_models("beta", fleet.model, port, "--var", "ready_timeout=6",
                                 args=f"--port {elsewhere}")
    took = time.monotonic() - began
    assert done.returncode == 1
    assert finished["status"] == "failed"
    assert "not ready after 6 s" in finished["message"]
    assert "stopped it" in finished["message"]
    assert any(str(elsewhere) in line for line in finished["tail"]), finished  # uvicorn said
    assert took < 6 + 20
    assert not fleet.record("beta", port).exists()


def test_a_corrupt_model_fails_fast_with_the_log_tail(fleet: Fleet, tmp_path: Path):
    bad = write_corrupt(tmp_path / "corrupt.gguf")
    port = free_port()
    began = time.monotonic()
    done, finished = fleet.run_models("beta", bad, port, "--var", "ready_timeout=60")
    assert done.returncode == 1
    assert finished["status"] == "failed"
    assert finished["message"] == "the server exited before it was ready"
    assert any("gguf" in line.lower() or "model" in line.lower() for line in finished["tail"])
    assert time.monotonic() - began < 60
    assert not fleet.record("beta", port).exists()
    shown = fleet.saf("run", "models", "--on", "beta", "--var", "engine=llama-cpp-python",
                      "--var", f"model={bad}", "--var", f"port={port}")
    assert shown.returncode == 1
    assert "exited before it was ready" in shown.stdout


def test_streams_cut_short_are_counted_not_trusted(fleet: Fleet):
    """llama-cpp-python's server told to interrupt a stream when another request comes (its
    own default): a check with two at once gets answers that end without a finish_reason;
    saf counts them as cut short, fails those requests, and exits 1, instead of reporting
    short answers as fast ones."""
    port = free_port()
    done, finished = fleet.run_models("beta", fleet.model, port, args="--interrupt_requests True")
    assert done.returncode == 0, finished
    try:
        check = fleet.saf("models", "check", f"beta:{port}", "--requests", "6",
                          "--concurrency", "3", "--max-tokens", "200", "--json")
        report = json.loads(check.stdout)
        assert check.returncode == 1, report
        assert report["failed"] >= 1, report
        assert 1 <= report["bad"].get("cut_short", 0) <= report["failed"]
        assert any("cut short" in e for e in report["errors"])
    finally:
        assert fleet.saf("models", "stop", f"beta:{port}").returncode == 0


def test_restart_brings_up_a_new_process(fleet: Fleet, served: dict):
    old = json.loads(fleet.record("alpha", fleet.port).read_text())["pid"]
    done = fleet.saf("models", "restart", f"alpha:{fleet.port}", "--timeout", "120")
    assert done.returncode == 0, done.stdout + done.stderr
    new = json.loads(fleet.record("alpha", fleet.port).read_text())["pid"]
    assert new != old
    assert running(new)
    assert not running(old)
    served["record"]["pid"] = new


def test_stop_leaves_no_process(fleet: Fleet, served: dict):
    pid = json.loads(fleet.record("alpha", fleet.port).read_text())["pid"]
    done = fleet.saf("models", "stop", f"alpha:{fleet.port}")
    assert done.returncode == 0, done.stderr
    assert "stopped" in done.stdout, done.stderr
    assert not running(pid)
    assert not fleet.record("alpha", fleet.port).exists()
    assert fleet.saf("models", "--json").stdout.strip() == ""
    again = fleet.saf("models", "stop", f"alpha:{fleet.port}")
    assert again.returncode == 2
    assert "no endpoint" in again.stderr
