"""Ray kept (`ray-up` with persist = true) for real on a loopback node with no init system
saf may use (its facts root is an empty folder): saf's supervisor runs the node's `ray start
--block`; kill -9 the raylet and the supervisor starts Ray again and the node is ALIVE
again; a second ray-up is `skipped`; ray-down removes the service and leaves no Ray process.

One Ray head for the module (10-20 s to start). Processes are found only through the test's
own temp folder and the supervisor's files in the node's own home.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.helpers.ray import free_ray_port, ray_processes, stop_ray
from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory

NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Kept:
    inventory: Path
    temp_dir: Path
    home: Path
    port: int
    up: subprocess.CompletedProcess[str]

    @property
    def folder(self) -> Path:
        return self.home / ".saf" / "services" / "ray"

    def saf(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SAF_INVENTORY": str(self.inventory), "COLUMNS": "200",
               "RAY_USAGE_STATS_ENABLED": "0"}
        return subprocess.run([sys.executable, "-m", "saf", *args], env=env,
                              capture_output=True, text=True, timeout=timeout)

    def ray_vars(self) -> list[str]:
        values = {"port": str(self.port), "dashboard_port": str(self.port + 99),
                  "temp_dir": str(self.temp_dir), "persist": "true"}
        return [arg for k, v in values.items() for arg in ("--var", f"{k}={v}")]

    def state(self) -> dict:
        try:
            return json.loads((self.folder / "state.json").read_text())
        except (OSError, ValueError):
            return {}

    def ours(self, pid: int | None) -> psutil.Process | None:
        """`pid` if alive and this test's (`ray start --block` of its temp folder)."""
        with contextlib.suppress(psutil.Error, TypeError, ValueError):
            proc = psutil.Process(int(pid))  # type: ignore[arg-type]
            if proc.status() != psutil.STATUS_ZOMBIE and \
                    str(self.temp_dir) in " ".join(proc.cmdline()):
                return proc
        return None

    def supervisor(self) -> psutil.Process | None:
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            proc = psutil.Process(int((self.folder / "supervisor.pid").read_text()))
            if str(self.folder) in " ".join(proc.cmdline()):
                return proc
        return None

    def alive(self) -> bool:
        out = self.saf("ray", "status", "--json", "--temp-dir", str(self.temp_dir),
                       timeout=60)
        if out.returncode != 0:
            return False
        return any(n["name"] == "solo" and n["alive"] for n in json.loads(out.stdout)["nodes"])


def wait_for(what, within: float) -> object:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {within} s: {what.__doc__ or what}")


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kept]:
    root = tmp_path_factory.mktemp("raykept")
    keys = ClientKeys(root / "operator")
    (root / "facts").mkdir()  # no /run/systemd/system: no init system saf may use
    servers = AsyncsshServers(root, keys, ["solo"],
                              env={"PATH": NODE_PATH, "SAF_FACTS_ROOT": str(root / "facts")})
    temp_dir = Path(f"/tmp/saf-rk-{os.getpid()}")
    inventory = write_inventory(root / "saf.toml", keys, [
        {"name": "solo", "host": "127.0.0.1", "port": servers.port("solo"),
         "roles": ["head"]}], python=sys.executable)
    cluster = Kept(inventory, temp_dir, servers.home("solo"), free_ray_port(1),
                   None)  # type: ignore[arg-type]
    try:
        cluster.up = cluster.saf("run", "ray-up", *cluster.ray_vars())
        yield cluster
    finally:
        # The supervisor first (it would start Ray again), then every Ray process of ours.
        sup = cluster.supervisor()
        if sup is not None:
            with contextlib.suppress(psutil.Error):
                sup.kill()
        stop_ray(temp_dir)
        servers.stop()
        left = ray_processes(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"Ray processes left: {left}"


def test_kept_ray_starts_under_the_supervisor(kept: Kept) -> None:
    up = kept.up
    assert up.returncode == 0, up.stdout + up.stderr
    assert "1 node ALIVE" in up.stdout
    assert "not kept across reboots" in up.stdout
    spec = json.loads((kept.folder / "spec.json").read_text())
    assert spec["argv"][1:3] == ["start", "--block"]
    assert "--head" in spec["argv"]
    assert spec["restart"] == "on-failure"
    assert kept.ours(kept.state().get("pid")) is not None
    assert kept.supervisor() is not None


def test_a_second_run_is_skipped_and_check_shows_the_spec(kept: Kept) -> None:
    again = kept.saf("run", "ray-up", *kept.ray_vars())
    assert again.returncode == 0, again.stdout + again.stderr
    assert "skipped" in again.stdout
    assert "kept by saf's supervisor (not kept across reboots) as saf-ray" in again.stdout


def test_kill_the_raylet_and_the_supervisor_starts_ray_again(kept: Kept) -> None:
    block = kept.ours(kept.state().get("pid"))
    assert block is not None
    restarts = kept.state().get("restarts", 0)
    raylets = [p for p in block.children(recursive=True)
               if "raylet" in " ".join(p.cmdline())[:400] and p.name() == "raylet"]
    assert raylets, [p.cmdline()[:2] for p in block.children(recursive=True)]
    raylets[0].kill()

    def restarted() -> bool:
        """the supervisor counted a restart and runs a new `ray start --block`"""
        state = kept.state()
        return state.get("restarts", 0) > restarts and \
            kept.ours(state.get("pid")) is not None and state.get("pid") != block.pid
    wait_for(restarted, 60)
    wait_for(kept.alive, 120)


def test_ray_down_removes_the_service_and_leaves_nothing(kept: Kept) -> None:
    sup = kept.supervisor()
    assert sup is not None
    check = kept.saf("run", "ray-down", "--check", "--var", f"temp_dir={kept.temp_dir}")
    assert "stop, disable and remove saf-ray" in check.stdout, check.stdout
    down = kept.saf("run", "ray-down", "--var", f"temp_dir={kept.temp_dir}")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "removed saf-ray" in down.stdout
    assert not kept.folder.exists()
    with contextlib.suppress(psutil.Error):
        sup.wait(10)
    assert not sup.is_running() or sup.status() == psutil.STATUS_ZOMBIE
    assert ray_processes(kept.temp_dir) == []
