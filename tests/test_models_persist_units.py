"""A model server kept by systemd (`model` with persist = true): the conversation of the
step's --check with a recorded systemd machine (tests/helpers/recorded.py), the exact
commands asserted, and the unit it would write checked by `systemd-analyze verify`. The
node's Python is this one, so its model-server facts (no server runs) are real."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from saf.cluster.initsys import SHOWN
from tests.helpers import recorded
from tests.helpers.recorded import RecordedNodes
from tests.helpers.servers import free_port
from tests.test_cluster_units import needs_analyze, verify
from tests.test_ray_persist_units import calls, machine, run

UNIT = "saf-model-tiny.service"
SHOW = f"systemctl show -p {','.join(SHOWN)} {UNIT}"
GONE = f"Id={UNIT}\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n" \
       "UnitFileState=\nNRestarts=0\nMainPID=0\n"  # composed, as test_cluster_initsys's


@pytest.fixture
def nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(recorded, "MACHINES", tmp_path / "machines")
    machine(tmp_path / "machines" / "m", GONE, UNIT)
    made = RecordedNodes(tmp_path / "run", {"n": "m"})
    yield made
    made.close()


def recipe(root: Path, port: int) -> Path:
    path = root / "models.toml"
    path.write_text(f'name = "m"\n\n[[steps]]\nkind = "model"\nengine = "llama-cpp-python"\n'
                    f'model = "~/models/tiny 1.gguf"\nport = "{port}"\npersist = "true"\n'
                    'server = "Tiny"\n')
    return path


def unit_text(would: str) -> str:
    """The unit in the command that writes it (`printf %s 'TEXT' > PATH`)."""
    found = re.search(r"printf %s ('(?:[^']|'\\\\'')*') >", would)
    assert found, would
    return shlex.split(found.group(1))[0]


def test_check_shows_the_unit_and_the_systemctl_commands(nodes, tmp_path: Path) -> None:
    port = free_port()
    check = run(nodes, recipe(tmp_path, port), check=True)
    assert check.status == "changed", (check.message, check.tail)
    assert check.message.startswith("would install a systemd system unit: llama-cpp-python "
                                    "as saf-model-tiny:"), check.message
    assert calls(nodes) == [SHOW]  # read only
    assert check.would[1:] == ["systemctl daemon-reload", f"systemctl enable {UNIT}",
                               f"systemctl restart {UNIT}"]
    assert f"/etc/systemd/system/{UNIT}" in check.would[0]
    text = unit_text(check.would[0])
    home = str(nodes.servers["n"].home)
    lines = text.splitlines()
    assert "Restart=always" in lines
    assert f"WorkingDirectory={home}" in lines
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    assert exec_start.startswith(f'ExecStart="{sys.executable}" "-m" "llama_cpp.server"')
    assert f'"{home}/models/tiny 1.gguf"' in exec_start  # ~/ put in the home
    assert f'"{port}"' in exec_start or f'"--port" "{port}"' in exec_start


@needs_analyze
def test_the_model_unit_passes_systemd_analyze_verify(nodes, tmp_path: Path) -> None:
    check = run(nodes, recipe(tmp_path, free_port()), check=True)
    done = verify(tmp_path, unit_text(check.would[0]), name=UNIT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert UNIT not in done.stdout + done.stderr, done.stdout + done.stderr
