"""Fan-out: one command on N nodes, aliases of S stock OpenSSH sshds on loopback.

Two cases by default: 50 nodes behind one sshd, and 200 nodes behind four (50 each). Each case
measures, in turns (--rounds times, the order swapped every round, so a burst of load on this
shared machine falls on both sides alike), and prints the medians:
  saf cold   Fleet.each(run) on new connections (the handshake gate at work)
  saf pooled the same again on the pooled connections
  ssh -P     OpenSSH's client, --parallel processes at once (what `xargs -P` or pssh would do),
             with its default key exchange and again with curve25519 (saf's)
  ssh loop   (with --loop) OpenSSH's client, one node after another, once
with each side's failures: connections sshd's MaxStartups (10:30:100) dropped.

The nodes' sessions get an empty HOME (sshd's SetEnv) unless --home user: every node here is
one machine, so each command's login shell start-up (this machine's ~/.bashrc runs `pyenv
init`, about 0.3 s of CPU) would run N times on the same two cores, where a real fleet runs it
on N machines at once; and the side that sshd refused more often would pay for fewer of them.
With --home user that cost is in, and saf's total counts commands that ssh never ran.

    .venv/bin/python tests/perf/bench_fanout.py [--cases 50x1,200x4] [--rounds 3] [--loop]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from saf.fleet import Fleet  # noqa: E402
from saf.inventory import load_inventory  # noqa: E402
from saf.inventory.model import Inventory  # noqa: E402
from tests.helpers.servers import SSHD, ClientKeys, OpenSSHServer, write_inventory  # noqa: E402

# The key exchange saf's asyncssh settles on with OpenSSH 9.2; ssh's own default there is
# sntrup761x25519, whose key generation costs its client more CPU than the rest of the
# connection: the second ssh row gives the peer saf's choice.
CURVE = "curve25519-sha256"


def ssh_argv(keys: ClientKeys, port: int, command: str, *options: str) -> list[str]:
    return ["ssh", "-F", str(keys.ssh_config), "-i", str(keys.identity), "-p", str(port),
            "-o", f"UserKnownHostsFile={keys.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *options, "127.0.0.1", command]


def saf_round(inventory: Inventory) -> tuple[float, int, float]:
    """(cold seconds, cold failures, pooled seconds) of `true` on every node."""

    async def rounds() -> tuple[float, int, float]:
        async with Fleet(inventory) as fleet:
            chosen = await fleet.select("all")
            t0 = time.perf_counter()
            cold = await fleet.each(chosen, lambda c: c.run("true"))
            t1 = time.perf_counter()
            await fleet.each(chosen, lambda c: c.run("true"))
            t2 = time.perf_counter()
        failed = sum(1 for r in cold.values() if isinstance(r, BaseException) or not r.ok)
        return t1 - t0, failed, t2 - t1

    return asyncio.run(rounds())


def ssh_round(keys: ClientKeys, ports: list[int], parallel: int, *options: str
              ) -> tuple[float, int]:
    """(seconds, failures) of `ssh NODE true` on every node, `parallel` at once."""

    def one(port: int) -> int:
        return subprocess.run(ssh_argv(keys, port, "true", *options),
                              capture_output=True).returncode

    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        codes = list(pool.map(one, ports))
    return time.perf_counter() - t0, sum(1 for c in codes if c != 0)


def ssh_loop(keys: ClientKeys, ports: list[int]) -> tuple[float, int]:
    t0 = time.perf_counter()
    failed = sum(1 for port in ports
                 if subprocess.run(ssh_argv(keys, port, "true"), capture_output=True).returncode)
    return time.perf_counter() - t0, failed


def run_case(nodes: int, servers: int, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = ClientKeys(root / "operator")
        extra = ""
        if args.home == "lean":
            (root / "home").mkdir()
            extra = f"SetEnv HOME={root / 'home'}"
        started: list[OpenSSHServer] = []
        try:
            for s in range(servers):
                started.append(OpenSSHServer(root / f"sshd{s}", keys, extra))
            ports = [started[i % servers].port for i in range(nodes)]
            inventory = load_inventory(write_inventory(
                root / "saf.toml", keys,
                [{"name": f"n{i:03d}", "host": "127.0.0.1", "port": port}
                 for i, port in enumerate(ports)]))
            cold: list[float] = []
            pooled: list[float] = []
            par: list[float] = []
            curve: list[float] = []
            saf_failed: list[int] = []
            par_failed: list[int] = []
            curve_failed: list[int] = []
            load0 = os.getloadavg()[0]
            for r in range(args.rounds):
                sides = ["saf", "ssh", "curve"]
                for side in sides if r % 2 == 0 else reversed(sides):
                    if side == "saf":
                        c, f, p = saf_round(inventory)
                        cold.append(c)
                        saf_failed.append(f)
                        pooled.append(p)
                    elif side == "ssh":
                        w, f = ssh_round(keys, ports, args.parallel)
                        par.append(w)
                        par_failed.append(f)
                    else:
                        w, f = ssh_round(keys, ports, args.parallel, "-o", f"KexAlgorithms={CURVE}")
                        curve.append(w)
                        curve_failed.append(f)
            loop = ssh_loop(keys, ports) if args.loop else None
            load1 = os.getloadavg()[0]
        finally:
            for server in started:
                server.stop()

    def fails(counts: list[int]) -> str:
        return "/".join(str(c) for c in counts)

    print(f"`true` on {nodes} nodes behind {servers} stock sshd{'s' if servers > 1 else ''} "
          f"(MaxStartups 10:30:100), home {args.home}, {args.rounds} rounds in turns, "
          f"load average {load0:.1f} -> {load1:.1f}")
    print(f"  {'who':<24}{'median s':>9}  {'each round s':<24}failed per round")
    rows = [("saf (new connections)", cold, fails(saf_failed)),
            ("saf (pooled)", pooled, "-"),
            (f"ssh -P{args.parallel}", par, fails(par_failed)),
            (f"ssh -P{args.parallel} {CURVE.split('-')[0]}", curve, fails(curve_failed))]
    for label, times, failed in rows:
        each = " ".join(f"{t:.2f}" for t in times)
        print(f"  {label:<24}{statistics.median(times):>9.3f}  {each:<24}{failed}")
    if loop is not None:
        print(f"  {'ssh one by one':<24}{loop[0]:>9.3f}  {'(once)':<24}{loop[1]}")
    for label, peer in ((f"ssh -P{args.parallel}", par),
                        (f"ssh -P{args.parallel} {CURVE.split('-')[0]}", curve)):
        ratios = " ".join(f"{c / p:.2f}" for c, p in zip(cold, peer, strict=True))
        print(f"  saf cold / {label}: {statistics.median(cold) / statistics.median(peer):.2f}x "
              f"(medians; per round {ratios}; below 1: saf is faster)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="50x1,200x4",
                        help="NODESxSERVERS, comma-separated (default 50x1,200x4)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=50, help="ssh processes at once")
    parser.add_argument("--home", choices=("lean", "user"), default="lean",
                        help="the sessions' HOME: an empty folder, or the user's own")
    parser.add_argument("--loop", action="store_true", help="also ssh one node at a time")
    args = parser.parse_args()
    if not SSHD:
        print("sshd is not installed: apt-get install openssh-server")
        return
    for case in args.cases.split(","):
        nodes, _, servers = case.partition("x")
        run_case(int(nodes), int(servers or 1), args)


if __name__ == "__main__":
    main()
