"""The agent's main loop: hello, then one sample per interval, on the wall clock's beat;
commands on stdin.

    python agent.pyz [--interval SECONDS] [--cluster-host HOST] [--once]
    python agent.pyz netperf info|serve|client ...   (the throughput tester: agents/netperf.py)

It exits when its stdin closes (so it never outlives its SSH channel) or when its stdout
breaks. One select() on stdin with the time left to the next sample is all it waits on, so
between samples it costs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TextIO

from . import protocol
from .collectors import Collector
from .collectors.amdgpu import AmdGpuCollector
from .collectors.apple import AppleGpuCollector
from .collectors.cpu import CpuCollector
from .collectors.disks import DiskCollector
from .collectors.filesystems import FilesystemCollector
from .collectors.intel import IntelGpuCollector
from .collectors.memory import MemoryCollector
from .collectors.nics import NicCollector
from .collectors.numa import NumaCollector
from .collectors.nvml import NvmlCollector
from .context import Context

MIN_INTERVAL = protocol.MIN_INTERVAL
MAX_INTERVAL = protocol.MAX_INTERVAL
# The first sample comes this soon after hello, not a whole interval later, so a cockpit shows
# live figures at once. Rates need a baseline: the collectors take one when they start, and
# 0.2 s of counters is a true (if coarser) figure. Later samples keep the interval.
FIRST_INTERVAL = 0.2


def until_next_beat(interval: float, now: float | None = None) -> float:
    """Seconds until the wall clock next reaches a whole multiple of `interval`, at least half
    an interval away (so two samples never come close together). Agents whose clocks agree
    (NTP) then sample at the same moments: a cluster's samples describe the same instant and
    reach the hub together, one wake-up of its event loop for all of them instead of one
    each. Worked out from the clock at each sample, so a slow sample or a clock that was set
    skips to the next beat."""
    now = time.time() if now is None else now
    wait = interval - now % interval
    return wait if wait >= interval / 2 else wait + interval


def cluster_addresses(host: str | None = None,
                      environ: Mapping[str, str] | None = None) -> set[str]:
    """The addresses this node is reached on: the server side of the SSH connection, and
    what the inventory's host name resolves to (a loopback test reaches 127.0.0.1)."""
    environ = os.environ if environ is None else environ
    found: set[str] = set()
    ssh = (environ.get("SSH_CONNECTION") or "").split()
    if len(ssh) == 4:
        found.add(ssh[2])
    if host:
        try:
            for info in socket.getaddrinfo(host, None):
                found.add(str(info[4][0]).split("%")[0])
        except (OSError, UnicodeError):
            pass
    return found


def make_collectors(machine: Context, interval: float) -> list[Collector]:
    return [CpuCollector(machine), MemoryCollector(machine), NumaCollector(machine),
            NvmlCollector(machine), AppleGpuCollector(machine, interval),
            IntelGpuCollector(machine, interval), AmdGpuCollector(machine),
            NicCollector(machine), DiskCollector(machine), FilesystemCollector(machine)]


