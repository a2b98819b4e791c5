"""The model servers saf starts, and the command line of each.

- `vllm`: `vllm serve MODEL --host H --port P --tensor-parallel-size N`, with
  `--distributed-executor-backend ray` to spread over the nodes of a Ray cluster;
- `mlx`: `mlx_lm.server --model MODEL --host H --port P` (Apple Silicon);
- `llama-server`: llama.cpp's own server, `llama-server -m FILE --host H --port P`;
- `llama-cpp-python`: llama.cpp through its Python binding's OpenAI-compatible server,
  `PYTHON -m llama_cpp.server --model FILE --host H --port P --interrupt_requests False`
  (requests queue instead of cutting each other's streams short).

`auto` picks per node from what the node has (`DETECT`, one command): MLX on Apple Silicon
where mlx_lm.server is installed, vLLM where nvidia-smi and vllm are; on a node with an Intel
Arc GPU (its PCI id in agents/arc_ids.py) llama-server (llama.cpp built for SYCL or Vulkan),
else vLLM's XPU build (a vllm whose torch is a `+xpu` build); on an AMD GPU node (PCI vendor
0x1002, a display device) llama-server (llama.cpp built for Vulkan or ROCm/HIP); else
llama-server, else llama-cpp-python in the node's Python.

On an Intel Arc node the server runs with `GPU_ENV["intel"]` in its environment (as `env
K=V ... PROGRAM`, so the command line saf records and compares says it):
`ONEAPI_DEVICE_SELECTOR=level_zero:*` (only the Level Zero GPUs: oneAPI otherwise also offers
the CPU's and the GPU's OpenCL devices, and llama.cpp's SYCL backend would count the same GPU
twice) and `ZES_ENABLE_SYSMAN=1` (Level Zero's Sysman, which llama.cpp's SYCL backend needs to
read the GPU's free memory). A Vulkan build ignores both.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal, get_args

from saf.agents.arc_ids import ARC_IDS
from saf.shell import program_argv, with_env_file

Engine = Literal["vllm", "mlx", "llama-server", "llama-cpp-python"]
ENGINES: tuple[Engine, ...] = get_args(Engine)
CHOICES = ("auto", *ENGINES)

Gpu = Literal["intel", "amd", "none"]
GPUS: tuple[Gpu, ...] = get_args(Gpu)
# The environment a server needs on a node with this GPU (module docstring says why).
GPU_ENV: dict[str, tuple[tuple[str, str], ...]] = {
    "intel": (("ONEAPI_DEVICE_SELECTOR", "level_zero:*"), ("ZES_ENABLE_SYSMAN", "1")),
}

# What a node with this GPU and no engine lacks (said in the refusal).
NO_ENGINE_HINT: dict[str, str] = {
    "intel": ("; for its Intel Arc GPU, llama.cpp's llama-server built for SYCL or Vulkan, or "
              "vLLM's XPU build (docs/models.md, \"Intel Arc and AMD GPUs\")"),
    "amd": ("; for its AMD GPU, llama.cpp's llama-server built for Vulkan or ROCm "
            "(docs/models.md, \"Intel Arc and AMD GPUs\")"),
}

# What each engine is called in a table, and its program on the node.
PROGRAMS = {"vllm": "vllm", "mlx": "mlx_lm.server", "llama-server": "llama-server"}


@dataclass(frozen=True)
class ModelServerSpec:
    """What to serve, on one node: resolved to one engine."""

    engine: str
    model: str
    port: int
    host: str = "127.0.0.1"
    tensor_parallel: int = 1
    ray: bool = False
    bin_dir: str = ""  # a folder holding the engine's program (a venv's bin), or "" for PATH
    python: str = "python3"  # for llama-cpp-python
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # set for the server: `env K=V ... PROGRAM ...`
    # A file on the node (absolute) with secret KEY="value" lines: sh reads it, then runs
    # the server, so the secrets are in its environment and never on its command line.
    env_file: str = ""

    def argv(self) -> list[str]:
        """The server's command line, one argument per item (never through a shell)."""
        port, host = str(self.port), self.host

        def program(name: str) -> str:
            return f"{self.bin_dir.rstrip('/')}/{name}" if self.bin_dir else name

        if self.engine == "vllm":
            argv = [program("vllm"), "serve", self.model, "--host", host, "--port", port,
                    "--tensor-parallel-size", str(self.tensor_parallel)]
            if self.ray:
                argv += ["--distributed-executor-backend", "ray"]
        elif self.engine == "mlx":
            argv = [program("mlx_lm.server"), "--model", self.model, "--host", host,
                    "--port", port]
        elif self.engine == "llama-server":
            argv = [program("llama-server"), "-m", self.model, "--host", host, "--port", port]
        elif self.engine == "llama-cpp-python":
            # The inventory's python may be a command with arguments (`/usr/bin/env
            # ~/pyv/bin/python`): one argv item a word, as the shell faces run it.
            python = [program("python")] if self.bin_dir else program_argv(self.python)
            # Its server otherwise drops a stream when another request comes: with several
            # users (or a check's concurrent requests) each answer would be cut short.
            argv = [*python, "-m", "llama_cpp.server", "--model", self.model, "--host", host,
                    "--port", port, "--interrupt_requests", "False"]
        else:
            raise ValueError(f"unknown engine {self.engine!r}")
        prefix = ["env", *(f"{key}={value}" for key, value in self.env)] if self.env else []
        if self.env_file:  # its secrets, exported by sh just before the server starts
            prefix = with_env_file(self.env_file, prefix)
        return prefix + argv + list(self.args)


