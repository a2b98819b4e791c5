"""Gathering `saf status`'s view (saf.up.status) from every node at once: whether each node
answers SSH, Ray's nodes from its dashboard, each declared service's status from the node's
manager (saf.cluster.service.read_status) and its check, and each declared model's server
(saf.inference.cluster's endpoints, with the last check saved by `saf models check`).

Every string that leaves here has passed saf.secrets.scrub: a secret in a status line, a
model's path or a check's output is shown as ***.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
from collections.abc import Callable
from typing import Any

import msgspec

from saf import secrets
from saf.cluster.initsys import ServiceStatus
from saf.cluster.marked import mark_of
from saf.cluster.service import Found, differences, read_found, read_status, resolve
from saf.cluster.units import ServiceSpec, UnitError
from saf.connect.base import Connector
from saf.errors import InventoryError, SafError
from saf.fleet import Fleet, error_reason
from saf.inference import checks
from saf.inference.checks import SavedCheck
from saf.inference.cluster import list_endpoints
from saf.inference.node import Target, list_servers
from saf.inference.records import Endpoint
from saf.inventory.model import Node
from saf.ray import command as rc
from saf.ray.session import open_dashboard
from saf.ray.status import RayStatus
from saf.ray.status import read_status as read_ray
from saf.recipe.kinds.model_kept import service_name
from saf.recipe.kinds.ray_kept import service_name as ray_service
from saf.up import compile as uc
from saf.up import orphans, replicas
from saf.up.declared import Declared, Model, Service
from saf.up.status import (
    DISABLED,
    FINE,
    NOT_DECLARED,
    NOT_DECLARED_MODEL,
    PLACED_ROW,
    ClusterStatus,
    Judged,
    ModelRow,
    NodeRow,
    RayRow,
    ServiceRow,
    ray_verdict,
    service_verdict,
)

CHECK_TIMEOUT = 10.0
# A URL check runs on the node (the URL is the node's own view: often 127.0.0.1).
_URL_CHECK = ("import sys, urllib.request\n"
              "r = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))\n"
              "sys.exit(0 if 200 <= r.status < 300 else 1)\n")


async def gather(fleet: Fleet, declared: Declared, nodes: list[Node]) -> ClusterStatus:
    """The status of what `declared` puts on `nodes` (the nodes `--on` names)."""
    names = {n.name for n in nodes}
    answers = await fleet.each(nodes, _reach)
    reached = [n for n in nodes if not isinstance(answers[n.name], BaseException)]
    status = ClusterStatus(fleet.inventory.cluster.name)
    for node in nodes:
        value = answers[node.name]
        judged = Judged("unreachable", " ".join(error_reason(value))) \
            if isinstance(value, BaseException) else Judged("as declared")
        status.nodes.append(NodeRow(node.name, node.host, judged))
    down = {n.name: status.nodes[i].judged.why for i, n in enumerate(nodes)
            if not status.nodes[i].judged.fine}
    ray, services, models, left = await asyncio.gather(
        _ray(fleet, declared, nodes, down),
        _services(fleet, declared, names, down),
        _models(fleet, declared, reached, names, down),
        _orphans(fleet, declared, reached))
    status.ray_declared = declared.ray is not None
    status.ray, status.ray_problem = ray
    status.services, status.models = services + left[0], models + left[1]
    return secrets.scrub(status)


async def _reach(conn: Connector) -> None:
    result = await conn.run("true", timeout=conn.node.connect_timeout)
    if not result.ok:
        raise SafError(f"`true` exited {result.exit_status}")


# -- Ray ------------------------------------------------------------------------------------

async def _ray(fleet: Fleet, declared: Declared, nodes: list[Node], down: dict[str, str]
               ) -> tuple[list[RayRow], str]:
    ray = declared.ray
    if ray is None:
        return [], ""
    problem, found = "", None
    try:
        async with open_dashboard(fleet, port=ray.dashboard_port,
                                  temp_dir=ray.temp_dir or rc.DEFAULT_TEMP_DIR) as dash:
            found = await read_ray(dash)
    except (SafError, OSError) as exc:
        problem = exc.message if isinstance(exc, SafError) else str(exc)
    # The name ray-up gave each node's service: `ray`, or `ray-NODE` where nodes share a
    # machine (saf.recipe.kinds.ray_kept), so each is read under its own name.
    kept = await _kept(fleet, [n for n in nodes if n.name not in down],
                       lambda n: ray_service(fleet.inventory, n)) if ray.persist else {}
    # A head that does not answer SSH: its dashboard was not read, so whether Ray runs on
    # any node is not known (not `down`, which says it was seen not running).
    headless = f"the head {ray.head} does not answer SSH: {down[ray.head]}" \
        if found is None and ray.head in down else ""
    rows = []
    for node in nodes:
        want = ray.resources_of(fleet.inventory, node)
        have = _alive(found, node.name)
        unit = kept.get(node.name)
        keeps = None if unit is None else unit.kept_across_reboots
        if node.name in down and have is None:
            judged = Judged("unreachable", down[node.name])
        elif headless:
            judged = Judged("unreachable", headless)
        else:
            judged = ray_verdict(want, have, problem, ray.persist, keeps,
                                 unit is not None and unit.disabled)
        rows.append(RayRow(node.name, node.name == ray.head, want, have, keeps, judged))
    return rows, problem


async def _kept(fleet: Fleet, nodes: list[Node], service: str | Callable[[Node], str]
                ) -> dict[str, ServiceStatus]:
    """Each node's service `service` (a name, or each node's name for it) where one is
    installed (an unreadable node: none)."""
    async def one(node: Node) -> ServiceStatus | None:
        conn = fleet.connector(node)
        name = service if isinstance(service, str) else service(node)
        try:
            found = await read_status(conn.run, ServiceSpec(name, ("/bin/true",)),
                                      node.python)
        except (SafError, OSError):
            return None
        return None if found.state == "absent" else found
    found = await asyncio.gather(*(one(n) for n in nodes))
    return {n.name: s for n, s in zip(nodes, found, strict=True) if s is not None}


def _alive(found: RayStatus | None, name: str) -> dict[str, float] | None:
    if found is None:
        return None
    return next((dict(n.resources) for n in found.alive if n.name == name), None)


# -- services -------------------------------------------------------------------------------

async def _services(fleet: Fleet, declared: Declared, names: set[str], down: dict[str, str]
                    ) -> list[ServiceRow]:
    pairs = [(s, n) for s in declared.services for n in s.nodes if n in names]
    return list(await asyncio.gather(*(_service(fleet, s, n, down) for s, n in pairs)))


async def _service(fleet: Fleet, service: Service, name: str, down: dict[str, str]
                   ) -> ServiceRow:
    if name in down:
        return ServiceRow(service.name, name, "", "", None, None, None, None, None,
                          Judged("unreachable", down[name]))
    conn = fleet.connector(name)
    try:
        seen = await read_found(conn.run, ServiceSpec(service.name, ("/bin/true",)),
                                conn.node.python)
        differs = await _differs(conn, service, seen)
    except (SafError, OSError) as exc:
        return ServiceRow(service.name, name, "", "", None, None, None, None, None,
                          Judged("unreachable", str(exc)))
    found = seen.status
    check = await _check(conn, service) if found.active else None
    judged = service_verdict(found.state, found.active, found.kept_across_reboots, check,
                             differs, found.disabled)
    return _service_row(service.name, name, found, check, judged)


async def _orphans(fleet: Fleet, declared: Declared, reached: list[Node]
                   ) -> tuple[list[ServiceRow], list[ModelRow]]:
    """A row per service saf up installed that saf.toml no longer declares (saf.up.orphans),
    with what its manager says of it now; a model row per model server saf up started
    detached that it no longer declares, with its server's state."""
    left = await orphans.find(fleet, declared, reached)

    async def row(node: str, name: str) -> ServiceRow:
        conn = fleet.connector(node)
        found = await read_status(conn.run, ServiceSpec(name, ("/bin/true",)),
                                  conn.node.python)
        return _service_row(name, node, found, None, Judged("not declared", NOT_DECLARED))

    async def served(node: str, names: list[str]) -> list[ModelRow]:
        try:
            servers = (await list_servers(Target.of(fleet.connector(node)))).endpoints
        except (SafError, OSError):  # read a moment ago: the row stays, its state unknown
            servers = []
        rows = []
        for model, port in filter(None, map(orphans.model_of, names)):
            e = next((e for e in servers if e.port == port and e.mark is not None
                      and e.mark.model == model), None)
            rows.append(ModelRow(model, node, port, e.engine if e else "", e.state if e else "",
                                 e is not None and e.state == "ready", None, False, None,
                                 Judged("not declared", NOT_DECLARED_MODEL)))
        return rows
    services = await asyncio.gather(*(row(n, s) for n, names in left.items() for s in names
                                      if orphans.model_of(s) is None))
    models = await asyncio.gather(*(served(n, names) for n, names in left.items()
                                    if any(map(orphans.model_of, names))))
    return list(services), [r for rows in models for r in rows]


