"""The metrics hub's CPU with N live nodes at 1 Hz: real agents behind real SSH servers on
loopback (the demo's NodeServer), read by a NodeLinks with no screen.

The servers and their agents run in a child process (a `DemoCluster` of N nodes), so what is
measured is this process alone: the hub's SSH connections, framing, validation and the
metrics store. Printed: its CPU over the window in percent of one core, and how often its
event loop slept and woke (each wake-up costs CPU of its own; agents sampling on the wall
clock's beat arrive together). Asserts nothing.

    .venv/bin/python tests/perf/bench_hub.py --nodes 32 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from saf.agentlink.node_links import NodeLinks  # noqa: E402
from saf.fleet import Fleet  # noqa: E402
from saf.inventory.load import load_inventory  # noqa: E402

WARMUP = 5.0


def serve(nodes: int, homes: Path) -> None:
    """The child: N demo nodes until stdin closes; prints the inventory's path when up."""
    from saf.demo.cluster import DemoCluster, DemoNode

    spec = tuple(DemoNode(f"node{i + 1:02d}", ("head",) if i == 0 else ("worker",), ("bench",))
                 for i in range(nodes))
    with DemoCluster(spec, homes=homes) as cluster:
        print(cluster.inventory_path, flush=True)
        sys.stdin.read()


class SleepCounter:
    """Counts the event loop's waits that could sleep (a timeout other than zero)."""

    def __init__(self) -> None:
        self.sleeps = 0
        self._select = selectors.DefaultSelector.select

    def __enter__(self) -> SleepCounter:
        counter, select = self, self._select

        def counted(selector: selectors.DefaultSelector,
                    timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if timeout is None or timeout > 0:
                counter.sleeps += 1
            return select(selector, timeout)

        setattr(selectors.DefaultSelector, "select", counted)  # noqa: B010 - a method, patched
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(selectors.DefaultSelector, "select", self._select)  # noqa: B010


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(inventory: Path, seconds: float) -> tuple[float, float, int]:
    inv = load_inventory(inventory)
    hub = NodeLinks(Fleet(inv), inv.nodes, interval=1.0)
    await hub.start()
    try:
        deadline = time.monotonic() + 120
        while not all(hub.store.node(n.name).sample for n in inv.nodes):
            if time.monotonic() > deadline:
                raise SystemExit("the nodes did not all report within two minutes")
            await asyncio.sleep(0.2)
        await asyncio.sleep(WARMUP)
        samples = sum(hub.store.node(n.name).samples for n in inv.nodes)
        with SleepCounter() as counter:
            start_cpu, start = cpu_seconds(), time.monotonic()
            await asyncio.sleep(seconds)
            used, wall = cpu_seconds() - start_cpu, time.monotonic() - start
        samples = sum(hub.store.node(n.name).samples for n in inv.nodes) - samples
    finally:
        await hub.stop()
    return 100.0 * used / wall, counter.sleeps / wall, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--serve", metavar="HOMES", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.nodes, Path(args.serve))
        return
    with tempfile.TemporaryDirectory(prefix="saf-bench-hub-") as homes:
        child = subprocess.Popen([sys.executable, __file__, "--nodes", str(args.nodes),
                                  "--serve", homes], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            assert child.stdin is not None
            line = child.stdout.readline().strip()
            if not line:
                raise SystemExit("the demo nodes did not start (their error is above)")
            inventory = Path(line)
            pct, wakes, samples = asyncio.run(measure(inventory, args.seconds))
        finally:
            if child.stdin:
                child.stdin.close()
            child.wait(60)
    print(f"metrics hub, {args.nodes} live nodes at 1 Hz (real agents, SSH on loopback): "
          f"{pct:.2f} % of one core over {args.seconds:g} s; its event loop woke "
          f"{wakes:.1f} times a second for {samples / args.seconds:.1f} samples a second")


if __name__ == "__main__":
    main()
