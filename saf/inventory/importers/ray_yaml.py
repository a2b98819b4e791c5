"""Reading a Ray cluster launcher YAML (an on-premise cluster) into a draft saf inventory.

Only the local provider names its machines, so only it can be imported:

    cluster_name: lab
    provider:
        type: local
        head_ip: 192.168.1.10
        # external_head_ip: the head's address as the operator's machine reaches it
        worker_ips: [192.168.1.11, 192.168.1.12]
    auth:
        ssh_user: ops
        ssh_private_key: ~/.ssh/id_ed25519

The head becomes a node with role head, each worker IP a node with role worker; nodes are
named by their address, as Ray names them. `auth.ssh_user` and `auth.ssh_private_key` become
the defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from saf.errors import ConfigError, brief
from saf.inventory.importers.bounded_yaml import AliasBomb, BoundedSafeLoader
from saf.inventory.importers.draft import Draft, DraftNode


def import_ray(path: Path, text: str | None = None) -> Draft:
    """Read a Ray cluster YAML; ConfigError (file:line) on anything missing or malformed."""
    if text is None:
        text = _read(path)
    draft = Draft(source=path)
    root, data = _load(draft, text)
    doc = _Doc(draft, root)
    if not isinstance(data, dict):
        raise draft.error("a Ray cluster YAML is a mapping with cluster_name, provider and "
                          "auth", doc.line())
    _cluster_name(doc, data)
    provider = _provider(doc, data)
    _refuse_placeholders(doc, provider, data.get("auth"))
    head_ip = _address(doc, provider, "head_ip", required=True)
    external = _address(doc, provider, "external_head_ip", required=False)
    workers = _worker_list(doc, provider)
    user, identity = _auth(doc, data)
    assert head_ip is not None
    head = DraftNode(name=external or head_ip, host=external or head_ip,
                     line=doc.line("provider", "external_head_ip" if external else "head_ip"),
                     roles=["head"], user=user, identity=identity)
    if external:
        head.vars["ray_head_ip"] = head_ip
    draft.nodes.append(head)
    _add_workers(doc, workers, {head_ip, external}, user, identity)
    draft.check_names()
    return draft


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot read: {exc}") from None


def _cluster_name(doc: _Doc, data: dict[str, Any]) -> None:
    name = data.get("cluster_name")
    if name is not None:
        if not isinstance(name, (str, int)) or not str(name).strip():
            raise doc.draft.error("cluster_name must be a string", doc.line("cluster_name"))
        doc.draft.cluster_name = str(name)


def _provider(doc: _Doc, data: dict[str, Any]) -> dict[str, Any]:
    """The provider section, when it is the local provider with its machines listed."""
    draft = doc.draft
    provider = data.get("provider")
    if not isinstance(provider, dict):
        raise draft.error("no provider section (expected provider: type: local, head_ip, "
                          "worker_ips)", doc.line("provider"))
    kind = provider.get("type")
    if kind != "local":
        raise draft.error(f"provider type is {brief(kind)}; saf imports on-premise clusters "
                          "(provider: type: local), whose machines the file names",
                          doc.line("provider", "type"))
    if provider.get("coordinator_address") and "head_ip" not in provider:
        raise draft.error("this cluster gets its machines from a coordinator server; saf "
                          "needs them listed: add head_ip and worker_ips",
                          doc.line("provider", "coordinator_address"))
    return provider


def _worker_list(doc: _Doc, provider: dict[str, Any]) -> list[Any]:
    workers = provider.get("worker_ips", [])
    if workers is None:
        return []
    if not isinstance(workers, list):
        raise doc.draft.error("provider.worker_ips must be a list of addresses",
                              doc.line("provider", "worker_ips"))
    return workers


def _auth(doc: _Doc, data: dict[str, Any]) -> tuple[str | None, str | None]:
    """auth's (ssh_user, ssh_private_key), warning when no user is set."""
    auth = data.get("auth", {}) or {}
    if not isinstance(auth, dict):
        raise doc.draft.error("auth must be a mapping (ssh_user, ssh_private_key)",
                              doc.line("auth"))
    user = _optional_string(doc, auth, "auth", "ssh_user")
    identity = _optional_string(doc, auth, "auth", "ssh_private_key")
    if user is None:
        doc.draft.warnings.append("auth.ssh_user is not set; saf will log in as your own "
                                  "user name (or as ~/.ssh/config says)")
    return user, identity


