"""Reading an Ansible inventory in INI format into a draft saf inventory.

The format is Ansible's own (docs: "How to build your inventory"): hosts listed under
`[group]` headers, `host:port`, host ranges such as `gpu[01:04]`, inline `key=value` host
variables (read as Python literals, as Ansible does), `[group:vars]` (read as strings) and
`[group:children]`. A host belongs to its groups and to all of their parent groups.

Groups named for a role become that role (see ROLE_GROUPS); every other group becomes a tag.
Connection variables become saf settings (see the table in CONNECTION_VARS); any other
variable becomes a node variable. Passwords are left out: saf never stores one.
"""

from __future__ import annotations

import ast
import re
import shlex
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saf.inventory.address import AddressError, parse_jump
from saf.inventory.importers.draft import Draft, DraftNode

# Ansible group name -> saf role: the names Ray, Kubernetes (kubeadm, kubespray, k3s) and
# HPC inventories use for their head and their workers.
_HEAD_GROUPS = ("head", "heads", "ray_head", "control_plane", "control-plane",
                "kube_control_plane", "master", "masters", "controller", "controllers")
_WORKER_GROUPS = ("worker", "workers", "compute", "ray_workers", "nodes", "node", "kube_node",
                  "agents", "agent")
ROLE_GROUPS = {**dict.fromkeys(_HEAD_GROUPS, "head"), **dict.fromkeys(_WORKER_GROUPS, "worker"),
               "control": "control"}
# Ansible connection variable -> saf node setting (the ansible_ssh_* names are older aliases).
CONNECTION_VARS = {
    "ansible_host": "host", "ansible_ssh_host": "host",
    "ansible_user": "user", "ansible_ssh_user": "user",
    "ansible_port": "port", "ansible_ssh_port": "port",
    "ansible_python_interpreter": "python",
    "ansible_ssh_private_key_file": "identity",
    "ansible_connection": "connection",
}
# Extra arguments Ansible adds to ssh's command line, where a ProxyJump hides.
SSH_ARGS_VARS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")
SECRET_VARS = {"ansible_password", "ansible_ssh_pass", "ansible_ssh_password",
               "ansible_become_password", "ansible_become_pass", "ansible_sudo_pass",
               "ansible_sudo_password"}
IMPLICIT_GROUPS = {"all", "ungrouped"}

_RANGE = re.compile(r"\[([^\]:]*):([^\]:]*)(?::(\d+))?\]")
_GROUP_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class _Unreadable(ValueError):
    """A host pattern saf cannot expand: its line is skipped with a warning."""


@dataclass
class _Value:
    value: Any
    line: int


@dataclass
class _Host:
    name: str
    line: int
    groups: list[str] = field(default_factory=list)
    vars: dict[str, _Value] = field(default_factory=dict)


@dataclass
class _Group:
    name: str
    line: int
    vars: dict[str, _Value] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)


def import_ansible(path: Path, text: str | None = None) -> Draft:
    """Read an Ansible INI inventory; ConfigError (file:line) on anything malformed."""
    if text is None:
        text = _read(path)
    draft = Draft(source=path)
    hosts, groups = _parse(draft, text)
    if not hosts:
        raise draft.error("no hosts found: an Ansible INI inventory lists hosts under "
                          "[group] headers, one per line")
    parents = _parents(draft, groups)
    for host in hosts.values():
        draft.nodes.append(_node(draft, host, groups, parents))
    _one_head(draft)
    _jump_hosts(draft)
    draft.cluster_name = _cluster_group(hosts, groups, parents)
    draft.check_names()
    return draft


def _one_head(draft: Draft) -> None:
    """A saf cluster has one head; an inventory with three masters keeps the first as the
    head and makes the others control nodes, saying so."""
    heads = [n for n in draft.nodes if "head" in n.roles]
    for node in heads[1:]:
        node.roles = [r for r in node.roles if r != "head"]
        if "control" not in node.roles:
            node.roles.append("control")
        draft.warnings.append(f"line {node.line}: {node.name!r} is in a head group too; a saf "
                              f"cluster has one head ({heads[0].name!r}), so it becomes a "
                              "control node")


