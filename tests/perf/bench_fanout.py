"""Fan-out: one command on N nodes (aliases of one stock OpenSSH sshd on loopback).

Measures, in one run:
  saf cold   Fleet.each(run) with new connections (the handshake gate and retries at work)
  saf warm   the same again on the pooled connections
  ssh -P N   OpenSSH's client, N processes at once (what `xargs -P` or pssh would do)
  ssh loop   OpenSSH's client, one node after another
and prints wall times, failures (connections MaxStartups dropped) and saf's ratios.
"""

from __future__ import annotations

import argparse
import asyncio
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
from tests.helpers.servers import SSHD, ClientKeys, OpenSSHServer, write_inventory  # noqa: E402


def ssh_argv(keys: ClientKeys, port: int, command: str) -> list[str]:
    return ["ssh", "-F", str(keys.ssh_config), "-i", str(keys.identity), "-p", str(port),
            "-o", f"UserKnownHostsFile={keys.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "127.0.0.1", command]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=50)
    args = parser.parse_args()
    if not SSHD:
        print("sshd is not installed: apt-get install openssh-server")
        return
    n = args.nodes
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = ClientKeys(root / "operator")
        server = OpenSSHServer(root / "sshd", keys)
        try:
            nodes = [{"name": f"n{i:03d}", "host": "127.0.0.1", "port": server.port}
                     for i in range(n)]
            inventory = load_inventory(write_inventory(root / "saf.toml", keys, nodes))

            async def saf_rounds() -> tuple[float, int, float]:
                async with Fleet(inventory) as fleet:
                    chosen = await fleet.select("all")
                    t0 = time.perf_counter()
                    cold = await fleet.each(chosen, lambda c: c.run("true"))
                    t1 = time.perf_counter()
                    await fleet.each(chosen, lambda c: c.run("true"))
                    t2 = time.perf_counter()
                failed = sum(1 for r in cold.values() if isinstance(r, BaseException) or not r.ok)
                return t1 - t0, failed, t2 - t1

            saf_cold, saf_failed, saf_warm = asyncio.run(saf_rounds())

            def one(_: int) -> int:
                return subprocess.run(ssh_argv(keys, server.port, "true"),
                                      capture_output=True).returncode

            t0 = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                codes = list(pool.map(one, range(n)))
            par = time.perf_counter() - t0
            par_failed = sum(1 for c in codes if c != 0)

            t0 = time.perf_counter()
            seq_failed = sum(1 for i in range(n) if one(i) != 0)
            seq = time.perf_counter() - t0
        finally:
            server.stop()

    print(f"fan-out of `true` to {n} nodes behind one stock sshd (MaxStartups 10:30:100)")
    print(f"  {'who':<22}{'wall s':>9}{'failed':>8}")
    print(f"  {'saf (new connections)':<22}{saf_cold:>9.3f}{saf_failed:>8}")
    print(f"  {'saf (pooled)':<22}{saf_warm:>9.3f}{0:>8}")
    print(f"  {f'ssh x{n} in parallel':<22}{par:>9.3f}{par_failed:>8}")
    print(f"  {'ssh one by one':<22}{seq:>9.3f}{seq_failed:>8}")
    print(f"  ratio: ssh parallel / saf cold = {par / saf_cold:.2f}x, "
          f"ssh loop / saf cold = {seq / saf_cold:.2f}x, ssh loop / saf pooled = "
          f"{seq / saf_warm:.1f}x")


if __name__ == "__main__":
    main()
