"""Each node's exact `ray start` and the refusals, decided from node facts (tests/fixtures/ray:
the issue's two Mac Studios and an NVIDIA Linux head, which cannot run here), and the facts
parser against hostile answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saf.errors import RayError
from saf.inventory.model import Cluster, Defaults, Inventory, Node
from saf.ray import command as rc
from saf.ray.answers import Probed, Stopped, Tail, decode, marked_line
from saf.ray.facts import NodeFacts, RayRecord

FIXTURES = Path(__file__).parent / "fixtures" / "ray"


def facts(name: str, **changes: object) -> NodeFacts:
    raw = json.loads((FIXTURES / f"{name}.json").read_text())
    raw.update(changes)
    # Recorded before answers carried their action's tag.
    return decode(json.dumps({"answer": "facts", **raw}), NodeFacts, name)


def inventory(*nodes: Node) -> Inventory:
    return Inventory(Cluster("t"), Defaults(), nodes)


MACS = inventory(Node("studio1", "10.10.0.1", roles=("head",)),
                 Node("studio2", "10.10.0.2", roles=("worker",)))
MIXED = inventory(Node("box", "10.10.0.10", roles=("head",), vars={"ray_num_gpus": 2}),
                  Node("studio1", "10.10.0.1", roles=("worker",)),
                  Node("studio2", "10.10.0.2", roles=("worker",),
                       vars={"ray_resources": {"Apple": 2, "mem_heavy": 1}}))


def test_macos_nodes_get_the_variable_their_address_and_apple() -> None:
    """Two Mac Studios: the head listens for the dashboard on its 10GbE address (not
    loopback), both advertise the address their SSH connection came in on, and carry the macOS
    variable and the Apple resource."""
    head, worker = MACS.nodes
    plan, problem = rc.start_plan(MACS, head, facts("macstudio-m2ultra-brew"), rc.RaySettings(),
                                  "10.10.0.1")
    assert problem is None
    assert plan is not None
    assert plan.shell() == (
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1 /Users/ops/.saf/venv/bin/ray start --head "
        "--port=6380 --dashboard-host=10.10.0.1 --dashboard-port=8265 "
        "--node-ip-address=10.10.0.1 --node-name=studio1 '--resources={\"Apple\":1.0}'")
    plan, problem = rc.start_plan(MACS, worker, facts("macstudio-m2ultra-pyenv"),
                                  rc.RaySettings(), "10.10.0.1")
    assert plan is not None
    assert plan.argv[2:5] == ["--address=10.10.0.1:6380", "--node-ip-address=10.10.0.2",
                              "--node-name=studio2"]
    assert plan.env == {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
    assert not any("port=" in a and "manager" in a for a in plan.argv)  # own machines


def test_nvidia_head_with_mac_workers() -> None:
    """An NVIDIA Linux head: CUDA resource and the inventory's GPU count, no macOS variable;
    a worker's resources from the inventory win over what it is."""
    head, _, studio2 = MIXED.nodes
    plan, _ = rc.start_plan(MIXED, head, facts("linux-nvidia-head"), rc.RaySettings(),
                            "10.10.0.10")
    assert plan is not None
    assert plan.env == {}
    assert "--num-gpus=2" in plan.argv
    assert '--resources={"CUDA":1.0}' in plan.argv
    assert "--node-ip-address=10.10.0.10" in plan.argv  # not the docker bridge 172.17.0.1
    plan, _ = rc.start_plan(MIXED, studio2, facts("macstudio-m2ultra-pyenv"), rc.RaySettings(),
                            "10.10.0.10")
    assert plan is not None
    assert '--resources={"Apple":2.0,"mem_heavy":1.0}' in plan.argv


def test_version_mismatch_points_at_python_match() -> None:
    head, worker = MACS.nodes
    why = rc.refusal(MACS, worker, facts("macstudio-m2ultra-pyenv"), head,
                     facts("macstudio-m2ultra-brew"), rc.RaySettings())
    assert why is not None
    assert "Python 3.9.6 / Ray 2.40.0 differ from the head studio1's Python 3.9.23" in why
    assert "saf run python-match" in why


def test_port_taken_names_the_owner_and_redis() -> None:
    head = MIXED.nodes[0]
    why = rc.refusal(MIXED, head, facts("linux-nvidia-head"), head, None,
                     rc.RaySettings(port=6379))
    assert why is not None
    assert "the Ray port 6379 is taken by pid 812 (/usr/bin/redis-server *:6379)" in why
    assert "Redis" in why
    assert rc.refusal(MIXED, head, facts("linux-nvidia-head"), head, None,
                      rc.RaySettings()) is None


