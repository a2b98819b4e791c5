"""The dashboard's CPU cost with N nodes at 1 Hz, against a stock DataTable doing the same,
and the hub's memory per node after ten minutes of samples.

Both run in this process, one after the other, in a headless terminal of 120x40:
  * saf's dashboard on N replayed nodes (synthetic agent frames, 1 sample/s/node, not in
    step, as real agents are), fed through the Replayer exactly as `saf replay` does;
  * a stock Textual DataTable of N rows x 10 columns whose every cell is updated with
    `update_cell` once a second;
  * Textual's floor: a bare ScrollView of N rows whose visible lines (12 styled segments
    each, made once a second, nothing computed) are redrawn once a second, the least any
    Textual table showing these rows can cost.
CPU is this process's user+system time over the measured window, in percent of one core.
Targets for saf: <= 2 % at 64 nodes, <= 5 % at 256.

The hub's memory: the metrics store fed ten minutes of the same frames (as fast as it takes
them), traced with tracemalloc, divided by the nodes.

    .venv/bin/python tests/perf/bench_dashboard.py --nodes 64 --seconds 60
    .venv/bin/python tests/perf/bench_dashboard.py --nodes 256 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "fixtures" / "frames")]

from rich.segment import Segment  # noqa: E402
from rich.style import Style  # noqa: E402
from saf.screens.app import make_app  # noqa: E402
from saf.themes import THEMES_DIR  # noqa: E402
from synth import T0, fleet, run  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402
from textual.geometry import Region, Size  # noqa: E402
from textual.scroll_view import ScrollView  # noqa: E402
from textual.strip import Strip  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from saf.cockpit.context import CockpitContext  # noqa: E402
from saf.cockpit.settings import Settings  # noqa: E402
from saf.metrics.store import MetricsStore  # noqa: E402
from saf.recording import Recording, Replayer  # noqa: E402

SIZE = (120, 40)
WARMUP = 3.0
TARGETS = {64: 2.0, 256: 5.0}  # % of one core at 1 Hz
HUB_SECONDS = 600


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(app: App, seconds: float) -> tuple[float, float]:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(WARMUP)
        start_cpu, start = cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        used, wall = cpu_seconds() - start_cpu, time.monotonic() - start
    return 100.0 * used / wall, wall


def saf_app(n: int, seconds: float):
    machines, nodes = fleet(n)
    events = tuple(run(machines, int(seconds + WARMUP + 5)))
    recording = Recording(path=None, started=T0, cluster="bench", nodes=tuple(nodes),
                          events=events)
    setup = CockpitContext(cluster="bench", nodes=tuple(nodes), settings=Settings(),
                           theme_folders=(THEMES_DIR,))
    return make_app(setup, lambda emit: Replayer(recording, emit, speed=1.0))


def hub_memory_per_node(n: int, seconds: int = HUB_SECONDS) -> tuple[float, float]:
    """Bytes the metrics store holds per node after `seconds` of 1 Hz samples, and the CPU
    time a sample takes to apply (measured on a second store, untraced)."""
    machines, nodes = fleet(n)
    events = list(run(machines, seconds))  # made before tracing: only the store is counted
    timed = MetricsStore()
    for node in nodes:
        timed.add_node(node.name)
    started = time.process_time()
    for event in events:
        timed.apply(event)
    per_sample = (time.process_time() - started) / max(1, n * seconds)
    del timed
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = MetricsStore()
    for node in nodes:
        store.add_node(node.name)
    for event in events:
        store.apply(event)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del store
    return held / n, per_sample


class TableBaseline(App[None]):
    """A stock DataTable, N x 10, every cell updated once a second."""

    def __init__(self, rows: int, columns: int = 10) -> None:
        super().__init__()
        self.n_rows, self.n_columns = rows, columns
        self.rng = random.Random(1)

    def compose(self) -> ComposeResult:
        yield DataTable()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        self.cols = table.add_columns(*[f"c{i}" for i in range(self.n_columns)])
        self.rows = [table.add_row(*["0"] * self.n_columns) for _ in range(self.n_rows)]
        self.set_interval(1.0, self.tick)

    def tick(self) -> None:
        table = self.query_one(DataTable)
        for row in self.rows:
            for col in self.cols:
                table.update_cell(row, col, f"{self.rng.uniform(0, 100):.1f}")


class Floor(App[None]):
    """The least a Textual table of N rows costs: visible lines redrawn once a second."""

    STYLES = [Style(color="red"), Style(color="green"), Style(bold=True), Style()]

    def __init__(self, rows: int) -> None:
        super().__init__()
        self.n_rows = rows

    def compose(self) -> ComposeResult:
        yield FloorTable(self.n_rows)


class FloorTable(ScrollView):
    def __init__(self, rows: int) -> None:
        super().__init__()
        self.n_rows, self.tick_count = rows, 0
        self.lines: dict[int, Strip] = {}

    def on_mount(self) -> None:
        self.virtual_size = Size(SIZE[0], self.n_rows + 1)
        self.set_interval(1.0, self.tick)

    def tick(self) -> None:
        self.tick_count += 1
        self.lines.clear()
        self.refresh(Region(0, 1, self.size.width, self.size.height - 1))

    def render_line(self, y: int) -> Strip:
        strip = self.lines.get(y)
        if strip is None:
            styles = Floor.STYLES
            segments = [Segment(f"{(self.tick_count * 7 + y * 13 + i) % 1000:>9} ", styles[i % 4])
                        for i in range(12)]
            strip = self.lines[y] = Strip(segments, 120).crop(0, self.size.width)
        return strip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--nodes", type=int, default=64, help="64 and 256 have targets")
    parser.add_argument("--no-baseline", action="store_true",
                        help="measure saf's dashboard only (quicker while working on it)")
    args = parser.parse_args()
    pct, wall = asyncio.run(measure(saf_app(args.nodes, args.seconds), args.seconds))
    target = TARGETS.get(args.nodes)
    print(f"saf dashboard, {args.nodes} nodes at 1 Hz, {SIZE[0]}x{SIZE[1]}: "
          f"{pct:.2f} % of one core over {wall:.0f} s"
          + (f" (target <= {target:g} %)" if target else ""))
    per_node, per_sample = hub_memory_per_node(args.nodes)
    print(f"hub memory after {HUB_SECONDS // 60} minutes at 1 Hz: "
          f"{per_node / 1024:.0f} KiB per node ({args.nodes} nodes); a sample takes "
          f"{per_sample * 1e6:.0f} us to store")
    if args.no_baseline:
        return
    base, wall = asyncio.run(measure(TableBaseline(args.nodes), args.seconds))
    print(f"stock DataTable {args.nodes}x10 update_cell at 1 Hz, {SIZE[0]}x{SIZE[1]}: "
          f"{base:.2f} % of one core over {wall:.0f} s (saf: {pct / base:.2f}x)")
    floor, wall = asyncio.run(measure(Floor(args.nodes), args.seconds))
    print(f"Textual's floor, a bare ScrollView of {args.nodes} rows redrawn at 1 Hz, "
          f"{SIZE[0]}x{SIZE[1]}: {floor:.2f} % of one core over {wall:.0f} s")


if __name__ == "__main__":
    main()
