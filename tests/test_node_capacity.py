"""Each node's memory for a model (saf.cluster.capacity), from its agent's readings: recorded
NVIDIA, Apple, Intel and CPU-only nodes; and the headroom kept back."""

from __future__ import annotations

from pathlib import Path

import pytest

from saf.cluster.capacity import GIB, Headroom, nodes_memory, parse_headroom
from saf.cluster.placement import fit_rows
from saf.errors import SafError
from saf.metrics.store import MetricsStore
from saf.recording import load_recording

FRAMES = Path(__file__).parent / "fixtures" / "frames"


def store_of(*recordings: str) -> tuple[MetricsStore, float]:
    store, end = MetricsStore(), 0.0
    for name in recordings:
        recording = load_recording(FRAMES / name)
        for event in recording.events:
            store.apply(event)
        end = max(end, recording.end)
    return store, end


def test_memory_of_recorded_nvidia_apple_intel_and_cpu_nodes():
    """NVIDIA and Intel: the GPUs' own memory (total - used, summed over a node's GPUs);
    Apple: the system's available RAM, which its GPU shares; no GPU: available RAM."""
    store, end = store_of("node-nvidia-2x-rtx4090.jsonl", "node-apple-mac-studio-m2-ultra.jsonl",
                          "node-intel-arc-a770.jsonl", "node-numa-2s-xeon-e5-2695v3.jsonl")
    got = {m.name: m for m in nodes_memory(store, ["gpu1", "studio", "arc1", "xeon"], end)}
    gpu1 = store.node("gpu1").sample_sent["gpus"]
    assert got["gpu1"].kind == "gpu"
    assert got["gpu1"].free == sum(g["mem_total"] - g["mem_used"] for g in gpu1)
    assert got["gpu1"].total == 2 * 25757220864
    assert got["gpu1"].detail == "2 x NVIDIA GeForce RTX 4090"
    assert got["studio"].kind == "unified"
    assert got["studio"].free == store.node("studio").sample_sent["memory"]["available"]
    assert got["arc1"].kind == "gpu"
    assert got["arc1"].free == 17079205888 - 4194304000
    xeon = store.node("xeon").sample_sent  # the frame as the node sent it
    assert not xeon.get("gpus")
    assert got["xeon"].kind == "ram"
    assert got["xeon"].free == xeon["memory"]["available"]


def test_a_node_without_a_reading_holds_nothing():
    store = MetricsStore()
    store.add_node("ghost")
    (ghost,) = nodes_memory(store, ["ghost"], 0.0)
    assert ghost.kind == "none"
    (row,) = fit_rows([ghost], 1, Headroom())
    assert not row.fits


def test_headroom_is_a_fraction_or_an_amount_whichever_is_more():
    assert Headroom().of(100 * GIB) == 10 * GIB
    assert Headroom().of(4 * GIB) == GIB
    assert parse_headroom("20%") == Headroom(0.2, 0)
    assert parse_headroom("2GiB") == Headroom(0.0, 2 * GIB)
    assert parse_headroom("5%,512MiB") == Headroom(0.05, 512 << 20)
    assert parse_headroom("0") == Headroom(0.0, 0)
    for bad in ("ten", "150%", "3 parsecs", "-1GiB"):
        with pytest.raises(SafError, match="headroom"):
            parse_headroom(bad)