async def _differs(conn: Connector, service: Service, found: Found) -> list[str]:
    """What of the installed unit or record differs from the declaration (command, env,
    restart, settings: saf.cluster.service.differences), compared as `saf up` would write
    it on this node; a secret only by its digest. Nothing installed, or a `${NAME}` not set
    in saf's environment here (nothing to compare with): none. saf up's mark
    (saf.cluster.marked) is not compared: a unit without it runs as declared all the same."""
    if found.installed is None:
        return []
    try:
        spec = uc.service_spec(service, cluster=mark_of(found.manager.kind, found.installed))
    except InventoryError:
        return []
    try:
        spec = await resolve(conn.run, spec, conn.node.name)
        return differences(spec, found)
    except UnitError:
        return ["command"]  # the declared program is not on the node: not what runs


def _service_row(service: str, node: str, found: ServiceStatus, check: str | None,
                 judged: Judged) -> ServiceRow:
    return ServiceRow(service, node, found.state, found.manager, found.restarts, found.since,
                      found.pid, found.kept_across_reboots, check, judged)


async def _check(conn: Connector, service: Service) -> str | None:
    """The declared check's answer on the node: "ok", or "failed (exit N)"."""
    if service.check_url is not None:
        command = (f"{shlex.quote(conn.node.python)} -c {shlex.quote(_URL_CHECK)} "
                   f"{shlex.quote(service.check_url)} {CHECK_TIMEOUT:g}")
    elif service.check_command is not None:
        command = service.check_command
    else:
        return None
    result = await conn.run(command, timeout=CHECK_TIMEOUT + 5)
    if result.ok:
        return "ok"
    return "timed out" if result.timed_out else f"failed (exit {result.exit_status})"


