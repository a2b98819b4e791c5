"""A real Ray cluster on the loopback SSH fleet: `saf run ray-up` starts a head and two
workers (three Ray nodes on one machine, each with its own ports: saf.ray.command), Ray's own
`ray status` sees them, `saf ray status/submit/jobs` work through the dashboard forward, a
rerun is `skipped`, other settings are refused, and `ray-down` leaves no Ray process.

One Ray cluster for the whole module (starting one costs 10-60 s on two cores); every Ray
process of the module's own temp folder is ended when the module ends, even after a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w

from tests.helpers.ray import free_ray_port, ray_groups, ray_processes, stop_ray
from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory

RAY = Path(sys.executable).parent / "ray"
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class RayCluster:
    inventory: Path
    temp_dir: Path
    port: int
    up: subprocess.CompletedProcess[str]

    @property
    def dashboard_port(self) -> int:
        return self.port + 99

    def env(self) -> dict[str, str]:
        return {**os.environ, "SAF_INVENTORY": str(self.inventory),
                "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "200"}

    def saf(self, *args: str, timeout: float = 300,
            inventory: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = self.env()
        if inventory is not None:
            env["SAF_INVENTORY"] = str(inventory)
        return subprocess.run([sys.executable, "-m", "saf", *args], env=env,
                              capture_output=True, text=True, timeout=timeout)

    def ray_vars(self, **extra: str) -> list[str]:
        values = {"port": str(self.port), "dashboard_port": str(self.dashboard_port),
                  "temp_dir": str(self.temp_dir), **extra}
        return [arg for k, v in values.items() for arg in ("--var", f"{k}={v}")]


def _nodes(servers: AsyncsshServers) -> list[dict]:
    return [
        {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha"), "roles": ["head"]},
        {"name": "beta", "host": "127.0.0.1", "port": servers.port("beta"), "roles": ["worker"],
         "vars": {"ray_resources": {"Apple": 1}}},
        {"name": "gamma", "host": "127.0.0.1", "port": servers.port("gamma"),
         "roles": ["worker"], "vars": {"ray_num_cpus": 1}},
    ]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    root = tmp_path_factory.mktemp("ray")
    keys = ClientKeys(root / "operator")
    # The nodes' own PATH has no `python` with Ray (as on a node whose Python is a venv):
    # jobs get the node's Python only because Ray started by saf puts it first.
    servers = AsyncsshServers(root, keys, ["alpha", "beta", "gamma"], env={"PATH": NODE_PATH})
    # Ray's temp folder: short (its socket paths must stay under 108 bytes) and ours alone.
    temp_dir = Path(f"/tmp/saf-ray-{os.getpid()}")
    inventory = write_inventory(root / "saf.toml", keys, _nodes(servers))
    cluster = RayCluster(inventory, temp_dir, free_ray_port(), None)  # type: ignore[arg-type]
    try:
        cluster.up = cluster.saf("run", "ray-up", *cluster.ray_vars())
        yield cluster
    finally:
        stop_ray(temp_dir)
        servers.stop()
        left = ray_processes(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"Ray processes left: {left}"


def test_ray_up_starts_head_and_workers(ray_cluster: RayCluster) -> None:
    """ray-up starts all three nodes and reports the cluster's totals from the dashboard."""
    up = ray_cluster.up
    assert up.returncode == 0, up.stdout + up.stderr
    assert "3 nodes ALIVE" in up.stdout
    assert "joined 127.0.0.1:" in up.stdout


def test_ray_own_status_sees_the_cluster(ray_cluster: RayCluster) -> None:
    """Ray's own CLI, pointed at the head's GCS port, sees three active nodes (its
    autoscaler's report lags the nodes by a few seconds, so it is asked again until then)."""
    deadline = time.monotonic() + 60
    while True:
        out = subprocess.run([str(RAY), "status", f"--address=127.0.0.1:{ray_cluster.port}"],
                             capture_output=True, text=True, timeout=120, env=ray_cluster.env())
        assert out.returncode == 0, out.stderr
        if out.stdout.count(" node_") == 3 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert out.stdout.count(" node_") == 3, out.stdout


