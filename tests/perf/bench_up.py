"""Benchmark: `saf up` on loopback nodes from nothing, and a second `saf up` with nothing to
do, against the same steps run one recipe after another by hand (`saf run ...` in sequence).

The nodes are saf's own SSH servers on loopback (one per node, each with its home; no init
system, so the service runs under saf's supervisor). The declaration: a prepare recipe on
every node (one command with a `creates`), a heartbeat service on every node, and a
llama.cpp model (llama-cpp-python on the generated tiny GGUF) on the last node; `--ray` adds
[ray] (a real `ray start` of every node). By hand: `saf run prepare.toml`, `saf run
service.toml` (one `service` step), `saf run models --var ...` (and `saf run ray-up` first
with `--ray`). Each side runs twice: from nothing (after `saf down`), then again with nothing
to do. Wall time includes each command's own start-up.

`--netns` puts the nodes in network namespaces of their own instead (tests/helpers/netns.py:
each reached at its own veth address through a bridge, its SSH server inside its namespace,
its own home; needs root and iproute2), each a machine of its own for what runs there
(tests/helpers/own_machine.py: its own process table, /tmp and /dev/shm), so with `--ray`
every node keeps its own Ray folder and sees only its own Ray processes, as on real machines.

The issue's targets, printed next to the figures (nothing is asserted): the first `up` at
most 1.1x the sum of the slowest node's time in each step (from the run's log); the no-op `up`
under 2 s for 3 nodes and under 5 s for 20. Then where the first `up`'s time went, by its two
run logs (the plan's, the apply's): before the plan, the plan, between them, the apply, exit.

    .venv/bin/python tests/perf/bench_up.py [--nodes 3] [--ray] [--netns] [--up-only]
        [--keep-logs DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import tomli_w  # noqa: E402

from tests.helpers.netns import NetnsCluster, netns_skip_reason  # noqa: E402
from tests.helpers.own_machine import own_machine_skip_reason  # noqa: E402
from tests.helpers.ray import free_ray_port, stop_ray  # noqa: E402
from tests.helpers.servers import (  # noqa: E402
    AsyncsshServers,
    ClientKeys,
    free_port,
    write_inventory,
)
from tests.helpers.tiny_gguf import write_tiny_llama  # noqa: E402

PREPARE = """name = "prepare"
description = "leave a marker"
[[steps]]
name = "leave a marker"
creates = "~/.saf/prepared"
run = 'mkdir -p "$HOME"/.saf && date > "$HOME"/.saf/prepared'
"""
BEAT = """import os, time
while True:
    with open(os.path.expanduser("~/heartbeat"), "a") as f:
        f.write("%f\\n" % time.time())
    time.sleep(1)
