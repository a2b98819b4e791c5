"""`saf up`, `saf up --check` and `saf down` end to end on three loopback nodes (real SSH
servers, a recipe file in [up], a real service under saf's supervisor, a real llama.cpp
server on the generated GGUF): the first `up` brings everything, the second does nothing,
`--check` exits 0, a service killed by hand is drift (`--check` exits 2 naming it), `up`
repairs it, `down` leaves nothing, and the env_file's secret appears in no output.

Processes are found only in this test's own tree, by its unique marker or its node homes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
import tomli_w

from tests.helpers import procs
from tests.helpers.servers import AsyncsshServers, ClientKeys, free_port, write_inventory
from tests.helpers.waiting import until

NAMES = ["alpha", "beta", "gamma"]
TOKEN = "hf_PLANTED" + uuid.uuid4().hex[:16]
# A recipe that changes a node once (its marker), then is `skipped`.
PREPARE = """name = "prepare"
description = "leave a marker"
[vars]
marker = { default = ".saf/prepared", description = "the marker" }
[[steps]]
name = "leave a marker"
creates = "~/{marker}"
run = 'mkdir -p "$HOME"/.saf && date > "$HOME"/{marker}'
"""
BEAT = """import os, sys, time
path = os.path.expanduser("~/heartbeat")
while True:
    with open(path, "a") as f:
        f.write("%d %s %f\\n" % (os.getpid(), "HF_TOKEN" in os.environ, time.time()))
    time.sleep(0.2)
"""


@dataclass
class Up:
    root: Path
    inventory: Path
    homes: dict[str, Path]
    marker: str
    port: int
    placed_port: int
    env: dict[str, str]
    outputs: list[str]
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def saf(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "saf", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        self.outputs.append(done.stdout + done.stderr)
        return done

    def recorded(self) -> list[psutil.Process]:
        """The live processes the nodes' own records name (the supervisors' pid files and
        state, the model servers' ~/.saf/serve/PORT.json), each checked to be this test's
        (its command line names the test's marker or folder)."""
        pids: list[int] = []
        for home in self.homes.values():
            for folder in (home / ".saf" / "services").glob("*"):
                with contextlib.suppress(OSError, ValueError):
                    pids.append(int((folder / "supervisor.pid").read_text()))
                with contextlib.suppress(OSError, ValueError):
                    pids.append(int(json.loads((folder / "state.json").read_text())["pid"]))
            for record in (home / ".saf" / "serve").glob("*.json"):
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    pids.append(int(json.loads(record.read_text())["pid"]))
        found = list({p.pid: p for p in map(self._ours, pids) if p is not None}.values())
        self.seen.update({p.pid: p for p in found})
        return found

    def _ours(self, pid: int) -> psutil.Process | None:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            line = procs.cmdline(proc)
            if procs.alive(proc) and (self.marker in line or str(self.root) in line):
                return proc
        return None

    def ours(self) -> list[psutil.Process]:
        """Every process of this test seen so far (by the records) still alive."""
        self.recorded()
        return [p for p in self.seen.values() if procs.alive(p)]

    def serving(self, port: int) -> list[str]:
        """The nodes whose records say they serve on `port`."""
        return [n for n, home in self.homes.items()
                if (home / ".saf" / "serve" / f"{port}.json").exists()]

    def beats(self, node: str) -> int:
        path = self.homes[node] / "heartbeat"
        return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    from tests.helpers.tiny_gguf import write_tiny_llama

    (tmp_path / "facts").mkdir()  # no init system saf may use: saf's supervisor runs it
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, NAMES,
                              env={"SAF_FACTS_ROOT": str(tmp_path / "facts")})
    marker = f"saf-up-{uuid.uuid4().hex[:12]}"
    (tmp_path / "beat.py").write_text(BEAT)
    (tmp_path / "prepare.toml").write_text(PREPARE)
    (tmp_path / "secrets.env").write_text(f"HF_TOKEN={TOKEN}\n")
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    port = free_port()
    placed_port = free_port()
    inventory = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": n, "host": "127.0.0.1", "port": servers.port(n)} for n in NAMES])
    declared = {
        "up": {"steps": [{"recipe": "prepare.toml", "vars": {"marker": ".saf/prepared"}}]},
        "services": [{"name": "beat", "on": "alpha,beta",
                      "command": f"{sys.executable} {tmp_path}/beat.py {marker}",
                      "env": {"MODE": "test"}, "env_file": "secrets.env",
                      "restart": "always", "check": "test -s ~/heartbeat"}],
        "models": [{"name": "tiny", "engine": "llama-cpp-python", "model": str(model),
                    "on": "gamma", "port": port, "ctx_size": 256,
                    "env": {"MODE": "model"}, "env_file": "secrets.env"},
                   # Placed by the memory the agents report free (every node fits it here).
                   {"name": "placed", "engine": "llama-cpp-python", "model": str(model),
                    "placement": "auto", "port": placed_port, "ctx_size": 256}],
    }
    with inventory.open("a") as f:
        f.write("\n" + tomli_w.dumps(declared))
    env = {**os.environ, "SAF_INVENTORY": str(inventory),
           "SAF_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1", "COLUMNS": "160"}
    made = Up(tmp_path, inventory, {n: servers.home(n) for n in NAMES}, marker, port, placed_port,
               env, [])
    try:
        yield made
    finally:
        with contextlib.suppress(Exception):
            made.saf("down", "--wait", "2", timeout=120)
        procs.kill_tree(made.ours())
        servers.stop()




