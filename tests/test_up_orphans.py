"""Services saf up installed that saf.toml no longer declares, end to end on two loopback
nodes (real SSH servers, real services under saf's supervisor): `saf status` lists them as
`not declared`, `saf up --check` names them (exit 2), `saf up --prune` stops and removes
them (no process left), and a service a plain `saf run` installed is never touched. `saf
down` removes them too, and goes on for the nodes that answer when one does not (exit 3,
naming the lost node and what is left there).

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
from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory
from tests.helpers.waiting import until
from tests.test_up import BEAT, Up

NAMES = ["alpha", "beta"]


def _declared(root: Path, marker: str, services: list[str]) -> dict:
    return {"services": [{"name": s, "on": "all", "restart": "always",
                          "command": f"{sys.executable} {root}/beat.py {marker} {s}"}
                         for s in services]}


def _write(up: Up, base: str, services: list[str]) -> None:
    up.inventory.write_text(base + "\n" + tomli_w.dumps(_declared(up.root, up.marker,
                                                                 services)))


@pytest.fixture
def orphans(tmp_path: Path) -> Iterator[tuple[Up, AsyncsshServers, str]]:
    (tmp_path / "facts").mkdir()  # no init system saf may use: saf's supervisor runs it
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, NAMES,
                              env={"SAF_FACTS_ROOT": str(tmp_path / "facts")})
    marker = f"saf-orphans-{uuid.uuid4().hex[:12]}"
    (tmp_path / "beat.py").write_text(BEAT)
    inventory = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": n, "host": "127.0.0.1", "port": servers.port(n)} for n in NAMES])
    base = inventory.read_text()
    env = {**os.environ, "SAF_INVENTORY": str(inventory),
           "SAF_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1", "COLUMNS": "200"}
    made = Up(tmp_path, inventory, {n: servers.home(n) for n in NAMES}, marker, 0, 0, env, [])
    _write(made, base, ["beat", "tock"])
    # A service installed by a plain `saf run`: saf up never owns it.
    (tmp_path / "hand.toml").write_text(
        'name = "hand"\n\n[[steps]]\nkind = "service"\nservice = "hand"\n'
        f'command = "{sys.executable} {tmp_path}/beat.py {marker} hand"\n'
        'restart = "always"\nsettle = 0.5\n')
    try:
        yield made, servers, base
    finally:
        for server in servers.servers.values():  # a node stopped by the test answers again
            if server._server is None:
                with contextlib.suppress(Exception):
                    servers.loop.call(server.start())
        with contextlib.suppress(Exception):
            _write(made, base, ["beat", "tock"])
            made.saf("down", "--wait", "2", timeout=120)
        procs.kill_tree(made.ours())
        servers.stop()


def _procs(up: Up, node: str, service: str) -> list[psutil.Process]:
    """The live processes `service`'s folder on `node` records (its supervisor and its
    program), each checked to be this test's."""
    folder = up.homes[node] / ".saf" / "services" / service
    pids = []
    with contextlib.suppress(OSError, ValueError):
        pids.append(int((folder / "supervisor.pid").read_text()))
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        pids.append(int(json.loads((folder / "state.json").read_text())["pid"]))
    up.recorded()  # every recorded process is seen, so the finalizer stops it
    return [p for p in map(up._ours, pids) if p is not None]


def _running(up: Up, node: str, service: str) -> bool:
    """Installed on `node`, and its program runs there."""
    return any(f"{up.marker} {service}" in procs.cmdline(p) for p in _procs(up, node, service))


def _status(up: Up) -> tuple[int, dict]:
    out = up.saf("status", "--json")
    return out.returncode, json.loads(next(line for line in out.stdout.splitlines()
                                           if line.startswith("{")))