# -- models ---------------------------------------------------------------------------------

async def _models(fleet: Fleet, declared: Declared, reached: list[Node], names: set[str],
                  down: dict[str, str]) -> list[ModelRow]:
    if not declared.models:
        return []
    servers = await list_endpoints(fleet, reached)
    last = checks.load(fleet.inventory.cluster.name)
    placed = replicas.load(fleet.inventory.cluster.name)
    units = await _model_units(fleet, declared.models, reached)
    rows = []
    for model in declared.models:
        running = [e for e in servers.endpoints if e.port == model.port and e.node in names
                   and _same_model(e, model)]
        # A placed replica last put on a node that does not answer: a row there, unknown.
        where = [n for n in model.nodes if n in names] if model.on is not None else \
            [r.node for r in placed.get(model.name, []) if r.node in down]
        surplus = _surplus(model, running, placed)
        for node in dict.fromkeys([*where, *(e.node for e in running)]):
            endpoint = next((e for e in running if e.node == node), None)
            other = next((e for e in servers.endpoints if e.node == node
                          and e.port == model.port), None)
            row = _model_row(model, node, endpoint, units.get((model.name, node)), last, down)
            if endpoint is None and other is not None and node not in down:
                row = dataclasses.replace(row, engine=other.engine, state=other.state,
                                          judged=Judged("differs", f"port {model.port} "
                                                        f"serves {other.model}"))
            moved = replicas.moved_from(placed, model.name, node) if model.on is None \
                else None
            if moved is not None and endpoint is not None:
                row = dataclasses.replace(row, moved_from=moved, judged=Judged(
                    row.judged.verdict, row.judged.why or f"re-placed from {moved} (lost)"))
            if node in surplus and row.judged.verdict in FINE:
                row = dataclasses.replace(row, judged=Judged("differs", surplus[node]))
            rows.append(row)
        shown = len(running) + sum(1 for n in where if n in down)
        if model.on is None and shown < model.replicas:
            rows.append(ModelRow(model.name, PLACED_ROW, model.port, model.engine, "", False,
                                 None, None, None, _placed_short(
                                     model, len(running), shown,
                                     [n for n in down if n not in where])))
    return rows


