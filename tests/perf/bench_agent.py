"""The node agent's own cost: CPU (percent of one core) at 1 Hz and 10 Hz, and resident memory.

Measured from each process's own CPU times (user + system) over a window after a short
warm-up, so start-up is not counted. In the same run, on the same machine, the peers:

  psutil loop   a bare Python loop collecting CPU, memory, NICs, disks and NUMA with psutil
                (always: it is the floor a Python agent can reach)
  htop, btop    when installed, in a pseudo-terminal, refreshing every second
  glances       when installed, `glances --stdout` every second

and prints each figure, the agent's ratio to the bare loop, and the targets
(<= 0.3 % at 1 Hz, <= 2 % at 10 Hz, <= 25 MB resident). Asserts nothing.

    python tests/perf/bench_agent.py [--seconds 60] [--python /path/to/python3.9]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from saf.agentlink.build import build  # noqa: E402

PY39 = "/root/.pyenv/versions/3.9.18/bin/python"
TARGETS = {1.0: 0.3, 0.1: 2.0}
RSS_TARGET_MB = 25.0

PSUTIL_LOOP = r"""
import glob, json, os, select, sys, time
import psutil
interval = float(sys.argv[1])
def numa():
    out = []
    for node in sorted(glob.glob("/sys/devices/system/node/node[0-9]*")):
        with open(node + "/meminfo") as f:
            mem = f.read()
        with open(node + "/numastat") as f:
            stat = f.read()
        out.append((node, len(mem), len(stat)))
    return out
out = open(os.devnull, "w")
while True:
    frame = {"cpu": psutil.cpu_percent(percpu=True), "mem": psutil.virtual_memory()._asdict(),
             "swap": psutil.swap_memory()._asdict(),
             "nics": {k: v._asdict() for k, v in psutil.net_io_counters(pernic=True).items()},
             "disks": {k: v._asdict() for k, v in
                       (psutil.disk_io_counters(perdisk=True) or {}).items()},
             "numa": numa(), "load": os.getloadavg()}
    out.write(json.dumps(frame) + "\n")
    out.flush()
    if select.select([0], [], [], interval)[0] and not os.read(0, 4096):
        break
