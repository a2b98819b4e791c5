"""NVIDIA GPUs through NVML (the `pynvml` module from NVIDIA's nvidia-ml-py package).

Per GPU: name, utilisation, memory used/total, temperature, power draw and limit, clocks, fan,
PCIe throughput, persistence mode, and the processes on it with their memory. A query the GPU
or driver does not support is null with that reason (asked once, then not again); no NVML,
no driver or no GPU makes the whole collector unavailable with the reason in the hello.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from ..collectors import Collector, Reading, round1
from ..protocol import GpuProcess

T = TypeVar("T")

# pynvml's values of these constants, used if an old pynvml lacks a name.
TEMPERATURE_GPU = 0
CLOCK_GRAPHICS, CLOCK_SM, CLOCK_MEM = 0, 1, 2
PCIE_TX, PCIE_RX = 0, 1
ERROR_NOT_SUPPORTED = 3
MIB = 1024 * 1024


def _text(value: T) -> T | str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class NvmlCollector(Collector):
    name = "nvml"
    section = "gpus"
    source = "NVML (pynvml)"

    def start(self) -> str | None:
        machine = self.machine
        self._errors: dict[str, object] = {}
        # (handle id, field) -> reason: asked once, then not again
        self.unsupported: dict[tuple[int, str], str] = {}
        if machine.macos:
            return "macOS has no NVIDIA GPUs"
        # Without the kernel driver NVML cannot work: say so without importing pynvml,
        # which keeps the agent's memory small on the many nodes with no NVIDIA GPU.
        if ("pynvml" not in machine.modules and machine.linux
                and not machine.exists("/proc/driver/nvidia")
                and not machine.exists("/dev/nvidiactl")):
            return "no NVIDIA driver loaded (no /proc/driver/nvidia)"
        nvml, why = machine.module("pynvml")
        if nvml is None:
            return why + " (install nvidia-ml-py for GPU figures)"
        self.nvml: ModuleType = nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
            return "NVML cannot start: %s" % (_text(str(exc)) or type(exc).__name__)
        try:
            count = nvml.nvmlDeviceGetCount()
            # (index, NVML's handle, the fields read once)
            self.gpus: list[tuple[int, object, Reading]] = []
            for index in range(count):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                self.gpus.append((index, handle, {
                    "name": _text(nvml.nvmlDeviceGetName(handle)),
                    "uuid": _text(self._try(handle, "uuid", nvml.nvmlDeviceGetUUID)),
                }))
        except Exception as exc:  # noqa: BLE001 - any failure here is a reason, not a crash
            return "NVML failed to list GPUs: %s" % exc
        if not self.gpus:
            return "NVML found no GPU"
        self.driver = _text(self._try(None, "driver", nvml.nvmlSystemGetDriverVersion))
        return None

    def _const(self, name: str, default: int) -> int:
        value: int = getattr(self.nvml, name, default)
        return value

    # NVML's calls answer Any: pynvml has no stubs, and each query returns its own kind.
    def _try(self, handle: object, field: str, fn: Callable[..., Any], *args: object) -> Any:
        """fn(handle, *args), or None when NVML says no (remembered when unsupported)."""
        key = (id(handle), field)
        unsupported = self.unsupported
        if key in unsupported:
            return None
        try:
            return fn(handle, *args) if handle is not None else fn()
        except Exception as exc:  # noqa: BLE001 - one field's failure must not lose the GPU
            value = getattr(exc, "value", None)
            if value == self._const("NVML_ERROR_NOT_SUPPORTED", ERROR_NOT_SUPPORTED):
                unsupported[key] = "not supported by this GPU or driver"
            else:
                self._errors[field] = _text(str(exc)) or type(exc).__name__
            return None

    def collect(self) -> list[Reading]:
        nvml = self.nvml
        out = []
        for index, handle, static in self.gpus:
            self._errors = {}
            item: Reading = {"index": index, "vendor": "nvidia"}
            item.update(static)
            util = self._try(handle, "util", nvml.nvmlDeviceGetUtilizationRates)
            item["util"] = util.gpu if util is not None else None
            item["mem_util"] = util.memory if util is not None else None
            mem = self._try(handle, "mem_used", nvml.nvmlDeviceGetMemoryInfo)
            item["mem_used"] = mem.used if mem is not None else None
            item["mem_total"] = mem.total if mem is not None else None
            item["temp"] = self._try(handle, "temp", nvml.nvmlDeviceGetTemperature,
                                     self._const("NVML_TEMPERATURE_GPU", TEMPERATURE_GPU))
            power = self._try(handle, "power_w", nvml.nvmlDeviceGetPowerUsage)
            item["power_w"] = round1(power / 1000.0) if power is not None else None
            limit = self._try(handle, "power_limit_w", nvml.nvmlDeviceGetEnforcedPowerLimit)
            item["power_limit_w"] = round1(limit / 1000.0) if limit is not None else None
            for field, const, default in (("clock_graphics_mhz", "NVML_CLOCK_GRAPHICS",
                                           CLOCK_GRAPHICS),
                                          ("clock_sm_mhz", "NVML_CLOCK_SM", CLOCK_SM),
                                          ("clock_mem_mhz", "NVML_CLOCK_MEM", CLOCK_MEM)):
                item[field] = self._try(handle, field, nvml.nvmlDeviceGetClockInfo,
                                        self._const(const, default))
            item["fan"] = self._try(handle, "fan", nvml.nvmlDeviceGetFanSpeed)
            for field, const, default in (("pcie_tx_bps", "NVML_PCIE_UTIL_TX_BYTES", PCIE_TX),
                                          ("pcie_rx_bps", "NVML_PCIE_UTIL_RX_BYTES", PCIE_RX)):
                kbps = self._try(handle, field, nvml.nvmlDeviceGetPcieThroughput,
                                 self._const(const, default))
                item[field] = kbps * 1024 if kbps is not None else None  # NVML says KB/s
            mode = self._try(handle, "persistence", nvml.nvmlDeviceGetPersistenceMode)
            item["persistence"] = None if mode is None else bool(mode)
            item["processes"] = self._processes(handle)
            missing = dict(self._errors)
            for (hid, field), reason in self.unsupported.items():
                if hid == id(handle):
                    missing[field] = reason
            for field, value in list(item.items()):
                if value is None and field not in missing:
                    missing[field] = "NVML gave no value"
            if missing:
                item["missing"] = missing
            out.append(item)
        return out

    def _processes(self, handle: object) -> list[GpuProcess]:
        procs: dict[int, GpuProcess] = {}
        for field, fn_name, kind in (("processes_compute", "nvmlDeviceGetComputeRunningProcesses",
                                      "compute"),
                                     ("processes_graphics",
                                      "nvmlDeviceGetGraphicsRunningProcesses", "graphics")):
            fn = getattr(self.nvml, fn_name, None)
            found = self._try(handle, field, fn) if fn else None
            for p in found or ():
                used = getattr(p, "usedGpuMemory", None)
                entry = procs.setdefault(p.pid, {"pid": p.pid, "name": self._comm(p.pid),
                                                 "type": kind, "mem_used": used})
                if entry["type"] != kind:
                    entry["type"] = "compute+graphics"
        return sorted(procs.values(), key=lambda p: p["pid"])

    def _comm(self, pid: int) -> str | None:
        get = getattr(self.nvml, "nvmlSystemGetProcessName", None)
        if get is not None:
            try:
                return _text(get(pid))
            except Exception:  # noqa: BLE001 - /proc below names the process instead
                pass
        text = self.machine.read("/proc/%d/comm" % pid)
        return text.strip() if text else None

    def close(self) -> None:

        nvml = getattr(self, "nvml", None)
        if nvml is not None:
            try:
                nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001 - the agent is closing; nothing to tell
                pass
