"""Replicas kept (saf.cluster.placement.replace_lost): a model declared with 2 replicas stays
at 2 when one node is lost if another fits it, moving only the lost replica; the figures are
the recorded agents' (NVIDIA 2 x RTX 4090, Mac Studio M2 Ultra, Intel Arc A770, a CPU-only
Xeon)."""

from __future__ import annotations

from pathlib import Path

from saf.cluster.capacity import GIB, Headroom, NodeMemory, nodes_memory
from saf.cluster.placement import ModelDemand, Move, replace_lost
from saf.metrics.store import MetricsStore
from saf.recording import load_recording

FRAMES = Path(__file__).parent / "fixtures" / "frames"
NONE = Headroom(0.0, 0)


def recorded() -> list[NodeMemory]:
    store, end = MetricsStore(), 0.0
    for name in ("node-nvidia-2x-rtx4090.jsonl", "node-apple-mac-studio-m2-ultra.jsonl",
                 "node-intel-arc-a770.jsonl", "node-numa-2s-xeon-e5-2695v3.jsonl"):
        recording = load_recording(FRAMES / name)
        for event in recording.events:
            store.apply(event)
        end = max(end, recording.end)
    return nodes_memory(store, ["gpu1", "studio", "arc1", "xeon"], end)


def by_name() -> dict[str, NodeMemory]:
    return {m.name: m for m in recorded()}


def test_a_lost_replica_moves_to_the_node_with_most_room_and_the_other_stays():
    nodes = by_name()
    got = replace_lost([ModelDemand("m", 8 * GIB, replicas=2)], {"m": ["gpu1", "arc1"]},
                       {"gpu1"}, list(nodes.values()), Headroom())
    # arc1 keeps its replica; of studio and xeon (gpu1 is lost) the one with most available
    # memory takes the lost one.
    room = {n: m.free - Headroom().of(m.total) for n, m in nodes.items()}
    best = max(("studio", "xeon"), key=lambda n: room[n])
    assert got.placement == {"m": ["arc1", best]}
    assert got.moved == [Move("m", "gpu1", best)]
    assert got.short == {}


def test_nothing_lost_nothing_moves():
    got = replace_lost([ModelDemand("m", 8 * GIB, replicas=2)], {"m": ["gpu1", "arc1"]},
                       set(), recorded(), Headroom())
    assert got.placement == {"m": ["gpu1", "arc1"]}
    assert got.moved == []


def test_a_lost_node_takes_nothing_even_with_the_most_free_memory():
    """The Mac Studio's figures are the largest; lost, it is never chosen."""
    nodes = by_name()
    assert nodes["studio"].free == max(m.free for m in nodes.values())
    got = replace_lost([ModelDemand("m", GIB, replicas=1)], {"m": ["studio"]}, {"studio"},
                       list(nodes.values()), NONE)
    assert got.placement["m"] != ["studio"]
    assert got.moved[0].lost == "studio"


def test_never_two_replicas_on_one_node_and_the_model_keeps_to_its_nodes():
    got = replace_lost([ModelDemand("m", GIB, replicas=2, nodes=("gpu1", "arc1", "xeon"))],
                       {"m": ["gpu1", "arc1"]}, {"arc1"}, recorded(), NONE)
    assert got.placement == {"m": ["gpu1", "xeon"]}  # not studio (not its node), not gpu1 twice


def test_none_fits_the_model_runs_with_fewer_and_the_figures_say_why():
    nodes = by_name()
    needs = max(m.free for n, m in nodes.items() if n != "gpu1") + GIB
    got = replace_lost([ModelDemand("big", needs, replicas=2, share_node=True)],
                       {"big": ["gpu1", "gpu1"]}, {"gpu1"}, list(nodes.values()), NONE)
    assert got.placement == {"big": []}
    assert got.moved == []
    rows = got.short["big"]
    assert [r.node for r in rows] == ["studio", "arc1", "xeon"]
    assert not any(r.fits for r in rows)


def test_replicas_moved_earlier_take_their_share_of_a_node():
    """Two models lose their replica on gpu1; the first one moved takes its share of the
    node it goes to, so the second goes elsewhere when both would not fit there."""
    nodes = [NodeMemory("a", "gpu", 40 * GIB, 48 * GIB), NodeMemory("b", "ram", 30 * GIB,
             32 * GIB), NodeMemory("c", "ram", 20 * GIB, 32 * GIB)]
    got = replace_lost([ModelDemand("one", 25 * GIB), ModelDemand("two", 25 * GIB)],
                       {"one": ["a"], "two": ["a"]}, {"a"}, nodes, NONE)
    assert got.placement == {"one": ["b"], "two": []}
    assert got.moved == [Move("one", "a", "b")]
    assert [r.why for r in got.short["two"]] == ["short by 20.0G", "short by 5.0G"]


def test_a_missing_replica_is_brought_back_too():
    nodes = [NodeMemory("a", "gpu", 40 * GIB, 48 * GIB), NodeMemory("b", "ram", 30 * GIB,
             32 * GIB)]
    got = replace_lost([ModelDemand("m", GIB, replicas=2)], {"m": ["b"]}, set(), nodes, NONE)
    assert got.placement == {"m": ["b", "a"]}
    assert got.moved == [Move("m", None, "a")]
