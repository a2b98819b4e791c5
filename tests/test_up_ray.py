"""`saf up` with [ray] on three loopback nodes: a real `ray start` for the head and two
workers (the declared resources on beta), a service started after Ray; the second `up` does
nothing; `saf down` stops the service and Ray and leaves no Ray process of this test's temp
folder; a second `down` is all skipped. Separate from tests/test_up.py: Ray costs 10-60 s."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import tomli_w

from tests.helpers import procs
from tests.helpers.ray import free_ray_port, ray_processes, stop_ray
from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory

SLEEP = "import time; time.sleep(3600)"
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class RayUp:
    root: Path
    temp_dir: Path
    env: dict[str, str]
    marker: str
    home: Path  # alpha's, where the service runs
    servers: AsyncsshServers

    def service(self) -> list[psutil.Process]:
        """The service's supervisor and program, found through the pids alpha keeps for it,
        each checked to carry the test's marker (the supervisor: alpha's home)."""
        folder = self.home / ".saf" / "services" / "idle"
        pids = []
        with contextlib.suppress(OSError, ValueError):
            pids.append(int((folder / "supervisor.pid").read_text()))
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            pids.append(int(json.loads((folder / "state.json").read_text())["pid"]))
        found = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                line = procs.cmdline(proc)
                if procs.alive(proc) and (self.marker in line or str(self.home) in line):
                    found.append(proc)
        return found

    def supervisors(self) -> list[psutil.Process]:
        """Every service supervisor still running in the nodes' homes: a kept Ray's too (the
        test that drops [ray] leaves gamma's unmarked one installed, as saf up must)."""
        found = []
        for pid_file in self.root.glob("homes/*/.saf/services/*/supervisor.pid"):
            with contextlib.suppress(OSError, ValueError, psutil.Error):
                proc = psutil.Process(int(pid_file.read_text()))
                if procs.alive(proc) and str(self.root) in procs.cmdline(proc):
                    found.append(proc)
        return found

    def saf(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "saf", *args], env=self.env,
                              capture_output=True, text=True, timeout=400)


