"""A placed model (`placement = "auto"`) brought up and taken down alone from its "(placed)"
row (saf.up.part, the Cluster screen's `u` / `d`), for real on two loopback nodes (saf's own
SSH servers, no init system: the server is kept by saf's supervisor; llama.cpp on the
generated GGUF): the run keeps the record of where the replicas were placed
(saf.up.replicas) as `saf up` does, leaving the other models' entries as they were.

Processes are stopped by the pids the nodes' records name, each checked to be this test's.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import tomli_w

from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.up import replicas
from saf.up.part import bring_part
from saf.up.status import PLACED_ROW
from tests.helpers import procs
from tests.helpers.servers import AsyncsshServers, ClientKeys, free_port, write_inventory

NAMES = ("alpha", "beta")


@dataclass
class Placed:
    root: Path
    inventory: Path
    homes: dict[str, Path]
    port: int

    def serving(self) -> list[str]:
        """The nodes whose records say they serve on the model's port."""
        return [n for n, home in self.homes.items()
                if (home / ".saf" / "serve" / f"{self.port}.json").exists()]

    def ours(self) -> list[psutil.Process]:
        pids: list[int] = []
        for home in self.homes.values():
            for folder in (home / ".saf" / "services").glob("*"):
                with contextlib.suppress(OSError, ValueError):
                    pids.append(int((folder / "supervisor.pid").read_text()))
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    pids.append(int(json.loads((folder / "state.json").read_text())["pid"]))
            for record in (home / ".saf" / "serve").glob("*.json"):
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    pids.append(int(json.loads(record.read_text())["pid"]))
        found = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if str(self.root) in procs.cmdline(proc):  # this test's (its folder)
                    found.append(proc)
        return found


@pytest.fixture
def placed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Placed]:
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    from tests.helpers.tiny_gguf import write_tiny_llama

    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "facts").mkdir()  # no init system saf may use: saf's supervisor keeps it
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, list(NAMES),
                              env={"SAF_FACTS_ROOT": str(tmp_path / "facts")})
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    port = free_port()
    inventory = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": n, "host": "127.0.0.1", "port": servers.port(n)} for n in NAMES])
    with inventory.open("a") as f:
        f.write("\n" + tomli_w.dumps({"models": [
            {"name": "tiny", "engine": "llama-cpp-python", "model": str(model),
             "placement": "auto", "port": port, "ctx_size": 256},
            {"name": "spare", "engine": "llama-cpp-python", "model": str(model),
             "placement": "auto", "port": free_port(), "ctx_size": 256}]}))
    made = Placed(tmp_path, inventory, {n: servers.home(n) for n in NAMES}, port)
    seen: list[psutil.Process] = []
    try:
        yield made
    finally:
        seen.extend(made.ours())
        procs.kill_tree([p for p in seen + made.ours() if procs.alive(p)])
        servers.stop()


async def test_a_placed_model_brought_up_alone_keeps_its_placement(placed: Placed) -> None:
    """Brought up from its "(placed)" row, the model ran where saf placed it, but the record
    of where was not saved (only `saf up` saved it): the next `saf up` and `saf status` did
    not know the node of the last placement."""
    cluster = load_inventory(placed.inventory).cluster.name
    # Another model's placement, from an earlier `saf up`: a part's run leaves it as it was.
    replicas.save(cluster, {"spare": [replicas.Replica("beta")]})
    seen: list[object] = []
    async with Fleet(load_inventory(placed.inventory)) as fleet:
        assert await bring_part(fleet, "up", "model", PLACED_ROW, "tiny", seen.append) == "ok"
        where = placed.serving()
        assert len(where) == 1, where
        assert replicas.load(cluster) == {"tiny": [replicas.Replica(where[0])],
                                          "spare": [replicas.Replica("beta")]}

        assert await bring_part(fleet, "down", "model", PLACED_ROW, "tiny", seen.append) \
            == "ok"
        assert placed.serving() == []
        # Nothing of it runs: its next placement starts from nothing, as after `saf down`.
        assert replicas.load(cluster) == {"spare": [replicas.Replica("beta")]}
