"""How long a person waits for the CLI to answer (target, issue 25: under 0.15 s), beside
`python -c pass` (the floor: the interpreter's own start) and the peers' own help,
`ansible --version` and `pyinfra --help`, where installed, in the same run:

- `saf --help` and `saf COMMAND --help` for every command and subcommand;
- every headless command that connects, from its start to its first connection: the
  inventory's one node, and the signal endpoint, is a port this script listens on; the moment
  it accepts a connection is the moment the command reached it, and the command (its process
  group) is then killed, so nothing after its start-up is waited for. The inventory (two
  nodes, one port) declares a whole cluster ([up], [ray], a service, a model), so `saf up`,
  `down` and `status` read and compile what they would for real before they connect.

Each command line is run --runs times in turns (so a burst of load on a shared machine falls
on every line alike) and its median wall time printed, with its ratio to `python -c pass`
and whether it is over the target. Asserts nothing. A command line that ends without
connecting is reported with its error.

    .venv/bin/python tests/perf/bench_cli.py [--runs 9] [--only WORD] [--before DIR]

`--before DIR` runs every saf line a second time per turn on an older checkout's saf package
(`git worktree add DIR COMMIT`, or `git archive COMMIT | tar -x -C DIR`), interleaved with
this one, for a before/after table from one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from tests.helpers.cli_lines import connecting, inventory  # noqa: E402 - the root is on the path now

TARGET = 0.15
GIVE_UP = 30.0  # seconds a command may take to connect before it is reported as not connecting


def saf_program() -> str:
    found = shutil.which("saf", path=str(BIN)) or shutil.which("saf")
    if not found:
        raise SystemExit("saf is not installed in this Python's venv")
    return found


def help_lines() -> list[list[str]]:
    """Every command and subcommand, as the words before `--help` (imports the commands
    here, in this process only)."""
    from tests.test_cli_start import command_lines

    return [[], *command_lines()]


def peers() -> dict[str, list[str] | None]:
    """label -> argv, or None where the tool is not installed."""
    found: dict[str, list[str] | None] = {}
    for label, tool, args in (("ansible --version", "ansible", ["--version"]),
                              ("pyinfra --help", "pyinfra", ["--help"])):
        path = shutil.which(tool, path=f"{BIN}:{Path.home() / '.local/bin'}") or shutil.which(tool)
        found[label] = [path, *args] if path else None
    return found


def children_cpu() -> float:
    """CPU seconds of this process's children that have ended (one runs at a time here)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def wall(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run."""
    cpu, start = children_cpu(), time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   cwd=ROOT, env=env)
    return time.perf_counter() - start, children_cpu() - cpu


def drain(listener: socket.socket) -> None:
    """Drop connections left queued by a command already killed."""
    listener.setblocking(False)
    try:
        while True:
            conn, _ = listener.accept()
            conn.close()
    except BlockingIOError:
        pass
    finally:
        listener.setblocking(True)


def to_first_connection(argv: list[str], listener: socket.socket,
                        env: dict[str, str]) -> tuple[float, float] | str:
    """Seconds from starting `argv` to the listener's first accepted connection, and the CPU
    seconds it had used when killed just after; or, when it ended (or ran GIVE_UP seconds)
    without connecting, what it said."""
    drain(listener)
    seconds = None
    with tempfile.TemporaryFile() as said:
        cpu, start = children_cpu(), time.perf_counter()
        child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=said, stderr=said,
                                 cwd=ROOT, env=env, start_new_session=True)
        assert child.stdin is not None
        child.stdin.write(b"not-a-password\n")  # for --password-stdin; nobody else reads it
        child.stdin.close()
        try:
            while time.perf_counter() - start < GIVE_UP:
                ready, _, _ = select.select([listener], [], [], 0.02)
                if ready:
                    seconds = time.perf_counter() - start
                    listener.accept()[0].close()
                    break
                if child.poll() is not None:
                    break
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        if seconds is not None:
            return seconds, children_cpu() - cpu
        said.seek(0)
        words = said.read().decode(errors="replace").strip().splitlines()
        return f"did not connect (exit {child.returncode}): {words[-1] if words else ''}"


Runs = list[tuple[float, float]]  # (wall, CPU) seconds of each run


def wall_median(runs: Runs) -> float:
    return statistics.median(w for w, _ in runs)


def cell(runs: Runs, floor: float) -> str:
    """The median wall time, its ratio to the floor, and the median CPU time."""
    if not runs:
        return f"{'-':>22}"
    return (f"{wall_median(runs):.3f} ({wall_median(runs) / floor:4.1f}x) "
            f"{statistics.median(c for _, c in runs):.3f}")