def _add_workers(doc: _Doc, workers: list[Any], seen: set[str | None], user: str | None,
                 identity: str | None) -> None:
    """A worker node per address, none twice nor the head's."""
    draft = doc.draft
    for index, item in enumerate(workers):
        line = doc.line("provider", "worker_ips", index)
        if not isinstance(item, (str, int)) or isinstance(item, bool) or not str(item).strip():
            raise draft.error(f"worker_ips entry {index + 1} is not an address: "
                              f"{brief(item)}", line)
        address = str(item).strip()
        if address in seen:
            raise draft.error(f"{address} is listed twice (head_ip and worker_ips must name "
                              "different machines)", line)
        seen.add(address)
        draft.nodes.append(DraftNode(name=address, host=address, line=line,
                                     roles=["worker"], user=user, identity=identity))


def _load(draft: Draft, text: str) -> tuple[yaml.Node | None, Any]:
    """Parse once, keeping both the node tree (for line numbers) and the values."""
    loader = BoundedSafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except AliasBomb as exc:
        raise draft.error(f"refused: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "cannot parse"
        raise draft.error(f"YAML syntax error: {problem}",
                          mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise draft.error(f"YAML syntax error: {exc}") from None
    finally:
        loader.dispose()
    return root, data


class _Doc:
    """Line numbers of values in the parsed YAML, by path."""

    def __init__(self, draft: Draft, root: yaml.Node | None) -> None:
        self.draft = draft
        self.root = root

    def line(self, *path: str | int) -> int | None:
        node = self.root
        best = node.start_mark.line + 1 if node is not None else None
        for step in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == step:
                        child = value
                        best = key.start_mark.line + 1
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
                if step < len(node.value):
                    child = node.value[step]
                    best = child.start_mark.line + 1
            if child is None:
                return best
            node = child
        return best


# What Ray's own example YAMLs hold until a person fills them in: YOUR_USERNAME,
# YOUR_HEAD_NODE_HOSTNAME, WORKER_NODE_1_HOSTNAME (an underscore is never in a host name),
# `<your-ip>`, and a literal `...` at the end of worker_ips.
_PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+|<[^>]*>|\.\.\.|…")


def _refuse_placeholders(doc: _Doc, provider: dict[str, Any], auth: Any) -> None:
    """An example left unfilled is refused with every placeholder and its line, never
    imported as nodes named WORKER_NODE_1_HOSTNAME."""
    found: list[tuple[int | None, str, str]] = []

    def look(value: Any, where: str, *path: str | int) -> None:
        if isinstance(value, str) and _PLACEHOLDER.fullmatch(value.strip()):
            found.append((doc.line(*path), where, value.strip()))

    for key in ("head_ip", "external_head_ip"):
        look(provider.get(key), f"provider.{key}", "provider", key)
    workers = provider.get("worker_ips")
    for index, item in enumerate(workers if isinstance(workers, list) else []):
        look(item, f"worker_ips[{index}]", "provider", "worker_ips", index)
    for key in ("ssh_user", "ssh_private_key"):
        look(auth.get(key) if isinstance(auth, dict) else None, f"auth.{key}", "auth", key)
    if found:
        listed = "; ".join(f"line {line}: {where} = {value}" if line else f"{where} = {value}"
                           for line, where, value in found)
        raise doc.draft.error(f"{len(found)} placeholder(s) from Ray's example are still in "
                              f"this file ({listed}); put in your machines' addresses and user "
                              "first", found[0][0])


def _address(doc: _Doc, provider: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = provider.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise doc.draft.error(f"provider.{key} is missing: saf needs the head node's "
                                  "address", doc.line("provider", key))
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise doc.draft.error(f"provider.{key} must be an address, not {brief(value)}",
                              doc.line("provider", key))
    return str(value).strip()


def _optional_string(doc: _Doc, table: dict[str, Any], section: str, key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise doc.draft.error(f"{section}.{key} must be a non-empty string",
                              doc.line(section, key))
    return value.strip()
