"""Intel GPUs (Arc and others driven by i915 or xe) on Linux.

Found in sysfs (/sys/class/drm/cardN with PCI vendor 0x8086 and a display class), each GPU is
reported with what the node gives:
- name: Arc models by PCI id (clinfo and the kernel often say only "Intel(R) Graphics [0x56a0]");
- clock: the GPU's actual frequency from sysfs (i915: gt_act_freq_mhz; xe: tile0/gt0/freq0/
  act_freq);
- memory: i915's lmem_total_bytes / lmem_avail_bytes where the driver has them (Intel's
  backport driver), xe's tile0/physical_vram_size_bytes (total only);
- utilisation and power: `intel_gpu_top -J` (a long-lived helper at the agent's interval) when
  it is installed and allowed to read the GPU's counters (it needs CAP_PERFMON or root): the
  busiest Render/3D or Compute engine, and the GPU's power.
What none of them gives is absent, with the reason in the GPU's `missing`: never a made-up 0.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import time
from typing import TYPE_CHECKING, Optional

from .. import tools
from ..arc_ids import ARC_IDS
from ..collectors import Collector, Reading, round1
from ..context import Context

if TYPE_CHECKING:  # typing.TypeGuard is Python 3.10; the agent runs on 3.9
    from typing import TypeGuard  # novermin - read by the type checker only

# One reading of intel_gpu_top: (util %, GPU power W, actual MHz), each None when not given.
# Evaluated at import on Python 3.9: Optional, not `|`.
TopReading = tuple[Optional[float], Optional[float], Optional[float]]

_CARD = re.compile(r"^card\d+$")
RESTART_AFTER = 10.0


def busy_engines(sample: dict[str, object]) -> TopReading:
    """From one `intel_gpu_top -J` object: (util %, GPU power W, actual MHz), each None when
    the object lacks it. Util is the busiest Render/3D or Compute engine (what runs kernels)."""
    engines = _dict(sample.get("engines"))
    said = [e.get("busy") for name, e in engines.items()
            if isinstance(e, dict) and name.split("/")[0] in ("Render", "Compute")]
    busy = [float(b) for b in said if _is_number(b)]
    power = _dict(sample.get("power")).get("GPU")
    freq = _dict(sample.get("frequency")).get("actual")
    return (round1(min(100.0, max(0.0, max(busy)))) if busy else None,
            round(float(power), 3) if _is_number(power) else None,
            round1(float(freq)) if _is_number(freq) else None)


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _is_number(value: object) -> TypeGuard[int | float | str]:
    """A finite number, or a string of one (intel_gpu_top writes some figures as strings)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return False
    try:
        return math.isfinite(float(value))
    except (ValueError, OverflowError):
        return False


class JsonStream:
    """Complete top-level objects out of intel_gpu_top's never-closed JSON array
    ("[\\n{...},\\n{...}"), fed in arbitrary pieces."""

    def __init__(self) -> None:
        self.buf = ""
        self.decoder = json.JSONDecoder()

    def feed(self, text: str) -> list[dict[str, object]]:
        self.buf += text
        out: list[dict[str, object]] = []
        while True:
            start = self.buf.find("{")
            if start < 0:
                self.buf = ""
                return out
            try:
                obj, end = self.decoder.raw_decode(self.buf, start)
            except ValueError:
                self.buf = self.buf[start:]
                if len(self.buf) > 1 << 20:  # a broken stream must not grow without end
                    self.buf = ""
                return out
            self.buf = self.buf[end:]
            if isinstance(obj, dict):
                out.append(obj)


