"""The selector grammar shared by --on and recipe steps."""

from __future__ import annotations

import pytest

from saf.errors import SelectorError
from saf.inventory import parse_inventory
from saf.select import select

INV = parse_inventory({"nodes": [
    {"name": "alpha", "host": "a", "roles": ["head"], "tags": ["mac"], "os": "macos"},
    {"name": "beta", "host": "b", "roles": ["worker"], "tags": ["mac"]},
    {"name": "gamma", "host": "c", "roles": ["worker"], "tags": ["nvidia"]},
    {"name": "ctl", "host": "d", "roles": ["control"]},
]})


@pytest.mark.parametrize(("selector", "names"), [
    ("all", ["alpha", "beta", "gamma", "ctl"]),
    (None, ["alpha", "beta", "gamma", "ctl"]),
    ("head", ["alpha"]),
    ("workers", ["beta", "gamma"]),
    ("worker", ["beta", "gamma"]),
    ("control", ["ctl"]),
    ("role:control", ["ctl"]),
    ("tag:nvidia", ["gamma"]),
    ("tag:mac", ["alpha", "beta"]),
    ("gamma,alpha", ["alpha", "gamma"]),
    ("head, tag:nvidia", ["alpha", "gamma"]),
    ("tag:mac,beta", ["alpha", "beta"]),
])
def test_terms(selector, names):
    assert [n.name for n in select(INV, selector)] == names


def test_os_from_inventory_and_probe():
    assert [n.name for n in select(INV, "os:macos")] == ["alpha"]
    probed = {"beta": "macos", "gamma": "linux", "ctl": "linux"}
    assert [n.name for n in select(INV, "os:mac", probed)] == ["alpha", "beta"]
    assert [n.name for n in select(INV, "os:linux", probed)] == ["gamma", "ctl"]


@pytest.mark.parametrize(("selector", "words"), [
    ("delta", "'delta' matches no node (nodes: alpha, beta, gamma, ctl; roles: control, head, "
              "worker; tags: tag:mac, tag:nvidia)"),
    ("tag:amd", "'tag:amd' matches no node"),
    ("os:linux", "'os:linux' matches no node"),
    ("os:windows", "unknown OS"),
    ("colour:red", "unknown selector term 'colour:red'"),
    ("role:boss", "unknown role"),
    ("alpha,,beta", "empty term"),
    ("", "empty term"),
])
def test_errors_list_what_exists(selector, words):
    with pytest.raises(SelectorError) as info:
        select(INV, selector)
    assert words in str(info.value)


def test_a_miss_on_a_huge_inventory_lists_a_few_names_and_counts_the_rest():
    """A bad --on against 5,000 nodes is one short line, not every name there is."""
    big = parse_inventory({"nodes": [{"name": f"n{i:04d}", "host": "h", "tags": [f"t{i}"]}
                                     for i in range(5000)]})
    with pytest.raises(SelectorError) as info:
        select(big, "nosuch")
    message = str(info.value)
    assert "n0000, n0001" in message
    assert "n0009 and 4990 more" in message
    assert "tag:t0, tag:t1" in message
    assert "and 4990 more" in message.split("tags:")[1]
    assert len(message) < 400, len(message)
