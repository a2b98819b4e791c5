"""Putting variables and node facts into a step's text.

    {name}          a recipe variable ([vars] default, overridden with --var name=value)
    {node.name}     the node the step runs on; also {node.host}, {node.user}, {node.python}
    {head.host}     the head node's host (also {head.name})
    {cluster.name}  the inventory's cluster name
    {{name}}        a literal "{name}"

`${...}` is left alone for the shell, as is any brace that does not wrap a plain name. In a
shell command every substituted value is quoted (saf.shell.quote; `{node.python}` by
saf.shell.program, so a python given as `~/venv/bin/python` runs from the home folder), so a
value with spaces, quotes or `$(...)` arrives literally; do not add quotes around a placeholder
yourself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from saf.inventory.model import Inventory, Node
from saf.shell import path_arg, program, quote

_NAME = r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?"
_TOKEN = re.compile(r"\{\{(" + _NAME + r")\}\}|(?<!\$)\{(" + _NAME + r")\}")

NODE_FACTS = ("name", "host", "user", "python")
HEAD_FACTS = ("name", "host")
CLUSTER_FACTS = ("name",)


def names_in(template: str) -> list[str]:
    """Every placeholder name used in `template`, in order."""
    return [m.group(2) for m in _TOKEN.finditer(template) if m.group(2)]


def problem(name: str, variables: Iterable[str], inventory: Inventory | None) -> str | None:
    """Why `name` cannot be substituted, or None when it can."""
    scope, dot, fact = name.partition(".")
    if not dot:
        if name in set(variables):
            return None
        known = ", ".join(sorted(variables)) or "none"
        return (f"unknown variable {{{name}}} (declared in [vars]: {known}; "
                "or pass --var NAME=VALUE)")
    allowed = {"node": NODE_FACTS, "head": HEAD_FACTS, "cluster": CLUSTER_FACTS}.get(scope)
    if allowed is None or fact not in allowed:
        return (f"unknown name {{{name}}} (node facts: "
                + ", ".join(f"node.{f}" for f in NODE_FACTS)
                + ", head.name, head.host, cluster.name)")
    if scope == "head" and inventory is not None and inventory.head is None:
        return f"{{{name}}} needs a node with role head in the inventory"
    return None


@dataclass(frozen=True)
class Facts:
    """Everything a template may name, for one node."""

    variables: Mapping[str, str]
    node: Node
    inventory: Inventory

    def value(self, name: str) -> str:
        scope, dot, fact = name.partition(".")
        if not dot:
            return self.variables[name]
        if scope == "node":
            value = getattr(self.node, fact)
        elif scope == "head":
            head = self.inventory.head
            if head is None:
                raise KeyError(name)
            value = getattr(head, fact)
        elif scope == "cluster":
            value = getattr(self.inventory.cluster, fact)
        else:
            raise KeyError(name)
        return "" if value is None else str(value)


def render(template: str, facts: Facts, *, shell: bool) -> str:
    """`template` with every placeholder replaced; quoted when `shell` is true."""
    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return "{" + match.group(1) + "}"
        value = facts.value(match.group(2))
        if not shell:
            return value
        # The node's python is a program (saf.shell.program): `~/` means its home there.
        return program(value) if match.group(2) == "node.python" else quote(value)
    return _TOKEN.sub(one, template)


shell_path = path_arg  # a path for a shell command: saf.shell's one rule for ~/


Renderer = Callable[[str], str]
