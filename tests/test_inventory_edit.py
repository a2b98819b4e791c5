"""Editing a node's `python =` in a hand-written inventory (python-match's write_inventory):
one line changed or added, every other byte kept (comments, order, spacing), refused with the
file:line where a line edit cannot do it; and python-match and python-venv agree on the venv."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from saf.errors import InventoryError
from saf.inventory import load_inventory
from saf.inventory.edit import python_edit, set_python
from saf.ray import python_match as pm
from saf.recipe import library

HAND_WRITTEN = """\
# The lab cluster. Edited by hand: keep these comments.
[cluster]
name = "lab"

[defaults]
user = "ops"
python = "python3"   # the system's, for now

[[nodes]]
name  = "studio1"          # the head
host = "10.0.0.1"
roles = ["head"]
python = '/usr/bin/python3'  # Apple's

[[nodes]]
  name = "box"
  host = "10.0.0.2"

[nodes.vars]
rack = "b"
"""


def write(tmp_path: Path, text: str = HAND_WRITTEN) -> Path:
    path = tmp_path / "saf.toml"
    path.write_text(text)
    os.chmod(path, 0o640)
    return path


def test_the_nodes_own_line_is_edited_and_nothing_else(tmp_path: Path) -> None:
    path = write(tmp_path)
    edit = python_edit(path, "studio1", "~/.saf/venv/bin/python")
    assert edit is not None
    assert edit.describe() == (f"{path}:13: - python = '/usr/bin/python3'  # Apple's  "
                               f'+ python = "~/.saf/venv/bin/python"  # Apple\'s')
    assert path.read_text() == HAND_WRITTEN  # showing is not writing
    made = set_python(path, "studio1", "~/.saf/venv/bin/python")
    assert made == edit
    after = path.read_text().splitlines()
    before = HAND_WRITTEN.splitlines()
    assert after[12] == 'python = "~/.saf/venv/bin/python"  # Apple\'s'
    assert after[:12] + after[13:] == before[:12] + before[13:]
    assert (path.stat().st_mode & 0o777) == 0o640
    assert load_inventory(str(path)).node("studio1").python == "~/.saf/venv/bin/python"
    assert set_python(path, "studio1", "~/.saf/venv/bin/python") is None  # says so already


def test_an_inherited_python_gets_a_line_under_the_nodes_name(tmp_path: Path) -> None:
    path = write(tmp_path)
    edit = set_python(path, "box", 'C:\\odd "path"')
    assert edit is not None
    assert edit.describe() == f'{path}:17: + python = "C:\\\\odd \\"path\\""'
    after = path.read_text().splitlines()
    assert after[15:17] == ['  name = "box"', '  python = "C:\\\\odd \\"path\\""']
    assert after[:16] + after[17:] == HAND_WRITTEN.splitlines()
    data = tomllib.loads(path.read_text())
    assert data["nodes"][1]["python"] == 'C:\\odd "path"'
    assert data["nodes"][1]["vars"] == {"rack": "b"}
    assert data["defaults"]["python"] == "python3"


def test_what_a_line_cannot_edit_is_refused_with_its_line(tmp_path: Path) -> None:
    inline = write(tmp_path, 'nodes = [{ name = "a", host = "h" }]\n\n'
                             '[defaults]\npython = "python3"\n')
    with pytest.raises(InventoryError, match=r"saf.toml:1: cannot add a python line to node "
                                             r"'a'; set python = \"/v/bin/python\" for a by "
                                             r"hand"):
        set_python(inline, "a", "/v/bin/python")
    shared = write(tmp_path, '[[nodes]]\nname = "a"\nhost = "h"\npython = "p"; x = 1\n')
    with pytest.raises(InventoryError, match=r"saf.toml"):
        set_python(shared, "a", "/v/bin/python")
    with pytest.raises(InventoryError, match=r"no \[\[nodes\]\] entry has that name"):
        set_python(write(tmp_path), "nobody", "/v/bin/python")
    assert (tmp_path / "saf.toml").read_text() == HAND_WRITTEN


def test_python_match_and_python_venv_make_one_venv() -> None:
    """python-venv's venv (a folder under the home) is python-match's default venv, so the
    second recipe run on a node finds the first one's venv instead of making another."""
    venv = library.load("python-venv").vars["venv"].default
    match = library.load("python-match").vars["venv"].default
    assert f"~/{venv}" == match == pm.DEFAULT_VENV
