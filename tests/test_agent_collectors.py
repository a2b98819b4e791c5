"""Collectors that cannot run here (NUMA boxes, NVIDIA GPUs, Apple Silicon), driven by
recordings of real machines in tests/fixtures/, through the agent's injectable Context."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pynvml
import pytest
from saf.agents.collectors.apple import AppleGpuCollector, PowermetricsParser, parse_macmon
from saf.agents.collectors.memory import MemoryCollector, parse_meminfo
from saf.agents.collectors.numa import NumaCollector
from saf.agents.collectors.nvml import NvmlCollector
from saf.agents.context import Context
from saf.agents.main import Agent

from tests.fixtures.nvml.fake_nvml import FakeNvml
from tests.fixtures.nvml.recorded_nvml import RecordedNvml

FIXTURES = Path(__file__).parent / "fixtures"
MIB = 1024 * 1024


def linux(root: Path | str = "/", **kw) -> Context:
    return Context(root=str(root), platform="linux", **kw)


# -- NUMA -----------------------------------------------------------------------------------
def test_numa_two_socket_tree():
    """node_exporter's real two-node box: CPUs, memory in bytes and the numastat counters."""
    c = NumaCollector(linux(FIXTURES / "sysfs/numa_2socket-256GB_node-exporter"))
    assert c.start() is None
    nodes = c.collect()
    assert [n["node"] for n in nodes] == [0, 1, 2]
    n0, n1, n2 = nodes
    assert n0["cpus"] == "0-1"
    assert n0["cpu_count"] == 2
    assert n1["cpus"] == "2-3"
    assert n0["mem_total"] == 134182340 * 1024
    assert n0["mem_free"] == 53030372 * 1024
    # No /proc/zoneinfo in the recorded tree: no reserve, available is free + file pages +
    # reclaimable slab, and used is the rest (not the kernel's MemUsed, which counts the cache).
    assert n0["mem_available"] == (53030372 + 4765056 + 58809728 + 4473124) * 1024
    assert n0["mem_used"] == n0["mem_total"] - n0["mem_available"]
    assert n0["numa_hit"] == 193460335812
    assert n0["numa_miss"] == 12624528
    assert n1["numa_foreign"] == 12624528
    assert n1["numa_miss"] == 59858626709
    assert n2["cpu_count"] == 0
    assert n2["cpus"] == ""
    # A recording does not move: rates are measured, and zero.
    assert n0["numa_hit_rate"] == 0.0


def test_numa_nodes_used_memory_adds_up_to_the_machines():
    """This machine, its real /proc/meminfo, sysfs and /proc/zoneinfo: the NUMA nodes' used
    memory is reckoned as the machine's (total - available), so together they come to what
    the memory collector says (read a moment apart: within 1 % of the memory)."""
    numa, memory = NumaCollector(linux()), MemoryCollector(linux())
    if numa.start() is not None:
        pytest.skip("no NUMA sysfs here")
    assert memory.start() is None
    nodes, mem = numa.collect(), memory.collect()
    used = sum(n["mem_used"] for n in nodes)
    assert abs(used - mem["used"]) < 0.01 * mem["total"], (used, mem)


def test_a_numa_nodes_available_memory_is_reckoned_as_the_kernel_reckons_memavailable():
    """A one-node machine's /proc/meminfo, /proc/zoneinfo and node0/meminfo read at one
    moment: the node's available memory is /proc/meminfo's MemAvailable to the byte (the
    reserves and low watermarks from zoneinfo; the per-CPU pagesets' `high:` lines, indented
    deeper, are not the zone's watermark)."""
    root = FIXTURES / "sysfs/numa_1node-24G-vm"
    numa = NumaCollector(linux(root))
    assert numa.start() is None
    (node,) = numa.collect()
    meminfo = parse_meminfo((root / "proc/meminfo").read_text())
    assert node["mem_available"] == meminfo["MemAvailable"]
    assert node["mem_used"] == meminfo["MemTotal"] - meminfo["MemAvailable"]
    assert node["mem_used"] != node["mem_total"] - node["mem_free"]  # not the page cache too


def test_numa_cluster_on_die_without_numastat():
    """4 nodes on 2 sockets; no numastat recorded: counters absent, never made-up zeros."""
    c = NumaCollector(linux(FIXTURES / "sysfs/numa_2s-xeon-e5-2695v3-CoD-4nodes"))
    assert c.start() is None
    nodes = c.collect()
    assert [n["cpu_count"] for n in nodes] == [14, 14, 14, 14]
    assert nodes[1]["cpus"] == "7-13,35-41"
    assert nodes[0]["mem_total"] == 15932 * MIB
    assert nodes[0]["mem_free"] == 15580 * MIB
    assert nodes[2]["distances"] == [31, 31, 10, 21]
    assert all("numa_hit" not in n and "numa_miss" not in n for n in nodes)