def _placed_short(model: Model, running: int, shown: int, down: list[str]) -> Judged:
    """The verdict of a placed model's "(placed)" row: `running` of its replicas seen,
    `shown` rows given (those and the ones on nodes that do not answer); those still short
    may run on the other nodes that do not answer SSH, `down` (`unreachable`: not known),
    unless there are too few of those for it (`missing`)."""
    silent = sorted(down)
    if silent and shown + len(silent) >= model.replicas:
        return Judged("unreachable", f"{running} of {model.replicas} replicas run on the "
                      f"nodes that answer; {', '.join(silent)} "
                      f"{'does' if len(silent) == 1 else 'do'} not answer SSH")
    note = f" ({', '.join(silent)} {'does' if len(silent) == 1 else 'do'} not answer SSH)" \
        if silent else ""
    return Judged("missing", f"{running} of {model.replicas} replicas run{note}")


def _surplus(model: Model, running: list[Endpoint], placed: replicas.Record
              ) -> dict[str, str]:
    """node -> why, for each replica of a placed model beyond its declared count that saf
    up would stop (saf.up.place: kept by saf as service model-NAME, ranked after the nodes
    of the last placement): its node came back after the replica moved, or `replicas` was
    lowered. A server saf did not start is left alone, as saf up leaves it."""
    if model.on is not None:
        return {}
    up = replicas.keep_order(placed, model.name, {e.node for e in running if e.up})
    ours = {e.node for e in running if e.kept == service_name(model.name)}
    why = f"surplus: {len(up)} replicas run, {model.replicas} declared"
    return {n: why for n in up[model.replicas:] if n in ours}


def _same_model(endpoint: Endpoint, model: Model) -> bool:
    """Whether a server on the model's port serves this model (the file's or id's last part
    is compared: the server's record holds the path it was started with)."""
    def tail(text: str) -> str:
        return text.rstrip("/").rsplit("/", 1)[-1]
    return endpoint.model in ("?", "") or tail(endpoint.model) == tail(model.model)


async def _model_units(fleet: Fleet, models: tuple[Model, ...], reached: list[Node]
                       ) -> dict[tuple[str, str], ServiceStatus]:
    """Each model's service `model-NAME` where one is installed (kept by the init system)."""
    found = await asyncio.gather(*(
        _kept(fleet, [n for n in reached if m.on is None or n.name in m.nodes],
              f"model-{m.name}") for m in models))
    return {(m.name, node): s for m, units in zip(models, found, strict=True)
            for node, s in units.items()}


def _model_row(model: Model, node: str, endpoint: Endpoint | None,
               unit: ServiceStatus | None, last: dict[str, SavedCheck],
               down: dict[str, str]) -> ModelRow:
    kept = unit is not None and unit.kept_across_reboots
    restarts = unit.restarts if unit is not None else None
    if node in down:
        judged = Judged("unreachable", down[node])
    elif endpoint is None:
        judged = Judged("missing", "no server saf started on port " + str(model.port)) \
            if unit is None else Judged("down", f"saf-model-{model.name} is {unit.state}")
    elif not endpoint.up:
        judged = Judged("down", endpoint.state + (f": {endpoint.why}" if endpoint.why else ""))
    elif model.engine != "auto" and endpoint.engine != model.engine:
        judged = Judged("differs", f"engine {endpoint.engine} (declared {model.engine})")
    elif endpoint.state != "ready":
        judged = Judged("down", f"{endpoint.state}: it does not answer yet")
    elif unit is not None and unit.disabled:
        judged = Judged("differs", f"saf-model-{model.name} is {DISABLED}")
    else:
        judged = Judged("as declared") if kept else Judged("not kept across reboots")
    key = f"{node}:{model.port}"
    return ModelRow(model.name, node, model.port,
                    endpoint.engine if endpoint is not None else model.engine,
                    endpoint.state if endpoint is not None else "",
                    endpoint is not None and endpoint.state == "ready", restarts,
                    kept if endpoint is not None or unit is not None else None,
                    _as_record(last.get(key)), judged)


def _as_record(check: SavedCheck | None) -> dict[str, Any] | None:
    """The saved check as the JSON record `saf status --json` prints (its fields as saved)."""
    return None if check is None else msgspec.to_builtins(check)