def test_loopback_dashboard_on_several_machines_is_refused() -> None:
    head = MACS.nodes[0]
    why = rc.refusal(MACS, head, facts("macstudio-m2ultra-brew"), head, None,
                     rc.RaySettings(dashboard_host="127.0.0.1"))
    assert why is not None
    assert "loopback on a cluster of 2 machines" in why


def test_loopback_address_on_several_machines_is_refused() -> None:
    """A node whose only known address is loopback would advertise 127.0.0.1."""
    inv = inventory(Node("a", "localhost", roles=("head",)), Node("b", "10.10.0.2"))
    plan, problem = rc.start_plan(inv, inv.nodes[0], facts("linux-loopback"), rc.RaySettings(),
                                  "127.0.0.1")
    assert plan is None
    assert problem is not None
    assert "advertise 127.0.0.1" in problem


def test_explicit_node_ip_must_be_the_nodes() -> None:
    node = Node("a", "studio", roles=("head",), vars={"ray_node_ip": "10.9.9.9"})
    ip, problem = rc.node_ip(node, facts("macstudio-m2ultra-brew"))
    assert ip is None
    assert problem is not None
    assert "not an address of this node" in problem


def test_nodes_sharing_a_machine_get_their_own_ports() -> None:
    inv = inventory(Node("a", "127.0.0.1", roles=("head",)), Node("b", "127.0.0.1"))
    plan, _ = rc.start_plan(inv, inv.nodes[1], facts("linux-loopback"),
                            rc.RaySettings(port=20000), "127.0.0.1")
    assert plan is not None
    assert "--node-manager-port=20011" in plan.argv
    assert "--min-worker-port=20300" in plan.argv
    assert "--max-worker-port=20399" in plan.argv
    assert not any(a.startswith("--ray-client-server-port") for a in plan.argv)


def test_workers_sharing_a_machine_get_a_ray_folder_of_their_own() -> None:
    """node_temp_dir: the head keeps the temp folder; a worker sharing its machine gets
    TEMP/n<i>; on separate machines every node keeps Ray's folder (no --temp-dir)."""
    inv = inventory(Node("a", "127.0.0.1", roles=("head",)), Node("b", "127.0.0.1"))
    assert rc.node_temp_dir(inv, inv.nodes[0], "/tmp/ray") == "/tmp/ray"
    assert rc.node_temp_dir(inv, inv.nodes[1], "/tmp/ray/") == "/tmp/ray/n1"
    plan, _ = rc.start_plan(inv, inv.nodes[1], facts("linux-loopback"),
                            rc.RaySettings(port=20000), "127.0.0.1")
    assert plan is not None
    assert "--temp-dir=/tmp/ray/n1" in plan.argv
    for node in MACS.nodes:
        assert rc.node_temp_dir(MACS, node, "/tmp/ray") == "/tmp/ray"
        plan, _ = rc.start_plan(MACS, node, facts("macstudio-m2ultra-brew"), rc.RaySettings(),
                                "10.10.0.1")
        assert plan is not None
        assert not any(a.startswith("--temp-dir") for a in plan.argv)


def test_known_ip_is_what_the_inventory_alone_tells() -> None:
    """A worker probes the head's port in its facts call only for an address known before
    the head's facts; a host name waits for them (a second probe)."""
    assert rc.known_ip(Node("h", "10.10.0.1")) == "10.10.0.1"
    assert rc.known_ip(Node("h", "studio.local", vars={"ray_node_ip": "10.0.0.9"})) == \
        "10.0.0.9"
    assert rc.known_ip(Node("h", "studio.local")) is None


def test_differences_say_what_changed() -> None:
    old = RayRecord(argv=("ray", "start", "--head", "--num-cpus=2"), env={}, head="h:1")
    new = RayRecord(argv=("ray", "start", "--head", "--num-cpus=4"), env={"X": "1"},
                    head="h:1")
    assert rc.differences(old, new) == ["--num-cpus 2 -> 4", "env X (none) -> 1"]
    assert rc.differences(new, new) == []
    assert rc.differences(None, new) == ["no record of the settings it runs with"]
    assert rc.differences(RayRecord(), new) == ["no record of the settings it runs with"]
    assert rc.differences(RayRecord(argv=new.argv, env=new.env, head="h:2"), new) == [
        "head h:2 -> h:1"]


