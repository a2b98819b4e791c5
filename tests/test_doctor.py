"""`saf doctor` finds each fault injected into a real loopback fleet, one per check: a key the
node does not know (ssh), a worker on another Python (versions), a listener on the head's
port (head port), a worker in a network namespace with no route (head reachable), a node
reached by a non-loopback address beside nodes on loopback (address), a worker whose clock
runs 30 s ahead (clock: its python runs under libfaketime). The macOS variable and `mlx`
cannot be faked on these nodes: they are checked from recorded Mac facts with the same
decision function."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from msgspec.structs import replace

from saf.inventory.model import Cluster, Defaults, Inventory, Node
from saf.ray.doctor import Seen, findings
from tests.helpers.ray import minimal_ray_python
from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory
from tests.test_ray_command import facts

PYENV_312 = Path("/root/.pyenv/versions/3.12.1/bin/python3.12")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ClientKeys,
                                                                      AsyncsshServers]]:
    root = tmp_path_factory.mktemp("doctor")
    keys = ClientKeys(root / "operator")
    servers = AsyncsshServers(root, keys, ["alpha", "beta"])
    yield root, keys, servers
    servers.stop()


def _doctor(root: Path, keys: ClientKeys, servers: AsyncsshServers, *args: str,
            beta: dict | None = None, name: str = "inv") -> tuple[int, dict[tuple[str, str],
                                                                         dict]]:
    nodes = [{"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha"),
              "roles": ["head"]},
             {"name": "beta", "host": "127.0.0.1", "port": servers.port("beta"),
              "roles": ["worker"], **(beta or {})}]
    inventory = write_inventory(root / f"{name}.toml", keys, nodes)
    env = {**os.environ, "SAF_INVENTORY": str(inventory)}
    out = subprocess.run([sys.executable, "-m", "saf", "doctor", "--json", *args], env=env,
                         capture_output=True, text=True, timeout=120)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    return out.returncode, {(r["node"], r["check"]): r for r in rows}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def test_a_healthy_fleet_has_no_failure(fleet) -> None:
    code, rows = _doctor(*fleet, "--port", str(_free_port()))
    assert code == 0, rows
    assert rows[("alpha", "head port")]["status"] == "pass"
    assert rows[("beta", "head reachable")]["status"] == "warn"  # no Ray yet
    assert all(r["status"] != "fail" for r in rows.values())


def test_a_key_the_node_does_not_know_fails_ssh(fleet, tmp_path: Path) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    stranger.write_private_key(tmp_path / "id")
    os.chmod(tmp_path / "id", 0o600)
    code, rows = _doctor(*fleet, beta={"identity": str(tmp_path / "id")}, name="auth")
    assert code == 1
    assert rows[("beta", "ssh")]["status"] == "fail"
    assert rows[("beta", "ssh")]["evidence"].startswith("auth")
    assert "saf keys push beta" in rows[("beta", "ssh")]["fix"]
    assert rows[("alpha", "ssh")]["status"] == "pass"


def test_another_python_fails_versions(fleet, tmp_path: Path) -> None:
    if not PYENV_312.exists():
        pytest.skip(f"{PYENV_312} is not installed (pyenv's 3.12.1 is part of this image)")
    subprocess.run([str(PYENV_312), "-m", "venv", "--without-pip", str(tmp_path / "v")],
                   check=True, timeout=120)
    code, rows = _doctor(*fleet, beta={"python": str(tmp_path / "v" / "bin" / "python")},
                         name="versions")
    assert code == 1
    row = rows[("beta", "versions")]
    assert row["status"] == "fail"
    assert "no Ray in" in row["evidence"]
    assert row["fix"] == "saf run python-match"


def test_ray_without_its_dashboard_fails_ray_parts(fleet, tmp_path: Path) -> None:
    """beta's Ray is a bare `pip install ray`: `ray parts` fails naming what is missing and
    the pip command for beta's own Python; alpha's Ray passes."""
    code, rows = _doctor(*fleet, beta={"python": str(minimal_ray_python(tmp_path))},
                         name="parts")
    assert code == 1
    row = rows[("beta", "ray parts")]
    assert row["status"] == "fail", row
    assert "No module named 'grpc'" in row["evidence"], row
    assert row["fix"] == f"{sys.executable} -m pip install 'ray[default]=={_ray_version()}'"
    assert rows[("alpha", "ray parts")]["status"] == "pass"


def _ray_version() -> str:
    import importlib.metadata
    return importlib.metadata.version("ray")


def test_a_missing_venv_fails_python_not_ssh(fleet, tmp_path: Path) -> None:
    """beta's inventory `python` does not exist (its venv not made yet): SSH passes, the
    python check fails with how to make it, and the checks that need no particular Python
    still run (with python3)."""
    missing = tmp_path / "venv" / "bin" / "python"
    code, rows = _doctor(*fleet, beta={"python": str(missing)}, name="novenv")
    assert code == 1
    assert rows[("beta", "ssh")]["status"] == "pass"
    row = rows[("beta", "python")]
    assert row["status"] == "fail", row
    assert f"{missing} does not exist" in row["evidence"], row
    assert "saf run python-match" in row["fix"]
    for check in ("head reachable", "address", "clock", "macOS variable"):
        assert (("beta", check)) in rows, sorted(rows)
    assert rows[("beta", "clock")]["status"] == "pass"
    assert ("beta", "versions") not in rows  # it needs beta's own Python
    assert rows[("alpha", "python")]["status"] == "pass"


def test_a_clock_30_s_ahead_fails_clock(fleet, tmp_path: Path) -> None:
    """beta's python runs under libfaketime 30 s ahead: the doctor reads beta's clock off
    by that much (less the round trip) and fails it; alpha's clock passes."""
    faketime = shutil.which("faketime")
    if faketime is None:
        pytest.skip("faketime is not installed (apt-get install faketime; .ci/run does)")
    wrapper = tmp_path / "python-ahead"
    wrapper.write_text(f"#!/bin/sh\nexec {faketime} -f +30s {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    code, rows = _doctor(*fleet, beta={"python": str(wrapper)}, name="clock")
    assert code == 1
    row = rows[("beta", "clock")]
    assert row["status"] == "fail", row
    skew = float(row["evidence"].split()[0])
    assert 28.0 < skew < 31.0, row
    assert rows[("alpha", "clock")]["status"] == "pass"


def test_a_listener_on_the_head_port_fails_head_port(fleet) -> None:
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code, rows = _doctor(*fleet, "--port", str(port), name="port")
    assert code == 1
    row = rows[("alpha", "head port")]
    assert row["status"] == "fail"
    assert f"taken by pid {os.getpid()}" in row["evidence"]


def test_a_worker_without_a_route_fails_head_reachable(fleet, tmp_path: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 for a network namespace")
    name = f"saf-doc-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode:
        pytest.skip("cannot make a network namespace here")
    try:
        wrapper = tmp_path / "python"
        wrapper.write_text(f"#!/bin/sh\nexec ip netns exec {name} {sys.executable} \"$@\"\n")
        wrapper.chmod(0o755)
        code, rows = _doctor(*fleet, beta={"python": str(wrapper)}, name="route")
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    assert code == 1
    row = rows[("beta", "head reachable")]
    assert row["status"] == "fail"
    assert "unreachable" in row["evidence"]


def _outside_address() -> str | None:
    """This machine's first non-loopback IPv4 address, if it has one."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        address = line.split()[3].split("/")[0]
        if not address.startswith("127."):
            return address
    return None


def test_loopback_beside_a_real_address_fails_address(tmp_path: Path) -> None:
    """beta reached by this machine's real address: two machines as far as the inventory
    says, so alpha, on 127.0.0.1, would advertise loopback."""
    address = _outside_address() if shutil.which("ip") else None
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    keys = ClientKeys(tmp_path / "operator")
    alpha = AsyncsshServers(tmp_path / "a", keys, ["alpha"])
    beta = AsyncsshServers(tmp_path / "b", keys, ["beta"], host=address)
    try:
        nodes = [{"name": "alpha", "host": "127.0.0.1", "port": alpha.port("alpha"),
                  "roles": ["head"]},
                 {"name": "beta", "host": address, "port": beta.port("beta"),
                  "roles": ["worker"]}]
        inventory = write_inventory(tmp_path / "saf.toml", keys, nodes)
        env = {**os.environ, "SAF_INVENTORY": str(inventory)}
        out = subprocess.run([sys.executable, "-m", "saf", "doctor", "--json"], env=env,
                             capture_output=True, text=True, timeout=120)
    finally:
        alpha.stop()
        beta.stop()
    rows = {(r["node"], r["check"]): r for r in map(json.loads, out.stdout.splitlines())}
    assert rows[("alpha", "address")]["status"] == "fail"
    assert "would advertise 127.0.0.1 on a cluster of 2 machines" in \
        rows[("alpha", "address")]["evidence"]
    assert rows[("beta", "address")]["status"] == "pass"


# -- the checks that need a Mac, from recorded facts ----------------------------------------

MACS = Inventory(Cluster("t"), Defaults(), (Node("studio1", "10.10.0.1", roles=("head",)),
                                            Node("studio2", "10.10.0.2", roles=("worker",))))


def _mac_findings(**seen: Seen) -> dict[tuple[str, str], tuple[str, str]]:
    return {(f.node, f.check): (f.status, f.evidence)
            for f in findings(MACS, seen, 6380)}


def test_macos_variable_mlx_and_clock_from_recorded_macs() -> None:
    brew = facts("macstudio-m2ultra-brew")  # mlx installed, no variable
    pyenv = facts("macstudio-m2ultra-pyenv")  # no mlx
    rows = _mac_findings(studio1=Seen(brew, skew=0.2, probe=None),
                         studio2=Seen(pyenv, skew=7.5, probe="timeout"))
    assert rows[("studio1", "macOS variable")][0] == "fail"
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is not set" in rows[("studio1",
                                                                  "macOS variable")][1]
    assert rows[("studio1", "mlx")][0] == "pass"
    assert rows[("studio2", "mlx")] == ("fail", "mlx is not importable in /usr/bin/python3")
    assert rows[("studio1", "clock")][0] == "pass"
    assert rows[("studio2", "clock")] == ("fail", "+7.50 s from this machine")
    assert rows[("studio2", "versions")][0] == "fail"  # 3.9.6 against the head's 3.9.23
    assert rows[("studio2", "head reachable")][0] == "fail"
    assert rows[("studio2", "address")] == ("pass", "advertises 10.10.0.2")
    set_var = replace(brew, osx_cluster_env="1")
    rows = _mac_findings(studio1=Seen(set_var, skew=1.5), studio2=Seen(pyenv, skew=0.0))
    assert rows[("studio1", "macOS variable")][0] == "pass"
    assert rows[("studio1", "clock")][0] == "warn"