def test_saf_ray_status_json(ray_cluster: RayCluster) -> None:
    """`saf ray status --json` reports each node ALIVE with its CPUs and the inventory's
    resources (Apple on beta, one CPU on gamma), and the totals."""
    out = ray_cluster.saf("ray", "status", "--json", "--temp-dir", str(ray_cluster.temp_dir))
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    nodes = {n["name"]: n for n in status["nodes"]}
    assert set(nodes) == {"alpha", "beta", "gamma"}
    assert all(n["alive"] for n in nodes.values())
    assert nodes["alpha"]["head"]
    assert not nodes["beta"]["head"]
    assert nodes["beta"]["resources"].get("Apple") == 1
    assert nodes["gamma"]["resources"]["CPU"] == 1
    assert status["totals"]["CPU"] == sum(n["resources"]["CPU"] for n in nodes.values())
    assert status["totals"]["memory"] > 0
    assert status["dashboard_url"].endswith(f":{ray_cluster.dashboard_port}")


def test_saf_ray_status_table(ray_cluster: RayCluster) -> None:
    out = ray_cluster.saf("ray", "status", "--temp-dir", str(ray_cluster.temp_dir))
    assert out.returncode == 0, out.stderr
    assert "3/3 nodes alive" in out.stdout
    assert "Apple=1" in out.stdout


def test_rerun_is_skipped(ray_cluster: RayCluster) -> None:
    """The same settings again: every node `skipped`, nothing restarted."""
    out = ray_cluster.saf("run", "ray-up", *ray_cluster.ray_vars())
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("Ray is running with the same settings") == 3, out.stdout


def test_other_settings_are_refused_without_restart(ray_cluster: RayCluster) -> None:
    """The head running with another dashboard host: the run says what differs and how to
    restart, and changes nothing (`--check` shows the same refusal)."""
    for extra in ((), ("--check",)):
        out = ray_cluster.saf("run", "ray-up", *extra,
                              *ray_cluster.ray_vars(dashboard_host="0.0.0.0"))
        assert out.returncode == 1, out.stdout
        assert "running with other settings" in out.stdout
        assert "--dashboard-host 127.0.0.1 -> 0.0.0.0" in out.stdout
        assert "--var restart=true" in out.stdout


def test_restart_true_restarts_only_the_node_whose_settings_changed(
        ray_cluster: RayCluster, tmp_path: Path) -> None:
    """gamma now asked for 2 CPUs: without restart it is refused; with --var restart=true
    only gamma restarts (alpha and beta `skipped`), and the dashboard shows its 2 CPUs."""
    data = tomllib.loads(ray_cluster.inventory.read_text())
    gamma = next(n for n in data["nodes"] if n["name"] == "gamma")
    gamma["vars"] = {"ray_num_cpus": 2}
    changed = tmp_path / "saf.toml"
    changed.write_text(tomli_w.dumps(data))
    refused = ray_cluster.saf("run", "ray-up", *ray_cluster.ray_vars(), inventory=changed)
    assert refused.returncode == 1
    assert "--num-cpus 1 -> 2" in refused.stdout
    out = ray_cluster.saf("run", "ray-up", *ray_cluster.ray_vars(restart="true"),
                          inventory=changed)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("Ray is running with the same settings") == 2, out.stdout
    assert "joined 127.0.0.1:" in out.stdout
    status = json.loads(ray_cluster.saf("ray", "status", "--json", "--temp-dir",
                                        str(ray_cluster.temp_dir)).stdout)
    nodes = {n["name"]: n for n in status["nodes"] if n["alive"]}
    assert nodes["gamma"]["resources"]["CPU"] == 2
    assert len(nodes) == 3


