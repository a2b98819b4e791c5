"""A program of another step kind kept by the node's init system (`persist = true` of
`ray_start` and `model`): the node's init system read, the service found, the commands that
install and (re)start it or remove it, all through saf.cluster.service (what the `service`
kind uses), so Ray, model servers and declared services are kept the same way."""

from __future__ import annotations

from dataclasses import dataclass

from saf.cluster.initsys import Manager
from saf.cluster.service import Found, commands_down, commands_up, find, init_facts, rendered
from saf.cluster.units import ServiceSpec
from saf.connect.base import RunResult
from saf.recipe.kinds.base import StepContext


@dataclass
class Kept:
    """The service as found on the node, and the commands that bring it to `text`."""

    spec: ServiceSpec
    manager: Manager
    found: Found
    text: str
    commands: list[str]
    why: str


async def manager_of(ctx: StepContext) -> Manager:
    async def run(command: str) -> RunResult:
        return await ctx.run(command, quiet=True)

    return (await init_facts(run)).manager()


async def kept(ctx: StepContext, spec: ServiceSpec, *, force: bool = False,
               manager: Manager | None = None) -> Kept:
    """Read the node's init system and the service; the commands to install and (re)start
    it (none when it is the one saf would write and running, unless `force`)."""
    async def run(command: str) -> RunResult:
        return await ctx.run(command, quiet=True)

    manager = manager or await manager_of(ctx)
    text = rendered(spec, manager)
    found = await find(run, spec, manager, ctx.node.python)
    commands, why = commands_up(spec, found, ctx.node.python, text)
    if force and not commands:
        commands, why = commands_up(spec, Found(manager, None, found.status), ctx.node.python,
                                    text)
        why = f"restart {manager.describe()}"
    return Kept(spec, manager, found, text, commands, why)


async def removal(ctx: StepContext, name: str) -> tuple[Manager, list[str]]:
    """The commands that stop, disable and remove the service `name` (none: not there)."""
    async def run(command: str) -> RunResult:
        return await ctx.run(command, quiet=True)

    spec = ServiceSpec(name=name, argv=("/bin/true",))
    manager = await manager_of(ctx)
    found = await find(run, spec, manager, ctx.node.python)
    return manager, commands_down(spec, found, ctx.node.python)