def _server_pid(up: Up, node: str, port: int) -> int | None:
    """The pid the node's record of `port` names (None: no record)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        path = up.homes[node] / ".saf" / "serve" / f"{port}.json"
        return int(json.loads(path.read_text())["pid"])
    return None


def _answers_now(port: int) -> bool:
    try:
        return isinstance(_answers(port), str)
    except httpx.HTTPError:
        return False


def _answers(port: int) -> str:
    reply = httpx.post(f"http://127.0.0.1:{port}/v1/completions",
                       json={"prompt": "hello", "max_tokens": 4}, timeout=60)
    reply.raise_for_status()
    return reply.json()["choices"][0]["text"]


def test_up_check_drift_repair_down(up: Up) -> None:
    first = up.saf("up")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "plan:" in first.stdout
    for node in ("alpha", "beta"):
        before = up.beats(node)
        assert until(lambda n=node, b=before: up.beats(n) > b + 2), f"{node} does not beat"
    assert "True" in (up.homes["alpha"] / "heartbeat").read_text().split("\n")[0]
    assert up.beats("gamma") == 0  # not on gamma
    assert (up.homes["beta"] / ".saf" / "prepared").exists()
    assert isinstance(_answers(up.port), str)
    # The model's env reaches its server: the secret through its 0600 file, not argv.
    record = json.loads((up.homes["gamma"] / ".saf" / "serve" / f"{up.port}.json").read_text())
    server = psutil.Process(int(record["pid"]))
    assert server.environ().get("MODE") == "model"
    assert server.environ().get("HF_TOKEN") == TOKEN
    assert TOKEN not in " ".join(server.cmdline())
    secret_file = up.homes["gamma"] / ".saf" / "env" / "models" / "tiny.env"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert isinstance(_answers(up.placed_port), str)
    placed_on = up.serving(up.placed_port)
    assert len(placed_on) == 1
    # The models are kept as services model-NAME (saf's supervisor here), as `beat` is.
    for node, port, name in (("gamma", up.port, "tiny"), (placed_on[0], up.placed_port,
                                                           "placed")):
        kept = json.loads((up.homes[node] / ".saf" / "serve" / f"{port}.json").read_text())
        assert (kept.get("kept") or {}).get("service") == f"model-{name}", kept
    # Four supervisors, their four programs (two beats, two model servers): by the records.
    assert len(up.recorded()) == 8, procs.describe(up.recorded())

    second = up.saf("up")
    assert second.returncode == 0, second.stdout + second.stderr
    assert re.search(r"nothing to do: 3 nodes, 1 \[up\] recipe, 1 service, 2 models as "
                     r"declared", second.stdout), second.stdout
    check = up.saf("up", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert up.serving(up.placed_port) == placed_on  # not moved by a second up

    # Drift by hand: kill -9 the service's supervisor and its program on beta.
    folder = up.homes["beta"] / ".saf" / "services" / "beat"
    pids = [int((folder / "supervisor.pid").read_text())]
    pids += [p.pid for p in procs.tree(pids[0])[1:]]
    for pid in pids:
        psutil.Process(pid).kill()
    assert until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() !=
                                 psutil.STATUS_ZOMBIE for p in pids))
    drift = up.saf("up", "--check")
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert re.search(r"beta\s+beat: would change", drift.stdout), drift.stdout
    assert "alpha  beat" not in drift.stdout
    # --on: only alpha's parts are looked at, and alpha is as declared.
    only = up.saf("up", "--check", "--on", "alpha")
    assert only.returncode == 0, only.stdout + only.stderr
    assert "nothing to do: 1 node," in only.stdout, only.stdout

    repair = up.saf("up")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    before = up.beats("beta")
    assert until(lambda: up.beats("beta") > before + 2)
    assert up.saf("up", "--check").returncode == 0

    # A model server killed by hand is started again by its keeper.
    server.kill()
    assert until(lambda: not procs.alive(server))
    assert until(lambda: _answers_now(up.port), 120)
    listed = up.saf("models", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    now = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
    again_pid = [e["pid"] for e in now if e["node"] == "gamma" and e["port"] == up.port]
    assert again_pid, listed.stdout
    assert again_pid[0] not in (None, server.pid)  # a new process, found through the record

    # Another server on the placed model's port, on a node it was not placed on (at another
    # address of this one machine): `saf down` leaves it alone.
    other = next(n for n in NAMES if n not in placed_on)
    copy = up.root / "other.gguf"
    copy.write_bytes((up.root / "tiny.gguf").read_bytes())
    decoy = up.saf("run", "models", "--on", other, "--var", "engine=llama-cpp-python",
                   "--var", f"model={copy}", "--var", f"port={up.placed_port}",
                   "--var", "host=127.0.0.2", "--var", "args=--n_ctx 256")
    assert decoy.returncode == 0, decoy.stdout + decoy.stderr
    decoy_pid = _server_pid(up, other, up.placed_port)
    assert decoy_pid is not None
    up.recorded()  # seen, so the finalizer stops it

    down = up.saf("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert until(lambda: not [p for p in up.ours() if p.pid != decoy_pid], 15), \
        procs.describe(up.ours())
    assert _server_pid(up, other, up.placed_port) == decoy_pid
    assert psutil.pid_exists(decoy_pid)
    assert len(up.seen) >= 8
    for node in ("alpha", "beta"):  # the secrets left with the service
        assert not (up.homes[node] / ".saf" / "env" / "beat.env").exists()
    assert not secret_file.exists()  # and the model's with the model
    for port in (up.port, up.placed_port):
        with pytest.raises(httpx.HTTPError):
            _answers(port)
    again = up.saf("down")
    assert again.returncode == 0, again.stdout + again.stderr
    assert not re.search(r"\bchanged\b", again.stdout), again.stdout

    for text in up.outputs:
        assert TOKEN not in text
    for log in (up.root / "state").rglob("*"):
        if log.is_file():
            assert TOKEN not in log.read_text(errors="replace"), log


def test_a_failure_names_node_part_and_evidence_and_resume_goes_on(up: Up) -> None:
    good = up.inventory.read_text()
    broken = good.replace(f"{sys.executable} {up.root}/beat.py {up.marker}",
                          f"/bin/sh -c 'echo boom-{up.marker}; exit 3'")
    broken = broken.replace('restart = "always"', 'restart = "no"')
    up.inventory.write_text(broken)
    failed = up.saf("up")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert re.search(r"^alpha: beat failed: ", failed.stdout, re.M), failed.stdout
    assert f"boom-{up.marker}" in failed.stdout  # the service's own log, as evidence
    run = re.search(r"saf run --resume (\S+?)`", failed.stdout)
    assert run, failed.stdout
    assert not up.beats("alpha")

    up.inventory.write_text(good)
    resumed = up.saf("run", "--resume", run.group(1))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # Done before the failure: not run again.
    assert not re.search(r"▶ \d+/\d+ prepare", resumed.stdout), resumed.stdout
    assert re.search(r"▶ \d+/\d+ beat ", resumed.stdout), resumed.stdout
    assert re.search(r"beat\s.*changed", resumed.stdout), resumed.stdout
    assert until(lambda: up.beats("alpha") > 2)
    assert up.saf("up", "--check").returncode == 0


def test_a_node_that_does_not_answer_is_named_and_skipped(up: Up) -> None:
    """A lost node is named with the parts pinned to it; the rest is planned, not refused
    (exit 3: the cluster is not whole). tests/test_up_lost.py brings it for real."""
    text = up.inventory.read_text()
    dead = free_port()  # nothing listens there
    up.inventory.write_text(re.sub(r'(name = "beta", host = "127.0.0.1", port = )\d+',
                                   rf"\g<1>{dead}", text))
    assert up.inventory.read_text() != text
    out = up.saf("up", "--check", "--wait", "1")
    assert out.returncode == 3, out.stdout + out.stderr
    assert re.search(r"^beta: does not answer \(.*\): lost$", out.stdout, re.M), out.stdout
    assert re.search(r"^    not reachable, skipped: \[up\] prepare, service beat$", out.stdout,
                     re.M), out.stdout
    assert "alpha: does not answer" not in out.stdout
    assert re.search(r"alpha\s+prepare", out.stdout), out.stdout  # planned on the others
    assert "beta  " not in out.stdout.split("plan:", 1)[1]
    assert not (up.homes["alpha"] / ".saf" / "prepared").exists()
