"""What `pip install .` puts on a machine: one top-level name, `saf`, holding everything.

The root folders screens/, agents/, recipes/ and themes/ install as saf.screens, saf.agents,
saf.recipes and saf.themes; a package of anyone else's named `recipes` or `screens` can then
never collide with saf's. The wheel is built once per session and installed into a fresh venv.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROOT_FOLDERS = {"screens": "saf/screens", "agents": "saf/agents", "recipes": "saf/recipes",
                "themes": "saf/themes", "saf": "saf"}
SHIPPED = {".py", ".toml", ".tcss", ".json"}


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(out), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (found,) = out.glob("saf-*.whl")
    return found


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A new venv with only the saf wheel added (its dependencies are not needed to look)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    before = set(_site(venv).iterdir())
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps",
                           "--no-index", str(wheel)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (venv / "added.txt").write_text("\n".join(sorted(
        p.name for p in set(_site(venv).iterdir()) - before)))
    return venv


def _site(venv: Path) -> Path:
    (site,) = venv.glob("lib/python*/site-packages")
    return site


def test_the_wheel_installs_one_top_level_name(fresh_venv: Path):
    added = (fresh_venv / "added.txt").read_text().split()
    names = {a for a in added if not a.endswith(".dist-info")}
    assert names == {"saf"}, added


def test_every_source_file_is_in_the_wheel_under_saf(wheel: Path):
    inside = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder, target in ROOT_FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in SHIPPED and "__pycache__" not in path.parts:
                expected.add(f"{target}/{path.relative_to(ROOT / folder).as_posix()}")
    assert expected - inside == set()
    assert not [n for n in inside if n.split("/")[0] in ("screens", "agents", "recipes",
                                                         "themes")]


def test_the_installed_saf_finds_its_parts(fresh_venv: Path, tmp_path: Path):
    """Recipes, themes and the agent are found by the saf namespace, from any folder."""
    code = ("import importlib.resources as r, saf.agents.protocol, saf.themes\n"
            "print(sorted(p.name for p in r.files('saf.recipes').iterdir()"
            " if p.name.endswith('.toml')))\n"
            "print(saf.themes.THEMES_DIR.is_dir(), saf.agents.protocol.PROTOCOL_VERSION)\n")
    done = subprocess.run([str(fresh_venv / "bin" / "python"), "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    recipes, checks = done.stdout.splitlines()
    assert "hello.toml" in recipes
    assert checks == "True 1"


def test_import_contracts_hold_on_the_installed_tree(fresh_venv: Path, tmp_path: Path):
    """import-linter reads packages from disk: the installed tree has them all in saf/. It
    runs outside the checkout, whose own saf/ would come first on its path."""
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    env = {"PYTHONPATH": str(_site(fresh_venv)), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml")], cwd=tmp_path,
                          env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 broken" in done.stdout


def test_the_version_is_the_package_metadatas(fresh_venv: Path, tmp_path: Path):
    """saf's version is written once, in pyproject.toml: what the installed package's metadata
    says is what saf says (a release that raises it there needs no other edit)."""
    (metadata,) = _site(fresh_venv).glob("saf-*.dist-info/METADATA")
    original = metadata.read_text()
    metadata.write_text(re.sub(r"(?m)^Version: .*$", "Version: 9.8.7", original, count=1))
    try:
        done = subprocess.run([str(fresh_venv / "bin" / "python"), "-c",
                               "import saf; print(saf.__version__)"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
    finally:
        metadata.write_text(original)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "9.8.7"


def test_the_license_is_an_spdx_expression(wheel: Path):
    """`license = "MIT"` (PEP 639), not the `{ text = ... }` table that setuptools deprecated
    and stops building after 2027-02-18: the wheel's metadata carries License-Expression."""
    (name,) = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA")]
    metadata = zipfile.ZipFile(wheel).read(name).decode().split("\n\n")[0].splitlines()
    assert "License-Expression: MIT" in metadata
