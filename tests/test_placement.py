"""Placement by memory (saf.cluster.placement): where each replica of each model goes, and
the refusal, with every node's figures, when one fits nowhere."""

from __future__ import annotations

import pytest

from saf.cluster.capacity import GIB, Headroom, NodeMemory
from saf.cluster.placement import ModelDemand, PlacementRefused, place

NODES = [NodeMemory("a", "gpu", 40 * GIB, 48 * GIB), NodeMemory("b", "unified", 100 * GIB,
         128 * GIB), NodeMemory("c", "ram", 20 * GIB, 32 * GIB),
         NodeMemory("d", "ram", 20 * GIB, 32 * GIB)]
NONE = Headroom(0.0, 0)


def test_most_available_memory_first_and_no_two_replicas_on_one_node():
    got = place([ModelDemand("m", 10 * GIB, replicas=3)], NODES, NONE)
    assert got == {"m": ["b", "a", "c"]}  # c and d tie: the name decides


def test_earlier_models_take_their_share():
    """The first model's 90 GiB on b leaves it 10 GiB: the second goes to a (40 GiB)."""
    got = place([ModelDemand("big", 90 * GIB), ModelDemand("small", 15 * GIB, replicas=2)],
                NODES, NONE)
    assert got == {"big": ["b"], "small": ["a", "c"]}


def test_replicas_may_share_a_node_when_declared():
    nodes = [NodeMemory("x", "gpu", 80 * GIB, 80 * GIB), NodeMemory("y", "gpu", 10 * GIB,
             80 * GIB)]
    assert place([ModelDemand("m", 30 * GIB, replicas=2, share_node=True)], nodes, NONE) == {
        "m": ["x", "x"]}
    with pytest.raises(PlacementRefused):
        place([ModelDemand("m", 30 * GIB, replicas=2)], nodes, NONE)


def test_a_model_keeps_to_its_nodes():
    got = place([ModelDemand("m", GIB, nodes=("c", "d"))], NODES, NONE)
    assert got == {"m": ["c"]}


def test_the_headroom_is_kept():
    """a: 40 GiB free of 48, 10 % = 4.8 GiB kept: 36 GiB fits, 36 GiB + 1 does not."""
    nodes = NODES[:1]
    assert place([ModelDemand("m", 35 * GIB)], nodes, Headroom()) == {"m": ["a"]}
    with pytest.raises(PlacementRefused):
        place([ModelDemand("m", 36 * GIB)], nodes, Headroom())


def test_refused_with_every_nodes_figures():
    with pytest.raises(PlacementRefused) as caught:
        place([ModelDemand("first", 80 * GIB), ModelDemand("huge", 45 * GIB, replicas=2)],
              NODES, Headroom())
    refused = caught.value
    assert refused.model == "huge"
    assert [r.node for r in refused.rows] == ["a", "b", "c", "d"]
    assert not any(r.fits for r in refused.rows)
    by = {r.node: r for r in refused.rows}
    assert by["b"].placed == 80 * GIB          # what "first" took is counted
    assert by["a"].headroom == int(0.1 * 48 * GIB)
    text = str(refused)
    assert "model huge: replica 1 of 2 fits on no node (45.0G needed" in text
    assert "nothing was started" in text
    lines = text.splitlines()
    assert lines[1].split() == ["node", "memory", "free", "headroom", "placed", "available",
                                "needed", "fits"]
    for name in "abcd":
        assert any(line.startswith(name + " ") for line in lines[2:])
    assert "short by" in text
