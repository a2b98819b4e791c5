"""Every SVG in tests/snapshots/ is some snapshot test's: a stale one (a test renamed or
removed, a size dropped) fails the suite. syrupy checks this itself in a serial run, but skips
it on pytest-xdist's workers (each sees only its share of the tests), which run the suite."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.helpers.snapshots import SNAPSHOTS

REPO = Path(__file__).resolve().parent.parent
# syrupy's file name: the test's name with its parameters, then `.N` for its N-th snapshot.
SVG = re.compile(r"^(?P<test>.+?)(\.\d+)?\.svg$")


def test_every_snapshot_file_belongs_to_a_collected_test() -> None:
    modules = sorted(folder.name for folder in SNAPSHOTS.iterdir() if folder.is_dir())
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0",
                           "-p", "no:cacheprovider", *(f"tests/{m}.py" for m in modules)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    tests = {tuple(line.split("::")) for line in done.stdout.splitlines() if "::" in line}
    names = {(Path(path).stem, name) for path, *_, name in tests}
    stale = []
    for module in modules:
        for svg in sorted((SNAPSHOTS / module).iterdir()):
            found = SVG.match(svg.name)
            if found is None or (module, found["test"]) not in names:
                stale.append(f"{module}/{svg.name}")
    assert stale == [], f"snapshots of no test; delete them: {stale}"
