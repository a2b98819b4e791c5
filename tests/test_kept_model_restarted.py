"""A model `saf up` keeps under saf's own supervisor (a loopback node with no init system),
its server killed with kill -9 and started again by the supervisor: the node's record of the
server (~/.saf/serve/PORT.json) follows the live process, so `saf models`, `saf status` and
the Models screen show it, and `saf down` stops it.

Processes are found only by this test's own records and folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
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
from tests.helpers.waiting import until


@dataclass
class Node:
    root: Path
    home: Path
    port: int
    env: dict[str, str]

    def saf(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "saf", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    @property
    def folder(self) -> Path:
        return self.home / ".saf" / "services" / "model-tiny"

    def record_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            path = self.home / ".saf" / "serve" / f"{self.port}.json"
            return int(json.loads(path.read_text())["pid"])
        return None

    def supervised(self) -> tuple[int | None, int]:
        """The pid saf's supervisor runs now and how often it restarted it."""
        with contextlib.suppress(OSError, ValueError):
            state = json.loads((self.folder / "state.json").read_text())
            return state.get("pid"), int(state.get("restarts") or 0)
        return None, 0

    def ours(self) -> list[psutil.Process]:
        pids = [self.record_pid(), self.supervised()[0]]
        with contextlib.suppress(OSError, ValueError):
            pids.append(int((self.folder / "supervisor.pid").read_text()))
        found = []
        for pid in pids:
            with contextlib.suppress(psutil.Error, TypeError, ValueError):
                proc = psutil.Process(pid)  # type: ignore[arg-type]
                if str(self.root) in procs.cmdline(proc):  # this test's (its folder)
                    found.append(proc)
        return found


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    from tests.helpers.tiny_gguf import write_tiny_llama

    (tmp_path / "facts").mkdir()  # no init system saf may use: saf's supervisor keeps it
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["alpha"],
                              env={"SAF_FACTS_ROOT": str(tmp_path / "facts")})
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    port = free_port()
    inventory = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha")}])
    with inventory.open("a") as f:
        f.write("\n" + tomli_w.dumps({"models": [{
            "name": "tiny", "engine": "llama-cpp-python", "model": str(model), "on": "alpha",
            "port": port, "ctx_size": 256}]}))
    env = {**os.environ, "SAF_INVENTORY": str(inventory), "SAF_STATE_DIR": str(tmp_path / "st"),
           "SAF_CONFIG_DIR": str(tmp_path / "config"), "NO_COLOR": "1", "COLUMNS": "160"}
    made = Node(tmp_path, servers.home("alpha"), port, env)
    seen: list[psutil.Process] = []
    try:
        yield made
    finally:
        seen.extend(made.ours())
        with contextlib.suppress(Exception):
            made.saf("down", "--wait", "2", timeout=120)
        procs.kill_tree([p for p in seen + made.ours() if procs.alive(p)])
        servers.stop()


def test_the_record_follows_the_server_the_supervisor_restarted(node: Node) -> None:
    """The supervisor starts a killed server again with a new pid: `saf models` (the listing
    `saf status` and the Models screen read too) names the new pid and rewrites the record
    with it, and `saf down` stops the new server, not the dead pid."""
    done = node.saf("up", "--wait", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    first = node.record_pid()
    assert first is not None
    assert first == node.supervised()[0]
    second = kill_and_wait_restart(node, first)

    listed = node.saf("models", "--json")
    endpoint = json.loads(listed.stdout.splitlines()[0])
    assert (endpoint["pid"], endpoint["restarts"]) == (second, 1), listed.stdout
    assert node.record_pid() == second
    status = json.loads(node.saf("status", "--json").stdout)
    assert [(m["verdict"], m["answers"]) for m in status["models"]] == [
        ("not kept across reboots", True)], status["models"]

    third = kill_and_wait_restart(node, second, restarts=2)
    down = node.saf("down", "--wait", "1")
    assert down.returncode == 0, down.stdout + down.stderr
    assert until(lambda: not running(third), 30)
    assert node.record_pid() is None


def running(pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return procs.alive(psutil.Process(pid))
    return False


def kill_and_wait_restart(node: Node, pid: int | None, restarts: int = 1) -> int:
    """Kill `pid` (None: leave it) and wait until the supervisor has started the server
    `restarts` times in all; the new pid."""
    if pid is not None:
        os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        now, count = node.supervised()
        return count >= restarts and now is not None and now != pid and running(now)
    assert until(restarted, 60), node.supervised()
    now = node.supervised()[0]
    assert now is not None
    return now
