"""The parsers of the vendors' tools, against real captures (tests/fixtures/machines/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saf.recipe.facts import apple, intel, nvidia
from saf.recipe.facts.dpkg import installed
from saf.recipe.facts.reboot import reasons
from saf.recipe.kinds.gpu import agent_nvml

FIXTURES = Path(__file__).parent / "fixtures"
CAPTURES = FIXTURES / "machines" / "captures"


def test_nvidia_smi_list_h100_mig() -> None:
    gpus = nvidia.parse_list((CAPTURES / "nvidia-smi-L_8xH100-MIG.txt").read_text())
    assert [g.index for g in gpus] == list(range(8))  # MIG devices are not GPUs of their own
    assert gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert gpus[0].uuid == "GPU-63d1e50a-b952-d15c-0740-12bc14859142"


def test_nvidia_smi_list_h200() -> None:
    text = (FIXTURES / "nvml" / "h200-under-load" / "nvidia-smi-L.txt").read_text()
    assert [(g.index, g.name) for g in nvidia.parse_list(text)] == [(0, "NVIDIA H200")]


def test_nvidia_smi_failing_lists_nothing() -> None:
    assert nvidia.parse_list("NVIDIA-SMI has failed because it couldn't communicate with the "
                             "NVIDIA driver.\n") == []


def test_ubuntu_drivers_recommendation() -> None:
    text = json.loads((FIXTURES / "machines" / "ubuntu2404-rtx3090-before" / "commands.json")
                      .read_text())["ubuntu-drivers"]["devices"]["stdout"]
    assert nvidia.recommended_driver(text) == "nvidia-driver-570"
    assert nvidia.recommended_driver("driver   : nvidia-driver-595-open - distro non-free "
                                     "recommended\n") == "nvidia-driver-595-open"
    assert nvidia.recommended_driver("") is None


@pytest.mark.parametrize(("choice", "package"), [
    ("recommended", None), ("570", "nvidia-driver-570"), ("550-open", "nvidia-driver-550-open"),
    ("nvidia-driver-570-server", "nvidia-driver-570-server")])
def test_driver_choice(choice: str, package: str | None) -> None:
    assert nvidia.driver_package(choice) == package


@pytest.mark.parametrize("bad", ["latest", "nvidia-driver-570; reboot", "57", ""])
def test_driver_choice_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="driver must be"):
        nvidia.driver_package(bad)


def test_clinfo_a770_named_by_its_pci_id() -> None:
    devices = intel.parse_list((CAPTURES / "clinfo-l_arc-a770-wsl2_shows-0x56a0.txt").read_text())
    assert len(devices) == 1
    assert devices[0].platform == "Intel(R) OpenCL Graphics"
    assert devices[0].pci_id == 0x56A0
    assert devices[0].arc == "Arc A770"


def test_clinfo_marketing_name_and_non_arc() -> None:
    devices = intel.parse_list("Platform #0: Intel(R) OpenCL Graphics\n"
                               " `-- Device #0: Intel(R) Arc(TM) B580 Graphics\n"
                               "Platform #1: Portable Computing Language\n"
                               " `-- Device #0: cpu-haswell-Intel(R) Xeon(R) CPU\n")
    assert [d.arc for d in devices] == ["Arc B580", None]


def test_system_profiler_mac_studio() -> None:
    text = json.loads((FIXTURES / "machines" / "macstudio-m2ultra" / "commands.json").read_text()
                      )["system_profiler"]["-json SPDisplaysDataType SPHardwareDataType"]["stdout"]
    chip = apple.parse_profile(text)
    assert chip.line() == "Apple M2 Ultra (Mac Studio Mac14,14), 60 GPU cores, 64 GB unified memory"


def test_system_profiler_real_captures() -> None:
    displays = json.loads((CAPTURES / "system_profiler-json-SPDisplaysDataType_M1Pro-MBP_builtin"
                           "+2xDell.json").read_text())
    hardware = json.loads((CAPTURES / "system_profiler-json-SPHardwareDataType_M5Max-MBP-"
                           "Mac17-6.json").read_text())
    chip = apple.parse_profile(json.dumps({**displays, **hardware}))
    assert chip.gpu_cores == 14
    assert chip.chip.startswith("Apple M5 Max")
    assert chip.memory == "128 GB"


def test_system_profiler_not_apple_silicon() -> None:
    with pytest.raises(ValueError, match="no Apple Silicon chip"):
        apple.parse_profile('{"SPHardwareDataType": [{"cpu_type": "Quad-Core Intel Core i7"}]}')
    with pytest.raises(ValueError, match="did not print JSON"):
        apple.parse_profile("system_profiler: unknown data type")


def test_dpkg_installed() -> None:
    assert installed("clinfo\tii \nlibze1\tun \nintel-gsc\trc \n") == {"clinfo"}


def test_reboot_reasons() -> None:
    out = ("flag linux-image-6.8.0-49-generic nvidia-dkms-570 \nsb SecureBoot enabled\n"
           "mok-new 2\ncmdline BOOT_IMAGE=/vmlinuz ro quiet\nmodule fails modprobe: ERROR: "
           "could not insert 'nvidia': Key was rejected by service\n")
    found = reasons(out, module="nvidia", cmdline=["isolcpus=2-7", "nohz_full="])
    assert [r.check for r in found] == ["flag", "secure-boot", "module", "cmdline"]
    assert "isolcpus=2-7" in found[3].what
    assert "nohz_full" not in found[3].what
    assert reasons("sb SecureBoot disabled\nmok-new 1\nmodule loaded\ncmdline ro\n",
                   module="nvidia", cmdline=[]) == []


def test_agent_nvml_from_a_real_hello() -> None:
    lines = (FIXTURES / "nvml" / "h200-under-load" / "agent-frames.jsonl").read_text()
    assert agent_nvml(lines) == (True, "NVML answers the agent")
    hello = {"type": "hello", "collectors": {"nvml": {"ok": False, "reason": "no NVIDIA driver "
                                                      "loaded (no /proc/driver/nvidia)"}}}
    ok, words = agent_nvml(json.dumps(hello))
    assert not ok
    assert words.endswith("no NVIDIA driver loaded (no /proc/driver/nvidia)")
    assert agent_nvml("Traceback ...\nSyntaxError")[0] is False
    # A hello of the wrong shape is named as such, with the field (it was "did not start").
    bad = {"type": "hello", "collectors": {"nvml": {"ok": "yes"}}}
    assert agent_nvml(json.dumps(bad)) == (
        False, "the agent's hello is malformed: hello.collectors[...].ok: expected true or "
        "false")


# -- what a node prints is untrusted: any text is read or refused, never a crash ---------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(["SPHardwareDataType",
                                                        "SPDisplaysDataType", "chip_type",
                                                        "sppci_cores", "physical_memory"]),
                                       inner, max_size=3), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_text_parsers_never_crash(text: str) -> None:
    nvidia.parse_list(text)
    nvidia.recommended_driver(text)
    for device in intel.parse_list(text):
        _ = device.arc
    installed(text)
    reasons(text, module="nvidia", cmdline=["isolcpus=2-7"])
    agent_nvml(text)
    try:
        apple.parse_profile(text)
    except ValueError:
        pass


@settings(max_examples=300, deadline=None)
@given(_json)
def test_system_profiler_any_json(value) -> None:
    try:
        apple.parse_profile(json.dumps(value))
    except ValueError:
        pass


def test_a_node_cannot_recommend_any_package() -> None:
    assert nvidia.recommended_driver("driver   : bash - distro non-free recommended\n") is None


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "collectors", "nvml", "ok", "reason"]),
                       _json | st.just("hello"), max_size=4))
def test_agent_hello_any_shape(value) -> None:
    ok, words = agent_nvml(json.dumps(value))
    assert isinstance(ok, bool)
    assert isinstance(words, str)