def split_args(text: str) -> tuple[str, ...]:
    """Extra server arguments written as one string (`--ctx-size 4096`), split as sh would."""
    return tuple(shlex.split(text))


def _arc_ids() -> str:
    """The Arc GPUs' `vendor:device` as sysfs writes them, as one sh case pattern."""
    return "|".join(f"0x8086:0x{pci_id:04x}" for pci_id in sorted(ARC_IDS))


# One sh command: prints the engine `auto` picks on this node and its GPU's vendor (intel,
# amd or none), e.g. "llama-server intel". $1: a bin folder or "", the rest: the node's
# Python, word by word. Each test is a presence check, nothing is started (the one import,
# torch's, only on an Intel node that has vllm but no llama-server). The PCI devices are read
# under $SAF_FACTS_ROOT, as the recipes' facts are (a recorded machine in the tests).
DETECT = r"""
b=$1; shift
has() { if [ -n "$b" ] && [ -x "$b/$1" ]; then return 0; fi; command -v "$1" >/dev/null 2>&1; }
gpu=none
for d in "${SAF_FACTS_ROOT:-}"/sys/bus/pci/devices/*; do
  v=$(cat "$d/vendor" 2>/dev/null); i=$(cat "$d/device" 2>/dev/null)
  c=$(cat "$d/class" 2>/dev/null)
  case "$v:$i" in ARC_IDS) gpu=intel; break;; esac
  case "$v:$c" in 0x1002:0x03*) gpu=amd;; esac
done
xpu_vllm() {
  if [ -n "$b" ] && [ -x "$b/vllm" ]; then p=$b/python; else
    p=$(command -v vllm 2>/dev/null); p=${p%/*}/python; fi
  [ -x "$p" ] && "$p" -c 'import sys, torch; sys.exit("+xpu" not in torch.__version__)' \
    >/dev/null 2>&1
}
if [ "$(uname -s)" = Darwin ] && [ "$(uname -m)" = arm64 ] && has mlx_lm.server; then
  echo mlx $gpu
elif has nvidia-smi && has vllm; then echo vllm $gpu
elif has llama-server; then echo llama-server $gpu
elif [ $gpu = intel ] && has vllm && xpu_vllm; then echo vllm $gpu
elif "$@" -c 'import llama_cpp.server' >/dev/null 2>&1; then echo llama-cpp-python $gpu
else echo none $gpu
fi
""".replace("ARC_IDS", _arc_ids())
