"""The agent frame gate's cost per frame: every recorded frame line in tests/fixtures/frames
decoded and checked as the agent link does (saf.metrics.frames.read_frame), best of 7 rounds.
Prints microseconds per frame for all frames and for samples alone. Asserts nothing.

    .venv/bin/python tests/perf/bench_frame_gate.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from saf.metrics.frames import read_frame  # noqa: E402


def recorded_lines() -> list[str]:
    lines = []
    for path in sorted((ROOT / "tests" / "fixtures" / "frames").glob("*.jsonl")):
        for row in path.read_text().splitlines():
            raw = json.loads(row).get("raw")
            if raw:
                lines.append(raw + "\n")
    return lines


def per_frame(lines: list[str], rounds: int) -> float:
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(rounds):
            for line in lines:
                read_frame(line)
        best = min(best, (time.perf_counter() - start) / (rounds * len(lines)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    lines = recorded_lines()
    samples = [line for line in lines if '"type":"sample"' in line]
    for name, batch in (("all frames", lines), ("samples", samples)):
        size = sum(map(len, batch)) / len(batch)
        print(f"{name}: {len(batch)} lines of {size:.0f} characters on average, "
              f"{per_frame(batch, args.rounds) * 1e6:.1f} us a frame")


if __name__ == "__main__":
    main()
