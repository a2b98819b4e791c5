"""The agent's Intel GPU collector against recorded sysfs trees and the real intel_gpu_top
capture (tests/fixtures/README-agent.md says which is which)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from saf.agents.collectors import intel as agent_intel
from saf.agents.collectors.intel import IntelGpuCollector, JsonStream, busy_engines
from saf.agents.context import Context
from saf.agents.main import Agent

from saf.metrics.frames import SampleFrame
from saf.metrics.frames import check as check_frame
from saf.metrics.view import _gpus
from saf.recipe.facts import intel as facts_intel

FIXTURES = Path(__file__).parent / "fixtures"
TOP = FIXTURES / "machines" / "captures" / "intel_gpu_top-J_netdata-igt.json"
A770 = FIXTURES / "sysfs" / "intel_arc-a770_i915"
B580 = FIXTURES / "sysfs" / "intel_arc-b580_xe-and-nvidia"


def machine(root: Path, **commands) -> Context:
    return Context(root=str(root), platform="linux",
                   commands={"intel_gpu_top": None, **commands})


def collect_until(c: IntelGpuCollector, ready, seconds: float = 20) -> list[dict]:
    deadline = time.monotonic() + seconds
    while True:
        items = c.collect()
        if ready(items) or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def test_a770_on_i915_from_sysfs() -> None:
    c = IntelGpuCollector(machine(A770))
    assert c.start() is None
    [gpu] = c.collect()
    assert gpu["name"] == "Intel Arc A770"
    assert gpu["vendor"] == "intel"
    assert gpu["driver"] == "i915"
    assert gpu["freq_mhz"] == 2400.0
    assert gpu["mem_total"] == 17079205888
    assert gpu["mem_used"] == 17079205888 - 12884901888
    # No made-up utilisation: absent, with why.
    assert gpu["util"] is None
    assert gpu["power_w"] is None
    assert gpu["missing"]["util"].startswith("intel_gpu_top is not installed")
    check_frame({"type": "sample", "seq": 0, "time": 1.0, "interval": 1.0, "gpus": [gpu]})


def test_b580_on_xe_beside_an_nvidia_card() -> None:
    c = IntelGpuCollector(machine(B580))
    assert c.start() is None
    [gpu] = c.collect()  # card0 is NVIDIA's: not this collector's
    assert gpu["name"] == "Intel Arc B580"
    assert gpu["driver"] == "xe"
    assert gpu["freq_mhz"] == 2850.0
    assert gpu["mem_total"] == 12884901888
    assert gpu["mem_used"] is None
    assert "xe driver gives no memory use" in gpu["missing"]["mem_used"]


def test_no_intel_gpu_and_not_linux(tmp_path: Path) -> None:
    assert IntelGpuCollector(machine(tmp_path)).start() == (
        "no Intel GPU (no card with vendor 0x8086 in /sys/class/drm)")
    assert "need Linux" in IntelGpuCollector(Context(platform="darwin")).start()


def _player(script: str) -> list[str]:
    return [sys.executable, "-c", script]


def test_utilisation_and_power_from_intel_gpu_top() -> None:
    """intel_gpu_top -J streams a JSON array it never closes; the real sample's busiest
    Render/3D engine is the utilisation, its GPU power the power."""
    play = ("import sys, time; sys.stdout.write('[\\n' + open(sys.argv[1]).read() + ',\\n');"
            " sys.stdout.flush(); time.sleep(60)")
    c = IntelGpuCollector(machine(A770, intel_gpu_top=_player(play) + [str(TOP)]), interval=0.2)
    try:
        assert c.start() is None
        [gpu] = collect_until(c, lambda items: items[0]["util"] is not None)
        assert gpu["util"] == 96.1
        assert gpu["power_w"] == 3.234
        assert gpu["freq_mhz"] == 2400.0  # sysfs's reading is kept
        assert "util" not in gpu["missing"]
    finally:
        c.close()
    assert c.proc is None


def test_intel_gpu_top_refused_says_why() -> None:
    play = ("import sys; sys.stderr.write('Failed to initialize PMU! (Permission denied)\\n');"
            " sys.exit(1)")
    c = IntelGpuCollector(machine(A770, intel_gpu_top=_player(play)), interval=0.2)
    assert c.start() is None
    [gpu] = collect_until(c, lambda items: "exited" in items[0]["missing"]["util"])
    assert gpu["missing"]["util"] == ("intel_gpu_top exited (status 1: Failed to initialize "
                                      "PMU! (Permission denied))")
    assert gpu["name"] == "Intel Arc A770"  # the GPU is still reported


def test_json_stream_in_pieces() -> None:
    text = "[\n" + TOP.read_text() + ",\n" + TOP.read_text() + ",\n"
    stream = JsonStream()
    objects = []
    for i in range(0, len(text), 7):
        objects += stream.feed(text[i:i + 7])
    assert len(objects) == 2
    assert busy_engines(objects[0]) == (96.1, 3.234, 1253.1)


def test_the_agent_reports_intel_gpus_in_its_frames() -> None:
    c = Context(root=str(A770), platform="linux", commands={"intel_gpu_top": None},
                modules={"pynvml": None})
    agent = Agent(c, 1.0, collectors=[IntelGpuCollector(c)])
    hello = agent.start()
    assert hello["collectors"]["intel"]["ok"] is True
    sample = agent.sample()
    typed = check_frame(json.loads(json.dumps(sample)))
    assert isinstance(typed, SampleFrame)
    [gpu] = _gpus(typed)
    assert gpu.vendor == "intel"
    assert not gpu.unified
    assert gpu.name == "Intel Arc A770"
    assert gpu.clock_mhz == 2400.0
    assert gpu.missing["util"].startswith("intel_gpu_top is not installed")
    agent.close()


def test_one_arc_table_for_the_agent_and_the_recipe_facts() -> None:
    """The Arc ids are one vendored table: the agent's collector and the recipe facts read the
    same object, and the agent's zipapp carries it (the agent imports nothing of saf)."""
    import io
    import zipfile

    from saf.agents import arc_ids

    from saf.agentlink.build import zip_bytes

    assert agent_intel.ARC_IDS is arc_ids.ARC_IDS
    assert facts_intel.ARC_IDS is arc_ids.ARC_IDS
    data = zip_bytes()
    names = zipfile.ZipFile(io.BytesIO(data[data.index(b"PK"):])).namelist()
    assert "agents/arc_ids.py" in names


def test_intel_gpu_top_objects_of_any_shape() -> None:
    for odd in ({"engines": [1, 2]}, {"engines": {"Render/3D/0": {"busy": "nan"}}},
                {"power": "3 W", "frequency": None}, {"engines": {"Compute/0": {"busy": 1e309}}},
                {"engines": {"Render/3D/0": {"busy": -5}}}):
        util, power, freq = busy_engines(odd)
        assert util in (None, 0.0)
        assert power is None
        assert freq is None
