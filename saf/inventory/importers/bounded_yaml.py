"""A YAML SafeLoader that refuses documents whose aliases expand past a bound.

PyYAML builds an alias as a second reference to the same object, so loading a "billion
laughs" file is cheap; whatever then walks the value (a check, a message with `{value!r}`)
walks every expansion and runs out of memory (issue 22: `saf import ray` died after 25 s in a
MemoryError). The loader counts the values the document would have written out in full
before it constructs anything, each shared node counted once per place it appears (memoized,
so counting is linear in the document), and refuses past `MAX_VALUES`.
"""

from __future__ import annotations

import yaml

MAX_VALUES = 100_000  # a Ray cluster file has tens; a generated one with many workers, thousands


class AliasBomb(yaml.MarkedYAMLError):
    """The document's aliases expand past MAX_VALUES values."""


class BoundedSafeLoader(yaml.SafeLoader):
    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            sizes: dict[int, int] = {}
            if _expanded(node, sizes) > MAX_VALUES:
                raise AliasBomb(problem=f"its aliases expand to more than {MAX_VALUES:,} "
                                "values (an alias bomb?)", problem_mark=node.start_mark)
        return node


def _expanded(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values `node` stands for, written out in full (aliases expanded)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_VALUES + 1  # a node inside itself (a recursive alias) is unbounded
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded(item, sizes)
            if total > MAX_VALUES:
                break
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded(key, sizes) + _expanded(value, sizes)
            if total > MAX_VALUES:
                break
    sizes[id(node)] = total
    return total
