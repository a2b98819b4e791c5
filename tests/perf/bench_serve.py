"""`saf serve --ssh` on the demo cluster: what each SSH client costs, and how fast a key press
is answered.

In one run: the CPU of `saf serve` (its hub, and the cockpits it runs, one per client) with 0,
1, 3 and 10 asyncssh clients watching the dashboard, against one standalone cockpit (`saf tui`
on the same cluster, in a pty of the same size, with its own SSH connections and agents) measured
in the same run; the agents running on the nodes at each step (target: one per node); and the
key-press-to-screen latency a client sees with 1 and with 10 clients (target: p99 < 100 ms with
10), against the standalone cockpit's: the time from sending Down (or Up) to the moment the
client's screen (a pyte VT100 screen) shows the dashboard's cursor on the next row.

    .venv/bin/python tests/perf/bench_serve.py [--window 10] [--presses 40]

The clients' screens are kept in this process (pyte), which shares the machine's cores with
the server: on a small machine the figures include that contention.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from saf.demo.cluster import DemoCluster  # noqa: E402
from tests.helpers.serve import Keys, Served, TermClient, agents, dashboard_up  # noqa: E402

COLS, ROWS = 100, 30


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


async def _measure(procs: list[psutil.Process], window: float) -> float:
    """CPU seconds per second (1.0 = one core) of `procs` over `window` seconds."""
    before = _cpu(procs)
    start = time.monotonic()
    await asyncio.sleep(window)
    return (_cpu(procs) - before) / (time.monotonic() - start)


def _serve_procs(served: Served) -> tuple[psutil.Process, list[psutil.Process]]:
    return psutil.Process(served.proc.pid), served.cockpits()


class PtyCockpit:
    """A standalone `saf tui` on the demo cluster in a pty of COLS x ROWS, read through the
    same pyte screen as the SSH clients (the peer of the benchmark)."""

    def __init__(self, inventory: Path, state: Path) -> None:
        import fcntl
        import struct
        import termios

        import pyte

        self.master, slave = pty.openpty()
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        env = dict(os.environ, SAF_INVENTORY=str(inventory), SAF_STATE_DIR=str(state / "tui"),
                   SAF_CONFIG_DIR=str(state / "tui-config"), PYTHONPATH=str(ROOT),
                   TERM="xterm-256color")
        self.proc = subprocess.Popen([sys.executable, "-m", "saf", "tui"], stdin=slave,
                                     stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, cwd=ROOT)
        os.close(slave)
        os.set_blocking(self.master, False)
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.changed = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.master, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:
            self.loop.remove_reader(self.master)
            return
        self.stream.feed(data)
        self.changed.set()

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    async def wait_for(self, predicate, seconds: float = 60) -> bool:
        return await TermClient.wait_for(self, predicate, seconds)  # type: ignore[arg-type]

    async def close(self) -> None:
        self.press("q")  # quit as a person does: its agents stop with it
        for _ in range(100):
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        self.loop.remove_reader(self.master)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def _cursor_on(screen, name: str) -> bool:
    """Whether the dashboard's cursor row is `name`'s: its row is drawn in another background
    than gamma's (the cursor never goes there in this benchmark)."""
    rows = {}
    for y, line in enumerate(screen.display):
        for node in ("alpha", "beta", "gamma"):
            if line.startswith(node):
                rows[node] = y
    if len(rows) < 3:
        return False
    return screen.buffer[rows[name]][0].bg != screen.buffer[rows["gamma"]][0].bg


async def _latency(clients: list, presses: int) -> list[float]:
    """Seconds from a key press (down, then up: the dashboard's cursor moves between alpha and
    beta) to the screen showing it, round robin over `clients`."""
    took: list[float] = []
    for i in range(presses):
        client = clients[i % len(clients)]
        if _cursor_on(client.screen, "beta"):
            key, name = "\x1b[A", "alpha"
        else:
            key, name = "\x1b[B", "beta"
        start = time.perf_counter()
        client.press(key)
        if await client.wait_for(lambda _t, c=client, n=name: _cursor_on(c.screen, n), 10):
            took.append(time.perf_counter() - start)
        await asyncio.sleep(0.1)
    return took


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _latency_line(label: str, took: list[float]) -> str:
    if not took:
        return f"   key press to screen, {label}: no answer"
    return (f"   key press to screen, {label}: median {statistics.median(took) * 1000:.0f} ms, "
            f"p99 {_pct(took, 99) * 1000:.0f} ms ({len(took)} presses)")


async def bench(window: float, presses: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="saf-bench-serve-"))
    with DemoCluster(homes=workdir / "homes") as demo:
        keys = Keys.make(workdir / "keys")
        peer = PtyCockpit(demo.inventory_path, workdir)
        try:
            await peer.wait_for(dashboard_up, 90)
            await asyncio.sleep(4)  # samples flowing
            me = psutil.Process(peer.proc.pid)
            standalone = await _measure([me, *me.children(recursive=True)], window)
            peer_took = await _latency([peer], presses)
        finally:
            await peer.close()
        print(f"one standalone cockpit (saf tui, {COLS}x{ROWS}): {standalone * 100:.1f}% CPU "
              f"over {window:.0f} s (its own SSH connections; its 3 agents not counted)")
        print(_latency_line("standalone cockpit", peer_took), flush=True)
        served = Served(demo.inventory_path, keys, workdir / "state")
        clients: list[TermClient] = []
        try:
            await asyncio.sleep(8)  # the hub's agents up
            base = None
            for count in (0, 1, 3, 10):
                while len(clients) < count:
                    clients.append(await TermClient.open(served, cols=COLS, rows=ROWS))
                for client in clients:
                    if not await client.wait_for(dashboard_up, 90):
                        print(f"a client's dashboard did not come up:\n{client.text()}")
                await asyncio.sleep(2)
                hub, cockpits = _serve_procs(served)
                hub_cpu = await _measure([hub], window)
                hub, cockpits = _serve_procs(served)
                cockpit_cpu = await _measure(cockpits, window) if cockpits else 0.0
                total = hub_cpu + cockpit_cpu
                if base is None:
                    base = total
                extra = (total - base) / count if count else 0.0
                line = (f"{count:2d} clients: saf serve {total * 100:5.1f}% CPU (hub "
                        f"{hub_cpu * 100:4.1f}%, {len(cockpits)} cockpits "
                        f"{cockpit_cpu * 100:5.1f}%), agents running {len(agents(demo.homes))} "
                        f"(3 nodes)")
                if count:
                    line += (f"; each client {extra * 100:4.1f}% = "
                             f"{extra / standalone:.2f}x a standalone cockpit"
                             if standalone > 0 else "")
                print(line, flush=True)
                if count == 1:
                    print(_latency_line("1 client", await _latency(clients, presses)),
                          flush=True)
            print(_latency_line("10 clients (target p99 < 100 ms)",
                                await _latency(clients, presses)), flush=True)
        finally:
            for client in clients:
                await client.close()
            served.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=10.0,
                        help="seconds of CPU measured at each step")
    parser.add_argument("--presses", type=int, default=40, help="key presses per latency run")
    args = parser.parse_args()
    asyncio.run(bench(args.window, args.presses))


if __name__ == "__main__":
    main()