def test_check_shows_the_exact_commands(ray_cluster: RayCluster, tmp_path: Path) -> None:
    """On a temp folder where nothing runs, --check prints each node's `ray start` line:
    ports derived per node (three nodes share this machine), the inventory's resources."""
    out = ray_cluster.saf("run", "ray-up", "--check",
                          *ray_cluster.ray_vars(temp_dir=str(tmp_path / "r"),
                                                port=str(ray_cluster.port + 5000),
                                                dashboard_port=str(ray_cluster.port + 5099)))
    assert out.returncode == 0, out.stdout + out.stderr
    port = ray_cluster.port + 5000
    assert f"start --head --port={port} --dashboard-host=127.0.0.1" in out.stdout
    assert "--node-name=beta" in out.stdout
    assert '--resources={"Apple":1.0}' in out.stdout
    assert f"--address=127.0.0.1:{port}" in out.stdout
    assert "--num-cpus=1" in out.stdout
    assert f"--node-manager-port={port + 11}" in out.stdout  # beta, node 1 of the inventory
    # Each worker on this shared machine has a Ray folder of its own (so both start at once).
    assert f"--temp-dir={tmp_path / 'r'} " in out.stdout  # the head's
    assert f"--temp-dir={tmp_path / 'r' / 'n1'} " in out.stdout  # beta's
    assert f"--temp-dir={tmp_path / 'r' / 'n2'} " in out.stdout  # gamma's


