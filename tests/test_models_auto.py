"""`models`' `auto` engine, per node by its GPU's vendor, and Ray's `{Intel: N}`, on recorded
machines (tests/fixtures/machines: the Ubuntu box with an Arc A770, the RTX 3090 box), each a
real SSH server on loopback whose PCI devices are the recorded ones ($SAF_FACTS_ROOT).

`--check` shows the exact command each node would run. The engines' programs are files in a
folder passed as `bin` (auto only checks that they are there; nothing is started). vLLM's XPU
build cannot be installed here (its torch is Intel's `+xpu` wheel): a `python` beside `vllm`
whose `torch` says that version stands in for it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from saf.agents.arc_ids import ARC_IDS

from saf.events import Event
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.inventory.model import Cluster, Defaults, Inventory, Node
from saf.ray import command as rc
from saf.ray.answers import decode, marked_line
from saf.ray.facts import NodeFacts, probe_command
from saf.recipe import load_recipe
from saf.recipe.events import NodeStepFinished, StepOutput
from saf.recipe.prepare import prepare
from saf.recipe.runner import Runner
from tests.helpers.recorded import MACHINES, RecordedNodes

RECIPES = Path(__file__).parent.parent / "recipes"
ARC = "ubuntu2404-arc-a770-after"
NVIDIA = "ubuntu2404-rtx3090-after"
INTEL_ENV = "env 'ONEAPI_DEVICE_SELECTOR=level_zero:*' ZES_ENABLE_SYSMAN=1"


def check_models(nodes: RecordedNodes, **variables: str) -> NodeStepFinished:
    async def go() -> list[Event]:
        events: list[Event] = []
        async with Fleet(load_inventory(nodes.inventory)) as fleet:
            prepared = await prepare(load_recipe(RECIPES / "models.toml"), fleet,
                                     variables, None)
            await Runner(prepared, fleet, events.append, run_id="t", check=True).run()
        return events
    events = asyncio.run(go())
    return next(e for e in events if isinstance(e, NodeStepFinished) and e.node == "n")


@pytest.fixture
def machine(tmp_path: Path):
    started: list[RecordedNodes] = []

    def start(name: str) -> RecordedNodes:
        nodes = RecordedNodes(tmp_path / f"m{len(started)}", {"n": name})
        started.append(nodes)
        return nodes
    yield start
    for nodes in started:
        nodes.close()


def programs(folder: Path, *names: str) -> Path:
    """A bin folder holding the named engines' programs (never run: auto checks presence)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = folder / name
        path.write_text("#!/bin/sh\necho 'not to be run by a --check' >&2\nexit 99\n")
        path.chmod(0o755)
    return folder


def xpu_python(folder: Path, version: str) -> None:
    """`python` in the bin folder: this Python, importing a `torch` that says `version`."""
    stub = folder.parent / f"torch-{version}"
    (stub / "torch").mkdir(parents=True)
    (stub / "torch" / "__init__.py").write_text(f"__version__ = {version!r}\n")
    python = folder / "python"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={stub} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)


def test_arc_node_gets_llama_server_with_the_level_zero_environment(machine, tmp_path) -> None:
    nodes = machine(ARC)
    bins = programs(tmp_path / "bin", "llama-server", "vllm")
    step = check_models(nodes, model="/models/qwen2.5-0.5b-q8_0.gguf", bin=str(bins))
    assert step.status == "changed"
    assert step.would == [f"{INTEL_ENV} {bins}/llama-server -m /models/qwen2.5-0.5b-q8_0.gguf "
                          "--host 127.0.0.1 --port 8000"]


def test_arc_node_without_llama_server_takes_vllms_xpu_build(machine, tmp_path) -> None:
    nodes = machine(ARC)
    bins = programs(tmp_path / "bin", "vllm")
    xpu_python(bins, "2.5.1+xpu")
    step = check_models(nodes, model="Qwen/Qwen2.5-0.5B-Instruct", bin=str(bins))
    assert step.would == [f"{INTEL_ENV} {bins}/vllm serve Qwen/Qwen2.5-0.5B-Instruct "
                          "--host 127.0.0.1 --port 8000 --tensor-parallel-size 1"]


def test_arc_node_passes_over_a_vllm_that_is_not_the_xpu_build(machine, tmp_path) -> None:
    """A CUDA vLLM on an Arc box cannot use the GPU: the next engine (here llama.cpp's Python
    binding, which the Python has) is taken, still with the Intel environment."""
    nodes = machine(ARC)
    bins = programs(tmp_path / "bin", "vllm")
    xpu_python(bins, "2.5.1+cu121")
    step = check_models(nodes, model="/models/m.gguf", bin=str(bins))
    assert step.would == [f"{INTEL_ENV} {bins}/python -m llama_cpp.server --model "
                          "/models/m.gguf --host 127.0.0.1 --port 8000 --interrupt_requests "
                          "False"]


