"""The model servers saf starts, and the command line of each.

- `vllm`: `vllm serve MODEL --host H --port P --tensor-parallel-size N`, with
  `--distributed-executor-backend ray` to spread over the nodes of a Ray cluster;
- `mlx`: `mlx_lm.server --model MODEL --host H --port P` (Apple Silicon);
- `llama-server`: llama.cpp's own server, `llama-server -m FILE --host H --port P`;
- `llama-cpp-python`: llama.cpp through its Python binding's OpenAI-compatible server,
  `PYTHON -m llama_cpp.server --model FILE --host H --port P --interrupt_requests False`
  (requests queue instead of cutting each other's streams short).

`auto` picks per node from what the node has (`DETECT`, one command): MLX on Apple Silicon
where mlx_lm.server is installed, vLLM where nvidia-smi and vllm are, else llama-server, else
llama-cpp-python in the node's Python.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal, get_args

from saf.shell import program_argv

Engine = Literal["vllm", "mlx", "llama-server", "llama-cpp-python"]
ENGINES: tuple[Engine, ...] = get_args(Engine)
CHOICES = ("auto", *ENGINES)

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
        return argv + list(self.args)


def split_args(text: str) -> tuple[str, ...]:
    """Extra server arguments written as one string (`--ctx-size 4096`), split as sh would."""
    return tuple(shlex.split(text))


# One sh command: prints the engine `auto` picks on this node. $1: a bin folder or "", the
# rest: the node's Python, word by word. Each test is a presence check, nothing is started.
DETECT = r"""
b=$1; shift
has() { if [ -n "$b" ] && [ -x "$b/$1" ]; then return 0; fi; command -v "$1" >/dev/null 2>&1; }
if [ "$(uname -s)" = Darwin ] && [ "$(uname -m)" = arm64 ] && has mlx_lm.server; then
  echo mlx
elif has nvidia-smi && has vllm; then echo vllm
elif has llama-server; then echo llama-server
elif "$@" -c 'import llama_cpp.server' >/dev/null 2>&1; then echo llama-cpp-python
else echo none
fi
"""