class IntelGpuCollector(Collector):
    name = "intel"
    section = "gpus"
    source = "sysfs (/sys/class/drm)"

    def __init__(self, machine: Context, interval: float = 1.0) -> None:
        Collector.__init__(self, machine)
        self.interval = interval
        self.cards: list[tuple[str, int | None, str | None]] = []  # (card, PCI id, driver)
        self.proc: subprocess.Popen[bytes] | None = None
        self.argv: list[str] = []
        self.latest: TopReading | None = None
        self.latest_time = 0.0
        self.started = 0.0
        self.top_reason: str | None = None

    def start(self) -> str | None:
        machine = self.machine
        if not machine.linux:
            return "Intel GPU figures need Linux; this is %s" % machine.platform
        for card in machine.listdir("/sys/class/drm"):
            if not _CARD.match(card):
                continue
            vendor = (machine.read("/sys/class/drm", card, "device/vendor") or "").strip()
            klass = (machine.read("/sys/class/drm", card, "device/class") or "").strip()
            if vendor.lower() != "0x8086" or not klass.startswith("0x03"):
                continue
            device = (machine.read("/sys/class/drm", card, "device/device") or "").strip()
            pci_id: int | None
            try:
                pci_id = int(device, 16)
            except ValueError:
                pci_id = None
            self.cards.append((card, pci_id, self._driver(card)))
        if not self.cards:
            return "no Intel GPU (no card with vendor 0x8086 in /sys/class/drm)"
        self._start_top()
        return None

    def _driver(self, card: str) -> str | None:
        try:
            return os.path.basename(os.readlink(self.machine.path("/sys/class/drm", card,
                                                                  "device/driver")))
        except OSError:
            return None

    # -- intel_gpu_top ---------------------------------------------------------------------
    def _start_top(self) -> None:
        if len(self.cards) != 1:
            self.top_reason = ("intel_gpu_top reads one GPU at a time; %d Intel GPUs here"
                               % len(self.cards))
            return
        argv = self.machine.command("intel_gpu_top", "-J", "-s", tools.interval_ms(self.interval))
        if not argv:
            self.top_reason = "intel_gpu_top is not installed (apt install intel-gpu-tools)"
            return
        self.argv = argv
        self._spawn()

    def _spawn(self) -> None:
        self.started = time.monotonic()
        try:
            self.proc = tools.start_reading(self.machine, self.argv, self._read)
        except OSError as exc:
            self.proc = None
            self.top_reason = "cannot start intel_gpu_top: %s" % exc
            return
        self.top_reason = None

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        stream = JsonStream()
        out = proc.stdout
        if out is None:  # Context.popen always gives a pipe
            return
        while True:
            data = out.read1(65536) if hasattr(out, "read1") else out.read(4096)
            if not data:
                break
            for obj in stream.feed(data.decode("utf-8", "replace")):
                self.latest, self.latest_time = busy_engines(obj), time.monotonic()

    def _top(self) -> TopReading | None:
        """(util, power, freq) from intel_gpu_top, or None with self.top_reason set."""
        proc = self.proc
        if proc is not None and proc.poll() is not None:
            err = (proc.stderr.read() if proc.stderr else None) or b""
            said = err.decode("utf-8", "replace").strip()
            self.proc = None
            self.top_reason = "intel_gpu_top exited (status %s%s)" % (
                proc.returncode, ": " + said.splitlines()[-1][:200] if said else "")
            return None
        if proc is None:
            return None
        if self.latest is None or tools.silent_for(self.latest_time, self.interval):
            if tools.silent_for(self.started, self.interval):
                self.top_reason = "intel_gpu_top gives no readings"
            else:
                self.top_reason = "intel_gpu_top has not read the GPU yet"
            return None
        return self.latest

    def set_interval(self, seconds: float) -> None:
        self.interval = seconds
        if self.proc is not None:
            self.close()
            self.argv[self.argv.index("-s") + 1] = tools.interval_ms(seconds)
            self._spawn()

    # -- a sample --------------------------------------------------------------------------
    def _number(self, *parts: str) -> float | None:
        text = self.machine.read(*parts)
        try:
            return float(text.strip()) if text is not None else None
        except ValueError:
            return None

    def collect(self) -> list[Reading]:
        top = self._top()
        items = []
        for index, (card, pci_id, driver) in enumerate(self.cards):
            base = ("/sys/class/drm", card)
            name = ARC_IDS.get(pci_id) if pci_id is not None else None
            label = "Intel " + name if name else "Intel GPU [0x%04x]" % (pci_id or 0)
            freq = self._number(*base, "gt_act_freq_mhz")
            if freq is None:
                freq = self._number(*base, "device/tile0/gt0/freq0/act_freq")
            total = self._number(*base, "lmem_total_bytes")
            avail = self._number(*base, "lmem_avail_bytes")
            if total is None:
                total = self._number(*base, "device/tile0/physical_vram_size_bytes")
            item: Reading = {"index": index, "vendor": "intel", "name": label, "uuid": None,
                    "driver": driver,
                    "mem_total": int(total) if total is not None else None,
                    "mem_used": int(total - avail) if total is not None and avail is not None
                    else None,
                    "freq_mhz": round1(freq) if freq is not None else None,
                    "util": None, "power_w": None}
            if top is not None:
                util, power, top_freq = top
                item["util"], item["power_w"] = util, power
                if item["freq_mhz"] is None:
                    item["freq_mhz"] = top_freq
            missing: dict[str, str] = {}
            why_top = self.top_reason or "intel_gpu_top did not report it"
            for key in ("util", "power_w"):
                if item[key] is None:
                    missing[key] = why_top
            if item["mem_total"] is None:
                missing["mem_total"] = ("the %s driver gives no memory size in sysfs"
                                        % (driver or "GPU's"))
            if item["mem_used"] is None:
                missing["mem_used"] = ("the %s driver gives no memory use in sysfs (xpu-smi "
                                       "is not read yet)" % (driver or "GPU's"))
            if item["freq_mhz"] is None:
                missing["freq_mhz"] = "no actual frequency in sysfs"
            missing["uuid"] = "Intel GPUs have no UUID here"
            item["missing"] = missing
            items.append(item)
        return items

    def close(self) -> None:

        proc, self.proc = self.proc, None
        tools.stop(proc)
