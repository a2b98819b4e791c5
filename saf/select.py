"""The one node-selector grammar used everywhere (`--on`, a recipe step's `on`).

    all                every node
    head               the node with role head
    workers | worker   nodes with role worker (also: control, role:NAME)
    tag:WORD           nodes tagged WORD
    os:linux|macos     nodes running that OS (from the inventory, or probed)
    NAME               one node by name
    A,B,C              the union, in inventory order

A term that matches nothing is an error listing what exists.
"""

from __future__ import annotations

from collections.abc import Mapping

from saf.errors import SelectorError
from saf.format import fmt_some
from saf.inventory.model import OSES, ROLES, SELECTOR_WORDS, Inventory, Node

_ROLE_WORDS = {"head": "head", "workers": "worker", "worker": "worker", "control": "control"}
SHOWN = 10  # names listed in an error before the rest are only counted
OS_ALIASES = {"mac": "macos", "macos": "macos", "darwin": "macos", "osx": "macos",
              "linux": "linux"}


def terms(selector: str) -> list[str]:
    parts = [p.strip() for p in selector.split(",")]
    if not selector.strip() or any(not p for p in parts):
        raise SelectorError(f"empty term in node selector {selector!r}")
    return parts


def needs_os(selector: str) -> bool:
    return any(t.startswith("os:") for t in terms(selector))


def describe(inventory: Inventory) -> str:
    """What a selector can name, for error messages."""
    tags = sorted({t for n in inventory.nodes for t in n.tags})
    roles = sorted({r for n in inventory.nodes for r in n.roles})
    text = f"nodes: {fmt_some(list(inventory.names), SHOWN)}"
    if roles:
        text += f"; roles: {', '.join(roles)}"
    if tags:
        text += f"; tags: {fmt_some(['tag:' + t for t in tags], SHOWN)}"
    return text


assert SELECTOR_WORDS == {"all", *_ROLE_WORDS}  # the inventory refuses these as node names


def _match(term: str, node: Node, os_of: Mapping[str, str | None]) -> bool:
    if term == "all":
        return True
    if term in _ROLE_WORDS:
        return _ROLE_WORDS[term] in node.roles
    kind, sep, value = term.partition(":")
    if not sep:
        return node.name == term
    if kind == "role":
        return value in node.roles
    if kind == "tag":
        return value in node.tags
    if kind == "os":
        return (node.os or os_of.get(node.name)) == OS_ALIASES[value]
    raise AssertionError(term)


def _validate(term: str, inventory: Inventory) -> None:
    kind, sep, value = term.partition(":")
    if sep:
        if kind not in ("tag", "os", "role") or not value:
            raise SelectorError(f"unknown selector term {term!r}: use all, head, workers, "
                                f"NAME, role:NAME, tag:WORD or os:linux|macos "
                                f"({describe(inventory)})")
        if kind == "os" and value not in OS_ALIASES:
            raise SelectorError(f"unknown OS in {term!r}: use {', '.join(OSES)}")
        if kind == "role" and value not in ROLES:
            raise SelectorError(f"unknown role in {term!r}: roles are {', '.join(ROLES)}")


def select(inventory: Inventory, selector: str | None,
           os_of: Mapping[str, str | None] | None = None, *,
           allow_empty: bool = False) -> list[Node]:
    """The nodes `selector` names, in inventory order. `os_of` gives probed OSes by node name
    for `os:` terms when the inventory does not declare them. A term that matches no node is
    an error (a person named it), unless `allow_empty`: a recipe's own `on = "os:macos"` on a
    cluster without Macs selects nothing, and the step has nothing to do."""
    selector = "all" if selector is None else selector
    os_of = os_of or {}
    chosen: set[str] = set()
    for term in terms(selector):
        _validate(term, inventory)
        matched = [n.name for n in inventory.nodes if _match(term, n, os_of)]
        if not matched and not allow_empty:
            raise SelectorError(f"{term!r} matches no node ({describe(inventory)})")
        chosen.update(matched)
    return [n for n in inventory.nodes if n.name in chosen]
