"""python-match on fresh nodes: Debian's python3 (3.11.2 here, /usr/bin/python3), no pyenv, no
uv, and the inventory's python (`~/saf-venv/bin/python`, as the README writes it) not made yet.
The nodes are loopback SSH servers whose PATH is /usr/bin:/bin; their HTTPS goes to a closed
loopback port, so a download fails at once with curl's own error, as it does offline."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory

DEBIAN = Path("/usr/bin/python3")
NAMES = ["alpha", "beta"]


def _version(python: Path) -> str:
    return subprocess.run([str(python), "-c", "import platform; print(platform."
                           "python_version())"], capture_output=True, text=True,
                          timeout=60).stdout.strip()


@dataclass
class Fresh:
    env: dict[str, str]
    homes: dict[str, Path]
    version: str
    nodes: list[dict[str, object]]
    keys: ClientKeys

    def saf(self, *args: str, python: str | None = None) -> subprocess.CompletedProcess[str]:
        """`saf ARGS`; with `python`, on an inventory of the same nodes naming that python."""
        env = self.env
        if python is not None:
            path = Path(env["SAF_STATE_DIR"]).parent / f"saf-{len(python)}.toml"
            write_inventory(path, self.keys, self.nodes, python=python)
            env = {**env, "SAF_INVENTORY": str(path)}
        return subprocess.run([sys.executable, "-m", "saf", *args], env=env,
                              capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    if not DEBIAN.exists():
        pytest.skip("no /usr/bin/python3 to stand for a fresh node's python3")
    version = _version(DEBIAN)
    root = tmp_path_factory.mktemp("fresh")
    keys = ClientKeys(root / "operator")
    node_env = {"PATH": "/usr/bin:/bin", "https_proxy": "http://127.0.0.1:9",
                "HTTPS_PROXY": "http://127.0.0.1:9", "PYENV_VERSION": ""}
    servers = AsyncsshServers(root, keys, NAMES, env=node_env)
    try:
        nodes: list[dict[str, object]] = [
            {"name": n, "host": "127.0.0.1", "port": servers.port(n),
             "roles": ["head" if n == "alpha" else "worker"]} for n in NAMES]
        inventory = write_inventory(root / "saf.toml", keys, nodes,
                                    python="~/saf-venv/bin/python")
        env = {**os.environ, "SAF_INVENTORY": str(inventory), "COLUMNS": "250",
               "SAF_STATE_DIR": str(root / "state"), "SAF_CONFIG_DIR": str(root / "config")}
        yield Fresh(env, {n: servers.home(n) for n in NAMES}, version, nodes, keys)
    finally:
        servers.stop()


def test_the_matrix_reads_python3_and_asks_only_for_ray(fresh: Fresh) -> None:
    """python3's version is shown (marked *) and is the target; only Ray must be given."""
    done = fresh.saf("run", "python-match", "--check", "-v")
    text = done.stdout
    assert done.returncode == 1, text + done.stderr
    assert "--var ray=X.Y.Z" in text
    assert "--var python=" not in text
    assert "has no Ray in python3 (~/saf-venv/bin/python is not made yet)" in text
    rows = [line for line in text.splitlines() if line.lstrip("! ").startswith(tuple(NAMES))
            and "linux/" in line]
    assert len(rows) == len(NAMES), text
    assert all(f"{fresh.version}*" in r for r in rows), text


def test_the_exact_python_present_only_gets_a_venv(fresh: Fresh) -> None:
    """With --var ray, each node's plan makes the venv with its python3 (already the head's
    exact version) and installs Ray: no Python is downloaded."""
    done = fresh.saf("run", "python-match", "--check", "--var", "ray=2.40.0")
    text = done.stdout
    assert done.returncode == 0, text + done.stderr
    assert text.count(f"would run: {DEBIAN} -m venv \"$HOME\"/saf-venv") == len(NAMES), text
    assert "uv python install" not in text
    assert "pyenv install" not in text
    assert "curl" not in text


def test_a_failed_download_says_curls_own_error(fresh: Fresh) -> None:
    """Another Python must come by uv, whose installer cannot be fetched: the step fails with
    curl's error, not with `uv: not found` from the next command."""
    done = fresh.saf("run", "python-match", "--on", "beta", "--var", "python=3.12.1",
                     "--var", "ray=2.40.0")
    text = done.stdout
    assert done.returncode == 1, text + done.stderr
    assert "curl: (7)" in text, text
    assert "uv: not found" not in text
    assert "not found" not in text.split("curl: (7)")[0]
    assert not (fresh.homes["beta"] / ".local" / "bin" / "uv").exists()


def test_a_python_with_arguments_not_made_yet_falls_back_to_python3(fresh: Fresh) -> None:
    """`python = "/usr/bin/env ~/saf-venv/bin/python"` (issue 22 item 17): the probe asked
    `command -v /usr/bin/env`, found env, ran the missing python and failed ("could not run
    saf's Ray probe"); and the venv was taken to be the folder `/usr/bin/env ~/saf-venv`.
    Now python3's facts are read, the venv goes to the recipe's folder, and the note says
    which python to name."""
    done = fresh.saf("run", "python-match", "--check", "--var", "ray=2.40.0",
                     python="/usr/bin/env ~/saf-venv/bin/python")
    text = done.stdout
    assert done.returncode == 0, text + done.stderr
    assert "could not run" not in text
    assert text.count("in python3, /usr/bin/env ~/saf-venv/bin/python not made yet") >= 2, text
    commands = [line for line in text.splitlines() if "would run:" in line]
    assert commands, commands
    assert not [c for c in commands if "/usr/bin/env" in c], commands
    assert text.count(f"{DEBIAN} -m venv \"$HOME\"/.saf/venv") == len(NAMES), text


def test_check_shows_the_inventory_edit_and_writes_nothing(fresh: Fresh) -> None:
    """A node whose python is outside a venv gets python-venv's venv (`~/.saf/venv`, one path
    for both recipes); --check names the line of the inventory that would say so, and only
    with write_inventory=true is it offered as an edit. The file is untouched."""
    done = fresh.saf("run", "python-match", "--check", "--var", "ray=2.40.0",
                     python=str(DEBIAN))
    text = done.stdout
    assert done.returncode == 0, text + done.stderr
    assert text.count('set python = "~/.saf/venv/bin/python" for ') == len(NAMES), text
    assert text.count("(--var write_inventory=true writes it)") == len(NAMES), text
    inventory = Path(fresh.env["SAF_STATE_DIR"]).parent / f"saf-{len(str(DEBIAN))}.toml"
    before = inventory.read_bytes()
    done = fresh.saf("run", "python-match", "--check", "--var", "ray=2.40.0", "--var",
                     "write_inventory=true", python=str(DEBIAN))
    text = done.stdout
    assert done.returncode == 0, text + done.stderr
    lines = inventory.read_text().splitlines()
    for name in NAMES:
        # It inherits python from [defaults]: a line goes in under its name.
        at = lines.index(f'name = "{name}"') + 2
        assert f'would write {inventory}:{at}: + python = "~/.saf/venv/bin/python"' in \
            " ".join(text.split()), text
    assert inventory.read_bytes() == before
