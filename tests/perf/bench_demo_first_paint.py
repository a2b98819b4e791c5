"""Time from starting `saf demo` to the first paint of live data (target < 1 s).

Starts `python -m saf demo` in a tmux window of 120x40 and polls the screen every 20 ms
until every demo node's row shows `● up` with a CPU figure. Prints the seconds, for a few
runs (the first includes building the agent bundle into the cache), their median, and the
median's ratio to `python -c pass` timed in the same run (steadier than seconds on a shared
machine).

    /work/venv/bin/python tests/perf/bench_demo_first_paint.py --runs 3
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^(alpha|beta|gamma)\s+● up\s+(?:[a-z]+\s+)?\d+%", re.M)


def once(timeout: float = 60.0) -> float | None:
    session = f"saf-paint-{uuid.uuid4().hex[:6]}"
    start = time.monotonic()
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
                    f"cd {ROOT} && PYTHONPATH={ROOT} {sys.executable} -m saf demo"], check=True)
    try:
        while time.monotonic() - start < timeout:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                    capture_output=True, text=True).stdout
            if len(ROW.findall(screen)) == 3:
                return time.monotonic() - start
            time.sleep(0.02)
        return None
    finally:
        subprocess.run(["tmux", "send-keys", "-t", session, "q"])
        time.sleep(2)
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times, floors = [], []
    for i in range(args.runs):
        took = once()
        floors.append(python_start())
        print(f"run {i + 1}: first paint of live data for all 3 nodes after "
              + (f"{took:.2f} s" if took is not None else "more than 60 s") + " (target < 1 s)")
        if took is not None:
            times.append(took)
    if times:
        median, floor = statistics.median(times), statistics.median(floors)
        print(f"median {median:.2f} s of {len(times)} runs; python -c pass {floor:.3f} s "
              f"in the same run ({median / floor:.0f}x)")


def python_start(runs: int = 5) -> float:
    """The median wall time of `python -c pass`: the floor every Python program stands on."""
    walls = []
    for _ in range(runs):
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        walls.append(time.monotonic() - start)
    return statistics.median(walls)


if __name__ == "__main__":
    main()
