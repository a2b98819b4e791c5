"""How long a person waits for the CLI to answer (target: `saf --help` and `saf nodes --help`
under 0.15 s), beside `python -c pass` (the floor: the interpreter's own start) and the peers'
own help, `ansible --version` and `pyinfra --help`, where installed, in the same run. Also
`saf nodes`' start-up: from its start to its first connection (an audit hook notes the first
socket.connect; the node is a closed port on loopback, so nothing else is waited for).

Each command line is run --runs times in turns (so a burst of load on a shared machine falls
on every line alike) and its median wall time printed, with its ratio to `python -c pass`.
Asserts nothing.

    .venv/bin/python tests/perf/bench_cli.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def lines() -> dict[str, list[str] | None]:
    """label -> argv, or None where the tool is not installed."""
    saf = shutil.which("saf", path=str(BIN)) or shutil.which("saf")
    found: dict[str, list[str] | None] = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "saf --help": [saf, "--help"] if saf else None,
        "saf nodes --help": [saf, "nodes", "--help"] if saf else None,
    }
    for label, tool, args in (("ansible --version", "ansible", ["--version"]),
                              ("pyinfra --help", "pyinfra", ["--help"])):
        path = shutil.which(tool, path=f"{BIN}:{Path.home() / '.local/bin'}") or shutil.which(tool)
        found[label] = [path, *args] if path else None
    return found


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   cwd=ROOT)
    return time.perf_counter() - start


# `saf ARGS` in this Python, printing the seconds from `T0` to its first socket.connect.
FIRST_CONNECT = """
import os, sys, time
t0 = float(os.environ["T0"])
def hook(event, args):
    if event == "socket.connect" and not hook.__dict__.get("done"):
        hook.done = True
        os.write(int(os.environ["ANSWER_FD"]), f"{time.time() - t0}\\n".encode())
sys.addaudithook(hook)
from saf.cli import main
main(sys.argv[1:])
"""


def to_first_connection(inventory: Path) -> float:
    """Seconds from starting `saf nodes` to its first connection attempt."""
    read, write = os.pipe()
    env = {**os.environ, "T0": repr(time.time()), "ANSWER_FD": str(write)}
    subprocess.run([sys.executable, "-c", FIRST_CONNECT, "-i", str(inventory), "nodes"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT,
                   pass_fds=(write,))
    os.close(write)
    with os.fdopen(read) as answer:
        return float(answer.read().split()[0])


def closed_port_inventory(folder: Path) -> Path:
    with socket.socket() as sock:  # bound, never listening: a connection is refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = folder / "saf.toml"
    path.write_text(f'[cluster]\nname = "bench"\n\n[[nodes]]\nname = "closed"\n'
                    f'host = "127.0.0.1"\nport = {port}\n')
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    commands = lines()
    present = {label: argv for label, argv in commands.items() if argv}
    for argv in present.values():
        wall(argv)  # warm the page cache and the .pyc files
    times: dict[str, list[float]] = {label: [] for label in present}
    connect: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        inventory = closed_port_inventory(Path(folder))
        for _ in range(args.runs):
            for label, argv in present.items():
                times[label].append(wall(argv))
            connect.append(to_first_connection(inventory))
    floor = statistics.median(times["python -c pass"])
    print(f"median of {args.runs} runs each, taken in turns:")
    for label in commands:
        if label not in times:
            print(f"  {label:<20} not installed")
            continue
        median = statistics.median(times[label])
        print(f"  {label:<20} {median:.3f} s  ({median / floor:.1f}x python -c pass; "
              f"min {min(times[label]):.3f} s, max {max(times[label]):.3f} s)")
    median = statistics.median(connect)
    print(f"  {'saf nodes':<20} {median:.3f} s  from its start to its first connection "
          f"({median / floor:.1f}x python -c pass)")
    print("target: saf --help and saf nodes --help under 0.150 s")


if __name__ == "__main__":
    main()