def test_numa_absent(tmp_path: Path):
    assert "no /sys/devices/system/node" in NumaCollector(linux(tmp_path)).start()
    assert "Linux" in NumaCollector(Context(platform="darwin")).start()


# -- NVML -----------------------------------------------------------------------------------
def nvml_ctx(fake) -> Context:
    return linux("/nonexistent", modules={"pynvml": fake})


def test_nvml_rtx_3090():
    """An RTX 3090's figures, from values carried from the closest real capture."""
    fake = FakeNvml(FIXTURES / "nvml/nvidia-smi-q-x_rtx-3090_values-from-rtx-4090-driver-535.xml")
    c = NvmlCollector(nvml_ctx(fake))
    assert c.start() is None
    assert c.driver == "535.86.05"
    [gpu] = c.collect()
    assert gpu["name"] == "NVIDIA GeForce RTX 3090"
    assert gpu["vendor"] == "nvidia"
    assert gpu["uuid"] == "GPU-71d1acc2-662d-2166-bf9f-65272d2fc437"
    assert gpu["mem_total"] == 24576 * MIB
    assert gpu["mem_used"] == 2 * MIB
    assert gpu["util"] == 0
    assert gpu["mem_util"] == 0
    assert gpu["temp"] == 40
    assert gpu["power_w"] == 26.8
    assert gpu["power_limit_w"] == 350.0
    assert (gpu["clock_graphics_mhz"], gpu["clock_sm_mhz"], gpu["clock_mem_mhz"]) == \
        (210, 210, 405)
    assert gpu["fan"] == 0
    assert gpu["persistence"] is True
    assert gpu["pcie_tx_bps"] == 0
    assert gpu["pcie_rx_bps"] == 0
    assert gpu["processes"] == [{"pid": 28543, "name": "/usr/libexec/Xorg", "type": "graphics",
                                 "mem_used": 4 * MIB}]
    assert "missing" not in gpu
    json.dumps(gpu, allow_nan=False)


def test_nvml_unsupported_fields_are_null_with_reason_and_asked_once():
    """The RTX 3060 Laptop reports no fan and no power limit: null with a reason, no zero,
    and NVML is not asked again for what it does not support."""
    fake = FakeNvml(FIXTURES / "nvml/nvidia-smi-q-x_rtx-3060-laptop_driver-515.xml")
    c = NvmlCollector(nvml_ctx(fake))
    assert c.start() is None
    [gpu] = c.collect()
    assert gpu["name"] == "NVIDIA GeForce RTX 3060 Laptop GPU"
    assert gpu["fan"] is None
    assert gpu["power_limit_w"] is None
    assert gpu["missing"]["fan"] == "not supported by this GPU or driver"
    assert "power_limit_w" in gpu["missing"]
    assert gpu["power_w"] == 8.7
    assert gpu["persistence"] is False
    asked = fake.calls.count("fan_speed")
    c.collect()
    assert fake.calls.count("fan_speed") == asked == 1


def test_nvml_without_library_or_driver():
    """No NVML library: unavailable with pynvml's own reason. No driver: said without even
    importing pynvml. No GPU: said too."""
    why = NvmlCollector(nvml_ctx(FakeNvml(None, library=False))).start()
    assert why.startswith("NVML cannot start")
    assert "Not Found" in why
    assert NvmlCollector(linux("/nonexistent")).start() == \
        "no NVIDIA driver loaded (no /proc/driver/nvidia)"
    assert NvmlCollector(nvml_ctx(FakeNvml(None))).start() == "NVML found no GPU"
    assert NvmlCollector(Context(platform="darwin")).start() == "macOS has no NVIDIA GPUs"


def test_real_pynvml_here_says_library_not_found():
    """The real nvidia-ml-py on this GPU-less machine: nvmlInit raises LibraryNotFound."""
    c = NvmlCollector(linux(modules={"pynvml": pynvml}))
    why = c.start()
    assert why is not None
    assert why.startswith("NVML cannot start")