def _cluster_group(hosts: dict[str, _Host], groups: dict[str, _Group],
                   parents: dict[str, list[str]]) -> str | None:
    """The parent group that holds every host (`[k8s_cluster:children]` over the role
    groups), the most general one when several do: the cluster's name. None when no parent
    group holds them all (a lone `[workers]` names no cluster)."""
    covering: set[str] | None = None
    for host in hosts.values():
        member = {g for group in host.groups for g in [group, *parents.get(group, [])]}
        covering = member if covering is None else covering & member
    candidates = sorted(g for g in (covering or set()) - IMPLICIT_GROUPS
                        if g in groups and groups[g].children)
    tops = [g for g in candidates if not set(parents.get(g, [])) & set(candidates)]
    return tops[0] if len(tops) == 1 else None


def _read(path: Path) -> str:
    from saf.errors import ConfigError

    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot read: {exc}") from None


def _parse(draft: Draft, text: str) -> tuple[dict[str, _Host], dict[str, _Group]]:
    hosts: dict[str, _Host] = {}
    groups: dict[str, _Group] = {}
    group, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            match = re.fullmatch(r"\[([^\]\s]+)\]\s*([#;].*)?", line)
            if not match:
                raise draft.error(f"bad section header {line!r} (expected [group], "
                                  "[group:vars] or [group:children])", number)
            group, _, kind = match.group(1).partition(":")
            kind = kind or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise draft.error(f"unknown section type {kind!r} in {line!r} (use "
                                  ":vars or :children)", number)
            if not _GROUP_NAME.match(group):
                raise draft.error(f"bad group name {group!r}", number)
            groups.setdefault(group, _Group(group, number))
            continue
        if number == _first_line(text) and _looks_like_yaml(line):
            raise draft.error("this looks like a YAML inventory; saf imports the INI format "
                              "(`ansible-inventory -i FILE --list` shows what Ansible reads)",
                              number)
        if kind == "vars":
            key, eq, value = line.partition("=")
            if not eq or not key.strip():
                raise draft.error(f"expected key=value in [{group}:vars], not {line!r}", number)
            groups[group].vars[key.strip()] = _Value(_unquote(value.strip()), number)
        elif kind == "children":
            child = line.split()[0]
            if not _GROUP_NAME.match(child):
                raise draft.error(f"bad group name {child!r} in [{group}:children]", number)
            groups[group].children.append(child)
            groups.setdefault(child, _Group(child, number))
        else:
            _host_line(draft, line, number, group, hosts)
    return hosts, groups


def _first_line(text: str) -> int:
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip() and raw.strip()[0] not in "#;":
            return number
    return 0


def _looks_like_yaml(line: str) -> bool:
    return line == "---" or bool(re.fullmatch(r"[A-Za-z0-9_.-]+:\s*", line))


def _host_line(draft: Draft, line: str, number: int, group: str,
               hosts: dict[str, _Host]) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise draft.error(f"cannot read host line ({exc})", number) from None
    if not tokens:
        return
    pattern, *assignments = tokens
    if "=" in pattern:
        raise draft.error(f"host line {line!r} has no host name before its variables", number)
    pattern, port = _split_port(draft, pattern, number)
    host_vars: dict[str, _Value] = {}
    if port is not None:
        host_vars["ansible_port"] = _Value(port, number)
    for token in assignments:
        key, eq, value = token.partition("=")
        if not eq or not key:
            raise draft.error(f"expected key=value after the host name, not {token!r}", number)
        host_vars[key] = _Value(_literal(value), number)
    try:
        names = _expand(draft, pattern, number)
    except _Unreadable as exc:
        # One odd line must not block the whole import: say which line was left out.
        draft.warnings.append(f"line {number}: skipped {line.split()[0]!r}: {exc}")
        return
    for name in names:
        host = hosts.get(name)
        if host is None:
            host = hosts[name] = _Host(name, number)
        if group not in host.groups:
            host.groups.append(group)
        host.vars.update(host_vars)


def _split_port(draft: Draft, pattern: str, number: int) -> tuple[str, int | None]:
    """`host:2222` -> ("host", 2222). A colon inside a [a:b] range is not a port."""
    head, sep, tail = pattern.rpartition(":")
    if not sep or "]" in tail or pattern.rfind("[") > pattern.rfind(":"):
        return pattern, None
    if head.count(":") > head.count("["):
        raise draft.error(f"cannot read host {pattern!r}: write IPv6 addresses as "
                          "`name ansible_host=ADDRESS`", number)
    if not tail.isdigit():
        raise draft.error(f"bad port in host {pattern!r}", number)
    return head, int(tail)


