"""Finding, reading and validating `saf.toml`.

Every mistake becomes an InventoryError naming the file, the line and what is wrong.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

from saf import paths
from saf.errors import InventoryError
from saf.inventory.model import (CONNECTIONS, OSES, ROLES, SELECTOR_WORDS, Cluster, Defaults,
                                 Inventory, Node)
from saf.numbers import number_problem
from saf.tomlpos import TomlPositions, load_toml

INVENTORY_NAME = "saf.toml"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

_CLUSTER_KEYS = {"name"}
_DEFAULT_KEYS = {"user", "port", "python", "identity", "known_hosts", "ssh_config",
                 "connect_timeout", "vars"}
_NODE_KEYS = _DEFAULT_KEYS | {"name", "host", "roles", "tags", "os", "connection"}
_TOP_KEYS = {"cluster", "defaults", "nodes"}
CONNECT_TIMEOUT = (0.1, 3600.0)  # seconds: from a LAN's fastest to an hour
# Tables owned by other parts of saf; they validate their own contents.
EXTRA_TABLES = {"signals", "cockpit", "ray"}


def find_inventory(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The inventory to use: --inventory, then $SAF_INVENTORY, then ./saf.toml, then the
    user's config folder."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("SAF_INVENTORY")
    if env:
        return Path(env).expanduser()
    candidates = [Path.cwd() / INVENTORY_NAME, paths.config_dir() / INVENTORY_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise InventoryError(None, f"no inventory found (looked for {looked}); write a saf.toml, "
                         "pass --inventory FILE, or try `saf demo`")


def load_inventory(path: str | os.PathLike[str] | None = None) -> Inventory:
    file = find_inventory(path)
    data, pos = load_toml(file, InventoryError)
    return parse_inventory(data, pos, file)


class _Checker:
    def __init__(self, pos: TomlPositions, path: Path | None) -> None:
        self.pos = pos
        self.path = path

    def fail(self, where: tuple[Any, ...], message: str) -> InventoryError:
        return InventoryError(self.path, message, line=self.pos.line(*where))

    def table(self, value: Any, where: tuple[Any, ...], what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"{what} must be a table")
        return value

    def known(self, table: dict[str, Any], allowed: set[str], where: tuple[Any, ...],
              what: str) -> None:
        for key in table:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                raise self.fail(where + (key,), f"unknown key {key!r} in {what} "
                                f"(known keys: {hint})")

    def string(self, table: dict[str, Any], key: str, where: tuple[Any, ...],
               what: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where + (key,), f"{what}.{key} must be a non-empty string")
        return value

    def command(self, table: dict[str, Any], key: str, where: tuple[Any, ...],
                what: str) -> str | None:
        """A program with its arguments (`python = "/usr/bin/env python3"`), split as sh
        would split it: unbalanced quoting is refused here, not later by each command that
        runs it."""
        value = self.string(table, key, where, what)
        if value is None:
            return None
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise self.fail(where + (key,), f"{what}.{key} {value!r} is not a command sh can "
                            f"split: unbalanced quoting ({exc}); quote a path with spaces "
                            "whole, e.g. \"'~/my venv/bin/python'\", and one with a ' in "
                            "double quotes (\"/opt/it's/python3\")") from None
        if not words or not words[0]:
            raise self.fail(where + (key,), f"{what}.{key} {value!r} names no program")
        return value

    def port(self, table: dict[str, Any], where: tuple[Any, ...], what: str) -> int | None:
        value = table.get("port")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise self.fail(where + ("port",), f"{what}.port must be an integer from 1 to "
                            f"65535, not {value!r}")
        return value

    def words(self, table: dict[str, Any], key: str, where: tuple[Any, ...],
              what: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if isinstance(value, str):
            raise self.fail(where + (key,), f"{what}.{key} must be a list of strings: "
                            f"write {key} = [{value!r}]".replace("'", '"'))
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(where + (key,), f"{what}.{key} must be a list of strings")
        return tuple(value)

    def number(self, table: dict[str, Any], key: str, where: tuple[Any, ...], what: str,
               default: float, low: float, high: float) -> float:
        value = table.get(key, default)
        problem = number_problem(value, low=low, high=high)
        if problem:
            raise self.fail(where + (key,), f"{what}.{key} {problem}")
        return float(value)

    def choice(self, table: dict[str, Any], key: str, allowed: tuple[str, ...],
               where: tuple[Any, ...], what: str) -> str | None:
        value = self.string(table, key, where, what)
        if value is not None and value not in allowed:
            raise self.fail(where + (key,), f"{what}.{key} must be one of "
                            f"{', '.join(allowed)}, not {value!r}")
        return value


def parse_inventory(data: dict[str, Any], pos: TomlPositions | None = None,
                    path: Path | None = None) -> Inventory:
    """Validate parsed TOML into an Inventory."""
    check = _Checker(pos or TomlPositions(""), path)
    check.known(data, _TOP_KEYS | EXTRA_TABLES, (), "the inventory")

    cluster_t = check.table(data.get("cluster", {}), ("cluster",), "[cluster]")
    check.known(cluster_t, _CLUSTER_KEYS, ("cluster",), "[cluster]")
    cluster = Cluster(name=check.string(cluster_t, "name", ("cluster",), "cluster") or "saf")

    d = check.table(data.get("defaults", {}), ("defaults",), "[defaults]")
    check.known(d, _DEFAULT_KEYS, ("defaults",), "[defaults]")
    defaults = Defaults(
        user=check.string(d, "user", ("defaults",), "defaults"),
        port=check.port(d, ("defaults",), "defaults"),
        python=check.command(d, "python", ("defaults",), "defaults") or "python3",
        identity=check.string(d, "identity", ("defaults",), "defaults"),
        known_hosts=check.string(d, "known_hosts", ("defaults",), "defaults"),
        ssh_config=check.string(d, "ssh_config", ("defaults",), "defaults"),
        connect_timeout=check.number(d, "connect_timeout", ("defaults",), "defaults", 10.0,
                                     *CONNECT_TIMEOUT),
        vars=check.table(d.get("vars", {}), ("defaults", "vars"), "defaults.vars"),
    )

    raw_nodes = data.get("nodes", [])
    if not isinstance(raw_nodes, list):
        raise check.fail(("nodes",), "nodes must be written as [[nodes]] tables")
    if not raw_nodes:
        raise check.fail((), "the inventory has no [[nodes]]")
    nodes: list[Node] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_nodes):
        where = ("nodes", index)
        t = check.table(raw, where, "each [[nodes]] entry")
        name = check.string(t, "name", where, "node")
        label = f"node {name!r}" if name else f"node #{index + 1}"
        if name is None:
            raise check.fail(where, f"{label} has no name")
        if not NAME_RE.match(name):
            raise check.fail(where + ("name",), f"node name {name!r} may hold only letters, "
                             "digits, '.', '_' and '-', and must start with a letter or digit")
        if name in SELECTOR_WORDS:
            raise check.fail(where + ("name",), f"node name {name!r} is a selector word "
                             f"({', '.join(sorted(SELECTOR_WORDS))}): `--on {name}` could "
                             "never mean this node; choose another name")
        check.known(t, _NODE_KEYS, where, label)
        if name in seen:
            raise check.fail(where + ("name",), f"duplicate node name {name!r} (first defined "
                             f"on line {check.pos.line('nodes', seen[name])})")
        seen[name] = index
        host = check.string(t, "host", where, label)
        if host is None:
            raise check.fail(where, f"{label} has no host")
        roles = check.words(t, "roles", where, label)
        for role in roles:
            if role not in ROLES:
                raise check.fail(where + ("roles",), f"{label}: unknown role {role!r} "
                                 f"(roles are {', '.join(ROLES)})")
        port = check.port(t, where, label)
        user = check.string(t, "user", where, label)
        connection = check.choice(t, "connection", CONNECTIONS, where, label)
        if connection is None:
            connection = "local" if host == "localhost" and port is None and user is None \
                else "ssh"
        node_vars = check.table(t.get("vars", {}), where + ("vars",), f"{label}.vars")
        nodes.append(Node(
            name=name, host=host,
            user=user or defaults.user,
            port=port or defaults.port,
            roles=roles,
            tags=check.words(t, "tags", where, label),
            python=check.command(t, "python", where, label) or defaults.python,
            os=check.choice(t, "os", OSES, where, label),
            connection=connection,
            identity=check.string(t, "identity", where, label) or defaults.identity,
            known_hosts=check.string(t, "known_hosts", where, label) or defaults.known_hosts,
            ssh_config=check.string(t, "ssh_config", where, label) or defaults.ssh_config,
            connect_timeout=check.number(t, "connect_timeout", where, label,
                                         defaults.connect_timeout, *CONNECT_TIMEOUT),
            vars={**defaults.vars, **node_vars},
            line=check.pos.line(*where),
        ))
    heads = [n for n in nodes if n.is_head]
    if len(heads) > 1:
        second = heads[1]
        raise InventoryError(path, f"more than one head node ({heads[0].name}, {second.name}); "
                             "a cluster has one head", line=second.line)
    extra = {k: data[k] for k in EXTRA_TABLES if k in data}
    return Inventory(cluster=cluster, defaults=defaults, nodes=tuple(nodes), path=path,
                     extra=extra)
