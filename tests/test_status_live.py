"""`saf status` for real on loopback nodes (saf's own SSH servers, no init system: the
service runs under saf's supervisor): a declared service started by the `service` step
kind, a declared model served by llama-cpp-python on the tiny generated GGUF (as
tests/test_models.py starts one), and a third node whose port nothing listens on. kill -9
the service and the model server and `saf status` says so (exit 1).

Processes are stopped by the pids saf recorded in the test's own node homes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from saf.cockpit.actions import FleetActions
from saf.fleet import Fleet
from saf.inventory import load_inventory
from tests.helpers.servers import AsyncsshServers, ClientKeys, free_port, write_inventory

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
pytest.importorskip("gguf", reason="gguf is not installed (pip install -e '.[test]')")

from tests.helpers.tiny_gguf import write_tiny_llama

BEAT = """import os, sys, time
while True:
    with open(sys.argv[1], "a") as f:
        f.write("%d\\n" % os.getpid())
    time.sleep(0.2)
"""


@dataclass
class Cluster:
    root: Path
    inventory: Path
    homes: dict[str, Path]
    model: Path
    port: int
    marker: str
    env: dict[str, str]

    def saf(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "saf", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def status(self, *args: str) -> tuple[int, dict]:
        done = self.saf("status", "--json", *args, timeout=120)
        assert done.stdout, done.stderr
        return done.returncode, json.loads(done.stdout)

    @property
    def service_state(self) -> Path:
        return self.homes["alpha"] / ".saf" / "services" / "beat" / "state.json"

    def service_pid(self) -> int:
        return int(json.loads(self.service_state.read_text())["pid"])

    def model_pid(self) -> int:
        record = self.homes["alpha"] / ".saf" / "serve" / f"{self.port}.json"
        return int(json.loads(record.read_text())["pid"])

    def ours(self, pid: int) -> bool:
        """Whether `pid` runs a program of this test (its command line names its folder)."""
        try:
            return str(self.root) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                errors="replace") or self.marker in Path(f"/proc/{pid}/cmdline").read_text()
        except OSError:
            return False

    def stop_all(self) -> None:
        pids = []
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            pids.append(self.service_pid())
        with contextlib.suppress(OSError, ValueError):
            folder = self.homes["alpha"] / ".saf" / "services" / "beat"
            pids.append(int((folder / "supervisor.pid").read_text()))
        with contextlib.suppress(OSError, ValueError, KeyError):
            pids.append(self.model_pid())
        for pid in pids:
            if self.ours(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    keys = ClientKeys(tmp_path / "operator")
    (tmp_path / "facts").mkdir()  # no /run/systemd/system: saf's supervisor keeps services
    servers = AsyncsshServers(tmp_path, keys, ["alpha", "beta"],
                              env={"SAF_FACTS_ROOT": str(tmp_path / "facts")})
    model = write_tiny_llama(tmp_path / "tiny-llama.gguf")
    port, dead = free_port(), free_port()
    marker = f"saf-status-{uuid.uuid4().hex[:10]}"
    (tmp_path / "beat.py").write_text(BEAT)
    inventory = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha"),
         "roles": ["head"]},
        {"name": "beta", "host": "127.0.0.1", "port": servers.port("beta")},
        {"name": "gamma", "host": "127.0.0.1", "port": dead}])
    with inventory.open("a") as f:
        f.write(f'\n[[services]]\nname = "beat"\non = "alpha"\nrestart = "no"\n'
                f'command = "{sys.executable} {tmp_path}/beat.py {tmp_path}/beats {marker}"\n'
                f'check = "test -s {tmp_path}/beats"\n'
                f'\n[[models]]\nname = "tiny"\non = "alpha"\nengine = "llama-cpp-python"\n'
                f'model = "{model}"\nport = {port}\n')
    env = {**os.environ, "SAF_INVENTORY": str(inventory), "SAF_STATE_DIR": str(tmp_path / "st"),
           "SAF_CONFIG_DIR": str(tmp_path / "config"), "COLUMNS": "80"}
    made = Cluster(tmp_path, inventory, {n: servers.home(n) for n in ("alpha", "beta")},
                   model, port, marker, env)
    try:
        yield made
    finally:
        made.stop_all()
        servers.stop()


def rows(data: dict, section: str) -> dict[str, dict]:
    return {f"{r.get('service') or r.get('model') or ''}@{r['node']}".lstrip("@"): r
            for r in data[section]}


def wait_for(what, within: float = 20.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {within} s: {what.__doc__ or what}")


def test_status_sees_the_declared_parts_run_die_and_a_node_gone(cluster: Cluster) -> None:
    code, before = cluster.status("--on", "alpha")
    assert code == 1
    assert rows(before, "services")["beat@alpha"]["verdict"] == "missing"
    assert rows(before, "models")["tiny@alpha"]["verdict"] == "missing"

    recipe = cluster.root / "beat.toml"
    recipe.write_text(f'name = "beat"\n\n[[steps]]\nkind = "service"\nservice = "beat"\n'
                      f'command = "{sys.executable} {cluster.root}/beat.py '
                      f'{cluster.root}/beats {cluster.marker}"\nrestart = "no"\nsettle = 1\n')
    started = cluster.saf("run", str(recipe), "--on", "alpha")
    assert started.returncode == 0, started.stdout + started.stderr
    served = cluster.saf("run", "models", "--on", "alpha", "--var", "engine=llama-cpp-python",
                         "--var", f"model={cluster.model}", "--var", f"port={cluster.port}")
    assert served.returncode == 0, served.stdout + served.stderr
    wait_for(lambda: (cluster.root / "beats").exists())

    code, up = cluster.status("--on", "alpha,beta")
    service, model = rows(up, "services")["beat@alpha"], rows(up, "models")["tiny@alpha"]
    assert (service["state"], service["manager"], service["check"], service["verdict"],
            service["kept_across_reboots"]) == (
        "active", "detached", "ok", "not kept across reboots", False)
    assert (model["state"], model["answers"], model["engine"], model["verdict"]) == (
        "ready", True, "llama-cpp-python", "not kept across reboots")
    assert [n["verdict"] for n in up["nodes"]] == ["as declared", "as declared"]
    assert code == 0, up
    assert up["as_declared"] is True

    text = cluster.saf("status", "--on", "alpha,beta")
    assert text.returncode == 0
    assert all(len(line) <= 80 for line in text.stdout.splitlines()), text.stdout
    assert "beat" in text.stdout
    assert "tiny" in text.stdout

    # saf.toml now declares another model on that port: the running one differs.
    declared = cluster.inventory.read_text()
    cluster.inventory.write_text(declared.replace(f'model = "{cluster.model}"',
                                                  'model = "/models/other.gguf"'))
    code, other = cluster.status("--on", "alpha")
    model = rows(other, "models")["tiny@alpha"]
    assert (code, model["verdict"], model["why"]) == (
        1, "differs", f"port {cluster.port} serves {cluster.model}")
    cluster.inventory.write_text(declared)

    os.kill(cluster.service_pid(), signal.SIGKILL)
    os.kill(cluster.model_pid(), signal.SIGKILL)
    wait_for(lambda: json.loads(cluster.service_state.read_text()).get("last_exit") == -9)

    code, after = cluster.status()
    assert code == 1
    service, model = rows(after, "services")["beat@alpha"], rows(after, "models")["tiny@alpha"]
    assert (service["state"], service["verdict"], service["why"]) == ("failed", "down", "failed")
    assert (model["answers"], model["verdict"]) == (False, "down")
    # The killed server is a zombie of this process's SSH server until reaped: the helper
    # may still see its pid; either way it does not answer.
    assert model["state"] in ("exited", "starting"), model
    gamma = next(n for n in after["nodes"] if n["node"] == "gamma")
    assert gamma["verdict"] == "unreachable"
    assert "refused" in gamma["why"]
    assert after["counts"]["down"] == 2

    # The Cluster screen's restart key (saf.cockpit.actions -> saf.up.actions): the service
    # is started again by its supervisor, on the spec saf put there.
    message = restart(cluster, "service", "beat")
    assert message == "alpha: restarted beat (saf's supervisor (not kept across reboots))"
    again = wait_for(lambda: rows(cluster.status("--on", "alpha")[1], "services")[
        "beat@alpha"]["state"] == "active")
    assert again
    assert cluster.ours(cluster.service_pid())
    # The model server is started again from its record's command line.
    assert restart(cluster, "model", "tiny") == (
        f"alpha: restarted model tiny on port {cluster.port} (ready)")
    model = rows(cluster.status("--on", "alpha")[1], "models")["tiny@alpha"]
    assert (model["answers"], model["verdict"]) == (True, "not kept across reboots")


def restart(cluster: Cluster, kind: str, name: str) -> str:
    async def go() -> str:
        async with Fleet(load_inventory(cluster.inventory)) as fleet:
            return await FleetActions(fleet).restart_part("alpha", kind, name, cluster.port)
    return asyncio.run(go())


def test_ray_declared_but_not_running_is_down_on_every_node(tmp_path: Path) -> None:
    """[ray] declared, Ray not started: the head's dashboard does not answer, each node's
    Ray row is `down` with the reason, exit 1."""
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["alpha", "beta"])
    try:
        inventory = write_inventory(tmp_path / "saf.toml", keys, [
            {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha"),
             "roles": ["head"]},
            {"name": "beta", "host": "127.0.0.1", "port": servers.port("beta")}])
        with inventory.open("a") as f:
            f.write('\n[ray]\nhead = "alpha"\ntemp_dir = "/tmp/saf-status-test-no-ray"\n'
                    '[ray.resources]\n"beta" = { GPU = 1 }\n')
        env = {**os.environ, "SAF_INVENTORY": str(inventory),
               "SAF_STATE_DIR": str(tmp_path / "st"), "SAF_CONFIG_DIR": str(tmp_path / "c")}
        done = subprocess.run([sys.executable, "-m", "saf", "status", "--json"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stderr
        data = json.loads(done.stdout)
        assert data["ray"]["declared"] is True
        assert "not running" in data["ray"]["problem"]
        ray = {r["node"]: r for r in data["ray"]["nodes"]}
        assert (ray["alpha"]["verdict"], ray["alpha"]["head"]) == ("down", True)
        assert (ray["beta"]["declared"], ray["beta"]["found"]) == ({"GPU": 1.0}, None)
        assert ray["beta"]["verdict"] == "down"
        assert [n["verdict"] for n in data["nodes"]] == ["as declared", "as declared"]
    finally:
        servers.stop()


def test_a_kept_ray_is_read_under_the_name_ray_up_gave_it(tmp_path: Path) -> None:
    """Nodes sharing one machine (loopback) each keep their Ray as service `ray-NODE`
    (saf.recipe.kinds.ray_kept), not `ray`: `saf status` reads that name, so a node whose
    service is installed says where it is kept. It read `ray` and found nothing there."""
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["alpha", "beta"])
    env: dict[str, str] = {}

    def saf(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "saf", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    recipe = tmp_path / "kept.toml"
    try:
        inventory = write_inventory(tmp_path / "saf.toml", keys, [
            {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha"),
             "roles": ["head"]},
            {"name": "beta", "host": "127.0.0.1", "port": servers.port("beta")}])
        with inventory.open("a") as f:
            f.write('\n[ray]\nhead = "alpha"\npersist = true\n'
                    'temp_dir = "/tmp/saf-status-test-no-ray"\n')
        env.update({**os.environ, "SAF_INVENTORY": str(inventory),
                    "SAF_STATE_DIR": str(tmp_path / "st"), "SAF_CONFIG_DIR": str(tmp_path / "c")})
        # Beta's service as ray-up names it there; its program only has to run.
        recipe.write_text('name = "kept"\n\n[[steps]]\nkind = "service"\n'
                          'service = "ray-beta"\n'
                          f'command = "{sys.executable} -c \'import time; time.sleep(600)\'"\n'
                          'restart = "no"\nsettle = 1\n')
        started = saf("run", str(recipe), "--on", "beta")
        assert started.returncode == 0, started.stdout + started.stderr
        done = saf("status", "--json")
        ray = {r["node"]: r for r in json.loads(done.stdout)["ray"]["nodes"]}
        assert ray["beta"]["kept_across_reboots"] is False  # saf's supervisor keeps it
        assert ray["alpha"]["kept_across_reboots"] is None  # nothing installed there
    finally:
        if env:
            recipe.write_text(recipe.read_text().replace('restart = "no"',
                                                         'restart = "no"\nstate = "absent"'))
            saf("run", str(recipe), "--on", "beta")
        servers.stop()


def test_nothing_declared_shows_the_nodes_and_says_so(tmp_path: Path) -> None:
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["alpha"])
    try:
        inventory = write_inventory(tmp_path / "saf.toml", keys, [
            {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha")}])
        env = {**os.environ, "SAF_INVENTORY": str(inventory), "COLUMNS": "80",
               "SAF_STATE_DIR": str(tmp_path / "st"), "SAF_CONFIG_DIR": str(tmp_path / "c")}
        done = subprocess.run([sys.executable, "-m", "saf", "status"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "test: as declared (1 as declared)" in done.stdout
        assert "saf.toml declares no [ray], [[services]] or [[models]]" in done.stdout
    finally:
        servers.stop()