def test_nvidia_node_keeps_its_engines_and_no_intel_environment(machine, tmp_path) -> None:
    nodes = machine(NVIDIA)
    bins = programs(tmp_path / "bin", "llama-server")
    step = check_models(nodes, model="/models/m.gguf", bin=str(bins))
    assert step.would == [f"{bins}/llama-server -m /models/m.gguf --host 127.0.0.1 --port 8000"]


# -- Ray: {Intel: N} -------------------------------------------------------------------------
def probe_facts(root: Path) -> NodeFacts:
    """The real Ray node probe, run here with the recorded machine's files as its root."""
    command = probe_command(sys.executable, "facts", {
        "temp_dir": "/tmp/ray-none", "node_name": "n", "ports": [], "probe": [],
        "arc_ids": sorted(ARC_IDS)})
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "SAF_FACTS_ROOT": str(root)}, check=True)
    line = marked_line(out.stdout)
    assert line is not None, out.stderr
    return decode(line, NodeFacts, "n")


def test_ray_start_on_the_arc_box_declares_its_intel_gpu() -> None:
    facts = probe_facts(MACHINES / ARC / "root")
    assert facts.intel_arc == 1
    inventory = Inventory(Cluster("t"), Defaults(), (Node("arc", "10.10.0.31",
                                                          roles=("head",)),))
    facts = NodeFacts(**{**{f: getattr(facts, f) for f in facts.__struct_fields__},
                         "ssh_server_ip": "10.10.0.31"})
    plan, problem = rc.start_plan(inventory, inventory.nodes[0], facts, rc.RaySettings(),
                                  "10.10.0.31")
    assert problem is None
    assert plan is not None
    assert plan.argv[-1] == '--resources={"Intel":1.0}'


def test_no_intel_resource_without_an_arc_gpu() -> None:
    assert probe_facts(MACHINES / NVIDIA / "root").intel_arc == 0


# -- AMD: llama-server through Vulkan or ROCm -------------------------------------------------
STRIX_BEFORE = "ubuntu2404-strix-point-apu-before"
STRIX_AFTER = "ubuntu2404-strix-point-apu-after"


def test_amd_node_gets_llama_server_and_no_intel_environment(machine) -> None:
    """The Strix Point box (PCI 1002:150e, class 0x038000: a Display controller, not VGA) with
    a Vulkan llama-server on its PATH."""
    nodes = machine(STRIX_AFTER)
    step = check_models(nodes, model="/models/m.gguf")
    assert step.would == ["llama-server -m /models/m.gguf --host 127.0.0.1 --port 8000"]


def run_recipe(nodes: RecordedNodes, recipe: str,
               **variables: str) -> tuple[list[NodeStepFinished], list[str]]:
    """A --check run: each step's end, and the lines its last step printed."""
    async def go() -> list[Event]:
        events: list[Event] = []
        async with Fleet(load_inventory(nodes.inventory)) as fleet:
            prepared = await prepare(load_recipe(RECIPES / f"{recipe}.toml"), fleet,
                                     variables, None)
            await Runner(prepared, fleet, events.append, run_id="t", check=True).run()
        return events
    events = asyncio.run(go())
    ends = [e for e in events if isinstance(e, NodeStepFinished)]
    said = [e.line for e in events if isinstance(e, StepOutput) and e.step == ends[-1].step]
    return ends, said


def test_llama_server_gpu_check_before(machine) -> None:
    """No Vulkan drivers, no llama-server: --check would install Mesa's Vulkan drivers and
    says how to build llama-server, downloading nothing."""
    nodes = machine(STRIX_BEFORE)
    (drivers, group, server), said = run_recipe(nodes, "llama-server-gpu", user="ada")
    assert drivers.would == ["DEBIAN_FRONTEND=noninteractive apt-get install -y -- "
                             "mesa-vulkan-drivers vulkan-tools"]
    assert group.status == "changed"
    assert "usermod -aG render" in group.would[0]
    assert server.status == "failed"
    assert said[0].startswith("no llama-server here; build llama.cpp with Vulkan: ")
    assert "cmake -S llama.cpp -B llama.cpp/build -DGGML_VULKAN=ON" in said[0]
    assert not [c for c in nodes.calls() if c.startswith(("apt-get", "usermod", "curl",
                                                          "wget"))]


def test_llama_server_gpu_check_after(machine) -> None:
    nodes = machine(STRIX_AFTER)
    (drivers, _, server), said = run_recipe(nodes, "llama-server-gpu", user="ada")
    assert drivers.status == "skipped"
    assert server.status == "ok"
    assert "llama-server --list-devices" in nodes.calls()
    assert said == ["Available devices:", "  Vulkan0: AMD Radeon 890M Graphics (RADV GFX1150) "
                    "(16063 MiB, 12297 MiB free)"]
