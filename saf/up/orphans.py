"""Services saf up installed that saf.toml no longer declares (compose's orphans): a
`[[services]]` entry taken out, a `[[models]]` kept as service `model-NAME`, or [ray] with
`persist = true` (service `ray`, `ray-NODE` on a machine nodes share). Only the services
carrying this cluster's mark are considered (saf.cluster.marked): one that a plain `saf run`
installed (`ray-up` included), or an older saf up wrote unmarked, is never an orphan. A
model server saf up started detached (`persist = false`) is one by the mark in its record.
`saf status` lists them as `not declared`, `saf up` names them in its plan, `saf up --prune`
and `saf down` remove them (the steps built here: the `service` kind's `state = "absent"`,
and its secrets file).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from saf.cluster.marked import LIST, Marked, parse
from saf.connect.base import Connector
from saf.errors import SafError
from saf.fleet import Fleet
from saf.inference.node import Target, list_servers
from saf.inference.records import Endpoint
from saf.inventory.model import Inventory, Node
from saf.recipe.kinds.model_kept import service_name as model_service
from saf.recipe.kinds.ray_kept import service_name as ray_service
from saf.recipe.kinds.service import Service as ServiceKind
from saf.recipe.kinds.service import ServiceParams
from saf.recipe.kinds.shell import Shell
from saf.recipe.model import Step
from saf.up.declared import Declared
from saf.up.model_stop import ModelStop

PREFIX = "orphan_"  # a run variable per orphan -> its nodes, so a resume builds the same steps
ENV_FOLDER = "~/.saf/env"  # as saf.up.compile.ENV_FOLDER (compile imports this module)

Orphans = Mapping[str, tuple[str, ...]]  # service name -> the nodes it is left on
# A model server saf up started detached (persist = false) is an orphan by the mark in its
# record (saf.inference.records.UpMark), named model:NAME:PORT: a ':' is in no service name.
MODEL_KEY = "model:"


def model_key(model: str, port: int) -> str:
    return f"{MODEL_KEY}{model}:{port}"


def model_of(name: str) -> tuple[str, int] | None:
    """(model, port) of a detached model server's orphan name; None for a service's."""
    if not name.startswith(MODEL_KEY):
        return None
    model, _, port = name[len(MODEL_KEY):].rpartition(":")
    return (model, int(port)) if model and port.isdigit() else None


def shown(name: str) -> str:
    """An orphan as the plan and the status say it: "service NAME", "model NAME (port P,
    detached)"."""
    found = model_of(name)
    return f"service {name}" if found is None else \
        f"model {found[0]} (port {found[1]}, detached)"


def declared_names(declared: Declared, inventory: Inventory, node: Node) -> set[str]:
    """The services saf.toml keeps on `node`: its services (each on every node when its
    nodes are not known yet: never removed by mistake), every model's `model-NAME`
    (a placed replica left on a node is the surplus step's), and Ray's."""
    names = {s.name for s in declared.services if not s.nodes or node.name in s.nodes}
    names |= {model_service(m.name) for m in declared.models}
    if declared.ray is not None:
        names |= {"ray", ray_service(inventory, node)}
    return names


async def find(fleet: Fleet, declared: Declared, nodes: list[Node]) -> dict[str, list[str]]:
    """Each of `nodes` -> the services saf up installed there for this cluster that
    saf.toml does not declare there (a node that cannot be read has none)."""
    cluster = fleet.inventory.cluster.name

    async def one(conn: Connector) -> tuple[list[Marked], list[Endpoint]]:
        result = await conn.run(LIST)
        try:
            servers = (await list_servers(Target.of(conn), probe=False)).endpoints
        except SafError:  # no model server records to read there: none of saf up's
            servers = []
        return parse(result.stdout, cluster), servers

    answers = await fleet.each(nodes, one)
    out: dict[str, list[str]] = {}
    for node in nodes:
        found = answers[node.name]
        if isinstance(found, BaseException):
            continue
        marked, servers = found
        keep = declared_names(declared, fleet.inventory, node)
        names = sorted({m.name for m in marked if m.name not in keep})
        names += sorted(model_key(e.mark.model, e.port) for e in servers
                        if e.mark is not None and e.mark.cluster == cluster and not e.kept
                        and not _declared_here(declared, node, e.mark.model, e.port))
        if names:
            out[node.name] = names
    return out


def _declared_here(declared: Declared, node: Node, model: str, port: int) -> bool:
    """Whether saf.toml declares model `model` on `port` where `node` may serve it (its `on`,
    or anywhere when placed): its own step then handles the server there."""
    return any(m.name == model and m.port == port and (m.on is None or node.name in m.nodes)
               for m in declared.models)


def by_service(found: Mapping[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """node -> names, turned into name -> nodes (in the nodes' order)."""
    out: dict[str, tuple[str, ...]] = {}
    for node, names in found.items():
        for name in names:
            out[name] = (*out.get(name, ()), node)
    return dict(sorted(out.items()))


def steps(orphans: Orphans, index: int, cluster: str) -> list[Step]:
    """Per orphan: stop, disable and remove it where it is left, then its secrets file (a
    detached model server: stop it, the one marked as `cluster`'s)."""
    out: list[Step] = []
    for name, nodes in orphans.items():
        on = ",".join(nodes)
        served = model_of(name)
        if served is not None:  # a detached server: stopped, its record forgotten
            out.append(Step(index=index + len(out), name=f"{shown(name)} (not declared)",
                            on=on, kind=ModelStop(served[0], served[1], marked=cluster)))
            continue
        title = f"{name} (not declared)"
        out.append(Step(index=index + len(out), name=title, on=on, kind=ServiceKind(
            ServiceParams(service=name, state="absent"))))
        where = '"$HOME"/' + shlex.quote(f"{ENV_FOLDER}/{name}.env".removeprefix("~/"))
        out.append(Step(index=index + len(out), name=f"{title} env", on=on,
                        check=f"test ! -e {where}", kind=Shell(f"rm -f {where}")))
    return out


def as_vars(orphans: Orphans) -> dict[str, str]:
    return {PREFIX + name: ",".join(nodes) for name, nodes in orphans.items()}


def of_vars(values: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    return {k[len(PREFIX):]: tuple(v.split(",")) for k, v in values.items()
            if k.startswith(PREFIX) and v}
