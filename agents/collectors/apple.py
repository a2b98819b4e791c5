"""Apple Silicon GPU: from `macmon pipe` (JSON lines, no sudo) when installed, else from
`powermetrics` when `sudo -n` allows it, else unavailable with that reason.

The tool runs as one long-lived child process at the agent's interval; a thread keeps the
latest reading, and each sample takes it. Both macmon formats are read: v0.8
(gpu_freq_mhz, gpu_active_ratio) and the legacy one (gpu_usage = [MHz, ratio]).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

from .. import tools
from ..collectors import Collector, Reading, round1
from ..context import Context

RESTART_AFTER = 10.0  # seconds between attempts to restart a helper that died


def parse_macmon(line: str) -> Reading:
    """One `macmon pipe` JSON line -> a gpu item (Apple GPUs share the system's memory)."""
    data: Any = json.loads(line)  # macmon's JSON, any shape: a wrong one raises, said as such
    if "gpu_freq_mhz" in data:
        freq = data.get("gpu_freq_mhz")
        ratio = data.get("gpu_active_ratio", data.get("gpu_scaled_ratio"))
    else:
        usage = data.get("gpu_usage") or [None, None]
        freq, ratio = usage[0], usage[1]
    temp = (data.get("temp") or {}).get("gpu_temp_avg")
    memory = data.get("memory") or {}
    item: Reading = {
        "index": 0, "vendor": "apple", "name": "Apple GPU",
        "util": round1(ratio * 100.0) if ratio is not None else None,
        "freq_mhz": round1(freq) if freq is not None else None,
        "power_w": _watts(data.get("gpu_power")),
        "temp": round1(temp) if temp else None,
        # Unified memory: the GPU's memory is the system's.
        "mem_used": memory.get("ram_usage"), "mem_total": memory.get("ram_total"),
        "ane_power_w": _watts(data.get("ane_power")),
        "cpu_power_w": _watts(data.get("cpu_power")),
        "soc_power_w": _watts(data.get("all_power")),
        "sys_power_w": _watts(data.get("sys_power")),
    }
    missing = {k: "macmon did not report it" for k, v in item.items() if v is None}
    if missing:
        item["missing"] = missing
    return item


def _watts(value: object) -> float | None:
    return round(value, 3) if isinstance(value, (int, float)) else None


_PM_FREQ = re.compile(r"^GPU (?:HW )?active frequency:\s*([\d.]+)\s*MHz")
_PM_RESIDENCY = re.compile(r"^GPU (?:HW )?active residency:\s*([\d.]+)%")
_PM_POWER = re.compile(r"^GPU Power:\s*([\d.]+)\s*mW")


class PowermetricsParser:
    """Feeds on powermetrics' text output line by line; `latest` is the last complete GPU
    reading. A reading is complete at the GPU Power line that follows the GPU residency."""

    def __init__(self) -> None:
        self.latest: Reading | None = None
        self.current: dict[str, float] = {}

    def feed(self, line: str) -> None:
        line = line.strip()
        if line.startswith("*** Sampled system activity"):
            self.current = {}
            return
        m = _PM_FREQ.match(line)
        if m:
            self.current["freq_mhz"] = float(m.group(1))
            return
        m = _PM_RESIDENCY.match(line)
        if m:
            self.current["util"] = float(m.group(1))
            return
        m = _PM_POWER.match(line)
        if m:
            self.current["power_w"] = float(m.group(1)) / 1000.0
            if "util" in self.current:
                item: Reading = {"index": 0, "vendor": "apple", "name": "Apple GPU",
                        "util": self.current.get("util"),
                        "freq_mhz": self.current.get("freq_mhz"),
                        "power_w": round(self.current["power_w"], 3),
                        "missing": {"temp": "powermetrics does not report it",
                                    "mem_used": "powermetrics does not report it"}}
                self.latest = item


class AppleGpuCollector(Collector):
    name = "apple"
    section = "gpus"

    def __init__(self, machine: Context, interval: float = 1.0) -> None:
        Collector.__init__(self, machine)
        self.interval = interval
        self.proc: subprocess.Popen[bytes] | None = None
        self.mode = ""  # macmon or powermetrics, once started
        self.argv: list[str] = []
        self.latest: Reading | None = None
        self.latest_time = 0.0
        self.started = 0.0
        self.error: str | None = None

    def start(self) -> str | None:
        machine = self.machine
        forced = "macmon" in machine.commands or "powermetrics" in machine.commands
        if not machine.macos and not forced:
            return "Apple GPU figures need macOS; this is %s" % machine.platform
        ms = tools.interval_ms(self.interval)
        argv = machine.command("macmon", "pipe", "-i", ms)
        if argv:
            self.mode, self.source, self.argv = "macmon", "macmon pipe", argv
            return self._spawn()
        why = "macmon is not installed (brew install macmon)"
        if not machine.command("powermetrics"):
            return why + " and there is no powermetrics"
        check = machine.command("sudo", "-n", "-l", "powermetrics")
        if not check:
            return why + " and there is no sudo for powermetrics"
        try:
            allowed = tools.run(machine, check, timeout=5) == 0
        except (OSError, subprocess.SubprocessError) as exc:
            return why + " and sudo -n failed: %s" % exc
        if not allowed:
            return why + " and `sudo -n powermetrics` needs a password"
        argv = machine.command("sudo", "-n", "powermetrics", "--samplers", "gpu_power", "-i", ms)
        if not argv:  # sudo was there for the check just now
            return why + " and there is no sudo for powermetrics"
        self.mode, self.source, self.argv = "powermetrics", "sudo -n powermetrics", argv
        return self._spawn()

    def _spawn(self) -> str | None:
        self.started = time.monotonic()
        try:
            self.proc = tools.start_reading(self.machine, self.argv, self._read)
        except OSError as exc:
            return "cannot start %s: %s" % (self.argv[0], exc)
        return None

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        parser = PowermetricsParser() if self.mode == "powermetrics" else None
        for raw in proc.stdout or ():  # Context.popen always gives a pipe
            line = raw.decode("utf-8", "replace")
            try:
                if parser is not None:
                    parser.feed(line)
                    item = parser.latest
                    parser.latest = None
                else:
                    item = parse_macmon(line) if line.strip() else None
            except (ValueError, TypeError, AttributeError, IndexError) as exc:
                self.error = "unreadable %s output: %s" % (self.mode, exc)
                continue
            if item is not None:
                self.latest, self.latest_time, self.error = item, time.monotonic(), None

    def set_interval(self, seconds: float) -> None:
        if abs(seconds - self.interval) < 1e-9:
            return
        self.interval = seconds
        if self.proc is not None:
            self.close()
            self.argv[self.argv.index("-i") + 1] = tools.interval_ms(seconds)
            self._spawn()

    def collect(self) -> list[Reading]:
        now = time.monotonic()
        if self.proc is not None and self.proc.poll() is not None:
            status = self.proc.returncode
            if now - self.started >= RESTART_AFTER:
                self._spawn()
            raise RuntimeError("%s exited (status %s)" % (self.mode, status))
        if self.latest is None:
            if tools.silent_for(self.started, self.interval):
                raise RuntimeError(self.error or "%s gives no readings" % self.mode)
            return []
        if tools.silent_for(self.latest_time, self.interval):
            raise RuntimeError("%s stopped giving readings" % self.mode)
        return [self.latest]

    def close(self) -> None:

        proc, self.proc = self.proc, None
        tools.stop(proc)
