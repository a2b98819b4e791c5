"""ray-up refuses before anything starts, naming the node and the reason, on a real loopback
fleet: the head's port taken (a listener opened first), a worker's Python differing from the
head's (a node whose `python` is a venv of another pyenv version), a worker that cannot reach
the head's port (its commands run in a network namespace with no route). These use `--check`
and a real run; no Ray is started, so they are quick."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.ray import free_ray_port, minimal_ray_python, ray_processes
from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory

PYENV_PYTHON = Path("/root/.pyenv/versions/3.12.1/bin/python3.12")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ClientKeys,
                                                                      AsyncsshServers]]:
    root = tmp_path_factory.mktemp("raypre")
    keys = ClientKeys(root / "operator")
    servers = AsyncsshServers(root, keys, ["alpha", "beta"])
    yield root, keys, servers
    servers.stop()


def _inventory(root: Path, keys: ClientKeys, servers: AsyncsshServers, name: str,
               beta: dict | None = None) -> Path:
    nodes = [{"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha"),
              "roles": ["head"]},
             {"name": "beta", "host": "127.0.0.1", "port": servers.port("beta"),
              "roles": ["worker"], **(beta or {})}]
    return write_inventory(root / f"{name}.toml", keys, nodes)


def _saf(inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAF_INVENTORY": str(inventory), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "saf", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def _vars(port: int, temp_dir: Path) -> list[str]:
    return ["--var", f"port={port}", "--var", f"dashboard_port={port + 99}",
            "--var", f"temp_dir={temp_dir}"]


def test_port_taken_is_refused_naming_the_owner(fleet, tmp_path: Path) -> None:
    """A listener on the head's port first: the head is refused with who holds it (this
    test's own process), the worker is not started either, in --check and for real."""
    root, keys, servers = fleet
    inv = _inventory(root, keys, servers, "taken")
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        for check in (["--check"], []):
            out = _saf(inv, "run", "ray-up", *check, *_vars(port, tmp_path / "r"))
            assert out.returncode == 1, out.stdout + out.stderr
            line = next(x for x in out.stdout.splitlines() if "alpha" in x and "failed" in x)
            assert f"the Ray port {port} is taken by pid {os.getpid()}" in line
        assert "not started: alpha" not in out.stdout
    assert ray_processes(tmp_path / "r") == []


@pytest.fixture(scope="module")
def other_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv of pyenv's Python 3.12.1 (this machine's image has pyenv's versions) whose Ray
    metadata says the head's Ray version: only the Python differs."""
    if not PYENV_PYTHON.exists():
        pytest.skip(f"{PYENV_PYTHON} is not installed (pyenv's 3.12.1 is part of the image)")
    import importlib.metadata

    venv = tmp_path_factory.mktemp("py312") / "venv"
    subprocess.run([str(PYENV_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    dist = venv / "lib" / "python3.12" / "site-packages" / (
        f"ray-{importlib.metadata.version('ray')}.dist-info")
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: ray\nVersion: {importlib.metadata.version('ray')}\n")
    return venv / "bin" / "python"


def test_python_mismatch_is_refused_pointing_at_python_match(fleet, other_python: Path,
                                                             tmp_path: Path) -> None:
    root, keys, servers = fleet
    inv = _inventory(root, keys, servers, "mismatch", {"python": str(other_python)})
    out = _saf(inv, "run", "ray-up", *_vars(free_ray_port(2), tmp_path / "r"))
    assert out.returncode == 1, out.stdout + out.stderr
    beta = next(x for x in out.stdout.splitlines() if x.strip().startswith("✗ beta"))
    ours = ".".join(map(str, sys.version_info[:3]))
    assert "Python 3.12.1 / Ray" in beta
    assert f"head alpha's Python {ours}" in beta
    assert "saf run python-match" in beta
    alpha = next(x for x in out.stdout.splitlines() if x.strip().startswith("✗ alpha"))
    assert "not started: beta is refused" in alpha
    assert ray_processes(tmp_path / "r") == []


@pytest.fixture
def isolated_python(tmp_path: Path) -> Iterator[Path]:
    """A `python` for the worker that runs inside a network namespace of its own, with no
    route anywhere: the worker cannot reach the head."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 for a network namespace")
    name = f"saf-ray-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace: {made.stderr.strip()}")
    wrapper = tmp_path / "python-isolated"
    wrapper.write_text(f"#!/bin/sh\nexec ip netns exec {name} {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    try:
        yield wrapper
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def test_unreachable_head_is_refused_from_the_worker(fleet, isolated_python: Path,
                                                     tmp_path: Path) -> None:
    root, keys, servers = fleet
    inv = _inventory(root, keys, servers, "unreachable", {"python": str(isolated_python)})
    port = free_ray_port(2)
    out = _saf(inv, "run", "ray-up", "--check", *_vars(port, tmp_path / "r"))
    assert out.returncode == 1, out.stdout + out.stderr
    beta = next(x for x in out.stdout.splitlines() if x.strip().startswith("✗ beta"))
    assert f"cannot reach the head's port 127.0.0.1:{port} from here (unreachable" in beta


def test_ray_without_its_dashboard_is_refused_naming_the_fix(fleet, tmp_path: Path) -> None:
    """beta's Ray is a bare `pip install ray` (no dashboard, no Ray Client): ray-up refuses
    beta before anything starts, naming what is missing and the pip command for beta's own
    Python, and python-match --check marks beta as the odd one out."""
    root, keys, servers = fleet
    inv = _inventory(root, keys, servers, "minimal",
                     {"python": str(minimal_ray_python(tmp_path))})
    for check in (["--check"], []):
        out = _saf(inv, "run", "ray-up", *check, *_vars(free_ray_port(2), tmp_path / "r"))
        assert out.returncode == 1, out.stdout + out.stderr
        text = " ".join(out.stdout.split())
        beta = text[text.index("✗ beta"):]
        assert "its Ray lacks Ray Client (ModuleNotFoundError: No module named 'grpc')" in beta
        assert "and the dashboard (ModuleNotFoundError" in beta
        assert f"{sys.executable} -m pip install 'ray[default]==" in beta
        assert "not started: beta is refused" in text
    assert ray_processes(tmp_path / "r") == []
    out = _saf(inv, "run", "python-match", "--check")
    beta = next(x for x in out.stdout.splitlines() if x.strip().startswith("● beta"))
    assert "odd one out" in beta, out.stdout
    assert "lacks Ray Client" in beta, out.stdout
    assert "ray[default]==" in out.stdout


def test_saf_installs_the_ray_parts_its_demo_starts() -> None:
    """`pip install .` (the README's) gives `saf demo` a Ray whose dashboard and client
    start: saf's own Ray requirement names extras that, by Ray's own metadata, bring every
    distribution Ray's dashboard and client import (ray/dashboard/optional_deps.py)."""
    import importlib.metadata
    import tomllib

    from packaging.requirements import Requirement

    data = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    ray = next(Requirement(r) for r in data["project"]["dependencies"]
               if Requirement(r).name == "ray")
    brought = set()
    for line in importlib.metadata.requires("ray") or []:
        req = Requirement(line)
        if req.marker is not None and any(req.marker.evaluate({"extra": e})
                                          for e in ray.extras):
            brought.add(req.name.lower().replace("_", "-"))
    needed = {"aiohttp", "aiohttp-cors", "grpcio", "opencensus", "prometheus-client",
              "pydantic", "opentelemetry-proto", "opentelemetry-exporter-prometheus"}
    assert needed <= brought, f"{ray} lacks {sorted(needed - brought)}"