# -- Apple ----------------------------------------------------------------------------------
def test_macmon_m3_ultra_line():
    line = (FIXTURES / "apple/macmon-pipe_v0.8_mac-studio-m3-ultra-256GB.jsonl").read_text()
    gpu = parse_macmon(line)
    assert gpu["vendor"] == "apple"
    assert gpu["util"] == 87.0
    assert gpu["freq_mhz"] == 1338
    assert gpu["power_w"] == 61.37
    assert gpu["temp"] == 58.2
    assert gpu["mem_total"] == 256 * 1024 ** 3
    assert gpu["soc_power_w"] == 99.79


def test_macmon_legacy_line():
    gpu = parse_macmon((FIXTURES / "apple/macmon-pipe_legacy_16GB-m4-class_exo.jsonl").read_text())
    assert gpu["util"] == 1.0
    assert gpu["freq_mhz"] == 354
    assert gpu["power_w"] == 0.031
    assert gpu["temp"] == 73.5
    assert gpu["mem_total"] == 16 * 1024 ** 3


@pytest.mark.parametrize(("capture", "util", "freq", "power"), [
    ("powermetrics-text_Mac16-6_macOS15.5.txt", 1.63, 338.0, 0.028),
    ("powermetrics-text_Macmini9-1_M1_macOS11.2_TRIMMED.txt", 1.26, 712.0, 0.006),
])
def test_powermetrics_text(capture, util, freq, power):
    parser = PowermetricsParser()
    readings = []
    for line in (FIXTURES / "apple" / capture).read_text().splitlines():
        parser.feed(line)
        if parser.latest:
            readings.append(parser.latest)
            parser.latest = None
    assert readings
    last = readings[-1]
    assert (last["util"], last["freq_mhz"], last["power_w"]) == (util, freq, power)


def replay(recording: str) -> list[str]:
    return [sys.executable, str(FIXTURES / "replay_lines.py"), str(FIXTURES / "apple" / recording)]


def test_apple_collector_streams_macmon():
    """The collector runs `macmon pipe` as a child and takes its latest line each sample."""
    macmon = replay("macmon-pipe_v0.8_mac-studio-m3-ultra-256GB.jsonl")
    machine = Context(platform="darwin", commands={"macmon": macmon})
    c = AppleGpuCollector(machine, interval=0.5)
    try:
        assert c.start() is None
        assert c.source == "macmon pipe"
        deadline = time.monotonic() + 20
        gpus = []
        while not gpus and time.monotonic() < deadline:
            gpus = c.collect()
            time.sleep(0.05)
        assert gpus[0]["util"] == 87.0
    finally:
        c.close()
    assert c.proc is None


def test_apple_collector_finds_homebrews_macmon_off_the_path(tmp_path):
    """An SSH command's PATH lacks /opt/homebrew/bin, where `brew install macmon` (apple-check)
    puts it: the agent looks there too, and streams it."""
    brew_bin = tmp_path / "homebrew-bin"
    brew_bin.mkdir()
    macmon = brew_bin / "macmon"
    argv = replay("macmon-pipe_v0.8_mac-studio-m3-ultra-256GB.jsonl")
    macmon.write_text("#!/bin/sh\nexec %s\n" % " ".join(argv))
    macmon.chmod(0o755)
    assert Context(platform="darwin").macos_bin == ("/opt/homebrew/bin", "/usr/local/bin")
    machine = Context(platform="darwin", macos_bin=(str(brew_bin),))
    c = AppleGpuCollector(machine, interval=0.5)
    try:
        assert c.start() is None
        assert c.argv[:2] == [str(macmon), "pipe"]
        deadline = time.monotonic() + 20
        gpus = []
        while not gpus and time.monotonic() < deadline:
            gpus = c.collect()
            time.sleep(0.05)
        assert gpus[0]["util"] == 87.0
    finally:
        c.close()
    assert "macmon is not installed" in AppleGpuCollector(
        Context(platform="darwin", macos_bin=(), commands={"powermetrics": None})).start()


def test_apple_collector_powermetrics_needs_passwordless_sudo():
    machine = Context(platform="darwin", commands={"macmon": None, "powermetrics": ["true"],
                                                   "sudo": ["false"]})
    why = AppleGpuCollector(machine).start()
    assert "macmon is not installed" in why
    assert "needs a password" in why
    machine = Context(platform="darwin", commands={"macmon": None, "powermetrics": None})
    assert "no powermetrics" in AppleGpuCollector(machine).start()
    assert "need macOS" in AppleGpuCollector(Context(platform="linux")).start()


