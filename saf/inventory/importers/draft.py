"""A draft inventory read from another tool's file, turned into saf.toml data.

Importers fill a `Draft` with one `DraftNode` per host, each remembering the line of the source
file it came from. `Draft.to_toml()` writes the saf.toml text, and `Draft.validate()` checks it
with the same rules as a hand-written inventory; a problem is reported against the *source*
file and line, because that is the file the user knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from saf.errors import ConfigError, InventoryError
from saf.inventory.load import NAME_RE, parse_inventory
from saf.inventory.model import Inventory
from saf.tomlpos import TomlPositions

# Settings that move to [defaults] when every node has the same value.
_SHARED = ("user", "port", "python", "identity", "jump")


@dataclass
class DraftNode:
    name: str
    host: str
    line: int | None = None
    user: str | None = None
    port: int | None = None
    python: str | None = None
    identity: str | None = None
    connection: str | None = None
    jump: str | None = None  # the inventory's `jump` (saf.inventory.jumps)
    roles: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)

    def table(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "host": self.host}
        for key in ("user", "port", "python", "identity", "connection", "jump"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.roles:
            out["roles"] = list(self.roles)
        if self.tags:
            out["tags"] = list(self.tags)
        if self.vars:
            out["vars"] = dict(self.vars)
        return out


@dataclass
class Draft:
    source: Path
    cluster_name: str | None = None
    nodes: list[DraftNode] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, message: str, line: int | None = None) -> ConfigError:
        return ConfigError(self.source, message, line=line)

    def check_names(self) -> None:
        """Every node name must be a valid, unique saf node name."""
        seen: dict[str, DraftNode] = {}
        for node in self.nodes:
            if not NAME_RE.match(node.name):
                raise self.error(f"{node.name!r} cannot be a saf node name (use letters, digits, "
                                 "'.', '_' and '-', starting with a letter or digit)", node.line)
            if node.name in seen:
                first = seen[node.name].line
                where = f" (first on line {first})" if first else ""
                raise self.error(f"host {node.name!r} is listed twice{where}", node.line)
            seen[node.name] = node

    def data(self) -> dict[str, Any]:
        """The saf.toml document as plain data. A setting every node shares goes to
        [defaults], so the file reads the way a person would write it."""
        tables = [n.table() for n in self.nodes]
        defaults: dict[str, Any] = {}
        for key in _SHARED:
            values = [t.get(key) for t in tables]
            if tables and values[0] is not None and all(v == values[0] for v in values):
                defaults[key] = values[0]
                for t in tables:
                    del t[key]
        data: dict[str, Any] = {}
        if self.cluster_name:
            data["cluster"] = {"name": self.cluster_name}
        if defaults:
            data["defaults"] = defaults
        data["nodes"] = tables
        return data

    def to_toml(self, tool: str) -> str:
        header = (f"# Imported by `saf import {tool}` from {self.source.name}.\n"
                  "# saf reads this file; edit it freely (saf import will not touch it again "
                  "unless you pass --force).\n\n")
        return header + tomli_w.dumps(self.data())

    def validate(self, text: str, path: Path | None = None) -> Inventory:
        """Check `text` (from to_toml) as saf would load it. A mistake is reported against the
        source line of the node it concerns."""
        import tomllib

        pos = TomlPositions(text)
        try:
            return parse_inventory(tomllib.loads(text), pos, path)
        except InventoryError as exc:
            raise self.error(exc.detail, self._source_line(pos, exc.line)) from None

    def _source_line(self, pos: TomlPositions, line: int | None) -> int | None:
        """The source line of the node whose [[nodes]] table holds generated `line`."""
        if line is None:
            return None
        found: int | None = None
        for index, node in enumerate(self.nodes):
            start = pos.line("nodes", index)
            if start is not None and start <= line:
                found = node.line
        return found