def _expand(draft: Draft, pattern: str, number: int) -> list[str]:
    """Ansible host ranges: `gpu[01:04]` (numeric, zero padding kept), `node-[a:c]`,
    `x[0:10:5]` (a step). Several ranges in one name multiply."""
    match = _RANGE.search(pattern)
    if not match:
        return [pattern]
    start, end, step_text = match.group(1), match.group(2), match.group(3)
    start = start or "0"  # Ansible: an omitted start is 0 (`mail[:5]` is mail0 .. mail5)
    step = int(step_text) if step_text else 1
    prefix, suffix = pattern[: match.start()], pattern[match.end():]
    if start.isdigit() and end.isdigit():
        if int(start) > int(end) or step < 1:
            raise _Unreadable(f"bad host range in {pattern!r}")
        width = len(start) if start.startswith("0") or len(start) == len(end) else 0
        items = [str(i).zfill(width) for i in range(int(start), int(end) + 1, step)]
    elif len(start) == 1 and len(end) == 1 and start in string.ascii_letters \
            and end in string.ascii_letters and start <= end and step >= 1:
        items = [chr(c) for c in range(ord(start), ord(end) + 1, step)]
    else:
        raise _Unreadable(f"bad host range in {pattern!r} (use [01:10], [:10] or [a:f])")
    names: list[str] = []
    for item in items:
        names.extend(_expand(draft, prefix + item + suffix, number))
    return names


def _literal(text: str) -> Any:
    """Inline host variables are Python literals to Ansible (`gpus=4` is a number,
    `gpus=[0,1]` a list); anything else is a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _parents(draft: Draft, groups: dict[str, _Group]) -> dict[str, list[str]]:
    """Each group's ancestors (nearest first), refusing a cycle of :children."""
    direct: dict[str, list[str]] = {name: [] for name in groups}
    for group in groups.values():
        for child in group.children:
            direct.setdefault(child, []).append(group.name)

    out: dict[str, list[str]] = {}

    def walk(name: str, trail: tuple[str, ...]) -> list[str]:
        if name in trail:
            raise draft.error(f"group {name!r} is its own ancestor ("
                              f"{' -> '.join(trail + (name,))})", groups[name].line)
        if name in out:
            return out[name]
        found: list[str] = []
        for parent in direct.get(name, []):
            for g in [parent, *walk(parent, trail + (name,))]:
                if g not in found:
                    found.append(g)
        out[name] = found
        return found

    for name in direct:
        walk(name, ())
    return out


def _node(draft: Draft, host: _Host, groups: dict[str, _Group],
          parents: dict[str, list[str]]) -> DraftNode:
    member = _memberships(host, parents)
    node = DraftNode(name=host.name, host=host.name, line=host.line)
    _roles_and_tags(node, member)
    _take_vars(draft, node, _merged_vars(host, member, groups, parents))
    return node


def _memberships(host: _Host, parents: dict[str, list[str]]) -> list[str]:
    """Every group the host is in, directly or through a parent group, once each."""
    member: list[str] = []
    for group in host.groups:
        for g in [group, *parents.get(group, [])]:
            if g not in member:
                member.append(g)
    return member


def _merged_vars(host: _Host, member: list[str], groups: dict[str, _Group],
                 parents: dict[str, list[str]]) -> dict[str, _Value]:
    """The host's variables with its groups' in Ansible's precedence: all, then groups from
    the most general to the most specific (ties by name), then the host's own variables."""
    def depth(g: str) -> int:
        return 1 + max((depth(p) for p in parents.get(g, []) if p != "all"), default=0)

    order = ["all"] + sorted((g for g in member if g != "all"), key=lambda g: (depth(g), g))
    merged: dict[str, _Value] = {}
    for g in order:
        if g in groups:
            merged.update(groups[g].vars)
    merged.update(host.vars)
    return merged


def _roles_and_tags(node: DraftNode, member: list[str]) -> None:
    """A role group makes its role; any other group but Ansible's implicit ones, a tag."""
    for g in member:
        if g in IMPLICIT_GROUPS:
            continue
        role = ROLE_GROUPS.get(g)
        if role:
            if role not in node.roles:
                node.roles.append(role)
        elif g not in node.tags:
            node.tags.append(g)


