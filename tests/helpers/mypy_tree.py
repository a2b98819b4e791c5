"""mypy over saf as it is installed: `.venv/bin/python tests/helpers/mypy_tree.py` (what
tests/test_static.py runs; extra arguments go to mypy).

The root folders screens/, agents/, recipes/ and themes/ are installed as saf.screens,
saf.agents, ... through setuptools' package-dir, which mypy cannot follow: run on the source
folders, it would see no saf.screens at all. So the check runs in a temporary folder holding a
`saf/` of symlinks, the source tree as the wheel lays it out (saf/*, then each package-dir
folder under its installed name), with [tool.mypy] of pyproject.toml; what mypy reports is
written with the repository's own paths (saf/screens/app.py is said as screens/app.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def package_dirs(root: Path = ROOT) -> dict[str, str]:
    """Installed folder (saf/screens) -> source folder (screens), from pyproject.toml."""
    setup = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name.replace(".", "/"): folder for name, folder in setup["package-dir"].items()}


def build_tree(into: Path, root: Path = ROOT) -> Path:
    """`into`/saf laid out as installed, every entry a symlink to the source; returns `into`."""
    top = into / "saf"
    top.mkdir()
    mapped = package_dirs(root)
    for entry in sorted((root / "saf").iterdir()):
        if entry.name == "__pycache__":
            continue
        clash = mapped.get(f"saf/{entry.name}")
        if clash is not None:
            raise SystemExit(f"saf/{entry.name} exists and package-dir maps {clash}/ there too")
        (top / entry.name).symlink_to(entry)
    for installed, folder in mapped.items():
        (into / installed).symlink_to(root / folder)
    return into


def source_paths(report: str, root: Path = ROOT) -> str:
    """mypy's report with installed paths (saf/screens/x.py) turned back into source paths."""
    for installed, folder in package_dirs(root).items():
        report = re.sub(rf"(?m)^{re.escape(installed)}/", f"{folder}/", report)
    return report


def run(mypy: str, extra: list[str] | None = None,
        root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """mypy with [tool.mypy] on the installed layout; stdout in source paths."""
    with tempfile.TemporaryDirectory(prefix="saf-mypy-") as folder:
        tree = build_tree(Path(folder), root)
        done = subprocess.run(
            [mypy, "--config-file", str(root / "pyproject.toml"),
             "--cache-dir", str(tree / ".mypy_cache"), *(extra or [])],
            cwd=tree, capture_output=True, text=True, timeout=600)
    done.stdout = source_paths(done.stdout, root)
    return done


if __name__ == "__main__":
    found = run(str(Path(sys.executable).parent / "mypy"), sys.argv[1:])
    sys.stdout.write(found.stdout)
    sys.stderr.write(found.stderr)
    sys.exit(found.returncode)