def test_apple_collector_streams_powermetrics():
    """No macmon, passwordless sudo: GPU figures from `sudo -n powermetrics` text."""
    machine = Context(platform="darwin", commands={
        "macmon": None, "powermetrics": ["true"],
        "sudo": replay("powermetrics-text_Macmini9-1_M1_macOS11.2_TRIMMED.txt")})
    c = AppleGpuCollector(machine, interval=0.5)
    try:
        assert c.start() is None
        assert c.source == "sudo -n powermetrics"
        assert c.argv[-4:] == ["--samplers", "gpu_power", "-i", "500"]
        deadline = time.monotonic() + 20
        gpus: list = []
        while time.monotonic() < deadline:
            gpus = c.collect()
            if gpus and gpus[0]["power_w"] == 0.006:  # the last reading of the recording
                break
            time.sleep(0.05)
        assert (gpus[0]["util"], gpus[0]["freq_mhz"]) == (1.26, 712.0)
        assert gpus[0]["missing"]["temp"]
    finally:
        c.close()


# -- the agent with recorded collectors -----------------------------------------------------
def test_agent_sample_with_recorded_gpu_and_numa():
    """The agent's frames with recorded NUMA and NVML: GPUs listed, the Apple collector's
    reason in the hello, nothing missing that was measured."""
    machine = Context(root=str(FIXTURES / "sysfs/numa_2socket-256GB_node-exporter"),
                      platform="linux", modules={"pynvml": FakeNvml(FIXTURES / "nvml" /
                      "nvidia-smi-q-x_rtx-3090_values-from-rtx-4090-driver-535.xml")})
    out = io.StringIO()
    agent = Agent(machine, 1.0, out=out, collectors=[NumaCollector(machine), NvmlCollector(machine),
                                                     AppleGpuCollector(machine)])
    hello = agent.start()
    assert hello["collectors"]["nvml"] == {"ok": True, "section": "gpus",
                                          "source": "NVML (pynvml)"}
    assert not hello["collectors"]["apple"]["ok"]
    sample = agent.sample()
    assert [g["name"] for g in sample["gpus"]] == ["NVIDIA GeForce RTX 3090"]
    assert len(sample["numa"]) == 3
    assert "gpus" not in sample.get("missing", {})
    agent.close()


# -- NVML on a real GPU, recorded ------------------------------------------------------------
H200 = FIXTURES / "nvml/h200-under-load"


def test_nvml_h200_replays_the_real_gpu_call_for_call():
    """An H200 under a matrix-product load (tests/fixtures/nvml/record_nvml.py, run on the
    GPU machine): fed NVML's recorded answers, the collector asks exactly what it asked
    there and gives exactly the samples the real agent sent."""
    frames = [json.loads(line) for line in (H200 / "agent-frames.jsonl").read_text().splitlines()]
    hello, samples = frames[0], [f for f in frames if f["type"] == "sample"]
    assert hello["collectors"]["nvml"] == {"ok": True, "section": "gpus",
                                           "source": "NVML (pynvml)"}
    nvml = RecordedNvml(H200 / "nvml-calls.json")
    c = NvmlCollector(nvml_ctx(nvml))
    assert c.start() is None
    assert c.driver == "580.159.04"
    for sample in samples:
        assert c.collect() == sample["gpus"]
    c.close()
    assert nvml.done
    [gpu] = samples[0]["gpus"]
    assert gpu["name"] == "NVIDIA H200"
    assert gpu["util"] >= 99
    assert gpu["power_w"] > 600
    assert gpu["missing"] == {"fan": "not supported by this GPU or driver"}
    assert [p["type"] for p in gpu["processes"]] == ["compute"]


def test_nvml_h200_answers_agree_with_nvidia_smi():
    """The vendor tool, read at the same moment, names the same GPU, driver and memory."""
    smi = FakeNvml(H200 / "nvidia-smi-q-x.xml")
    [gpu] = json.loads((H200 / "agent-frames.jsonl").read_text().splitlines()[1])["gpus"]
    assert smi.nvmlSystemGetDriverVersion() == "580.159.04"
    handle = smi.nvmlDeviceGetHandleByIndex(0)
    assert smi.nvmlDeviceGetName(handle) == gpu["name"]
    assert smi.nvmlDeviceGetUUID(handle) == gpu["uuid"]
    assert abs(smi.nvmlDeviceGetMemoryInfo(handle).total - gpu["mem_total"]) < 1024 * MIB
    assert "GPU 0: NVIDIA H200 (UUID: %s)" % gpu["uuid"] in \
        (H200 / "nvidia-smi-L.txt").read_text()
