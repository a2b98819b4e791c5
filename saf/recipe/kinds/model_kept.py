"""A model server kept by the node's init system (`model` with `persist = true`,
docs/models.md): the server's command line runs as the service `model-SERVER` (unit
`saf-model-SERVER`, restart always) through saf.cluster, or under saf's supervisor where the
node has no init system (not kept across reboots). The record ~/.saf/serve/PORT.json is
still written (by the node script, once the keeper has started the process), now saying how
the server is kept, so `saf models` and the Models screen find it and show its restarts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from saf.cluster.initsys import Manager
from saf.cluster.service import absolute_argv, init_facts, read_logs
from saf.cluster.units import ServiceSpec, UnitError
from saf.connect.base import RunResult
from saf.inference.engines import ModelServerSpec
from saf.inference.node import Target, adopt_server, stop_server
from saf.inference.records import Endpoint
from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import Outcome, Plan, StepContext, run_in_order
from saf.recipe.kinds.kept import Kept, kept
from saf.shell import join


def service_name(server: str) -> str:
    """`model-SERVER`, SERVER made a unit's word (lowercase letters, digits, `_.-`)."""
    return "model-" + (re.sub(r"[^a-z0-9_.-]", "-", server.lower()) or "server")[:56]


def log_of(spec: ServiceSpec, manager: Manager, home: str) -> str:
    """Where the server's output goes, as the record names it: a file, or the journal."""
    if manager.kind == "detached":
        return f"{home.rstrip('/')}/.saf/services/{spec.name}/service.log"
    if manager.systemd:
        return f"journal: {spec.unit}" + (" (--user)" if manager.kind == "systemd-user" else "")
    return f"launchd log of {spec.label}"


@dataclass(frozen=True)
class KeptModel:
    spec: ModelServerSpec
    timeout: float
    target: Target
    kept: Kept
    argv: list[str]
    home: str
    detached_here: Endpoint | None  # a detached server of saf's on the port: stopped first


async def plan_kept(ctx: StepContext, spec: ModelServerSpec, ready_timeout: float,
                    target: Target,
                    here: list[Endpoint], server: str | None, up: str | None = None
                    ) -> Plan[KeptModel]:
    async def run(command: str) -> RunResult:
        return await ctx.run(command, quiet=True)

    name = service_name((ctx.render(server, shell=False).strip() if server else "")
                        or str(spec.port))
    argv = spec.argv()
    try:
        facts = await init_facts(run)
        manager = facts.manager()
        service = await absolute_argv(run, ServiceSpec(
            name=name, argv=tuple(argv), env=dict(spec.env), restart="always",
            workdir=facts.home or None,
            description=f"saf model server {spec.model} ({spec.engine}, port {spec.port})",
            up=up),
            ctx.node.name, facts.home)
        found = await kept(ctx, service, manager=manager)
    except UnitError as exc:
        return Plan(True, refusal=str(exc))
    mine = [e for e in here if e.kept == name]
    stray = next((e for e in here if e.kept != name), None)
    where = f"{manager.describe()} as {service.label}"
    if not found.commands and mine and mine[0].model == spec.model \
            and list(mine[0].argv) == argv:
        return Plan(False, f"already serving {spec.model} with {spec.engine} "
                    f"(pid {mine[0].pid}, {mine[0].state}), kept by {where}")
    if not found.commands:  # the service runs, but not this server, or not ready: again
        found = await kept(ctx, service, force=True, manager=manager)
    data = KeptModel(spec, ready_timeout, target, found, argv, facts.home, stray)
    first = ([f"stop the detached server on port {spec.port} (pid {stray.pid})"]
             if stray else [])
    return Plan(True, f"would {found.why}: {spec.engine} as {service.label}: {join(argv)}",
                first + found.commands, data)


async def apply_kept(ctx: StepContext, data: KeptModel) -> Outcome:
    spec, found = data.spec, data.kept

    async def run(command: str) -> RunResult:
        return await ctx.run(command, quiet=True)

    if data.detached_here is not None:
        await stop_server(data.target, spec.port)
    failed = await run_in_order(ctx, found.commands)
    if failed is not None:
        return failed.outcome(f"starting {found.spec.label}")
    keeper = {"service": found.spec.name, "manager": found.manager.kind,
              "log": log_of(found.spec, found.manager, data.home)}
    started = await adopt_server(data.target, spec, data.argv, keeper, timeout=data.timeout)
    if started.status != "ready":
        tail = started.tail or await read_logs(run, found.spec, found.manager)
        return Outcome(StepStatus.FAILED, f"{found.spec.label}: {started.why}", tail=tail)
    seconds = f" in {started.seconds:.1f} s" if started.seconds is not None else ""
    pid = started.endpoint.pid if started.endpoint else "?"
    return Outcome(StepStatus.CHANGED, f"{spec.engine} ready{seconds} on port {spec.port} "
                   f"(pid {pid}), kept by {found.manager.describe()} as {found.spec.label}",
                   exit_status=0)