def table(title: str, labels: list[str], times: dict[tuple[str, str], Runs],
          sides: list[str], floor: float, failed: dict[tuple[str, str], str]) -> list[str]:
    """One row per command line: each side's median wall seconds, its ratio to the floor and
    its median CPU seconds, and whether the last side's wall time is over the target."""
    out = [title]
    for label in labels:
        cells = [cell(times.get((label, side), []), floor) for side in sides]
        last = times.get((label, sides[-1]), [])
        mark = "" if not last else "OVER" if wall_median(last) > TARGET else "ok"
        out.append(f"  {label:<26} {'   '.join(cells)}  {mark}")
        out += [f"      {side}: {failed[(label, side)]}" for side in sides
                if (label, side) in failed]
    return out


def measure(plain: dict[str, list[str]], walls: dict[str, list[str]],
            connects: dict[str, list[str]], envs: dict[str, dict[str, str]],
            listener: socket.socket, runs: int,
            ) -> tuple[dict[tuple[str, str], Runs], dict[tuple[str, str], str]]:
    """Every line (`plain`: on the last side only; the others on every side), `runs` times
    in turns, after one warming run each."""
    times: dict[tuple[str, str], Runs] = {}
    failed: dict[tuple[str, str], str] = {}
    now = list(envs)[-1]
    for round_ in range(runs + 1):
        for label, argv in plain.items():
            seconds = wall(argv, envs[now])
            if round_:
                times.setdefault((label, now), []).append(seconds)
        for label, argv in walls.items():
            for side, env in envs.items():
                seconds = wall(argv, env)
                if round_:  # the first round warms the page cache, .pyc files, saf's cache
                    times.setdefault((label, side), []).append(seconds)
        for label, argv in connects.items():
            for side, env in envs.items():
                if (label, side) in failed:
                    continue
                first = to_first_connection(argv, listener, env)
                if isinstance(first, str):
                    failed[(label, side)] = first
                elif round_:
                    times.setdefault((label, side), []).append(first)
    return times, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--only", metavar="WORD",
                        help="Only the saf command lines containing WORD (and the floor).")
    parser.add_argument("--before", metavar="DIR", type=Path,
                        help="Also run each saf line on the saf package in DIR (an older "
                             "checkout: PYTHONPATH=DIR), in the same turns, in a column before.")
    args = parser.parse_args()
    saf = saf_program()

    def keep(label: str) -> bool:
        return args.only is None or args.only in label

    with tempfile.TemporaryDirectory() as tmp, socket.socket() as listener:
        folder = Path(tmp)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        path = inventory(folder, port)
        # saf's own folders in the scratch folder: nothing of the user's is read or written.
        env = {**os.environ, "SAF_CONFIG_DIR": str(folder / "config"),
               "SAF_STATE_DIR": str(folder / "state"), "SAF_CACHE_DIR": str(folder / "cache")}
        # A user's install has saf's .pyc files (pip writes them, or the first run does); with
        # PYTHONDONTWRITEBYTECODE, as set on the shared machine, every run compiled saf's own
        # modules from source again (40 to 70 ms of `saf nodes`' start). The warming round
        # writes them.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        envs = {"now": env}
        if args.before:
            envs = {"before": {**env, "PYTHONPATH": str(args.before.resolve())}, "now": env}
        walls = {" ".join(["saf", *words, "--help"]): [saf, *words, "--help"]
                 for words in help_lines()}
        walls = {label: argv for label, argv in walls.items() if keep(label)}
        found_peers = peers() if args.only is None else {}
        connects = {f"saf {label}": [saf, "-i", str(path), *words]
                    for label, words in connecting(folder, port).items()
                    if keep(f"saf {label}")}
        floor_runs = {"python -c pass": [sys.executable, "-c", "pass"],
                      **{label: argv for label, argv in found_peers.items() if argv}}
        times, failed = measure(floor_runs, walls, connects, envs, listener, args.runs)
    floor = wall_median(times[("python -c pass", "now")])
    load = os.getloadavg()
    sides = list(envs)
    print(f"medians of {args.runs} runs each, taken in turns: wall seconds (ratio to python -c "
          f"pass) CPU seconds; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on "
          f"{os.cpu_count()} cores; target {TARGET:.3f} s wall")
    print(f"  {'':<26} {'   '.join(f'{side:<22}' for side in sides)}")
    for label in floor_runs:
        print(f"  {label:<26} {cell(times[(label, 'now')], floor)}")
    for label, argv in found_peers.items():
        if argv is None:
            print(f"  {label:<26} not installed")
    print("\n".join(table("--help:", list(walls), times, sides, floor, failed)))
    print("\n".join(table("from its start to its first connection (CPU: until killed just "
                          "after):", list(connects), times, sides, floor, failed)))
    over = [label for label in [*walls, *connects]
            if times.get((label, "now")) and wall_median(times[(label, "now")]) > TARGET]
    print(f"over {TARGET:.2f} s now: {', '.join(over) if over else 'none'}")


if __name__ == "__main__":
    main()