@pytest.mark.parametrize(("raw", "where"), [
    ({"python": 3}, "Expected `str | null`, got `int` - at `$.python`"),
    ({"listeners": {"x": "a"}}, "at `key` in `$.listeners`"),
    ({"listeners": {"70000": "a"}}, "Expected `int` <= 65535 - at `key` in `$.listeners`"),
    ({"listeners": {"22": 5}}, "at `$.listeners[...]`"),
    ({"listeners": []}, "Expected `object`, got `array` - at `$.listeners`"),
    ({"ray_processes": -1}, "Expected `int` >= 0 - at `$.ray_processes`"),
    ({"nvidia": "yes"}, "Expected `bool`, got `str` - at `$.nvidia`"),
    ({"time": 1e12}, "at `$.time`"),
    ({"addresses": "1.2.3.4"}, "at `$.addresses`"),
    ({"probes": "open"}, "at `$.probes`"),
    ({"record": "x"}, "at `$.record`"),
    ({"record": {"argv": "ray start --head"}}, "at `$.record.argv`"),
    ({"record": {"env": {"X": 1}}}, "at `$.record.env[...]`"),
    ({"pyenv": [1, 2]}, "at `$.pyenv[0]`"),
    ({"ray_parts": {"dashboard": 1}}, "at `$.ray_parts.dashboard`"),
    ({"python": "3.9.6", "surprise": 1}, "unknown field `surprise`"),
    ({"answer": "stop"}, "Invalid value 'stop' - at `$.answer`"),
])
def test_a_malformed_facts_answer_fails_naming_the_node_and_the_field(raw: dict,
                                                                      where: str) -> None:
    """A node's answer is checked whole at one gate: anything that is not what saf.ray.facts
    declares fails the call with the node's name and the field's path, never a traceback
    and never a half-read NodeFacts."""
    with pytest.raises(RayError) as failed:
        decode(json.dumps({"answer": "facts", **raw}), NodeFacts, "studio1")
    message = str(failed.value)
    assert message.startswith("studio1: the answer of saf's Ray probe (facts) is not what saf "
                              "expects: "), message
    assert where in message, message


def test_every_action_has_its_answer_and_the_nodes_own_trouble_is_said() -> None:
    probed = decode('{"answer": "probe", "probes": {"10.0.0.1:6380": "open"}}', Probed, "w1")
    assert probed.probes == {"10.0.0.1:6380": "open"}
    stopped = decode('{"answer": "stop", "stopped": 3, "killed": 1, "left": []}', Stopped, "h")
    assert (stopped.stopped, stopped.killed, stopped.left) == (3, 1, ())
    tail = decode('{"answer": "tail", "logs": [{"path": "/tmp/ray/r.out", "what": "end", '
                  '"lines": ["a", "b"]}]}', Tail, "h")
    assert tail.logs[0].lines == ("a", "b")
    with pytest.raises(RayError, match=r"^h: stop failed on the node: PermissionError: x$"):
        decode('{"answer": "error", "error": "PermissionError: x"}', Stopped, "h")
    with pytest.raises(RayError, match=r"^h: .* is not what saf expects: .*`\$.logs\[0\]`"):
        decode('{"answer": "tail", "logs": [{"path": "/p", "what": "end"}]}', Tail, "h")
    with pytest.raises(RayError, match=r"^h: .*\(probe\) is not what saf expects: JSON is "):
        decode("{not json", Probed, "h")


def test_answer_is_found_among_other_output() -> None:
    out = 'Ray runtime started.\nsaf-ray {"exit_status": 0}\nlater\n'
    assert marked_line(out) == '{"exit_status": 0}'
    assert marked_line("Ray runtime started.\n") is None


# -- python-match: the matrix and the install commands, on the recorded machines ----------

from saf.ray import python_match as pm  # noqa: E402

TARGET = pm.Target("3.9.23", "2.40.0", "the head studio1")


def test_python_match_on_a_mac_with_pyenv_uses_pyenv() -> None:
    """The Mac on the system's 3.9.6 has Homebrew's pyenv: pyenv installs 3.9.23, a venv is
    made (an old one moved aside, never deleted), Ray pinned to the head's."""
    node = Node("studio2", "10.10.0.2", python="~/.saf/venv/bin/python")
    commands, python = pm.fix_commands(node, facts("macstudio-m2ultra-pyenv"), TARGET)
    assert commands == [
        "/opt/homebrew/bin/pyenv install -s 3.9.23",
        "if [ -e \"$HOME\"/.saf/venv ]; then mv \"$HOME\"/.saf/venv "
        "\"$HOME\"/.saf/venv.saf-old-$(date +%s); fi",
        "\"$(/opt/homebrew/bin/pyenv root)\"/versions/3.9.23/bin/python3 -m venv "
        "\"$HOME\"/.saf/venv",
        "\"$HOME\"/.saf/venv/bin/python -m pip install --quiet 'ray[default]==2.40.0'"]
    assert python == "~/.saf/venv/bin/python"


