"""Finding, reading and validating `saf.toml`.

Every mistake becomes an InventoryError naming the file, the line and what is wrong.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from saf import paths, secrets
from saf.config_model import Source, decode, dotted
from saf.errors import InventoryError, SafError, brief
from saf.inventory import jumps
from saf.inventory.model import SELECTOR_WORDS, Cluster, Defaults, Inventory, Node
from saf.inventory.schema import InventoryFile
from saf.tomlpos import TomlPositions, load_toml

INVENTORY_NAME = "saf.toml"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# Tables owned by other parts of saf; they validate their own contents.
EXTRA_TABLES = {"signals", "cockpit"}


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


# The tables of many entries, each named by its `name` in messages: "node 'beta'".
_NAMED = {"nodes": "node", "services": "service", "models": "model"}


def _node_label(data: Any, index: int, table: str = "nodes") -> str:
    """How an entry of [[nodes]] (or [[services]], [[models]]) is named in a message: by its
    name when it has a usable one."""
    raw = data.get(table) if isinstance(data, dict) else None
    entry = raw[index] if isinstance(raw, list) and index < len(raw) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"{_NAMED[table]} {brief(name)}" if isinstance(name, str) and name.strip() \
        else f"{_NAMED[table]} #{index + 1}"


def _source(data: Any, pos: TomlPositions, path: Path | None) -> Source:
    def named(where: tuple[Any, ...]) -> bool:
        return len(where) >= 2 and where[0] in _NAMED and isinstance(where[1], int)

    def table(where: tuple[Any, ...]) -> str:
        if not where:
            return "the inventory"
        if named(where) and len(where) == 2:
            return _node_label(data, where[1], where[0])
        return f"[{dotted(where)}]"

    def key(where: tuple[Any, ...]) -> str:
        if named(where):
            label = _node_label(data, where[1], where[0])
            return f"{label}: {dotted(where[2:])}" if len(where) > 2 else label
        return dotted(where)
    return Source.of_positions(path, pos, error=InventoryError, table=table, key=key)


def _command(value: str, where: tuple[Any, ...], source: Source) -> str:
    """A program with its arguments (`python = "/usr/bin/env python3"`), split as sh would
    split it: unbalanced quoting is refused here, not later by each command that runs it."""
    name = source.key(where)
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise source.fail(where, f"{name} {value!r} is not a command sh can "
                          f"split: unbalanced quoting ({exc}); quote a path with spaces "
                          "whole, e.g. \"'~/my venv/bin/python'\", and one with a ' in "
                          "double quotes (\"/opt/it's/python3\")") from None
    if not words or not words[0]:
        raise source.fail(where, f"{name} {value!r} names no program")
    return value


def _check_name(name: str, where: tuple[Any, ...], source: Source) -> None:
    if not NAME_RE.match(name):
        raise source.fail(where, f"node name {name!r} may hold only letters, "
                          "digits, '.', '_' and '-', and must start with a letter or digit")
    if name in SELECTOR_WORDS:
        raise source.fail(where, f"node name {name!r} is a selector word "
                          f"({', '.join(sorted(SELECTOR_WORDS))}): `--on {name}` could "
                          "never mean this node; choose another name")


def parse_inventory(data: dict[str, Any], pos: TomlPositions | None = None,
                    path: Path | None = None) -> Inventory:
    """Validate parsed TOML into an Inventory: its shape by the declared model
    (saf.inventory.schema), then names, duplicates, the python command and the one head."""
    pos = pos or TomlPositions("")
    source = _source(data, pos, path)
    file = decode(data, InventoryFile, source)
    d = file.defaults
    defaults = Defaults(
        user=d.user, port=d.port, python=_command(d.python, ("defaults", "python"), source),
        identity=d.identity, known_hosts=d.known_hosts, ssh_config=d.ssh_config,
        connect_timeout=float(d.connect_timeout), jump=d.jump, vars=d.vars)
    if not file.nodes:
        raise source.fail((), "the inventory has no [[nodes]]")
    nodes: list[Node] = []
    jump: dict[str, jumps.Written] = {}
    seen: dict[str, int] = {}
    for index, t in enumerate(file.nodes):
        where = ("nodes", index)
        _check_name(t.name, where + ("name",), source)
        if t.name in seen:
            raise source.fail(where + ("name",), f"duplicate node name {t.name!r} (first "
                              f"defined on line {pos.line('nodes', seen[t.name])})")
        seen[t.name] = index
        connection = t.connection
        if connection is None:
            connection = "local" if t.host == "localhost" and t.port is None \
                and t.user is None else "ssh"
        python = _command(t.python, where + ("python",), source) if t.python is not None \
            else defaults.python
        timeout = t.connect_timeout if t.connect_timeout is not None \
            else defaults.connect_timeout
        nodes.append(Node(
            name=t.name, host=t.host,
            user=t.user or defaults.user,
            port=t.port or defaults.port,
            roles=tuple(t.roles), tags=tuple(t.tags), python=python, os=t.os,
            connection=connection,
            identity=t.identity or defaults.identity,
            known_hosts=t.known_hosts or defaults.known_hosts,
            ssh_config=t.ssh_config or defaults.ssh_config,
            connect_timeout=float(timeout),
            vars={**defaults.vars, **t.vars},
            line=pos.line(*where),
        ))
        if t.jump is not None:
            jump[t.name] = jumps.Written(t.jump, where + ("jump",))
        elif d.jump is not None:
            jump[t.name] = jumps.Written(d.jump, ("defaults", "jump"), from_defaults=True)
    nodes = jumps.resolve(
        nodes, jump, lambda where, message: source.fail(where, f"{source.key(where)} {message}"))
    heads = [n for n in nodes if n.is_head]
    if len(heads) > 1:
        second = heads[1]
        raise InventoryError(path, f"more than one head node ({heads[0].name}, {second.name}); "
                             "a cluster has one head", line=second.line)
    register_secrets(file, path)
    extra = {k: data[k] for k in EXTRA_TABLES if k in data}
    return Inventory(cluster=Cluster(name=file.cluster.name), defaults=defaults,
                     nodes=tuple(nodes), path=path, extra=extra, file=file)


def register_secrets(file: InventoryFile, path: Path | None,
                     environ: Mapping[str, str] | None = None) -> None:
    """Hide every secret the file declares (its services' and models' env_files and
    `${NAME}` values; saf.secrets) from everything this process shows, as far as they can be
    read now: a command that only shows things needs no env_file to be there, and
    saf.up.declared reports one that is missing or wrong when it is needed."""
    environ = os.environ if environ is None else environ
    for part in (*file.services, *file.models):
        for value in part.env.values():
            name = secrets.reference(value)
            if name is not None and name in environ:
                secrets.register([environ[name]])
        if part.env_file is not None:
            env_file = Path(part.env_file).expanduser()
            if not env_file.is_absolute() and path is not None:
                env_file = path.parent / env_file
            try:
                secrets.register(secrets.read_env_file(env_file).values())
            except SafError:
                pass