def test_submit_runs_a_job_and_jobs_lists_it(ray_cluster: RayCluster, tmp_path: Path) -> None:
    """`saf ray submit` uploads the working dir, follows the logs, exits 0; `saf ray jobs`
    shows the job SUCCEEDED."""
    (tmp_path / "job.py").write_text(
        "import ray\nray.init()\n"
        "print('answer', ray.get(ray.remote(lambda: 6 * 7).remote()))\n")
    out = ray_cluster.saf("ray", "submit", "--temp-dir", str(ray_cluster.temp_dir),
                          "--working-dir", str(tmp_path), "--", "python", "job.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "answer 42" in out.stdout
    assert "SUCCEEDED" in out.stderr
    jobs = ray_cluster.saf("ray", "jobs", "--json", "--temp-dir", str(ray_cluster.temp_dir))
    rows = [json.loads(line) for line in jobs.stdout.splitlines()]
    assert any(r["status"] == "SUCCEEDED" and r["entrypoint"] == "python job.py" for r in rows)


def test_a_job_runs_the_nodes_python(ray_cluster: RayCluster, tmp_path: Path) -> None:
    """`python` and `pip` in a job are the node's Python's (the inventory's `python`, a venv
    here), not whatever the node's PATH finds first (nothing with Ray, on these nodes)."""
    (tmp_path / "where.py").write_text(
        "import shutil, sys\n"
        "print('executable', sys.executable)\n"
        "print('which', shutil.which('python'), shutil.which('pip'))\n")
    out = ray_cluster.saf("ray", "submit", "--temp-dir", str(ray_cluster.temp_dir),
                          "--working-dir", str(tmp_path), "--", "python", "where.py")
    assert out.returncode == 0, out.stdout + out.stderr
    folder = Path(sys.executable).parent
    assert f"executable {sys.executable}" in out.stdout, out.stdout
    assert f"which {folder / 'python'} {folder / 'pip'}" in out.stdout, out.stdout


def test_ray_up_and_ray_status_say_the_same_address(ray_cluster: RayCluster) -> None:
    """The address ray-up says each node joined as is the one `saf ray status` shows: the
    address Ray uses for it (its node_ip_address)."""
    said = dict(re.findall(r"(alpha|beta|gamma)\s+changed.*?(?:joined|head at) \S+ as (\S+)",
                           " ".join(ray_cluster.up.stdout.split())))
    assert set(said) == {"alpha", "beta", "gamma"}, ray_cluster.up.stdout
    status = json.loads(ray_cluster.saf("ray", "status", "--json", "--temp-dir",
                                        str(ray_cluster.temp_dir)).stdout)
    shown = {n["name"]: n["address"] for n in status["nodes"] if n["alive"]}
    assert said == {name: shown[name] for name in said}, (said, shown)


def test_submit_exits_with_the_jobs_status(ray_cluster: RayCluster, tmp_path: Path) -> None:
    (tmp_path / "fail.py").write_text("import sys\nprint('going')\nsys.exit(3)\n")
    out = ray_cluster.saf("ray", "submit", "--temp-dir", str(ray_cluster.temp_dir),
                          "--working-dir", str(tmp_path), "--", "python", "fail.py")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "going" in out.stdout
    assert "FAILED" in out.stderr


def test_ctrl_c_stops_the_job(ray_cluster: RayCluster, tmp_path: Path) -> None:
    """Ctrl-C while following a job's logs stops the job on the cluster (nothing left
    running there) and exits 130."""
    (tmp_path / "slow.py").write_text("import time\nprint('started', flush=True)\n"
                                      "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-m", "saf", "ray", "submit", "--temp-dir",
                             str(ray_cluster.temp_dir), "--working-dir", str(tmp_path), "--",
                             "python", "slow.py"], env=ray_cluster.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if "started" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopped" in err
    # Ray stops a job asynchronously: STOPPED once its process has ended.
    deadline = time.monotonic() + 60
    while True:
        rows = [json.loads(line) for line in ray_cluster.saf(
            "ray", "jobs", "--json", "--temp-dir", str(ray_cluster.temp_dir)
        ).stdout.splitlines()]
        slow = [r for r in rows if r["entrypoint"] == "python slow.py"]
        if slow and slow[0]["status"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert slow, slow
    assert slow[0]["status"] == "STOPPED", slow


def test_status_without_ray_says_so(ray_cluster: RayCluster, tmp_path: Path) -> None:
    """Where no Ray runs: one line that says so and how to start it, no traceback."""
    out = ray_cluster.saf("ray", "status", "--temp-dir", str(tmp_path),
                          "--dashboard-port", str(free_ray_port(0)))
    assert out.returncode == 1
    assert "Ray is not running on the head alpha" in out.stderr
    assert "saf run ray-up" in out.stderr
    assert "Traceback" not in out.stderr


# (which of the node's ports is taken, offset in saf.ray.command.NODE_PORTS, what `ray start`
# is reported to have said, what the node's raylet log says, the .err beside it)
JOIN_FAULTS = {
    # The raylet aborts before it registers; Ray itself would wait 30 s for it.
    "node-manager-port": (0, "ended by saf once its raylet had crashed",
                          "Failed to start the grpc server", None),
    # The raylet registers, then exits as its runtime-env agent fails; `ray start` says Ray
    # started, and the GCS lists the node ALIVE until its health check gives up on it.
    "runtime-env-agent-port": (4, "it said Ray started, but the node's raylet has already "
                               "exited", "The raylet exited immediately because one Ray agent "
                               "failed", "Address already in use"),
}


@pytest.mark.parametrize("fault", sorted(JOIN_FAULTS))
def test_a_node_that_cannot_join_fails_with_its_ray_logs(
        ray_cluster: RayCluster, tmp_path: Path, fault: str) -> None:
    """A fourth node, delta, one of whose ports is taken by another program: ray-up on the
    head and delta leaves the head alone, fails delta's step naming it, with the end of
    delta's own raylet log (its error line), the agent's traceback when an agent failed, and
    the GCS log, and leaves none of delta's processes behind."""
    offset, said, raylet_says, err_says = JOIN_FAULTS[fault]
    data = tomllib.loads(ray_cluster.inventory.read_text())
    data["nodes"].append({**data["nodes"][1], "name": "delta", "vars": {}})
    inventory = tmp_path / "saf.toml"
    inventory.write_text(tomli_w.dumps(data))
    taken = ray_cluster.port + 1 + 10 * 3 + offset  # delta is node 3 (saf.ray.command)
    before = set(ray_processes(ray_cluster.temp_dir))
    with socket.create_server(("0.0.0.0", taken)):
        out = ray_cluster.saf("run", "ray-up", "--on", "alpha,delta",
                              *ray_cluster.ray_vars(), inventory=inventory)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.count("Ray is running with the same settings") == 1, out.stdout
    text = " ".join(out.stdout.split())  # the view wraps long lines
    assert "delta did not join: `ray start` ended with exit status" in text, out.stdout
    assert f"ray start: {said}" in text, out.stdout
    assert f"{ray_cluster.temp_dir}/n3/session_" in text, out.stdout
    assert "/raylet." in text, out.stdout
    assert "(raylet)" in text, out.stdout
    assert raylet_says in text, out.stdout
    if offset == 0:
        assert f"The specified port is {taken}" in text, out.stdout
    if err_says:
        assert "runtime_env_agent.err (end)" in text, out.stdout
        assert err_says in text, out.stdout
    assert "/gcs_server.out (" in text, out.stdout
    assert "(gcs_server)" in text, out.stdout
    left = [cmd for cmd in set(ray_processes(ray_cluster.temp_dir)) - before]
    assert left == [], f"processes of delta's start left: {left}"
    # The others run on. (Ray's GCS may still list delta ALIVE for a while: a raylet that
    # registered and exited is declared dead only when its health check gives up.)
    status = json.loads(ray_cluster.saf("ray", "status", "--json", "--temp-dir",
                                        str(ray_cluster.temp_dir)).stdout)
    alive = {n["name"] for n in status["nodes"] if n["alive"]}
    assert {"alpha", "beta", "gamma"} <= alive, status["nodes"]


def test_an_os_error_on_a_node_fails_its_step_without_a_traceback(
        ray_cluster: RayCluster, tmp_path: Path) -> None:
    """delta's record of its settings cannot be written (its path is a folder, as a
    PermissionError in another user's Ray folder would stop it): delta's step fails saying
    so, with no traceback, and the Ray it started is stopped (nothing of it runs)."""
    data = tomllib.loads(ray_cluster.inventory.read_text())
    data["nodes"].append({**data["nodes"][1], "name": "delta", "vars": {}})
    inventory = tmp_path / "saf.toml"
    inventory.write_text(tomli_w.dumps(data))
    blocker = ray_cluster.temp_dir / "saf" / "delta.json"
    blocker.mkdir(parents=True)
    groups = ray_groups(ray_cluster.temp_dir)
    try:
        out = ray_cluster.saf("run", "ray-up", "--on", "alpha,delta", *ray_cluster.ray_vars(),
                              inventory=inventory)
    finally:
        blocker.rmdir()
    assert out.returncode == 1, out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    assert "delta: Ray started, but saf could not write its record of the settings" in text
    assert "IsADirectoryError" in text, out.stdout
    assert "--var temp_dir=" in text, out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    left = ray_groups(ray_cluster.temp_dir) - groups
    assert not left, f"delta's start left processes: {ray_processes(ray_cluster.temp_dir)}"


def test_zz_ray_down_leaves_no_ray_process(ray_cluster: RayCluster) -> None:
    """Last: ray-down stops the workers, then the head; nothing of the cluster's sessions
    is left (each `ray start` is a process group of its own: the head's client server,
    whose command line names no session folder, is in the head's), and a second ray-down
    is `skipped`."""
    groups = ray_groups(ray_cluster.temp_dir)
    before = ray_processes(ray_cluster.temp_dir, groups)
    client = f"--port={ray_cluster.port + 7} "  # the head's client server (saf.ray.command)
    assert any("ray.util.client.server" in cmd and client in cmd for cmd in before), before
    out = ray_cluster.saf("run", "ray-down", "--var", f"temp_dir={ray_cluster.temp_dir}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert ray_processes(ray_cluster.temp_dir, groups) == []
    again = ray_cluster.saf("run", "ray-down", "--var", f"temp_dir={ray_cluster.temp_dir}")
    assert again.stdout.count("no Ray process of") == 3, again.stdout