def test_up_prune_removes_what_saf_toml_no_longer_declares(
        orphans: tuple[Up, AsyncsshServers, str]) -> None:
    up, _, base = orphans
    hand = up.saf("run", str(up.root / "hand.toml"), "--on", "alpha")
    assert hand.returncode == 0, hand.stdout + hand.stderr
    first = up.saf("up")
    assert first.returncode == 0, first.stdout + first.stderr
    for node in NAMES:
        for service in ("beat", "tock"):
            assert until(lambda n=node, s=service: _running(up, n, s)), (node, service)
    assert _running(up, "alpha", "hand")
    tock = {n: _procs(up, n, "tock") for n in NAMES}
    assert all(len(ps) == 2 for ps in tock.values()), tock

    _write(up, base, ["beat"])  # tock taken out of saf.toml

    code, status = _status(up)
    assert code == 1
    rows = sorted((s["service"], s["node"], s["verdict"]) for s in status["services"])
    assert rows == [("beat", "alpha", "as declared"), ("beat", "beta", "as declared"),
                    ("tock", "alpha", "not declared"), ("tock", "beta", "not declared")] or \
        rows == [("beat", "alpha", "not kept across reboots"),
                 ("beat", "beta", "not kept across reboots"),
                 ("tock", "alpha", "not declared"), ("tock", "beta", "not declared")], rows
    shown = up.saf("status")
    assert re.search(r"tock\s+alpha\s.*not declared", shown.stdout), shown.stdout

    check = up.saf("up", "--check")
    assert check.returncode == 2, check.stdout + check.stderr
    for node in NAMES:
        assert re.search(rf"^\s+{node}\s+service tock: not declared \(saf up --prune removes "
                         r"it\)$", check.stdout, re.M), check.stdout
    assert "hand" not in check.stdout

    plain = up.saf("up")  # without --prune it is named and left alone
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "service tock: not declared" in plain.stdout
    assert all(_running(up, n, "tock") for n in NAMES)

    pruned = up.saf("up", "--prune")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert re.search(r"tock \(not declared\)", pruned.stdout), pruned.stdout
    for node in NAMES:
        assert not (up.homes[node] / ".saf" / "services" / "tock").exists()
        assert _running(up, node, "beat")
    gone = [p for ps in tock.values() for p in ps]
    assert until(lambda: not [p for p in gone if procs.alive(p)]), procs.describe(gone)
    assert not [p for p in up.recorded() if f"{up.marker} tock" in procs.cmdline(p)]
    assert _running(up, "alpha", "hand")  # saf run's service: never touched

    quiet = up.saf("up", "--check")
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "not declared" not in quiet.stdout
    code, status = _status(up)
    assert code == 0, status
    assert {s["service"] for s in status["services"]} == {"beat"}


def test_down_removes_them_and_goes_on_when_a_node_is_lost(
        orphans: tuple[Up, AsyncsshServers, str]) -> None:
    up, servers, base = orphans
    hand = up.saf("run", str(up.root / "hand.toml"), "--on", "alpha")
    assert hand.returncode == 0, hand.stdout + hand.stderr
    first = up.saf("up")
    assert first.returncode == 0, first.stdout + first.stderr
    for service in ("beat", "tock"):
        assert until(lambda s=service: _running(up, "alpha", s)), service
    _write(up, base, ["beat"])  # tock taken out of saf.toml
    servers.loop.call(servers.servers["beta"].stop())  # beta does not answer

    down = up.saf("down", "--wait", "1")
    assert down.returncode == 3, down.stdout + down.stderr
    assert re.search(r"^beta: does not answer \(.*\): lost$", down.stdout, re.M), down.stdout
    assert re.search(r"not reachable, left there: service beat$", down.stdout, re.M), \
        down.stdout
    for service in ("beat", "tock"):  # alpha, which answers, was taken down whole
        assert not (up.homes["alpha"] / ".saf" / "services" / service).exists(), service
    assert _running(up, "alpha", "hand")  # saf run's service: never touched
    assert _running(up, "beta", "beat")  # left there: nothing could reach it

    servers.loop.call(servers.servers["beta"].start())
    again = up.saf("down", "--wait", "30")
    assert again.returncode == 0, again.stdout + again.stderr
    for service in ("beat", "tock"):
        assert not (up.homes["beta"] / ".saf" / "services" / service).exists(), service
    hand_procs = {p.pid for p in _procs(up, "alpha", "hand")}
    assert len(hand_procs) == 2  # saf run's service: never touched
    assert until(lambda: not [p for p in up.ours() if p.pid not in hand_procs]), \
        procs.describe(up.ours())