class Agent:
    def __init__(self, machine: Context, interval: float = 1.0, out: TextIO | None = None,
                 collectors: list[Collector] | None = None) -> None:
        self.machine = machine
        self.interval = interval
        self.out = out or sys.stdout
        if collectors is None:
            collectors = make_collectors(machine, interval)
        self.collectors = collectors
        self.working: list[Collector] = []
        self.unavailable: dict[str, str] = {}  # collector name -> reason
        self.reported: dict[str, str] = {}     # collector name -> last error message sent
        self.seq = 0

    def write(self, frame: Mapping[str, object]) -> None:
        self.out.write(protocol.encode(frame))
        self.out.flush()

    def start(self) -> protocol.HelloFrame:
        """Start the collectors and return the hello frame."""
        status: dict[str, protocol.CollectorStatus] = {}
        for c in self.collectors:
            try:
                reason = c.start()
            except Exception as exc:  # noqa: BLE001 - a collector's bug must not stop the others
                reason = "failed to start: %s: %s" % (type(exc).__name__, exc)
            if reason is None:
                self.working.append(c)
                entry: protocol.CollectorStatus = {"ok": True, "section": c.section}
                if c.source:
                    entry["source"] = c.source
                if c.note:
                    entry["note"] = c.note
            else:
                self.unavailable[c.name] = reason
                entry = {"ok": False, "section": c.section, "reason": reason}
            status[c.name] = entry
        uname = platform.uname()
        psutil, why = self.machine.module("psutil")
        optional: dict[str, dict[str, object]] = {
            "psutil": {"ok": True, "version": getattr(psutil, "__version__", "?")}
            if psutil is not None else {"ok": False, "reason": why}}
        return {"type": "hello", "protocol": protocol.PROTOCOL_VERSION,
                "agent": protocol.AGENT_VERSION,
                "host": socket.gethostname(), "os": self.machine.platform, "system": uname.system,
                "arch": uname.machine, "kernel": uname.release,
                "python": platform.python_version(), "executable": sys.executable,
                "pid": os.getpid(), "interval": self.interval, "collectors": status,
                "modules": optional}

    def sample(self) -> dict[str, object]:
        frame: dict[str, object] = {"type": "sample", "seq": self.seq,
                                    "time": round(time.time(), 3), "interval": self.interval}
        self.seq += 1
        missing: dict[str, str] = {}
        for c in self.working:
            try:
                value = c.collect()
            except Exception as exc:  # noqa: BLE001 - said in the sample's `missing` instead
                message = "%s: %s" % (type(exc).__name__, exc)
                missing.setdefault(c.section, "%s failed: %s" % (c.name, message))
                if self.reported.get(c.name) != message:
                    self.reported[c.name] = message
                    self.write({"type": "error", "collector": c.name, "message": message})
                continue
            self.reported.pop(c.name, None)
            shared = frame.get(c.section)
            if isinstance(value, list) and isinstance(shared, list):
                shared.extend(value)  # two GPU collectors share "gpus"
            else:
                frame[c.section] = value
        for c in self.collectors:
            if c.name in self.unavailable and c.section not in frame:
                reasons = [self.unavailable[o.name] for o in self.collectors
                           if o.section == c.section and o.name in self.unavailable]
                missing[c.section] = "; ".join(reasons)
        if missing:
            frame["missing"] = missing
        return frame

    def command(self, line: str) -> dict[str, object] | None:
        """Answer one command line from stdin; the reply frame (or None)."""
        try:
            cmd = json.loads(line)
        except ValueError as exc:
            return {"type": "error", "message": "command is not JSON: %s" % exc}
        if not isinstance(cmd, dict):
            return {"type": "error", "message": "command is not a JSON object"}
        reply: dict[str, object] = {"type": "reply", "cmd": cmd.get("cmd")}
        if "id" in cmd:
            reply["id"] = cmd["id"]
        name = cmd.get("cmd")
        if name == "interval":
            seconds = cmd.get("seconds")
            if (not isinstance(seconds, (int, float)) or isinstance(seconds, bool)
                    or not MIN_INTERVAL <= seconds <= MAX_INTERVAL):
                reply.update(ok=False, error="seconds must be a number from %g to %g"
                             % (MIN_INTERVAL, MAX_INTERVAL))
                return reply
            self.set_interval(float(seconds))
            reply.update(ok=True, seconds=self.interval)
            return reply
        if name == "ping":
            reply.update(ok=True)
            return reply
        reply.update(ok=False, error="unknown command %r" % (name,))
        return reply

    def set_interval(self, seconds: float) -> None:
        self.interval = seconds
        for c in self.working:
            hook = getattr(c, "set_interval", None)
            if hook is not None:
                hook(seconds)

    def close(self) -> None:
        for c in self.collectors:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - close the others whatever one does
                pass

    def run(self, stdin_fd: int = 0, once: bool = False) -> int:
        """Hello, then samples until stdin closes. Returns the exit status."""
        try:
            self.write(self.start())
            first = self.interval if once else min(self.interval, FIRST_INTERVAL)
            next_at = time.monotonic() + first
            pending = b""
            while True:
                wait = next_at - time.monotonic()
                if wait > 0:
                    ready, _, _ = select.select([stdin_fd], [], [], wait)
                    if ready:
                        data = os.read(stdin_fd, 65536)
                        if not data:
                            return 0  # stdin closed: the connection is gone
                        pending += data
                        while b"\n" in pending:
                            line, pending = pending.split(b"\n", 1)
                            if line.strip():
                                reply = self.command(line.decode("utf-8", "replace"))
                                if reply is not None:
                                    self.write(reply)
                                    if reply.get("cmd") == "interval" and reply.get("ok"):
                                        next_at = time.monotonic() + until_next_beat(
                                            self.interval)
                        if len(pending) > protocol.MAX_LINE:
                            pending = b""
                        continue
                self.write(self.sample())
                if once:
                    return 0
                next_at = time.monotonic() + until_next_beat(self.interval)
        except (BrokenPipeError, ConnectionResetError):
            return 0
        except KeyboardInterrupt:
            return 130
        finally:
            self.close()


def main(argv: Sequence[str] | None = None) -> int:

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["netperf"]:  # the throughput tester (agents/netperf.py), not the agent
        from .netperf import main as netperf_main
        return netperf_main(argv[1:])
    parser = argparse.ArgumentParser(prog="saf-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--cluster-host", help="the host name saf reaches this node by")
    parser.add_argument("--once", action="store_true", help="one sample, then exit")
    args = parser.parse_args(argv)
    interval = min(MAX_INTERVAL, max(MIN_INTERVAL, args.interval))
    machine = Context(cluster_addresses=cluster_addresses(args.cluster_host))
    return Agent(machine, interval).run(once=args.once)


if __name__ == "__main__":
    sys.exit(main())
