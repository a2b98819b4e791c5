"""kind = "service": a long-running program kept by the node's own init system (docs/services.md).

Facts: the init system and who saf is there (saf.cluster.initsys: systemd as root with
`become`, systemd --user, launchd, or none: saf's supervisor, not kept across reboots), then
the installed unit and its state. Plan: nothing when the unit is the one saf would write and
the service is active (`ok`); otherwise the unit file and the commands (`--check` shows
both). Apply: install, start, then verify: the service must still be active after `settle`
seconds and the optional `health` command must succeed within `health_timeout`; a failure
carries the log's last lines. `state = "absent"` stops, disables and removes it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
from typing import Literal

from saf.cluster.initsys import Manager, ServiceStatus
from saf.cluster.service import (
    Found,
    commands_down,
    commands_up,
    find,
    init_facts,
    read_logs,
    rendered,
    resolve,
)
from saf.cluster.units import ServiceSpec, UnitError
from saf.connect.base import RunResult
from saf.recipe.events import StepStatus
from saf.recipe.kinds.base import (
    Fail,
    Kind,
    KindParams,
    Outcome,
    Plan,
    StepContext,
    StepFailed,
    run_in_order,
)
from saf.recipe.schema import Text


@dataclasses.dataclass(frozen=True)
class ServiceData:
    """What `plan` found, for `apply`: the unit as saf writes it and where it runs."""

    spec: ServiceSpec
    manager: Manager
    found: Found


class ServiceParams(KindParams, kw_only=True):
    # The service's name: its unit is saf-NAME.service, its launchd job saf-NAME (the step's
    # own `name` stays the step's title).
    service: Text
    command: Text | None = None  # the program (absolute path) and its arguments, sh words
    workdir: Text | None = None
    env: dict[str, str] | None = None  # non-secret variables (shown by --check)
    env_file: Text | None = None  # a file on the node with the secrets (KEY="value", 0600)
    restart: Literal["always", "on-failure", "no"] = "on-failure"
    user: Text | None = None  # run as this user (system units / LaunchDaemons)
    cpus: Text | None = None  # CPU list it is pinned to, "0-3,8"
    numa: int | None = None  # NUMA node it runs on
    gpus: Text | None = None  # GPUs it sees, "0,1"
    gpu_env: Text = "CUDA_VISIBLE_DEVICES"  # the vendor's variable for gpus
    state: Literal["present", "absent"] = "present"
    health: Text | None = None  # a command on the node that succeeds once it answers
    health_timeout: float = 30  # seconds health has to succeed
    settle: float = 2  # seconds the service must stay active after starting
    # saf up's mark: the cluster whose declaration installs it (saf.cluster.marked); a
    # recipe's own service step leaves it out, so `saf up --prune` never removes that one.
    up: Text | None = None


class Service(Kind[ServiceData]):
    name = "service"
    forms = {"service": "word", "command": "args", "workdir": "path", "env": "line",
             "env_file": "path", "user": "user", "cpus": "word", "gpus": "word",
             "health": "command", "up": "line"}
    Params = ServiceParams

    def __init__(self, params: ServiceParams) -> None:
        self.params = params

    @classmethod
    def parse(cls, params: ServiceParams, fail: Fail) -> Service:
        if params.state == "present" and params.command is None:
            raise fail("command", "a service needs 'command' (unless state = \"absent\")")
        if not 0 <= params.settle <= 600 or not 0 <= params.health_timeout <= 86400:
            raise fail("settle", "settle must be 0-600 s and health_timeout 0-86400 s")
        return cls(params)

    def templates(self) -> list[tuple[str, str]]:
        p = self.params
        found = [(key, value) for key in ("service", "command", "workdir", "env_file", "user",
                                          "cpus", "gpus", "health", "up")
                 if (value := getattr(p, key)) is not None]
        return found + [("env", value) for value in (p.env or {}).values()]

    def describe(self) -> str:
        if self.params.state == "absent":
            return f"stop and remove service saf-{self.params.service}"
        return f"service saf-{self.params.service}: {self.params.command} " \
               f"(restart {self.params.restart})"

    def spec(self, ctx: StepContext) -> ServiceSpec:
        p = self.params

        def text(value: str | None) -> str | None:
            return None if value is None else ctx.render(value, shell=False)

        argv = tuple(shlex.split(text(p.command) or "")) if p.command else ("/bin/true",)
        return ServiceSpec(
            name=text(p.service) or "", argv=argv, workdir=text(p.workdir),
            env={k: ctx.render(v, shell=False) for k, v in (p.env or {}).items()},
            env_file=text(p.env_file), restart=p.restart, user=text(p.user),
            cpus=text(p.cpus), numa=p.numa, gpus=text(p.gpus), gpu_env=p.gpu_env,
            up=text(p.up))

    async def plan(self, ctx: StepContext) -> Plan[ServiceData]:
        async def run(command: str) -> RunResult:
            return await ctx.run(command, quiet=True)

        try:
            spec = self.spec(ctx)
            manager = (await init_facts(run)).manager()
            python = ctx.node.python
            if self.params.state == "present":
                spec = await resolve(run, spec, ctx.node.name)
            text = rendered(spec, manager) if self.params.state == "present" else ""
        except UnitError as exc:
            return Plan(True, refusal=str(exc))
        found = await find(run, spec, manager, python)
        data = ServiceData(spec, manager, found)
        where = manager.describe()
        if self.params.state == "absent":
            commands = commands_down(spec, found, python)
            if not commands:
                return Plan(False, f"saf-{spec.name} is not installed ({where})")
            return Plan(True, f"would stop, disable and remove saf-{spec.name} ({where})",
                        commands, data)
        commands, why = commands_up(spec, found, python, text)
        if not commands:
            if self.params.health:
                health = await ctx.run(ctx.render(self.params.health), quiet=True)
                if not health.ok:
                    commands = commands_up(spec, Found(manager, None, found.status), python,
                                           text)[0]
                    return Plan(True, f"would restart saf-{spec.name}: health check failed "
                                f"(exit {health.exit_status})", commands, data)
            return Plan(False, _since(found.status, where), done_status=StepStatus.OK)
        return Plan(True, f"would {why}", commands, data)

    async def apply(self, ctx: StepContext, plan: Plan[ServiceData]) -> Outcome:
        data = plan.given()
        spec, manager = data.spec, data.manager
        failed = await run_in_order(ctx, plan.commands)
        if failed is not None:
            return failed.outcome("")
        if self.params.state == "absent":
            found = await find(lambda c: ctx.run(c, quiet=True), spec, manager,
                               ctx.node.python)
            if found.status.active or found.installed is not None:
                return Outcome(StepStatus.FAILED, f"saf-{spec.name} is still there: "
                               f"{found.status.state} ({found.status.detail})")
            return Outcome(StepStatus.CHANGED, f"stopped and removed saf-{spec.name}", 0)
        return await self._verify(ctx, spec, manager)

    async def _verify(self, ctx: StepContext, spec: ServiceSpec, manager: Manager) -> Outcome:
        async def run(command: str) -> RunResult:
            return await ctx.run(command, quiet=True)

        started = (await find(run, spec, manager, ctx.node.python)).status
        await asyncio.sleep(self.params.settle)
        status = (await find(run, spec, manager, ctx.node.python)).status
        if not status.active:
            raise StepFailed(f"saf-{spec.name} is {status.state} ({status.detail}) after "
                             f"starting under {manager.describe()}",
                             await read_logs(run, spec, manager))
        if (status.restarts or 0) > (started.restarts or 0):
            # Active now, but it died and was restarted while settling: a crash loop.
            raise StepFailed(f"saf-{spec.name} was restarted "
                             f"{(status.restarts or 0) - (started.restarts or 0)} times in "
                             f"{self.params.settle:g} s after starting under "
                             f"{manager.describe()}", await read_logs(run, spec, manager))
        if self.params.health:
            command = ctx.render(self.params.health)
            deadline = asyncio.get_running_loop().time() + self.params.health_timeout
            while True:
                health = await ctx.run(command, quiet=True, timeout=max(
                    1.0, deadline - asyncio.get_running_loop().time()))
                if health.ok:
                    break
                if asyncio.get_running_loop().time() >= deadline:
                    raise StepFailed(f"saf-{spec.name} runs but its health check failed "
                                     f"(exit {health.exit_status})",
                                     await read_logs(run, spec, manager))
                await asyncio.sleep(1)
        return Outcome(StepStatus.CHANGED, _since(status, manager.describe()), 0)


def _since(status: ServiceStatus, where: str) -> str:
    bits = [f"saf-{status.name} {status.state} under {where}"]
    if status.pid:
        bits.append(f"pid {status.pid}")
    if status.since:
        bits.append(f"since {status.since}")
    if status.restarts:
        bits.append(f"{status.restarts} restarts")
    if not status.kept_across_reboots and "not kept across reboots" not in where:
        bits.append("not kept across reboots")
    return ", ".join(bits)