@pytest.fixture
def ray_up(tmp_path: Path) -> Iterator[RayUp]:
    (tmp_path / "facts").mkdir()
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["alpha", "beta", "gamma"],
                              env={"PATH": NODE_PATH, "SAF_FACTS_ROOT": str(tmp_path / "facts")})
    temp_dir = Path(f"/tmp/saf-up-ray-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    port = free_ray_port()
    marker = f"saf-up-ray-{uuid.uuid4().hex[:12]}"
    inventory = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": n, "host": "127.0.0.1", "port": servers.port(n),
         "roles": ["head"] if n == "alpha" else []}  # `saf ray status` reads the role alone
        for n in ("alpha", "beta", "gamma")])
    with inventory.open("a") as f:
        f.write("\n" + tomli_w.dumps({
            "ray": {"head": "alpha", "port": port, "dashboard_port": port + 99,
                    "temp_dir": str(temp_dir), "resources": {"beta": {"Apple": 1}}},
            "services": [{"name": "idle", "on": "alpha", "after": ["ray"],
                          "command": f"{sys.executable} -c {SLEEP!r} {marker}"}]}))
    env = {**os.environ, "SAF_INVENTORY": str(inventory), "RAY_USAGE_STATS_ENABLED": "0",
           "SAF_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1", "COLUMNS": "200"}
    made = RayUp(tmp_path, temp_dir, env, marker, servers.home("alpha"), servers)
    try:
        yield made
    finally:
        for server in servers.servers.values():  # a node stopped by a test answers again
            if server._server is None:
                with contextlib.suppress(Exception):
                    servers.loop.call(server.start())
        stop_ray(temp_dir)
        procs.kill_tree(made.service() + made.supervisors())
        servers.stop()
        left = ray_processes(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"Ray processes left: {left}"


def test_up_starts_ray_then_the_service_and_down_leaves_nothing(ray_up: RayUp) -> None:
    first = ray_up.saf("up")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 nodes ALIVE" in first.stdout, first.stdout
    # Ray before the service that comes after it.
    assert first.stdout.index("▶ 1/2 ray") < first.stdout.index("▶ 2/2 idle"), first.stdout
    status = ray_up.saf("ray", "status", "--json", "--temp-dir", str(ray_up.temp_dir))
    assert status.returncode == 0, status.stderr
    nodes = {n["name"]: n for n in json.loads(status.stdout)["nodes"]}
    assert all(n["alive"] for n in nodes.values())
    assert nodes["alpha"]["head"]
    assert nodes["beta"]["resources"].get("Apple") == 1
    running = ray_up.service()
    assert len(running) == 2, procs.describe(running)

    second = ray_up.saf("up")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing to do: 3 nodes, ray, 1 service as declared" in second.stdout

    down = ray_up.saf("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert down.stdout.index("▶ 1/2 idle") < down.stdout.index("▶ 2/2 ray"), down.stdout
    assert ray_processes(ray_up.temp_dir) == []
    assert not [p for p in running if procs.alive(p)], procs.describe(running)
    assert ray_up.service() == []
    again = ray_up.saf("down")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "changed" not in again.stdout, again.stdout


def test_a_lost_head_skips_the_workers_ray_with_the_reason(ray_up: RayUp) -> None:
    """The head's node does not answer: the workers' Ray is not started (it cannot join a
    head that is not there), said once; the run goes on and exits 3 (lost), not 1."""
    ray_up.servers.loop.call(ray_up.servers.servers["alpha"].stop())
    check = ray_up.saf("up", "--check", "--wait", "1")
    assert check.returncode == 3, check.stdout + check.stderr
    assert "ray: not started on the workers: its head alpha is lost" in check.stdout
    assert "not in this run" not in check.stdout
    up = ray_up.saf("up", "--wait", "1")
    assert up.returncode == 3, up.stdout + up.stderr
    assert "ray: not started on the workers: its head alpha is lost" in up.stdout
    assert "failed" not in up.stdout, up.stdout
    assert not ray_processes(ray_up.temp_dir)


def test_a_kept_ray_is_marked_and_not_declared_once_ray_is_dropped(ray_up: RayUp) -> None:
    """[ray] persist = true: each node's service (`ray-NODE`: the nodes share this machine)
    carries saf up's mark, as a declared service does, so once saf.toml drops [ray] it is
    `not declared` (saf status, saf up --check) and `saf up --prune` removes it. It was
    written unmarked: dropped from saf.toml, Ray kept running unnoticed. A unit an older saf
    up wrote unmarked is not restarted for the mark, and is never removed."""
    inventory = Path(ray_up.env["SAF_INVENTORY"])
    text = inventory.read_text()
    inventory.write_text(text.replace("[ray]\n", "[ray]\npersist = true\n"))
    first = ray_up.saf("up")
    assert first.returncode == 0, first.stdout + first.stderr
    homes = {n: ray_up.servers.home(n) for n in ("alpha", "beta", "gamma")}

    def spec(node: str) -> Path:
        return homes[node] / ".saf" / "services" / f"ray-{node}" / "spec.json"
    assert {n: json.loads(spec(n).read_text()).get("up") for n in homes} == dict.fromkeys(
        homes, "test")

    # As an older saf up wrote gamma's: without the mark. Nothing to do, nothing restarted.
    old = json.loads(spec("gamma").read_text())
    del old["up"]
    spec("gamma").write_text(json.dumps(old, sort_keys=True) + "\n")
    state = homes["gamma"] / ".saf" / "services" / "ray-gamma" / "state.json"
    pid = json.loads(state.read_text())["pid"]
    again = ray_up.saf("up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to do" in again.stdout, again.stdout
    assert json.loads(state.read_text())["pid"] == pid
    assert "up" not in json.loads(spec("gamma").read_text())

    # saf.toml drops [ray] (and the service's `after`).
    inventory.write_text(text.split("\n[ray]")[0] + "\n" + tomli_w.dumps({"services": [
        {"name": "idle", "on": "alpha",
         "command": f"{sys.executable} -c {SLEEP!r} {ray_up.marker}"}]}))
    status = ray_up.saf("status", "--json")
    left = {(r["service"], r["node"]): r["verdict"] for r in json.loads(status.stdout)["services"]
            if r["service"] != "idle"}
    assert left == {("ray-alpha", "alpha"): "not declared", ("ray-beta", "beta"): "not declared"}
    check = ray_up.saf("up", "--check")
    assert check.returncode == 2, check.stdout + check.stderr
    assert "ray-alpha" in check.stdout
    assert "ray-gamma" not in check.stdout
    pruned = ray_up.saf("up", "--prune")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert not spec("alpha").exists()
    assert not spec("beta").exists()
    assert spec("gamma").exists()  # unmarked: not saf up's to remove