"""
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Bench:
    def __init__(self, root: Path, nodes: int, ray: bool, netns: bool = False) -> None:
        self.root = root
        (root / "facts").mkdir()
        self.names = [f"n{i:02d}" for i in range(nodes)]
        env = {"SAF_FACTS_ROOT": str(root / "facts")}
        if ray:
            env["PATH"] = NODE_PATH
        (root / "prepare.toml").write_text(PREPARE)
        (root / "beat.py").write_text(BEAT)
        self.model = write_tiny_llama(root / "tiny.gguf")
        self.port = free_port()
        self.ray_port = free_ray_port(nodes) if ray else None
        self.temp_dir = Path(f"/tmp/saf-bench-up-{os.getpid()}")
        command = f"{sys.executable} {root}/beat.py"
        (root / "service.toml").write_text(
            f'name = "svc"\n\n[[steps]]\nname = "beat"\nkind = "service"\nservice = "beat"\n'
            f'command = "{command}"\nrestart = "always"\n')
        # The nodes last: what fails before them leaves nothing running.
        self.net: NetnsCluster | None = None
        self.servers: AsyncsshServers | None = None
        if netns:
            self.net = NetnsCluster(root / "netns", self.names, server="asyncssh", node_env=env,
                                    roles={self.names[0]: ["head"]}, own_machine=True,
                                    keep=[root])
            self.inventory = self.net.inventory_path
        else:
            keys = ClientKeys(root / "operator")
            self.servers = AsyncsshServers(root, keys, self.names, env=env)
            self.inventory = write_inventory(root / "saf.toml", keys, [
                {"name": n, "host": "127.0.0.1", "port": self.servers.port(n),
                 "roles": ["head"] if i == 0 else []} for i, n in enumerate(self.names)])
        declared: dict = {
            "up": {"steps": [{"recipe": str(root / "prepare.toml")}]},
            "services": [{"name": "beat", "on": "all", "command": command,
                          "restart": "always"}],
            "models": [{"name": "tiny", "engine": "llama-cpp-python", "model": str(self.model),
                        "on": self.names[-1], "port": self.port}]}
        if self.ray_port:
            declared["ray"] = {"port": self.ray_port, "dashboard_port": self.ray_port + 99,
                               "temp_dir": str(self.temp_dir)}
        with self.inventory.open("a") as f:
            f.write("\n" + tomli_w.dumps(declared))
        self.env = {**os.environ, "SAF_INVENTORY": str(self.inventory),
                    "SAF_STATE_DIR": str(root / "state"), "RAY_USAGE_STATS_ENABLED": "0",
                    "NO_COLOR": "1"}

    def saf(self, *args: str) -> float:
        self.began = time.time()  # the run log's clock, for `parts`
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "saf", *args], env=self.env,
                              capture_output=True, text=True, timeout=900)
        took = time.perf_counter() - start
        self.ended = self.began + took
        if done.returncode != 0:
            raise SystemExit(f"saf {' '.join(args)} failed ({done.returncode}):\n"
                             f"{done.stdout}{done.stderr}")
        return took

    def by_hand(self) -> float:
        took = 0.0
        if self.ray_port:
            took += self.saf("run", "ray-up", "--var", f"port={self.ray_port}",
                             "--var", f"dashboard_port={self.ray_port + 99}",
                             "--var", f"temp_dir={self.temp_dir}")
        took += self.saf("run", str(self.root / "prepare.toml"))
        took += self.saf("run", str(self.root / "service.toml"))
        took += self.saf("run", "models", "--on", self.names[-1], "--var",
                         "engine=llama-cpp-python", "--var", f"model={self.model}",
                         "--var", f"port={self.port}")
        return took

    def fresh(self) -> None:
        self.saf("down")
        for name in self.names:
            (self.home(name) / ".saf" / "prepared").unlink(missing_ok=True)

    def home(self, name: str) -> Path:
        if self.net is not None:
            return self.net.home(name)
        assert self.servers is not None
        return self.servers.home(name)

    def slowest_sum(self) -> float:
        """The sum, over the steps of the newest `saf up` run that changed something, of the
        slowest node's time in that step (from the run's own log)."""
        logs = sorted((self.root / "state" / "runs").glob("*.jsonl"))
        for log in reversed(logs):
            lines = [json.loads(line) for line in log.read_text().splitlines()]
            started = lines[0]
            if started.get("recipe") != "saf up" or started.get("check"):
                continue
            slowest: dict[int, float] = {}
            for line in lines:
                if line.get("event") == "node_step_finished":
                    slowest[line["step"]] = max(slowest.get(line["step"], 0.0),
                                                line.get("duration", 0.0))
            return sum(slowest.values())
        return float("nan")

    def parts(self) -> list[tuple[str, float]]:
        """Where the newest `saf up` (the last `saf` call) spent its time, from its two run
        logs' timestamps: before its plan, the plan (the --check run), between the plan and
        the apply, the apply, and after it (to the process's exit)."""
        logs = []
        for log in (self.root / "state" / "runs").glob("*.jsonl"):
            lines = [json.loads(line) for line in log.read_text().splitlines()]
            if lines and lines[0].get("recipe") == "saf up" and \
                    self.began <= lines[0]["time"] <= self.ended:
                logs.append((lines[0]["time"], lines[-1]["time"]))
        if len(logs) != 2:
            return []
        (plan_start, plan_end), (apply_start, apply_end) = sorted(logs)
        return [("before the plan", plan_start - self.began),
                ("plan", plan_end - plan_start), ("plan printed", apply_start - plan_end),
                ("apply", apply_end - apply_start), ("exit", self.ended - apply_end)]

    def close(self) -> None:
        try:
            self.saf("down")
        except SystemExit as exc:
            print(exc, file=sys.stderr)
        if self.ray_port:
            stop_ray(self.temp_dir)
        if self.net is not None:
            self.net.close()  # and whatever still runs in the namespaces
        if self.servers is not None:
            self.servers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--ray", action="store_true", help="declare [ray] too (slow)")
    parser.add_argument("--netns", action="store_true",
                        help="each node in a network namespace of its own (needs root)")
    parser.add_argument("--up-only", action="store_true",
                        help="only the two `saf up` runs, not the same recipes by hand")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR",
                        help="copy the run logs (state/runs) into DIR before cleaning up")
    args = parser.parse_args()
    if args.netns:
        reason = netns_skip_reason() or own_machine_skip_reason()
        if reason:
            raise SystemExit(f"--netns {reason}")
    with tempfile.TemporaryDirectory(prefix="saf-bench-up-") as folder:
        bench = Bench(Path(folder), args.nodes, args.ray, args.netns)
        try:
            up_first = bench.saf("up")
            parts = bench.parts()
            slowest = bench.slowest_sum()
            up_again = bench.saf("up")
            hand_first = hand_again = float("nan")
            if not args.up_only:
                bench.fresh()
                hand_first = bench.by_hand()
                hand_again = bench.by_hand()
            bench.fresh()
        finally:
            if args.keep_logs:
                shutil.copytree(bench.root / "state" / "runs", args.keep_logs,
                                dirs_exist_ok=True)
            bench.close()
    what = (f"{args.nodes} {'namespaced' if args.netns else 'loopback'} nodes"
            + (", with Ray" if args.ray else ""))
    print(f"saf up vs the same recipes by hand (saf run ... in sequence), {what}")
    print(f"{'':28}{'saf up':>10}{'by hand':>10}{'ratio':>8}")
    print(f"{'first (from nothing)':28}{up_first:>9.2f}s{hand_first:>9.2f}s"
          f"{up_first / hand_first:>7.2f}x")
    print(f"{'again (nothing to do)':28}{up_again:>9.2f}s{hand_again:>9.2f}s"
          f"{up_again / hand_again:>7.2f}x")
    if slowest > 0:
        print(f"first up / sum of the slowest node's time per step ({slowest:.2f} s): "
              f"{up_first / slowest:.2f}x (target <= 1.1x)")
    if parts:
        print("first up, by its run logs: " + ", ".join(f"{what} {took:.2f} s"
                                                     for what, took in parts))
    target = 2.0 if args.nodes <= 3 else 5.0
    print(f"no-op up: {up_again:.2f} s (target < {target:.0f} s for {args.nodes} nodes)")


if __name__ == "__main__":
    main()