def test_python_match_without_pyenv_or_uv_installs_uv_first() -> None:
    node = Node("studio1", "10.10.0.1", python="python3")
    bare = facts("macstudio-m2ultra-pyenv", pyenv=None, pyenv_bin=None, python="3.9.6")
    commands, _ = pm.fix_commands(node, bare, TARGET, packages="mlx mlx-lm")
    # Downloaded to a file first, then run: a failed download is curl's error, not `uv: not
    # found` (tests/test_python_match_fresh.py runs it).
    assert commands[0] == pm.UV_INSTALLER
    assert "curl -LsSf https://astral.sh/uv/install.sh -o " in commands[0]
    assert commands[1] == "\"$HOME\"/.local/bin/uv python install 3.9.23"
    assert commands[-1].endswith("'ray[default]==2.40.0' mlx mlx-lm")


def test_python_match_only_ray_differs_installs_into_the_venv() -> None:
    node = Node("box", "10.10.0.10", python="~/.saf/venv/bin/python3")
    same = facts("linux-nvidia-head", ray="2.39.0", venv="/home/ops/.saf/venv")
    commands, python = pm.fix_commands(node, same, TARGET)
    assert commands == ["\"$HOME\"/.saf/venv/bin/python3 -m pip install --quiet "
                        "'ray[default]==2.40.0'"]


def test_python_match_matrix_marks_the_odd_one() -> None:
    lines = pm.matrix([("studio1", facts("macstudio-m2ultra-brew")),
                       ("studio2", facts("macstudio-m2ultra-pyenv")),
                       ("box", "did not answer")], TARGET)
    assert lines[1].startswith("  studio1")
    assert lines[1].endswith("none")
    assert lines[2].startswith("! studio2")
    assert "Python 3.9.6 -> 3.9.23" in lines[2]
    assert "macos/arm64" in lines[2]
    assert "pyenv" in lines[2]
    assert lines[3].startswith("! box")
    assert lines[-1] == "  target: Python 3.9.23, Ray 2.40.0 (the head studio1)"


def test_the_log_tail_leaves_out_logs_older_than_the_start(tmp_path: Path) -> None:
    """A start that failed before writing a log must not be shown an older session's log as
    its own (the tail runs node_probe's `tail` on the node; here on real files)."""
    import os
    import time

    from saf.ray import node_probe

    logs = tmp_path / "session_2026-01-01_00-00-00_000000_1" / "logs"
    logs.mkdir(parents=True)
    (tmp_path / "session_latest").symlink_to(logs.parent)
    raylet, gcs = logs / "raylet.out", logs / "gcs_server.out"
    raylet.write_text("[2026-01-01 00:00:01,000 E 1 1] (raylet) main.cc:1: OLD SESSION\n")
    gcs.write_text("[2026-01-01 00:00:01,000 I 1 1] (gcs_server) x.cc:1: node_name=alpha\n")
    (logs / "runtime_env_agent.err").write_text("OSError: OLD AGENT\n")
    hour_ago = time.time() - 3600
    for path in logs.iterdir():
        os.utime(path, (hour_ago, hour_ago))
    args = {"temp_dir": str(tmp_path), "node_name": "alpha", "lines": 3}
    assert node_probe.tail({**args, "since": time.time()}) == {"logs": []}
    # Without a start time (or with logs written since), they are what there is to show.
    shown = json.dumps(node_probe.tail(args))
    assert "OLD SESSION" in shown
    assert "OLD AGENT" in shown
    assert "node_name=alpha" in shown
    os.utime(raylet)  # written now: this start's
    shown = json.dumps(node_probe.tail({**args, "since": time.time() - 5}))
    assert "OLD SESSION" in shown
    assert "OLD AGENT" not in shown
    assert "node_name=alpha" in shown  # the GCS log beside this start's raylet log


def test_a_restarted_nodes_old_dead_entry_is_not_a_node_down() -> None:
    """Ray lists a restarted worker twice for a while (its old raylet DEAD, the new one
    ALIVE): that node is up. A node whose only entry is DEAD is down (saf ray status exits
    1 and names it)."""
    import copy

    from saf.ray.status import status_from

    fixtures = Path(__file__).parent / "fixtures" / "ray"
    nodes = json.loads((fixtures / "dashboard-nodes.json").read_text())
    usage = json.loads((fixtures / "dashboard-cluster-status.json").read_text())
    rows = nodes["data"]["result"]["result"]
    gamma = next(r for r in rows if r["node_name"] == "gamma")
    old = dict(copy.deepcopy(gamma), node_id="f" * 56, state="DEAD",
               state_message="Expected termination: received SIGTERM")
    rows.append(old)
    status = status_from("http://127.0.0.1:8265", nodes, usage)
    assert len(status.nodes) == 4
    assert len(status.alive) == 3
    assert status.down == []
    assert status.to_json()["totals"]["nodes_down"] == []
    gamma["state"] = "DEAD"
    status = status_from("http://127.0.0.1:8265", nodes, usage)
    assert status.down == ["gamma"]
