"""A node lost under `saf up`, end to end on three loopback nodes (real SSH servers, a real
service under saf's supervisor, a real llama.cpp server on the generated GGUF placed by
memory): the node where the placed model runs is powered off (its SSH server stopped, its
processes killed); `saf up --check` and `saf up` name it as lost and the parts pinned to it
as skipped, exit 3, and `saf up` serves the model's replica on another node; `saf status`
says where it runs and that it was re-placed. When the node comes back, the next `saf up`
keeps the replica where it was moved (docs/placement.md), stops what saf had left on the
node that came back, and repairs that node's own parts.

Processes are found only through the nodes' own records, each checked to be this test's."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import tomli_w

from tests.helpers import procs
from tests.helpers.servers import AsyncsshServers, ClientKeys, free_port, write_inventory
from tests.helpers.waiting import until
from tests.test_up import BEAT, PREPARE, Up, _answers_now, _server_pid

NAMES = ["alpha", "beta", "gamma"]


@pytest.fixture
def lost(tmp_path: Path) -> Iterator[tuple[Up, AsyncsshServers]]:
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    from tests.helpers.tiny_gguf import write_tiny_llama

    (tmp_path / "facts").mkdir()  # no init system saf may use: saf's supervisor runs it
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, NAMES,
                              env={"SAF_FACTS_ROOT": str(tmp_path / "facts")})
    marker = f"saf-lost-{uuid.uuid4().hex[:12]}"
    (tmp_path / "beat.py").write_text(BEAT)
    (tmp_path / "prepare.toml").write_text(PREPARE)
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    port = free_port()
    inventory = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": n, "host": "127.0.0.1", "port": servers.port(n)} for n in NAMES])
    declared = {
        "up": {"steps": [{"recipe": "prepare.toml"}]},
        "services": [{"name": "beat", "on": "all",
                      "command": f"{sys.executable} {tmp_path}/beat.py {marker}",
                      "restart": "always"}],
        "models": [{"name": "tiny", "engine": "llama-cpp-python", "model": str(model),
                    "placement": "auto", "port": port, "ctx_size": 256}],
    }
    with inventory.open("a") as f:
        f.write("\n" + tomli_w.dumps(declared))
    env = {**os.environ, "SAF_INVENTORY": str(inventory),
           "SAF_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1", "COLUMNS": "200"}
    made = Up(tmp_path, inventory, {n: servers.home(n) for n in NAMES}, marker, port, port,
              env, [])
    try:
        yield made, servers
    finally:
        for server in servers.servers.values():  # a node stopped by the test answers again
            if server._server is None:
                with contextlib.suppress(Exception):
                    servers.loop.call(server.start())
        with contextlib.suppress(Exception):
            made.saf("down", "--wait", "2", timeout=120)
        procs.kill_tree(made.ours())
        servers.stop()


def _power_off(up: Up, servers: AsyncsshServers, node: str) -> None:
    """The node goes away: its SSH server stops and every process saf left there dies."""
    mine = [p for p in up.recorded() if str(up.homes[node]) in procs.cmdline(p)
            or _recorded_on(up, node, p.pid)]
    servers.loop.call(servers.servers[node].stop())
    for proc in mine:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    assert until(lambda: not [p for p in mine if procs.alive(p)]), procs.describe(mine)


def _recorded_on(up: Up, node: str, pid: int) -> bool:
    home = up.homes[node]
    texts = [p.read_text() for p in (home / ".saf").rglob("*") if p.is_file()
             and (p.name in ("supervisor.pid", "state.json") or p.parent.name == "serve")]
    return any(re.search(rf"\b{pid}\b", t) for t in texts)


def _status(up: Up) -> dict:
    out = up.saf("status", "--json")
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))


def test_a_lost_node_s_replica_is_placed_elsewhere_and_kept_there(
        lost: tuple[Up, AsyncsshServers]) -> None:
    up, servers = lost
    first = up.saf("up")
    assert first.returncode == 0, first.stdout + first.stderr
    placed = up.serving(up.port)
    assert len(placed) == 1, first.stdout
    assert _answers_now(up.port)
    gone = placed[0]
    others = [n for n in NAMES if n != gone]

    _power_off(up, servers, gone)
    assert not _answers_now(up.port)

    check = up.saf("up", "--check", "--wait", "1")
    assert check.returncode == 3, check.stdout + check.stderr
    assert re.search(rf"^{gone}: does not answer \(.*\): lost$", check.stdout, re.M), check.stdout
    assert re.search(r"not reachable, skipped: \[up\] prepare, service beat$", check.stdout,
                     re.M), check.stdout
    assert re.search(rf"model tiny: replica would move from {gone} \(lost\) to "
                     rf"({'|'.join(others)})$", check.stdout, re.M), check.stdout
    assert not _answers_now(up.port)  # --check changed nothing

    again = up.saf("up", "--wait", "1")
    assert again.returncode == 3, again.stdout + again.stderr
    moved = re.search(rf"model tiny: replica moved from {gone} \(lost\) to (\w+)$",
                      again.stdout, re.M)
    assert moved, again.stdout
    assert moved.group(1) in others
    to = moved.group(1)
    assert _answers_now(up.port)
    pid = _server_pid(up, to, up.port)
    assert pid is not None
    assert psutil.pid_exists(pid)
    for node in others:  # the rest was not refused: the nodes that answer keep beating
        before = up.beats(node)
        assert until(lambda n=node, b=before: up.beats(n) > b + 2), node

    status = _status(up)
    assert not status["as_declared"]
    assert [(n["node"], n["verdict"]) for n in status["nodes"] if n["verdict"] != "as declared"
            ] == [(gone, "unreachable")]
    rows = [(m["node"], m["moved_from"], m["verdict"]) for m in status["models"]]
    assert rows == [(to, gone, "not kept across reboots")], status["models"]
    shown = up.saf("status")
    assert re.search(rf"tiny\s+{to}\s.*re-placed from {gone} \(lost\)", shown.stdout), \
        shown.stdout

    # The node comes back: the replica stays where it was moved; what saf left on the node
    # that came back (the model's service record) is stopped; its own parts are repaired.
    servers.loop.call(servers.servers[gone].start())
    back = up.saf("up", "--wait", "30")
    assert back.returncode == 0, back.stdout + back.stderr
    assert re.search(rf"{gone}\s+model tiny surplus: would", back.stdout), back.stdout
    assert up.serving(up.port) == [to]
    assert _server_pid(up, to, up.port) == pid  # not restarted, not moved back
    assert _answers_now(up.port)
    before = up.beats(gone)
    assert until(lambda: up.beats(gone) > before + 2)

    quiet = up.saf("up", "--check")
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    status = _status(up)
    assert status["as_declared"], status
    assert [(m["node"], m["moved_from"]) for m in status["models"]] == [(to, gone)]
