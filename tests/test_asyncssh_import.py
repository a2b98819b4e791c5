"""asyncssh's import asks ctypes.util.find_library for liboqs and libnettle, and on Linux each
question runs ldconfig (then gcc and ld when the answer is no): saf.connect.libraries keeps the
answers in saf's cache, so only the first import of saf.connect asks, and every later one
starts no program at all, with the same libraries found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Imports saf.connect in a fresh interpreter; prints the programs it started and what asyncssh
# found (post-quantum key exchange, UMAC).
PROBE = """
import json, sys
started = []
sys.addaudithook(lambda event, args: event == "subprocess.Popen" and started.append(args[0]))
import saf.connect
import asyncssh.crypto.pq as pq
import asyncssh.mac as mac
print(json.dumps({"started": [str(s) for s in started],
                  "found": [pq.mlkem_available, pq.sntrup_available, mac._umac_available]}))
"""


def import_connect(cache: Path, **env: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "SAF_CACHE_DIR": str(cache), **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="find_library starts programs on Linux only")
def test_only_the_first_import_searches_for_libraries(tmp_path: Path) -> None:
    first = import_connect(tmp_path)
    assert first["started"]  # ldconfig at least: the control, or this test proves nothing
    second = import_connect(tmp_path)
    assert second["started"] == []
    assert second["found"] == first["found"]
    kept = json.loads((tmp_path / "libraries.json").read_text())
    assert "oqs" in kept["found"]


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="find_library starts programs on Linux only")
def test_a_changed_library_path_searches_again(tmp_path: Path) -> None:
    import_connect(tmp_path)
    again = import_connect(tmp_path, LD_LIBRARY_PATH=str(tmp_path / "lib"))
    assert again["started"]
