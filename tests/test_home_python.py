"""One rule for `~/` in the inventory's `python` (README's own `~/saf-venv/bin/python`): every
place saf runs the node's python finds it in the node user's home. A loopback fleet (asyncssh's
servers, each node with a home of its own) whose nodes' python is `~/pyv/bin/python`, a small
program in that home that runs this test's Python; each face is run as a person would.

Every test runs twice: with that path, and with it as a command with arguments,
`/usr/bin/env ~/pyv/bin/python` (issue 22 item 17: the agent ran, but serving said the
python "is not installed on this node"; the inventory's `python` is a command everywhere)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from saf.shell import program
from tests.helpers.servers import AsyncsshServers, ClientKeys, free_port, write_inventory

NAMES = ["alpha", "beta"]
OURS = ".".join(map(str, sys.version_info[:3]))


@dataclass
class HomeFleet:
    inventory: Path
    homes: dict[str, Path]
    env: dict[str, str]
    python: str  # as the inventory writes it

    def saf(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "saf", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)


def home_python(home: Path) -> Path:
    """`~/pyv/bin/python` in `home`: runs this test's Python (with saf's agent's needs)."""
    path = home / "pyv" / "bin" / "python"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    path.chmod(0o755)
    return path


PYTHONS = {"home": "~/pyv/bin/python", "env": "/usr/bin/env ~/pyv/bin/python"}


@pytest.fixture(scope="module", params=list(PYTHONS))
def fleet(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeFleet]:
    root = tmp_path_factory.mktemp(f"homepy-{request.param}")
    keys = ClientKeys(root / "operator")
    servers = AsyncsshServers(root, keys, NAMES)
    try:
        homes = {n: servers.home(n) for n in NAMES}
        for home in homes.values():
            home_python(home)
        inventory = write_inventory(root / "saf.toml", keys, [
            {"name": n, "host": "127.0.0.1", "port": servers.port(n),
             "roles": ["head" if n == "alpha" else "worker"]} for n in NAMES],
            python=PYTHONS[request.param])
        env = {**os.environ, "SAF_INVENTORY": str(inventory), "COLUMNS": "200",
               "SAF_STATE_DIR": str(root / "state"), "SAF_CONFIG_DIR": str(root / "config")}
        yield HomeFleet(inventory, homes, env, PYTHONS[request.param])
    finally:
        servers.stop()


def test_program_expands_the_home_and_quotes_the_rest() -> None:
    assert program("'~/saf venv/bin/python'") == "\"$HOME\"/'saf venv/bin/python'"
    assert program("/usr/bin/env python3") == "/usr/bin/env python3"
    assert program("/opt/$(reboot)/python") == "'/opt/$(reboot)/python'"


def test_check_python_runs_the_home_python(fleet: HomeFleet) -> None:
    done = fleet.saf("run", "check-python")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not found" not in done.stdout
    assert done.stdout.count(f"have {OURS} need 3.9") == len(NAMES), done.stdout


def test_python_venv_makes_the_venv_with_the_home_python(fleet: HomeFleet) -> None:
    done = fleet.saf("run", "python-venv", "--on", "beta", "--var", "venv=.saf/made")
    assert done.returncode == 0, done.stdout + done.stderr
    made = fleet.homes["beta"] / ".saf" / "made" / "bin" / "python"
    assert made.exists()
    said = subprocess.run([str(made), "-c", "import sys; print(sys.version.split()[0])"],
                          capture_output=True, text=True, timeout=60)
    assert said.stdout.strip() == OURS


def test_nodes_reads_the_home_python(fleet: HomeFleet) -> None:
    done = fleet.saf("nodes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert {r["node"]: r.get("python") for r in rows} == dict.fromkeys(NAMES, OURS), rows


def test_models_runs_its_node_program_with_the_home_python(fleet: HomeFleet) -> None:
    done = fleet.saf("models", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not found" not in done.stdout + done.stderr


def test_the_agent_starts_with_the_home_python(fleet: HomeFleet) -> None:
    """issue 22 #16: `exec: ~/pyv/bin/python: not found`."""
    done = fleet.saf("top", "--once", "--json", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == len(NAMES), done.stdout
    assert all(r.get("sample") for r in rows), done.stdout


def test_doctor_and_ray_down_run_the_probe_with_the_home_python(fleet: HomeFleet) -> None:
    doctor = fleet.saf("doctor", "--json")
    findings = [json.loads(line) for line in doctor.stdout.splitlines()
                if line.startswith("{")]
    versions = [f for f in findings if f.get("check") == "versions"]
    assert len(versions) == len(NAMES), doctor.stdout + doctor.stderr
    assert all(f"Python {OURS}" in f["evidence"] for f in versions), versions
    down = fleet.saf("run", "ray-down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "not found" not in down.stdout


def test_the_models_recipe_starts_llama_cpp_python_with_the_home_python(fleet: HomeFleet) -> None:
    """llama-cpp-python runs as `PYTHON -m llama_cpp.server`: with the home python it said
    `~/pyv/bin/python is not installed on this node`."""
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    pytest.importorskip("gguf", reason="gguf is not installed")
    from tests.helpers.tiny_gguf import write_tiny_llama

    model = write_tiny_llama(fleet.inventory.parent / "tiny.gguf")
    port = free_port()
    records = fleet.homes["alpha"] / ".saf" / "serve"
    try:
        # auto: no llama-server, vllm or mlx here; the node's python has llama_cpp.
        done = fleet.saf("run", "models", "--on", "alpha", "--var", "engine=auto",
                         "--var", f"model={model}", "--var", f"port={port}")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "llama-cpp-python ready" in done.stdout
        record = json.loads((records / f"{port}.json").read_text())
        words = fleet.python.split()
        assert record["argv"][:len(words) + 1] == [*words, "-m"]  # as saf wrote it, for reruns
        listed = fleet.saf("models", "--json")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert str(port) in listed.stdout
        assert "llama-cpp-python" in listed.stdout
        again = fleet.saf("run", "models", "--on", "alpha", "--var", "engine=llama-cpp-python",
                          "--var", f"model={model}", "--var", f"port={port}")
        assert again.returncode == 0, again.stdout
        assert "skipped" in again.stdout, again.stdout
    finally:
        for path in records.glob("*.json"):
            try:
                os.killpg(json.loads(path.read_text())["pid"], signal.SIGKILL)
            except (OSError, ValueError, KeyError):
                pass
