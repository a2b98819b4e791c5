"""A node that only its jump host can reach, for real: two network namespaces, `bastion`
and `inner`, each with its own sshd; inner's replies to the operator's address go nowhere
(a `prohibit` route inside inner), so the operator reaches inner only through bastion.
saf exec, the agent (saf top) and a recipe run on inner through `jump = "bastion"`."""

from __future__ import annotations

import getpass
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import tomli_w

from saf.connect import hostkeys
from tests.helpers.netns import IP, NetnsCluster, netns_skip_reason


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsCluster]:
    reason = netns_skip_reason()
    if reason:
        pytest.skip(reason)
    cluster = NetnsCluster(tmp_path_factory.mktemp("jump"), ["bastion", "inner"])
    try:
        assert IP is not None
        cluster.exec("inner", [IP, "route", "add", "prohibit",
                               f"{cluster.operator_address}/32"])
        _write(cluster, jump="bastion")
        yield cluster
    finally:
        cluster.close()


def _write(net: NetnsCluster, *, jump: str, path: Path | None = None,
           **inner: Any) -> Path:
    """The cluster's inventory with inner's `jump` (and more keys of inner) set."""
    import tomllib

    data = tomllib.loads(net.inventory_path.read_text())
    node = next(n for n in data["nodes"] if n["name"] == "inner")
    node.update(jump=jump, **inner)
    path = path or net.inventory_path
    path.write_text(tomli_w.dumps(data))
    return path


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _finished(stdout: str) -> dict[str, dict[str, Any]]:
    return {e["node"]: e for e in _events(stdout) if e["event"] == "command_finished"}


def test_inner_cannot_be_reached_without_its_jump_host(net, tmp_path):
    """The ground the other tests stand on: straight to inner, nothing answers."""
    direct = _write(net, jump="none", path=tmp_path / "direct.toml", connect_timeout=1)
    done = net.saf("-i", str(direct), "exec", "--on", "inner", "--json", "true")
    assert _finished(done.stdout)["inner"]["reason"] == "timeout"


def test_exec_runs_on_inner_through_bastion(net):
    done = net.saf("exec", "--on", "all", "--json", "ip -4 -o addr show dev eth0")
    assert done.returncode == 0, done.stderr
    output = {"bastion": "", "inner": ""}
    for event in _events(done.stdout):
        if event["event"] == "output":
            output[event["node"]] += event["line"]
    assert f"inet {net.address('inner')}/" in output["inner"]
    assert f"inet {net.address('bastion')}/" in output["bastion"]


def test_the_agent_on_inner_reports_through_bastion(net):
    done = net.saf("top", "--once", "--json", "--on", "inner")
    assert done.returncode == 0, done.stderr
    (answer,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert (answer["node"], answer["status"]) == ("inner", "up")
    assert answer["samples"] >= 1
    nics = {n["name"]: n for n in answer["sample"]["nics"]}
    assert net.address("inner") in nics["eth0"]["addresses"]


def test_a_recipe_uploads_and_runs_on_inner_through_bastion(net, tmp_path):
    (tmp_path / "payload").write_text("through the bastion\n")
    dest = tmp_path / "landed" / "payload"
    recipe = tmp_path / "through.toml"
    recipe.write_text(f"""\
name = "through"

[[steps]]
name = "upload"
kind = "upload"
src = "payload"
dest = "{dest}"

[[steps]]
name = "where"
run = "cat {dest} && ip -4 -o addr show dev eth0"
""")
    done = net.saf("run", str(recipe), "--on", "inner", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = "".join(e.get("line", "") for e in _events(done.stdout))
    assert "through the bastion" in lines
    assert f"inet {net.address('inner')}/" in lines
    assert dest.read_text() == "through the bastion\n"


def test_a_node_the_jump_host_cannot_reach_says_so(net, tmp_path):
    path = _write(net, jump="bastion", path=tmp_path / "closed.toml", port=2)
    done = net.saf("-i", str(path), "exec", "--on", "inner", "--json", "true")
    finished = _finished(done.stdout)["inner"]
    assert finished["reason"] == "unreachable"
    assert finished["message"] == (f"jump host bastion cannot reach {getpass.getuser()}@"
                                   f"{net.address('inner')}:2: Connection refused")


def test_an_unknown_key_behind_the_jump_host_is_fetched_through_it(net, tmp_path):
    """inner's key forgotten: the refusal shows inner's real fingerprint (fetched through
    bastion: inner does not answer the operator), and `saf trust inner` records it."""
    known = net.keys.known_hosts
    kept = known.read_text()
    shutil.copy(known, tmp_path / "known_hosts")
    inner_line = next(line for line in kept.splitlines()
                      if line.split(" ", 1)[0] == net.address("inner"))
    fp = hostkeys.fingerprint(asyncssh.import_public_key(inner_line.split(" ", 1)[1]))
    try:
        known.write_text("".join(line + "\n" for line in kept.splitlines()
                                 if line != inner_line))
        done = net.saf("exec", "--on", "inner", "--json", "true")
        finished = _finished(done.stdout)["inner"]
        assert finished["reason"] == "hostkey"
        assert finished["message"] == (
            f"host key is not known (fingerprint {fp}); check it, then run `saf trust inner` "
            f"to record it in {known}")
        trusted = net.saf("trust", "inner", "--yes")
        assert trusted.returncode == 0, trusted.stderr
        assert f"inner ({net.address('inner')}:22): ssh-ed25519 {fp} (not yet trusted)" \
            in trusted.stdout
        again = net.saf("exec", "--on", "inner", "--json", "true")
        assert _finished(again.stdout)["inner"]["status"] == "ok", again.stdout
    finally:
        known.write_text(kept)
