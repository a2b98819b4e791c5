"""python-match on a loopback fleet whose nodes were made different on purpose: the head runs
this test's Python (with Ray), beta's python is a venv of pyenv's 3.12.1 without Ray, gamma's
python is a venv that does not exist yet. `--check` prints the matrix with the odd ones and
each node's exact commands; the verify step fails the odd ones; then the real run fixes both
(pyenv's Python, a new venv, ray[default] pinned to the head's: pip takes its wheels from the
cache the test extra filled, about half a minute a node) and the verify step passes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory

PYENV_312 = Path("/root/.pyenv/versions/3.12.1/bin/python3.12")
OURS = ".".join(map(str, sys.version_info[:3]))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    pyenv = shutil.which("pyenv")
    if not PYENV_312.exists() or pyenv is None:
        pytest.skip("pyenv with Python 3.12.1 is not installed (it is part of this image)")
    ours = Path(pyenv).parent.parent / "versions" / OURS / "bin" / "python3"
    if not ours.exists():
        pytest.skip(f"pyenv has no {OURS}, the Python these tests run on")
    root = tmp_path_factory.mktemp("pymatch")
    keys = ClientKeys(root / "operator")
    servers = AsyncsshServers(root, keys, ["alpha", "beta", "gamma"])
    odd = root / "py312"
    subprocess.run([str(PYENV_312), "-m", "venv", "--without-pip", str(odd)], check=True,
                   timeout=120)
    gamma_venv = root / "gamma-venv"
    nodes = [{"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha"),
              "roles": ["head"]},
             {"name": "beta", "host": "127.0.0.1", "port": servers.port("beta"),
              "roles": ["worker"], "python": str(odd / "bin" / "python")},
             {"name": "gamma", "host": "127.0.0.1", "port": servers.port("gamma"),
              "roles": ["worker"], "python": str(gamma_venv / "bin" / "python")}]
    inventory = write_inventory(root / "saf.toml", keys, nodes)
    yield inventory, gamma_venv
    servers.stop()


def _saf(inventory: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAF_INVENTORY": str(inventory), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "saf", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_check_prints_the_matrix_and_the_commands(fleet) -> None:
    inventory, gamma_venv = fleet
    out = _saf(inventory, "run", "python-match", "--check")
    text = out.stdout
    assert out.returncode == 0, text + out.stderr
    lines = text.splitlines()
    alpha = next(x for x in lines if x.strip().startswith("– alpha"))
    assert f"Python {OURS}, Ray" in alpha
    assert "as the head alpha" in alpha
    beta = next(x for x in lines if x.strip().startswith("● beta"))
    assert "odd one out: Python 3.12.1, Ray none (linux/x86_64" in beta
    assert f"-> Python {OURS}" in beta
    gamma = next(x for x in lines if x.strip().startswith("● gamma"))
    # Its python does not exist yet: python3 answers for it (the head's exact version here).
    assert f"odd one out: Python {OURS}, Ray none in python3" in gamma
    assert "not made yet" in gamma
    assert f"pyenv install -s {OURS}" in text
    assert f"-m venv {gamma_venv}" in text
    assert "ray[default]==" in text
    assert not gamma_venv.exists()  # --check changed nothing
    # The whole matrix, odd ones marked, with -v.
    matrix = _saf(inventory, "run", "python-match", "--check", "-v").stdout
    assert f"target: Python {OURS}, Ray" in matrix
    assert "(the head alpha)" in matrix
    row = next(x for x in matrix.splitlines() if "! beta" in x)
    assert "3.12.1" in row
    assert f"Python 3.12.1 -> {OURS}" in row
    assert not any("! alpha" in x for x in matrix.splitlines())


def test_verify_fails_the_odd_ones_out(fleet, tmp_path: Path) -> None:
    """The recipe's last step alone: alpha ok, beta and gamma fail, named."""
    inventory, _ = fleet
    recipe = tmp_path / "verify.toml"
    recipe.write_text('[[steps]]\nname = "verify"\nkind = "python_match"\nverify = true\n')
    out = _saf(inventory, "run", str(recipe))
    assert out.returncode == 1, out.stdout
    lines = out.stdout.splitlines()
    assert any(line.strip().startswith("✓ alpha") for line in lines), out.stdout
    for node in ("beta", "gamma"):
        line = next(x for x in lines if x.strip().startswith(f"✗ {node}"))
        assert "the odd one out" in line
        if node == "beta":
            assert "Python 3.11" not in line.split("not")[0]
        else:  # python3 answered for the venv not made yet; still the odd one out
            assert "in python3" in line
            assert "not made yet" in line


def test_zz_the_real_run_fixes_the_odd_ones_out(fleet) -> None:
    """Last in the module (it changes the nodes): beta's 3.12 venv is moved aside and made
    again on the head's Python with the head's Ray, gamma's is made; verify then passes on
    every node, and a rerun changes nothing."""
    import ray

    inventory, gamma_venv = fleet
    out = _saf(inventory, "run", "python-match", timeout=1500)
    assert out.returncode == 0, out.stdout + out.stderr
    for python in (gamma_venv / "bin" / "python",
                   Path(next(line for line in inventory.read_text().splitlines()
                             if "py312" in line).split('"')[1])):
        said = subprocess.run([str(python), "-c", "import sys, ray; print("
                               "'.'.join(map(str, sys.version_info[:3])), ray.__version__)"],
                              capture_output=True, text=True, timeout=120)
        assert said.stdout.split() == [OURS, ray.__version__], said.stderr
    assert list(gamma_venv.parent.glob("py312.saf-old-*")), "the old venv was not kept"
    again = _saf(inventory, "run", "python-match")
    assert again.returncode == 0, again.stdout
    assert "changed" not in again.stdout.split("match python and ray")[1].split("verify")[0]
