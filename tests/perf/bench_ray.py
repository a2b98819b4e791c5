"""Benchmark: `saf run ray-up` on the demo cluster against the same `ray start` commands typed
by hand over ssh, one node after another, in one run; and `saf ray status` once the forward is
up.

Target (issue 11): saf at most 1.2x the bare `ray start --head` time plus the slowest
worker's (everything that can be is in parallel), and a status read within 0.5 s.

    .venv/bin/python tests/perf/bench_ray.py [--port 26380] [--rounds 3]

The by-hand commands are the ones `saf run ray-up --check` prints, run with OpenSSH's `ssh`
(the demo's own key and known_hosts) under `setsid`, as a person would so that the demo
node's end-of-command cleanup does not end Ray. Each round is followed by ray-down; the
rounds alternate by hand and saf, and the medians are reported with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from saf.demo.cluster import DemoCluster
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.inventory.model import Node
from saf.ray.watch import RayWatch


def saf(inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAF_INVENTORY": str(inventory), "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, "-m", "saf", *args], env=env, capture_output=True,
                          text=True, timeout=900)


def commands(inventory: Path, ray_vars: list[str]) -> dict[str, list[str]]:
    out = saf(inventory, "run", "ray-up", "--check", "--json", *ray_vars)
    found: dict[str, list[str]] = {}
    for line in out.stdout.splitlines():
        event = json.loads(line)
        if event.get("event") == "node_step_finished" and event.get("would"):
            found[event["node"]] = event["would"]
    return found


def _ssh(node: Node, command: str) -> list[str]:
    return ["ssh", "-i", str(node.identity), "-o", f"UserKnownHostsFile={node.known_hosts}",
            "-o", "BatchMode=yes", "-F", str(node.ssh_config), "-p", str(node.port),
            f"{node.user}@{node.host}", f"RAY_USAGE_STATS_ENABLED=0 setsid {command}"]


def by_hand(inventory: Path, found: dict[str, list[str]]) -> dict[str, float]:
    """Each node's `ray start` over ssh, the head first, one node after another."""
    inv = load_inventory(inventory)
    times: dict[str, float] = {}
    order = [n for n in inv.nodes if n.is_head] + [n for n in inv.nodes if not n.is_head]
    for node in order:
        began = time.monotonic()
        result = subprocess.run(_ssh(node, found[node.name][-1]), capture_output=True,
                                text=True, timeout=600)
        times[node.name] = time.monotonic() - began
        if result.returncode:
            raise SystemExit(f"by hand on {node.name} failed: {result.stderr[-500:]}")
    return times


def by_hand_as_saf(inventory: Path, found: dict[str, list[str]]) -> float:
    """The head's `ray start` over ssh, then every worker's at once (what saf does): the
    wall time of the two, saf's own work left out."""
    inv = load_inventory(inventory)
    began = time.monotonic()
    for nodes in ([n for n in inv.nodes if n.is_head], [n for n in inv.nodes if not n.is_head]):
        procs = [(n, subprocess.Popen(_ssh(n, found[n.name][-1]), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)) for n in nodes]
        for node, proc in procs:
            _, err = proc.communicate(timeout=600)
            if proc.returncode:
                raise SystemExit(f"by hand on {node.name} failed: {err[-500:]}")
    return time.monotonic() - began


async def status_reads(inventory: Path, temp_dir: str, count: int = 5) -> list[float]:
    inv = load_inventory(inventory)
    async with Fleet(inv) as fleet:
        watch = RayWatch(fleet, temp_dir=temp_dir)
        await watch.read()  # opens the forward
        times = []
        for _ in range(count):
            began = time.monotonic()
            await watch.read()
            times.append(time.monotonic() - began)
        await watch.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=26380, help="the GCS port (below 32768)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of by hand, then saf (medians are reported)")
    args = parser.parse_args()
    temp_dir = f"/tmp/saf-bench-ray-{os.getpid()}"
    ray_vars = ["--var", f"port={args.port}", "--var", f"dashboard_port={args.port + 99}",
                "--var", f"temp_dir={temp_dir}"]
    down = ["run", "ray-down", "--var", f"temp_dir={temp_dir}"]
    load_before = os.getloadavg()
    rounds: list[tuple[dict[str, float], float]] = []
    as_saf: list[float] = []
    with tempfile.TemporaryDirectory() as homes, DemoCluster(homes=Path(homes)) as cluster:
        inventory = cluster.inventory_path
        found = commands(inventory, ray_vars)
        try:
            for _ in range(args.rounds):
                hand = by_hand(inventory, found)
                saf(inventory, *down)
                as_saf.append(by_hand_as_saf(inventory, found))
                saf(inventory, *down)
                began = time.monotonic()
                up = saf(inventory, "run", "ray-up", *ray_vars)
                saf_time = time.monotonic() - began
                if up.returncode:
                    raise SystemExit(f"saf run ray-up failed:\n{up.stdout[-2000:]}")
                rounds.append((hand, saf_time))
                saf(inventory, *down)
            saf(inventory, "run", "ray-up", *ray_vars)
            began = time.monotonic()
            cli = saf(inventory, "ray", "status", "--temp-dir", temp_dir)
            cli_time = time.monotonic() - began
            reads = asyncio.run(status_reads(inventory, temp_dir))
        finally:
            saf(inventory, *down)
    shutil.rmtree(temp_dir, ignore_errors=True)
    load_after = os.getloadavg()

    def median(values: list[float]) -> float:
        return statistics.median(values)
    head = next(n for n in rounds[0][0] if n == "alpha")
    for number, (hand, saf_time) in enumerate(rounds, 1):
        bound = hand[head] + max((t for n, t in hand.items() if n != head), default=0.0)
        print(f"round {number}: by hand {sum(hand.values()):.2f} s ("
              f"{', '.join(f'{n} {t:.2f} s' for n, t in hand.items())}); head then workers at"
              f" once by hand {as_saf[number - 1]:.2f} s; saf {saf_time:.2f} s;"
              f" saf / (head + slowest worker) = {saf_time / bound:.2f}")
    bounds = [h[head] + max((t for n, t in h.items() if n != head), default=0.0)
              for h, _ in rounds]
    serial = [sum(h.values()) for h, _ in rounds]
    saf_times = [t for _, t in rounds]
    print(f"median of {len(rounds)} rounds: by hand over ssh, one after another: "
          f"{median(serial):.2f} s; saf run ray-up (checks, start, verification through the "
          f"dashboard): {median(saf_times):.2f} s")
    print(f"target bound (head + slowest worker by hand): {median(bounds):.2f} s; saf / bound ="
          f" {median([t / b for t, b in zip(saf_times, bounds, strict=True)]):.2f} (target <= "
          f"1.2); saf / by hand = "
          f"{median([t / h for t, h in zip(saf_times, serial, strict=True)]):.2f}")
    print(f"by hand as saf does it (the head, then the workers at once): "
          f"{median(as_saf):.2f} s; saf / that = "
          f"{median([t / h for t, h in zip(saf_times, as_saf, strict=True)]):.2f} "
          "(saf's own work: facts, checks, the dashboard's verification)")
    print(f"saf ray status (a new process: connect, read settings, forward, read): "
          f"{cli_time:.2f} s, exit {cli.returncode}")
    print(f"status read once the forward is up: median {sorted(reads)[len(reads) // 2]:.3f} s,"
          f" max {max(reads):.3f} s (target <= 0.5 s)")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"({os.cpu_count()} CPUs). The demo's nodes share this machine: saf starts the "
          "workers at once (each in its own Ray folder), so they share its CPUs.")


if __name__ == "__main__":
    main()