"""


@dataclass
class Subject:
    name: str
    interval: float
    argv: list[str]
    tty: bool = False
    is_agent: bool = False
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    ps: psutil.Process | None = None
    start_cpu: float = 0.0
    start_time: float = 0.0
    cpu_percent: float | None = None
    rss_mb: float | None = None
    frames: list[int] = field(default_factory=lambda: [0])
    error: str = ""

    def launch(self) -> None:
        if self.tty:
            master, slave = os.openpty()
            # A real terminal size: htop and btop refuse or shrink in a 0x0 one.
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
            env = dict(os.environ, TERM="xterm-256color", **self.env)
            self.proc = subprocess.Popen(self.argv, stdin=slave, stdout=slave, stderr=slave,
                                         env=env, start_new_session=True)
            os.close(slave)
            threading.Thread(target=self._drain_fd, args=(master,), daemon=True).start()
        else:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            threading.Thread(target=self._drain, daemon=True).start()
        self.ps = psutil.Process(self.proc.pid)

    def _drain(self) -> None:
        assert self.proc
        assert self.proc.stdout
        for _ in self.proc.stdout:
            self.frames[0] += 1

    def _drain_fd(self, fd: int) -> None:
        try:
            while os.read(fd, 65536):
                pass
        except OSError:
            pass

    def _cpu(self) -> float:
        assert self.ps
        total = 0.0
        for p in [self.ps, *self.ps.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def begin(self) -> None:
        if self.proc and self.proc.poll() is not None:
            self.error = f"exited early with status {self.proc.returncode}"
            return
        self.start_cpu, self.start_time = self._cpu(), time.monotonic()

    def end(self) -> None:
        if self.error or not self.proc or self.proc.poll() is not None:
            self.error = self.error or "exited during the window"
            return
        elapsed = time.monotonic() - self.start_time
        self.cpu_percent = 100.0 * (self._cpu() - self.start_cpu) / elapsed
        self.rss_mb = sum(p.memory_info().rss for p in [self.ps, *self.ps.children(True)]
                          ) / 1e6

    def stop(self) -> None:
        if not self.proc:
            return
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _describe(python: str) -> str:
    probe = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0]); "
                            "import psutil"], capture_output=True, text=True)
    version = probe.stdout.strip() or "?"
    return f"Python {version}" + ("" if probe.returncode == 0 else ", no psutil")


def subjects(python: str | None) -> list[Subject]:
    bundle = build()
    out = []
    for interval in (1.0, 0.1):
        hz = f"{1 / interval:g} Hz"
        out.append(Subject(f"saf agent {hz}", interval,
                           [sys.executable, str(bundle.path), "--interval", str(interval)],
                           is_agent=True))
        if python:
            out.append(Subject(f"saf agent {hz} ({_describe(python)})", interval,
                               [python, str(bundle.path), "--interval", str(interval)],
                               is_agent=True))
        out.append(Subject(f"psutil loop {hz}", interval,
                           [sys.executable, "-c", PSUTIL_LOOP, str(interval)]))
    if shutil.which("htop"):
        out.append(Subject("htop -d 10 (1 s)", 1.0, ["htop", "-d", "10"], tty=True))
    if shutil.which("btop"):
        conf = Path(tempfile.mkdtemp(prefix="bench-btop-"))
        (conf / "btop").mkdir()
        (conf / "btop" / "btop.conf").write_text("update_ms = 1000\n")
        out.append(Subject("btop (update_ms 1000)", 1.0, ["btop", "--utf-force"], tty=True,
                           env={"XDG_CONFIG_HOME": str(conf)}))
    if shutil.which("glances"):
        out.append(Subject("glances --stdout (1 s)", 1.0,
                           ["glances", "--stdout", "cpu.total,mem.percent", "-t", "1"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--python", default=PY39 if os.path.exists(PY39) else None,
                        help="also run the agent under this Python (default: pyenv's 3.9)")
    args, _ = parser.parse_known_args()  # tests/perf/run passes the same args to every bench

    subs = subjects(args.python)
    print(f"machine: {psutil.cpu_count()} cores, Python {sys.version.split()[0]}; "
          f"window {args.seconds:g} s after {args.warmup:g} s warm-up; all run at once")
    for s in subs:
        s.launch()
    try:
        time.sleep(args.warmup)
        for s in subs:
            s.begin()
        time.sleep(args.seconds)
        for s in subs:
            s.end()
    finally:
        for s in subs:
            s.stop()

    loops = {s.interval: s for s in subs if s.name.startswith("psutil loop")}
    print(f"{'subject':46} {'CPU % of one core':>18} {'RSS MB':>8}  notes")
    for s in subs:
        if s.error:
            print(f"{s.name:46} {'—':>18} {'—':>8}  {s.error}")
            continue
        notes = []
        if s.is_agent:
            base = loops.get(s.interval)
            if base and base.cpu_percent:
                notes.append(f"{s.cpu_percent / base.cpu_percent:.2f}x the psutil loop")
            target = TARGETS[s.interval]
            notes.append(f"CPU target <= {target:g} %: "
                         + ("met" if s.cpu_percent <= target else "MISSED"))
            notes.append(f"RSS target <= {RSS_TARGET_MB:g} MB: "
                         + ("met" if s.rss_mb <= RSS_TARGET_MB else "MISSED"))
            frames = s.frames[0]
            notes.append(f"{frames} frames")
        print(f"{s.name:46} {s.cpu_percent:18.3f} {s.rss_mb:8.1f}  {'; '.join(notes)}")
    agents = [s for s in subs if s.is_agent and not s.error]
    for peer in subs:
        if not peer.is_agent and not peer.error and peer.interval == 1.0 and peer.cpu_percent:
            for a in agents:
                if a.interval == 1.0:
                    print(f"ratio {a.name} / {peer.name}: {a.cpu_percent / peer.cpu_percent:.2f}")


if __name__ == "__main__":
    main()