def _take_vars(draft: Draft, node: DraftNode, merged: dict[str, _Value]) -> None:
    """Connection variables become the node's settings, others its vars; passwords are
    left out with a warning."""
    for key, item in merged.items():
        if key in SECRET_VARS:
            warning = (f"line {item.line}: left out {key} (saf never stores passwords; "
                       "`saf keys push` sets up key login)")
            if warning not in draft.warnings:
                draft.warnings.append(warning)
        elif key in CONNECTION_VARS:
            _connection_var(draft, node, CONNECTION_VARS[key], key, item)
        elif key in SSH_ARGS_VARS:
            _ssh_args(draft, node, key, item)
        elif item.value is None:
            continue
        else:
            node.vars[key] = _tomlable(item.value)


def proxy_jump(args: str) -> str | None:
    """The ProxyJump in ssh's extra arguments as Ansible passes them (`-o ProxyJump=HOP`,
    `-o ProxyJump HOP`, `-oProxyJump=HOP`, `-J HOP`, `-JHOP`), or None. The first one given,
    as ssh keeps the first value it reads for an option."""
    try:
        words = shlex.split(args)
    except ValueError:
        return None
    i = 0
    while i < len(words):
        word = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if word == "-J" and nxt:
            return nxt
        if word.startswith("-J") and len(word) > 2:
            return word[2:]
        option = nxt if word == "-o" else word[2:] if word.startswith("-o") else ""
        if option:
            name, _, value = option.replace("=", " ", 1).partition(" ")
            if name.lower() == "proxyjump":
                value = value.strip() or (words[i + 2] if word == "-o" and i + 2 < len(words)
                                          else "")
                return value or None
            i += 2 if word == "-o" else 1
            continue
        i += 1
    return None


def _ssh_args(draft: Draft, node: DraftNode, key: str, item: _Value) -> None:
    """Extra ssh arguments stay a node var (as before); a ProxyJump among them becomes the
    node's `jump` (made the inventory's own by _jump_hosts, once every host is read)."""
    value = item.value
    if isinstance(value, str) and value.strip():
        node.vars[key] = value
        hop = proxy_jump(value)
        if hop is not None:
            node.jump = hop


def _jump_hosts(draft: Draft) -> None:
    """Each ProxyJump as saf's `jump` says it: a single hop that is one of the imported hosts
    (by name or address, with no other user or port) becomes that node's name, so saf holds
    one connection to it; a node that would jump through itself goes straight there; a bare
    host name outside the inventory is written `ssh://NAME` (a bare word is a node's name to
    saf). Anything else stays as written, and the loader says what is wrong with its line."""
    known: dict[str, DraftNode] = {}
    for node in draft.nodes:
        known.setdefault(node.name, node)
        known.setdefault(node.host, node)
    for node in draft.nodes:
        if node.jump is None or node.jump.strip().lower() == "none":
            continue
        try:
            hops = parse_jump(node.jump)
        except AddressError:
            continue
        first = hops[0]
        target = known.get(first.host) if len(hops) == 1 else None
        if target is not None and first.user in (None, target.user) \
                and first.port in (None, target.port or 22):
            node.jump = None if target is node else target.name
        elif len(hops) == 1 and first.user is None and first.port is None \
                and "." not in first.host and ":" not in first.host:
            node.jump = f"ssh://{first.host}"


def _connection_var(draft: Draft, node: DraftNode, setting: str, key: str,
                    item: _Value) -> None:
    value = item.value
    if isinstance(value, str) and "{{" in value:
        raise draft.error(f"{key} for {node.name} is a Jinja template ({value!r}); saf cannot "
                          "evaluate it, write the value itself", item.line)
    if setting == "port":
        try:
            port = int(value)
        except (TypeError, ValueError):
            port = 0
        if isinstance(value, bool) or not 1 <= port <= 65535:
            raise draft.error(f"{key} for {node.name} must be a port from 1 to 65535, not "
                              f"{value!r}", item.line)
        node.port = port
        return
    if not isinstance(value, str) or not value.strip():
        value = "" if value is None else str(value)
    if not value.strip():
        raise draft.error(f"{key} for {node.name} is empty", item.line)
    if setting == "connection":
        if value == "local":
            node.connection = "local"
        elif value not in ("ssh", "paramiko", "smart"):
            draft.warnings.append(f"line {item.line}: {node.name} uses ansible_connection="
                                  f"{value}; saf reaches it over SSH")
        return
    setattr(node, setting, value)


def _tomlable(value: Any) -> Any:
    """TOML has no null and no tuples: drop None, make tuples and sets lists."""
    if isinstance(value, (tuple, list, set, frozenset)):
        return [_tomlable(v) for v in value if v is not None]
    if isinstance(value, dict):
        return {str(k): _tomlable(v) for k, v in value.items() if v is not None}
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
