"""A model `saf up` serves detached (`persist = false`: no service keeps it, only its record
~/.saf/serve/PORT.json) follows the same rule as the services saf up installs: its record
carries the cluster's mark, so once saf.toml no longer declares it, it is `not declared`
(saf status, saf up --check) and `saf up --prune` stops it. A server a plain `saf run models`
started carries no mark and is left alone. For real on a loopback node (saf's own SSH
server, no init system) with llama.cpp on the generated GGUF.

Processes are found only through this test's own records and folder."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import tomli_w

from tests.helpers import procs
from tests.helpers.servers import AsyncsshServers, ClientKeys, free_port, write_inventory


@dataclass
class Node:
    root: Path
    inventory: Path
    home: Path
    model: Path
    env: dict[str, str]
    seen: list[psutil.Process]

    def saf(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "saf", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def record(self, port: int) -> dict | None:
        with contextlib.suppress(OSError, ValueError):
            return json.loads((self.home / ".saf" / "serve" / f"{port}.json").read_text())
        return None

    def server(self, port: int) -> psutil.Process | None:
        """The live process the record of `port` names, if it is this test's."""
        record = self.record(port)
        with contextlib.suppress(psutil.Error, TypeError, KeyError):
            proc = psutil.Process(record["pid"])  # type: ignore[index]
            if procs.alive(proc) and str(self.root) in procs.cmdline(proc):
                self.seen.append(proc)
                return proc
        return None

    def declare(self, models: list[dict]) -> None:
        base = self.inventory.read_text().split("\n[[services]]")[0]
        self.inventory.write_text(base + "\n" + tomli_w.dumps({
            "services": [{"name": "idle", "on": "alpha", "restart": "no",
                          "command": f"{sys.executable} -c 'import time; time.sleep(600)' "
                                     f"{self.root}"}],
            **({"models": models} if models else {})}))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    from tests.helpers.tiny_gguf import write_tiny_llama

    (tmp_path / "facts").mkdir()  # no init system saf may use: saf's supervisor keeps idle
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["alpha"],
                              env={"SAF_FACTS_ROOT": str(tmp_path / "facts")})
    inventory = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha")}])
    env = {**os.environ, "SAF_INVENTORY": str(inventory), "SAF_STATE_DIR": str(tmp_path / "st"),
           "SAF_CONFIG_DIR": str(tmp_path / "config"), "NO_COLOR": "1", "COLUMNS": "200"}
    made = Node(tmp_path, inventory, servers.home("alpha"),
                write_tiny_llama(tmp_path / "tiny.gguf"), env, [])
    try:
        yield made
    finally:
        with contextlib.suppress(Exception):
            made.saf("down", "--wait", "2", timeout=120)
        folder = made.home / ".saf" / "services" / "idle"
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            made.seen.append(psutil.Process(int((folder / "supervisor.pid").read_text())))
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, psutil.Error):
            made.seen.append(psutil.Process(
                int(json.loads((folder / "state.json").read_text())["pid"])))
        procs.kill_tree([p for p in made.seen if procs.alive(p)
                         and str(tmp_path) in procs.cmdline(p)])
        servers.stop()


def test_a_detached_model_dropped_from_saf_toml_is_not_declared_and_pruned(node: Node) -> None:
    """It was never looked for: a model taken out of saf.toml kept serving unnoticed."""
    port, plain = free_port(), free_port()
    node.declare([{"name": "tiny", "engine": "llama-cpp-python", "model": str(node.model),
                   "on": "alpha", "port": port, "ctx_size": 256, "persist": False}])
    up = node.saf("up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert (node.record(port) or {}).get("up") == {"cluster": "test", "model": "tiny"}
    served = node.server(port)
    assert served is not None
    started = node.saf("run", "models", "--on", "alpha", "--var", "engine=llama-cpp-python",
                       "--var", f"model={node.model}", "--var", f"port={plain}")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "up" not in (node.record(plain) or {"up": "no record"})
    assert node.server(plain) is not None

    node.declare([])  # saf.toml drops the model
    status = json.loads(node.saf("status", "--json").stdout)
    rows = [(m["model"], m["node"], m["port"], m["verdict"]) for m in status["models"]]
    assert rows == [("tiny", "alpha", port, "not declared")], status["models"]
    check = node.saf("up", "--check")
    assert check.returncode == 2, check.stdout + check.stderr
    assert (f"alpha  model tiny (port {port}, detached): not declared (saf up --prune "
            "removes it)") in check.stdout
    assert str(plain) not in check.stdout  # a plain `saf run`'s server: not saf up's

    pruned = node.saf("up", "--prune")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert node.record(port) is None
    assert not procs.alive(served)
    assert node.server(plain) is not None  # left alone
    after = json.loads(node.saf("status", "--json").stdout)
    assert after["models"] == [], after["models"]
    assert node.saf("models", "stop", f"alpha:{plain}").returncode == 0
