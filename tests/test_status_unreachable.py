"""`saf status` where nodes do not answer SSH (ports nothing listens on, beside saf's own SSH
server on loopback for the one that answers): what may run on a node that does not answer is
`unreachable` (cannot be known), never `missing` (known not to run) nor `down`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.servers import AsyncsshServers, ClientKeys, free_port, write_inventory

DECLARED = ('\n[ray]\nhead = "alpha"\ntemp_dir = "/tmp/saf-status-test-no-ray"\n'
            '\n[[services]]\nname = "beat"\non = "beta"\ncommand = "/bin/sleep 600"\n'
            '\n[[models]]\nname = "tiny"\nplacement = "auto"\nreplicas = 2\n'
            'engine = "llama-cpp-python"\nmodel = "/models/tiny.gguf"\nport = 18080\n')


def status(inventory: Path, root: Path, replicas: dict | None = None) -> tuple[int, dict]:
    state = root / "st"
    if replicas is not None:
        (state / "up").mkdir(parents=True, exist_ok=True)
        (state / "up" / "replicas-test.json").write_text(json.dumps(replicas))
    env = {**os.environ, "SAF_INVENTORY": str(inventory), "SAF_STATE_DIR": str(state),
           "SAF_CONFIG_DIR": str(root / "config")}
    done = subprocess.run([sys.executable, "-m", "saf", "status", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def verdicts(data: dict) -> dict[str, str]:
    out = {f"ray@{r['node']}": r["verdict"] for r in data["ray"]["nodes"]}
    out.update({f"{r['service']}@{r['node']}": r["verdict"] for r in data["services"]})
    out.update({f"{r['model']}@{r['node']}": r["verdict"] for r in data["models"]})
    return out


def test_nothing_is_missing_where_no_node_answers(tmp_path: Path) -> None:
    """Every node unreachable: the placed model's "(placed)" row said `missing` (0 of 2
    replicas run) though its replicas may run on the nodes that do not answer; the node a
    replica was last placed on gets its own `unreachable` row."""
    keys = ClientKeys(tmp_path / "operator")
    inventory = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": "alpha", "host": "127.0.0.1", "port": free_port(), "roles": ["head"]},
        {"name": "beta", "host": "127.0.0.1", "port": free_port()},
        {"name": "gamma", "host": "127.0.0.1", "port": free_port()}])
    with inventory.open("a") as f:
        f.write(DECLARED)
    code, data = status(inventory, tmp_path, {"tiny": [{"node": "gamma"}]})
    assert code == 1
    assert [n["verdict"] for n in data["nodes"]] == ["unreachable"] * 3
    assert verdicts(data) == {
        "ray@alpha": "unreachable", "ray@beta": "unreachable", "ray@gamma": "unreachable",
        "beat@beta": "unreachable", "tiny@gamma": "unreachable",
        "tiny@(placed)": "unreachable"}
    placed = next(r for r in data["models"] if r["node"] == "(placed)")
    assert placed["why"] == ("0 of 2 replicas run on the nodes that answer; "
                             "alpha, beta do not answer SSH")
    assert data["counts"] == {"unreachable": 9}


def test_a_head_that_does_not_answer_leaves_ray_unknown_on_the_others(tmp_path: Path) -> None:
    """The head does not answer, so its dashboard cannot be read: a worker that answers SSH
    was judged `down` (Ray not running), though nothing is known of its Ray. A placed model
    with fewer places left than replicas is `missing` all the same."""
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["beta"])
    try:
        inventory = write_inventory(tmp_path / "saf.toml", keys, [
            {"name": "alpha", "host": "127.0.0.1", "port": free_port(), "roles": ["head"]},
            {"name": "beta", "host": "127.0.0.1", "port": servers.port("beta")}])
        with inventory.open("a") as f:
            f.write(DECLARED.replace("replicas = 2", "replicas = 3"))
        code, data = status(inventory, tmp_path)
        assert code == 1
        found = verdicts(data)
        assert (found["ray@alpha"], found["ray@beta"]) == ("unreachable", "unreachable")
        ray = {r["node"]: r for r in data["ray"]["nodes"]}
        assert ray["beta"]["why"].startswith("the head alpha does not answer SSH")
        assert found["beat@beta"] == "missing"
        placed = next(r for r in data["models"] if r["node"] == "(placed)")
        assert (placed["verdict"], placed["why"]) == (
            "missing", "0 of 3 replicas run (alpha does not answer SSH)")
    finally:
        servers.stop()
