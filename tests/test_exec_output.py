"""`saf exec` on chatty output (issue 22, item 12: 20 MB through `saf exec` took 58.7 s, a
Rich print per line): 20 MB of numbered lines on a demo node arrive whole (tabs kept) and
in order, with the node's stderr, through `saf demo --headless exec` as a person runs it.
The time it takes is tests/perf/bench_exec_output.py's business, not this test's."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINES = 270_000  # 76 bytes each, as base64 writes them: about 20 MB


def test_twenty_megabytes_arrive_whole_and_in_order() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), SAF_STATE_DIR=tempfile.mkdtemp())
    env.pop("SAF_INVENTORY", None)
    env.pop("COLUMNS", None)
    command = (f"seq -f '%075g' 1 {LINES}; echo 'to stderr' >&2; "
               "head -c 300000 /dev/zero | tr '\\0' x; echo; printf '\\ttabbed\\there\\n'")
    done = subprocess.run([sys.executable, "-m", "saf", "demo", "--headless", "exec", "--on",
                           "alpha", command], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.split("\n")
    assert lines.pop() == ""
    prefixes = {line[:8] for line in lines}
    assert prefixes == {"alpha │ "}  # every line whole, none wrapped at a terminal width
    body = [line[8:] for line in lines]
    body.remove("to stderr")  # stderr comes on stdout too (red on a terminal), wherever it fell
    assert body[:LINES] == [f"{n:075d}" for n in range(1, LINES + 1)]
    # the node's bytes, tabs and all (Rich's print expanded tabs to spaces)
    assert body[LINES:] == ["x" * 300_000, "\ttabbed\there"]
    assert sum(len(line) + 1 for line in body) > 20_000_000
