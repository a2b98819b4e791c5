"""How much memory each node has free for a model, from what its agent reports, less a stated
headroom.

A node's memory for a model is, by what the agent sees:
- `gpu`: the GPUs with memory of their own (NVIDIA, Intel Arc, AMD): the sum over them of
  total - used (llama.cpp splits a model's layers across a node's GPUs, vLLM its tensors);
- `unified`: an Apple GPU, which shares the system's memory: the RAM the system says is
  available (macOS's own limit on what Metal may wire, about 3/4 of RAM, is not applied);
- `ram`: no GPU: the RAM available, for llama.cpp on the CPU;
- `none`: no reading (the agent did not answer): nothing fits there.

The headroom is what is kept back on every node: a fraction of the node's total, or a fixed
amount, whichever is more (default 10 % or 1 GiB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from saf.errors import SafError
from saf.metrics.store import MetricsStore
from saf.metrics.view import node_view, num

GIB = 1 << 30
MemoryKind = Literal["gpu", "unified", "ram", "none"]
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
          "g": GIB, "gib": GIB, "t": 1 << 40, "tib": 1 << 40,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


@dataclass(frozen=True)
class NodeMemory:
    """One node's memory for a model, in bytes: what is free now and the whole of it."""

    name: str
    kind: MemoryKind
    free: int
    total: int
    detail: str = ""  # what it is ("2 x NVIDIA GeForce RTX 4090"), or why there is no reading


@dataclass(frozen=True)
class Headroom:
    """Kept back on each node: `fraction` of its total or `floor` bytes, whichever is more."""

    fraction: float = 0.10
    floor: int = GIB

    def of(self, total: int) -> int:
        return max(self.floor, int(self.fraction * total))

    def __str__(self) -> str:
        parts = ([f"{self.fraction * 100:g} %"] if self.fraction else []) + (
            [f"{self.floor / GIB:g} GiB"] if self.floor else [])
        return " or ".join(parts) + (", whichever is more" if len(parts) == 2 else "") \
            if parts else "none"


def parse_headroom(text: str) -> Headroom:
    """`10%` (of each node's total), `2GiB` / `512MiB` / `3GB` (a fixed amount), or both as
    `10%,1GiB` (whichever is more)."""
    fraction, floor = 0.0, 0
    for part in (p.strip() for p in text.split(",")):
        if part.endswith("%"):
            try:
                fraction = float(part[:-1])
            except ValueError:
                fraction = -1.0
            if not 0 <= fraction < 100:
                raise SafError(f"headroom {text!r}: {part!r} is not a percentage below 100")
            fraction /= 100
            continue
        found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)", part)
        if not found or found[2].lower() not in _UNITS:
            raise SafError(f"headroom {text!r}: {part!r} is neither a percentage (10%) nor an "
                           "amount (2GiB, 512MiB)")
        floor = int(float(found[1]) * _UNITS[found[2].lower()])
    return Headroom(fraction, floor)


def node_memory(store: MetricsStore, name: str, now: float) -> NodeMemory:
    """A node's memory from its agent's last sample in `store`."""
    view = node_view(store, name, now)
    if not view.has_sample:
        return NodeMemory(name, "none", 0, 0, view.message or view.reason or "no reading")
    own = [g for g in view.gpus if not g.unified and g.mem_total]
    if own:
        gpu_total = sum(int(g.mem_total or 0) for g in own)
        used = sum(int(g.mem_used or 0) for g in own)
        names = sorted({g.name for g in own})
        detail = f"{len(own)} x {names[0]}" if len(names) == 1 else ", ".join(names)
        return NodeMemory(name, "gpu", max(0, gpu_total - used), gpu_total, detail)
    memory = view.sample.memory
    available, total = (num(memory.available), num(memory.total)) if memory else (None, None)
    if available is None or total is None:
        return NodeMemory(name, "none", 0, 0, "the agent reports no memory figures")
    unified = [g for g in view.gpus if g.unified]
    if unified:
        return NodeMemory(name, "unified", int(available), int(total), unified[0].name)
    return NodeMemory(name, "ram", int(available), int(total), "system RAM")


def nodes_memory(store: MetricsStore, names: list[str], now: float) -> list[NodeMemory]:
    return [node_memory(store, name, now) for name in names]
