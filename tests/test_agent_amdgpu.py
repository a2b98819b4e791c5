"""The agent's AMD GPU collector against trees unpacked from three real amdgpu sysfs captures
(LACT's debug snapshots: a Phoenix1 APU, a Strix Point APU, an RX 6900 XT; tests/fixtures/
README-agent.md), values as captured; then through the frame gate, the node view and /metrics."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from saf.agents.collectors.amdgpu import AmdGpuCollector
from saf.agents.context import Context
from saf.agents.main import Agent

from saf.metrics.frames import SampleFrame
from saf.metrics.frames import check as check_frame
from saf.metrics.view import _gpus

SYSFS = Path(__file__).parent / "fixtures" / "sysfs"
PHOENIX = SYSFS / "amdgpu_phoenix1-780M-APU"
STRIX = SYSFS / "amdgpu_strix-point-APU"
RX6900 = SYSFS / "amdgpu_rx6900xt-dGPU"


def collect(root: Path) -> list[dict]:
    c = AmdGpuCollector(Context(root=str(root), platform="linux"))
    assert c.start() is None
    items = c.collect()
    check_frame({"type": "sample", "seq": 0, "time": 1.0, "interval": 1.0, "gpus": items})
    return items


def test_phoenix_apu_carve_out_and_gtt_apart() -> None:
    [gpu] = collect(PHOENIX)
    assert gpu["vendor"] == "amd"
    assert gpu["driver"] == "amdgpu"
    assert gpu["name"] == "AMD GPU [0x15bf]"  # no product_name on a consumer part
    assert gpu["util"] == 0.0
    assert (gpu["mem_total"], gpu["mem_used"]) == (4294967296, 1272893440)
    assert (gpu["gtt_total"], gpu["gtt_used"]) == (31433977856, 211398656)
    assert gpu["power_w"] == 3.103  # power1_average, preferred to power1_input (3.142)
    assert gpu["temp"] == 25.0
    assert gpu["freq_mhz"] == 800.0
    assert gpu["power_limit_w"] is None
    assert gpu["fan"] is None
    assert gpu["missing"]["power_limit_w"] == "the driver gives no power cap (power1_cap)"
    assert "fan" in gpu["missing"]
    assert "uuid" in gpu["missing"]


def test_strix_point_apu_display_class_and_nearly_full_carve_out() -> None:
    [gpu] = collect(STRIX)  # PCI class 0x038000 (Display, not VGA): still found
    assert gpu["name"] == "AMD GPU [0x150e]"
    assert gpu["util"] == 3.0
    assert (gpu["mem_total"], gpu["mem_used"]) == (536870912, 514580480)
    assert (gpu["gtt_total"], gpu["gtt_used"]) == (16441004032, 3946811392)
    assert gpu["power_w"] == 9.087
    assert gpu["temp"] == 38.0
    assert gpu["freq_mhz"] == 848.0


def test_rx6900xt_dgpu_id_from_uevent_power_cap_and_mclk() -> None:
    [gpu] = collect(RX6900)  # the snapshot has no device file: the id is uevent's PCI_ID
    assert gpu["name"] == "AMD GPU [0x73bf]"
    assert gpu["util"] == 3.0
    assert (gpu["mem_total"], gpu["mem_used"]) == (17163091968, 668274688)
    assert (gpu["gtt_total"], gpu["gtt_used"]) == (16786171904, 62369792)
    assert gpu["power_w"] == 36.0  # power1_average only (RDNA2 has no power1_input)
    assert gpu["power_limit_w"] == 289.0
    assert gpu["temp"] == 56.0  # edge, not junction (59) or mem (54)
    assert (gpu["freq_mhz"], gpu["clock_mem_mhz"]) == (500.0, 1000.0)
    assert "power_limit_w" not in gpu["missing"]


def test_product_name_when_the_board_has_one(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(RX6900, root)
    (root / "sys/class/drm/card0/device/product_name").write_text("AMD Instinct MI210\n")
    [gpu] = collect(root)
    assert gpu["name"] == "AMD Instinct MI210"


def test_bad_and_missing_files_are_skipped_not_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(PHOENIX, root)
    dev = root / "sys/class/drm/card1/device"
    (dev / "gpu_busy_percent").write_text("garbage\n")
    (dev / "mem_info_gtt_used").unlink()
    (dev / "mem_info_vram_total").write_bytes(b"\x00\xff\n")
    (dev / "hwmon/hwmon6/power1_average").write_text("-5\n")
    (dev / "hwmon/hwmon6/temp1_input").unlink()
    (dev / "hwmon/hwmon6/temp1_input").mkdir()  # a directory where a file was: unreadable
    [gpu] = collect(root)
    assert gpu["util"] is None
    assert gpu["gtt_used"] is None
    assert gpu["mem_total"] is None
    assert gpu["mem_used"] == 1272893440
    assert gpu["gtt_total"] == 31433977856
    assert gpu["power_w"] is None
    assert gpu["temp"] is None
    assert set(gpu["missing"]) >= {"util", "gtt_used", "mem_total", "power_w", "temp"}
    shutil.rmtree(dev / "hwmon")
    [gpu] = collect(root)
    assert gpu["missing"]["temp"] == "no amdgpu hwmon under the device"


def test_other_vendors_and_not_linux(tmp_path: Path) -> None:
    assert AmdGpuCollector(Context(root=str(tmp_path), platform="linux")).start() == (
        "no AMD GPU (no card with vendor 0x1002 on amdgpu in /sys/class/drm)")
    intel = SYSFS / "intel_arc-a770_i915"
    assert AmdGpuCollector(Context(root=str(intel), platform="linux")).start().startswith(
        "no AMD GPU")
    assert "need Linux" in AmdGpuCollector(Context(platform="darwin")).start()


@pytest.mark.parametrize("root", [PHOENIX, STRIX, RX6900], ids=lambda p: p.name)
def test_the_agent_sends_it_in_gpus_and_the_view_reads_it(root: Path) -> None:
    """The whole agent on the captured tree: its hello names the amdgpu collector working,
    its sample passes the frame gate, and the node view gets the same figures as any GPU."""
    machine = Context(root=str(root), platform="linux", modules={"psutil": None,
                                                                  "pynvml": None},
                      commands={"intel_gpu_top": None})
    agent = Agent(machine, interval=1.0, out=io.StringIO())
    try:
        hello = agent.start()
        assert hello["collectors"]["amdgpu"]["ok"] is True
        sample = agent.sample()
        typed = check_frame(sample)  # what the view reads: the gate's Struct
        assert isinstance(typed, SampleFrame)
        [gpu] = _gpus(typed)
        assert gpu.vendor == "amd"
        assert not gpu.unified
        assert gpu.mem_total
        assert gpu.gtt_total
        assert gpu.gtt_total > 0
        assert gpu.temp is not None
        assert gpu.power is not None
        assert gpu.clock_mhz is not None
    finally:
        agent.close()
