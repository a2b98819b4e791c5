"""saf's own TCP tester (the agent's `netperf`) against iperf3, on the same veth pair.

Two network namespaces joined by veths through a bridge (tests/helpers/netns.py); in the same
run, alternating, `--rounds` times each:

  saf 1      the agent's tester, 1 stream           iperf3 1      `iperf3` at its defaults
  saf 4      the agent's tester, 4 streams          iperf3 4      `iperf3 -P 4`

each a warm-up of --warmup seconds (not counted) and --duration counted seconds, client to
server. Prints the median Gbit/s of each, the ratios (targets: saf 1 >= iperf3 1, saf 4 >= 95 %
of iperf3 4) and each tool's own CPU per Gbit/s (sender + receiver CPU seconds per counted
second, per Gbit/s: "% of a core per Gbit/s"), from its own figures (saf: os.times() of the
counted window on each end; iperf3: -J's cpu_utilization_percent host and remote totals).
Asserts nothing. Needs root, `ip` and iperf3.

    python tests/perf/bench_net.py [--duration 5] [--warmup 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers.netns import NetnsCluster, netns_skip_reason  # noqa: E402

AGENT = [sys.executable, "-m", "saf.agents.main", "netperf"]


def saf_once(net: NetnsCluster, streams: int, warmup: float, duration: float
             ) -> tuple[float, float]:
    """(Gbit/s, CPU seconds per counted second) of one saf test."""
    server = net.popen("b", [*AGENT, "serve", "--bind", net.address("b"), "--timeout", "30"],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        hello = json.loads(server.stdout.readline())
        done = net.exec("a", [*AGENT, "client", "--connect", hello["address"], "--port",
                              str(hello["listening"]), "--token", hello["token"], "--tests",
                              f"{streams}:send", "--warmup", str(warmup), "--duration",
                              str(duration)], timeout=duration + warmup + 60)
        result = [json.loads(x) for x in done.stdout.splitlines()][1]
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(10)
    cpu = (result["sender_cpu_s"] + result["receiver_cpu_s"]) / result["seconds"]
    return result["bits_per_second"] / 1e9, cpu


def iperf3_once(net: NetnsCluster, streams: int, warmup: float, duration: float
                ) -> tuple[float, float]:
    port = "5299"
    server = net.popen("b", ["iperf3", "-s", "-1", "-B", net.address("b"), "-p", port],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        argv = ["iperf3", "-c", net.address("b"), "-p", port, "-t", str(round(duration)),
                "-O", str(round(warmup)), "-J"] + (["-P", str(streams)] if streams > 1 else [])
        data = json.loads(net.exec("a", argv, timeout=duration + warmup + 60).stdout)
    finally:
        server.wait(10)
    end = data["end"]
    cpu = end["cpu_utilization_percent"]
    return (end["sum_received"]["bits_per_second"] / 1e9,
            (cpu["host_total"] + cpu["remote_total"]) / 100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reason = netns_skip_reason() or (None if shutil.which("iperf3") else "needs iperf3")
    if reason:
        print(f"bench_net: skipped: {reason}")
        return 0
    figures: dict[str, list[tuple[float, float]]] = {}
    with NetnsCluster(Path(tempfile.mkdtemp(prefix="bench-net-")), ["a", "b"],
                      server="asyncssh") as net:
        for _ in range(args.rounds):
            for streams in (1, 4):
                for name, once in (("saf", saf_once), ("iperf3", iperf3_once)):
                    got = once(net, streams, args.warmup, args.duration)
                    figures.setdefault(f"{name} {streams}", []).append(got)
    print(f"veth pair through a bridge, {args.rounds} rounds of {args.warmup:g} s warm-up + "
          f"{args.duration:g} s, medians")
    print(f"{'':10} {'Gbit/s':>8} {'runs':>24} {'CPU %/Gbit/s':>13}")
    med = {}
    for key, runs in figures.items():
        gbps = statistics.median(g for g, _ in runs)
        cpu = statistics.median(c / g * 100 for g, c in runs if g)
        med[key] = gbps
        print(f"{key:10} {gbps:8.2f} {' '.join(f'{g:.2f}' for g, _ in runs):>24} {cpu:13.1f}")
    r1, r4 = med["saf 1"] / med["iperf3 1"], med["saf 4"] / med["iperf3 4"]
    met1, met4 = ("met" if r1 >= 1 else "NOT met"), ("met" if r4 >= 0.95 else "NOT met")
    print(f"saf/iperf3, 1 stream:  {r1:.2f}  (target >= 1.00: {met1})")
    print(f"saf/iperf3, 4 streams: {r4:.2f}  (target >= 0.95: {met4})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
