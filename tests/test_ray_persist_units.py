"""Ray kept by systemd (`ray_start` with persist = true): the unit saf writes for a node's
`ray start --block` (checked by `systemd-analyze verify`), and the conversation of ray_start
(--check) and ray_stop with a recorded systemd machine, the exact commands asserted.

The recorded machine (tests/helpers/recorded.py) answers systemctl from real captures; its
Python is this one, with Ray, so the node's Ray facts are real (nothing of Ray is started:
a --check, and ray_stop of a Ray that does not run).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from saf.cluster.initsys import SHOWN
from saf.cluster.units import render_systemd
from saf.events import Event
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.inventory.model import Cluster, Defaults, Inventory, Node
from saf.ray.command import StartPlan
from saf.recipe import load_recipe
from saf.recipe.events import NodeStepFinished
from saf.recipe.kinds.ray_kept import ray_spec, service_name
from saf.recipe.prepare import prepare
from saf.recipe.runner import Runner
from tests.helpers import recorded
from tests.helpers.ray import free_ray_port
from tests.helpers.recorded import RecordedNodes
from tests.test_cluster_initsys import WIBBLE
from tests.test_cluster_units import needs_analyze, verify

UNIT = "saf-ray.service"
SHOW = f"systemctl show -p {','.join(SHOWN)} {UNIT}"
GONE = f"Id={UNIT}\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n" \
       "UnitFileState=\nNRestarts=0\nMainPID=0\n"  # composed, as test_cluster_initsys's


def head_plan() -> StartPlan:
    return StartPlan("h", ["/opt/ray/bin/ray", "start", "--head", "--port=6380",
                           "--dashboard-host=10.0.0.1", "--dashboard-port=8265",
                           "--node-ip-address=10.0.0.1", "--node-name=h",
                           '--resources={"Apple":1}'], {}, "10.0.0.1", "10.0.0.1:6380")


def inventory(*hosts: str) -> tuple[Inventory, Node]:
    nodes = [Node(name=f"n{i}", host=host, roles=["head"] if i == 0 else ["worker"])
             for i, host in enumerate(hosts)]
    return Inventory(Cluster("t"), Defaults(), nodes), nodes[0]


def test_the_unit_runs_ray_start_block_restarting_on_failure() -> None:
    inv, node = inventory("10.0.0.1", "10.0.0.2")
    text = render_systemd(ray_spec(inv, node, head_plan(), "/tmp/ray"), system=True)
    assert ('ExecStart="/opt/ray/bin/ray" "start" "--block" "--head" "--port=6380" '
            '"--dashboard-host=10.0.0.1" "--dashboard-port=8265" "--node-ip-address=10.0.0.1" '
            '"--node-name=h" "--resources={\\"Apple\\":1}"') in text.splitlines()
    assert "Restart=on-failure" in text.splitlines()
    assert 'Environment="SAF_RAY_DIR=/tmp/ray"' in text.splitlines()
    assert ('Environment="PATH=/opt/ray/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:'
            '/usr/bin:/sbin:/bin"') in text.splitlines()
    assert 'Environment="RAY_USAGE_STATS_ENABLED=0"' in text.splitlines()


def test_nodes_sharing_a_machine_get_a_unit_each() -> None:
    inv, node = inventory("10.0.0.1", "10.0.0.2")
    assert service_name(inv, node) == "ray"
    inv, node = inventory("127.0.0.1", "127.0.0.1")
    assert service_name(inv, node) == "ray-n0"
    assert service_name(inv, inv.nodes[1]) == "ray-n1"


@needs_analyze
def test_the_ray_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    inv, node = inventory("10.0.0.1", "10.0.0.2")
    spec = ray_spec(inv, node, head_plan(), "/tmp/ray")
    # verify wants the program to exist: this Python's ray stands in for /opt/ray/bin/ray.
    ray = str(Path(sys.executable).parent / "ray")
    plan = head_plan()
    plan.argv[0] = ray
    spec = ray_spec(inv, node, plan, "/tmp/ray")
    done = verify(tmp_path, render_systemd(spec, system=True), name=spec.unit)
    assert done.returncode == 0, done.stdout + done.stderr
    assert spec.unit not in done.stdout + done.stderr, done.stdout + done.stderr


# -- the conversation with a recorded systemd machine ----------------------------------------
def machine(folder: Path, show: str, unit: str = UNIT) -> None:
    (folder / "root" / "etc").mkdir(parents=True, exist_ok=True)
    (folder / "root" / "run" / "systemd" / "system").mkdir(parents=True, exist_ok=True)
    ctl = {f"show -p {','.join(SHOWN)} {unit}": {"stdout": show}, "daemon-reload": {},
           f"enable {unit}": {}, f"restart {unit}": {}, f"disable --now {unit}": {},
           f"reset-failed {unit}": {}}
    (folder / "commands.json").write_text(json.dumps({
        "id": {"-u": {"stdout": "0\n"}, "-un": {"stdout": "root\n"}},
        "uname": {"-s": {"stdout": "Linux\n"}}, "systemctl": ctl}))


@pytest.fixture
def systemd_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(recorded, "MACHINES", tmp_path / "machines")
    started: list[RecordedNodes] = []

    def start(show: str) -> RecordedNodes:
        machine(tmp_path / "machines" / "m", show)
        nodes = RecordedNodes(tmp_path / "run", {"n": "m"}, head="n")
        started.append(nodes)
        return nodes
    yield start
    for nodes in started:
        nodes.close()


def run(nodes: RecordedNodes, path: Path, *, check: bool = False) -> NodeStepFinished:
    async def go() -> NodeStepFinished:
        events: list[Event] = []
        async with Fleet(load_inventory(nodes.inventory)) as fleet:
            prepared = await prepare(load_recipe(path), fleet, {}, None)
            await Runner(prepared, fleet, events.append, run_id="t", check=check).run()
        return next(e for e in events if isinstance(e, NodeStepFinished))
    return asyncio.run(go())


def calls(nodes: RecordedNodes, since: int = 0) -> list[str]:
    return [c for c in nodes.calls()[since:] if not c.startswith(("id ", "uname "))]


def test_check_shows_the_unit_and_the_systemctl_commands(systemd_node, tmp_path: Path) -> None:
    nodes = systemd_node(GONE)
    port = free_ray_port(1)
    temp_dir = f"/tmp/saf-rku-{port}"
    recipe = tmp_path / "up.toml"
    recipe.write_text(f'name = "up"\n\n[[steps]]\nkind = "ray_start"\npersist = "true"\n'
                      f'port = "{port}"\ndashboard_port = "{port + 99}"\n'
                      f'temp_dir = "{temp_dir}"\n')
    check = run(nodes, recipe, check=True)
    assert check.status == "changed", (check.message, check.tail)
    assert check.message.startswith("install a systemd system unit: `ray start --block` "
                                    "as saf-ray (the head)")
    assert calls(nodes) == [SHOW]  # read only
    assert check.would[1:] == ["systemctl daemon-reload", f"systemctl enable {UNIT}",
                               f"systemctl restart {UNIT}"]
    assert "/etc/systemd/system/saf-ray.service" in check.would[0]
    assert '"start" "--block" "--head"' in check.would[0]
    assert f'"SAF_RAY_DIR={temp_dir}"' in check.would[0]
    assert not (nodes.facts_root("n") / "etc" / "systemd" / "system" / UNIT).exists()


def test_ray_stop_stops_and_removes_the_unit(systemd_node, tmp_path: Path) -> None:
    nodes = systemd_node(WIBBLE)  # a unit that runs (a real capture of an active service)
    unit = nodes.facts_root("n") / "etc" / "systemd" / "system" / UNIT
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text("[Service]\nExecStart=/x\n")
    temp_dir = f"/tmp/saf-rku-stop-{free_ray_port(1)}"
    recipe = tmp_path / "down.toml"
    recipe.write_text(f'name = "down"\n\n[[steps]]\nkind = "ray_stop"\n'
                      f'temp_dir = "{temp_dir}"\n')
    check = run(nodes, recipe, check=True)
    assert check.status == "changed", (check.message, check.tail)
    assert check.message.startswith("stop, disable and remove saf-ray (a systemd system unit)")
    assert calls(nodes) == [SHOW]
    assert unit.exists()

    mark = len(nodes.calls())
    down = run(nodes, recipe)
    assert down.status == "changed", (down.message, down.tail)
    assert down.message == "removed saf-ray; stopped 0 processes"
    assert calls(nodes, mark) == [SHOW, f"systemctl disable --now {UNIT}",
                                  "systemctl daemon-reload", f"systemctl reset-failed {UNIT}"]
    assert not unit.exists()
